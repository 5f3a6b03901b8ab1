/* Scalar reference kernels for Q4_1, Q5_0, Q5_1, IQ4_NL and the K-quants:
 * the definition the SIMD kernels are tested against (kquants_kernels.h).
 * Dot products follow llama.cpp's pairing: Q5_0/IQ4_NL with Q8_0
 * activations, Q4_1/Q5_1 with Q8_1 (the min times the block's activation
 * sum), K-quants with Q8_K (mins through the 16-element sums). */
#include <string.h>

#include "kquants_kernels.h"

static uint32_t act_type(uint32_t wtype) {
  switch (wtype) {
  case LS_Q4_1: case LS_Q5_1: return LS_Q8_1;
  case LS_Q5_0: case LS_IQ4_NL: return LS_Q8_0;
  default: return LS_Q8_K;
  }
}

size_t ls_kq_act_bytes(uint32_t wtype, int64_t cols) {
  uint32_t a = act_type(wtype);
  if (a == LS_Q8_0) return (size_t)(cols / LS_QK) * sizeof(ls_block_q8_0);
  return (size_t)(cols / ls_dtype_block_elems(a)) * ls_dtype_block_bytes(a);
}

void ls_kq_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  switch (act_type(wtype)) {
  case LS_Q8_0: ls_quantize_row_q8_0_nearest(x, xa, cols); break;
  case LS_Q8_1: ls_quantize_row_q8_1(x, xa, cols); break;
  default: ls_quantize_row_q8_K(x, xa, cols); break;
  }
}

/* ---- 32-element blocks --------------------------------------------------- */

/* Block b's 32 integer values (before d and m) and its scales. */
static void unpack_32(uint32_t type, const void *row, int64_t b, int *q, float *d, float *m) {
  const uint8_t *qs, *qh = NULL;
  *m = 0.0f;
  if (type == LS_Q4_1) {
    const ls_block_q4_1 *w = (const ls_block_q4_1 *)row + b;
    qs = w->qs, *d = ls_fp16_to_fp32(w->d), *m = ls_fp16_to_fp32(w->m);
  } else if (type == LS_Q5_0) {
    const ls_block_q5_0 *w = (const ls_block_q5_0 *)row + b;
    qs = w->qs, qh = w->qh, *d = ls_fp16_to_fp32(w->d);
  } else if (type == LS_Q5_1) {
    const ls_block_q5_1 *w = (const ls_block_q5_1 *)row + b;
    qs = w->qs, qh = w->qh, *d = ls_fp16_to_fp32(w->d), *m = ls_fp16_to_fp32(w->m);
  } else {
    const ls_block_iq4_nl *w = (const ls_block_iq4_nl *)row + b;
    qs = w->qs, *d = ls_fp16_to_fp32(w->d);
  }
  uint32_t h = 0;
  if (qh) memcpy(&h, qh, 4);
  for (int j = 0; j < LS_QK; j++) {
    int v = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    if (qh) v |= (int)((h >> j) & 1) << 4;
    q[j] = type == LS_IQ4_NL ? ls_iq4nl_values[v] : type == LS_Q5_0 ? v - 16 : v;
  }
}

/* Q4_1/Q5_1 (x = d*q + m) with Q8_1: d_w d_x sum(q q_x) + m_w s_x per block;
 * Q5_0/IQ4_NL (x = d*q) with Q8_0: sum(q q_x) * (d_w d_x). */
static float dot_32(uint32_t type, const void *row, const void *xa, int64_t nb) {
  int with_min = type == LS_Q4_1 || type == LS_Q5_1;
  float s = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    int q[LS_QK];
    float d, m;
    unpack_32(type, row, b, q, &d, &m);
    const int8_t *xq = with_min ? ((const ls_block_q8_1 *)xa)[b].qs : ((const ls_block_q8_0 *)xa)[b].qs;
    int32_t isum = 0;
    for (int j = 0; j < LS_QK; j++) isum += q[j] * xq[j];
    if (with_min) {
      const ls_block_q8_1 *x = (const ls_block_q8_1 *)xa + b;
      s += d * ls_fp16_to_fp32(x->d) * (float)isum + m * ls_fp16_to_fp32(x->s);
    } else {
      s += (float)isum * (d * ls_fp16_to_fp32(((const ls_block_q8_0 *)xa)[b].d));
    }
  }
  return s;
}

/* ---- K-quants ------------------------------------------------------------ */

/* Sum over sub-blocks of `len` elements: scale_j * (q . x) for q[256] given. */
static int32_t scaled_dot(const int8_t *q, const int8_t *x, const int *scale, int len) {
  int32_t isum = 0;
  for (int j = 0; j < LS_QK_K / len; j++) {
    int32_t d = 0;
    for (int l = 0; l < len; l++) d += q[len * j + l] * x[len * j + l];
    isum += scale[j] * d;
  }
  return isum;
}

/* Unpacks 2-bit values (Q2_K/Q3_K low bits) into q[256]: element
 * 128g + 32s + l is bits 2s..2s+1 of qs[32g + l]. */
static void unpack_2bit(const uint8_t *qs, int8_t *q) {
  for (int g = 0; g < 2; g++)
    for (int s = 0; s < 4; s++)
      for (int l = 0; l < 32; l++) q[128 * g + 32 * s + l] = (int8_t)((qs[32 * g + l] >> (2 * s)) & 3);
}

