/* AVX-512 (F/BW/VL/DQ) + VNNI kernels.
 *
 * Quantised matmul (Q8_0 and Q4_0 weights): activations are quantised to
 * Q8_0 once per matmul (bit-identical to ls_quantize_row_q8_0) into quads
 * of 4 blocks (quad_act below): 2 x 64 bytes, the scales and (Q4_0) the
 * corrections negc. VNNI's vpdpbusd multiplies unsigned by signed bytes, so one side
 * is offset to unsigned and the accumulator starts at a correction that
 * removes the offset exactly. Q4_0: the weights are the stored nibbles
 * (value + 8) against the signed activations, from the activations'
 * correction negc = -8 * (sum of each lane's x): negc + sum (w + 8) x =
 * sum w x. Q8_0: the activations are x + 128 against the signed weights,
 * from the weights' correction -128 * (sum of each lane's w), computed once
 * per weight quad and shared by the tile's tokens (one load less per token
 * and quad). The pipelined tile (pipe_tile), which takes Q8_0 and Q4_0
 * calls with the weights coming from memory, uses Q8_0's way for both
 * types (Q4_0: nibble - 8); q_tile, Q4_0's other way only where pipe_tile
 * cannot (rows over 32768 columns).
 * Per token and quad of weights that leaves two dpbusd, a convert and two
 * float ops; the per-weight work (loads, permutes, scales) is shared by the
 * tile's tokens.
 *
 * Tiles are one or two rows x up to 4 tokens; every (row, token) element
 * goes through the same operations in the same order for any tile shape and
 * either tile, so results do not depend on how rows are split among threads
 * (nor on the number of tokens in the call). */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "kernels_tile.h"
#include "kquants_kernels.h"

#define AI static inline __attribute__((always_inline))

typedef struct quad_act {
  int8_t lo[64]; /* elements 0..15 of blocks 0..3 of the quad, 16 bytes per block (Q8_0: x + 128 as unsigned) */
  int8_t hi[64]; /* elements 16..31 of the same blocks */
  float dx[16]; /* lane i: the scale of block i/4 */
  int32_t negc[16]; /* Q4_0 only: -8 * (sum of lane i's 4 bytes of lo and 4 of hi) */
} quad_act;
_Static_assert(sizeof(quad_act) == 256, "quad_act is four cache lines");

/* Bytes per quad of prepared activations: Q8_0 leaves out negc (its
 * correction comes with the weights), so 4 tokens' activations of a
 * 5632-wide row take 34 KB instead of 45 (L1 is 32-48 KB). */
#define QUAD_BYTES(q4) ((q4) ? sizeof(quad_act) : offsetof(quad_act, negc))

#define QUAD 4 /* blocks per quad */

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }

static size_t a5_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  return is_quant(wtype) ? (size_t)((cols / LS_QK + QUAD - 1) / QUAD) * QUAD_BYTES(wtype == LS_Q4_0) : 0;
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
  if (ls_kq_is_type(wtype)) ls_kq_act_prepare_avx512(wtype, x, cols, xa);
  if (!is_quant(wtype)) return;
  int64_t nb = cols / LS_QK, nq = (nb + QUAD - 1) / QUAD;
  const size_t qb = QUAD_BYTES(wtype == LS_Q4_0);
  const __m512i k128 = _mm512_set1_epi8((char)0x80), k8 = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
  for (int64_t q = 0; q < nq; q++) {
    quad_act *qa = (quad_act *)((char *)xa + (size_t)q * qb);
    float d[QUAD] = {0};
    for (int k = 0; k < QUAD; k++) {
      int64_t b = q * QUAD + k;
      int8_t qs[LS_QK] = {0};
      if (b < nb) {
        uint16_t dh;
        quant_block(x + b * LS_QK, &dh, qs);
        d[k] = _cvtsh_ss(dh);
      }
      memcpy(qa->lo + 16 * k, qs, 16);
      memcpy(qa->hi + 16 * k, qs + 16, 16);
    }
    __m512i lo = _mm512_loadu_si512(qa->lo), hi = _mm512_loadu_si512(qa->hi);
    if (wtype == LS_Q4_0) {
      __m512i c = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, k8, lo), k8, hi);
      _mm512_storeu_si512(qa->negc, _mm512_sub_epi32(zero, c));
    } else { /* q + 128 as unsigned: the sign bit flipped */
      _mm512_storeu_si512(qa->lo, _mm512_xor_si512(lo, k128));
      _mm512_storeu_si512(qa->hi, _mm512_xor_si512(hi, k128)); /* no negc: QUAD_BYTES */
    }
    _mm512_storeu_ps(qa->dx, _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                                     _mm512_castps128_ps512(_mm_loadu_ps(d))));
  }
}

/* A quad of weight blocks unpacked as quad_act lays out activations: lo and
 * hi the weights' bytes (Q8_0 signed, Q4_0 the unsigned nibbles), dw[i] the
 * scale of block i/4; Q8_0's negc lane i = -128 * (sum of lane i's 4 bytes
 * of lo and 4 of hi). */
typedef struct quad_w {
  __m512i lo, hi, negc;
  __m512 dw;
} quad_w;

/* w.negc from w.lo and w.hi. */
AI quad_w with_correction(quad_w w) {
  const __m512i k128 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
  w.negc = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, k128, w.lo), k128, w.hi));
  return w;
}

/* Word permutations (vpermw / vpermt2w, AVX512BW) gathering a quad's quants
 * and scales. Blocks start on even offsets (Q4_0: 18 bytes, Q8_0: 34), so
 * every 16-byte group of quants is 8 whole words: output words 8k..8k+7 are
 * block k's group, from a pair of loads covering the quad and no more. */
/* Q4_0, loads at +0 and +8 (72 bytes): block k's quants are words 9k+1..9k+8. */
static const uint16_t ix_q4[32] __attribute__((aligned(64))) = {
    1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31, 60, 61, 62, 63};
/* Q8_0: elements 0..15 (words 17k+1..) from loads at +0 and +64, elements
 * 16..31 (words 17k+9..) from loads at +8 and +72 (136 bytes). */
static const uint16_t ix_q8_lo[32] __attribute__((aligned(64))) = {
    1, 2, 3, 4, 5, 6, 7, 8, 18, 19, 20, 21, 22, 23, 24, 25, 35, 36, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 59};
static const uint16_t ix_q8_hi[32] __attribute__((aligned(64))) = {
    5, 6, 7, 8, 9, 10, 11, 12, 22, 23, 24, 25, 26, 27, 28, 29, 39, 40, 41, 42, 43, 44, 45, 46, 56, 57, 58, 59, 60, 61, 62, 63};
/* Scales (word 9k or 17k) into words 4k..4k+3. */
static const uint16_t ix_d4[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};
static const uint16_t ix_d8[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51};

