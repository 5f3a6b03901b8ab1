/* Replays inputs through a fuzz target without libFuzzer (any compiler): every
 * file named on the command line, and every file inside a named directory (in
 * name order), is passed once to LLVMFuzzerTestOneInput. A crash, a sanitizer
 * report or an abort from a target's check fails the run. This is how the seed
 * corpus and the regression inputs run in every ctest (docs/fuzzing.md).
 *
 *   fuzz_NAME [--known-failures FILE] PATH...
 *
 * --known-failures names a list of "target/input" lines (fuzz/known-failures.txt)
 * that are skipped, loudly, until the bug they reproduce is fixed.
 *
 * Memory blow-ups are findings too (as libFuzzer's -rss_limit_mb): the run fails
 * as soon as the process's peak RSS passes LS_FUZZ_RSS_LIMIT_MB (default 1024),
 * naming the input; without ASan (which reserves its shadow as address space),
 * the address space is capped at four times that, so that a blow-up cannot take
 * the machine's memory before it is reported. */
#include <dirent.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static char target[256];
static char *known; /* the known-failures file's text */
static int n_run, n_skipped;
static long rss_limit_mb = 1024;

static int is_known(const char *path) {
  if (!known) return 0;
  char tmp[4096], line[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  snprintf(line, sizeof line, "%s/%s", target, basename(tmp));
  for (const char *p = known; *p;) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == strlen(line) && memcmp(p, line, n) == 0) return 1;
    p += n + (e ? 1 : 0);
  }
  return 0;
}

static void *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) exit(1);
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *size = n;
  /* an exact-size copy, so that ASan sees any read past the input */
  char *exact = malloc(n ? n : 1);
  if (!exact) exit(1);
  memcpy(exact, buf, n);
  free(buf);
  return exact;
}

static void run_file(const char *path) {
  if (is_known(path)) {
    fprintf(stderr, "replay: SKIPPED %s (listed in fuzz/known-failures.txt: a known bug not fixed yet)\n", path);
    n_skipped++;
    return;
  }
  size_t size;
  uint8_t *data = slurp(path, &size);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
  LLVMFuzzerTestOneInput(data, size);
  free(data);
  n_run++;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss / 1024 > rss_limit_mb) {
    fprintf(stderr, "replay: %s: peak RSS %ld MiB is over the limit of %ld MiB (LS_FUZZ_RSS_LIMIT_MB)\n", path,
            ru.ru_maxrss / 1024, rss_limit_mb);
    exit(1);
  }
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    exit(1);
  }
  if (!S_ISDIR(st.st_mode)) {
    run_file(path);
    return;
  }
  struct dirent **names;
  int n = scandir(path, &names, NULL, by_name);
  if (n < 0) {
    perror(path);
    exit(1);
  }
  for (int i = 0; i < n; i++) {
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
    if (names[i]->d_name[0] != '.' && stat(child, &st) == 0 && S_ISREG(st.st_mode)) run_file(child);
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", argv[0]);
  snprintf(target, sizeof target, "%s", basename(tmp));
  if (strncmp(target, "fuzz_", 5) == 0) memmove(target, target + 5, strlen(target + 5) + 1);
  const char *lim = getenv("LS_FUZZ_RSS_LIMIT_MB");
  if (lim && atol(lim) > 0) rss_limit_mb = atol(lim);
#if !defined(__SANITIZE_ADDRESS__)
  struct rlimit as = {.rlim_cur = (rlim_t)rss_limit_mb * 4 << 20, .rlim_max = RLIM_INFINITY};
  setrlimit(RLIMIT_AS, &as);
#endif
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "--known-failures") == 0) {
    size_t n;
    known = slurp(argv[2], &n);
    known = realloc(known, n + 1);
    known[n] = '\0';
    first = 3;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: %s [--known-failures FILE] FILE|DIR...\n", argv[0]);
    return 2;
  }
  for (int i = first; i < argc; i++) run_path(argv[i]);
  fprintf(stderr, "replay: %s: %d inputs passed, %d skipped as known failures\n", target, n_run, n_skipped);
  free(known);
  if (n_run + n_skipped == 0) {
    fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  return 0;
}
