/* The block formats of ls_kquants.h and their kernels (kquants_kernels.h):
 *   - dequantisation of hand-built blocks gives the values the format
 *     defines (one element at a time, so a layout slip shows);
 *   - the activation quantisers (Q8_K, Q8_1) and the Q4_K weight quantiser
 *     reproduce their input within half a step;
 *   - every type's reference matmul equals the double-precision dot product
 *     of the dequantised weights and dequantised activations to 1e-5 of
 *     sum |w||x| (float summation only), on awkward sizes;
 *   - every SIMD level gives bit-identical results to the reference (the
 *     integer block sums are exact and combined in the same order), for any
 *     row split and token count. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kquants_kernels.h"
#include "ls_kquants.h"
#include "ls_test.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(rnd() >> 8) / (float)(1u << 24) * 2.0f - 1.0f; }

static const uint32_t types[] = {LS_Q4_1, LS_Q5_0, LS_Q5_1, LS_IQ4_NL, LS_Q2_K, LS_Q3_K, LS_Q4_K, LS_Q5_K, LS_Q6_K};
#define N_TYPES ((int)(sizeof types / sizeof *types))

/* Random bytes are valid blocks of every type; only the fp16 scales need
 * sane values (random bits could be NaN or huge). */
static void random_blocks(uint32_t type, void *row, int64_t nb) {
  size_t bb = ls_dtype_block_bytes(type);
  uint8_t *p = row;
  for (size_t i = 0; i < bb * (size_t)nb; i++) p[i] = (uint8_t)rnd();
  for (int64_t b = 0; b < nb; b++) {
    void *blk = p + (size_t)b * bb;
    uint16_t d = ls_fp32_to_fp16(0.01f + 0.02f * (frand() + 1.0f)), m = ls_fp32_to_fp16(0.05f * frand());
    switch (type) {
    case LS_Q4_1: ((ls_block_q4_1 *)blk)->d = d; ((ls_block_q4_1 *)blk)->m = m; break;
    case LS_Q5_0: ((ls_block_q5_0 *)blk)->d = d; break;
    case LS_Q5_1: ((ls_block_q5_1 *)blk)->d = d; ((ls_block_q5_1 *)blk)->m = m; break;
    case LS_IQ4_NL: ((ls_block_iq4_nl *)blk)->d = d; break;
    case LS_Q2_K: ((ls_block_q2_K *)blk)->d = d; ((ls_block_q2_K *)blk)->dmin = d; break;
    case LS_Q3_K: ((ls_block_q3_K *)blk)->d = d; break;
    case LS_Q4_K: ((ls_block_q4_K *)blk)->d = d; ((ls_block_q4_K *)blk)->dmin = d; break;
    case LS_Q5_K: ((ls_block_q5_K *)blk)->d = d; ((ls_block_q5_K *)blk)->dmin = d; break;
    case LS_Q6_K: ((ls_block_q6_K *)blk)->d = d; break;
    }
  }
}

/* ---- layouts -------------------------------------------------------------- */

START_TEST(test_layout_q4_k) {
  ls_block_q4_K b;
  memset(&b, 0, sizeof b);
  b.d = ls_fp32_to_fp16(1.0f);
  b.dmin = ls_fp32_to_fp16(0.5f);
  /* sub-block 5: scale 37 (= 0b100101), min 50 (= 0b110010) */
  b.scales[9] = (uint8_t)((37 & 15) | (50 & 15) << 4);
  b.scales[1] |= (uint8_t)((37 >> 4) << 6);
  b.scales[5] |= (uint8_t)((50 >> 4) << 6);
  b.qs[32 * 2 + 7] = 0xB0; /* element 32*5 + 7: high nibble of group 2 -> 11 */
  float y[LS_QK_K];
  ls_dequantize_row(LS_Q4_K, &b, y, LS_QK_K);
  ck_assert_float_eq(y[32 * 5 + 7], 37.0f * 11.0f - 0.5f * 50.0f);
  ck_assert_float_eq(y[32 * 5 + 8], -0.5f * 50.0f);
  ck_assert_float_eq(y[0], 0.0f);
}
END_TEST

