/* AVX-512 (F/BW/VL) kernels for Q4_K, Q5_K and Q6_K against Q8_K
 * activations, and the Q8_K quantiser (the same bytes as the reference's);
 * the other types of kquants_kernels.h go to the reference.
 *
 * A weight super-block is unpacked once per row into four 512-bit vectors of
 * 64 unsigned values in element order (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63),
 * two int16 scale vectors (laid out as packs of two dot-product vectors)
 * and the int16 multipliers of the activation's 16-element sums (Q4_K/Q5_K:
 * the mins; Q6_K: the scales, for its "-32"). Per token: 4 vpdpbusd (u8 x
 * s8, 4 products per int32 lane), 2 packs to int16 (exact), 2 vpdpwssd with
 * the scales, one madd for the sums, then the horizontal sums (several
 * tokens: reduced together). Every sum is an exact integer and the float
 * combine is ls_kq_acc_k in block order, as in the reference, so results are
 * bit-identical to it for any row range or token count
 * (tests/quant/test_kquants.c). Tiles: 1 row x 8 tokens, 2 rows x 4 tokens,
 * 1 row x up to 4 tokens, rows in address order (as kernels_avx512.c). */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "kernels_tile.h"
#include "kquants_kernels.h"

#define AI static inline __attribute__((always_inline))

typedef struct kq_block {
  __m512i q[4];  /* elements 64k .. 64k+63 */
  __m512i sc[2]; /* int16 lanes of packs(dot(q[2k]), dot(q[2k+1])): the scale of each lane's 4 elements */
  __m256i bmul;  /* int16 multiplier of bsums[j] */
  float d, dmin;
} kq_block;

/* Q4_K/Q5_K's 12 packed bytes of 6-bit scales and mins, unpacked into
 * bytes 0..7 (scales) and 8..15 (mins). With a, b, c the three 32-bit words:
 * scales 0..3 are the low 6 bits of a's bytes, mins 0..3 of b's; scales /
 * mins 4..7 take the low / high nibbles of c's bytes and their top two bits
 * from the top of a's / b's bytes. (The 4 bytes read past the 12 are the
 * block's quants, ignored.) */
AI __m128i scales_mins_k4(const uint8_t *s) {
  __m128i v = _mm_loadu_si128((const __m128i *)s); /* [a, b, c, -] */
  __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x3f)); /* [scales 0..3, mins 0..3, ...] */
  __m128i c = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0xaa), _mm_set_epi32(0, 0, 4, 0)); /* [c, c >> 4, ...] */
  __m128i top = _mm_and_si128(_mm_srli_epi32(v, 6), _mm_set1_epi8(3)); /* [a's tops, b's tops, ...] */
  __m128i hi = _mm_or_si128(_mm_and_si128(c, _mm_set1_epi8(15)), _mm_slli_epi32(top, 4));
  return _mm_unpacklo_epi32(lo, hi); /* [scales 0..3, scales 4..7, mins 0..3, mins 4..7] */
}

/* Word wA_L of v in int16 lanes 0..3 of 128-bit lane L and word wB_L in
 * lanes 4..7: the layout of _mm512_packs_epi32(a, b) (lanes 0..3 from a's
 * 128-bit lane L, 4..7 from b's). */
AI __m512i pick_words2(__m128i v, int a0, int b0, int a1, int b1, int a2, int b2, int a3, int b3) {
#define W(w) (int)((0x0100u + 0x0202u * (unsigned)(w)) * 0x10001u) /* bytes 2w, 2w+1, twice */
  const __m512i ix = _mm512_set_epi32(W(b3), W(b3), W(a3), W(a3), W(b2), W(b2), W(a2), W(a2), W(b1), W(b1), W(a1),
                                      W(a1), W(b0), W(b0), W(a0), W(a0));
#undef W
  return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(v), ix);
}

/* The 32 bytes at p in both halves of a vector. */
AI __m512i both_halves(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }

/* Q4_K / Q5_K (qh NULL for Q4_K): 32-byte group g holds sub-block 2g in its
 * low nibbles and 2g + 1 in its high ones (= q[g] in element order); the
 * fifth bit of sub-block i's element l is bit i of qh[l]. */
AI void unpack_q45_quants(const uint8_t *qs, const uint8_t *qh, __m512i q[4]) {
  const __m512i m4 = _mm512_set1_epi8(15), one = _mm512_set1_epi8(1);
  const __m512i nib = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0); /* shift the upper half by 4 */
  const __m512i h = qh ? both_halves(qh) : _mm512_setzero_si512();
  #pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    __m512i v = _mm512_and_si512(_mm512_srlv_epi64(both_halves(qs + 32 * g), nib), m4);
    if (qh) {
      __m512i sh = _mm512_set_epi64(2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g, 2 * g, 2 * g, 2 * g);
      v = _mm512_or_si512(v, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(h, sh), one), 4));
    }
    q[g] = v;
  }
}

