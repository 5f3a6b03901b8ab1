/* AVX2/FMA/F16C kernels (for x86-64 CPUs without AVX-512).
 *
 * Quantised matmuls (Q8_0, Q4_0 weights) use llama.cpp's integer dot
 * product: maddubs needs an unsigned operand, so |w| is multiplied with
 * sign(w) * x (exact), pairs of int16 are summed with madd, and each block's
 * 8 int32 lanes are converted to float and scaled by s = d_w * d_x.
 * Activations are quantised to Q8_0 once per matmul (bit-identical to
 * ls_quantize_row_q8_0) into this level's layout: the nb blocks' 32-byte
 * quants, then their scales as f32 (no fp16 conversion per row).
 *
 * Reduction order of one output element (r, t), the same in every tile, so
 * the result does not depend on the row range, the token count or the other
 * tokens of the call: blocks go in pairs (b, b+1): v = f_b * s_b;
 * v = fma(f_b+1, s_b+1, v); acc += v (8 lanes); a last odd block adds
 * f_b * s_b alone; then the 8 lanes are summed as (lo128 + hi128), then the
 * upper pair onto the lower, then lane 1 onto lane 0. Pairing halves the
 * length of the dependent add chain (one add per 68 bytes of Q8_0), which
 * keeps a single row stream from being latency bound.
 *
 * Tiles: one row x up to 4 tokens. One row at a time is one sequential
 * stream per thread (what the hardware prefetcher follows best; the rows of
 * a 32-row chunk are contiguous), and the row's weights, loaded and made
 * absolute once per block, serve up to 4 tokens from registers, so a small
 * batch reads the weights from memory once (a second token tile finds the
 * 32-row chunk in L2).
 *
 * Float weights (F32, F16, BF16): 4 accumulators per element, column group
 * g = c/8 going to accumulator g % 4 (a short group at the end zero-padded),
 * summed as (a0 + a1) + (a2 + a3) and then lanes as above; tiles of one row
 * x up to 2 tokens. Norms, softmax, SwiGLU, RoPE and attention use the
 * scalar reference (they are a small share of the time). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "kernels_tile.h"
#include "kquants_kernels.h"

#define AI static inline __attribute__((always_inline))
#define TQ 4 /* tokens per quantised tile */
#define TF 2 /* tokens per float tile */

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }

/* Prepared activations: int8 q[nb][32], then float d[nb]. */
static size_t a2_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  return is_quant(wtype) ? (size_t)(cols / LS_QK) * (LS_QK + sizeof(float)) : 0;
}

static void a2_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_kq_is_type(wtype)) {
    ls_kq_act_prepare(wtype, x, cols, xa);
    return;
  }
  if (!is_quant(wtype)) return;
  int64_t nb = cols / LS_QK;
  int8_t *q = xa;
  float *d = (float *)(q + nb * LS_QK);
  for (int64_t b = 0; b < nb; b++) {
    ls_block_q8_0 blk;
    ls_quantize_row_q8_0(x + b * LS_QK, &blk, LS_QK);
    memcpy(q + b * LS_QK, blk.qs, LS_QK);
    d[b] = ls_fp16_to_fp32(blk.d);
  }
}

/* Block b of a row as 32 signed bytes; *d its scale. */
AI __m256i load_wblock(const int q4, const void *row, int64_t b, float *d) {
  if (q4) {
    const ls_block_q4_0 *w = (const ls_block_q4_0 *)row + b;
    *d = _cvtsh_ss(w->d);
    __m128i v = _mm_loadu_si128((const __m128i *)w->qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
  }
  const ls_block_q8_0 *w = (const ls_block_q8_0 *)row + b;
  *d = _cvtsh_ss(w->d);
  return _mm256_loadu_si256((const __m256i *)w->qs);
}

/* The block's 8 int32 lanes of sum w*x, as floats. wa = |w|. */
AI __m256 block_dot(__m256i wv, __m256i wa, const int8_t *xq) {
  __m256i xs = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)xq), wv);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wa, xs), _mm256_set1_epi16(1)));
}

AI float hsum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* y[t0+t][r] for one row r of a quantised matrix and T tokens. */
AI void q_tile(const int T, const int q4, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y,
               int64_t ldy) {
  const int64_t nb = w->cols / LS_QK;
  const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
  const int8_t *xq[TQ];
  const float *xd[TQ];
  __m256 acc[TQ];
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    xq[t] = (const int8_t *)((const char *)xa + (size_t)(t0 + t) * xs);
    xd[t] = (const float *)(xq[t] + nb * LS_QK);
    acc[t] = _mm256_setzero_ps();
  }
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    float d0, d1;
    __m256i w0 = load_wblock(q4, row, b, &d0), w1 = load_wblock(q4, row, b + 1, &d1);
    __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
    __m256 dw0 = _mm256_set1_ps(d0), dw1 = _mm256_set1_ps(d1);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      __m256 v = _mm256_mul_ps(block_dot(w0, a0, xq[t] + b * LS_QK), _mm256_mul_ps(dw0, _mm256_broadcast_ss(xd[t] + b)));
      v = _mm256_fmadd_ps(block_dot(w1, a1, xq[t] + (b + 1) * LS_QK),
                          _mm256_mul_ps(dw1, _mm256_broadcast_ss(xd[t] + b + 1)), v);
      acc[t] = _mm256_add_ps(acc[t], v);
    }
  }
  if (b < nb) {
    float d0;
    __m256i w0 = load_wblock(q4, row, b, &d0), a0 = _mm256_sign_epi8(w0, w0);
    __m256 dw0 = _mm256_set1_ps(d0);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
      acc[t] = _mm256_add_ps(
          acc[t], _mm256_mul_ps(block_dot(w0, a0, xq[t] + b * LS_QK), _mm256_mul_ps(dw0, _mm256_broadcast_ss(xd[t] + b))));
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) y[(int64_t)(t0 + t) * ldy + r] = hsum8(acc[t]);
}