START_TEST(test_layout_q6_k) {
  ls_block_q6_K b;
  memset(&b, 0, sizeof b);
  b.d = ls_fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j - 8);
  /* element 128 + 96 + 3 = 227: high nibble of ql[64 + 32 + 3], bits 6..7 of qh[32 + 3] */
  b.ql[64 + 32 + 3] = 0x90;
  b.qh[32 + 3] = 0x80; /* top bits 2 -> q = 9 | 2 << 4 = 41 */
  float y[LS_QK_K];
  ls_dequantize_row(LS_Q6_K, &b, y, LS_QK_K);
  ck_assert_float_eq(y[227], 0.5f * (float)(227 / 16 - 8) * (41 - 32));
  ck_assert_float_eq(y[3], 0.5f * -8.0f * -32.0f); /* q = 0 */
}
END_TEST

START_TEST(test_layout_q3_k_q2_k) {
  ls_block_q3_K b3;
  memset(&b3, 0, sizeof b3);
  b3.d = ls_fp32_to_fp16(1.0f);
  /* scale 13 (0..15): low nibble in the high half of scales[5], top bits in scales[9] bits 6..7 */
  b3.scales[5] = 0x70;     /* low 4 bits 7 */
  b3.scales[9] = 3u << 6;  /* top 2 bits 3 -> 55 - 32 = 23 */
  int e = 13 * 16 + 2;     /* element 210: group 1, shift 2 * ((210 % 128) / 32) = 4, byte 32 + 210 % 32 */
  b3.qs[32 + e % 32] = (uint8_t)(2 << 4);
  b3.hmask[e % 32] = (uint8_t)(1u << (e / 32)); /* high bit set: no -4 */
  float y[LS_QK_K];
  ls_dequantize_row(LS_Q3_K, &b3, y, LS_QK_K);
  ck_assert_float_eq(y[e], 23.0f * 2.0f);
  ck_assert_float_eq(y[e + 1], 23.0f * -4.0f);

  ls_block_q2_K b2;
  memset(&b2, 0, sizeof b2);
  b2.d = ls_fp32_to_fp16(2.0f);
  b2.dmin = ls_fp32_to_fp16(1.0f);
  b2.scales[e / 16] = (uint8_t)(5 | 9 << 4);
  b2.qs[32 + e % 32] = (uint8_t)(3 << 4);
  ls_dequantize_row(LS_Q2_K, &b2, y, LS_QK_K);
  ck_assert_float_eq(y[e], 2.0f * 5.0f * 3.0f - 9.0f);
}
END_TEST

START_TEST(test_layout_32) {
  ls_block_q5_1 b;
  memset(&b, 0, sizeof b);
  b.d = ls_fp32_to_fp16(0.25f);
  b.m = ls_fp32_to_fp16(-1.0f);
  b.qs[4] = 0x3A;  /* element 4 low 10, element 20 high 3 */
  b.qh[2] = 0x10;  /* bit 20 */
  float y[LS_QK];
  ls_dequantize_row(LS_Q5_1, &b, y, LS_QK);
  ck_assert_float_eq(y[4], 0.25f * 10.0f - 1.0f);
  ck_assert_float_eq(y[20], 0.25f * (3.0f + 16.0f) - 1.0f);
  ls_block_iq4_nl n;
  memset(&n, 0, sizeof n);
  n.d = ls_fp32_to_fp16(2.0f);
  n.qs[0] = 0xF0;
  ls_dequantize_row(LS_IQ4_NL, &n, y, LS_QK);
  ck_assert_float_eq(y[0], 2.0f * -127.0f);
  ck_assert_float_eq(y[16], 2.0f * 113.0f);
}
END_TEST

/* ---- quantisers ----------------------------------------------------------- */

