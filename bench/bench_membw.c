/* Memory read bandwidth: the roofline for decode (which streams every weight
 * once per token). A buffer much larger than the caches (default 1 GiB, in
 * anonymous memory advised for transparent huge pages, like the loader's
 * weight copy) is read with 256-bit loads by 1, 2, ... threads, each thread
 * one contiguous slice (as the engine's row chunks are mostly contiguous).
 *
 * Prints one row per thread count, tab-separated key=value:
 *   bench=membw threads= mib= gb_s= (median of reps) gb_s_best= gb_s_all=
 *   load= (1-minute load average before the run)
 *
 * usage: bench_membw [--threads 1,2] [--mib 1024] [--reps 7] [--no-thp] */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ls_util.h"

typedef struct slice {
  const uint8_t *p;
  size_t n;
  uint64_t sink;
} slice;

/* Four independent 256-bit loads per 128 bytes, folded with xor (one cycle,
 * not a dependency chain the loads wait on). */
__attribute__((target("avx2"))) static void *read_slice(void *arg) {
  slice *s = arg;
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= s->n; i += 128) {
    a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(s->p + i)));
    b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(s->p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(s->p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(s->p + i + 96)));
  }
  __m256i x = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  uint64_t v[4];
  _mm256_storeu_si256((__m256i *)v, x);
  s->sink = v[0] ^ v[1] ^ v[2] ^ v[3];
  return NULL;
}

/* Seconds for th threads to read buf[0, size) once, each a contiguous slice. */
static double timed_read(const uint8_t *buf, size_t size, int th) {
  pthread_t tid[64];
  slice sl[64];
  size_t per = size / (size_t)th / 128 * 128;
  for (int i = 0; i < th; i++) sl[i] = (slice){buf + (size_t)i * per, per, 0};
  double t0 = ls_now_ms();
  for (int i = 1; i < th; i++) pthread_create(&tid[i], NULL, read_slice, &sl[i]);
  read_slice(&sl[0]);
  for (int i = 1; i < th; i++) pthread_join(tid[i], NULL);
  double s = (ls_now_ms() - t0) / 1e3;
  uint64_t sink = 0;
  for (int i = 0; i < th; i++) sink ^= sl[i].sink;
  if (sink == 42) fputc(' ', stderr); /* keeps the loads alive */
  return (double)per * th / s / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int threads[16] = {1, 2}, n_threads = 2, reps = 7, thp = 1;
  long mib = 1024;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--no-thp")) { thp = 0; continue; }
    if (!v) { fprintf(stderr, "bench_membw: %s: missing value\n", a); return 2; }
    i++;
    if (!strcmp(a, "--mib")) mib = atol(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--threads")) {
      n_threads = 0;
      for (const char *s = v; s && *s && n_threads < 16; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
        threads[n_threads++] = atoi(s);
    } else { fprintf(stderr, "bench_membw: %s: unknown option\n", a); return 2; }
  }
  if (mib < 64 || mib > (1 << 20) || reps < 1 || reps > 1000) {
    fprintf(stderr, "bench_membw: --mib must be 64..1048576 and --reps 1..1000\n");
    return 2;
  }
  for (int i = 0; i < n_threads; i++)
    if (threads[i] < 1 || threads[i] > 64) { fprintf(stderr, "bench_membw: --threads: 1..64 each\n"); return 2; }
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2")) { fprintf(stderr, "bench_membw: needs AVX2\n"); return 1; }
  size_t size = (size_t)mib << 20;
  uint8_t *buf = aligned_alloc(2u << 20, size);
  if (!buf) { fprintf(stderr, "bench_membw: out of memory for %ld MiB\n", mib); return 1; }
  if (thp) madvise(buf, size, MADV_HUGEPAGE);
  for (size_t i = 0; i < size; i += 64) buf[i] = (uint8_t)i; /* fault every page in before timing */
  double *gb = malloc(sizeof(double) * (size_t)reps);
  for (int ti = 0; ti < n_threads; ti++) {
    double load = ls_load_avg();
    timed_read(buf, size, threads[ti]); /* warm-up */
    for (int r = 0; r < reps; r++) gb[r] = timed_read(buf, size, threads[ti]);
    char all[1024] = "";
    for (int r = 0; r < reps; r++)
      snprintf(all + strlen(all), sizeof all - strlen(all), "%s%.1f", r ? "," : "", gb[r]);
    qsort(gb, (size_t)reps, sizeof *gb, cmp_double);
    printf("bench=membw\tthreads=%d\tmib=%ld\tthp=%d\tgb_s=%.2f\tgb_s_best=%.2f\tgb_s_all=%s\tload=%.2f\n",
           threads[ti], mib, thp, gb[reps / 2], gb[reps - 1], all, load);
    fflush(stdout);
  }
  free(gb);
  free(buf);
  return 0;
}
