/* AVX2 kernels for Q4_K, Q5_K and Q6_K against Q8_K activations (the other
 * types of kquants_kernels.h go to the reference). The AVX-512 level has
 * its own (kquants_avx512.c), computing the same integers.
 *
 * A weight super-block is unpacked once into eight vectors of 32 unsigned
 * values (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63) and int16 scale vectors, then
 * dotted with each token of a chunk: maddubs (u8 x s8 -> pairs of int16,
 * no saturation at these ranges: 63 * 127 * 2 < 32767), madd with the
 * scales (-> int32), a horizontal sum, and the mins (Q4_K/Q5_K) or Q6_K's
 * "-32" through the activation's 16-element sums. Every sum is an exact
 * integer, and the float combine is ls_kq_acc_k in block order, so results
 * are bit-identical to the reference for any row range or token count. */
#include <immintrin.h>
#include <string.h>

#include "kquants_kernels.h"
#include "oct_avx2.h"

#define AI static inline __attribute__((always_inline))
#define TOK 8 /* tokens per pass over a row's blocks */
/* One token: software prefetch this far ahead in the row (the rows of a
 * chunk are one stream). AVX2-only EPYC, bench_matmul 1 token from DRAM, 1 /
 * 2 threads: Q4_K 4.1 / 7.0 -> 5.1 / 8.8 GB/s, Q6_K 5.4 -> 6.6 (1 thread);
 * 1024 about the same, 4096 no better than none. */
#define KQ_PF_AHEAD 2048

typedef struct {
  __m256i q[8];  /* values of elements 32c .. 32c+31 */
  __m256i sc[8]; /* int16 scales: low 128 bits for elements 32c..32c+15, high for the rest */
  __m256i bmul;  /* int16 multiplier of the activation's bsums[j] (mins, or Q6_K's -32 * scale) */
  float d, dmin;
} kblock;

AI int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* The 8 6-bit scales and 8 mins of a Q4_K/Q5_K super-block as int16:
 * scales in the low 128 bits, mins in the high (llama.cpp's unpacking of
 * the 12 bytes: the values ls_kq_scale_min_k4 gives, 4 at a time). */
AI __m256i scales_mins_k4(const uint8_t *s) {
  const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  uint32_t u[4];
  memcpy(u, s, 12);
  u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4); /* mins 4..7 */
  const uint32_t mins03 = u[1] & kmask1;
  u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4); /* scales 4..7 */
  u[2] = mins03;
  u[0] &= kmask1; /* scales 0..3 */
  return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], u[1], u[0]));
}

/* pshufb control: int16 word a of a 128-bit lane in every word of the low
 * lane, word b in every word of the high lane. */
AI __m256i word_bcast(int a, int b) {
  return _mm256_set_m128i(_mm_set1_epi16((short)(((2 * b + 1) << 8) | (2 * b))),
                          _mm_set1_epi16((short)(((2 * a + 1) << 8) | (2 * a))));
}

/* The 8 scales of scales_mins_k4 (low 128 bits) in both lanes; scale j to
 * every int16 of a vector. */
AI __m256i k4_scales_both(__m256i sm) { return _mm256_permute2x128_si256(sm, sm, 0x00); }
AI __m256i k4_scale(__m256i both, int j) { return _mm256_shuffle_epi8(both, word_bcast(j, j)); }

/* sum_j m[j] * (bsums[2j] + bsums[2j+1]) as 4 int32 lanes to add up: a
 * pair of bsums is at most 32 * 127, an int16. */
AI __m128i k4_mins_dot(__m256i sm, const int16_t *bsums) {
  const __m128i lo = _mm_loadu_si128((const __m128i *)bsums), hi = _mm_loadu_si128((const __m128i *)(bsums + 8));
  const __m128i q8sums = _mm_hadd_epi16(lo, hi);
  return _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), q8sums);
}