START_TEST(test_quantisers) {
  int64_t k = 4 * LS_QK_K;
  float *x = malloc(sizeof(float) * k), *y = malloc(sizeof(float) * k);
  for (int64_t i = 0; i < k; i++) x[i] = frand() * (1.0f + (float)(i / 256)) + (i % 97 == 0 ? 3.0f : 0.0f);
  ls_block_q8_K q8k[4];
  ls_quantize_row_q8_K(x, q8k, k);
  ls_kq_dequantize_row(LS_Q8_K, q8k, y, k);
  for (int b = 0; b < 4; b++) {
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int j = 0; j < 16; j++) s += q8k[b].qs[16 * g + j];
      ck_assert_int_eq(s, q8k[b].bsums[g]);
    }
    for (int j = 0; j < LS_QK_K; j++)
      ck_assert_msg(fabsf(y[b * LS_QK_K + j] - x[b * LS_QK_K + j]) <= 0.5001f * fabsf(q8k[b].d), "Q8_K %d", j);
  }
  ls_block_q8_1 q81[4 * 8];
  ls_quantize_row_q8_1(x, q81, k);
  for (int b = 0; b < 32; b++) {
    float d = ls_fp16_to_fp32(q81[b].d), s = 0;
    for (int j = 0; j < LS_QK; j++) {
      /* half a step, plus the fp16 rounding of d (2^-11 relative, times |q| <= 127) */
      ck_assert(fabsf(d * q81[b].qs[j] - x[b * LS_QK + j]) <= 0.57f * d + 1e-6f);
      s += q81[b].qs[j];
    }
    ck_assert(fabsf(ls_fp16_to_fp32(q81[b].s) - s * d) <= 1e-3f * fabsf(s * d) + 1e-6f);
  }
  ls_block_q4_K q4k[4];
  ls_quantize_row_q4_K(x, q4k, k);
  ls_dequantize_row(LS_Q4_K, q4k, y, k);
  for (int b = 0; b < 4; b++) {
    /* half the widest step (d * 63), plus the 6-bit rounding of the scale
     * (<= d/2 per step, times q <= 15) and of the min (<= dmin/2) */
    float d = ls_fp16_to_fp32(q4k[b].d), step = d * (63.0f * 0.5f + 8.0f) + ls_fp16_to_fp32(q4k[b].dmin);
    for (int j = 0; j < LS_QK_K; j++)
      ck_assert_msg(fabsf(y[b * LS_QK_K + j] - x[b * LS_QK_K + j]) <= step, "Q4_K [%d]: %g vs %g (step %g)", j,
                    y[b * LS_QK_K + j], x[b * LS_QK_K + j], step);
  }
  ls_block_q6_K q6k[4];
  ls_quantize_row_q6_K(x, q6k, k);
  ls_dequantize_row(LS_Q6_K, q6k, y, k);
  for (int b = 0; b < 4; b++) {
    /* half a sub-block's step d * scale, plus where the rounded scale clips
     * q at 31: at most 31 * d/2 (the scale's rounding) beyond it; 1% for the
     * float arithmetic */
    float d = ls_fp16_to_fp32(q6k[b].d);
    for (int j = 0; j < LS_QK_K; j++) {
      float step = 1.01f * d * (0.5f * (float)abs(q6k[b].scales[j / 16]) + 15.5f) + 1e-7f;
      ck_assert_msg(fabsf(y[b * LS_QK_K + j] - x[b * LS_QK_K + j]) <= step, "Q6_K [%d]: %g vs %g (step %g)", j,
                    y[b * LS_QK_K + j], x[b * LS_QK_K + j], step);
    }
  }
  free(x);
  free(y);
}
END_TEST

/* ---- matmul --------------------------------------------------------------- */

static void *prepare(const ls_kernels *k, uint32_t type, const float *x, int n, int64_t cols, size_t *stride) {
  size_t b = (k->act_bytes(type, cols) + 63) / 64 * 64;
  ck_assert(b > 0);
  *stride = b;
  void *xa = aligned_alloc(64, b * n);
  for (int t = 0; t < n; t++) k->act_prepare(type, x + t * cols, cols, (char *)xa + b * t);
  return xa;
}

/* The reference activations as floats (what the integer dot products saw). */
static void act_floats(uint32_t type, const void *xa, int64_t cols, float *out) {
  if (type == LS_Q5_0 || type == LS_IQ4_NL) ls_dequantize_row(LS_Q8_0, xa, out, cols);
  else if (type == LS_Q4_1 || type == LS_Q5_1)
    for (int64_t b = 0; b < cols / LS_QK; b++) {
      const ls_block_q8_1 *q = (const ls_block_q8_1 *)xa + b;
      for (int j = 0; j < LS_QK; j++) out[b * LS_QK + j] = ls_fp16_to_fp32(q->d) * q->qs[j];
    }
  else ls_kq_dequantize_row(LS_Q8_K, xa, out, cols);
}