AI __m512i ld(const void *p) { return _mm512_loadu_si512(p); }

AI __m512 fp16_lanes(__m512i words) { return _mm512_cvtph_ps(_mm512_castsi512_si256(words)); }

/* A full quad of Q8_0 blocks (136 bytes). */
AI quad_w unpack_q8_quad(const uint8_t *b) {
  __m512i a0 = ld(b), a1 = ld(b + 64);
  quad_w w;
  w.lo = _mm512_permutex2var_epi16(a0, ld(ix_q8_lo), a1);
  w.hi = _mm512_permutex2var_epi16(ld(b + 8), ld(ix_q8_hi), ld(b + 72));
  w.dw = fp16_lanes(_mm512_permutex2var_epi16(a0, ld(ix_d8), a1));
  return with_correction(w);
}

/* A full quad of Q4_0 blocks (72 bytes): low nibbles are elements 0..15,
 * high nibbles 16..31. */
AI quad_w unpack_q4_quad(const uint8_t *b) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i a0 = ld(b);
  __m512i v = _mm512_permutex2var_epi16(a0, ld(ix_q4), ld(b + 8));
  quad_w w;
  w.lo = _mm512_and_si512(v, m4);
  w.hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
  w.dw = fp16_lanes(_mm512_permutexvar_epi16(ld(ix_d4), a0));
  w.negc = _mm512_setzero_si512(); /* unused: the activations carry Q4_0's correction */
  return w;
}

/* Quad q of a row of nb blocks; the last quad, when nb is not a multiple of
 * 4, through a zero-padded copy (padding: quants 0, scale 0, never read
 * beyond the row). */
AI quad_w unpack_quad(const int q4, const void *row, int64_t q, int64_t nb) {
  const int bs = q4 ? (int)sizeof(ls_block_q4_0) : (int)sizeof(ls_block_q8_0);
  const uint8_t *b = (const uint8_t *)row + (size_t)q * QUAD * bs;
  uint8_t pad[QUAD * sizeof(ls_block_q8_0)];
  if ((q + 1) * QUAD > nb) {
    memset(pad, 0, sizeof pad);
    memcpy(pad, b, (size_t)(nb - q * QUAD) * bs);
    b = pad;
  }
  return q4 ? unpack_q4_quad(b) : unpack_q8_quad(b);
}

/* y[t][r] for R rows (1 or 2) x T tokens (T <= QT) of a quantised matrix.
 * Per element: acc = fma(cvt(s_q), dw_q * dx_q, acc) for each quad q in
 * order, s_q the exact int32 dot product per lane (two vpdpbusd from the
 * correction negc), then the 16 lanes summed; the same operations for any
 * R and T.
 *
 * One row at a time, in address order (a single sequential stream per
 * core, what the hardware prefetcher handles best), each quad unpacked once
 * for up to QT tokens; Q8_0 with two or more tokens in pairs of rows, each
 * token's activations loaded once for both rows (the 1-row tile spent its
 * time on 4 loads per token and quad). Measured with bench_matmul on Zen 5
 * (per CPU-second, load ~2-5): 4 tokens Q8_0 in L2 36 -> 39-42 GB/s, from
 * DRAM at 5632 columns 14 -> 19-20; 64 tokens 2.37 -> 2.68. Today q_tile
 * takes Q8_0's token tiles after the first (prefill, weights in L2) and rows
 * too wide for pipe_tile; the rest goes to pipe_tile (this tile's 2-row
 * Q4_0 form lost from DRAM at 5632 columns, 16 -> 13). 4-row x 4-token
 * tiles (16 accumulators and 4 unpacked rows live) spill and were slower
 * than one row. */
#define QT 4
/* name(T, arg, ...): tile(R, T, arg, ...) with R fixed, for LS_TILE_T4. */
#define ROWS_TILE(name, tile, R)                                                                                 \
  AI void name(const int T, const int arg, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, \
               int64_t ldy) {                                                                                    \
    tile(R, T, arg, w, r, xa, xs, t0, y, ldy);                                                                   \
  }
/* Tiles prefetch ahead of the row they read, every line: the hardware
 * prefetcher alone falls behind these row streams on Zen 5 (bench_matmul,
 * per CPU-second, read loop 37-40 GB/s, two rows ahead at 2048 columns:
 * one token Q8_0 30.5 -> 36.7, Q4_0 30.4 -> 32, F16 35 -> 40; 4 tokens
 * Q8_0 15-20 -> 21.5, Q4_0 14-16.5 -> 20; 1 and 4 rows ahead measured the
 * same as 2). The distances: Q_PF_BYTES, F_PF_BYTES (per CPU). */
/* Quantised tiles (Q8_0/Q4_0) prefetch about Q_PF_BYTES ahead, in whole
 * tiles of R rows (2 to 8 tiles). bench_matmul, Zen 5, per CPU-second,
 * read loop 38-40 GB/s, load ~3-4, one token: 2048 columns Q4_0 31-32 ->
 * 39-40.5, Q8_0 37 -> 40 (8 rows ahead against 2; 16 rows: 37-39); 5632
 * columns Q4_0 40 with 2 rows (6 KB) against 30-35 with 5-8 (16-25 KB).
 * Float tiles lose with 8 rows (F16 one token 42.7 -> 39.5). */
#define Q_PF_BYTES 12288
AI size_t q_pf_ahead(const int R, size_t row_bytes) {
  size_t tiles_ahead = Q_PF_BYTES / (R * row_bytes);
  tiles_ahead = tiles_ahead < 2 ? 2 : tiles_ahead > 8 ? 8 : tiles_ahead;
  return tiles_ahead * R * row_bytes;
}

AI void q_tile_zero(const int R, const int T, __m512 acc[2][QT]) {
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();
}

/* y[t0 + t][r + i]: the 16 lanes of acc[i][t] summed. */
AI void q_tile_store(const int R, const int T, __m512 acc[2][QT], float *y, int64_t ldy, int64_t r, int t0) {
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[(int64_t)(t0 + t) * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]);
}

/* The R rows from r and the T tokens' prepared activations from t0. */
AI void q_tile_pointers(const int R, const int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0,
                        const void **rows, const quad_act **xt) {
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) xt[t] = (const quad_act *)((const char *)xa + (size_t)(t0 + t) * xs);
}

/* q_tile's flags: Q4_0 (else Q8_0); software prefetch (else the hardware
 * prefetcher alone: the plain streams, ls_kernels.streams). */
#define QF_Q4 1
#define QF_PREFETCH 2

