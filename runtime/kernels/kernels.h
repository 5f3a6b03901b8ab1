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

typedef enum { LS_KL_REF = 0, LS_KL_AVX2 = 1, LS_KL_AVX512 = 2 } ls_kernel_level;

/* Most queries attention_rows takes in one call. */
#define LS_ATTN_ROWS 16
/* Fewest queries the engine gives attention_rows: its cost per key is that of
 * LS_ATTN_ROWS queries however many lanes are live, so a batched decode step
 * (one row per sequence) or a short run goes to `attention` row by row
 * (the same bits either way). */
#define LS_ATTN_ROWS_MIN 6

typedef struct ls_kernels {
  const char *name; /* "ref", "avx2", "avx512" */
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

/* Level tables (kernels_avx2.c / kernels_avx512.c; NULL-free). */
extern const ls_kernels ls_kernels_ref;
extern const ls_kernels ls_kernels_avx2;
extern const ls_kernels ls_kernels_avx512;       /* streams "prefetch" */
extern const ls_kernels ls_kernels_avx512_plain; /* streams "plain" */

/* Scalar reference functions, also used by levels that do not vectorise an op. */
float ls_ref_silu(float x);
void ls_ref_rope(float *q, int n_q, float *k, int n_k, int head_dim, int rope_dim, int pos, float theta);
void ls_ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps);
void ls_ref_softmax(float *x, int n);
void ls_ref_swiglu(float *h, const float *g, const float *u, int n);
void ls_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                      int head_dim, float scale, float *att);

#endif