/* Q4_1/Q5_1 take the activations' block sum from Q8_1's s = fp16(d * sum(q))
 * where the dequantised activations give fp16(d) * sum(q): two fp16
 * roundings, so the error allowed grows by |m| * |s| * 2^-10 per block. */
static double q81_sum_rounding(uint32_t type, const void *row, const void *xa, int64_t cols) {
  if (type != LS_Q4_1 && type != LS_Q5_1) return 0;
  double e = 0;
  for (int64_t b = 0; b < cols / LS_QK; b++) {
    uint16_t m = type == LS_Q4_1 ? ((const ls_block_q4_1 *)row)[b].m : ((const ls_block_q5_1 *)row)[b].m;
    e += fabs(ls_fp16_to_fp32(m) * ls_fp16_to_fp32(((const ls_block_q8_1 *)xa)[b].s)) / 1024.0;
  }
  return e;
}

/* A packable matrix (Q4_K, 16 rows or more: the avx2 level packs it at
 * load) in the X16 layout: unpacks to its bytes, and every level still gives
 * the reference's bits yr, for a row range cut inside a group; one token
 * alone and one row at a time too. */
static void check_x16(const ls_mat *w, const float *x, int n, const float *yr) {
  if (!ls_x16_packable(w)) return;
  const size_t bytes = w->row_bytes * (size_t)w->rows;
  char *wp = malloc(bytes), *row = malloc(w->row_bytes);
  memcpy(wp, w->data, bytes);
  ls_mat p = *w;
  p.data = wp;
  ck_assert_int_eq(ls_x16_pack(&p, wp), 0);
  ck_assert_int_eq(p.layout, LS_LAYOUT_X16);
  ck_assert(memcmp(wp, w->data, bytes) != 0); /* the bytes moved */
  for (int64_t r = 0; r < w->rows; r++) {
    ls_x16_unpack_row(&p, r, row);
    ck_assert(memcmp(row, (const char *)w->data + w->row_bytes * (size_t)r, w->row_bytes) == 0);
  }
  const int64_t rows = w->rows;
  float *y = calloc((size_t)n * (size_t)rows, 4), *y1 = calloc((size_t)rows, 4);
  for (int level = LS_KL_REF; level <= LS_KL_MAX; level++) {
    const ls_kernels *k = ls_kernels_level(level);
    if (!k) continue;
    size_t ss;
    void *xs = prepare(k, w->type, x, n, w->cols, &ss);
    const int64_t cut = rows / 3 + 1; /* not a multiple of 8 or 16 */
    memset(y, 0, sizeof(float) * (size_t)n * (size_t)rows);
    k->matmul(&p, xs, ss, n, y, rows, cut, rows);
    k->matmul(&p, xs, ss, n, y, rows, 0, cut);
    ck_assert_msg(memcmp(y, yr, sizeof(float) * (size_t)n * (size_t)rows) == 0,
                  "%s %s X16 rows %lld n %d: not bit-identical to the reference", k->name, ls_dtype_name(w->type),
                  (long long)rows, n);
    for (int t = 0; t < n; t += 1 + n / 3) {
      k->matmul(&p, (char *)xs + ss * t, ss, 1, y1, rows, 0, rows);
      for (int64_t r = rows - 1; r >= 0; r -= 5) k->matmul(&p, (char *)xs + ss * t, ss, 1, y1, 0, r, r + 1);
      ck_assert_msg(memcmp(y1, yr + (size_t)t * (size_t)rows, sizeof(float) * (size_t)rows) == 0,
                    "%s %s X16 one token: not bit-identical to the reference", k->name, ls_dtype_name(w->type));
    }
    free(xs);
  }
  free(y); free(y1); free(row); free(wp);
}

