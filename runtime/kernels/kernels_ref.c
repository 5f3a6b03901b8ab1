/* Scalar reference kernels: the definition every SIMD level is tested
 * against. The formulas follow llama2.c's run.c (rmsnorm, softmax, RoPE,
 * attention, SwiGLU) so that greedy decoding reproduces it; quantised
 * matmuls follow llama.cpp (activations quantised to Q8_0, integer dot
 * products per 32-element block, scaled by d_w * d_x in float). */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kquants_kernels.h"

float ls_ref_silu(float x) { return x * (1.0f / (1.0f + expf(-x))); }

static size_t ref_act_bytes(uint32_t wtype, int64_t cols) {
  if (ls_kq_is_type(wtype)) return ls_kq_act_bytes(wtype, cols);
  if (wtype == LS_Q8_0 || wtype == LS_Q4_0) return (size_t)(cols / LS_QK) * sizeof(ls_block_q8_0);
  return 0;
}

static void ref_act_prepare(uint32_t wtype, const float *x, int64_t cols, void *xa) {
  if (ls_kq_is_type(wtype)) ls_kq_act_prepare(wtype, x, cols, xa);
  if (wtype == LS_Q8_0 || wtype == LS_Q4_0) ls_quantize_row_q8_0(x, xa, cols);
}

static float dot_f32(const float *w, const float *x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; i++) s += w[i] * x[i];
  return s;
}

static float dot_f16(const uint16_t *w, const float *x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; i++) s += ls_fp16_to_fp32(w[i]) * x[i];
  return s;
}

static float dot_bf16(const uint16_t *w, const float *x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; i++) s += ls_bf16_to_fp32(w[i]) * x[i];
  return s;
}

static float dot_q8_0(const ls_block_q8_0 *w, const ls_block_q8_0 *x, int64_t nb) {
  float s = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    int32_t isum = 0;
    for (int j = 0; j < LS_QK; j++) isum += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
    s += (float)isum * (ls_fp16_to_fp32(w[b].d) * ls_fp16_to_fp32(x[b].d));
  }
  return s;
}

static float dot_q4_0(const ls_block_q4_0 *w, const ls_block_q8_0 *x, int64_t nb) {
  float s = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    int32_t isum = 0;
    for (int j = 0; j < LS_QK / 2; j++) {
      isum += ((w[b].qs[j] & 15) - 8) * (int32_t)x[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * (int32_t)x[b].qs[j + LS_QK / 2];
    }
    s += (float)isum * (ls_fp16_to_fp32(w[b].d) * ls_fp16_to_fp32(x[b].d));
  }
  return s;
}

static void ref_matmul(const ls_mat *w, const void *xa, size_t xa_stride, int n, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
  if (w->layout != LS_LAYOUT_ROWS) {
    ls_matmul_by_rows(ref_matmul, w, xa, xa_stride, n, y, ldy, r0, r1);
    return;
  }
  int64_t cols = w->cols, nb = cols / LS_QK;
  if (ls_kq_is_type(w->type)) {
    ls_kq_matmul_ref(w, xa, xa_stride, n, y, ldy, r0, r1);
    return;
  }
  for (int t = 0; t < n; t++) {
    const void *x = (const char *)xa + (size_t)t * xa_stride;
    for (int64_t r = r0; r < r1; r++) {
      const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
      float v = 0.0f;
      switch (w->type) {
      case LS_F32: v = dot_f32(row, x, cols); break;
      case LS_F16: v = dot_f16(row, x, cols); break;
      case LS_BF16: v = dot_bf16(row, x, cols); break;
      case LS_Q8_0: v = dot_q8_0(row, x, nb); break;
      case LS_Q4_0: v = dot_q4_0(row, x, nb); break;
      default: break;
      }
      y[(int64_t)t * ldy + r] = v;
    }
  }
}

void ls_ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
  float ss = 0.0f;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  ss /= (float)n;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int i = 0; i < n; i++) o[i] = w[i] * (ss * x[i]);
}

void ls_ref_softmax(float *x, int n) {
  float max = x[0];
  for (int i = 1; i < n; i++)
    if (x[i] > max) max = x[i];
  float sum = 0.0f;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; i++) x[i] /= sum;
}

void ls_ref_swiglu(float *h, const float *g, const float *u, int n) {
  for (int i = 0; i < n; i++) h[i] = ls_ref_silu(g[i]) * u[i];
}

static void rotate_pair(float *v, float fcr, float fci) {
  float v0 = v[0], v1 = v[1];
  v[0] = v0 * fcr - v1 * fci;
  v[1] = v0 * fci + v1 * fcr;
}

void ls_ref_rope(float *q, int n_q, float *k, int n_k, int head_dim, int rope_dim, int pos, float theta) {
  for (int i = 0; i < rope_dim; i += 2) {
    float freq = 1.0f / powf(theta, (float)i / (float)rope_dim);
    float val = (float)pos * freq;
    float fcr = cosf(val), fci = sinf(val);
    for (int h = 0; h < n_q; h++) rotate_pair(q + (int64_t)h * head_dim + i, fcr, fci);
    for (int h = 0; h < n_k; h++) rotate_pair(k + (int64_t)h * head_dim + i, fcr, fci);
  }
}

void ls_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t kv_stride, int n_pos,
                          int head_dim, float scale, float *att) {
  for (int j = 0; j < n_pos; j++) {
    const float *kj = k + (int64_t)j * kv_stride;
    float s = 0.0f;
    for (int i = 0; i < head_dim; i++) s += q[i] * kj[i];
    att[j] = s * scale;
  }
  ls_ref_softmax(att, n_pos);
  memset(out, 0, (size_t)head_dim * sizeof *out);
  for (int j = 0; j < n_pos; j++) {
    const float *vj = v + (int64_t)j * kv_stride;
    float a = att[j];
    for (int i = 0; i < head_dim; i++) out[i] += a * vj[i];
  }
}

const ls_kernels ls_kernels_ref = {
    .name = "ref",
    .level = LS_KL_REF,
    .act_bytes = ref_act_bytes,
    .act_prepare = ref_act_prepare,
    .matmul = ref_matmul,
    .quantize_q8_0 = ls_quantize_row_q8_0,
    .rmsnorm = ls_ref_rmsnorm,
    .softmax = ls_ref_softmax,
    .swiglu = ls_ref_swiglu,
    .rope = ls_ref_rope,
    .attention = ls_ref_attention,
};
