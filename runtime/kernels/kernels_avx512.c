/* AVX-512 (F/BW/VL/DQ) + VNNI kernels.
 *
 * Quantised matmul (Q8_0 and Q4_0 weights): activations are quantised to
 * Q8_0 once per matmul (bit-identical to ls_quantize_row_q8_0) into pairs of
 * blocks (64 values per 512-bit register):
 *   x     64 signed bytes (two blocks)
 *   negc  16 int32: -128 * (x[4i] + ... + x[4i+3]) for lane i
 *   dx    16 floats: the two blocks' scales, each repeated 8 times
 * VNNI's vpdpbusd multiplies unsigned by signed bytes, so the weights are
 * offset to unsigned (w + 128) and the accumulator starts at negc, which
 * removes the offset exactly: negc + sum (w+128) x = sum w x. This puts all
 * per-token work except one dpbusd, one convert and two float ops per pair of
 * blocks into the preparation, and the per-weight work (load, offset, scales)
 * is shared by the tile of tokens.
 *
 * Matmuls are computed in tiles of up to 4 rows x 4 tokens; every (row,
 * token) element goes through the same operations in the same order for any
 * tile shape, so results do not depend on how rows are split among threads
 * (nor on the number of tokens in the call). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kquants_kernels.h"

#define AI static inline __attribute__((always_inline))

typedef struct pair_act {
  int8_t x[64];
  int32_t negc[16];
  float dx[16];
} pair_act;
_Static_assert(sizeof(pair_act) == 192, "pair_act is three cache lines");

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }

static size_t a5_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  return is_quant(wtype) ? (size_t)((cols / LS_QK + 1) / 2) * sizeof(pair_act) : 0;
}

/* roundf(): halves away from zero (v - trunc(v) is exact for |v| < 2^23). */
AI __m512 round_away(__m512 v) {
  __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
  return _mm512_mask_add_ps(t, up, t, one);
}

/* One block exactly as ls_quantize_row_q8_0: d = amax/127, q = roundf(x/d). */
AI void quant_block(const float *x, uint16_t *dh, int8_t *qs) {
  __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
  float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  float d = amax / 127.0f;
  float id = d ? 1.0f / d : 0.0f;
  *dh = ls_fp32_to_fp16(d);
  __m512 vid = _mm512_set1_ps(id);
  __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(round_away(_mm512_mul_ps(v0, vid))));
  __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(round_away(_mm512_mul_ps(v1, vid))));
  _mm_storeu_si128((__m128i *)qs, q0);
  _mm_storeu_si128((__m128i *)(qs + 16), q1);
}

static void a5_quantize_q8_0(const float *x, ls_block_q8_0 *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK; b++) quant_block(x + b * LS_QK, &y[b].d, y[b].qs);
}

static void a5_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_kq_is_type(wtype)) ls_kq_act_prepare(wtype, x, cols, xa);
  if (!is_quant(wtype)) return;
  int64_t nb = cols / LS_QK, np = (nb + 1) / 2;
  pair_act *pa = xa;
  const __m512i zero = _mm512_setzero_si512(), k128 = _mm512_set1_epi8((char)0x80);
  for (int64_t p = 0; p < np; p++) {
    uint16_t d[2] = {0, 0};
    quant_block(x + 2 * p * LS_QK, &d[0], pa[p].x);
    if (2 * p + 1 < nb) quant_block(x + (2 * p + 1) * LS_QK, &d[1], pa[p].x + 32);
    else memset(pa[p].x + 32, 0, 32);
    __m512i xv = _mm512_loadu_si512(pa[p].x);
    __m512i c = _mm512_dpbusd_epi32(zero, k128, xv);
    _mm512_storeu_si512(pa[p].negc, _mm512_sub_epi32(zero, c));
    float d0 = _cvtsh_ss(d[0]), d1 = _cvtsh_ss(d[1]);
    _mm512_storeu_ps(pa[p].dx, _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1));
  }
}

/* Weight pair p of a row, as unsigned bytes (w + 128), and its scales
 * [d0 x8, d1 x8]. A missing second block (odd block count) is zero. */