AI int32_t hsum_i32x4(__m128i s) {
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* Q6_K's 16 int8 scales as int16 vectors: sc(c) = scale 2c in the low lane,
 * 2c + 1 in the high lane. */
typedef struct {
  __m256i s16, lo, hi; /* s16 = [s0..s7 | s8..s15]; lo, hi: s0..s7, s8..s15 in both lanes */
} q6_scales;

AI q6_scales q6_scales_load(const int8_t *scales) {
  q6_scales q;
  q.s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
  q.lo = _mm256_permute2x128_si256(q.s16, q.s16, 0x00);
  q.hi = _mm256_permute2x128_si256(q.s16, q.s16, 0x11);
  return q;
}
AI __m256i q6_scale(const q6_scales *q, int c) {
  return _mm256_shuffle_epi8(c < 4 ? q->lo : q->hi, word_bcast((2 * c) % 8, (2 * c + 1) % 8));
}

/* Q4_K and Q5_K (qh NULL for Q4_K). */
AI void unpack_q45(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, kblock *k) {
  const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
  for (int g = 0; g < 4; g++) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
    k->q[2 * g] = _mm256_and_si256(v, m4);
    k->q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
  }
  if (qh) {
    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    for (int i = 0; i < 8; i++) {
      __m256i bit = _mm256_and_si256(_mm256_srli_epi16(h, i), one);
      k->q[i] = _mm256_or_si256(k->q[i], _mm256_slli_epi16(bit, 4));
    }
  }
  const __m256i sm = scales_mins_k4(scales), both = k4_scales_both(sm);
  #pragma GCC unroll 8
  for (int j = 0; j < 8; j++) k->sc[j] = k4_scale(both, j);
  /* the mins, each twice: madd with the 16 bsums gives m[j] * (bsums[2j] + bsums[2j+1]) */
  const __m128i m = _mm256_extracti128_si256(sm, 1);
  k->bmul = _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

AI void unpack_q6(const ls_block_q6_K *w, kblock *k) {
  const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; h++) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
    __m256i b = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
    __m256i hi = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
#define TOP(s) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, s), m2), 4)
    k->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(a, m4), TOP(0));
    k->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(b, m4), TOP(2));
    k->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), TOP(4));
    k->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), TOP(6));
#undef TOP
  }
  const q6_scales q = q6_scales_load(w->scales);
  #pragma GCC unroll 8
  for (int c = 0; c < 8; c++) k->sc[c] = q6_scale(&q, c);
  k->bmul = _mm256_mullo_epi16(q.s16, _mm256_set1_epi16(-32)); /* at most 32 * 128: an int16 */
}

LS_KQ_UNPACK_FN(kblock)

/* The block's contribution for one token, as the reference computes it. */
AI float block_dot(const int q6, const kblock *k, const ls_block_q8_K *x, float s) {
  __m256i acc = _mm256_setzero_si256();
  for (int c = 0; c < 8; c++) {
    __m256i xv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
    __m256i p = _mm256_maddubs_epi16(k->q[c], xv);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, k->sc[c]));
  }
  const __m256i corr = _mm256_madd_epi16(k->bmul, _mm256_loadu_si256((const __m256i *)x->bsums));
  if (q6) return ls_kq_acc_k(s, x->d, k->d, 0.0f, hsum_i32(_mm256_add_epi32(acc, corr)), 0);
  return ls_kq_acc_k(s, x->d, k->d, k->dmin, hsum_i32(acc), hsum_i32(corr));
}

/* One token (decode): the same integers as unpack + block_dot, without
 * materialising the unpacked block. */
AI float dot1_q45(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float d, float dmin,
                  const ls_block_q8_K *x, float s) {
  const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
  const __m256i sm = scales_mins_k4(scales), both = k4_scales_both(sm);
  __m256i h = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
  __m256i acc = _mm256_setzero_si256();
  for (int g = 0; g < 4; g++) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (qh) {
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * g), one), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * g + 1), one), 4));
    }
    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * g)));
    __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * g + 32)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, k4_scale(both, 2 * g)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, k4_scale(both, 2 * g + 1)));
  }
  return ls_kq_acc_k(s, x->d, d, dmin, hsum_i32(acc), hsum_i32x4(k4_mins_dot(sm, x->bsums)));
}

