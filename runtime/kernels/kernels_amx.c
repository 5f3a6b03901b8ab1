/* The "amx" level: the AVX-512 level with Q8_0 and Q4_0 matmul in another
 * reduction order, one that Intel's AMX-INT8 tiles (Sapphire / Emerald
 * Rapids) can compute as well as AVX-512 VNNI, bit for bit.
 *
 * Reduction order ("block order"). For weight row r and token t, block b's
 * integer dot product isum = sum_k w[r][32b+k] * x[t][32b+k] is exact (the
 * weights as unsigned bytes: Q8_0 w + 128, Q4_0 the stored nibble w + 8,
 * against the signed Q8_0 activations, with the exact correction
 * -128 or -8 * sum_k x[t][32b+k] that removes the offset); then, block after
 * block from 0,
 *     acc = fma((float)isum, dw[r][b] * dx[t][b], acc)
 * and y[t][r] = acc. Every element goes through the same operations in this
 * order whichever way its integer sums were formed, so:
 * - the VNNI passes (1-4 tokens, for calls or their last tokens under 16;
 *   lanes = 16 weight rows, lane r holding row r's 4 bytes, each token's 4
 *   bytes broadcast) and
 * - the AMX tiles (16 tokens x 16 rows x 32 bytes per tile multiply: A = the
 *   activations as stored, B = the 16 rows' bytes the same way, C = isum)
 * give the same bits, and a row's result does not depend on the other tokens
 * of the call, the row range or the thread count (tests/kernels).
 *
 * Weights are read 16 rows at a time: from the X16 layout the model's copy
 * is packed into at load (ls_model.h; ls_x16_pack, layout_x16.c), or from 16 row streams
 * (the file mapping, rows past the last whole group), transposed in
 * registers; both give the same bits. The engine's row chunks (32 rows) are
 * whole groups.
 *
 * Q4_K from 16 tokens: each 32-value sub-block's exact product on the AMX
 * tiles, then the reference's integer scaling and float step per
 * super-block (q4k_amx_pass), so it is bit-identical to the reference as
 * every level's K-quant kernels are; fewer tokens go to the AVX-512 tiles.
 * Other types, and everything else, are the AVX-512 level's.
 * Linux hands out AMX state only after ARCH_REQ_XCOMP_PERM
 * (kernels_dispatch.c asks before choosing this level). */
#include <immintrin.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "ls_kquants.h"

#define AI static inline __attribute__((always_inline))

#define LANES 16      /* weight rows per group, one per lane */
#define TILE_T 16     /* tokens per AMX tile */
#define AMX_T_MAX 256 /* tokens per AMX pass: their accumulators (16 KB) live on the stack */
#define VNNI_T 4      /* tokens per VNNI pass */
#define C_LAG 4       /* blocks between a tile's products and their float steps */
#define C_RING 8      /* product slots: C_LAG plus the two in flight, rounded up */

static const ls_kernels *base; /* the AVX-512 table this level extends */

static int is_quant(uint32_t t) { return t == LS_Q8_0 || t == LS_Q4_0; }
static size_t round64(size_t b) { return (b + 63) / 64 * 64; }

/* One token's prepared activations: the Q8_0 quants of every block in a row
 * (32 bytes a block: an AMX tile row), then each block's scale as f32, then
 * its correction (-128 or -8 times the sum of its quants). */
typedef struct act_view {
  const int8_t *q;     /* [nb][32] */
  const float *dx;     /* [nb] */
  const int32_t *corr; /* [nb] */
} act_view;

static size_t quants_bytes(int64_t nb) { return round64((size_t)nb * LS_QK); }

AI act_view act_at(const void *xa, size_t xs, int t, int64_t nb) {
  const char *p = (const char *)xa + (size_t)t * xs;
  act_view v = {(const int8_t *)p, (const float *)(p + quants_bytes(nb)),
                (const int32_t *)(p + quants_bytes(nb) + round64((size_t)nb * 4))};
  return v;
}

