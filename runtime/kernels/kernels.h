/* Compute kernels: a table of function pointers per instruction-set level
 * (scalar reference, AVX2/FMA, AVX-512 with VNNI), chosen at run time from
 * the CPU's features or forced with LS_KERNELS=ref|avx2|avx512.
 *
 * Matrix multiplication works on "prepared activations": for F32, F16 and
 * BF16 weights these are the f32 activations themselves; for Q8_0 and Q4_0
 * weights the activations are quantised to Q8_0 once per matmul (exactly as
 * ls_quantize_row_q8_0 does) and stored in a layout of the level's choosing
 * (act_bytes() per token, 0 meaning "plain f32, stride cols floats").
 *
 * Determinism contract (what makes results identical for any thread count):
 * within one level, output element (r, t) of matmul is computed by the same
 * sequence of floating-point operations whatever row range [r0, r1) and
 * token count the call covers, including n = 1 (matrix-vector) against any
 * n > 1 (matrix-matrix), and whatever the other tokens are. The batched
 * engine relies on this: a row's logits must not depend on what else is in
 * the batch (tests/kernels/test_kernels.c checks every row, every level). */
#ifndef LS_KERNELS_H
#define LS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ls_model.h"
#include "ls_quant.h"

typedef enum { LS_KL_REF = 0, LS_KL_AVX2 = 1, LS_KL_AVX512 = 2, LS_KL_AMX = 3 } ls_kernel_level;
#define LS_KL_MAX LS_KL_AMX

/* Most queries attention_rows takes in one call. */
#define LS_ATTN_ROWS 16
/* Fewest queries the engine gives attention_rows: its cost per key is that of
 * LS_ATTN_ROWS queries however many lanes are live, so a batched decode step
 * (one row per sequence) or a short run goes to `attention` row by row
 * (the same bits either way). */
#define LS_ATTN_ROWS_MIN 6

typedef struct ls_kernels {
  const char *name; /* "ref", "avx2", "avx512", "amx" */
  int level;        /* ls_kernel_level */
  /* How matmul reads weight rows at up to 4 tokens (decode, small batches):
   * "prefetch" (software prefetch ahead of each row stream, Q8_0 in pairs of
   * rows) or "plain" (the hardware prefetcher alone, one row at a time).
   * Both give the same bits; which one is faster depends on the CPU
   * (ls_kernels_get, docs/engine.md). NULL: the level has one way. */
  const char *streams;

  /* Bytes of prepared activations per token for a weight type and width (0:
   * use the f32 vector as is). */
  size_t (*act_bytes)(uint32_t wtype, int64_t cols);
  /* Prepares one token's activations x[cols] into xa (act_bytes long). */
  void (*act_prepare)(uint32_t wtype, const float *x, int64_t cols, void *xa);
  /* y[t*ldy + r] = sum_c W[r][c] * x_t[c] for r in [r0, r1), t in [0, n).
   * xa: prepared activations of token t at (char *)xa + t*xa_stride. */
  void (*matmul)(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                 int64_t r1);

  /* Rewrites a Q8_0 or Q4_0 matrix's bytes (data: w->data, writable) into
   * the layout this level reads fastest and sets w->layout; returns 0, or -1
   * if out of memory (nothing changed). NULL: the level reads rows as
   * stored. Every level's matmul takes every layout with the same bits
   * (levels without their own way go row by row: ls_matmul_by_rows). */
  int (*pack)(ls_mat *w, void *data);

  /* Q8_0 quantisation, bit-identical to ls_quantize_row_q8_0 at every level. */
  void (*quantize_q8_0)(const float *x, ls_block_q8_0 *y, int64_t k);

  /* o = x / rms(x) * w (o may alias x). */
  void (*rmsnorm)(float *o, const float *x, const float *w, int n, float eps);
  /* In-place softmax of x[n]. */
  void (*softmax)(float *x, int n);
  /* h[i] = silu(g[i]) * u[i] (h may alias g). */
  void (*swiglu)(float *h, const float *g, const float *u, int n);
  /* Rotates adjacent pairs (x[2i], x[2i+1]) of each of the n_q heads of q
   * and the n_k heads of k (head_dim each) by pos * theta^(-2i/rope_dim) for
   * 2i < rope_dim: a row's queries and keys together, each angle's cos and
   * sin computed once for both. */
  void (*rope)(float *q, int n_q, float *k, int n_k, int head_dim, int rope_dim, int pos, float theta);
  /* One attention head for one query: out[head_dim] = sum_j softmax_j(q.k_j *
   * scale) v_j over j in [0, n_pos); k_j at k + j*kv_stride, v_j likewise.
   * att is scratch of n_pos floats. */
  void (*attention)(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                    int head_dim, float scale, float *att);
  /* Queries 0..n_q-1 (n_q <= LS_ATTN_ROWS) of one head over one sequence's
   * keys at once, each bit-identical to `attention` alone: query r at
   * q + r*q_stride with n_pos[r] positions, its output at out + r*out_stride.
   * att: scratch of LS_ATTN_ROWS * max(n_pos) floats, 64-byte aligned.
   * Returns 0, doing nothing, where it does not take the head size (the caller
   * runs `attention` per query); NULL at levels without it. */
  int (*attention_rows)(float *out, int64_t out_stride, const float *q, int64_t q_stride, const int *n_pos, int n_q,
                        const float *k, const float *v, int64_t kv_stride, int head_dim, float scale, float *att);
} ls_kernels;