AI void unpack_q45(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, kq_block *k) {
  unpack_q45_quants(qs, qh, k->q);
  __m128i sm = scales_mins_k4(scales);
  __m128i sc16 = _mm_cvtepu8_epi16(sm);
  /* 128-bit lane L of dot(q[g]) is sub-block 2g + L/2 */
  k->sc[0] = pick_words2(sc16, 0, 2, 0, 2, 1, 3, 1, 3);
  k->sc[1] = pick_words2(sc16, 4, 6, 4, 6, 5, 7, 5, 7);
  __m128i m16 = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
  k->bmul = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16)); /* bsums 2j, 2j+1: m[j] */
}

/* Q6_K: per half h (128 elements), ql[64h + l] holds element 128h + l in its
 * low nibble and 128h + 64 + l in its high one (l < 64); qh[32h + l] holds
 * the top two bits of elements 128h + l + 32s at shift 2s. */
AI void unpack_q6(const ls_block_q6_K *w, kq_block *k) {
  const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    __m512i a = _mm512_loadu_si512(w->ql + 64 * h), top = both_halves(w->qh + 32 * h);
    __m512i t0 = _mm512_srlv_epi64(top, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0));
    __m512i t1 = _mm512_srlv_epi64(top, _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4));
    k->q[2 * h] = _mm512_or_si512(_mm512_and_si512(a, m4), _mm512_slli_epi16(_mm512_and_si512(t0, m2), 4));
    k->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4),
                                      _mm512_slli_epi16(_mm512_and_si512(t1, m2), 4));
  }
  __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
  /* 128-bit lane L of dot(q[c]) is sub-block 4c + L */
  k->sc[0] = pick_words2(_mm256_castsi256_si128(sc16), 0, 4, 1, 5, 2, 6, 3, 7);
  k->sc[1] = pick_words2(_mm256_extracti128_si256(sc16, 1), 0, 4, 1, 5, 2, 6, 3, 7);
  k->bmul = sc16;
}

LS_KQ_UNPACK_FN(kq_block)

/* Bytes per super-block, a constant where type is (the tiles' prefetch loops unroll). */
AI size_t block_bytes(const uint32_t type) {
  return type == LS_Q4_K ? sizeof(ls_block_q4_K) : type == LS_Q5_K ? sizeof(ls_block_q5_K) : sizeof(ls_block_q6_K);
}

/* One token's scaled dot product of a block in 16 int32 lanes: per 64
 * values vpdpbusd (VNNI: u8 x s8, 4 products per int32 lane), two such
 * vectors packed to int16 (exact: |4 products| <= 4 * 63 * 127 < 32767),
 * then vpdpwssd multiplies each lane by its scale and adds lane pairs. */
AI __m512i block_isum16(const kq_block *k, const ls_block_q8_K *x) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i d[4];
  #pragma GCC unroll 4
  for (int c = 0; c < 4; c++) d[c] = _mm512_dpbusd_epi32(zero, k->q[c], _mm512_loadu_si512(x->qs + 64 * c));
  __m512i acc = _mm512_dpwssd_epi32(zero, _mm512_packs_epi32(d[0], d[1]), k->sc[0]);
  return _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(d[2], d[3]), k->sc[1]);
}

/* One token's integer sums of a block: 8 int32 lanes each of the scaled
 * dot product (*is) and of the bsums term (*bs). */
AI void block_sums(const kq_block *k, const ls_block_q8_K *x, __m256i *is, __m256i *bs) {
  __m512i acc = block_isum16(k, x);
  *is = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
  *bs = _mm256_madd_epi16(k->bmul, _mm256_loadu_si256((const __m256i *)x->bsums));
}

/* One token (decode): the block's contribution added to lane 0 of s, with
 * the operations of ls_kq_acc_k (s + (dx*dw*isum - dx*dmin*msum)) done in
 * vector registers (no round trip through general registers). */
AI __m128 block_dot(const int q6, const kq_block *k, const ls_block_q8_K *x, __m128 s) {
  __m256i a, b;
  block_sums(k, x, &a, &b);
  /* both horizontal sums at once: isum in lane 0, the bsums term in lane 1 */
  __m256i ab = _mm256_hadd_epi32(a, b);
  __m128i v = _mm_add_epi32(_mm256_castsi256_si128(ab), _mm256_extracti128_si256(ab, 1));
  v = _mm_hadd_epi32(v, v);
  if (q6) /* the reference's isum: sum q x - 32 sum x; no min term */
    v = _mm_and_si128(_mm_sub_epi32(v, _mm_slli_epi32(_mm_shuffle_epi32(v, 0x55), 5)), _mm_setr_epi32(-1, 0, 0, 0));
  __m128 p = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(x->d), _mm_setr_ps(k->d, k->dmin, 0.0f, 0.0f)), _mm_cvtepi32_ps(v));
  return _mm_add_ss(s, _mm_sub_ss(p, _mm_movehdup_ps(p)));
}