AI float dot1_q6(const ls_block_q6_K *w, const ls_block_q8_K *x, float s) {
  const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
  const q6_scales qs = q6_scales_load(w->scales);
  /* sum of (q - 32) x = sum q x - 32 sum x: the -32 through the bsums, per lane */
  __m256i acc = _mm256_madd_epi16(_mm256_slli_epi16(qs.s16, 5), _mm256_loadu_si256((const __m256i *)x->bsums));
  acc = _mm256_sub_epi32(_mm256_setzero_si256(), acc);
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
    __m256i b = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
    __m256i hi = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
    __m256i q[4];
#define TOP(s) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, s), m2), 4)
    q[0] = _mm256_or_si256(_mm256_and_si256(a, m4), TOP(0));
    q[1] = _mm256_or_si256(_mm256_and_si256(b, m4), TOP(2));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), TOP(4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), TOP(6));
#undef TOP
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
      const int k = 4 * h + c;
      __m256i p = _mm256_maddubs_epi16(q[c], _mm256_loadu_si256((const __m256i *)(x->qs + 32 * k)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, q6_scale(&qs, k)));
    }
  }
  return ls_kq_acc_k(s, x->d, _cvtsh_ss(w->d), 0.0f, hsum_i32(acc), 0);
}

AI void rows_k(const uint32_t type, const ls_mat *w, const void *xa, size_t xs, int t0, int T, float *y, int64_t ldy,
               int64_t r0, int64_t r1) {
  int64_t nb = w->cols / LS_QK_K;
  size_t bb = ls_dtype_block_bytes(type);
  for (int64_t r = r0; r < r1; r++) {
    const char *row = (const char *)w->data + (size_t)r * w->row_bytes;
    if (T == 1) {
      const ls_block_q8_K *x = (const ls_block_q8_K *)((const char *)xa + (size_t)t0 * xs);
      float s1 = 0.0f;
      for (int64_t b = 0; b < nb; b++) {
        {
          const char *pf = row + (size_t)b * bb + KQ_PF_AHEAD;
          _mm_prefetch(pf, _MM_HINT_T0);
          _mm_prefetch(pf + 64, _MM_HINT_T0);
          _mm_prefetch(pf + 128, _MM_HINT_T0);
          if (bb > 192) _mm_prefetch(pf + 192, _MM_HINT_T0);
        }
        if (type == LS_Q6_K) {
          s1 = dot1_q6((const ls_block_q6_K *)row + b, x + b, s1);
        } else if (type == LS_Q4_K) {
          const ls_block_q4_K *wb = (const ls_block_q4_K *)row + b;
          s1 = dot1_q45(wb->scales, wb->qs, NULL, _cvtsh_ss(wb->d), _cvtsh_ss(wb->dmin), x + b, s1);
        } else {
          const ls_block_q5_K *wb = (const ls_block_q5_K *)row + b;
          s1 = dot1_q45(wb->scales, wb->qs, wb->qh, _cvtsh_ss(wb->d), _cvtsh_ss(wb->dmin), x + b, s1);
        }
      }
      y[(int64_t)t0 * ldy + r] = s1;
      continue;
    }
    float s[TOK] = {0};
    for (int64_t b = 0; b < nb; b++) {
      kblock k;
      unpack(type, row + (size_t)b * bb, &k);
      for (int t = 0; t < T; t++) {
        const ls_block_q8_K *x = (const ls_block_q8_K *)((const char *)xa + (size_t)(t0 + t) * xs) + b;
        s[t] = block_dot(type == LS_Q6_K, &k, x, s[t]);
      }
    }
    for (int t = 0; t < T; t++) y[(int64_t)(t0 + t) * ldy + r] = s[t];
  }
}

static void matmul_q4k(const ls_mat *w, const void *xa, size_t xs, int t0, int T, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  rows_k(LS_Q4_K, w, xa, xs, t0, T, y, ldy, r0, r1);
}
static void matmul_q5k(const ls_mat *w, const void *xa, size_t xs, int t0, int T, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  rows_k(LS_Q5_K, w, xa, xs, t0, T, y, ldy, r0, r1);
}
static void matmul_q6k(const ls_mat *w, const void *xa, size_t xs, int t0, int T, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  rows_k(LS_Q6_K, w, xa, xs, t0, T, y, ldy, r0, r1);
}