static size_t amx_act_bytes(uint32_t wtype, int64_t cols) {
  if (!is_quant(wtype)) return base->act_bytes(wtype, cols);
  int64_t nb = cols / LS_QK;
  return quants_bytes(nb) + 2 * round64((size_t)nb * 4);
}

static void amx_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (!is_quant(wtype)) {
    base->act_prepare(wtype, x, cols, xa);
    return;
  }
  const int64_t nb = cols / LS_QK;
  const int32_t offset = wtype == LS_Q8_0 ? 128 : 8;
  act_view v = act_at(xa, 0, 0, nb);
  int8_t *q = (int8_t *)v.q;
  float *dx = (float *)v.dx;
  int32_t *corr = (int32_t *)v.corr;
  for (int64_t b = 0; b < nb; b++) {
    ls_block_q8_0 blk;
    base->quantize_q8_0(x + b * LS_QK, &blk, LS_QK); /* bit-identical to ls_quantize_row_q8_0 */
    memcpy(q + b * LS_QK, blk.qs, LS_QK);
    dx[b] = ls_fp16_to_fp32(blk.d);
    int32_t sum = 0;
    for (int k = 0; k < LS_QK; k++) sum += blk.qs[k];
    corr[b] = -offset * sum;
  }
}

/* ---- 16 weight rows of one block ------------------------------------------ */

/* Where a group's 16 rows are: an X16 group (ls_model.h) or 16 ROWS rows
 * (rows past the matrix repeat its last row; their results are dropped). */
typedef struct group_src {
  const uint8_t *x16; /* the X16 group's first byte, or NULL */
  const uint8_t *rows[LANES];
} group_src;

AI size_t block_bytes(const int q4) { return q4 ? sizeof(ls_block_q4_0) : sizeof(ls_block_q8_0); }

/* w[k] lane r: row r's bytes 4k..4k+3 of the block, as unsigned (Q8_0: w +
 * 128, Q4_0: the nibble, w + 8, bytes 16.. as 16 times that) or signed; dw
 * lane r: row r's scale. */
typedef struct group_block {
  __m512i w[8];
  __m512 dw;
} group_block;

/* The fp16 scales of blocks b0 .. b0+nbc-1 (nbc <= SCALE_CHUNK) of 16 ROWS
 * rows, d16[j][i] = row i's of block b0 + j: collected a chunk ahead of the
 * blocks' quants (16 narrow stores read back as one vector would stall on
 * store forwarding if done block by block). */
#define SCALE_CHUNK 16
static void group_scales(const uint8_t *const *rows, size_t bb, int64_t b0, int nbc, uint16_t (*d16)[LANES]) {
  #pragma GCC unroll 16
  for (int i = 0; i < LANES; i++)
    for (int j = 0; j < nbc; j++) memcpy(&d16[j][i], rows[i] + (size_t)(b0 + j) * bb, 2);
}

/* z[i] holds row i in its low 256 bits and row i + 8 in its high 256 (8
 * dwords each); out[k] lane r = row r's dword k. An 8 x 8 transpose of
 * dwords in each 256-bit half. */
AI void transpose_8x8_halves(const __m512i *z, __m512i *out) {
  __m512i t[8], u[8];
  #pragma GCC unroll 2
  for (int h = 0; h < 2; h++) {
    const __m512i *s = z + 4 * h;
    t[4 * h + 0] = _mm512_unpacklo_epi32(s[0], s[1]);
    t[4 * h + 1] = _mm512_unpackhi_epi32(s[0], s[1]);
    t[4 * h + 2] = _mm512_unpacklo_epi32(s[2], s[3]);
    t[4 * h + 3] = _mm512_unpackhi_epi32(s[2], s[3]);
    u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h + 0], t[4 * h + 2]); /* dwords 0 and 4 of rows 4h..4h+3 */
    u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h + 0], t[4 * h + 2]); /* 1 and 5 */
    u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]); /* 2 and 6 */
    u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]); /* 3 and 7 */
  }
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  #pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    out[k] = _mm512_permutex2var_epi64(u[k], lo, u[k + 4]);
    out[k + 4] = _mm512_permutex2var_epi64(u[k], hi, u[k + 4]);
  }
}

