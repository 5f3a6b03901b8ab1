/* AVX2/FMA/F16C kernels (for x86-64 CPUs without AVX-512).
 *
 * Q8_0 and Q4_0 weights: the amx level's "block order" (kernels_amx.c), in
 * 8 lanes instead of 16, so this level gives the same bits as that one. For
 * weight row r and token t, block b's integer dot product isum is exact;
 * then, block after block from 0,
 *     acc = fma((float)isum, dw[r][b] * dx[t][b], acc)
 * and y[t][r] = acc. The lanes of a vector are 8 weight rows ("an oct"),
 * lane r holding row r's 4 bytes k, against token t's 4 bytes k broadcast:
 * - Q8_0: maddubs(|w|, sign(x, w)) (llama.cpp's way of giving maddubs an
 *   unsigned operand; a pair is at most 2 * 128 * 127, no saturation), then
 *   madd with ones to int32, per 4 bytes;
 * - Q4_0: the stored nibbles (w + 8, unsigned) straight into maddubs, the 8
 *   products of a block summed in int16 (at most 8 * 2 * 15 * 127 = 30480:
 *   exact), one madd, and the exact correction -8 * sum(x) of the block.
 * Activations are quantised to Q8_0 once per matmul (bit-identical to
 * ls_quantize_row_q8_0) into the amx level's layout: the nb blocks' 32-byte
 * quants, their scales as f32, their corrections.
 *
 * Weights are read 8 rows at a time from the X16 layout the model's copy is
 * packed into at load (ls_model.h, ls_x16_pack: a 16-row group is two octs,
 * its 64-byte lines halves of 32), or from 8 row streams (the file mapping,
 * rows past the last whole group), transposed in registers; both give the
 * same bits. A row's result does not depend on the row range, the token
 * count, the other tokens of the call or the thread count (tests/kernels).
 * Against the one-row-at-a-time kernels this replaced, an oct needs no
 * horizontal sum and Q4_0 one multiply per 32 products instead of two: on
 * an AVX2-only AMD EPYC, where these kernels are compute bound at every
 * token count, that is what decides their speed (bench/README.md).
 *
 * Float weights (F32, F16, BF16): 4 accumulators per element, column group
 * g = c/8 going to accumulator g % 4 (a short group at the end zero-padded),
 * summed as (a0 + a1) + (a2 + a3) and then the 8 lanes as (lo128 + hi128),
 * then the upper pair onto the lower, then lane 1 onto lane 0; tiles of one
 * row x up to 2 tokens, 8 rows' lane sums taken together (hsum8x8). Softmax,
 * SwiGLU and attention are vectorised (below); the norm and RoPE use the
 * scalar reference. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kquants_kernels.h"
#include "oct_avx2.h"

#define AI static inline __attribute__((always_inline))
#define TF 2     /* tokens per float tile */
#define OCT_T 4  /* tokens per oct pass */

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }
static size_t round64(size_t b) { return (b + 63) / 64 * 64; }

/* ---- prepared activations ------------------------------------------------ */

/* One token's: quants [nb][32], scales f32 [nb], corrections i32 [nb] (Q4_0:
 * -8 times the block's sum of quants; Q8_0: 0), each part 64-byte rounded. */
typedef struct act_view {
  const int8_t *q;
  const float *dx;
  const int32_t *corr;
} act_view;

AI act_view act_at(const void *xa, size_t xs, int t, int64_t nb) {
  const char *p = (const char *)xa + (size_t)t * xs;
  const size_t qb = round64((size_t)nb * LS_QK), db = round64((size_t)nb * 4);
  act_view v = {(const int8_t *)p, (const float *)(p + qb), (const int32_t *)(p + qb + db)};
  return v;
}

static size_t a2_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  if (!is_quant(wtype)) return 0;
  const int64_t nb = cols / LS_QK;
  return round64((size_t)nb * LS_QK) + 2 * round64((size_t)nb * 4);
}