/* The 8 int32 lanes of each of 4 vectors summed: lane t = sum of v[t]. */
AI __m128i hsum4(const __m256i v[4]) {
  __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* One token, blocks b and b + 1 (decode): both blocks' sums reduced
 * together, then their contributions added to lane 0 of s one after the
 * other, each with ls_kq_acc_k's operations (as block_dot). */
AI __m128 block_dot2(const int q6, const kq_block *k0, const kq_block *k1, const ls_block_q8_K *x, __m128 s) {
  __m256i v[4];
  block_sums(k0, x, &v[0], &v[1]);
  block_sums(k1, x + 1, &v[2], &v[3]);
  __m128i is = hsum4(v); /* [isum0, corr0, isum1, corr1] */
  if (q6) /* the reference's isum: sum q x - 32 sum x; no min term */
    is = _mm_and_si128(_mm_sub_epi32(is, _mm_slli_epi32(_mm_shuffle_epi32(is, 0xf5), 5)), _mm_setr_epi32(-1, 0, -1, 0));
  __m128 dx = _mm_setr_ps(x[0].d, x[0].d, x[1].d, x[1].d);
  __m128 p = _mm_mul_ps(_mm_mul_ps(dx, _mm_setr_ps(k0->d, k0->dmin, k1->d, k1->dmin)), _mm_cvtepi32_ps(is));
  __m128 r = _mm_sub_ps(p, _mm_movehdup_ps(p)); /* lanes 0 and 2 */
  s = _mm_add_ss(s, r);
  return _mm_add_ss(s, _mm_movehl_ps(r, r));
}

/* 2..4 tokens: the integer sums of the tokens gathered into the lanes of
 * one vector, and ls_kq_acc_k's float operations done lane-wise in the same
 * order (s + (dx*dw*isum - dx*dmin*msum), no contraction: C11 mode), so each
 * lane is bit-identical to the reference's scalar combine. */
AI __m128 block_dot4(const int T, const int q6, const kq_block *k, const ls_block_q8_K *const xt[4], int64_t b,
                     __m128 s) {
  __m256i is[4], bs[4];
  #pragma GCC unroll 4
  for (int t = 0; t < 4; t++) {
    if (t >= T) {
      is[t] = bs[t] = _mm256_setzero_si256();
      continue;
    }
    block_sums(k, xt[t] + b, &is[t], &bs[t]);
  }
  __m128 dx = _mm_set_ps(T > 3 ? xt[3][b].d : 0.0f, T > 2 ? xt[2][b].d : 0.0f, T > 1 ? xt[1][b].d : 0.0f, xt[0][b].d);
  __m128i isum = hsum4(is), msum = hsum4(bs);
  if (q6) { /* sum (q - 32) x = sum q x - 32 sum x, the reference's isum; no min term */
    isum = _mm_sub_epi32(isum, _mm_slli_epi32(msum, 5));
    msum = _mm_setzero_si128();
  }
  __m128 a = _mm_mul_ps(_mm_mul_ps(dx, _mm_set1_ps(k->d)), _mm_cvtepi32_ps(isum));
  __m128 m = _mm_mul_ps(_mm_mul_ps(dx, _mm_set1_ps(k->dmin)), _mm_cvtepi32_ps(msum));
  return _mm_add_ps(s, _mm_sub_ps(a, m));
}

/* Two vectors of 16 int32 lanes folded to 8 lanes each (the upper 256
 * bits onto the lower): a's in lanes 0..7, b's in lanes 8..15. */
AI __m512i fold_halves(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                          _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Two vectors of two tokens x 8 lanes (a: tokens 0, 1; b: 2, 3) folded to
 * four tokens x 4 lanes: 128-bit chunk c holds token c's partial sums. */
AI __m512i fold_quarters(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Chunk c of a (token c) and of b (token c + 4), 4 lanes each, folded to 2
 * lanes each: chunk c = [token c: 2 lanes, token c + 4: 2 lanes]. */
AI __m512i fold_pairs(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

/* ---- one token, Q4_K / Q5_K: four super-blocks at a time ---------------------
 * The per-block scale work of unpack_q45 (6-bit unpacking, in-lane shuffles,
 * the fp16 scales, a horizontal sum) cost as much as the dot products; here it
 * is done once for four blocks: their 16-byte heads (d, dmin, 12 scale bytes:
 * the same in both types) in the lanes of one vector, unpacked together,
 * widened to int16 and picked per block by word permutations (AVX512BW); the
 * four blocks' sums reduced together and their float combines done
 * lane-wise, then added to the sum one block after the other. */

/* 16 bytes at b + i * bb in 128-bit lane i (i < 4): the heads of four super-blocks. */
AI __m512i heads4(const char *b, size_t bb) {
  __m512i h = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b));
  h = _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(b + bb)), 1);
  h = _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(b + 2 * bb)), 2);
  return _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(b + 3 * bb)), 3);
}