AI void q_tile(const int R, const int T, const int flags, const ls_mat *w, int64_t r, const void *xa, size_t xs,
               int t0, float *y, int64_t ldy) {
  const int q4 = flags & QF_Q4, prefetch = flags & QF_PREFETCH;
  int64_t nb = w->cols / LS_QK, nq = (nb + QUAD - 1) / QUAD;
  const void *rows[2];
  const quad_act *xt[QT];
  q_tile_pointers(R, T, w, r, xa, xs, t0, rows, xt);
  const size_t quad_bytes = QUAD * (q4 ? sizeof(ls_block_q4_0) : sizeof(ls_block_q8_0));
  __m512 acc[2][QT];
  q_tile_zero(R, T, acc);
  const size_t pf_ahead = q_pf_ahead(R, w->row_bytes);
  for (int64_t q = 0; q < nq; q++) {
    quad_w wq[2];
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
      const char *pf = (const char *)rows[i] + pf_ahead + q * quad_bytes;
      if (prefetch) {
        #pragma GCC unroll 3
        for (size_t o = 0; o < quad_bytes + 63; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0); /* every line of the quad */
      }
      wq[i] = unpack_quad(q4, rows[i], q, nb);
    }
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const quad_act *a = (const quad_act *)((const char *)xt[t] + (size_t)q * QUAD_BYTES(q4));
      const __m512i lo = _mm512_load_si512(a->lo), hi = _mm512_load_si512(a->hi);
      const __m512i negc = q4 ? _mm512_load_si512(a->negc) : _mm512_setzero_si512();
      const __m512 dx = _mm512_load_ps(a->dx);
      #pragma GCC unroll 2
      for (int i = 0; i < R; i++) {
        __m512i s = q4 ? _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(negc, wq[i].lo, lo), wq[i].hi, hi)
                       : _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(wq[i].negc, lo, wq[i].lo), hi, wq[i].hi);
        acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wq[i].dw, dx), acc[i][t]);
      }
    }
  }
  q_tile_store(R, T, acc, y, ldy, r, t0);
}
ROWS_TILE(q_tile1, q_tile, 1)
ROWS_TILE(q_tile2, q_tile, 2)
LS_TILE_T4(tile_q8, q_tile1, QF_PREFETCH)
LS_TILE_T4(tile_q8_plain, q_tile1, 0)
LS_TILE_T4(tile_q4, q_tile1, QF_Q4 | QF_PREFETCH)
LS_TILE_T4(tile2_q8, q_tile2, QF_PREFETCH)

/* Lane r of the result: p[r]'s 16 lanes summed in _mm512_reduce_add_ps's
 * order (halves of 8, then 4, then lanes {0,2} and {1,3}, then those two),
 * for 8 keys at once: one key's score is the same as when it was reduced
 * alone, and does not depend on the other keys of its group. */
AI __m256 half_sum(__m512 p) { return _mm256_add_ps(_mm512_extractf32x8_ps(p, 1), _mm512_castps512_ps256(p)); }

/* [a's 4 sums of 128-bit halves | b's] */
AI __m256 quarter_sums(__m256 a, __m256 b) {
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x31), _mm256_permute2f128_ps(a, b, 0x20));
}

/* per 128-bit lane: [(s0+s2), (s1+s3)] of x's key, then of y's */
AI __m256 pair_sums(__m256 x, __m256 y) {
  return _mm256_add_ps(_mm256_shuffle_ps(x, y, 0x44), _mm256_shuffle_ps(x, y, 0xee));
}

AI __m256 reduce8(__m512 p0, __m512 p1, __m512 p2, __m512 p3, __m512 p4, __m512 p5, __m512 p6, __m512 p7) {
  __m256 x0 = quarter_sums(half_sum(p0), half_sum(p4)), x1 = quarter_sums(half_sum(p1), half_sum(p5));
  __m256 x2 = quarter_sums(half_sum(p2), half_sum(p6)), x3 = quarter_sums(half_sum(p3), half_sum(p7));
  return _mm256_hadd_ps(pair_sums(x0, x1), pair_sums(x2, x3)); /* keys 0 1 2 3 | 4 5 6 7 */
}

/* The pipelined tile: Q8_0 and Q4_0 weights, R rows (1 or 2) x T tokens
 * (1..4), each quad of weights loaded and prepared one iteration ahead of the
 * dot products that use it. The chain from a weight load to the last FMA is
 * long (load, permute, correction, two vpdpbusd, convert, FMA); with the
 * loads in the iteration that uses them, a load that missed the caches held
 * up that iteration's dependent instructions and the core stopped issuing
 * the next loads: memory time and compute time added up instead of
 * overlapping. bench_matmul, Zen 5, 2048 columns, 1 thread, from DRAM against
 * the same matrix in L2 (q_tile before this tile took these calls):
 * - Q8_0 1 token 21.7-24.5 -> 30.2-31.7 GB/s (0.80-0.91 -> 0.99-1.27 of
 *   the read loop), 2 tokens 17.3-21.8 -> 32.1-36.6, 4 tokens 16.3-23.5 ->
 *   25.5-26.7;
 * - Q4_0 1 token 22.7-23.6 -> 28.3-29.4 GB/s (0.76-0.78 -> 0.91-0.98);
 *   with 2-4 tokens Q4_0 already took this tile (4 tokens at 2048 columns,
 *   one row: 19.5 -> 22.5 GB/s when it was introduced).
 * Per quad:
 * - the weights are signed (Q8_0 as stored; Q4_0 nibble - 8) against x +
 *   128 (Q8_0's prepared bytes; Q4_0's stored bytes with the sign bit
 *   flipped in a register), from the weights' correction -128 * (sum of each
 *   lane's 8 weights): Q8_0's from unpack_q8_quad, Q4_0's 8192 - 128 *
 *   sum(nibble) in one vpdpbusd;
 * - the tile's scales come from tile_scales (lane 4k + t: d_x of block k,
 *   token t), one load and one multiply by d_w for all tokens; token t's
 *   lanes 4k..4k+3 = d_w,k * d_x,k are a shuffle within 128-bit lanes (off
 *   the two pipes that run vpdpbusd, the FMA and the multiply on Zen 5).
 * Each lane's int32 sum and float product are exactly q_tile's (integer
 * sums are exact; the float product is the same two operands), so the
 * element's operations and their order are those of q_tile: every tile
 * shape and path gives the same bits. Q4_0's activation-side correction
 * instead (unsigned nibbles against x as stored: no xor, no weight
 * correction, but a third load per token and quad) was slower: 4 tokens,
 * 2048 columns, 18 -> 14.5 GB/s. */
#define TILE_SCALES_MAX 256 /* quads (32768 columns) per tile_scales buffer */

/* dxg[16 q + 4k + t] = d_x of block k of quad q for token t0 + t (t < T;
 * the other lanes repeat token t0). */