/* Q8_0 quants of 16 ROWS rows, transposed (signed). */
AI void rows_q8(const uint8_t *const *rows, int64_t b, __m512i *w) {
  const size_t off = (size_t)b * sizeof(ls_block_q8_0) + 2;
  __m512i z[8];
  #pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(rows[i] + off));
    __m256i c = _mm256_loadu_si256((const __m256i *)(rows[i + 8] + off));
    z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1);
  }
  transpose_8x8_halves(z, w);
}

/* Q4_0 packed quant bytes of 16 ROWS rows, transposed: p[k] lane r = row r's
 * bytes 4k..4k+3 (elements 4k.. in the low nibbles, 16+4k.. in the high). */
AI void rows_q4(const uint8_t *const *rows, int64_t b, __m512i *p) {
  const size_t off = (size_t)b * sizeof(ls_block_q4_0) + 2;
  __m512i z[4]; /* z[i] 128-bit lane L: row i + 4L */
  #pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[i] + off)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[i + 4] + off)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[i + 8] + off)), 2);
    z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[i + 12] + off)), 3);
  }
  __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  p[0] = _mm512_unpacklo_epi64(t0, t2);
  p[1] = _mm512_unpackhi_epi64(t0, t2);
  p[2] = _mm512_unpacklo_epi64(t1, t3);
  p[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* is_signed: the weights themselves as signed bytes (the AMX tiles multiply
 * signed by signed: no correction), else offset to unsigned (VNNI).
 * d16_rows: the block's scales for a ROWS group (group_scales). */
AI group_block load_block(const int q4, const group_src *src, int64_t b, const uint16_t *d16_rows,
                          const int is_signed) {
  group_block g;
  __m512i p[4];
  const uint8_t *blk = src->x16 ? src->x16 + (size_t)b * ls_x16_block_bytes(q4 ? LS_Q4_0 : LS_Q8_0) : NULL;
  if (q4) {
    if (blk) {
      #pragma GCC unroll 4
      for (int k = 0; k < 4; k++) p[k] = _mm512_loadu_si512(blk + ls_x16_quant_at(LS_Q4_0, (size_t)k, 0));
    } else {
      rows_q4(src->rows, b, p);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), k8 = _mm512_set1_epi8(8);
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      g.w[k] = _mm512_and_si512(p[k], m4);
      if (is_signed) { /* the values themselves */
        g.w[k] = _mm512_sub_epi8(g.w[k], k8);
        g.w[k + 4] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(p[k], 4), m4), k8);
      } else { /* the high nibbles left in place: 16 x (w + 8), vnni_isum divides their sum by 16 */
        g.w[k + 4] = _mm512_andnot_si512(m4, p[k]);
      }
    }
  } else {
    if (blk) {
      #pragma GCC unroll 8
      for (int k = 0; k < 8; k++) g.w[k] = _mm512_loadu_si512(blk + ls_x16_quant_at(LS_Q8_0, (size_t)k, 0));
    } else {
      rows_q8(src->rows, b, g.w);
    }
    const __m512i k128 = _mm512_set1_epi8((char)0x80);
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) g.w[k] = is_signed ? g.w[k] : _mm512_xor_si512(g.w[k], k128);
  }
  g.dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk ? blk : (const uint8_t *)d16_rows)));
  return g;
}