/* The best level this CPU supports, or the one LS_KERNELS names (an
 * unsupported or unknown name falls back to the best supported level); at
 * the AVX-512 level, the streams this CPU reads fastest (AMD family 25,
 * Zen 4: "plain"; others "prefetch"), or the ones LS_STREAMS=prefetch|plain
 * names. */
const ls_kernels *ls_kernels_get(void);
/* A given level, or NULL if this CPU (or build) cannot run it. */
const ls_kernels *ls_kernels_level(int level);

/* The "amx" level (kernels_amx.c): the given AVX-512 table with Q8_0 and
 * Q4_0 matmul in block order, on AMX-INT8 tiles from 16 tokens up. */
const ls_kernels *ls_kernels_amx_table(const ls_kernels *avx512);

/* Level tables (kernels_avx2.c / kernels_avx512.c; NULL-free). */
extern const ls_kernels ls_kernels_ref;
extern const ls_kernels ls_kernels_avx2;
extern const ls_kernels ls_kernels_avx512;       /* streams "prefetch" */
extern const ls_kernels ls_kernels_avx512_plain; /* streams "plain" */
/* Software prefetch distances (bytes) of the AVX-512 float and K-quant
 * tiles: the CPU's, set once by ls_kernels_level before it hands out an
 * AVX-512 table (Zen 5's 8192 and 12288 by default; 2048 on Intel). */
extern size_t ls_a5_float_pf_bytes, ls_a5_kquant_pf_bytes;

/* The X16 layout's offsets (ls_model.h), one definition for the packer and
 * the kernels that read it: a block's head (Q8_0 and Q4_0: the scale d;
 * Q4_K: d, dmin and the 12 bytes of scales and mins) and quant bytes, the
 * bytes of one block of a 16-row group, and where in it row i's head and
 * 4-byte quant word k are. */
static inline size_t ls_x16_head_bytes(uint32_t type) { return type == LS_Q4_K ? 16 : 2; }
static inline size_t ls_x16_quant_bytes(uint32_t type) {
  return type == LS_Q8_0 ? 32 : type == LS_Q4_K ? 128 : 16;
}
static inline size_t ls_x16_block_bytes(uint32_t type) {
  return LS_X16_ROWS * (ls_x16_head_bytes(type) + ls_x16_quant_bytes(type));
}
static inline size_t ls_x16_head_at(uint32_t type, size_t i) { return ls_x16_head_bytes(type) * i; }
static inline size_t ls_x16_quant_at(uint32_t type, size_t k, size_t i) {
  return LS_X16_ROWS * ls_x16_head_bytes(type) + 64 * k + 4 * i;
}
/* Prefetch the lines of block b of the X16 group at `group`, `ahead` bytes
 * further on: a group is one stream of bytes, and the hardware prefetcher
 * alone falls behind on it (docs/engine.md). */
static inline void ls_x16_prefetch(const void *group, uint32_t type, int64_t b, size_t ahead) {
  const size_t gb = ls_x16_block_bytes(type); /* 544, 288 or 2304 bytes */
  const char *p = (const char *)group + (size_t)b * gb + ahead;
#pragma GCC unroll 36
  for (size_t l = 0; l < (gb + 63) / 64; l++) __builtin_prefetch(p + 64 * l, 0, 3);
}

/* Largest row (bytes) ls_matmul_by_rows unpacks; wider X16 matrices are
 * not packed (ls_x16_packable). */
#define LS_X16_ROW_BYTES_MAX ((size_t)32768 / 32 * 34)
int ls_x16_packable(const ls_mat *w);
/* The X16 packing itself (a level's `pack`): ROWS -> X16 in place; a
 * matrix that is not packable is left as it is (returns 0). */
int ls_x16_pack(ls_mat *w, void *data);
/* Row r of an X16 matrix as ROWS (row_bytes into out). */
void ls_x16_unpack_row(const ls_mat *w, int64_t r, void *out);
/* Row r of w (any layout) as f32 (w->cols floats). */
void ls_mat_row_f32(const ls_mat *w, int64_t r, float *out);
/* matmul through a level's own function one row at a time, each row
 * unpacked from the X16 layout (its bits are that level's on ROWS: a row's
 * result does not depend on the row range). */
typedef void (*ls_matmul_fn)(const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy, int64_t r0,
                             int64_t r1);
void ls_matmul_by_rows(ls_matmul_fn f, const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy,
                       int64_t r0, int64_t r1);

/* Scalar reference functions, also used by levels that do not vectorise an op. */
float ls_ref_silu(float x);
void ls_ref_rope(float *q, int n_q, float *k, int n_k, int head_dim, int rope_dim, int pos, float theta);
void ls_ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps);
void ls_ref_softmax(float *x, int n);
void ls_ref_swiglu(float *h, const float *g, const float *u, int n);
void ls_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                      int head_dim, float scale, float *att);

#endif