static void tile_scales(const int q4, const void *xa, size_t xs, int t0, int T, int64_t nq, float *dxg) {
  const size_t qb = QUAD_BYTES(q4);
  for (int64_t q = 0; q < nq; q++) {
    __m512 d = _mm512_load_ps(((const quad_act *)((const char *)xa + (size_t)t0 * xs + q * qb))->dx);
    for (int t = 1; t < T; t++) {
      const quad_act *a = (const quad_act *)((const char *)xa + (size_t)(t0 + t) * xs + q * qb);
      d = _mm512_mask_mov_ps(d, (__mmask16)(0x1111u << t), _mm512_load_ps(a->dx));
    }
    _mm512_store_ps(dxg + 16 * q, d);
  }
}

/* One quad of a row, prepared for pipe_tile: signed weights, their
 * correction and d_w times the tile's scales. */
typedef struct pipe_quad {
  __m512i lo, hi, corr;
  __m512 prod;
} pipe_quad;

AI pipe_quad pipe_prepare(const int q4, const void *row, int64_t q, int64_t nb, const float *dxg, size_t pf_ahead) {
  const size_t quad_bytes = QUAD * (q4 ? sizeof(ls_block_q4_0) : sizeof(ls_block_q8_0));
  const char *pf = (const char *)row + pf_ahead + q * quad_bytes;
  #pragma GCC unroll 3
  for (size_t o = 0; o < quad_bytes + 63; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0); /* every line of the quad */
  quad_w u = unpack_quad(q4, row, q, nb);
  pipe_quad p;
  if (q4) {
    const __m512i k128 = _mm512_set1_epi8((char)0x80), k8 = _mm512_set1_epi8(8);
    p.corr = _mm512_dpbusd_epi32(_mm512_set1_epi32(8192), _mm512_add_epi8(u.lo, u.hi), k128);
    p.lo = _mm512_sub_epi8(u.lo, k8);
    p.hi = _mm512_sub_epi8(u.hi, k8);
  } else {
    p.corr = u.negc, p.lo = u.lo, p.hi = u.hi;
  }
  p.prod = _mm512_mul_ps(u.dw, _mm512_load_ps(dxg + 16 * q));
  return p;
}

/* Element t of each 128-bit lane, in all four (the immediate spelled out:
 * unoptimised builds do not fold t). */
AI __m512 lane_element(__m512 v, int t) {
  switch (t) {
  case 0: return _mm512_permute_ps(v, 0x00);
  case 1: return _mm512_permute_ps(v, 0x55);
  case 2: return _mm512_permute_ps(v, 0xaa);
  default: return _mm512_permute_ps(v, 0xff);
  }
}

/* Token t's prepared bytes of quad q as x + 128 (Q4_0 stores x itself). */
AI __m512i act_offset(const int q4, const int8_t *bytes) {
  const __m512i v = _mm512_load_si512(bytes);
  return q4 ? _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)) : v;
}

/* R rows (1 or 2) x T tokens (1..4); two rows share each token's loads
 * (Q4_0, 4 tokens at 5632 columns: 14.4 -> 21-22 GB/s against one row). */
AI void pipe_tile(const int q4, const int R, const int T, const ls_mat *w, int64_t r, const void *xa, size_t xs,
                  int t0, const float *dxg, float *y, int64_t ldy) {
  const int64_t nb = w->cols / LS_QK, nq = (nb + QUAD - 1) / QUAD;
  const void *rows[2];
  const quad_act *xt[QT];
  q_tile_pointers(R, T, w, r, xa, xs, t0, rows, xt);
  __m512 acc[2][QT];
  q_tile_zero(R, T, acc);
  const size_t pf_ahead = q_pf_ahead(R, w->row_bytes);
  pipe_quad cur[2];
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++) cur[i] = pipe_prepare(q4, rows[i], 0, nb, dxg, pf_ahead);
  for (int64_t q = 0; q < nq; q++) {
    pipe_quad next[2];
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) next[i] = q + 1 < nq ? pipe_prepare(q4, rows[i], q + 1, nb, dxg, pf_ahead) : cur[i];
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const quad_act *a = (const quad_act *)((const char *)xt[t] + q * QUAD_BYTES(q4));
      const __m512i lo = act_offset(q4, a->lo), hi = act_offset(q4, a->hi);
      #pragma GCC unroll 2
      for (int i = 0; i < R; i++) {
        __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(cur[i].corr, lo, cur[i].lo), hi, cur[i].hi);
        acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), lane_element(cur[i].prod, t), acc[i][t]);
      }
    }
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) cur[i] = next[i];
  }
  q_tile_store(R, T, acc, y, ldy, r, t0);
}

/* Rows [r0, r1) x tokens t0 .. t0+T-1, two rows a tile; one function per
 * type and T (noinline: inlined into one body, GCC left some of the token
 * counts' accumulators unrolled less, bench_matmul Q4_0 2 tokens at 2048
 * columns 20.5 GB/s against 31.5 for the 1-row q_tile). */
#define PIPE_ROWS(name, q4, T)                                                                                    \
  __attribute__((noinline)) static void name(const ls_mat *w, const void *xa, size_t xs, int t0, const float *dxg, \
                                             float *y, int64_t ldy, int64_t r0, int64_t r1) {                      \
    int64_t r = r0;                                                                                              \
    for (; r + 2 <= r1; r += 2) pipe_tile(q4, 2, T, w, r, xa, xs, t0, dxg, y, ldy);                              \
    for (; r < r1; r++) pipe_tile(q4, 1, T, w, r, xa, xs, t0, dxg, y, ldy);                                      \
  }
PIPE_ROWS(pipe_rows_q4_1, 1, 1)
PIPE_ROWS(pipe_rows_q4_2, 1, 2)
PIPE_ROWS(pipe_rows_q4_3, 1, 3)
PIPE_ROWS(pipe_rows_q4_4, 1, 4)
PIPE_ROWS(pipe_rows_q8_1, 0, 1)
PIPE_ROWS(pipe_rows_q8_2, 0, 2)
PIPE_ROWS(pipe_rows_q8_3, 0, 3)
PIPE_ROWS(pipe_rows_q8_4, 0, 4)

typedef void (*pipe_rows_fn)(const ls_mat *, const void *, size_t, int, const float *, float *, int64_t, int64_t,
                             int64_t);

/* Tokens [t0, t1) of Q8_0 or Q4_0 weights through pipe_tile, up to QT a
 * tile; false when the row is too wide for the scale buffer (the caller then
 * uses q_tile). */
