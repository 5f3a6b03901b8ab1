/* Every SIMD kernel level against the scalar reference on awkward sizes.
 *
 * Tolerances (stated, and why):
 * - matmul: |y - y_ref| <= 2e-5 * sum_c |w_rc| |x_tc|. Both sides use the same
 *   quantised weights and (bit-identical) quantised activations, so only the
 *   float summation order differs; its error is a few ulps of sum |w||x|.
 * - Q8_0 activation quantisation: bit-identical to ls_quantize_row_q8_0.
 * - Within a level: the same element is bit-identical whatever the row range
 *   and the number of tokens in the call (what makes threads not matter).
 * - rmsnorm, swiglu: 1e-5 relative per element (vectorised exp is ~2e-7).
 * - softmax, attention: 1e-5 relative to the largest magnitude involved. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "kernels.h"
#include "ls_pool.h"
#include "ls_test.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static const uint32_t types[] = {LS_F32, LS_F16, LS_BF16, LS_Q8_0, LS_Q4_0};
static const int64_t colss[] = {32, 64, 96, 4096 + 32};
static const int64_t rowss[] = {1, 3, 17, 257};
static const int ns[] = {1, 2, 3, 5, 17}; /* tiles of 1 to 4 tokens, a last token alone */

static void quantize_row(uint32_t type, const float *x, void *out, int64_t k) {
  switch (type) {
  case LS_F32: memcpy(out, x, (size_t)k * 4); break;
  case LS_F16: for (int64_t i = 0; i < k; i++) ((uint16_t *)out)[i] = ls_fp32_to_fp16(x[i]); break;
  case LS_BF16: for (int64_t i = 0; i < k; i++) ((uint16_t *)out)[i] = ls_fp32_to_bf16(x[i]); break;
  case LS_Q8_0: ls_quantize_row_q8_0(x, out, k); break;
  case LS_Q4_0: ls_quantize_row_q4_0(x, out, k); break;
  }
}

/* Prepared activations for n tokens at a level: returns the buffer and stride. */
static void *prepare(const ls_kernels *k, uint32_t type, const float *x, int n, int64_t cols, size_t *stride) {
  size_t b = k->act_bytes(type, cols);
  if (b == 0) {
    *stride = (size_t)cols * sizeof(float);
    void *copy = malloc((size_t)n * cols * sizeof(float));
    memcpy(copy, x, (size_t)n * cols * sizeof(float));
    return copy;
  }
  b = (b + 63) / 64 * 64;
  *stride = b;
  void *xa = aligned_alloc(64, b * n);
  for (int t = 0; t < n; t++) k->act_prepare(type, x + t * cols, cols, (char *)xa + b * t);
  return xa;
}