AI __m512i load_q8_pair(const ls_block_q8_0 *w, int64_t p, int64_t nb, __m512 *dw) {
  const ls_block_q8_0 *b = w + 2 * p;
  __m256i lo = _mm256_loadu_si256((const __m256i *)b[0].qs), hi = _mm256_setzero_si256();
  uint32_t d1 = 0;
  if (2 * p + 1 < nb) {
    hi = _mm256_loadu_si256((const __m256i *)b[1].qs);
    d1 = b[1].d;
  }
  __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(b[0].d | (d1 << 16))));
  *dw = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                              _mm512_castps128_ps512(f));
  return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8((char)0x80));
}

/* Q4_0: element j < 16 is the low nibble of qs[j], j + 16 the high nibble;
 * the value is q - 8, so the unsigned operand is q + 120. */
AI __m512i load_q4_pair(const ls_block_q4_0 *w, int64_t p, int64_t nb, __m512 *dw) {
  const ls_block_q4_0 *b = w + 2 * p;
  __m128i lo = _mm_loadu_si128((const __m128i *)b[0].qs), hi = _mm_setzero_si128();
  uint32_t d1 = 0;
  if (2 * p + 1 < nb) {
    hi = _mm_loadu_si128((const __m128i *)b[1].qs);
    d1 = b[1].d;
  }
  __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(b[0].d | (d1 << 16))));
  *dw = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                              _mm512_castps128_ps512(f));
  __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(lo, lo)), _mm256_set_m128i(hi, hi), 1);
  v = _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
  v = _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
  return _mm512_add_epi8(v, _mm512_set1_epi8(120));
}

/* y[t][r] for R rows x T tokens of a quantised matrix. */
AI void q_tile(const int R, const int T, const int q4, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0,
               float *y, int64_t ldy) {
  int64_t nb = w->cols / LS_QK, np = (nb + 1) / 2;
  const void *rows[4];
  const pair_act *xt[4];
  #pragma GCC unroll 4
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) xt[t] = (const pair_act *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m512 acc[4][4];
  #pragma GCC unroll 4
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; p += 2) {
    __m512 part[4][4];
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      if (p + h >= np) break;
      __m512i wv[4];
      __m512 dw[4];
      #pragma GCC unroll 4
      for (int i = 0; i < R; i++) {
        /* the same place in the next tile's rows (rows are contiguous): the
         * hardware prefetcher alone leaves one core ~20% short on these
         * interleaved row streams (measured: 11 -> 13.5 GB/s per core) */
        if (R > 1) _mm_prefetch((const char *)rows[i] + (size_t)R * w->row_bytes + (p + h) * (q4 ? 36 : 68), _MM_HINT_T0);
        wv[i] = q4 ? load_q4_pair(rows[i], p + h, nb, &dw[i]) : load_q8_pair(rows[i], p + h, nb, &dw[i]);
      }
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++) {
        const pair_act *a = xt[t] + p + h;
        __m512i xv = _mm512_load_si512(a->x);
        __m512i nc = _mm512_load_si512(a->negc);
        __m512 dx = _mm512_load_ps(a->dx);
        #pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
          __m512 f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(nc, wv[i], xv));
          part[i][t] = h ? _mm512_fmadd_ps(f, _mm512_mul_ps(dw[i], dx), part[i][t]) : _mm512_mul_ps(f, _mm512_mul_ps(dw[i], dx));
        }
      }
    }
    #pragma GCC unroll 4
    for (int i = 0; i < R; i++)
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++) acc[i][t] = _mm512_add_ps(acc[i][t], part[i][t]);
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++)
    #pragma GCC unroll 4
    for (int i = 0; i < R; i++) y[(int64_t)(t0 + t) * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]);
}

/* One Q8_0 row against one token (decode). Same operations per element as
 * q_tile, so a row gives the same value in any tile shape. Rows are walked
 * one at a time, i.e. in address order: a single sequential stream per core
 * is what the hardware prefetcher handles best. Measured on one Zen 4 core
 * from DRAM: ~28 GB/s (a plain read loop: ~29) against ~13 GB/s for 4
 * interleaved rows with software prefetch of the next tile. */