void ls_kq_block_sums(uint32_t wtype, const void *wblock, const ls_block_q8_K *x, int32_t *isum, int32_t *msum) {
  int8_t q[LS_QK_K];
  int scale[16], mins[16];
  *msum = 0;
  switch (wtype) {
  case LS_Q2_K: {
    const ls_block_q2_K *w = wblock;
    unpack_2bit(w->qs, q);
    for (int j = 0; j < 16; j++) {
      scale[j] = w->scales[j] & 15;
      *msum += (w->scales[j] >> 4) * x->bsums[j];
    }
    *isum = scaled_dot(q, x->qs, scale, 16);
  } break;
  case LS_Q3_K: {
    const ls_block_q3_K *w = wblock;
    unpack_2bit(w->qs, q);
    for (int i = 0; i < 8; i++) /* the third bit of element 32i + l is bit i of hmask[l] */
      for (int l = 0; l < 32; l++) q[32 * i + l] -= (int8_t)(((w->hmask[l] >> i) & 1) ? 0 : 4);
    for (int j = 0; j < 16; j++) scale[j] = ls_kq_scale_q3_k(w->scales, j);
    *isum = scaled_dot(q, x->qs, scale, 16);
  } break;
  case LS_Q4_K: case LS_Q5_K: {
    const uint8_t *scales, *qs, *qh = NULL;
    if (wtype == LS_Q4_K) {
      const ls_block_q4_K *w = wblock;
      scales = w->scales;
      qs = w->qs;
    } else {
      const ls_block_q5_K *w = wblock;
      scales = w->scales;
      qs = w->qs;
      qh = w->qh;
    }
    for (int i = 0; i < 8; i++) /* sub-block i: nibbles of group i/2, fifth bit i of qh */
      for (int l = 0; l < 32; l++) {
        int v = i & 1 ? qs[32 * (i / 2) + l] >> 4 : qs[32 * (i / 2) + l] & 15;
        if (qh) v |= ((qh[l] >> i) & 1) << 4;
        q[32 * i + l] = (int8_t)v;
      }
    for (int j = 0; j < 8; j++) {
      ls_kq_scale_min_k4(scales, j, &scale[j], &mins[j]);
      *msum += mins[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    *isum = scaled_dot(q, x->qs, scale, 32);
  } break;
  case LS_Q6_K: {
    const ls_block_q6_K *w = wblock;
    for (int h = 0; h < 2; h++)
      for (int l = 0; l < 32; l++) {
        const uint8_t *ql = w->ql + 64 * h, qh = w->qh[32 * h + l];
        int8_t *o = q + 128 * h + l;
        o[0] = (int8_t)(((ql[l] & 15) | ((qh >> 0) & 3) << 4) - 32);
        o[32] = (int8_t)(((ql[l + 32] & 15) | ((qh >> 2) & 3) << 4) - 32);
        o[64] = (int8_t)(((ql[l] >> 4) | ((qh >> 4) & 3) << 4) - 32);
        o[96] = (int8_t)(((ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4) - 32);
      }
    for (int j = 0; j < 16; j++) scale[j] = w->scales[j];
    *isum = scaled_dot(q, x->qs, scale, 16);
  } break;
  default: *isum = 0;
  }
}

/* The super-block scales (d, dmin) of a K-quant block. */
static void k_scales(uint32_t wtype, const void *wb, float *d, float *dmin) {
  *dmin = 0.0f;
  switch (wtype) {
  case LS_Q2_K: *d = ls_fp16_to_fp32(((const ls_block_q2_K *)wb)->d); *dmin = ls_fp16_to_fp32(((const ls_block_q2_K *)wb)->dmin); break;
  case LS_Q3_K: *d = ls_fp16_to_fp32(((const ls_block_q3_K *)wb)->d); break;
  case LS_Q4_K: *d = ls_fp16_to_fp32(((const ls_block_q4_K *)wb)->d); *dmin = ls_fp16_to_fp32(((const ls_block_q4_K *)wb)->dmin); break;
  case LS_Q5_K: *d = ls_fp16_to_fp32(((const ls_block_q5_K *)wb)->d); *dmin = ls_fp16_to_fp32(((const ls_block_q5_K *)wb)->dmin); break;
  default: *d = ls_fp16_to_fp32(((const ls_block_q6_K *)wb)->d); break;
  }
}

static float dot_k(uint32_t wtype, const void *row, const ls_block_q8_K *x, int64_t nb) {
  size_t bb = ls_dtype_block_bytes(wtype);
  float s = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    const void *wb = (const char *)row + (size_t)b * bb;
    int32_t isum, msum;
    float d, dmin;
    ls_kq_block_sums(wtype, wb, &x[b], &isum, &msum);
    k_scales(wtype, wb, &d, &dmin);
    s = ls_kq_acc_k(s, x[b].d, d, dmin, isum, msum);
  }
  return s;
}

void ls_kq_matmul_ref(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
  int64_t nb = w->cols / ls_dtype_block_elems(w->type);
  for (int t = 0; t < n; t++) {
    const void *x = (const char *)xa + (size_t)t * xa_stride;
    for (int64_t r = r0; r < r1; r++) {
      const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
      int k_quant = ls_dtype_block_elems(w->type) == LS_QK_K;
      y[(int64_t)t * ldy + r] = k_quant ? dot_k(w->type, row, x, nb) : dot_32(w->type, row, x, nb);
    }
  }
}
