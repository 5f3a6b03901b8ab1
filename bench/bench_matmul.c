/* One matmul kernel in isolation: a weight matrix much larger than the
 * caches (default 64 MiB... 1 GiB of rows, cols 2048) times n token vectors,
 * split over the pool in 32-row chunks, handed out in spans of consecutive
 * chunks (ls_pool_spans) exactly as the forward pass does, next
 * to a plain read of the same bytes by the same threads (the roofline, in the
 * same run). Also the same matmul on a matrix that fits in L2 (compute bound:
 * what the kernel could do if memory were free), each thread repeating its
 * span L2_REPEAT times per pool call so that the pool's wake-up and join,
 * microseconds against a 256 KiB pass of a few microseconds, do not count.
 *
 * Rows (tab-separated key=value):
 *   bench=matmul type= kernels= layout= (x16 or rows) threads= tokens= mib= gb_s= (weight bytes /
 *   median time) read_gb_s= (plain read, median) frac= (gb_s / read_gb_s)
 *   x_1tok= (time against the 1-token call) l2_gb_s= (in-cache) load=
 *   cpu_gb_s= read_cpu_gb_s= l2_cpu_gb_s= (the same per second of process CPU
 *   time: with 1 thread, what the core did while it ran)
 *
 * usage: bench_matmul [--type q8_0|q4_0|q4_k|q6_k|f16] [--threads 1,2] [--tokens 1,4]
 *                     [--mib 512] [--cols 2048] [--reps 9] [--layout level|rows]
 * --layout: the weights as the engine's copy has them for this level
 * (level: packed where the level packs, the default) or as the file has
 * them (rows: the plain mapping, `--weights map`). */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels.h"
#include "ls_pool.h"
#include "ls_util.h"

#define CHUNK 32
#define L2_REPEAT 64 /* 256 KiB x 64: 16 MiB of in-cache weights per timed call */

typedef struct job {
  const ls_kernels *k;
  ls_mat w;
  const void *xa;
  size_t xs;
  int n;
  float *y;
  int n_spans;
  int repeat; /* matmul passes over each span per pool call */
  uint64_t sink[64];
} job;

static int64_t n_chunks(const job *j) { return (j->w.rows + CHUNK - 1) / CHUNK; }

/* Rows [*r0, *r1) of span s (ls_pool_span's chunks). */
static void span_rows(const job *j, int s, int64_t *r0, int64_t *r1) {
  int c0, c1;
  ls_pool_span(s, j->n_spans, (int)n_chunks(j), &c0, &c1);
  *r0 = (int64_t)c0 * CHUNK;
  *r1 = (int64_t)c1 * CHUNK < j->w.rows ? (int64_t)c1 * CHUNK : j->w.rows;
}

/* One matmul call per chunk of the span, as the forward pass makes them. */
static void mm_task(void *arg, int span, int thread) {
  (void)thread;
  job *j = arg;
  int64_t s0, s1;
  span_rows(j, span, &s0, &s1);
  for (int rep = 0; rep < j->repeat; rep++)
    for (int64_t r0 = s0; r0 < s1; r0 += CHUNK)
      j->k->matmul(&j->w, j->xa, j->xs, j->n, j->y, j->w.rows, r0, r0 + CHUNK < s1 ? r0 + CHUNK : s1);
}

/* The same spans, only read (32-byte loads xor-folded): the bandwidth the
 * access pattern itself gets. */