static void check_matmul(const ls_kernels *k, uint32_t type, int64_t rows, int64_t cols, int n) {
  const ls_kernels *ref = &ls_kernels_ref;
  size_t rb = ls_dtype_row_bytes(type, cols);
  char *wd = malloc(rb * rows);
  float *wf = malloc(sizeof(float) * cols), *deq = malloc(sizeof(float) * rows * cols);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) wf[c] = frand() * (1.0f + (float)(r % 5));
    quantize_row(type, wf, wd + rb * r, cols);
    ls_dequantize_row(type, wd + rb * r, deq + r * cols, cols);
  }
  ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
  float *x = malloc(sizeof(float) * n * cols);
  for (int64_t i = 0; i < n * cols; i++) x[i] = frand() * 3.0f;
  size_t sref, ssimd;
  void *xr = prepare(ref, type, x, n, cols, &sref), *xs = prepare(k, type, x, n, cols, &ssimd);
  float *yr = calloc((size_t)n * rows, 4), *ys = calloc((size_t)n * rows, 4), *y1 = calloc((size_t)rows, 4);
  ref->matmul(&w, xr, sref, n, yr, rows, 0, rows);
  /* split the rows unevenly, as threads would */
  int64_t split = rows / 3;
  k->matmul(&w, xs, ssimd, n, ys, rows, split, rows);
  k->matmul(&w, xs, ssimd, n, ys, rows, 0, split);
  /* the activations the reference dot products used (quantised for Q types) */
  float *xq = malloc(sizeof(float) * cols);
  for (int t = 0; t < n; t++) {
    if (type == LS_Q8_0 || type == LS_Q4_0)
      ls_dequantize_row(LS_Q8_0, (char *)xr + sref * t, xq, cols);
    else
      memcpy(xq, x + t * cols, sizeof(float) * cols);
    for (int64_t r = 0; r < rows; r++) {
      double bound = 0;
      for (int64_t c = 0; c < cols; c++) bound += fabs((double)deq[r * cols + c] * xq[c]);
      double d = fabs((double)ys[t * rows + r] - yr[t * rows + r]);
      ck_assert_msg(d <= 2e-5 * bound + 1e-30, "%s %s rows %lld cols %lld n %d: y[%d][%lld] = %g, ref %g (bound %g)",
                    k->name, ls_dtype_name(type), (long long)rows, (long long)cols, n, t, (long long)r,
                    (double)ys[t * rows + r], (double)yr[t * rows + r], bound);
    }
    /* a single-token call (matrix-vector), one row at a time and all rows at
     * once, gives the very same bits as the matrix-matrix call: the batched
     * engine's contract (a row's logits do not depend on the batch) */
    for (int64_t r = 0; r < rows; r++)
      k->matmul(&w, (char *)xs + ssimd * t, ssimd, 1, y1, rows, r, r + 1);
    for (int64_t r = 0; r < rows; r++)
      ck_assert_msg(memcmp(&y1[r], &ys[t * rows + r], 4) == 0, "%s %s: element (%d,%lld) depends on the tiling",
                    k->name, ls_dtype_name(type), t, (long long)r);
    memset(y1, 0, sizeof(float) * (size_t)rows);
    k->matmul(&w, (char *)xs + ssimd * t, ssimd, 1, y1, rows, 0, rows);
    for (int64_t r = 0; r < rows; r++)
      ck_assert_msg(memcmp(&y1[r], &ys[t * rows + r], 4) == 0, "%s %s: element (%d,%lld) depends on the tiling",
                    k->name, ls_dtype_name(type), t, (long long)r);
  }
  free(xq); free(yr); free(ys); free(y1); free(xr); free(xs); free(x); free(wd); free(wf); free(deq);
}

static const ls_kernels *level_or_skip(int level) {
  const ls_kernels *k = ls_kernels_level(level);
  return k;
}

START_TEST(test_matmul) {
  const ls_kernels *k = level_or_skip(_i);
  if (!k) return; /* this CPU lacks the level: nothing to compare */
  for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
    for (size_t ci = 0; ci < sizeof colss / sizeof *colss; ci++)
      for (size_t ri = 0; ri < sizeof rowss / sizeof *rowss; ri++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
          /* the widest rows with the most tokens only for one row count, to keep it quick */
          if (colss[ci] > 1000 && rowss[ri] > 17 && ns[ni] > 2) continue;
          check_matmul(k, types[ti], rowss[ri], colss[ci], ns[ni]);
        }
  /* F32 widths that are not a multiple of the vector (stories260K has 172) */
  check_matmul(k, LS_F32, 5, 172, 3);
  check_matmul(k, LS_F32, 5, 172, 20);
  check_matmul(k, LS_F32, 17, 64, 4); /* short rows: 4 x 4 tiles with 4 tokens */
  check_matmul(k, LS_F32, 9, 172, 3); /* and 2-row tiles with 2-3 tokens */
  check_matmul(k, LS_F32, 3, 8, 9);
  check_matmul(k, LS_F32, 7, 8, 2);
  check_matmul(k, LS_F16, 4, 44, 2);
  /* Q4_0 and Q8_0 rows wider than the avx512 pipelined tile's scale buffer
   * (32768 columns) take q_tile, with the same bits for every token count */
  check_matmul(k, LS_Q4_0, 3, 32768 + 160, 3);
  check_matmul(k, LS_Q8_0, 3, 32768 + 160, 5);
  /* the amx level's 16-token AMX tiles, more than one, and VNNI for the
   * tail, against every token alone (check_matmul's last checks) */
  check_matmul(k, LS_Q8_0, 37, 96, 40);
  check_matmul(k, LS_Q4_0, 37, 96, 40);
}
END_TEST

/* The X16 layout (ls_model.h) gives the same bits as the rows it was packed
 * from, at every level, for any row range and token count, and unpacks to
 * the very bytes it was packed from. */