/* scales_mins_k4 in every 128-bit lane of heads4: lane i = [scales 0..7, mins 0..7] of block i. */
AI __m512i scales_mins_k4x4(__m512i heads) {
  __m512i v = _mm512_bsrli_epi128(heads, 4); /* [a, b, c, 0] per lane */
  __m512i lo = _mm512_and_si512(v, _mm512_set1_epi8(0x3f));
  __m512i c = _mm512_srlv_epi32(_mm512_shuffle_epi32(v, 0xaa), _mm512_set4_epi32(0, 0, 4, 0));
  __m512i top = _mm512_and_si512(_mm512_srli_epi32(v, 6), _mm512_set1_epi8(3));
  __m512i hi = _mm512_or_si512(_mm512_and_si512(c, _mm512_set1_epi8(15)), _mm512_slli_epi32(top, 4));
  return _mm512_unpacklo_epi32(lo, hi);
}

/* Word indices into the int16 scales of two blocks (block j's scale s at
 * word 16j + s, min s at 16j + 8 + s): ix_sc[j][h] is kq_block.sc[h] of
 * block j (as pick_words2 in unpack_q45), ix_mins the bsums multipliers of
 * both blocks (block j in words 16j..16j+15, bsums 2s and 2s+1: min s). */
#define Q4W(a) a, a, a, a
#define SC_WORDS(o) Q4W(o), Q4W(o + 2), Q4W(o), Q4W(o + 2), Q4W(o + 1), Q4W(o + 3), Q4W(o + 1), Q4W(o + 3)
static const uint16_t ix_sc[2][2][32] __attribute__((aligned(64))) = {{{SC_WORDS(0)}, {SC_WORDS(4)}},
                                                                      {{SC_WORDS(16)}, {SC_WORDS(20)}}};
#define PAIRW(m) m, m, m + 1, m + 1
static const uint16_t ix_mins[32] __attribute__((aligned(64))) = {PAIRW(8),  PAIRW(10), PAIRW(12), PAIRW(14),
                                                                  PAIRW(24), PAIRW(26), PAIRW(28), PAIRW(30)};
#undef PAIRW
#undef SC_WORDS
#undef Q4W
/* Words d, dmin of block c (words 8c, 8c + 1 of heads4) twice in lanes 4c..4c+3. */
static const uint16_t ix_dd[32] __attribute__((aligned(64))) = {0, 1, 0, 1, 8, 9, 8, 9, 16, 17, 16, 17, 24, 25, 24, 25};

/* bsums of x[0] and x[1] in the halves of one vector. */
AI __m512i pair_bsums(const ls_block_q8_K *x) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[0].bsums)),
                            _mm256_loadu_si256((const __m256i *)x[1].bsums), 1);
}

/* The end of a four-block dot product: is[p] and bs[p] the folded isum16
 * and the bsums term of blocks 2p and 2p + 1 (lanes 0..7 and 8..15), dd
 * chunk c = [dw, dmin, dw, dmin] of block c; each block's ls_kq_acc_k added
 * to lane 0 of s in block order. Q6_K: isum - 32 msum and no min term, as
 * block_dot. */
AI __m128 combine4(const int q6, const __m512i is[2], const __m512i bs[2], __m512 dd, const ls_block_q8_K *x,
                   __m128 s) {
  /* chunk c = block c: [isum, isum, msum, msum] partials, then [isum, msum, isum, msum] */
  __m512 v = _mm512_castsi512_ps(fold_pairs(fold_quarters(is[0], is[1]), fold_quarters(bs[0], bs[1])));
  __m512i im = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(v, v, _MM_SHUFFLE(2, 0, 2, 0))),
                                _mm512_castps_si512(_mm512_shuffle_ps(v, v, _MM_SHUFFLE(3, 1, 3, 1))));
  if (q6)
    im = _mm512_maskz_sub_epi32(0x5555, im, _mm512_slli_epi32(_mm512_shuffle_epi32(im, _MM_PERM_DDBB), 5));
  __m512 dx = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                    _mm512_castps128_ps512(_mm_setr_ps(x[0].d, x[1].d, x[2].d, x[3].d)));
  __m512 p = _mm512_mul_ps(_mm512_mul_ps(dx, dd), _mm512_cvtepi32_ps(im));
  __m512 r = _mm512_sub_ps(p, _mm512_movehdup_ps(p)); /* lane 4c: block c's dx*dw*isum - dx*dmin*msum */
  s = _mm_add_ss(s, _mm512_castps512_ps128(r));
  s = _mm_add_ss(s, _mm512_extractf32x4_ps(r, 1));
  s = _mm_add_ss(s, _mm512_extractf32x4_ps(r, 2));
  return _mm_add_ss(s, _mm512_extractf32x4_ps(r, 3));
}

/* One token, super-blocks 0..3 at wb (Q4_K or Q5_K, bb bytes each) against
 * x[0..3]: each block's ls_kq_acc_k added to lane 0 of s in block order. */