static int pipe_matmul(const ls_mat *w, const void *xa, size_t xs, int t0, int t1, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  static const pipe_rows_fn rows_fn[2][QT] = {{pipe_rows_q8_1, pipe_rows_q8_2, pipe_rows_q8_3, pipe_rows_q8_4},
                                              {pipe_rows_q4_1, pipe_rows_q4_2, pipe_rows_q4_3, pipe_rows_q4_4}};
  const int q4 = w->type == LS_Q4_0;
  const int64_t nq = (w->cols / LS_QK + QUAD - 1) / QUAD;
  if (nq > TILE_SCALES_MAX) return 0;
  float dxg[TILE_SCALES_MAX * 16] __attribute__((aligned(64)));
  for (int t = t0; t < t1; t += QT) {
    const int T = t1 - t < QT ? t1 - t : QT;
    tile_scales(q4, xa, xs, t, T, nq, dxg);
    rows_fn[q4][T - 1](w, xa, xs, t, dxg, y, ldy, r0, r1);
  }
  return 1;
}

/* Float weights: 16 columns per step, masked tail. */
AI __m512 load_wf(const int type, const void *row, int64_t c, __mmask16 m) {
  if (type == LS_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + c);
  __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c);
  if (type == LS_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Float tiles prefetch F_PF_BYTES ahead of the line they read (rows are
 * contiguous: the same stream). Two rows ahead, as before, is 8 KB at 2048
 * columns but 22 KB at 5632 (F16 FFN down), too far: bench_matmul, Zen 5,
 * one token, 1 thread, load ~3, read loop 39-43 GB/s: F16 5632 columns 4 KB
 * ahead 33, 8 KB 37-39.4, 12 KB 33, 16 KB 31.5, two rows 31-32; 2048
 * columns 8 KB 40-41, 12 KB 35.6, 16 KB 34. Intel (the AMX Xeon, family 6
 * model 167) wants 2 KB: F16 2048 columns, 1 token, 1 thread, 8 KB 11.0
 * GB/s of a 19.1 read loop, 4 KB 14.7, 2 KB 16.1-16.6, 1 KB 15.8; so the
 * distance is the CPU's (ls_a5_tune, kernels_dispatch.c). */
size_t ls_a5_float_pf_bytes = 8192;
#define F_PF_BYTES ls_a5_float_pf_bytes
/* or'ed into f_tile's type: no software prefetch (the plain streams) */
#define F_PLAIN 0x100

/* R rows (1 or 2) x T tokens (T <= 4) of float weights. Per element:
 * column group g (16 columns, the last one masked) into accumulator g % 2
 * by FMA, then acc0 + acc1 and the 16 lanes summed; the same operations for
 * any R and T. Two accumulators halve the FMA chain of a row stream (one
 * chain step per 64 bytes of F16). Calls with up to 4 tokens walk rows one
 * at a time in address order; more tokens use 2-row tiles, which share each
 * token's loads between the rows (bench_matmul, Zen 5, 64 tokens: 2.5 GB/s
 * per CPU-second against 1.2 for 1-row tiles). */
AI void f_tile_sums(const int R, const int T, const int type_flags, const ls_mat *w, int64_t r, const void *xa,
                    size_t xs, int t0, float *y, int64_t ldy, __m512 *sums) {
  const int type = type_flags & ~F_PLAIN, prefetch = !(type_flags & F_PLAIN);
  int64_t cols = w->cols;
  const void *rows[2];
  const float *xt[4];
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++) rows[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) xt[t] = (const float *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m512 acc[2][4][2];
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[i][t][0] = acc[i][t][1] = _mm512_setzero_ps();
  int64_t c = 0;
  /* two steps an iteration: Zen 4, plain streams, one token, 2048 columns:
   * 0.79 -> 0.84 of the read loop (bench_matmul); the sums are unchanged */
  #pragma GCC unroll 2
  for (; c + 32 <= cols; c += 32) {
    __m512 wv[2][2];
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
      /* one line per 32 columns: all of F16/BF16, half of F32 */
      if (prefetch) _mm_prefetch((const char *)rows[i] + F_PF_BYTES + c * (type == LS_F32 ? 4 : 2), _MM_HINT_T0);
      wv[i][0] = load_wf(type, rows[i], c, 0xffff);
      wv[i][1] = load_wf(type, rows[i], c + 16, 0xffff);
    }
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      __m512 x0 = _mm512_loadu_ps(xt[t] + c), x1 = _mm512_loadu_ps(xt[t] + c + 16);
      #pragma GCC unroll 2
      for (int i = 0; i < R; i++) {
        acc[i][t][0] = _mm512_fmadd_ps(wv[i][0], x0, acc[i][t][0]);
        acc[i][t][1] = _mm512_fmadd_ps(wv[i][1], x1, acc[i][t][1]);
      }
    }
  }
  /* at most two groups left, even then odd (k a constant: acc stays in registers) */
  #pragma GCC unroll 2
  for (int k = 0; k < 2; k++, c += 16) {
    if (c >= cols) break;
    __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1);
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
      __m512 wv = load_wf(type, rows[i], c, m);
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++)
        acc[i][t][k] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xt[t] + c), acc[i][t][k]);
    }
  }
  if (sums) { /* lanes not yet summed, element (i, t) at sums[i * T + t] */
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++)
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++) sums[i * T + t] = _mm512_add_ps(acc[i][t][0], acc[i][t][1]);
    return;
  }
  if (R * T < 4) {
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++)
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++)
        y[(int64_t)(t0 + t) * ldy + r + i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][t][0], acc[i][t][1]));
    return;
  }
  /* the same sums, their shuffles shared (short rows: the per-element
   * reductions cost more than the FMAs at 64 columns) */
  __m512 s[8];
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) s[i * T + t] = _mm512_add_ps(acc[i][t][0], acc[i][t][1]);
  #pragma GCC unroll 8
  for (int e = R * T; e < 8; e++) s[e] = s[0];
  float sum[8];
  _mm256_storeu_ps(sum, reduce8(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]));
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++)
    #pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[(int64_t)(t0 + t) * ldy + r + i] = sum[i * T + t];
}

AI void f_tile(const int R, const int T, const int type, const ls_mat *w, int64_t r, const void *xa, size_t xs,
               int t0, float *y, int64_t ldy) {
  f_tile_sums(R, T, type, w, r, xa, xs, t0, y, ldy, NULL);
}

/* The 16 lane sums of s[0..15] in _mm512_reduce_add_ps's order, with 512-bit
 * shuffles shared by all 16 (3 operations per sum instead of reduce8's 5):
 * halves of 8, then of 4, then lanes {0,2} and {1,3}, then those two. Lane
 * 4b + j of the result is the sum of s[4j + b]. */