static void check_x16(const ls_kernels *k, uint32_t type, int64_t rows, int64_t cols, int n) {
  size_t rb = ls_dtype_row_bytes(type, cols);
  char *wd = malloc(rb * rows), *wp = malloc(rb * rows), *row = malloc(rb);
  float *wf = malloc(sizeof(float) * cols), *x = malloc(sizeof(float) * n * cols);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) wf[c] = frand() * (1.0f + (float)(r % 3));
    quantize_row(type, wf, wd + rb * r, cols);
  }
  for (int64_t i = 0; i < n * cols; i++) x[i] = frand() * 2.0f;
  memcpy(wp, wd, rb * rows);
  ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
  ls_mat p = w;
  p.data = wp;
  ck_assert(ls_x16_packable(&p));
  ck_assert_int_eq(ls_x16_pack(&p, wp), 0);
  ck_assert_int_eq(p.layout, LS_LAYOUT_X16);
  ck_assert(memcmp(wp, wd, rb * rows) != 0); /* the bytes moved */
  for (int64_t r = 0; r < rows; r++) {
    ls_x16_unpack_row(&p, r, row);
    ck_assert_msg(memcmp(row, wd + rb * r, rb) == 0, "%s row %lld does not unpack to its bytes", ls_dtype_name(type),
                  (long long)r);
  }
  size_t stride;
  void *xa = prepare(k, type, x, n, cols, &stride);
  float *a = calloc((size_t)n * rows, 4), *b = calloc((size_t)n * rows, 4);
  k->matmul(&w, xa, stride, n, a, rows, 0, rows);
  int64_t cut = rows / 3 + 1; /* not a multiple of 16 */
  k->matmul(&p, xa, stride, n, b, rows, cut, rows);
  k->matmul(&p, xa, stride, n, b, rows, 0, cut);
  for (int64_t i = 0; i < n * rows; i++)
    ck_assert_msg(memcmp(&a[i], &b[i], 4) == 0, "%s %s rows %lld n %d: element %lld differs packed (%g vs %g)",
                  k->name, ls_dtype_name(type), (long long)rows, n, (long long)i, (double)b[i], (double)a[i]);
  free(a); free(b); free(xa); free(x); free(wf); free(row); free(wp); free(wd);
}

START_TEST(test_x16_layout) {
  const ls_kernels *k = ls_kernels_level(_i);
  if (!k) return;
  const uint32_t qtypes[] = {LS_Q8_0, LS_Q4_0};
  const int64_t xrows[] = {16, 37, 64};
  const int xns[] = {1, 4, 16, 21};
  for (int ti = 0; ti < 2; ti++)
    for (int ri = 0; ri < 3; ri++)
      for (int ni = 0; ni < 4; ni++) check_x16(k, qtypes[ti], xrows[ri], ri == 1 ? 4096 + 32 : 96, xns[ni]);
  /* what is not packed: too few rows, another type */
  ls_mat few = {.type = LS_Q8_0, .rows = 15, .cols = 32, .row_bytes = 34};
  ls_mat f32 = {.type = LS_F32, .rows = 64, .cols = 32, .row_bytes = 128};
  ck_assert(!ls_x16_packable(&few) && !ls_x16_packable(&f32));
}
END_TEST

/* The integer sums at their largest: Q8_0 weights -128 and 127, Q4_0 nibbles
 * all 15 or all 0, activations quantised to +-127 (the AVX2 level sums a
 * Q4_0 block's products in int16: 8 * 2 * 15 * 127 = 30480 must not
 * saturate, nor one Q8_0 pair, 2 * 128 * 127). Every level against a
 * double-precision sum of the same quantised values, rows and packed (X16)
 * alike, with the same bits both ways. */