AI __m128 q45_dot4(const uint32_t type, const char *wb, size_t bb, const ls_block_q8_K *x, __m128 s) {
  const __m512i heads = heads4(wb, bb), sm = scales_mins_k4x4(heads);
  const __m512i sm16[2] = {_mm512_cvtepu8_epi16(_mm512_castsi512_si256(sm)),
                           _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(sm, 1))}; /* blocks 0, 1 and 2, 3 */
  __m512i is[2], bs[2];
  #pragma GCC unroll 2
  for (int p = 0; p < 2; p++) {
    __m512i isum16[2];
    #pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      const uint8_t *scales, *qs, *qh;
      uint16_t d, dmin;
      ls_kq_q45_fields(type, wb + (size_t)(2 * p + j) * bb, &scales, &qs, &qh, &d, &dmin);
      kq_block k;
      unpack_q45_quants(qs, qh, k.q);
      k.sc[0] = _mm512_permutexvar_epi16(_mm512_load_si512(ix_sc[j][0]), sm16[p]);
      k.sc[1] = _mm512_permutexvar_epi16(_mm512_load_si512(ix_sc[j][1]), sm16[p]);
      isum16[j] = block_isum16(&k, x + 2 * p + j);
    }
    is[p] = fold_halves(isum16[0], isum16[1]);
    bs[p] = _mm512_madd_epi16(_mm512_permutexvar_epi16(_mm512_load_si512(ix_mins), sm16[p]), pair_bsums(x + 2 * p));
  }
  __m512 dd = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512(ix_dd), heads)));
  return combine4(0, is, bs, dd, x, s);
}

/* Word indices into the int16 scales of two Q6_K blocks (block j's scale s
 * at word 16j + s): ix_sc6[j][h] is kq_block.sc[h] of block j (as
 * pick_words2 in unpack_q6). */
#define Q4W(a) a, a, a, a
#define SC6_WORDS(o) Q4W(o), Q4W(o + 4), Q4W(o + 1), Q4W(o + 5), Q4W(o + 2), Q4W(o + 6), Q4W(o + 3), Q4W(o + 7)
static const uint16_t ix_sc6[2][2][32] __attribute__((aligned(64))) = {{{SC6_WORDS(0)}, {SC6_WORDS(8)}},
                                                                       {{SC6_WORDS(16)}, {SC6_WORDS(24)}}};
#undef SC6_WORDS
#undef Q4W

/* One token, Q6_K super-blocks 0..3 at wb against x[0..3], as q45_dot4:
 * the scales of two blocks widened to int16 are also their bsums
 * multipliers (the "-32" term), d through a zero dmin. */
AI __m128 q6_dot4(const char *wb, size_t bb, const ls_block_q8_K *x, __m128 s) {
  const __m512i sc8 = heads4(wb + offsetof(ls_block_q6_K, scales), bb); /* block i's 16 scales in lane i */
  const __m512i sc16[2] = {_mm512_cvtepi8_epi16(_mm512_castsi512_si256(sc8)),
                           _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(sc8, 1))}; /* blocks 0, 1 and 2, 3 */
  __m512i is[2], bs[2];
  #pragma GCC unroll 2
  for (int p = 0; p < 2; p++) {
    __m512i isum16[2];
    #pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      kq_block k;
      unpack_q6((const ls_block_q6_K *)(wb + (size_t)(2 * p + j) * bb), &k);
      k.sc[0] = _mm512_permutexvar_epi16(_mm512_load_si512(ix_sc6[j][0]), sc16[p]);
      k.sc[1] = _mm512_permutexvar_epi16(_mm512_load_si512(ix_sc6[j][1]), sc16[p]);
      isum16[j] = block_isum16(&k, x + 2 * p + j);
    }
    is[p] = fold_halves(isum16[0], isum16[1]);
    bs[p] = _mm512_madd_epi16(sc16[p], pair_bsums(x + 2 * p));
  }
  const char *d = wb + offsetof(ls_block_q6_K, d);
  __m128 d4 = _mm_cvtph_ps(_mm_setr_epi16((short)*(const uint16_t *)d, (short)*(const uint16_t *)(d + bb),
                                          (short)*(const uint16_t *)(d + 2 * bb),
                                          (short)*(const uint16_t *)(d + 3 * bb), 0, 0, 0, 0));
  __m512 dd = _mm512_maskz_permutexvar_ps(0x5555, _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                          _mm512_castps128_ps512(d4)); /* chunk c = [d, 0, d, 0] */
  return combine4(1, is, bs, dd, x, s);
}

/* The integer sums of 8 (block, token) pairs ("lanes": lane l is block
 * k[l] against token x[l]), all reduced together: lanes 0..7 the isum of
 * pairs 0..7, lanes 8..15 their bsums term (exact integers, so the order of
 * the additions does not matter). */
