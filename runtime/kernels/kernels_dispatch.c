/* Run-time choice of the kernel level: the CPU's features (cpuid via
 * __builtin_cpu_supports), overridable with LS_KERNELS=ref|avx2|avx512|amx for
 * tests and benchmarks. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* F16C (CPUID leaf 1, ECX bit 29) read directly: clang's __builtin_cpu_supports
 * does not know "f16c" (the libFuzzer build uses clang). */
static int cpu_has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static int cpu_has_avx2(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
  return 0;
#endif
}

static int cpu_has_avx512(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return 0;
#endif
}

/* AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25), and Linux's
 * permission to use the tile data (ARCH_REQ_XCOMP_PERM for XFEATURE 18,
 * XTILEDATA): without it the first tile instruction raises SIGILL. Asked
 * once, the first time a level is chosen (before the pool's threads start;
 * the permission is the process's). */
static int cpu_has_amx(void) {
#if defined(__x86_64__) && defined(__linux__) && defined(SYS_arch_prctl)
  static int has = -1;
  if (has >= 0) return has;
  unsigned a, b, c, d;
  has = 0;
  if (cpu_has_avx512() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 24)) && (d & (1u << 25)))
    has = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
  return has;
#else
  return 0;
#endif
}

/* AMD family 25 (Zen 3 and Zen 4; only Zen 4 has AVX-512): its hardware
 * prefetcher keeps up with one row stream per core, and the software
 * prefetches of the "prefetch" streams (tuned on Zen 5) cost it 5-20% at one
 * token (bench_matmul, docs/engine.md). */
static int cpu_prefers_plain_streams(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u) return 0; /* "Auth"enticAMD */
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  unsigned family = ((a >> 8) & 0xf) + (((a >> 8) & 0xf) == 0xf ? (a >> 20) & 0xff : 0);
  return family == 25;
#else
  return 0;
#endif
}

static int cpu_is_intel(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  return __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u; /* "Genu"ineIntel */
#else
  return 0;
#endif
}

/* The AVX-512 tiles' prefetch distances for this CPU (kernels.h), once. */
static void a5_tune(void) {
  if (cpu_is_intel()) ls_a5_float_pf_bytes = 2048, ls_a5_kquant_pf_bytes = 2048;
}

/* The AVX-512 table with the streams LS_STREAMS names, else this CPU's. */
static const ls_kernels *avx512_streams(void) {
  static pthread_once_t tuned = PTHREAD_ONCE_INIT;
  pthread_once(&tuned, a5_tune);
  const char *want = getenv("LS_STREAMS");
  int plain = want && !strcmp(want, "plain") ? 1 : want && !strcmp(want, "prefetch") ? 0 : cpu_prefers_plain_streams();
  return plain ? &ls_kernels_avx512_plain : &ls_kernels_avx512;
}

const ls_kernels *ls_kernels_level(int level) {
  switch (level) {
  case LS_KL_REF: return &ls_kernels_ref;
  case LS_KL_AVX2: return cpu_has_avx2() && ls_kernels_avx2.matmul ? &ls_kernels_avx2 : NULL;
  case LS_KL_AVX512: return cpu_has_avx512() && ls_kernels_avx512.matmul ? avx512_streams() : NULL;
  case LS_KL_AMX: return cpu_has_amx() ? ls_kernels_amx_table(avx512_streams()) : NULL;
  default: return NULL;
  }
}

const ls_kernels *ls_kernels_get(void) {
  const char *want = getenv("LS_KERNELS");
  if (want && *want) {
    int level = -1;
    if (!strcmp(want, "ref")) level = LS_KL_REF;
    else if (!strcmp(want, "avx2")) level = LS_KL_AVX2;
    else if (!strcmp(want, "avx512")) level = LS_KL_AVX512;
    else if (!strcmp(want, "amx")) level = LS_KL_AMX;
    const ls_kernels *k = level >= 0 ? ls_kernels_level(level) : NULL;
    if (k) return k;
  }
  for (int level = LS_KL_MAX; level > LS_KL_REF; level--) {
    const ls_kernels *k = ls_kernels_level(level);
    if (k) return k;
  }
  return &ls_kernels_ref;
}