static void check_extreme(const ls_kernels *k, uint32_t type, int64_t rows, int n) {
  const int64_t cols = 96, nb = cols / LS_QK;
  const size_t rb = ls_dtype_row_bytes(type, cols);
  uint8_t *wd = malloc(rb * rows), *wp = malloc(rb * rows);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < nb; b++) {
      uint8_t *blk = wd + rb * r + (size_t)b * (rb / nb);
      uint16_t d = ls_fp32_to_fp16(0.25f * (float)(1 + r % 3));
      memcpy(blk, &d, 2);
      if (type == LS_Q8_0) memset(blk + 2, (r + b) % 2 ? 0x80 : 0x7f, 32); /* -128 or 127 */
      else memset(blk + 2, (r + b) % 2 ? 0x00 : 0xff, 16);                 /* -8 or 7 */
    }
  float *x = malloc(sizeof(float) * n * cols), *deq = malloc(sizeof(float) * cols), *xq = malloc(sizeof(float) * cols);
  for (int t = 0; t < n; t++)
    for (int64_t c = 0; c < cols; c++) x[t * cols + c] = (t + c / LS_QK) % 2 ? -1.0f : 1.0f; /* quants -127 or 127 */
  size_t stride, sref;
  void *xa = prepare(k, type, x, n, cols, &stride), *xr = prepare(&ls_kernels_ref, type, x, n, cols, &sref);
  float *y = calloc((size_t)n * rows, 4), *yp = calloc((size_t)n * rows, 4);
  ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
  k->matmul(&w, xa, stride, n, y, rows, 0, rows);
  memcpy(wp, wd, rb * rows);
  ls_mat p = w;
  p.data = wp;
  ck_assert_int_eq(ls_x16_pack(&p, wp), 0);
  k->matmul(&p, xa, stride, n, yp, rows, 0, rows);
  for (int t = 0; t < n; t++) {
    ls_dequantize_row(LS_Q8_0, (char *)xr + sref * t, xq, cols);
    for (int64_t r = 0; r < rows; r++) {
      ls_dequantize_row(type, wd + rb * r, deq, cols);
      double want = 0, bound = 0;
      for (int64_t c = 0; c < cols; c++) {
        want += (double)deq[c] * xq[c];
        bound += fabs((double)deq[c] * xq[c]);
      }
      const float got = y[t * rows + r];
      ck_assert_msg(fabs(got - want) <= 2e-5 * bound, "%s %s extreme quants y[%d][%lld] = %g, want %g", k->name,
                    ls_dtype_name(type), t, (long long)r, (double)got, want);
      ck_assert_msg(memcmp(&got, &yp[t * rows + r], 4) == 0, "%s %s extreme quants: packed differs", k->name,
                    ls_dtype_name(type));
    }
  }
  free(y); free(yp); free(xa); free(xr); free(x); free(deq); free(xq); free(wd); free(wp);
}

START_TEST(test_extreme_quants) {
  const ls_kernels *k = ls_kernels_level(_i);
  if (!k) return;
  const int xns[] = {1, 2, 5, 17};
  for (int i = 0; i < 4; i++) {
    check_extreme(k, LS_Q8_0, 37, xns[i]);
    check_extreme(k, LS_Q4_0, 37, xns[i]);
  }
}
END_TEST

/* The avx2 level computes Q8_0 and Q4_0 in the amx level's block order, 8
 * rows to a vector where that one has 16: the same bits (kernels_avx2.c).
 * Only where the CPU has both. */
START_TEST(test_avx2_amx_same_bits) {
  const ls_kernels *a2 = ls_kernels_level(LS_KL_AVX2), *amx = ls_kernels_level(LS_KL_AMX);
  if (!a2 || !amx) return; /* this CPU lacks AMX: nothing to compare */
  const uint32_t qtypes[] = {LS_Q8_0, LS_Q4_0};
  const int64_t rows = 37, cols = 4096 + 32;
  const int n = 21;
  for (int ti = 0; ti < 2; ti++) {
    const uint32_t type = qtypes[ti];
    const size_t rb = ls_dtype_row_bytes(type, cols);
    char *wd = malloc(rb * rows);
    float *wf = malloc(sizeof(float) * cols), *x = malloc(sizeof(float) * n * cols);
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t c = 0; c < cols; c++) wf[c] = frand() * (1.0f + (float)(r % 4));
      quantize_row(type, wf, wd + rb * r, cols);
    }
    for (int64_t i = 0; i < n * cols; i++) x[i] = frand() * 2.0f;
    ls_mat w = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
    size_t s2, s3;
    void *x2 = prepare(a2, type, x, n, cols, &s2), *x3 = prepare(amx, type, x, n, cols, &s3);
    float *y2 = calloc((size_t)n * rows, 4), *y3 = calloc((size_t)n * rows, 4);
    a2->matmul(&w, x2, s2, n, y2, rows, 0, rows);
    amx->matmul(&w, x3, s3, n, y3, rows, 0, rows);
    ck_assert_msg(memcmp(y2, y3, sizeof(float) * (size_t)n * rows) == 0, "%s: avx2 and amx differ",
                  ls_dtype_name(type));
    free(y2); free(y3); free(x2); free(x3); free(x); free(wf); free(wd);
  }
}
END_TEST

