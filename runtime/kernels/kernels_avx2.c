/* AVX2/FMA/F16C kernels (for x86-64 CPUs without AVX-512).
 *
 * Quantised matmuls use the reference activation layout (plain Q8_0 blocks)
 * and llama.cpp's integer dot product: maddubs needs an unsigned operand, so
 * |w| is multiplied with sign(w) * x (exact), pairs of int16 are summed with
 * madd, and each block's 8 int32 lanes are scaled by d_w * d_x in float.
 * Tiles of up to 4 rows x 2 tokens; as in the AVX-512 level every element
 * gets the same operations whatever the tile, so results do not depend on
 * the row split. Norms, softmax, SwiGLU, RoPE and attention use the scalar
 * reference (they are a small share of the time). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "kquants_kernels.h"

#define AI static inline __attribute__((always_inline))
#define TR 4 /* rows per tile */
#define TT 2 /* tokens per tile */

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }

static size_t a2_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  return is_quant(wtype) ? (size_t)(cols / LS_QK) * sizeof(ls_block_q8_0) : 0;
}

static void a2_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_kq_is_type(wtype)) ls_kq_act_prepare(wtype, x, cols, xa);
  if (is_quant(wtype)) ls_quantize_row_q8_0(x, xa, cols);
}

/* Block b of a row as 32 signed bytes, and its scale. */
AI __m256i load_wblock(const int q4, const void *row, int64_t b, float *d) {
  if (q4) {
    const ls_block_q4_0 *w = (const ls_block_q4_0 *)row + b;
    *d = _cvtsh_ss(w->d);
    __m128i v = _mm_loadu_si128((const __m128i *)w->qs);
    __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0f));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0f));
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
  }
  const ls_block_q8_0 *w = (const ls_block_q8_0 *)row + b;
  *d = _cvtsh_ss(w->d);
  return _mm256_loadu_si256((const __m256i *)w->qs);
}

AI void q_tile(const int R, const int T, const int q4, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0,
               float *y, int64_t ldy) {
  int64_t nb = w->cols / LS_QK;
  const void *rows[TR];
  const ls_block_q8_0 *xt[TT];
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  for (int t = 0; t < T; t++) xt[t] = (const ls_block_q8_0 *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m256 acc[TR][TT];
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; b++) {
    __m256i wv[TR], wa[TR];
    float dw[TR];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      wv[i] = load_wblock(q4, rows[i], b, &dw[i]);
      wa[i] = _mm256_sign_epi8(wv[i], wv[i]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      __m256i xv = _mm256_loadu_si256((const __m256i *)xt[t][b].qs);
      float dx = _cvtsh_ss(xt[t][b].d);
#pragma GCC unroll 4
      for (int i = 0; i < R; i++) {
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wa[i], _mm256_sign_epi8(xv, wv[i])), ones);
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[i] * dx), acc[i][t]);
      }
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++)
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i][t]), _mm256_extractf128_ps(acc[i][t], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      y[(int64_t)(t0 + t) * ldy + r + i] = _mm_cvtss_f32(s);
    }
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

AI void f_tile(const int R, const int T, const int type, const ls_mat *w, int64_t r, const void *xa, size_t xs,
               int t0, float *y, int64_t ldy) {
  int64_t cols = w->cols;
  const void *rows[TR];
  const float *xt[TT];
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  for (int t = 0; t < T; t++) xt[t] = (const float *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m256 acc[TR][TT];
#pragma GCC unroll 4
  for (int i = 0; i < R; i++)
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
  for (int64_t c = 0; c < cols; c += 8) {
    int n = cols - c >= 8 ? 8 : (int)(cols - c);
    __m256 wv[TR];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) wv[i] = load_wf(type, rows[i], c, n);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      __m256 xv = load_xf(xt[t], c, n);
#pragma GCC unroll 4
      for (int i = 0; i < R; i++) acc[i][t] = _mm256_fmadd_ps(wv[i], xv, acc[i][t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++)
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i][t]), _mm256_extractf128_ps(acc[i][t], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      y[(int64_t)(t0 + t) * ldy + r + i] = _mm_cvtss_f32(s);
    }
}

#define TILE_FN(name, body)                                                                                      \
  static void name(int R, int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y,       \
                   int64_t ldy) {                                                                                \
    switch (R * 8 + T) {                                                                                         \
    case 9: body(1, 1); break;                                                                                   \
    case 10: body(1, 2); break;                                                                                  \
    case 17: body(2, 1); break;                                                                                  \
    case 18: body(2, 2); break;                                                                                  \
    case 25: body(3, 1); break;                                                                                  \
    case 26: body(3, 2); break;                                                                                  \
    case 33: body(4, 1); break;                                                                                  \
    case 34: body(4, 2); break;                                                                                  \
    }                                                                                                            \
  }
#define Q8_BODY(R, T) q_tile(R, T, 0, w, r, xa, xs, t0, y, ldy)
#define Q4_BODY(R, T) q_tile(R, T, 1, w, r, xa, xs, t0, y, ldy)
#define F32_BODY(R, T) f_tile(R, T, LS_F32, w, r, xa, xs, t0, y, ldy)
#define F16_BODY(R, T) f_tile(R, T, LS_F16, w, r, xa, xs, t0, y, ldy)
#define BF16_BODY(R, T) f_tile(R, T, LS_BF16, w, r, xa, xs, t0, y, ldy)
TILE_FN(tile_q8, Q8_BODY)
TILE_FN(tile_q4, Q4_BODY)
TILE_FN(tile_f32, F32_BODY)
TILE_FN(tile_f16, F16_BODY)
TILE_FN(tile_bf16, BF16_BODY)

static void a2_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  void (*tile)(int, int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  switch (w->type) {
  case LS_Q8_0: tile = tile_q8; break;
  case LS_Q4_0: tile = tile_q4; break;
  case LS_F32: tile = tile_f32; break;
  case LS_F16: tile = tile_f16; break;
  case LS_BF16: tile = tile_bf16; break;
  default:
    if (ls_kq_is_type(w->type)) ls_kq_matmul_avx2(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  for (int t0 = 0; t0 < n; t0 += TT) {
    int T = n - t0 < TT ? n - t0 : TT;
    for (int64_t r = r0; r < r1; r += TR) {
      int R = r1 - r < TR ? (int)(r1 - r) : TR;
      tile(R, T, w, r, xa, xs, t0, y, ldy);
    }
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