/* ---- Q4_K, 8 rows to a vector (oct_avx2.h) --------------------------------
 * Lane r = row r. Per sub-block j of a super-block: the 8 products of 4
 * nibbles by 4 activations (maddubs) summed in int16 (at most 8 * 2 * 15 *
 * 127 = 30480: exact), one madd with the rows' scale j (int32), and the mins
 * through one madd with the activation's bsums pair; then the reference's
 * float step (ls_kq_acc_k) lane by lane: the same integers and the same
 * float operations, so the same bits as the reference and as rows_k. One
 * multiply per 32 products where rows_k has two, and no horizontal sums.
 * The avx2 level packs Q4_K into the X16 layout at load (ls_model.h: a
 * group's heads, then its rows' quant words interleaved): an oct's words
 * are then plain loads, and one token reads a group's two octs in one pass,
 * one stream (k4_dot; 2 tokens too). From ROWS (the file mapping) the 8 rows are
 * transposed in registers; one token there stays with rows_k, one stream
 * and prefetched, which read DRAM faster than an oct of 8 row streams.
 * AVX2-only EPYC, bench_matmul one token from DRAM, 1 / 2 threads: rows_k
 * 5.1 / 8.8 GB/s, X16 octs 5.9-6.3 / 10.6-11.5 (software prefetch took
 * them down to 4.5-5.0: it is left to the hardware). */

typedef struct k4_oct {
  __m256i q[8][8];      /* [sub-block j][word kk] lane r: row r's values 32j + 4kk .. +3 (0..15) */
  __m256i sc[8], mn[8]; /* lane r: row r's scale / min of sub-block j, in both int16 halves */
  __m256 dw, dmin;
} k4_oct;

/* Byte b of each dword of v as an int16 in both halves of the dword. */
AI __m256i dword_byte_pairs(__m256i v, const int b) {
  const char z = (char)0x80;
  const __m128i lane = _mm_setr_epi8(b, z, b, z, 4 + b, z, 4 + b, z, 8 + b, z, 8 + b, z, 12 + b, z, 12 + b, z);
  return _mm256_shuffle_epi8(v, _mm256_set_m128i(lane, lane));
}

/* Super-block b of 8 rows: their heads (d, dmin, the 12 bytes of scales and
 * mins) and quant words, transposed. */
/* Super-block b of an oct: h[0] lane r = row r's d | dmin << 16, h[1..3]
 * its 12 bytes of scales and mins. */
AI void k4_heads(const oct_src *s, int64_t b, __m256i *h) {
  if (!s->x16) {
    oct_rows_16b(s->rows, (size_t)b * sizeof(ls_block_q4_K), h);
    return;
  }
  const uint8_t *blk = s->x16 + (size_t)b * ls_x16_block_bytes(LS_Q4_K);
  const uint8_t *heads[OCT];
  #pragma GCC unroll 8
  for (int i = 0; i < OCT; i++) heads[i] = blk + ls_x16_head_at(LS_Q4_K, (size_t)(OCT * s->half + i));
  oct_rows_16b(heads, 0, h);
}

/* The 8 quant words of 32-byte group g (sub-blocks 2g and 2g + 1). */
AI void k4_group_words(const oct_src *s, int64_t b, int g, __m256i *w) {
  if (!s->x16) {
    const size_t off = (size_t)b * sizeof(ls_block_q4_K) + 16 + 32 * (size_t)g;
    oct_rows_16b(s->rows, off, w);
    oct_rows_16b(s->rows, off + 16, w + 4);
    return;
  }
  const uint8_t *blk = s->x16 + (size_t)b * ls_x16_block_bytes(LS_Q4_K);
  #pragma GCC unroll 8
  for (int kk = 0; kk < 8; kk++)
    w[kk] = _mm256_loadu_si256(
        (const __m256i *)(blk + ls_x16_quant_at(LS_Q4_K, (size_t)(8 * g + kk), (size_t)(OCT * s->half))));
}

/* The 6-bit scales and mins of an oct's super-block (scales_mins_k4's
 * unpacking, lane by lane) from its heads h[1..3]: s[0] scales 0..3, s[1]
 * scales 4..7, s[2] mins 0..3, s[3] mins 4..7, a byte each per lane. */