START_TEST(test_quantize) {
  const ls_kernels *k = level_or_skip(_i);
  if (!k) return;
  int64_t n = 32 * 70;
  float *x = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) x[i] = frand() * 10.0f;
  /* exact halves after scaling: block with amax 127 has d = 1, so x.5 rounds away */
  for (int j = 0; j < 32; j++) x[j] = (j == 0) ? 127.0f : (float)(j - 16) + 0.5f;
  for (int j = 32; j < 64; j++) x[j] = 0.0f; /* all-zero block */
  for (int j = 64; j < 96; j++) x[j] = -1e-3f * (float)j;
  ls_block_q8_0 *a = malloc(sizeof *a * (n / 32)), *b = malloc(sizeof *b * (n / 32));
  ls_quantize_row_q8_0(x, a, n);
  k->quantize_q8_0(x, b, n);
  ck_assert_msg(memcmp(a, b, sizeof *a * (n / 32)) == 0, "%s: Q8_0 quantisation differs from the reference", k->name);
  ck_assert_int_eq(a[0].qs[1], -15); /* -14.5 -> -15 (away from zero) */
  free(x); free(a); free(b);
}
END_TEST

static void assert_close(const char *what, const ls_kernels *k, const float *a, const float *b, int n, double rel,
                         int scale_by_max) {
  double mx = 0;
  for (int i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
  for (int i = 0; i < n; i++) {
    double tol = rel * (scale_by_max ? mx : fabs(b[i])) + 1e-30;
    ck_assert_msg(fabs((double)a[i] - b[i]) <= tol, "%s %s [%d of %d]: %.9g vs ref %.9g", k->name, what, i, n,
                  (double)a[i], (double)b[i]);
  }
}

START_TEST(test_elementwise) {
  const ls_kernels *k = level_or_skip(_i), *ref = &ls_kernels_ref;
  if (!k) return;
  const int sizes[] = {1, 8, 15, 16, 17, 64, 172, 2048, 5632};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    float *x = malloc(4 * n), *w = malloc(4 * n), *a = malloc(4 * n), *b = malloc(4 * n), *u = malloc(4 * n);
    for (int i = 0; i < n; i++) {
      x[i] = frand() * 4;
      w[i] = frand() + 1.5f;
      u[i] = frand() * 2;
    }
    ref->rmsnorm(a, x, w, n, 1e-5f);
    k->rmsnorm(b, x, w, n, 1e-5f);
    assert_close("rmsnorm", k, b, a, n, 1e-5, 0);
    memcpy(a, x, 4 * n);
    memcpy(b, x, 4 * n);
    for (int i = 0; i < n; i++) a[i] = b[i] = x[i] * 10; /* spread: some probabilities tiny */
    ref->softmax(a, n);
    k->softmax(b, n);
    assert_close("softmax", k, b, a, n, 1e-5, 1);
    ref->swiglu(a, x, u, n);
    k->swiglu(b, x, u, n);
    assert_close("swiglu", k, b, a, n, 1e-5, 0);
    free(x); free(w); free(a); free(b); free(u);
  }
  /* RoPE: 4 heads of 64 (rope over all, and over the first 32), positions 0..300 */
  float q[256], qa[256], qb[256];
  for (int i = 0; i < 256; i++) q[i] = frand();
  const int rope_dims[] = {64, 32};
  for (int rd = 0; rd < 2; rd++)
    for (int pos = 0; pos < 300; pos += 37) {
      memcpy(qa, q, sizeof q);
      memcpy(qb, q, sizeof q);
      ref->rope(qa, 3, qa + 192, 1, 64, rope_dims[rd], pos, 10000.0f);
      k->rope(qb, 3, qb + 192, 1, 64, rope_dims[rd], pos, 10000.0f);
      assert_close("rope", k, qb, qa, 256, 1e-5, 1);
    }
}
END_TEST

