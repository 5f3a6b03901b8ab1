/* Shared by the AVX2 matmuls that put 8 weight rows in the lanes of a
 * vector, "an oct" (kernels_avx2.c: Q8_0, Q4_0; kquants_avx2.c: Q4_K): lane
 * r holds row r's 4 bytes k, against a token's 4 bytes k broadcast. The
 * rows come from half of a 16-row X16 group (ls_model.h) or from 8 ROWS
 * rows transposed in registers; rows past the matrix repeat its last row,
 * and lanes outside the call's row range are not stored. */
#ifndef LS_OCT_AVX2_H
#define LS_OCT_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "kernels.h"

#define OCT 8 /* weight rows per vector */

typedef struct oct_src {
  const uint8_t *x16; /* the X16 group's first byte, or NULL: read rows[] */
  int half;           /* which 8 rows of the X16 group */
  const uint8_t *rows[OCT];
} oct_src;

/* Oct o (rows o .. o+7, o a multiple of 8) of w. */
static inline void oct_source(const ls_mat *w, int64_t o, oct_src *src) {
  const int64_t whole = w->layout == LS_LAYOUT_X16 ? w->rows / LS_X16_ROWS * LS_X16_ROWS : 0;
  const int64_t g = o - o % LS_X16_ROWS;
  src->half = (int)(o - g) / OCT;
  src->x16 = g + LS_X16_ROWS <= whole ? (const uint8_t *)w->data + (size_t)g * w->row_bytes : NULL;
  if (src->x16) return;
  for (int i = 0; i < OCT; i++) {
    int64_t r = o + i < w->rows ? o + i : w->rows - 1;
    src->rows[i] = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
  }
}

/* The octs of rows r0 .. r1-1 come in pairs, o and o + 8 (o from the oct
 * holding r0, in steps of 16): the pair's sources, first rows and stored
 * lanes [live[h][0], live[h][1]); returns how many of the two are in range. */
typedef struct oct_pair {
  oct_src src[2];
  int64_t row0[2];
  int live[2][2];
} oct_pair;

static inline int oct_pair_at(const ls_mat *w, int64_t o, int64_t r0, int64_t r1, oct_pair *p) {
  const int H = o + OCT < r1 ? 2 : 1;
  for (int h = 0; h < H; h++) {
    const int64_t oh = o + OCT * h;
    oct_source(w, oh, &p->src[h]);
    p->row0[h] = oh;
    p->live[h][0] = r0 > oh ? (int)(r0 - oh) : 0;
    p->live[h][1] = r1 - oh < OCT ? (int)(r1 - oh) : OCT;
  }
  return H;
}

/* z[i] = (rows i, i + 4: 4 dwords each, low and high 128 bits) -> p[k] lane
 * r = row r's dword k: a 4 x 4 transpose of dwords in each half. */
static inline __attribute__((always_inline)) void oct_transpose_4x4(const __m256i *z, __m256i *p) {
  __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
  __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
  p[0] = _mm256_unpacklo_epi64(t0, t2);
  p[1] = _mm256_unpackhi_epi64(t0, t2);
  p[2] = _mm256_unpacklo_epi64(t1, t3);
  p[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* The 16 bytes at offset off of 8 rows, transposed: p[k] lane r = row r's
 * dword k. */
static inline __attribute__((always_inline)) void oct_rows_16b(const uint8_t *const *rows, size_t off, __m256i *p) {
  __m256i z[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++)
    z[i] = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(rows[i + 4] + off)),
                            _mm_loadu_si128((const __m128i *)(rows[i] + off)));
  oct_transpose_4x4(z, p);
}

/* 4 bytes broadcast to every dword. */
static inline __attribute__((always_inline)) __m256i oct_bcast4(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/* Lanes lo .. hi-1 of v to p. */
static inline __attribute__((always_inline)) void oct_store(float *p, __m256 v, int lo, int hi) {
  if (lo == 0 && hi == OCT) {
    _mm256_storeu_ps(p, v);
    return;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane),
                                     _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)));
  _mm256_maskstore_ps(p, m, v);
}

#endif