/* f * d of weight pair p (full, i.e. both blocks present) and its activations. */
AI __m512 q8_pair_f(const ls_block_q8_0 *w, const pair_act *a, __m512 *d) {
  const __m512i perm = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)w[0].qs)),
                                  _mm256_loadu_si256((const __m256i *)w[1].qs), 1);
  __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(w[0].d | ((uint32_t)w[1].d << 16))));
  __m512 dw = _mm512_permutexvar_ps(perm, _mm512_castps128_ps512(f));
  __m512i s = _mm512_dpbusd_epi32(_mm512_load_si512(a->negc), _mm512_xor_si512(wv, _mm512_set1_epi8((char)0x80)),
                                  _mm512_load_si512(a->x));
  *d = _mm512_mul_ps(dw, _mm512_load_ps(a->dx));
  return _mm512_cvtepi32_ps(s);
}

AI float q8_row(const ls_block_q8_0 *b, int64_t nb, const pair_act *a) {
  __m512 acc = _mm512_setzero_ps();
  int64_t np = (nb + 1) / 2, full = nb / 2, p = 0;
  for (; p + 1 < full; p += 2) {
    __m512 d0, d1;
    __m512 f0 = q8_pair_f(b + 2 * p, a + p, &d0);
    __m512 f1 = q8_pair_f(b + 2 * p + 2, a + p + 1, &d1);
    acc = _mm512_add_ps(acc, _mm512_fmadd_ps(f1, d1, _mm512_mul_ps(f0, d0)));
  }
  for (; p < np; p += 2) { /* the generic tail: same operations as q_tile */
    __m512 part = _mm512_setzero_ps();
    for (int h = 0; h < 2 && p + h < np; h++) {
      __m512 dw;
      __m512i wv = load_q8_pair(b, p + h, nb, &dw);
      __m512 f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_load_si512(a[p + h].negc), wv, _mm512_load_si512(a[p + h].x)));
      __m512 d = _mm512_mul_ps(dw, _mm512_load_ps(a[p + h].dx));
      part = h ? _mm512_fmadd_ps(f, d, part) : _mm512_mul_ps(f, d);
    }
    acc = _mm512_add_ps(acc, part);
  }
  return _mm512_reduce_add_ps(acc);
}

/* Float weights: 16 columns per step, masked tail. */
AI __m512 load_wf(const int type, const void *row, int64_t c, __mmask16 m) {
  if (type == LS_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + c);
  __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c);
  if (type == LS_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI void f_tile(const int R, const int T, const int type, const ls_mat *w, int64_t r, const void *xa, size_t xs,
               int t0, float *y, int64_t ldy) {
  int64_t cols = w->cols;
  const void *rows[4];
  const float *xt[4];
  #pragma GCC unroll 4
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) xt[t] = (const float *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m512 acc[4][4];
  #pragma GCC unroll 4
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();
  for (int64_t c = 0; c < cols; c += 16) {
    __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1);
    __m512 wv[4];
    #pragma GCC unroll 4
    for (int i = 0; i < R; i++) wv[i] = load_wf(type, rows[i], c, m);
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      __m512 xv = _mm512_maskz_loadu_ps(m, xt[t] + c);
      #pragma GCC unroll 4
      for (int i = 0; i < R; i++) acc[i][t] = _mm512_fmadd_ps(wv[i], xv, acc[i][t]);
    }
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++)
    #pragma GCC unroll 4
    for (int i = 0; i < R; i++) y[(int64_t)(t0 + t) * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]);
}