START_TEST(test_attention) {
  const ls_kernels *k = level_or_skip(_i), *ref = &ls_kernels_ref;
  if (!k) return;
  const int hds[] = {8, 16, 24, 64, 128};
  const int nps[] = {1, 7, 33, 300};
  int64_t stride = 4 * 128 + 8; /* as if several KV heads interleave */
  float *kc = malloc(sizeof(float) * 300 * stride), *vc = malloc(sizeof(float) * 300 * stride);
  for (int64_t i = 0; i < 300 * stride; i++) {
    kc[i] = frand() * 2;
    vc[i] = frand();
  }
  float q[128], oa[128], ob[128], att[300];
  for (int i = 0; i < 128; i++) q[i] = frand() * 2;
  for (size_t h = 0; h < sizeof hds / sizeof *hds; h++)
    for (size_t p = 0; p < sizeof nps / sizeof *nps; p++) {
      float scale = 1.0f / sqrtf((float)hds[h]);
      ref->attention(oa, q, kc + 3, vc + 3, stride, nps[p], hds[h], scale, att);
      k->attention(ob, q, kc + 3, vc + 3, stride, nps[p], hds[h], scale, att);
      /* outputs are convex combinations of v (|v| <= 1): absolute 1e-5 */
      for (int i = 0; i < hds[h]; i++)
        ck_assert_msg(fabsf(oa[i] - ob[i]) <= 1e-5f, "%s attention hd %d n_pos %d [%d]: %g vs %g", k->name, hds[h],
                      nps[p], i, (double)ob[i], (double)oa[i]);
    }
  free(kc);
  free(vc);
}
END_TEST

/* attention_rows: every query's output bit-identical to `attention` on it
 * alone (a prefill equals the same rows decoded one by one), for 1..16
 * queries, positions not in order, a head that takes it (8, 16) and ones it
 * declines (returns 0 and writes nothing). */
START_TEST(test_attention_rows) {
  const ls_kernels *k = level_or_skip(_i);
  if (!k || !k->attention_rows) return;
  enum { NQ = LS_ATTN_ROWS, HD_MAX = 24, NPOS = 300 };
  int64_t stride = 3 * HD_MAX + 5, qs = 2 * HD_MAX + 3;
  float *kc = malloc(sizeof(float) * NPOS * stride), *vc = malloc(sizeof(float) * NPOS * stride);
  float *att = aligned_alloc(64, sizeof(float) * NQ * NPOS);
  float q[NQ * (2 * HD_MAX + 3)], o_rows[NQ * (2 * HD_MAX + 3)], o_one[HD_MAX], one_att[NPOS];
  for (int64_t i = 0; i < NPOS * stride; i++) {
    kc[i] = frand() * 2;
    vc[i] = frand();
  }
  for (int i = 0; i < NQ * qs; i++) q[i] = frand() * 2;
  const int hds[] = {8, 16, 24};
  const int n_qs[] = {1, 2, 5, 16};
  for (size_t h = 0; h < sizeof hds / sizeof *hds; h++)
    for (size_t c = 0; c < sizeof n_qs / sizeof *n_qs; c++) {
      int n_q = n_qs[c], n_pos[NQ];
      for (int r = 0; r < n_q; r++) n_pos[r] = 1 + (r * 97 + 13 * (int)c) % NPOS; /* not in order */
      float scale = 1.0f / sqrtf((float)hds[h]);
      for (int i = 0; i < NQ * qs; i++) o_rows[i] = -7.0f;
      int took = k->attention_rows(o_rows, qs, q, qs, n_pos, n_q, kc + 2, vc + 2, stride, hds[h], scale, att);
      ck_assert_int_eq(took, hds[h] == 8 || hds[h] == 16);
      for (int r = 0; r < n_q; r++) {
        k->attention(o_one, q + r * qs, kc + 2, vc + 2, stride, n_pos[r], hds[h], scale, one_att);
        for (int i = 0; i < hds[h]; i++)
          if (took)
            ck_assert_msg(memcmp(&o_rows[r * qs + i], &o_one[i], sizeof(float)) == 0,
                          "%s attention_rows hd %d, query %d of %d (n_pos %d) [%d]: %a vs %a alone", k->name, hds[h],
                          r, n_q, n_pos[r], i, (double)o_rows[r * qs + i], (double)o_one[i]);
          else
            ck_assert_msg(o_rows[r * qs + i] == -7.0f, "%s attention_rows hd %d declined but wrote", k->name, hds[h]);
        for (int i = hds[h]; i < qs; i++) /* nothing outside the head */
          ck_assert_msg(o_rows[r * qs + i] == -7.0f, "%s attention_rows hd %d wrote past the head", k->name, hds[h]);
      }
    }
  free(kc);
  free(vc);
  free(att);
}
END_TEST