static void a2_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_kq_is_type(wtype)) {
    ls_kq_act_prepare(wtype, x, cols, xa);
    return;
  }
  if (!is_quant(wtype)) return;
  const int64_t nb = cols / LS_QK;
  act_view v = act_at(xa, 0, 0, nb);
  int8_t *q = (int8_t *)v.q;
  float *dx = (float *)v.dx;
  int32_t *corr = (int32_t *)v.corr;
  for (int64_t b = 0; b < nb; b++) {
    ls_block_q8_0 blk;
    ls_quantize_row_q8_0(x + b * LS_QK, &blk, LS_QK);
    memcpy(q + b * LS_QK, blk.qs, LS_QK);
    dx[b] = ls_fp16_to_fp32(blk.d);
    int32_t sum = 0;
    for (int k = 0; k < LS_QK; k++) sum += blk.qs[k];
    corr[b] = wtype == LS_Q4_0 ? -8 * sum : 0;
  }
}

/* ---- 8 weight rows of one block ------------------------------------------ */

AI size_t block_bytes(const int q4) { return q4 ? sizeof(ls_block_q4_0) : sizeof(ls_block_q8_0); }

/* w[k] lane r: row r's 4 bytes k of the block (Q8_0: signed, k < 8; Q4_0:
 * w[k] the low nibbles of bytes 4k.., elements 4k.., w[k + 4] the high
 * ones, elements 16 + 4k..; unsigned); a[k] = |w[k]| (Q8_0); dw lane r: row
 * r's scale. */
typedef struct oct_block {
  __m256i w[8], a[8];
  __m256 dw;
} oct_block;

/* The block's 8 fp16 scales of 8 ROWS rows. */
AI __m128i rows_scales(const uint8_t *const *rows, size_t off) {
  uint16_t d;
  memcpy(&d, rows[0] + off, 2);
  __m128i v = _mm_cvtsi32_si128(d);
  #define INS(i) memcpy(&d, rows[i] + off, 2), v = _mm_insert_epi16(v, d, i)
  INS(1); INS(2); INS(3); INS(4); INS(5); INS(6); INS(7);
  #undef INS
  return v;
}

AI void load_oct(const int q4, const oct_src *s, int64_t b, oct_block *o) {
  __m256i p[8];
  const int nk = q4 ? 4 : 8;
  if (s->x16) {
    const uint8_t *blk = s->x16 + (size_t)b * ls_x16_block_bytes(q4 ? LS_Q4_0 : LS_Q8_0);
    const size_t row = (size_t)OCT * s->half;
    const uint32_t type = q4 ? LS_Q4_0 : LS_Q8_0;
    #pragma GCC unroll 8
    for (int k = 0; k < nk; k++)
      p[k] = _mm256_loadu_si256((const __m256i *)(blk + ls_x16_quant_at(type, (size_t)k, row)));
    o->dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + ls_x16_head_at(type, row))));
  } else {
    const size_t off = (size_t)b * block_bytes(q4);
    oct_rows_16b(s->rows, off + 2, p);
    if (!q4) oct_rows_16b(s->rows, off + 18, p + 4);
    o->dw = _mm256_cvtph_ps(rows_scales(s->rows, off));
  }
  if (q4) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      o->w[k] = _mm256_and_si256(p[k], m4);
      o->w[k + 4] = _mm256_and_si256(_mm256_srli_epi16(p[k], 4), m4);
    }
  } else {
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      o->w[k] = p[k];
      o->a[k] = _mm256_sign_epi8(p[k], p[k]);
    }
  }
}