__attribute__((target("avx2"))) static void read_task(void *arg, int task, int thread) {
  job *j = arg;
  int64_t r0, r1;
  span_rows(j, task, &r0, &r1);
  const uint8_t *p = (const uint8_t *)j->w.data + (size_t)r0 * j->w.row_bytes;
  size_t n = (size_t)(r1 - r0) * j->w.row_bytes;
  __m256i a = _mm256_setzero_si256(), b = a;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
    b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
  }
  uint64_t v[4];
  _mm256_storeu_si256((__m256i *)v, _mm256_xor_si256(a, b));
  j->sink[thread] ^= v[0] ^ v[1] ^ v[2] ^ v[3];
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Median wall ms of reps runs; *cpu: median process CPU ms (with 1 thread
 * the kernel's own time, much less sensitive to a shared machine). */
static double median_ms(ls_pool *p, ls_pool_fn fn, job *j, int reps, double *cpu) {
  double t[64], c[64];
  j->n_spans = ls_pool_spans(p, (int)n_chunks(j));
  ls_pool_run(p, fn, j, j->n_spans); /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = ls_now_ms(), c0 = cpu_ms();
    ls_pool_run(p, fn, j, j->n_spans);
    t[r] = ls_now_ms() - t0;
    c[r] = cpu_ms() - c0;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  qsort(c, (size_t)reps, sizeof *c, cmp_double);
  if (cpu) *cpu = c[reps / 2];
  return t[reps / 2];
}

static int parse_list(const char *v, int *out, int max) {
  int n = 0;
  for (const char *s = v; s && *s && n < max; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) out[n++] = atoi(s);
  return n;
}

int main(int argc, char **argv) {
  uint32_t type = LS_Q8_0;
  int threads[8] = {1, 2}, n_threads = 2, tokens[16] = {1, 2, 4, 8, 16, 32}, n_tokens = 6, reps = 9;
  long mib = 512, cols = 2048;
  int pack = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--type")) {
      if (!strcmp(v, "q8_0")) type = LS_Q8_0;
      else if (!strcmp(v, "q4_0")) type = LS_Q4_0;
      else if (!strcmp(v, "f16")) type = LS_F16;
      else if (!strcmp(v, "q4_k")) type = LS_Q4_K;
      else if (!strcmp(v, "q6_k")) type = LS_Q6_K;
      else { fprintf(stderr, "bench_matmul: --type %s: expected q8_0, q4_0, q4_k, q6_k or f16\n", v); return 2; }
    } else if (!strcmp(a, "--threads")) n_threads = parse_list(v, threads, 8);
    else if (!strcmp(a, "--tokens")) n_tokens = parse_list(v, tokens, 16);
    else if (!strcmp(a, "--mib")) mib = atol(v);
    else if (!strcmp(a, "--cols")) cols = atol(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--layout")) {
      if (!strcmp(v, "rows")) pack = 0;
      else if (!strcmp(v, "level")) pack = 1;
      else { fprintf(stderr, "bench_matmul: --layout %s: expected rows or level\n", v); return 2; }
    } else { fprintf(stderr, "bench_matmul: %s: unknown option\n", a); return 2; }
  }
  if (argc % 2 == 0) { fprintf(stderr, "bench_matmul: %s: missing value\n", argv[argc - 1]); return 2; }
  if (mib < 1 || mib > 8192 || cols < 32 || cols % 32 || cols > 65536 || reps < 1 || reps > 64) {
    fprintf(stderr, "bench_matmul: --mib 1..8192, --cols a multiple of 32 up to 65536, --reps 1..64\n");
    return 2;
  }
  for (int i = 0; i < n_tokens; i++)
    if (tokens[i] < 1 || tokens[i] > 512) { fprintf(stderr, "bench_matmul: --tokens: 1..512 each\n"); return 2; }
  for (int i = 0; i < n_threads; i++)
    if (threads[i] < 1 || threads[i] > 64) { fprintf(stderr, "bench_matmul: --threads: 1..64 each\n"); return 2; }
  const ls_kernels *k = ls_kernels_get();
  size_t rb = ls_dtype_row_bytes(type, cols);
  int64_t rows = (int64_t)(((size_t)mib << 20) / rb) / CHUNK * CHUNK;
  int64_t l2_rows = (int64_t)((256u << 10) / rb) / CHUNK * CHUNK; /* 256 KiB: in L2 */
  if (l2_rows < CHUNK) l2_rows = CHUNK;
  size_t bytes = (size_t)rows * rb, alloc = (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  uint8_t *wd = aligned_alloc(2u << 20, alloc);
  int max_n = 1;
  for (int i = 0; i < n_tokens; i++) max_n = tokens[i] > max_n ? tokens[i] : max_n;
  size_t xs = k->act_bytes(type, cols);
  xs = xs ? (xs + 63) / 64 * 64 : (size_t)cols * sizeof(float);
  float *x = malloc(sizeof(float) * (size_t)cols * max_n), *y = aligned_alloc(64, sizeof(float) * rows * max_n);
  uint8_t *xa = aligned_alloc(64, xs * max_n);
  if (!wd || !x || !y || !xa) { fprintf(stderr, "bench_matmul: out of memory\n"); return 1; }
  madvise(wd, alloc, MADV_HUGEPAGE);
  /* random-ish bytes with sane fp16 scales: quantise random rows */
  float *row = malloc(sizeof(float) * cols);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int64_t r = 0; r < rows; r++) {
    if (r < 64) {
      for (long c = 0; c < cols; c++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        row[c] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23);
      }
      if (type == LS_Q8_0) ls_quantize_row_q8_0(row, (void *)(wd + r * rb), cols);
      else if (type == LS_Q4_0 || type == LS_Q4_K || type == LS_Q6_K) ls_quantize_row(type, row, (void *)(wd + r * rb), cols);
      else for (long c = 0; c < cols; c++) ((uint16_t *)(wd + r * rb))[c] = ls_fp32_to_fp16(row[c]);
    } else memcpy(wd + r * rb, wd + (r % 64) * rb, rb);
  }
  for (long i = 0; i < cols * max_n; i++) x[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
  for (int t = 0; t < max_n; t++)
    if (k->act_bytes(type, cols)) k->act_prepare(type, x + t * cols, cols, xa + xs * t);
    else memcpy(xa + xs * t, x + t * cols, sizeof(float) * cols);
  /* weights in the layout the engine gives this level (ls_model_copy_weights) */
  ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
  if (pack && k->pack && ls_x16_packable(&w) && k->pack(&w, wd)) { fprintf(stderr, "bench_matmul: out of memory\n"); return 1; }
  for (int ti = 0; ti < n_threads; ti++) {
    ls_pool *p;
    ls_err err = {0};
    if (ls_pool_new(threads[ti], &p, &err)) { fprintf(stderr, "bench_matmul: %s\n", err.msg); return 1; }
    job j = {.k = k, .w = w, .xa = xa, .xs = xs, .y = y};
    double one = 0;
    for (int ni = 0; ni < n_tokens; ni++) {
      j.n = tokens[ni];
      j.w.rows = rows;
      j.repeat = 1;
      double load = ls_load_avg();
      double rd_cpu, mm_cpu, l2_cpu;
      double rd = median_ms(p, read_task, &j, reps, &rd_cpu);
      double mm = median_ms(p, mm_task, &j, reps, &mm_cpu);
      double rd2 = median_ms(p, read_task, &j, reps, NULL); /* read on both sides of the kernel */
      if (rd2 < rd) rd = rd2;
      if (j.n == 1) one = mm;
      j.w.rows = l2_rows;
      j.repeat = L2_REPEAT;
      double l2 = median_ms(p, mm_task, &j, reps < 9 ? 9 : reps, &l2_cpu);
      double l2_bytes = (double)L2_REPEAT * l2_rows * rb;
      printf("bench=matmul\ttype=%s\tkernels=%s\tlayout=%s\tthreads=%d\ttokens=%d\tmib=%.0f\tgb_s=%.2f\tread_gb_s=%.2f\t"
             "frac=%.2f\tx_1tok=%.2f\tl2_gb_s=%.2f\tcpu_gb_s=%.2f\tread_cpu_gb_s=%.2f\tl2_cpu_gb_s=%.2f\tload=%.2f\n",
             ls_dtype_name(type), k->name, w.layout == LS_LAYOUT_X16 ? "x16" : "rows", threads[ti], j.n, bytes / 1048576.0, bytes / mm / 1e6,
             bytes / rd / 1e6, rd / mm, one > 0 ? mm / one : 0.0, l2_bytes / l2 / 1e6, bytes / mm_cpu / 1e6,
             bytes / rd_cpu / 1e6, l2_bytes / l2_cpu / 1e6, load);
      fflush(stdout);
    }
    ls_pool_free(p);
  }
  free(row); free(x); free(y); free(xa); free(wd);
  return 0;
}