/* The AVX-512 level's two ways of streaming weight rows (ls_kernels.streams)
 * give the same bits for every type, width, row range and token count. */
START_TEST(test_streams_same_bits) {
  const ls_kernels *pf = &ls_kernels_avx512, *plain = &ls_kernels_avx512_plain;
  if (!ls_kernels_level(LS_KL_AVX512)) return; /* this CPU lacks AVX-512 */
  ck_assert_str_eq(pf->streams, "prefetch");
  ck_assert_str_eq(plain->streams, "plain");
  const uint32_t all[] = {LS_F32, LS_F16, LS_BF16, LS_Q8_0, LS_Q4_0, LS_Q4_K, LS_Q6_K};
  const int64_t widths[] = {256, 512 + 256, 2048, 5632};
  const int counts[] = {1, 2, 3, 4, 5, 9};
  const int64_t rows = 37;
  for (size_t ti = 0; ti < sizeof all / sizeof *all; ti++)
    for (size_t ci = 0; ci < sizeof widths / sizeof *widths; ci++) {
      int64_t cols = widths[ci];
      size_t rb = ls_dtype_row_bytes(all[ti], cols);
      char *wd = malloc(rb * rows);
      float *wf = malloc(sizeof(float) * cols), *x = malloc(sizeof(float) * 9 * cols);
      for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) wf[c] = frand();
        ls_quantize_row(all[ti], wf, wd + rb * r, cols);
      }
      for (int64_t i = 0; i < 9 * cols; i++) x[i] = frand() * 2.0f;
      ls_mat w = {.type = all[ti], .rows = rows, .cols = cols, .row_bytes = rb, .data = wd};
      size_t stride;
      void *xa = prepare(pf, all[ti], x, 9, cols, &stride);
      float *a = calloc((size_t)9 * rows, 4), *b = calloc((size_t)9 * rows, 4);
      for (size_t ni = 0; ni < sizeof counts / sizeof *counts; ni++) {
        int n = counts[ni];
        pf->matmul(&w, xa, stride, n, a, rows, 0, rows);
        plain->matmul(&w, xa, stride, n, b, rows, 0, 11);
        plain->matmul(&w, xa, stride, n, b, rows, 11, rows);
        ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)n * rows) == 0, "%s %lld columns, %d tokens: plain streams differ",
                      ls_dtype_name(all[ti]), (long long)cols, n);
      }
      free(a); free(b); free(xa); free(x); free(wf); free(wd);
    }
}
END_TEST

START_TEST(test_dispatch) {
  ck_assert_ptr_nonnull(ls_kernels_get());
  ck_assert_ptr_eq(ls_kernels_level(LS_KL_REF), &ls_kernels_ref);
  ck_assert_ptr_null(ls_kernels_level(99));
  setenv("LS_KERNELS", "ref", 1);
  ck_assert_str_eq(ls_kernels_get()->name, "ref");
  unsetenv("LS_KERNELS");
  if (ls_kernels_level(LS_KL_AVX512)) { /* LS_STREAMS picks the AVX-512 table's streams */
    setenv("LS_STREAMS", "plain", 1);
    ck_assert_ptr_eq(ls_kernels_level(LS_KL_AVX512), &ls_kernels_avx512_plain);
    setenv("LS_STREAMS", "prefetch", 1);
    ck_assert_ptr_eq(ls_kernels_level(LS_KL_AVX512), &ls_kernels_avx512);
    unsetenv("LS_STREAMS");
  }
  if (ls_kernels_level(LS_KL_AMX)) { /* the CPU has AMX-INT8 and Linux granted the tiles */
    ck_assert_str_eq(ls_kernels_level(LS_KL_AMX)->name, "amx");
    ck_assert_ptr_nonnull(ls_kernels_level(LS_KL_AMX)->pack);
    ck_assert_str_eq(ls_kernels_get()->name, "amx");
    setenv("LS_KERNELS", "avx512", 1);
    ck_assert_str_eq(ls_kernels_get()->name, "avx512");
    unsetenv("LS_KERNELS");
  }
}
END_TEST