AI void k4_scales_mins(const __m256i *h, __m256i *s) {
  const __m256i k1 = _mm256_set1_epi32(0x3f3f3f3f), k2 = _mm256_set1_epi32(0x0f0f0f0f),
                k3 = _mm256_set1_epi32(0x03030303);
  const __m256i u0 = h[1], u1 = h[2], u2 = h[3];
  s[0] = _mm256_and_si256(u0, k1);
  s[1] = _mm256_or_si256(_mm256_and_si256(u2, k2),
                         _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), k3), 4));
  s[2] = _mm256_and_si256(u1, k1);
  s[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), k2),
                         _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), k3), 4));
}

/* d and dmin of the oct's rows from h[0] (lane r = d | dmin << 16, fp16). */
AI void k4_d_dmin(__m256i h0, __m256 *d, __m256 *dmin) {
  __m256i dd = _mm256_packus_epi32(_mm256_and_si256(h0, _mm256_set1_epi32(0xffff)), _mm256_srli_epi32(h0, 16));
  dd = _mm256_permute4x64_epi64(dd, 0xd8); /* d of rows 0..7, then dmin of rows 0..7 */
  *d = _mm256_cvtph_ps(_mm256_castsi256_si128(dd));
  *dmin = _mm256_cvtph_ps(_mm256_extracti128_si256(dd, 1));
}

AI void k4_oct_load(const oct_src *src, int64_t b, k4_oct *o) {
  __m256i h[4], w[32];
  k4_heads(src, b, h);
  #pragma GCC unroll 4
  for (int g = 0; g < 4; g++) k4_group_words(src, b, g, w + 8 * g);
  __m256i sm[4];
  k4_scales_mins(h, sm);
  #pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    o->sc[j] = dword_byte_pairs(sm[0], j);
    o->sc[j + 4] = dword_byte_pairs(sm[1], j);
    o->mn[j] = dword_byte_pairs(sm[2], j);
    o->mn[j + 4] = dword_byte_pairs(sm[3], j);
  }
  k4_d_dmin(h[0], &o->dw, &o->dmin);
  /* 32-byte group g: sub-block 2g in the low nibbles, 2g + 1 in the high */
  const __m256i m4 = _mm256_set1_epi8(15);
  #pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    #pragma GCC unroll 8
    for (int kk = 0; kk < 8; kk++) {
      o->q[2 * g][kk] = _mm256_and_si256(w[8 * g + kk], m4);
      o->q[2 * g + 1][kk] = _mm256_and_si256(_mm256_srli_epi16(w[8 * g + kk], 4), m4);
    }
  }
}

/* acc + this super-block's contribution for one token (ls_kq_acc_k per lane). */
AI __m256 k4_oct_step(const k4_oct *o, const ls_block_q8_K *x, __m256 acc) {
  __m256i isum = _mm256_setzero_si256(), msum = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    __m256i s16 = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int kk = 0; kk < 8; kk++)
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(o->q[j][kk], oct_bcast4(x->qs + 32 * j + 4 * kk)));
    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, o->sc[j]));
    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(o->mn[j], oct_bcast4(x->bsums + 2 * j)));
  }
  const __m256 dx = _mm256_set1_ps(x->d);
  const __m256 a = _mm256_mul_ps(_mm256_mul_ps(dx, o->dw), _mm256_cvtepi32_ps(isum));
  const __m256 m = _mm256_mul_ps(_mm256_mul_ps(dx, o->dmin), _mm256_cvtepi32_ps(msum));
  return _mm256_add_ps(acc, _mm256_sub_ps(a, m));
}

/* 1 or 2 tokens, without the k4_oct copy (its 80 vector stores per
 * super-block would cost more than the products): each column of quant
 * words is split into nibbles and multiplied as it is loaded. The same
 * integers and float step as k4_oct_load + k4_oct_step. x[t]: token t's
 * block b. */