AI __m512 reduce16(const __m512 *s) {
  __m512 h[8], q[4], p[2];
  #pragma GCC unroll 8
  for (int m = 0; m < 8; m++) /* [s2m's 8 half sums | s2m+1's] */
    h[m] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * m], s[2 * m + 1], 0xee),
                         _mm512_shuffle_f32x4(s[2 * m], s[2 * m + 1], 0x44));
  #pragma GCC unroll 4
  for (int m = 0; m < 4; m++) /* 4 sums of s[4m], s[4m+1], s[4m+2], s[4m+3], one per 128-bit lane */
    q[m] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * m], h[2 * m + 1], 0xdd),
                         _mm512_shuffle_f32x4(h[2 * m], h[2 * m + 1], 0x88));
  #pragma GCC unroll 2
  for (int m = 0; m < 2; m++) /* per lane b: (0+2), (1+3) of s[8m+b], then of s[8m+4+b] */
    p[m] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * m], q[2 * m + 1], 0x44), _mm512_shuffle_ps(q[2 * m], q[2 * m + 1], 0xee));
  return _mm512_add_ps(_mm512_shuffle_ps(p[0], p[1], 0x88), _mm512_shuffle_ps(p[0], p[1], 0xdd));
}

/* 4 rows x 4 tokens of float weights: two 2 x 4 tiles, their 16 sums reduced
 * together; each token's 4 outputs are adjacent in y (one 128-bit store). */
AI void f_tile4x4(const int type, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y,
                  int64_t ldy) {
  __m512 s[16];
  f_tile_sums(2, 4, type, w, r, xa, xs, t0, y, ldy, s);
  f_tile_sums(2, 4, type, w, r + 2, xa, xs, t0, y, ldy, s + 8);
  __m512 out = reduce16(s); /* lane 4t + i: row r + i, token t0 + t */
  _mm_storeu_ps(y + (int64_t)t0 * ldy + r, _mm512_castps512_ps128(out));
  _mm_storeu_ps(y + (int64_t)(t0 + 1) * ldy + r, _mm512_extractf32x4_ps(out, 1));
  _mm_storeu_ps(y + (int64_t)(t0 + 2) * ldy + r, _mm512_extractf32x4_ps(out, 2));
  _mm_storeu_ps(y + (int64_t)(t0 + 3) * ldy + r, _mm512_extractf32x4_ps(out, 3));
}
static void tile4x4_f32(const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) {
  f_tile4x4(LS_F32, w, r, xa, xs, t0, y, ldy);
}
static void tile4x4_f16(const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) {
  f_tile4x4(LS_F16, w, r, xa, xs, t0, y, ldy);
}
static void tile4x4_bf16(const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) {
  f_tile4x4(LS_BF16, w, r, xa, xs, t0, y, ldy);
}

ROWS_TILE(f_tile1, f_tile, 1)
ROWS_TILE(f_tile2, f_tile, 2)
LS_TILE_T4(tile_f32, f_tile1, LS_F32)
LS_TILE_T4(tile_f16, f_tile1, LS_F16)
LS_TILE_T4(tile_bf16, f_tile1, LS_BF16)
LS_TILE_T4(tile_f32_plain, f_tile1, LS_F32 | F_PLAIN)
LS_TILE_T4(tile_f16_plain, f_tile1, LS_F16 | F_PLAIN)
LS_TILE_T4(tile_bf16_plain, f_tile1, LS_BF16 | F_PLAIN)
LS_TILE_T4(tile2_f32, f_tile2, LS_F32)
LS_TILE_T4(tile2_f16, f_tile2, LS_F16)
LS_TILE_T4(tile2_bf16, f_tile2, LS_BF16)

/* The sum of 16 vectors lane-wise in _mm512_reduce_add_ps's lane order. */
AI __m512 tree16(const __m512 *p) {
  __m512 t[8];
  #pragma GCC unroll 8
  for (int i = 0; i < 8; i++) t[i] = _mm512_add_ps(p[i + 8], p[i]);
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) t[i] = _mm512_add_ps(t[i + 4], t[i]);
  return _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3]));
}

/* plain: the streams of up to 4 tokens without software prefetch, Q8_0 one
 * row at a time (ls_kernels.streams); prefill (more than 4 tokens), Q4_0
 * and the K-quants' several-token tiles keep theirs (they lost without it
 * on Zen 4 too). */
AI void a5_matmul_streams(const int plain, const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy,
                          int64_t r0, int64_t r1) {
  void (*tile)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  void (*tile_small)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t) = NULL;
  void (*tile2)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t) = NULL;
  void (*tile4x4)(const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t) = NULL;
  switch (w->type) {
  case LS_Q8_0: tile = tile_q8, tile2 = tile2_q8, tile_small = tile_q8_plain; break;
  case LS_Q4_0: tile = tile_q4; break;
  case LS_F32: tile = tile_f32, tile2 = tile2_f32, tile4x4 = tile4x4_f32, tile_small = tile_f32_plain; break;
  case LS_F16: tile = tile_f16, tile2 = tile2_f16, tile4x4 = tile4x4_f16, tile_small = tile_f16_plain; break;
  case LS_BF16: tile = tile_bf16, tile2 = tile2_bf16, tile4x4 = tile4x4_bf16, tile_small = tile_bf16_plain; break;
  default: /* the other block types (kquants_avx512.c) */
    if (ls_kq_is_type(w->type)) ls_kq_matmul_avx512(w, xa, xs, n, y, ldy, r0, r1, !plain);
    return;
  }
  /* Zen 4 (bench_matmul, from DRAM, fraction of the read loop, 1 thread):
   * Q8_0 1 token 0.76 -> 0.89, 2 tokens 0.35 -> 0.64, 4 tokens 0.23 -> 0.55;
   * F16 1 token 0.49 -> 0.85, 2 tokens 0.42 -> 0.71, but 4 tokens 0.29 ->
   * 0.26 (float rows with 3-4 tokens keep the prefetch) */
  const int small = w->type == LS_Q8_0 ? n <= 4 : n <= 2 && w->cols > 512;
  if (plain && tile_small && small) {
    for (int64_t r = r0; r < r1; r++) tile_small(n, w, r, xa, xs, 0, y, ldy);
    return;
  }
  /* Q8_0 and Q4_0: pipe_tile for the first token tile, the one that reads
   * the weights from memory (decode and small batches: all their tokens);
   * Q4_0's later tiles too (its fastest tile in cache), Q8_0's through q_tile
   * in pairs of rows (prefill, from L2 after the first tile: prefill-256, 1
   * thread, 97-100 tok/s against 90-93 with pipe_tile). The same bits either
   * way. */
  int t_begin = 0;
  if (is_quant(w->type)) {
    const int t_pipe = w->type == LS_Q4_0 || n < QT ? n : QT;
    if (pipe_matmul(w, xa, xs, 0, t_pipe, y, ldy, r0, r1)) t_begin = t_pipe;
  }
  /* the other token tiles of up to 4; rows one at a time in address order
   * (one sequential stream per core), Q8_0 in pairs of rows, float weights
   * in pairs for more than 4 tokens (prefill: from L2 after the first token
   * tile) */
  const int quant = is_quant(w->type);
  /* float rows this short sit in cache: with 2-4 tokens the several-row tiles' shared
   * reductions win over walking one row at a time (stories260K's 64 and 172 columns) */
  const int short_rows = w->cols <= 512;
  for (int t0 = t_begin; t0 < n; t0 += 4) {
    int T = n - t0 < 4 ? n - t0 : 4;
    int64_t r = r0;
    if (tile4x4 && T == 4 && (n > 4 || short_rows))
      for (; r + 4 <= r1; r += 4) tile4x4(w, r, xa, xs, t0, y, ldy);
    if (tile2 && (n > 4 || (n > 1 && (quant || short_rows))))
      for (; r + 2 <= r1; r += 2) tile2(T, w, r, xa, xs, t0, y, ldy);
    for (; r < r1; r++) tile(T, w, r, xa, xs, t0, y, ldy);
  }
}