/* ---- thread pool ---------------------------------------------------------- */

typedef struct pool_arg {
  atomic_int *hits;
  int *who;
  int n_threads;
  atomic_int bad_thread;
} pool_arg;

static void pool_fn(void *v, int task, int thread) {
  pool_arg *a = v;
  atomic_fetch_add(&a->hits[task], 1);
  a->who[task] = thread;
  if (thread < 0 || thread >= a->n_threads) atomic_store(&a->bad_thread, 1);
}

START_TEST(test_pool) {
  /* every task runs exactly once, across many runs (including more tasks
   * than one run can count, 70000), for 1, 2 and 3 threads */
  const int sizes[] = {1, 2, 3, 17, 1000, 70000};
  int n_max = 70000;
  atomic_int *hits = malloc(sizeof *hits * n_max);
  int *who = malloc(sizeof *who * n_max);
  for (int th = 1; th <= 3; th++) {
    ls_pool *p;
    ls_err err = {0};
    ck_assert_int_eq(ls_pool_new(th, &p, &err), LS_OK);
    ck_assert_int_eq(ls_pool_n_threads(p), th);
    for (int rep = 0; rep < 60; rep++) {
      int n = sizes[rep % 6];
      pool_arg a = {.hits = hits, .who = who, .n_threads = th};
      for (int i = 0; i < n; i++) atomic_store(&hits[i], 0);
      ls_pool_run(p, pool_fn, &a, n);
      for (int i = 0; i < n; i++) ck_assert_msg(atomic_load(&hits[i]) == 1, "%d threads: task %d of %d ran %d times", th, i, n, atomic_load(&hits[i]));
      ck_assert(!atomic_load(&a.bad_thread));
    }
    ls_pool_free(p);
  }
  ls_pool *p;
  ls_err err = {0};
  ck_assert_int_eq(ls_pool_new(100000, &p, &err), LS_EINVAL);
  free(hits);
  free(who);
}
END_TEST

START_TEST(test_pool_spans) {
  /* spans: at most threads x LS_POOL_SPANS_PER_THREAD, never more than the
   * chunks; together they cover every chunk once, in order, none empty */
  const int chunks[] = {1, 2, 7, 8, 9, 64, 177, 1000};
  for (int th = 1; th <= 3; th++) {
    ls_pool *p;
    ls_err err = {0};
    ck_assert_int_eq(ls_pool_new(th, &p, &err), LS_OK);
    for (int i = 0; i < 8; i++) {
      int n = chunks[i], spans = ls_pool_spans(p, n);
      int want = th * LS_POOL_SPANS_PER_THREAD < n ? th * LS_POOL_SPANS_PER_THREAD : n;
      ck_assert_msg(spans == want, "%d threads, %d chunks: %d spans, want %d", th, n, spans, want);
      int next = 0;
      for (int s = 0; s < spans; s++) {
        int c0, c1;
        ls_pool_span(s, spans, n, &c0, &c1);
        ck_assert_msg(c0 == next && c1 > c0, "%d chunks, span %d of %d: [%d, %d) after %d", n, s, spans, c0, c1, next);
        next = c1;
      }
      ck_assert_int_eq(next, n);
    }
    ls_pool_free(p);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("kernels");
  TCase *tc = tcase_create("levels");
  tcase_set_timeout(tc, 600);
  /* loop index = level: 1 avx2, 2 avx512, 3 amx (skipped inside if the CPU lacks it) */
  tcase_add_loop_test(tc, test_quantize, LS_KL_REF, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_matmul, LS_KL_AVX2, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_elementwise, LS_KL_AVX2, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_attention, LS_KL_AVX2, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_attention_rows, LS_KL_AVX2, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_x16_layout, LS_KL_REF, LS_KL_MAX + 1);
  tcase_add_loop_test(tc, test_extreme_quants, LS_KL_REF, LS_KL_MAX + 1);
  tcase_add_test(tc, test_avx2_amx_same_bits);
  tcase_add_test(tc, test_streams_same_bits);
  tcase_add_test(tc, test_dispatch);
  tcase_add_test(tc, test_pool);
  tcase_add_test(tc, test_pool_spans);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