/* Group g (a multiple of 16) of w. */
static void group_source(const ls_mat *w, int64_t g, group_src *src) {
  const int64_t whole = w->layout == LS_LAYOUT_X16 ? w->rows / LANES * LANES : 0;
  src->x16 = g + LANES <= whole ? (const uint8_t *)w->data + (size_t)g * w->row_bytes : NULL;
  #pragma GCC unroll 16
  for (int i = 0; i < LANES; i++) {
    int64_t r = g + i < w->rows ? g + i : w->rows - 1;
    src->rows[i] = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
  }
}

/* An X16 group is one stream of bytes; the hardware prefetcher alone left
 * the 1-token pass at 12.5-12.9 GB/s from DRAM against 15.5 with these
 * prefetches PF_AHEAD bytes ahead (bench_matmul, Q8_0 2048 columns, 1
 * thread; 1024: 15.0, 4096: 13.7). ROWS groups read 16 streams and take
 * the hardware's. */
#define PF_AHEAD 2048
AI void prefetch_ahead(const int q4, const group_src *src, int64_t b) {
  if (src->x16) ls_x16_prefetch(src->x16, q4 ? LS_Q4_0 : LS_Q8_0, b, PF_AHEAD);
}

/* acc = fma((float)isum, dw * dx, acc): the one float step per block. */
AI __m512 block_step(__m512i isum, __m512 dw, float dx, __m512 acc) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc);
}

/* ---- VNNI: 16 rows x T tokens ------------------------------------------- */

AI __m512i bcast4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/* isum for one token: two chains of 4 dpbusd (integer: the split is exact),
 * bytes 0..15 and 16..31; Q4_0's second is 16 times its sum (load_block),
 * shifted back exactly. */
AI __m512i vnni_isum(const int q4, const group_block *g, const int8_t *xq, int32_t corr) {
  __m512i c0 = _mm512_set1_epi32(corr), c1 = _mm512_setzero_si512();
  #pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    c0 = _mm512_dpbusd_epi32(c0, g->w[k], bcast4(xq + 4 * k));
    c1 = _mm512_dpbusd_epi32(c1, g->w[k + 4], bcast4(xq + 4 * k + 16));
  }
  return _mm512_add_epi32(c0, q4 ? _mm512_srai_epi32(c1, 4) : c1);
}

AI void vnni_pass(const int q4, const int T, const group_src *src, int64_t nb, const void *xa, size_t xs, int t0,
                  float *y, int64_t ldy, int64_t g, __mmask16 live) {
  act_view v[VNNI_T];
  __m512 acc[VNNI_T];
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    v[t] = act_at(xa, xs, t0 + t, nb);
    acc[t] = _mm512_setzero_ps();
  }
  uint16_t d16[SCALE_CHUNK][LANES] __attribute__((aligned(32)));
  for (int64_t b0 = 0; b0 < nb; b0 += SCALE_CHUNK) {
    const int nbc = nb - b0 < SCALE_CHUNK ? (int)(nb - b0) : SCALE_CHUNK;
    if (!src->x16) group_scales(src->rows, block_bytes(q4), b0, nbc, d16);
    for (int j = 0; j < nbc; j++) {
      const int64_t b = b0 + j;
      prefetch_ahead(q4, src, b);
      group_block gb = load_block(q4, src, b, d16[j], 0);
      #pragma GCC unroll 4
      for (int t = 0; t < T; t++)
        acc[t] = block_step(vnni_isum(q4, &gb, v[t].q + b * LS_QK, v[t].corr[b]), gb.dw, v[t].dx[b], acc[t]);
    }
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (int64_t)(t0 + t) * ldy + g, live, acc[t]);
}

#define VNNI_PASS(name, q4, T)                                                                                 \
  __attribute__((noinline)) static void name(const group_src *src, int64_t nb, const void *xa, size_t xs, int t0, \
                                             float *y, int64_t ldy, int64_t g, __mmask16 live) {                 \
    vnni_pass(q4, T, src, nb, xa, xs, t0, y, ldy, g, live);                                                    \
  }