/* The block's exact isum for one token, lane r = row r. */
AI __m256i oct_isum(const int q4, const oct_block *o, const int8_t *xq, int32_t corr) {
  const __m256i ones = _mm256_set1_epi16(1);
  if (q4) {
    __m256i s = _mm256_setzero_si256();
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(o->w[k], oct_bcast4(xq + 4 * k)));
      s = _mm256_add_epi16(s, _mm256_maddubs_epi16(o->w[k + 4], oct_bcast4(xq + 16 + 4 * k)));
    }
    return _mm256_add_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(corr));
  }
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
  #pragma GCC unroll 4
  for (int k = 0; k < 8; k += 2) {
    __m256i p0 = _mm256_maddubs_epi16(o->a[k], _mm256_sign_epi8(oct_bcast4(xq + 4 * k), o->w[k]));
    __m256i p1 = _mm256_maddubs_epi16(o->a[k + 1], _mm256_sign_epi8(oct_bcast4(xq + 4 * k + 4), o->w[k + 1]));
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, ones));
    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, ones));
  }
  return _mm256_add_epi32(s0, s1);
}

/* Up to 2 tokens, how far ahead an X16 group is prefetched: Q8_0 one token
 * 9.9 -> 11.5 GB/s from DRAM on the AVX2-only EPYC (bench_matmul, 2048
 * columns, 1 thread; 512: 9.7, 1024: 11.0, 4096: 11.5); Q4_0, compute bound
 * there, does not change. */
#define PF_AHEAD 2048

/* acc = fma((float)isum, dw * dx, acc): the one float step per block. */
AI __m256 block_step(__m256i isum, __m256 dw, float dx, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc);
}

/* H octs (H * T <= 4 accumulators) x T tokens, all blocks. Oct h's rows are
 * y columns row0[h] .. +7, of which lanes live[h][0] .. live[h][1]-1 are
 * stored. */
AI void oct_pass(const int q4, const int H, const int T, const oct_src *src, int64_t nb, const void *xa, size_t xs,
                 int t0, float *y, int64_t ldy, const int64_t *row0, const int (*live)[2]) {
  act_view v[OCT_T];
  __m256 acc[2][OCT_T];
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    v[t] = act_at(xa, xs, t0 + t, nb);
    #pragma GCC unroll 2
    for (int h = 0; h < H; h++) acc[h][t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
    if (H == 2 && src[0].x16) ls_x16_prefetch(src[0].x16, q4 ? LS_Q4_0 : LS_Q8_0, b, PF_AHEAD);
    #pragma GCC unroll 2
    for (int h = 0; h < H; h++) {
      oct_block o;
      load_oct(q4, &src[h], b, &o);
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++)
        acc[h][t] = block_step(oct_isum(q4, &o, v[t].q + b * LS_QK, v[t].corr[b]), o.dw, v[t].dx[b], acc[h][t]);
    }
  }
  #pragma GCC unroll 2
  for (int h = 0; h < H; h++) {
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) oct_store(y + (int64_t)(t0 + t) * ldy + row0[h], acc[h][t], live[h][0], live[h][1]);
  }
}

typedef void (*oct_fn)(const oct_src *, int64_t, const void *, size_t, int, float *, int64_t, const int64_t *,
                       const int (*)[2]);
#define OCT_PASS(name, q4, H, T)                                                                                  \
  __attribute__((noinline)) static void name(const oct_src *src, int64_t nb, const void *xa, size_t xs, int t0,    \
                                             float *y, int64_t ldy, const int64_t *row0, const int(*live)[2]) { \
    oct_pass(q4, H, T, src, nb, xa, xs, t0, y, ldy, row0, live);                                                \
  }