AI void k4_oct_dot(const int T, const oct_src *src, int64_t b, const ls_block_q8_K *const *x, __m256 *acc) {
  __m256i h[4];
  k4_heads(src, b, h);
  const __m256i m4 = _mm256_set1_epi8(15);
  __m256i sm[4];
  k4_scales_mins(h, sm);
  __m256i isum[2], msum[2];
  #pragma GCC unroll 2
  for (int t = 0; t < T; t++) isum[t] = msum[t] = _mm256_setzero_si256();
  #pragma GCC unroll 4
  for (int g = 0; g < 4; g++) { /* sub-blocks 2g (low nibbles) and 2g + 1 (high) */
    __m256i lo16[2], hi16[2], w[8];
    #pragma GCC unroll 2
    for (int t = 0; t < T; t++) lo16[t] = hi16[t] = _mm256_setzero_si256();
    k4_group_words(src, b, g, w);
    #pragma GCC unroll 8
    for (int kk = 0; kk < 8; kk++) {
      const __m256i lo = _mm256_and_si256(w[kk], m4), hi = _mm256_and_si256(_mm256_srli_epi16(w[kk], 4), m4);
      #pragma GCC unroll 2
      for (int t = 0; t < T; t++) {
        lo16[t] = _mm256_add_epi16(lo16[t], _mm256_maddubs_epi16(lo, oct_bcast4(x[t]->qs + 64 * g + 4 * kk)));
        hi16[t] = _mm256_add_epi16(hi16[t], _mm256_maddubs_epi16(hi, oct_bcast4(x[t]->qs + 64 * g + 32 + 4 * kk)));
      }
    }
    const int j = (2 * g) % 4;
    const __m256i sc0 = dword_byte_pairs(sm[g / 2], j), sc1 = dword_byte_pairs(sm[g / 2], j + 1);
    const __m256i mn0 = dword_byte_pairs(sm[2 + g / 2], j), mn1 = dword_byte_pairs(sm[2 + g / 2], j + 1);
    #pragma GCC unroll 2
    for (int t = 0; t < T; t++) {
      isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(lo16[t], sc0));
      isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(hi16[t], sc1));
      msum[t] = _mm256_add_epi32(msum[t], _mm256_madd_epi16(mn0, oct_bcast4(x[t]->bsums + 4 * g)));
      msum[t] = _mm256_add_epi32(msum[t], _mm256_madd_epi16(mn1, oct_bcast4(x[t]->bsums + 4 * g + 2)));
    }
  }
  __m256 dw, dmin;
  k4_d_dmin(h[0], &dw, &dmin);
  #pragma GCC unroll 2
  for (int t = 0; t < T; t++) {
    const __m256 dx = _mm256_set1_ps(x[t]->d);
    const __m256 a = _mm256_mul_ps(_mm256_mul_ps(dx, dw), _mm256_cvtepi32_ps(isum[t]));
    const __m256 m = _mm256_mul_ps(_mm256_mul_ps(dx, dmin), _mm256_cvtepi32_ps(msum[t]));
    acc[t] = _mm256_add_ps(acc[t], _mm256_sub_ps(a, m));
  }
}

/* 1 or 2 tokens, H octs (H = 2: the two halves of an X16 group, one stream). */
AI void k4_dot(const int H, const int T, const oct_src *src, int64_t nb, const void *xa, size_t xs, float *y,
               int64_t ldy, const int64_t *row0, const int (*live)[2]) {
  __m256 acc[2][2];
  #pragma GCC unroll 2
  for (int h = 0; h < H; h++) acc[h][0] = acc[h][1] = _mm256_setzero_ps();
  const ls_block_q8_K *x0 = xa, *x1 = (const ls_block_q8_K *)((const char *)xa + xs);
  for (int64_t b = 0; b < nb; b++) {
    const ls_block_q8_K *x[2] = {x0 + b, x1 + b};
    #pragma GCC unroll 2
    for (int h = 0; h < H; h++) k4_oct_dot(T, &src[h], b, x, acc[h]);
  }
  #pragma GCC unroll 2
  for (int h = 0; h < H; h++) {
    #pragma GCC unroll 2
    for (int t = 0; t < T; t++) oct_store(y + (int64_t)t * ldy + row0[h], acc[h][t], live[h][0], live[h][1]);
  }
}

typedef void (*k4_dot_fn)(const oct_src *, int64_t, const void *, size_t, float *, int64_t, const int64_t *,
                          const int (*)[2]);
#define K4_DOT(H, T)                                                                                            \
  __attribute__((noinline)) static void k4_dot_h##H##t##T(const oct_src *src, int64_t nb, const void *xa,         \
                                                          size_t xs, float *y, int64_t ldy, const int64_t *row0,  \
                                                          const int(*live)[2]) {                                 \
    k4_dot(H, T, src, nb, xa, xs, y, ldy, row0, live);                                                          \
  }