/* 8 weights from column c as floats (n < 8: the rest zero). */
AI __m256 load_wf(const int type, const void *row, int64_t c, int n) {
  if (n == 8) {
    if (type == LS_F32) return _mm256_loadu_ps((const float *)row + c);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
    if (type == LS_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  float tmp[8] = {0};
  for (int j = 0; j < n; j++) {
    if (type == LS_F32) tmp[j] = ((const float *)row)[c + j];
    else if (type == LS_F16) tmp[j] = ls_fp16_to_fp32(((const uint16_t *)row)[c + j]);
    else tmp[j] = ls_bf16_to_fp32(((const uint16_t *)row)[c + j]);
  }
  return _mm256_loadu_ps(tmp);
}

AI __m256 load_xf(const float *x, int64_t c, int n) {
  if (n == 8) return _mm256_loadu_ps(x + c);
  float tmp[8] = {0};
  memcpy(tmp, x + c, sizeof(float) * (size_t)n);
  return _mm256_loadu_ps(tmp);
}

/* y[t0+t][r] for one row r of a float matrix and T tokens. */
AI void f_tile(const int T, const int type, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y,
               int64_t ldy) {
  const int64_t cols = w->cols, full = cols / 32 * 32;
  const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
  const float *xt[TF];
  __m256 acc[TF][4];
#pragma GCC unroll 2
  for (int t = 0; t < T; t++) {
    xt[t] = (const float *)((const char *)xa + (size_t)(t0 + t) * xs);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) acc[t][k] = _mm256_setzero_ps();
  }
  for (int64_t c = 0; c < full; c += 32) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      __m256 wv = load_wf(type, row, c + 8 * k, 8);
#pragma GCC unroll 2
      for (int t = 0; t < T; t++) acc[t][k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xt[t] + c + 8 * k), acc[t][k]);
    }
  }
  for (int64_t c = full; c < cols; c += 8) {
    int n = cols - c >= 8 ? 8 : (int)(cols - c), k = (int)((c / 8) % 4);
    __m256 wv = load_wf(type, row, c, n);
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) acc[t][k] = _mm256_fmadd_ps(wv, load_xf(xt[t], c, n), acc[t][k]);
  }
#pragma GCC unroll 2
  for (int t = 0; t < T; t++)
    y[(int64_t)(t0 + t) * ldy + r] =
        hsum8(_mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3])));
}

typedef void (*tile_fn)(int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy);

#define F_TILE_FN(name, type)                                                                                    \
  static void name(int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) { \
    if (T == 1) f_tile(1, type, w, r, xa, xs, t0, y, ldy);                                                       \
    else f_tile(2, type, w, r, xa, xs, t0, y, ldy);                                                              \
  }
LS_TILE_T4(tile_q8, q_tile, 0)
LS_TILE_T4(tile_q4, q_tile, 1)
F_TILE_FN(tile_f32, LS_F32)
F_TILE_FN(tile_f16, LS_F16)
F_TILE_FN(tile_bf16, LS_BF16)

static void a2_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  if (w->layout != LS_LAYOUT_ROWS) {
    ls_matmul_by_rows(a2_matmul, w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  tile_fn tile;
  int tt = TQ;
  switch (w->type) {
  case LS_Q8_0: tile = tile_q8; break;
  case LS_Q4_0: tile = tile_q4; break;
  case LS_F32: tile = tile_f32, tt = TF; break;
  case LS_F16: tile = tile_f16, tt = TF; break;
  case LS_BF16: tile = tile_bf16, tt = TF; break;
  default:
    if (ls_kq_is_type(w->type)) ls_kq_matmul_avx2(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  for (int t0 = 0; t0 < n; t0 += tt) {
    int T = n - t0 < tt ? n - t0 : tt;
    for (int64_t r = r0; r < r1; r++) tile(T, w, r, xa, xs, t0, y, ldy);
  }
}

const ls_kernels ls_kernels_avx2 = {
    .name = "avx2",
    .level = LS_KL_AVX2,
    .act_bytes = a2_act_bytes,
    .act_prepare = a2_act_prepare,
    .matmul = a2_matmul,
    .quantize_q8_0 = ls_quantize_row_q8_0,
    .rmsnorm = ls_ref_rmsnorm,
    .softmax = ls_ref_softmax,
    .swiglu = ls_ref_swiglu,
    .rope = ls_ref_rope,
    .attention = ls_ref_attention,
};