#define OCT_PASSES(ty, q4)                                                                                      \
  OCT_PASS(oct_##ty##_h1t1, q4, 1, 1) OCT_PASS(oct_##ty##_h1t2, q4, 1, 2) OCT_PASS(oct_##ty##_h1t3, q4, 1, 3)   \
      OCT_PASS(oct_##ty##_h1t4, q4, 1, 4) OCT_PASS(oct_##ty##_h2t1, q4, 2, 1) OCT_PASS(oct_##ty##_h2t2, q4, 2, 2)
OCT_PASSES(q8, 0)
OCT_PASSES(q4, 1)
/* [type][H - 1][T - 1] (one table: UBSan's object-size check rejects a call
 * through a choice between two arrays); H = 2 only up to 2 tokens. */
static const oct_fn oct_passes[2][2][OCT_T] = {
    {{oct_q8_h1t1, oct_q8_h1t2, oct_q8_h1t3, oct_q8_h1t4}, {oct_q8_h2t1, oct_q8_h2t2, NULL, NULL}},
    {{oct_q4_h1t1, oct_q4_h1t2, oct_q4_h1t3, oct_q4_h1t4}, {oct_q4_h2t1, oct_q4_h2t2, NULL, NULL}}};

/* Rows r0 .. r1-1: the octs from the one holding r0, each with its stored
 * lanes; up to 2 tokens the two octs of a 16-row group go together (one
 * stream of bytes from an X16 group), from 3 tokens one at a time. */
static void quant_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
  const int q4 = w->type == LS_Q4_0;
  const int64_t nb = w->cols / LS_QK;
  for (int64_t o = r0 - r0 % OCT; o < r1; o += 2 * OCT) {
    oct_pair p;
    const int H = oct_pair_at(w, o, r0, r1, &p);
    int t = 0;
    if (H == 2 && n <= 2) {
      oct_passes[q4][1][n - 1](p.src, nb, xa, xs, 0, y, ldy, p.row0, p.live);
      continue;
    }
    for (int h = 0; h < H; h++)
      for (t = 0; t < n; t += OCT_T) {
        const int T = n - t < OCT_T ? n - t : OCT_T;
        oct_passes[q4][0][T - 1](&p.src[h], nb, xa, xs, t, y, ldy, &p.row0[h], &p.live[h]);
      }
  }
}

AI float hsum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* The first min(left, 8) floats at p, the rest zero; plain moves unless
 * short (a masked move costs several times a plain one on AMD parts). */
AI __m256i tail8(int left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AI __m256 load8(const float *p, int left) {
  return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail8(left));
}

AI void store8(float *p, __m256 v, int left) {
  if (left >= 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, tail8(left), v);
}

/* 8 weights from column c as floats (n < 8: the rest zero; exact conversions). */
AI __m256 load_wf(const int type, const void *row, int64_t c, int n) {
  if (type == LS_F32) return load8((const float *)row + c, n);
  __m128i h;
  if (n == 8) h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
  else {
    uint16_t tmp[8] = {0};
    memcpy(tmp, (const uint16_t *)row + c, sizeof(uint16_t) * (size_t)n);
    h = _mm_loadu_si128((const __m128i *)tmp);
  }
  if (type == LS_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Lane r = hsum8(v[r]) bit for bit (the same additions: lo128 + hi128, then
 * elements (0, 1) + (2, 3), then 0 + 1), 8 rows' shuffles shared: at the
 * head sizes of small models the per-row sum was most of a row's work. */
AI __m256 hsum8x8(const __m256 *v) {
  __m256 s[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) /* [rows 2i | 2i + 1]: lo128 + hi128 */
    s[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  /* [r0, r0, r2, r2 | r1, r1, r3, r3] and rows 4..7 likewise: (0, 1) + (2, 3) */
  const __m256 p = _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], 0x44), _mm256_shuffle_ps(s[0], s[1], 0xee));
  const __m256 q = _mm256_add_ps(_mm256_shuffle_ps(s[2], s[3], 0x44), _mm256_shuffle_ps(s[2], s[3], 0xee));
  const __m256 f = _mm256_add_ps(_mm256_shuffle_ps(p, q, 0x88), _mm256_shuffle_ps(p, q, 0xdd)); /* r0 r2 r4 r6 | r1.. */
  return _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Row r of a float matrix against T tokens: sum[t] = (a0 + a1) + (a2 + a3),
 * its lanes still to be added (hsum8x8). */
AI void f_row(const int T, const int type, const ls_mat *w, int64_t r, const float *const *xt, __m256 *sum) {
  const int64_t cols = w->cols, full = cols / 32 * 32;
  const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
  __m256 acc[TF][4];
#pragma GCC unroll 2
  for (int t = 0; t < T; t++) {
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
    for (int t = 0; t < T; t++) acc[t][k] = _mm256_fmadd_ps(wv, load8(xt[t] + c, n), acc[t][k]);
  }
#pragma GCC unroll 2
  for (int t = 0; t < T; t++)
    sum[t] = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3]));
}