#define VNNI_PASSES(ty, q4)                                                                                     \
  VNNI_PASS(vnni_##ty##_1, q4, 1) VNNI_PASS(vnni_##ty##_2, q4, 2) VNNI_PASS(vnni_##ty##_3, q4, 3)              \
      VNNI_PASS(vnni_##ty##_4, q4, 4)
VNNI_PASSES(q8, 0)
VNNI_PASSES(q4, 1)

typedef void (*vnni_fn)(const group_src *, int64_t, const void *, size_t, int, float *, int64_t, int64_t, __mmask16);
/* One table indexed by type and token count (UBSan's object-size check
 * rejects a call through a choice between two arrays). */
static const vnni_fn vnni_passes[2][VNNI_T] = {{vnni_q8_1, vnni_q8_2, vnni_q8_3, vnni_q8_4},
                                               {vnni_q4_1, vnni_q4_2, vnni_q4_3, vnni_q4_4}};

/* ---- AMX: 16 rows x 16-token tiles -------------------------------------- */

/* Tiles: 0 and 5 = B (the group's transposed block: 8 rows of 16 x 4
 * bytes), 1 and 3 = A (16 tokens x the block's 32 bytes), 2 and 4 = C (16
 * tokens x 16 rows of int32): two of each, for two blocks at a time. */
typedef struct tile_config {
  uint8_t palette_id, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;
_Static_assert(sizeof(tile_config) == 64, "LDTILECFG reads 64 bytes");

/* The configuration lives in read-only memory: GCC 12 dropped the row and
 * column stores into a local struct before LDTILECFG where it did not
 * inline this function (every tile then had 0 rows and the first tile load
 * raised SIGILL). */
static const tile_config amx_tiles __attribute__((aligned(64))) = {
    .palette_id = 1,
    .colsb = {[0] = 64, [1] = LS_QK, [2] = LANES * 4, [3] = LS_QK, [4] = LANES * 4, [5] = 64},
    .rows = {[0] = 8, [1] = TILE_T, [2] = TILE_T, [3] = TILE_T, [4] = TILE_T, [5] = 8},
};

static _Thread_local int tiles_configured;

static void configure_tiles(void) {
  if (tiles_configured) return;
  _tile_loadconfig(&amx_tiles);
  tiles_configured = 1;
}

/* Tokens t0 .. t0 + 16*nt - 1 (nt <= AMX_T_MAX / 16) of group g, SCALE_CHUNK
 * blocks at a time: the chunk's blocks are transposed into bbuf first and
 * each token tile's products stored to cbuf before the float steps read
 * them (a tile load right after the vector stores that wrote its data, or a
 * vector load right after a tile store, waits for the stores). The float
 * steps then keep the tile's 16 accumulators in registers across the chunk. */
static void amx_pass(const int q4, const group_src *src, int64_t nb, const void *xa, size_t xs, int t0,
                     int nt, float *y, int64_t ldy, int64_t g, __mmask16 live) {
  float acc[AMX_T_MAX][LANES] __attribute__((aligned(64)));
  int32_t cbuf[C_RING][TILE_T * LANES] __attribute__((aligned(64)));
  int8_t bbuf[SCALE_CHUNK][8 * 64] __attribute__((aligned(64)));
  __m512 dw[SCALE_CHUNK];
  uint16_t d16[SCALE_CHUNK][LANES] __attribute__((aligned(32)));
  act_view v[AMX_T_MAX];
  const int n = nt * TILE_T;
  #pragma GCC unroll 1
  for (int t = 0; t < n; t++) v[t] = act_at(xa, xs, t0 + t, nb);
  memset(acc, 0, sizeof(float) * LANES * (size_t)n);
  configure_tiles();
  for (int64_t b0 = 0; b0 < nb; b0 += SCALE_CHUNK) {
    const int nbc = nb - b0 < SCALE_CHUNK ? (int)(nb - b0) : SCALE_CHUNK;
    if (!src->x16) group_scales(src->rows, block_bytes(q4), b0, nbc, d16);
    #pragma GCC unroll 1
    for (int j = 0; j < nbc; j++) {
      prefetch_ahead(q4, src, b0 + j);
      group_block gb = load_block(q4, src, b0 + j, d16[j], 1);
      #pragma GCC unroll 8
      for (int k = 0; k < 8; k++) _mm512_store_si512(bbuf[j] + 64 * k, gb.w[k]);
      dw[j] = gb.dw;
    }
    #pragma GCC unroll 1
    for (int i = 0; i < nt; i++) {
      const act_view *vt = v + TILE_T * i;
      float dxc[TILE_T][SCALE_CHUNK] __attribute__((aligned(64))); /* the chunk's scales of each token */
      #pragma GCC unroll 16
      for (int tt = 0; tt < TILE_T; tt++) _mm512_store_ps(dxc[tt], _mm512_loadu_ps(vt[tt].dx + b0));
      __m512 a[TILE_T];
      #pragma GCC unroll 16
      for (int tt = 0; tt < TILE_T; tt++) a[tt] = _mm512_load_ps(acc[TILE_T * i + tt]);
      /* the tile unit runs blocks j, j+1 while the vector units take the
       * float steps of blocks j-C_LAG, j-C_LAG+1 (C_RING slots of products) */
      #pragma GCC unroll 1
      for (int j = 0; j < nbc + C_LAG; j += 2) {
        if (j < nbc) {
          const int8_t *aq = vt[0].q + (b0 + j) * LS_QK;
          _tile_loadd(0, bbuf[j], 64);
          _tile_loadd(1, aq, xs);
          _tile_zero(2);
          _tile_dpbssd(2, 1, 0);
          _tile_stored(2, cbuf[j % C_RING], LANES * 4);
          if (j + 1 < nbc) {
            _tile_loadd(5, bbuf[j + 1], 64);
            _tile_loadd(3, aq + LS_QK, xs);
            _tile_zero(4);
            _tile_dpbssd(4, 3, 5);
            _tile_stored(4, cbuf[(j + 1) % C_RING], LANES * 4);
          }
        }
        const int e0 = j - C_LAG < 0 ? 0 : j - C_LAG, e1 = j - C_LAG + 2 < nbc ? j - C_LAG + 2 : nbc;
        for (int e = e0; e < e1; e++) {
          #pragma GCC unroll 16
          for (int tt = 0; tt < TILE_T; tt++)
            a[tt] = block_step(_mm512_load_si512(cbuf[e % C_RING] + LANES * tt), dw[e], dxc[tt][e], a[tt]);
        }
      }
      #pragma GCC unroll 16
      for (int tt = 0; tt < TILE_T; tt++) _mm512_store_ps(acc[TILE_T * i + tt], a[tt]);
    }
  }
  #pragma GCC unroll 1
  for (int t = 0; t < n; t++) _mm512_mask_storeu_ps(y + (int64_t)(t0 + t) * ldy + g, live, _mm512_load_ps(acc[t]));
}

/* ---- Q4_K: sub-block products on AMX tiles, the reference's float step ---- */

/* Super-block b of 16 ROWS rows: each sub-block's nibbles as a B tile (row k:
 * lane r = row r's values 4k..4k+3 of the sub-block), and per row the
 * 6-bit scales and mins (lanes = rows) and the fp16 d and dmin. */
typedef struct q4k_group {
  uint8_t tiles[8][8 * 64] __attribute__((aligned(64)));
  int32_t sc[8][LANES] __attribute__((aligned(64)));
  int32_t mn[8][LANES] __attribute__((aligned(64)));
  uint16_t d[LANES] __attribute__((aligned(32)));
  uint16_t dmin[LANES] __attribute__((aligned(32)));
} q4k_group;

static void q4k_group_load(const uint8_t *const *rows, int64_t b, q4k_group *o) {
  const size_t off = (size_t)b * sizeof(ls_block_q4_K);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  #pragma GCC unroll 1
  for (int i = 0; i < 4; i++) { /* qs bytes 32i..32i+31: sub-blocks 2i (low nibbles) and 2i+1 (high) */
    const size_t q = off + offsetof(ls_block_q4_K, qs) + 32 * (size_t)i;
    __m512i z[8], p[8];
    #pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
      z[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(rows[r] + q))),
                                _mm256_loadu_si256((const __m256i *)(rows[r + 8] + q)), 1);
    transpose_8x8_halves(z, p);
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      _mm512_store_si512(o->tiles[2 * i] + 64 * k, _mm512_and_si512(p[k], m4));
      _mm512_store_si512(o->tiles[2 * i + 1] + 64 * k, _mm512_and_si512(_mm512_srli_epi16(p[k], 4), m4));
    }
  }
  for (int r = 0; r < LANES; r++) {
    const ls_block_q4_K *w = (const ls_block_q4_K *)(rows[r] + off);
    for (int j = 0; j < 8; j++) ls_kq_scale_min_k4(w->scales, j, &o->sc[j][r], &o->mn[j][r]);
    o->d[r] = w->d, o->dmin[r] = w->dmin;
  }
}