static void check_matmul(uint32_t type, int64_t rows, int64_t cols, int n) {
  const ls_kernels *ref = &ls_kernels_ref;
  size_t rb = ls_dtype_row_bytes(type, cols);
  ck_assert(rb > 0);
  char *wd = malloc(rb * rows);
  float *deq = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n * cols);
  random_blocks(type, wd, rows * (cols / ls_dtype_block_elems(type)));
  for (int64_t r = 0; r < rows; r++) ls_dequantize_row(type, wd + rb * r, deq + r * cols, cols);
  for (int64_t i = 0; i < n * cols; i++) x[i] = frand() * 3.0f;
  ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
  size_t sr;
  void *xr = prepare(ref, type, x, n, cols, &sr);
  float *yr = calloc((size_t)n * rows, 4), *ys = calloc((size_t)n * rows, 4), *xq = malloc(sizeof(float) * cols);
  ref->matmul(&w, xr, sr, n, yr, rows, 0, rows);
  for (int t = 0; t < n; t++) {
    act_floats(type, (char *)xr + sr * t, cols, xq);
    for (int64_t r = 0; r < rows; r++) {
      double exact = 0, bound = 0;
      for (int64_t c = 0; c < cols; c++) {
        exact += (double)deq[r * cols + c] * xq[c];
        bound += fabs((double)deq[r * cols + c] * xq[c]);
      }
      double tol = 1e-5 * bound + q81_sum_rounding(type, wd + rb * r, (char *)xr + sr * t, cols) + 1e-30;
      ck_assert_msg(fabs(yr[t * rows + r] - exact) <= tol, "%s ref rows %lld cols %lld: y[%d][%lld] "
                    "= %.9g, dequantised dot %.9g (bound %g)", ls_dtype_name(type), (long long)rows, (long long)cols,
                    t, (long long)r, (double)yr[t * rows + r], exact, bound);
    }
  }
  for (int level = LS_KL_AVX2; level <= LS_KL_MAX; level++) {
    const ls_kernels *k = ls_kernels_level(level);
    if (!k) continue;
    size_t ss;
    void *xs = prepare(k, type, x, n, cols, &ss);
    ck_assert_int_eq(ss, sr);
    for (int t = 0; t < n; t++)
      ck_assert_msg(memcmp((char *)xs + ss * t, (char *)xr + sr * t, ref->act_bytes(type, cols)) == 0,
                    "%s %s: prepared activations differ", k->name, ls_dtype_name(type));
    int64_t split = rows / 3;
    k->matmul(&w, xs, ss, n, ys, rows, split, rows);
    k->matmul(&w, xs, ss, n, ys, rows, 0, split);
    ck_assert_msg(memcmp(ys, yr, sizeof(float) * n * rows) == 0, "%s %s rows %lld cols %lld n %d: not bit-identical "
                  "to the reference", k->name, ls_dtype_name(type), (long long)rows, (long long)cols, n);
    float *y1 = calloc((size_t)rows, 4);
    for (int t = 0; t < n; t += 1 + n / 3) { /* one token, one row at a time */
      int64_t r = rows - 1;
      k->matmul(&w, (char *)xs + ss * t, ss, 1, y1, 0, r, r + 1);
      ck_assert_msg(memcmp(&y1[r], &ys[t * rows + r], 4) == 0, "%s %s: element depends on the tiling", k->name,
                    ls_dtype_name(type));
    }
    free(y1);
    free(xs);
  }
  check_x16(&w, x, n, yr);
  free(xq); free(yr); free(ys); free(xr); free(x); free(wd); free(deq);
}

START_TEST(test_matmul) {
  uint32_t type = types[_i];
  int k_type = ls_dtype_block_elems(type) == LS_QK_K;
  /* K-quants: 1, 2, 5 and 11 super-blocks (one-token tiles take 4 at a time: none, one group and a tail,
   * two groups and a tail of 3) */
  const int64_t colss_k[] = {256, 512, 1280, 2816}, colss_32[] = {32, 96, 4096 + 32};
  const int64_t *colss = k_type ? colss_k : colss_32;
  const int n_cols = k_type ? 4 : 3;
  const int64_t rowss[] = {1, 3, 17, 67};
  /* tokens: alone and after whole passes (the avx2 Q4_K passes take 1-2 tokens, or up to 8) */
  const int ns[] = {1, 2, 3, 6, 7, 8, 9, 17};
  const int n_ns = (int)(sizeof ns / sizeof ns[0]);
  for (int ci = 0; ci < n_cols; ci++)
    for (int ri = 0; ri < 4; ri++)
      for (int ni = 0; ni < n_ns; ni++) {
        if (colss[ci] > 1000 && (rowss[ri] > 17 || ns[ni] > 9)) continue; /* keep it quick */
        check_matmul(type, rowss[ri], colss[ci], ns[ni]);
      }
  /* the amx level's Q4_K: two 16-token AMX tiles and a tail, rows past a group */
  if (type == LS_Q4_K) check_matmul(type, 37, 512, 40);
}
END_TEST