/* y[t0+t][r .. r+nr) for nr <= 8 rows of a float matrix and T tokens. */
AI void f_tile(const int T, const int type, const ls_mat *w, int64_t r, int nr, const void *xa, size_t xs, int t0,
               float *y, int64_t ldy) {
  const float *xt[TF];
#pragma GCC unroll 2
  for (int t = 0; t < T; t++) xt[t] = (const float *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m256 sum[TF][8], one[TF];
  for (int i = 0; i < 8; i++) {
    if (i < nr) f_row(T, type, w, r + i, xt, one);
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) sum[t][i] = i < nr ? one[t] : _mm256_setzero_ps();
  }
#pragma GCC unroll 2
  for (int t = 0; t < T; t++) store8(y + (int64_t)(t0 + t) * ldy + r, hsum8x8(sum[t]), nr);
}

typedef void (*tile_fn)(int T, const ls_mat *w, int64_t r, int nr, const void *xa, size_t xs, int t0, float *y,
                        int64_t ldy);

#define F_TILE_FN(name, type)                                                                                   \
  static void name(int T, const ls_mat *w, int64_t r, int nr, const void *xa, size_t xs, int t0, float *y,       \
                   int64_t ldy) {                                                                               \
    if (T == 1) f_tile(1, type, w, r, nr, xa, xs, t0, y, ldy);                                                  \
    else f_tile(2, type, w, r, nr, xa, xs, t0, y, ldy);                                                         \
  }
F_TILE_FN(tile_f32, LS_F32)
F_TILE_FN(tile_f16, LS_F16)
F_TILE_FN(tile_bf16, LS_BF16)