AI __m512i block_sums8(const kq_block *const k[8], const ls_block_q8_K *const x[8]) {
  __m512i is[4], bs[4];
  #pragma GCC unroll 4
  for (int p = 0; p < 4; p++) {
    const kq_block *k0 = k[2 * p], *k1 = k[2 * p + 1];
    is[p] = fold_halves(block_isum16(k0, x[2 * p]), block_isum16(k1, x[2 * p + 1]));
    __m512i sums = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[2 * p]->bsums)),
                                      _mm256_loadu_si256((const __m256i *)x[2 * p + 1]->bsums), 1);
    __m512i mul = k0 == k1 ? _mm512_broadcast_i64x4(k0->bmul)
                           : _mm512_inserti64x4(_mm512_castsi256_si512(k0->bmul), k1->bmul, 1);
    bs[p] = _mm512_madd_epi16(mul, sums);
  }
  __m512i i4 = fold_pairs(fold_quarters(is[0], is[1]), fold_quarters(is[2], is[3]));
  __m512i b4 = fold_pairs(fold_quarters(bs[0], bs[1]), fold_quarters(bs[2], bs[3]));
  /* chunk c: [isum c, isum c+4, bsums c, bsums c+4], each lane pair summed */
  __m512 lo = _mm512_shuffle_ps(_mm512_castsi512_ps(i4), _mm512_castsi512_ps(b4), _MM_SHUFFLE(2, 0, 2, 0));
  __m512 hi = _mm512_shuffle_ps(_mm512_castsi512_ps(i4), _mm512_castsi512_ps(b4), _MM_SHUFFLE(3, 1, 3, 1));
  __m512i r = _mm512_add_epi32(_mm512_castps_si512(lo), _mm512_castps_si512(hi));
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

/* 8 lanes as block_sums8, then ls_kq_acc_k's float operations lane-wise in
 * the reference's order (as block_dot4): s + (dx*dw*isum - dx*dmin*msum). */
AI __m256 block_dot8(const int q6, const kq_block *const k[8], const ls_block_q8_K *const x[8], __m256 s) {
  __m512i sums = block_sums8(k, x);
  __m256i isum = _mm512_castsi512_si256(sums), msum = _mm512_extracti64x4_epi64(sums, 1);
  if (q6) { /* sum (q - 32) x = sum q x - 32 sum x, the reference's isum; no min term */
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(msum, 5));
    msum = _mm256_setzero_si256();
  }
  __m256 dx = _mm256_setr_ps(x[0]->d, x[1]->d, x[2]->d, x[3]->d, x[4]->d, x[5]->d, x[6]->d, x[7]->d);
  __m256 dw = _mm256_setr_ps(k[0]->d, k[1]->d, k[2]->d, k[3]->d, k[4]->d, k[5]->d, k[6]->d, k[7]->d);
  __m256 dm = _mm256_setr_ps(k[0]->dmin, k[1]->dmin, k[2]->dmin, k[3]->dmin, k[4]->dmin, k[5]->dmin, k[6]->dmin,
                             k[7]->dmin);
  __m256 a = _mm256_mul_ps(_mm256_mul_ps(dx, dw), _mm256_cvtepi32_ps(isum));
  __m256 m = _mm256_mul_ps(_mm256_mul_ps(dx, dm), _mm256_cvtepi32_ps(msum));
  return _mm256_add_ps(s, _mm256_sub_ps(a, m));
}

/* Super-block b of a row for k_tile8, every line of the same block 2 R rows
 * ahead prefetched. */
AI void k_tile8_unpack(const uint32_t type, const ls_mat *w, const char *row, const int R, int64_t b, kq_block *k) {
  const size_t bb = block_bytes(type);
  for (size_t o = 0; o < bb + 63; o += 64) _mm_prefetch(row + 2 * R * w->row_bytes + (size_t)b * bb + o, _MM_HINT_T0);
  unpack(type, row + (size_t)b * bb, k);
}

/* y[t][r + i] for R rows x 8 / R tokens (R = 1: 8 tokens, R = 2: 4 tokens
 * t0 .. t0+3; lane 8i/R + t is row r + i, token t0 + t). */