/* Tokens t0 .. t0 + 16*nt - 1 of group g: y as the reference computes it
 * (ls_kq_acc_k per super-block, kquants_kernels.h), bit for bit. */
static void q4k_amx_pass(const group_src *src, int64_t nb, const void *xa, size_t xs, int t0, int nt, float *y,
                         int64_t ldy, int64_t g, __mmask16 live) {
  float acc[AMX_T_MAX][LANES] __attribute__((aligned(64)));
  int32_t cbuf[8][TILE_T * LANES] __attribute__((aligned(64)));
  q4k_group kg;
  const int n = nt * TILE_T;
  memset(acc, 0, sizeof(float) * LANES * (size_t)n);
  configure_tiles();
  for (int64_t b = 0; b < nb; b++) {
    q4k_group_load(src->rows, b, &kg);
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)kg.d));
    const __m512 dm = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)kg.dmin));
    #pragma GCC unroll 1
    for (int i = 0; i < nt; i++) {
      const int tt0 = t0 + TILE_T * i;
      const char *xq = (const char *)xa + (size_t)tt0 * xs + (size_t)b * sizeof(ls_block_q8_K) +
                       offsetof(ls_block_q8_K, qs);
      #pragma GCC unroll 1
      for (int j = 0; j < 8; j += 2) {
        _tile_loadd(0, kg.tiles[j], 64);
        _tile_loadd(5, kg.tiles[j + 1], 64);
        _tile_loadd(1, xq + 32 * j, xs);
        _tile_loadd(3, xq + 32 * (j + 1), xs);
        _tile_zero(2);
        _tile_zero(4);
        _tile_dpbsud(2, 1, 0);
        _tile_dpbsud(4, 3, 5);
        _tile_stored(2, cbuf[j], LANES * 4);
        _tile_stored(4, cbuf[j + 1], LANES * 4);
      }
      #pragma GCC unroll 1
      for (int tt = 0; tt < TILE_T; tt++) {
        const ls_block_q8_K *x = (const ls_block_q8_K *)((const char *)xa + (size_t)(tt0 + tt) * xs) + b;
        __m512i isum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
          isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_load_si512(cbuf[j] + LANES * tt),
                                                           _mm512_load_si512(kg.sc[j])));
          msum = _mm512_add_epi32(msum, _mm512_mullo_epi32(_mm512_load_si512(kg.mn[j]),
                                                           _mm512_set1_epi32(x->bsums[2 * j] + x->bsums[2 * j + 1])));
        }
        const __m512 dx = _mm512_set1_ps(x->d);
        __m512 a = _mm512_mul_ps(_mm512_mul_ps(dx, dw), _mm512_cvtepi32_ps(isum));
        __m512 m = _mm512_mul_ps(_mm512_mul_ps(dx, dm), _mm512_cvtepi32_ps(msum));
        float *s = acc[TILE_T * i + tt];
        _mm512_store_ps(s, _mm512_add_ps(_mm512_load_ps(s), _mm512_sub_ps(a, m)));
      }
    }
  }
  #pragma GCC unroll 1
  for (int t = 0; t < n; t++) _mm512_mask_storeu_ps(y + (int64_t)(t0 + t) * ldy + g, live, _mm512_load_ps(acc[t]));
}