static void a5_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  if (w->layout != LS_LAYOUT_ROWS) {
    ls_matmul_by_rows(a5_matmul, w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  a5_matmul_streams(0, w, xa, xs, n, y, ldy, r0, r1);
}

static void a5_matmul_plain(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                            int64_t r1) {
  if (w->layout != LS_LAYOUT_ROWS) {
    ls_matmul_by_rows(a5_matmul_plain, w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  a5_matmul_streams(1, w, xa, xs, n, y, ldy, r0, r1);
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

AI __mmask8 tail_mask8(int left) { return left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1); }

/* att[j0 .. j0+nk) = q.k_j * scale for 1 <= nk <= 8 keys: per key the FMA
 * chain over 16-float chunks and the reduction of the one-key kernel, but
 * the reduction's shuffles shared by 8 keys (a full horizontal reduction per
 * key was the bottleneck at small head dims). Keys past nk repeat the last
 * one; their lanes are not stored. */
AI void scores8(float *att, const float *q, const float *k, int64_t kv_stride, int head_dim, float scale, int nk) {
  const float *kr[8];
  for (int r = 0; r < 8; r++) kr[r] = k + (int64_t)(r < nk ? r : nk - 1) * kv_stride;
  __m512 acc[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
  for (int i = 0; i < head_dim; i += 16) {
    __mmask16 m = tail_mask(head_dim - i);
    __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kr[r] + i), acc[r]);
  }
  _mm256_mask_storeu_ps(att, tail_mask8(nk), _mm256_mul_ps(reduce8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]), _mm256_set1_ps(scale)));
}

/* out[i..i+16) = sum_j att[j] v_j[i..]: four accumulators over j mod 4 (a
 * single one was a chain of n_pos dependent FMAs), added as (0+1)+(2+3). */
AI void weighted_values16(float *out, const float *att, const float *v, int64_t kv_stride, int n_pos, __mmask16 m) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#define LS_WV(acc, jj) acc = _mm512_fmadd_ps(_mm512_set1_ps(att[jj]), _mm512_maskz_loadu_ps(m, v + (int64_t)(jj) * kv_stride), acc)
  int j = 0;
  for (; j + 4 <= n_pos; j += 4) {
    LS_WV(a0, j);
    LS_WV(a1, j + 1);
    LS_WV(a2, j + 2);
    LS_WV(a3, j + 3);
  }
  if (j < n_pos) LS_WV(a0, j);
  if (j + 1 < n_pos) LS_WV(a1, j + 1);
  if (j + 2 < n_pos) LS_WV(a2, j + 2);
#undef LS_WV
  _mm512_mask_storeu_ps(out, m, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* The order of every sum depends on n_pos and head_dim only, never on the
 * batch or thread: a row's attention is the same in any batch. */
static void a5_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                         int head_dim, float scale, float *att) {
  int j = 0;
  for (; j + 8 <= n_pos; j += 8) scores8(att + j, q, k + (int64_t)j * kv_stride, kv_stride, head_dim, scale, 8);
  if (j < n_pos) scores8(att + j, q, k + (int64_t)j * kv_stride, kv_stride, head_dim, scale, n_pos - j);
  a5_softmax(att, n_pos);
  for (int i = 0; i < head_dim; i += 16) weighted_values16(out + i, att, v + i, kv_stride, n_pos, tail_mask(head_dim - i));
}

/* ---- attention for up to 16 queries of one head and sequence ----------------
 * Queries in lanes: lane r is query r, so one broadcast of a key (or value)
 * element serves 16 queries, and no horizontal sum is needed per key. Every
 * sum is taken in a5_attention's order for that query alone, so the rows of
 * a prefill equal the same rows decoded one at a time bit for bit:
 *  - score: the products q_l k_l of lanes l < 16 (zero past the head), summed
 *    as _mm512_reduce_add_ps sums the lanes: (l, l+8), then (i, i+4), then
 *    (0, 2) and (1, 3), then those two; times scale;
 *  - softmax: the maximum over the query's positions, e_j = exp(s_j - max),
 *    the sum of e_j into 16 partial sums by j mod 16 in order (the lanes of
 *    a5_softmax's vector sum), reduced in the same tree; then e_j / sum;
 *  - values: four accumulators by j mod 4, each in j order, (0+1)+(2+3).
 * Positions past a query's end get probability 0 and add nothing. Signs of
 * zero aside (an all-zero sum), nothing differs; a score's sign of zero does
 * not reach the probabilities (exp(+-0 - m) = exp(-m)). */
#define ROWS 16

/* Key j's scores for the 16 queries: q.k_j * scale (HD = head size, 8 or 16). */
AI __m512 key_scores(const int HD, const __m512 *qt, const float *kj, __m512 vs) {
  __m512 p[16];
  #pragma GCC unroll 16
  for (int l = 0; l < HD; l++) p[l] = _mm512_mul_ps(qt[l], _mm512_set1_ps(kj[l]));
  __m512 t[8];
  /* lanes 8..15 of a head of 8 are zero: (l, l+8) is l itself */
  #pragma GCC unroll 8
  for (int i = 0; i < 8; i++) t[i] = HD > 8 ? _mm512_add_ps(p[i + 8], p[i]) : p[i];
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) t[i] = _mm512_add_ps(t[i + 4], t[i]);
  return _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3])), vs);
}

/* S[j] (16 queries) = q.k_j * scale for j < n_keys. Returns each query's
 * largest score over its own positions (n_pos lanes), kept in two maxima by
 * j parity so that no chain of max runs through all keys (the maximum does
 * not depend on the order). */