AI void k_tile8(const int R, const uint32_t type, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0,
                float *y, int64_t ldy) {
  const int T = 8 / R;
  int64_t nb = w->cols / LS_QK_K;
  const char *row[2];
  #pragma GCC unroll 2
  for (int i = 0; i < R; i++) row[i] = (const char *)w->data + (size_t)(r + i) * w->row_bytes;
  const ls_block_q8_K *xt[8];
  #pragma GCC unroll 8
  for (int t = 0; t < T; t++) xt[t] = (const ls_block_q8_K *)((const char *)xa + (size_t)(t0 + t) * xs);
  __m256 s = _mm256_setzero_ps();
  /* 2 rows x 4 tokens (small batches: the weights come from memory): each
   * super-block unpacked one iteration ahead of its dot products, as
   * pipe_tile in kernels_avx512.c, so that a load that misses does not hold
   * up the iteration that issues it (bench_matmul, Zen 5, Q4_K 4 tokens, 1
   * thread, from DRAM 7.5-10.2 -> 11.4-12.8 GB/s, Q6_K 9.2-13.9 -> 16.9-17.6;
   * the 4-row TinyLlama Q4_K step 56-59 -> 47-49 ms). 1 row x 8 tokens
   * (prefill) unpacks in the iteration that uses it: the copies cost more
   * than they hide there (8-row step 77-79 -> 79-86 ms). */
  const int ahead = R == 2;
  kq_block cur[2], next[2];
  if (ahead)
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) k_tile8_unpack(type, w, row[i], R, 0, &cur[i]);
  for (int64_t b = 0; b < nb; b++) {
    const kq_block *k[8];
    const ls_block_q8_K *x[8];
    #pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
      if (!ahead) k_tile8_unpack(type, w, row[i], R, b, &cur[i]);
      else if (b + 1 < nb) k_tile8_unpack(type, w, row[i], R, b + 1, &next[i]);
    }
    #pragma GCC unroll 8
    for (int l = 0; l < 8; l++) k[l] = &cur[l / T], x[l] = xt[l % T] + b;
    s = block_dot8(type == LS_Q6_K, k, x, s);
    if (ahead)
      #pragma GCC unroll 2
      for (int i = 0; i < R; i++) cur[i] = next[i];
  }
  float out[8];
  _mm256_storeu_ps(out, s);
  #pragma GCC unroll 8
  for (int l = 0; l < 8; l++) y[(int64_t)(t0 + l % T) * ldy + r + l / T] = out[l];
}

/* name(R, w, r, xa, xs, t0, y, ldy): k_tile8 for R = 1 or 2. */
#define K_TILE8(name, type)                                                                                      \
  static void name(int R, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) { \
    if (R == 1) k_tile8(1, type, w, r, xa, xs, t0, y, ldy);                                                      \
    else k_tile8(2, type, w, r, xa, xs, t0, y, ldy);                                                             \
  }
K_TILE8(tile8_q4k, LS_Q4_K)
K_TILE8(tile8_q5k, LS_Q5_K)
K_TILE8(tile8_q6k, LS_Q6_K)

/* One token: the row prefetched about this far ahead, in whole rows (2 to
 * 8): 12 KB on Zen 5, 2 KB on Intel (the AMX Xeon: Q4_K 2048 columns, 1
 * token, 1 thread, 12 KB 9.8 GB/s of an 18.1 read loop, 4 KB 14.3, 2 KB
 * 15.1; ls_a5_tune, kernels_dispatch.c). */
size_t ls_a5_kquant_pf_bytes = 12288;
#define KQ_PF_BYTES ls_a5_kquant_pf_bytes

/* y[t][r] for one row r x T tokens (T <= 4). */
#define KQ_PLAIN 0x100 /* or'ed into k_tile's type: one token without software prefetch */

AI void k_tile(const int T, const uint32_t type_flags, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0,
               float *y, int64_t ldy) {
  const uint32_t type = type_flags & ~(uint32_t)KQ_PLAIN;
  const int q6 = type == LS_Q6_K, prefetch = !(type_flags & KQ_PLAIN);
  int64_t nb = w->cols / LS_QK_K;
  const size_t bb = block_bytes(type);
  const char *row = (const char *)w->data + (size_t)r * w->row_bytes;
  const ls_block_q8_K *xt[4];
  #pragma GCC unroll 4
  for (int t = 0; t < 4; t++) xt[t] = (const ls_block_q8_K *)((const char *)xa + (size_t)(t0 + (t < T ? t : 0)) * xs);
  if (T == 1) {
    __m128 s1 = _mm_setzero_ps();
    int64_t b = 0;
    /* prefetch about KQ_PF_BYTES ahead in whole rows, as the Q8_0/Q4_0 tiles */
    size_t rows_ahead = KQ_PF_BYTES / w->row_bytes;
    const size_t pf_ahead = (rows_ahead < 2 ? 2 : rows_ahead > 8 ? 8 : rows_ahead) * w->row_bytes;
    for (; b + 4 <= nb; b += 4) {
      const char *pf = row + pf_ahead + (size_t)b * bb;
      if (prefetch) {
        #pragma GCC unroll 16
        for (size_t o = 0; o < 4 * bb + 63; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
      }
      const char *wb = row + (size_t)b * bb;
      s1 = q6 ? q6_dot4(wb, bb, xt[0] + b, s1) : q45_dot4(type, wb, bb, xt[0] + b, s1);
    }
    for (; b + 2 <= nb; b += 2) {
      kq_block k0, k1;
      unpack(type, row + (size_t)b * bb, &k0);
      unpack(type, row + (size_t)(b + 1) * bb, &k1);
      s1 = block_dot2(q6, &k0, &k1, xt[0] + b, s1);
    }
    if (b < nb) {
      kq_block k;
      unpack(type, row + (size_t)b * bb, &k);
      s1 = block_dot(q6, &k, xt[0] + b, s1);
    }
    y[(int64_t)t0 * ldy + r] = _mm_cvtss_f32(s1);
    return;
  }
  __m128 s = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    /* the row two ahead, every line of the block: several tokens consume the
     * stream slower than the hardware prefetcher expects (as kernels_avx512.c) */
    for (size_t o = 0; o < bb + 63; o += 64) _mm_prefetch(row + 2 * w->row_bytes + (size_t)b * bb + o, _MM_HINT_T0);
    kq_block k;
    unpack(type, row + (size_t)b * bb, &k);
    s = block_dot4(T, q6, &k, xt, b, s);
  }
  float out[4];
  _mm_storeu_ps(out, s);
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) y[(int64_t)(t0 + t) * ldy + r] = out[t];
}