/* Q8_K activations at every level equal the reference's on blocks that
 * exercise its edges: all zeros; -amax before +amax (the first one sets the
 * sign of the scale); exact halves after scaling (nearest-even); a single
 * non-zero element; tiny and huge magnitudes. */
START_TEST(test_act_q8_k_edges) {
  enum { NB = 6 };
  float x[NB * LS_QK_K];
  for (int i = 0; i < NB * LS_QK_K; i++) x[i] = frand();
  memset(x, 0, sizeof(float) * LS_QK_K); /* block 0: zeros */
  float *b1 = x + LS_QK_K, *b2 = x + 2 * LS_QK_K, *b3 = x + 3 * LS_QK_K;
  b1[7] = -2.0f, b1[9] = 2.0f, b1[200] = 2.0f; /* block 1: -amax first */
  for (int j = 0; j < LS_QK_K; j++) b2[j] = (float)(j % 64 - 32) + 0.5f; /* block 2: halves */
  b2[100] = -127.0f;                                                    /* scale 1: x stays a half */
  memset(b3, 0, sizeof(float) * LS_QK_K);
  b3[255] = -1e-30f; /* block 3: one tiny element, last */
  for (int j = 0; j < LS_QK_K; j++) x[4 * LS_QK_K + j] *= 3e37f; /* block 4: huge */
  const ls_kernels *ref = ls_kernels_level(LS_KL_REF);
  size_t n = ref->act_bytes(LS_Q4_K, NB * LS_QK_K);
  uint8_t *want = malloc(n), *got = malloc(n);
  ref->act_prepare(LS_Q4_K, x, NB * LS_QK_K, want);
  ck_assert_int_eq(((const ls_block_q8_K *)want)[2].qs[0], -32); /* the edges were reached: -31.5 -> -32 */
  ck_assert_int_eq(((const ls_block_q8_K *)want)[2].qs[1], -30); /* -30.5 -> -30 */
  for (int level = LS_KL_AVX2; level <= LS_KL_MAX; level++) {
    const ls_kernels *k = ls_kernels_level(level);
    if (!k) continue;
    memset(got, 0xa5, n);
    k->act_prepare(LS_Q4_K, x, NB * LS_QK_K, got);
    for (int b = 0; b < NB; b++)
      ck_assert_msg(memcmp(got + b * sizeof(ls_block_q8_K), want + b * sizeof(ls_block_q8_K), sizeof(ls_block_q8_K)) == 0,
                    "%s: Q8_K block %d differs from the reference", k->name, b);
  }
  free(want);
  free(got);
}
END_TEST

START_TEST(test_sizes) {
  for (int i = 0; i < N_TYPES; i++) {
    int be = ls_dtype_block_elems(types[i]);
    ck_assert_msg(ls_dtype_supported(types[i]), "%s", ls_dtype_name(types[i]));
    ck_assert_int_eq(ls_dtype_row_bytes(types[i], be * 3), 3 * ls_dtype_block_bytes(types[i]));
    ck_assert_int_eq(ls_dtype_row_bytes(types[i], be + 1), 0);
  }
  ck_assert_str_eq(ls_dtype_name(LS_IQ4_NL), "IQ4_NL");
  ck_assert(!ls_dtype_supported(LS_Q8_K));
  ck_assert(!ls_dtype_supported(23)); /* IQ4_XS */
}
END_TEST

int main(void) {
  Suite *s = suite_create("kquants");
  TCase *tc = tcase_create("kquants");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_sizes);
  tcase_add_test(tc, test_layout_q4_k);
  tcase_add_test(tc, test_layout_q6_k);
  tcase_add_test(tc, test_layout_q3_k_q2_k);
  tcase_add_test(tc, test_layout_32);
  tcase_add_test(tc, test_quantisers);
  tcase_add_test(tc, test_act_q8_k_edges);
  tcase_add_loop_test(tc, test_matmul, 0, N_TYPES);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