AI __m512 rows_scores(const int HD, float *S, const __m512 *qt, const float *k, int64_t kv_stride, int n_keys,
                      float scale, __m512i n_pos) {
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 mx0 = _mm512_set1_ps(-INFINITY), mx1 = mx0;
  int j = 0;
  for (; j + 2 <= n_keys; j += 2) {
    __m512 s0 = key_scores(HD, qt, k + (int64_t)j * kv_stride, vs);
    __m512 s1 = key_scores(HD, qt, k + (int64_t)(j + 1) * kv_stride, vs);
    _mm512_store_ps(S + (int64_t)j * ROWS, s0);
    _mm512_store_ps(S + (int64_t)(j + 1) * ROWS, s1);
    mx0 = _mm512_mask_max_ps(mx0, _mm512_cmpgt_epi32_mask(n_pos, _mm512_set1_epi32(j)), mx0, s0);
    mx1 = _mm512_mask_max_ps(mx1, _mm512_cmpgt_epi32_mask(n_pos, _mm512_set1_epi32(j + 1)), mx1, s1);
  }
  if (j < n_keys) {
    __m512 s0 = key_scores(HD, qt, k + (int64_t)j * kv_stride, vs);
    _mm512_store_ps(S + (int64_t)j * ROWS, s0);
    mx0 = _mm512_mask_max_ps(mx0, _mm512_cmpgt_epi32_mask(n_pos, _mm512_set1_epi32(j)), mx0, s0);
  }
  return _mm512_max_ps(mx0, mx1);
}

/* S[j] -> probabilities per query lane (n_pos lanes: positions per query;
 * mx: each query's largest score). */
AI void rows_softmax(float *S, __m512i n_pos, int n_keys, __m512 mx) {
  __m512 part[16];
  #pragma GCC unroll 16
  for (int l = 0; l < 16; l++) part[l] = _mm512_setzero_ps();
  for (int j0 = 0; j0 < n_keys; j0 += 16) {
    #pragma GCC unroll 16
    for (int l = 0; l < 16; l++) {
      int j = j0 + l;
      if (j >= n_keys) break;
      __mmask16 in = _mm512_cmpgt_epi32_mask(n_pos, _mm512_set1_epi32(j));
      float *sj = S + (int64_t)j * ROWS;
      __m512 e = _mm512_maskz_mov_ps(in, exp512(_mm512_sub_ps(_mm512_load_ps(sj), mx)));
      _mm512_store_ps(sj, e);
      part[l] = _mm512_add_ps(part[l], e);
    }
  }
  __mmask16 some = _mm512_cmpgt_epi32_mask(n_pos, _mm512_setzero_si512());
  __m512 sum = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), some, tree16(part)); /* empty lanes: 0 / 1 */
  for (int j = 0; j < n_keys; j++)
    _mm512_store_ps(S + (int64_t)j * ROWS, _mm512_div_ps(_mm512_load_ps(S + (int64_t)j * ROWS), sum));
}

/* acc[i] = sum over keys j = r, r+4, ... of P_j v_j[i], in j order. */
AI void rows_values_mod4(const int HD, __m512 *acc, const float *P, const float *v, int64_t kv_stride, int n_keys,
                         int r) {
  #pragma GCC unroll 16
  for (int i = 0; i < HD; i++) acc[i] = _mm512_setzero_ps();
  for (int j = r; j < n_keys; j += 4) {
    __m512 pj = _mm512_load_ps(P + (int64_t)j * ROWS);
    const float *vj = v + (int64_t)j * kv_stride;
    #pragma GCC unroll 16
    for (int i = 0; i < HD; i++) acc[i] = _mm512_fmadd_ps(pj, _mm512_set1_ps(vj[i]), acc[i]);
  }
}

AI void rows_attention(const int HD, float *out, int64_t out_stride, const float *q, int64_t q_stride,
                       const int *n_pos, int n_q, const float *k, const float *v, int64_t kv_stride, float scale,
                       float *S) {
  __mmask16 live = (__mmask16)((1u << n_q) - 1);
  __m512i np = _mm512_maskz_loadu_epi32(live, n_pos);
  int n_keys = 0;
  for (int r = 0; r < n_q; r++) n_keys = n_pos[r] > n_keys ? n_pos[r] : n_keys;
  __m512i qrow = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                    _mm512_set1_epi32((int)q_stride));
  __m512 qt[16];
  #pragma GCC unroll 16
  for (int l = 0; l < HD; l++) qt[l] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, qrow, q + l, 4);
  rows_softmax(S, np, n_keys, rows_scores(HD, S, qt, k, kv_stride, n_keys, scale, np));
  __m512 a[16], b[16];
  rows_values_mod4(HD, a, S, v, kv_stride, n_keys, 0);
  rows_values_mod4(HD, b, S, v, kv_stride, n_keys, 1);
  #pragma GCC unroll 16
  for (int i = 0; i < HD; i++) qt[i] = _mm512_add_ps(a[i], b[i]); /* qt: now a0 + a1 */
  rows_values_mod4(HD, a, S, v, kv_stride, n_keys, 2);
  rows_values_mod4(HD, b, S, v, kv_stride, n_keys, 3);
  __m512i orow = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                    _mm512_set1_epi32((int)out_stride));
  #pragma GCC unroll 16
  for (int i = 0; i < HD; i++)
    _mm512_mask_i32scatter_ps(out + i, live, orow, _mm512_add_ps(qt[i], _mm512_add_ps(a[i], b[i])), 4);
}

static int a5_attention_rows(float *out, int64_t out_stride, const float *q, int64_t q_stride, const int *n_pos,
                             int n_q, const float *k, const float *v, int64_t kv_stride, int head_dim, float scale,
                             float *att) {
  if (n_q < 1 || n_q > ROWS || (int64_t)ROWS * (q_stride > out_stride ? q_stride : out_stride) > INT32_MAX) return 0;
  if (head_dim == 8) rows_attention(8, out, out_stride, q, q_stride, n_pos, n_q, k, v, kv_stride, scale, att);
  else if (head_dim == 16) rows_attention(16, out, out_stride, q, q_stride, n_pos, n_q, k, v, kv_stride, scale, att);
  else return 0;
  return 1;
}
#undef ROWS

#define A5_TABLE(streams_name, matmul_fn)                                                                       \
  {                                                                                                               \
    .name = "avx512", .level = LS_KL_AVX512, .streams = streams_name, .act_bytes = a5_act_bytes,                  \
    .act_prepare = a5_act_prepare, .matmul = matmul_fn, .quantize_q8_0 = a5_quantize_q8_0, .rmsnorm = a5_rmsnorm, \
    .softmax = a5_softmax, .swiglu = a5_swiglu, .rope = ls_ref_rope, .attention = a5_attention,                  \
    .attention_rows = a5_attention_rows,                                                                          \
  }
const ls_kernels ls_kernels_avx512 = A5_TABLE("prefetch", a5_matmul);
const ls_kernels ls_kernels_avx512_plain = A5_TABLE("plain", a5_matmul_plain);