LS_TILE_T4(tile_q4k, k_tile, LS_Q4_K)
LS_TILE_T4(tile_q5k, k_tile, LS_Q5_K)
LS_TILE_T4(tile_q6k, k_tile, LS_Q6_K)
LS_TILE_T4(tile_q4k_plain, k_tile, LS_Q4_K | KQ_PLAIN)
LS_TILE_T4(tile_q5k_plain, k_tile, LS_Q5_K | KQ_PLAIN)
LS_TILE_T4(tile_q6k_plain, k_tile, LS_Q6_K | KQ_PLAIN)

/* ---- activations ----------------------------------------------------------- */

/* ls_quantize_row_q8_K byte for byte: amax and the first element reaching it
 * (max_ps keeps the running maximum over a NaN, as the reference's
 * comparison skips one), q = nearest-even(-127/max * x) capped at 127 and
 * truncated to a byte as the reference's cast, the 16-element sums of those
 * bytes. The forward pass prepares a decode step's activations on one
 * thread: the scalar loop was ~2.4% of a Q4_K_M token. */
static void quantize_row_q8_K(const float *x, ls_block_q8_K *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK_K; b++, x += LS_QK_K) {
    __m512 am = _mm512_setzero_ps();
    for (int g = 0; g < LS_QK_K / 16; g++) am = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * g)), am);
    const float amax = _mm512_reduce_max_ps(am);
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    int first = 0;
    for (int g = 0; g < LS_QK_K / 16; g++) {
      __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * g)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (hit) {
        first = 16 * g + __builtin_ctz(hit);
        break;
      }
    }
    const float iscale = -127.0f / x[first];
    for (int g = 0; g < LS_QK_K / 16; g++) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(x + 16 * g)));
      __m128i q8 = _mm512_cvtepi32_epi8(_mm512_min_epi32(q, _mm512_set1_epi32(127)));
      _mm_storeu_si128((__m128i *)(y[b].qs + 16 * g), q8);
      y[b].bsums[g] = (int16_t)_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q8));
    }
    y[b].d = 1.0f / iscale;
  }
}

void ls_kq_act_prepare_avx512(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_dtype_block_elems(wtype) == LS_QK_K) quantize_row_q8_K(x, xa, cols); /* the K-quants: Q8_K */
  else ls_kq_act_prepare(wtype, x, cols, xa);
}

void ls_kq_matmul_avx512(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                         int64_t r1, int prefetch) {
  void (*tile)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  void (*tile1)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  void (*tile8)(int, const ls_mat *, int64_t, const void *, size_t, int, float *, int64_t);
  switch (w->type) {
  case LS_Q4_K: tile = tile_q4k, tile1 = prefetch ? tile_q4k : tile_q4k_plain, tile8 = tile8_q4k; break;
  case LS_Q5_K: tile = tile_q5k, tile1 = prefetch ? tile_q5k : tile_q5k_plain, tile8 = tile8_q5k; break;
  case LS_Q6_K: tile = tile_q6k, tile1 = prefetch ? tile_q6k : tile_q6k_plain, tile8 = tile8_q6k; break;
  default: ls_kq_matmul_ref(w, xa, xa_stride, n, y, ldy, r0, r1); return;
  }
  /* 8 tokens x 1 row while 8 tokens remain, then 4 tokens x 2 rows (the
   * last odd row alone), then the rest in tiles of one row */
  int t0 = 0;
  for (; t0 + 8 <= n; t0 += 8)
    for (int64_t r = r0; r < r1; r++) tile8(1, w, r, xa, xa_stride, t0, y, ldy);
  if (t0 + 4 <= n) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) tile8(2, w, r, xa, xa_stride, t0, y, ldy);
    for (; r < r1; r++) tile(4, w, r, xa, xa_stride, t0, y, ldy);
    t0 += 4;
  }
  for (; t0 < n; t0 += 4) {
    int T = n - t0 < 4 ? n - t0 : 4;
    for (int64_t r = r0; r < r1; r++) (T == 1 ? tile1 : tile)(T, w, r, xa, xa_stride, t0, y, ldy);
  }
}