/* Q4_K from 16 tokens: whole token tiles on AMX, the rest through the
 * AVX-512 level (the same bits: both are the reference's). */
static void q4k_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  const int64_t nb = w->cols / LS_QK_K;
  const int n_amx = n / TILE_T * TILE_T;
  for (int64_t g = r0 - r0 % LANES; g < r1; g += LANES) {
    group_src src;
    group_source(w, g, &src);
    const int64_t lo = r0 > g ? r0 - g : 0, hi = r1 - g < LANES ? r1 - g : LANES;
    const __mmask16 live = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
    for (int t = 0; t < n_amx; t += AMX_T_MAX) {
      int nt = (n_amx - t) / TILE_T;
      if (nt > AMX_T_MAX / TILE_T) nt = AMX_T_MAX / TILE_T;
      q4k_amx_pass(&src, nb, xa, xs, t, nt, y, ldy, g, live);
    }
  }
  if (n_amx < n)
    base->matmul(w, (const char *)xa + (size_t)n_amx * xs, xs, n - n_amx, y + (int64_t)n_amx * ldy, ldy, r0, r1);
}

/* ---- the matmul ----------------------------------------------------------- */

static void amx_matmul(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  if (w->type == LS_Q4_K && n >= TILE_T && w->layout == LS_LAYOUT_ROWS) {
    q4k_matmul(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  if (!is_quant(w->type)) {
    base->matmul(w, xa, xs, n, y, ldy, r0, r1);
    return;
  }
  const int q4 = w->type == LS_Q4_0;
  const int64_t nb = w->cols / LS_QK;
  for (int64_t g = r0 - r0 % LANES; g < r1; g += LANES) {
    group_src src;
    group_source(w, g, &src);
    const int64_t lo = r0 > g ? r0 - g : 0, hi = r1 - g < LANES ? r1 - g : LANES; /* rows g+lo .. g+hi-1 */
    const __mmask16 live = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
    int t = 0;
    while (n - t >= TILE_T) {
      int nt = (n - t) / TILE_T;
      if (nt > AMX_T_MAX / TILE_T) nt = AMX_T_MAX / TILE_T;
      amx_pass(q4, &src, nb, xa, xs, t, nt, y, ldy, g, live);
      t += nt * TILE_T;
    }
    for (; t < n; t += VNNI_T) {
      int T = n - t < VNNI_T ? n - t : VNNI_T;
      vnni_passes[q4][T - 1](&src, nb, xa, xs, t, y, ldy, g, live);
    }
  }
}

/* X16 for Q8_0 and Q4_0; Q4_K stays as ROWS, what q4k_matmul's tiles read. */
static int amx_pack(ls_mat *w, void *data) { return w->type == LS_Q4_K ? 0 : ls_x16_pack(w, data); }

static ls_kernels amx_table;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_build(void) {
  amx_table = *base;
  amx_table.name = "amx";
  amx_table.level = LS_KL_AMX;
  amx_table.act_bytes = amx_act_bytes;
  amx_table.act_prepare = amx_act_prepare;
  amx_table.matmul = amx_matmul;
  amx_table.pack = amx_pack;
}

const ls_kernels *ls_kernels_amx_table(const ls_kernels *avx512) {
  if (!base) base = avx512;
  pthread_once(&amx_once, amx_build);
  return &amx_table;
}