static void a2_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  if (is_quant(w->type)) {
    quant_matmul(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  if (w->type == LS_Q4_K) { /* ROWS or X16 (kquants_avx2.c) */
    ls_kq_matmul_avx2(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  if (w->layout != LS_LAYOUT_ROWS) {
    ls_matmul_by_rows(a2_matmul, w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  tile_fn tile;
  int tt = TF;
  switch (w->type) {
  case LS_F32: tile = tile_f32; break;
  case LS_F16: tile = tile_f16; break;
  case LS_BF16: tile = tile_bf16; break;
  default:
    if (ls_kq_is_type(w->type)) ls_kq_matmul_avx2(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  for (int t0 = 0; t0 < n; t0 += tt) {
    int T = n - t0 < tt ? n - t0 : tt;
    for (int64_t r = r0; r < r1; r += 8) tile(T, w, r, r1 - r < 8 ? (int)(r1 - r) : 8, xa, xs, t0, y, ldy);
  }
}

/* ---- softmax, SwiGLU and attention -----------------------------------------
 * Each sum in an order fixed by n (or n_pos and head_dim) alone: a row gives
 * the same bits in any batch and at any thread count. Against the scalar
 * reference these were half of a small model's time (a search on
 * stories260K: the reference's attention, softmax and libm's expf). The
 * norm stays the reference's (see a2_attention). */

/* e^x, the Cephes expf polynomial of exp512 (kernels_avx512.c); 2^n is put
 * into the exponent field directly (x is clamped, so -126 <= n <= 127: a
 * normal number, and the product rounds once, as scalef's does). */
AI __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AI float hmax8(__m256 a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Lane sums e_j by j mod 8 in j order, then hsum8. */
static void a2_softmax(float *x, int n) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 mx = ninf;
  for (int i = 0; i < n; i += 8) {
    const __m256 v = load8(x + i, n - i);
    mx = _mm256_max_ps(mx, n - i >= 8 ? v : _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(tail8(n - i))));
  }
  const __m256 vmax = _mm256_set1_ps(hmax8(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    __m256 e = exp256(_mm256_sub_ps(load8(x + i, n - i), vmax));
    if (n - i < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(tail8(n - i)));
    store8(x + i, e, n - i);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 total = _mm256_set1_ps(hsum8(sum));
  for (int i = 0; i < n; i += 8) store8(x + i, _mm256_div_ps(load8(x + i, n - i), total), n - i);
}

static void a2_swiglu(float *h, const float *g, const float *u, int n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int i = 0; i < n; i += 8) {
    const __m256 gv = load8(g + i, n - i), uv = load8(u + i, n - i);
    const __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
    store8(h + i, _mm256_mul_ps(_mm256_mul_ps(gv, sig), uv), n - i);
  }
}

/* In place: p[r] lane c -> p[c] lane r (8 x 8 floats). */
AI void transpose8x8(__m256 *p) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(p[2 * i], p[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(p[2 * i], p[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; i++) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    p[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    p[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

/* att[0 .. nk) = q.k_j * scale for 1 <= nk <= 8 keys from k, keys in lanes:
 * s = s + q[i] * k_j[i] for i = 0, 1, ... (a multiply, then an add), then
 * s * scale: the reference's operations in its order, so its bits. A
 * block of 8 keys x 8 head elements is transposed in registers. Keys past
 * nk repeat the last; not stored. */
AI void scores8(float *att, const float *q, const float *k, int64_t kv_stride, int head_dim, float scale, int nk) {
  const float *kr[8];
  for (int r = 0; r < 8; r++) kr[r] = k + (int64_t)(r < nk ? r : nk - 1) * kv_stride;
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < head_dim; i += 8) {
    __m256 col[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) col[r] = load8(kr[r] + i, head_dim - i);
    transpose8x8(col); /* col[c] lane r = key r's element i + c */
    const int n = head_dim - i < 8 ? head_dim - i : 8;
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
      if (c < n) s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(q[i + c]), col[c]));
  }
  store8(att, _mm256_mul_ps(s, _mm256_set1_ps(scale)), nk);
}

/* out[i..i+8) (lanes i < left) = sum_j att[j] v_j[i..], in j order (a
 * multiply, then an add): the reference's bits for these probabilities. */
AI void weighted_values8(float *out, const float *att, const float *v, int64_t kv_stride, int n_pos, int left) {
  __m256 a = _mm256_setzero_ps();
  for (int j = 0; j < n_pos; j++)
    a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(att[j]), load8(v + (int64_t)j * kv_stride, left)));
  store8(out, a, left);
}

/* The reference's scores and weighted sums, bit for bit; only softmax's
 * exp is a vector polynomial (and its sum 8 lanes wide). Why the
 * reference's order and not the avx512 level's 8-lane partial sums: the
 * K-quant fixtures agree with llama.cpp to 1e-3 only while no Q8_K
 * activation rounds differently from llama.cpp's, and with those sums (or
 * with an 8-lane rmsnorm, or one summed in double) one activation of the
 * rand256 Q3_K_M file did, 0.34 in a logit (tests/engine). */
static void a2_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                         int head_dim, float scale, float *att) {
  for (int j = 0; j < n_pos; j += 8)
    scores8(att + j, q, k + (int64_t)j * kv_stride, kv_stride, head_dim, scale, n_pos - j < 8 ? n_pos - j : 8);
  a2_softmax(att, n_pos);
  for (int i = 0; i < head_dim; i += 8) weighted_values8(out + i, att, v + i, kv_stride, n_pos, head_dim - i);
}

const ls_kernels ls_kernels_avx2 = {
    .name = "avx2",
    .level = LS_KL_AVX2,
    .act_bytes = a2_act_bytes,
    .act_prepare = a2_act_prepare,
    .matmul = a2_matmul,
    .pack = ls_x16_pack,
    .quantize_q8_0 = ls_quantize_row_q8_0,
    .rmsnorm = ls_ref_rmsnorm,
    .softmax = a2_softmax,
    .swiglu = a2_swiglu,
    .rope = ls_ref_rope,
    .attention = a2_attention,
};