K4_DOT(1, 1)
K4_DOT(1, 2)
K4_DOT(2, 1)
K4_DOT(2, 2)
static const k4_dot_fn k4_dots[2][2] = {{k4_dot_h1t1, k4_dot_h1t2}, {k4_dot_h2t1, k4_dot_h2t2}}; /* [H-1][T-1] */

#define K4_T 8 /* tokens per oct pass */

AI void k4_pass(const int T, const oct_src *src, int64_t nb, const void *xa, size_t xs, int t0, float *y, int64_t ldy,
                int64_t row0, int lo, int hi) {
  __m256 acc[K4_T];
  #pragma GCC unroll 8
  for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
  k4_oct o;
  for (int64_t b = 0; b < nb; b++) {
    k4_oct_load(src, b, &o);
    #pragma GCC unroll 8
    for (int t = 0; t < T; t++)
      acc[t] = k4_oct_step(&o, (const ls_block_q8_K *)((const char *)xa + (size_t)(t0 + t) * xs) + b, acc[t]);
  }
  #pragma GCC unroll 8
  for (int t = 0; t < T; t++) oct_store(y + (int64_t)(t0 + t) * ldy + row0, acc[t], lo, hi);
}

typedef void (*k4_pass_fn)(const oct_src *, int64_t, const void *, size_t, int, float *, int64_t, int64_t, int, int);
#define K4_PASS(T)                                                                                                \
  __attribute__((noinline)) static void k4_pass_##T(const oct_src *src, int64_t nb, const void *xa, size_t xs,     \
                                                    int t0, float *y, int64_t ldy, int64_t row0, int lo, int hi) { \
    k4_pass(T, src, nb, xa, xs, t0, y, ldy, row0, lo, hi);                                                        \
  }
K4_PASS(1)
K4_PASS(2)
K4_PASS(3)
K4_PASS(4)
K4_PASS(5)
K4_PASS(6)
K4_PASS(7)
K4_PASS(8)
static const k4_pass_fn k4_passes[K4_T] = {k4_pass_1, k4_pass_2, k4_pass_3, k4_pass_4,
                                           k4_pass_5, k4_pass_6, k4_pass_7, k4_pass_8};

/* Octs in pairs (one X16 group): 1 or 2 tokens go through k4_dot, both
 * octs together; more tokens through k4_pass, an oct at a time, K4_T
 * tokens a pass (a last token alone takes a 1-token pass: the same bits). */
static void matmul_q4k_octs(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                            int64_t r1) {
  const int64_t nb = w->cols / LS_QK_K;
  for (int64_t o = r0 - r0 % OCT; o < r1; o += 2 * OCT) {
    oct_pair p;
    const int H = oct_pair_at(w, o, r0, r1, &p);
    if (n <= 2) {
      k4_dots[H - 1][n - 1](p.src, nb, xa, xs, y, ldy, p.row0, p.live);
      continue;
    }
    for (int h = 0; h < H; h++)
      for (int t = 0; t < n; t += K4_T) {
        const int T = n - t < K4_T ? n - t : K4_T;
        k4_passes[T - 1](&p.src[h], nb, xa, xs, t, y, ldy, p.row0[h], p.live[h][0], p.live[h][1]);
      }
  }
}

void ls_kq_matmul_avx2(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  void (*fn)(const ls_mat *, const void *, size_t, int, int, float *, int64_t, int64_t, int64_t);
  if (w->type == LS_Q4_K && (n >= 2 || w->layout == LS_LAYOUT_X16)) {
    matmul_q4k_octs(w, xa, xa_stride, n, y, ldy, r0, r1);
    return;
  }
  switch (w->type) {
  case LS_Q4_K: fn = matmul_q4k; break;
  case LS_Q5_K: fn = matmul_q5k; break;
  case LS_Q6_K: fn = matmul_q6k; break;
  default: ls_kq_matmul_ref(w, xa, xa_stride, n, y, ldy, r0, r1); return;
  }
  for (int t0 = 0; t0 < n; t0 += TOK) fn(w, xa, xa_stride, t0, n - t0 < TOK ? n - t0 : TOK, y, ldy, r0, r1);
}