#define TILE_FN(name, body)                                                                                      \
  static void name(int R, int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y,       \
                   int64_t ldy) {                                                                                \
    switch (R * 8 + T) {                                                                                         \
    case 9: body(1, 1); break;                                                                                   \
    case 10: body(1, 2); break;                                                                                  \
    case 11: body(1, 3); break;                                                                                  \
    case 12: body(1, 4); break;                                                                                  \
    case 17: body(2, 1); break;                                                                                  \
    case 18: body(2, 2); break;                                                                                  \
    case 19: body(2, 3); break;                                                                                  \
    case 20: body(2, 4); break;                                                                                  \
    case 25: body(3, 1); break;                                                                                  \
    case 26: body(3, 2); break;                                                                                  \
    case 27: body(3, 3); break;                                                                                  \
    case 28: body(3, 4); break;                                                                                  \
    case 33: body(4, 1); break;                                                                                  \
    case 34: body(4, 2); break;                                                                                  \
    case 35: body(4, 3); break;                                                                                  \
    case 36: body(4, 4); break;                                                                                  \
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

static void a5_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  void (*tile)(int, int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  switch (w->type) {
  case LS_Q8_0: tile = tile_q8; break;
  case LS_Q4_0: tile = tile_q4; break;
  case LS_F32: tile = tile_f32; break;
  case LS_F16: tile = tile_f16; break;
  case LS_BF16: tile = tile_bf16; break;
  default: /* the other block types: the AVX2 kernels (an AVX-512 CPU has AVX2) */
    if (ls_kq_is_type(w->type)) ls_kq_matmul_avx2(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  int quant = is_quant(w->type);
  for (int t0 = 0; t0 < n; t0 += 4) {
    int T = n - t0 < 4 ? n - t0 : 4;
    if (w->type == LS_Q8_0 && T == 1) {
      const pair_act *a = (const pair_act *)((const char *)xa + (size_t)t0 * xs);
      for (int64_t r = r0; r < r1; r++)
        y[(int64_t)t0 * ldy + r] =
            q8_row((const ls_block_q8_0 *)((const char *)w->data + (size_t)r * w->row_bytes), w->cols / LS_QK, a);
      continue;
    }
    int rstep = quant && T == 1 ? 1 : 4;
    for (int64_t r = r0; r < r1; r += rstep) {
      int R = r1 - r < rstep ? (int)(r1 - r) : rstep;
      tile(R, T, w, r, xa, xs, t0, y, ldy);
    }
  }
}

/* ---- elementwise ---------------------------------------------------------- */

/* e^x, Cephes expf polynomial (relative error ~2e-7 on the reduced range). */
AI __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

AI __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

static void a5_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  float ss = _mm512_reduce_add_ps(acc) / (float)n + eps;
  __m512 s = _mm512_set1_ps(1.0f / sqrtf(ss));
  for (int i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, x + i)));
    _mm512_mask_storeu_ps(o + i, m, v);
  }
}

static void a5_softmax(float *x, int n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(n - i), x + i));
  __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax));
    e = _mm512_maskz_mov_ps(m, e);
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  __m512 inv = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
  for (int i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

static void a5_swiglu(float *h, const float *g, const float *u, int n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int i = 0; i < n; i += 16) {
    __mmask16 m = tail_mask(n - i);
    __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
    __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(h + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, sig), uv));
  }
}

static void a5_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                         int head_dim, float scale, float *att) {
  if (head_dim <= 16) {
    __mmask16 m = tail_mask(head_dim);
    __m512 qv = _mm512_maskz_loadu_ps(m, q);
    for (int j = 0; j < n_pos; j++)
      att[j] = _mm512_reduce_add_ps(_mm512_mul_ps(qv, _mm512_maskz_loadu_ps(m, k + (int64_t)j * kv_stride))) * scale;
  } else {
    for (int j = 0; j < n_pos; j++) {
      const float *kj = k + (int64_t)j * kv_stride;
      __m512 acc = _mm512_setzero_ps();
      for (int i = 0; i < head_dim; i += 16) {
        __mmask16 m = tail_mask(head_dim - i);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, kj + i), acc);
      }
      att[j] = _mm512_reduce_add_ps(acc) * scale;
    }
  }
  a5_softmax(att, n_pos);
  for (int i = 0; i < head_dim; i += 16) {
    __mmask16 m = tail_mask(head_dim - i);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < n_pos; j++)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(att[j]), _mm512_maskz_loadu_ps(m, v + (int64_t)j * kv_stride + i), acc);
    _mm512_mask_storeu_ps(out + i, m, acc);
  }
}

const ls_kernels ls_kernels_avx512 = {
    .name = "avx512",
    .level = LS_KL_AVX512,
    .act_bytes = a5_act_bytes,
    .act_prepare = a5_act_prepare,
    .matmul = a5_matmul,
    .quantize_q8_0 = a5_quantize_q8_0,
    .rmsnorm = a5_rmsnorm,
    .softmax = a5_softmax,
    .swiglu = a5_swiglu,
    .rope = ls_ref_rope,
    .attention = a5_attention,
};
