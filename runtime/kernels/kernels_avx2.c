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
 * row x up to 2 tokens. Norms, softmax, SwiGLU, RoPE and attention use the
 * scalar reference (they are a small share of the time). */
#include <immintrin.h>
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
    for (int64_t r = r0; r < r1; r++) tile(T, w, r, xa, xs, t0, y, ldy);
  }
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
    .softmax = ls_ref_softmax,
    .swiglu = ls_ref_swiglu,
    .rope = ls_ref_rope,
    .attention = ls_ref_attention,
};
