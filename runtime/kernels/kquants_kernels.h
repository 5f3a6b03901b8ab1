/* Kernels for the weight types of ls_kquants.h (Q4_1, Q5_0, Q5_1, IQ4_NL,
 * Q2_K..Q6_K), shared by every level of kernels.h: each level's act_bytes /
 * act_prepare / matmul hands these types to the functions below.
 *
 * Prepared activations (the same bytes at every level): Q8_K blocks for the
 * K-quants, Q8_1 for Q4_1/Q5_1, Q8_0 for Q5_0/IQ4_NL; llama.cpp pairs the
 * types the same way, so both engines round the activations alike.
 *
 * Exactness: per block, the weight-times-activation products are summed in
 * int32 (exact), then combined in float by ls_kq_acc_* in block order. A
 * SIMD kernel that computes the same integers therefore gives bit-identical
 * results to the reference, for any row range and token count. */
#ifndef LS_KQUANTS_KERNELS_H
#define LS_KQUANTS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ls_kquants.h"
#include "ls_model.h"

size_t ls_kq_act_bytes(uint32_t wtype, int64_t cols);
void ls_kq_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa);

/* matmul as in ls_kernels.matmul, for the types of ls_kq_is_type(). */
void ls_kq_matmul_ref(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1);
/* AVX2 for Q4_K, Q5_K and Q6_K (the reference for the other types); to be
 * called only on an AVX2 CPU. */
void ls_kq_matmul_avx2(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                       int64_t r1);
/* The same with AVX-512 (F/BW/VL), what the AVX-512 level uses; only on
 * such a CPU. */
void ls_kq_act_prepare_avx512(uint32_t wtype, const float *x, int64_t cols, void *xa);
void ls_kq_matmul_avx512(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                         int64_t r1, int prefetch);

/* One K-quant super-block's contribution: isum = sum over sub-blocks of
 * scale * (q . x), msum = sum of min * (sum of x) (0 for Q3_K/Q6_K). */
static inline float ls_kq_acc_k(float s, float dx, float dw, float dmin, int32_t isum, int32_t msum) {
  return s + (dx * dw * (float)isum - dx * dmin * (float)msum);
}

/* The fields of a Q4_K or Q5_K super-block (qh NULL for Q4_K) that the
 * SIMD unpackers read, with its fp16 scales d and dmin. */
static inline void ls_kq_q45_fields(uint32_t type, const void *wb, const uint8_t **scales, const uint8_t **qs,
                                    const uint8_t **qh, uint16_t *d, uint16_t *dmin) {
  if (type == LS_Q4_K) {
    const ls_block_q4_K *w = wb;
    *scales = w->scales, *qs = w->qs, *qh = NULL, *d = w->d, *dmin = w->dmin;
  } else {
    const ls_block_q5_K *w = wb;
    *scales = w->scales, *qs = w->qs, *qh = w->qh, *d = w->d, *dmin = w->dmin;
  }
}

/* unpack(type, wb, k) for a SIMD level's unpacked-block struct block_t: Q6_K
 * through the level's unpack_q6(w, k), Q4_K/Q5_K through unpack_q45(scales,
 * qs, qh, k); then the super-block scales k->d, k->dmin (F16C). */
#define LS_KQ_UNPACK_FN(block_t)                                                                                 \
  static inline __attribute__((always_inline)) void unpack(uint32_t type, const void *wb, block_t *k) {          \
    if (type == LS_Q6_K) {                                                                                       \
      unpack_q6(wb, k);                                                                                          \
      k->d = _cvtsh_ss(((const ls_block_q6_K *)wb)->d);                                                          \
      k->dmin = 0.0f;                                                                                            \
      return;                                                                                                    \
    }                                                                                                            \
    const uint8_t *scales, *qs, *qh;                                                                             \
    uint16_t d, dmin;                                                                                            \
    ls_kq_q45_fields(type, wb, &scales, &qs, &qh, &d, &dmin);                                                    \
    unpack_q45(scales, qs, qh, k);                                                                               \
    k->d = _cvtsh_ss(d);                                                                                         \
    k->dmin = _cvtsh_ss(dmin);                                                                                   \
  }

/* Reference per-block integer sums, also used by SIMD levels for tails. */
void ls_kq_block_sums(uint32_t wtype, const void *wblock, const ls_block_q8_K *x, int32_t *isum, int32_t *msum);

#endif
