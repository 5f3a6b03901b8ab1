/* Q4_1, Q5_0, Q5_1, IQ4_NL and the K-quants: sizes, dequantisation, the
 * activation quantisers Q8_1 / Q8_K and a simple Q4_K quantiser. */
#include <math.h>
#include <string.h>

#include "ls_kquants.h"

const int8_t ls_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

int ls_kq_is_type(uint32_t type) {
  switch (type) {
  case LS_Q4_1: case LS_Q5_0: case LS_Q5_1: case LS_IQ4_NL:
  case LS_Q2_K: case LS_Q3_K: case LS_Q4_K: case LS_Q5_K: case LS_Q6_K: return 1;
  default: return 0;
  }
}

void ls_kq_scale_min_k4(const uint8_t *s, int j, int *sc, int *m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else { /* low 4 bits in bytes 8..11, top 2 bits in the spare bits of bytes 0..7 */
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

int ls_kq_scale_q3_k(const uint8_t *s, int j) {
  int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
  int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return (lo | hi << 4) - 32;
}

/* The 5-bit value of element j (0..31) of a Q5_0/Q5_1 block. */
static int q5_value(const uint8_t *qs, const uint8_t *qh, int j) {
  uint32_t h;
  memcpy(&h, qh, 4);
  int lo = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
  return lo | (int)((h >> j) & 1) << 4;
}

static void dequant_32(uint32_t type, const void *row, float *y, int64_t nb) {
  for (int64_t b = 0; b < nb; b++, y += LS_QK) {
    switch (type) {
    case LS_Q4_1: {
      const ls_block_q4_1 *x = (const ls_block_q4_1 *)row + b;
      float d = ls_fp16_to_fp32(x->d), m = ls_fp16_to_fp32(x->m);
      for (int j = 0; j < 16; j++) {
        y[j] = (float)(x->qs[j] & 15) * d + m;
        y[j + 16] = (float)(x->qs[j] >> 4) * d + m;
      }
    } break;
    case LS_Q5_0: {
      const ls_block_q5_0 *x = (const ls_block_q5_0 *)row + b;
      float d = ls_fp16_to_fp32(x->d);
      for (int j = 0; j < 32; j++) y[j] = (float)(q5_value(x->qs, x->qh, j) - 16) * d;
    } break;
    case LS_Q5_1: {
      const ls_block_q5_1 *x = (const ls_block_q5_1 *)row + b;
      float d = ls_fp16_to_fp32(x->d), m = ls_fp16_to_fp32(x->m);
      for (int j = 0; j < 32; j++) y[j] = (float)q5_value(x->qs, x->qh, j) * d + m;
    } break;
    case LS_IQ4_NL: {
      const ls_block_iq4_nl *x = (const ls_block_iq4_nl *)row + b;
      float d = ls_fp16_to_fp32(x->d);
      for (int j = 0; j < 16; j++) {
        y[j] = d * (float)ls_iq4nl_values[x->qs[j] & 15];
        y[j + 16] = d * (float)ls_iq4nl_values[x->qs[j] >> 4];
      }
    } break;
    }
  }
}

static void dequant_q2_k(const ls_block_q2_K *x, float *y) {
  float d = ls_fp16_to_fp32(x->d), dmin = ls_fp16_to_fp32(x->dmin);
  for (int e = 0; e < LS_QK_K; e++) {
    int g = e / 128, s = (e % 128) / 32, l = e % 32;
    int q = (x->qs[32 * g + l] >> (2 * s)) & 3;
    uint8_t sc = x->scales[e / 16];
    y[e] = d * (float)(sc & 15) * (float)q - dmin * (float)(sc >> 4);
  }
}

static void dequant_q3_k(const ls_block_q3_K *x, float *y) {
  float d = ls_fp16_to_fp32(x->d);
  for (int e = 0; e < LS_QK_K; e++) {
    int g = e / 128, s = (e % 128) / 32, l = e % 32, i = e / 32;
    int q = (x->qs[32 * g + l] >> (2 * s)) & 3;
    if (!((x->hmask[l] >> i) & 1)) q -= 4;
    y[e] = d * (float)ls_kq_scale_q3_k(x->scales, e / 16) * (float)q;
  }
}

/* Q4_K/Q5_K: qh is NULL for Q4_K. */
static void dequant_q45_k(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                          float *y) {
  float d = ls_fp16_to_fp32(dh), dmin = ls_fp16_to_fp32(dminh);
  for (int e = 0; e < LS_QK_K; e++) {
    int i = e / 32, l = e % 32, sc, m;
    int q = i & 1 ? qs[32 * (i / 2) + l] >> 4 : qs[32 * (i / 2) + l] & 15;
    if (qh) q |= ((qh[l] >> i) & 1) << 4;
    ls_kq_scale_min_k4(scales, i, &sc, &m);
    y[e] = d * (float)sc * (float)q - dmin * (float)m;
  }
}

/* The 6-bit value (0..63) of element e of a Q6_K block. */
static int q6_value(const ls_block_q6_K *x, int e) {
  int h = e / 128, r = e % 128, l = r % 32, s = r / 32; /* s: 0..3 = l, l+32, l+64, l+96 */
  uint8_t lo = x->ql[64 * h + l + (s & 1) * 32];
  int low = s < 2 ? lo & 15 : lo >> 4;
  int high = (x->qh[32 * h + l] >> (2 * s)) & 3;
  return low | high << 4;
}

static void dequant_q6_k(const ls_block_q6_K *x, float *y) {
  float d = ls_fp16_to_fp32(x->d);
  for (int e = 0; e < LS_QK_K; e++) y[e] = d * (float)x->scales[e / 16] * (float)(q6_value(x, e) - 32);
}

void ls_kq_dequantize_row(uint32_t type, const void *row, float *y, int64_t k) {
  if (ls_dtype_block_elems(type) == LS_QK) {
    dequant_32(type, row, y, k / LS_QK);
    return;
  }
  for (int64_t b = 0; b < k / LS_QK_K; b++, y += LS_QK_K) {
    switch (type) {
    case LS_Q2_K: dequant_q2_k((const ls_block_q2_K *)row + b, y); break;
    case LS_Q3_K: dequant_q3_k((const ls_block_q3_K *)row + b, y); break;
    case LS_Q4_K: {
      const ls_block_q4_K *x = (const ls_block_q4_K *)row + b;
      dequant_q45_k(x->d, x->dmin, x->scales, x->qs, NULL, y);
    } break;
    case LS_Q5_K: {
      const ls_block_q5_K *x = (const ls_block_q5_K *)row + b;
      dequant_q45_k(x->d, x->dmin, x->scales, x->qs, x->qh, y);
    } break;
    case LS_Q6_K: dequant_q6_k((const ls_block_q6_K *)row + b, y); break;
    case LS_Q8_K: {
      const ls_block_q8_K *x = (const ls_block_q8_K *)row + b;
      for (int j = 0; j < LS_QK_K; j++) y[j] = x->d * (float)x->qs[j];
    } break;
    default: memset(y, 0, LS_QK_K * sizeof *y);
    }
  }
}

void ls_quantize_row_q8_K(const float *x, ls_block_q8_K *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK_K; b++, x += LS_QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < LS_QK_K; j++)
      if (fabsf(x[j]) > amax) {
        amax = fabsf(x[j]);
        max = x[j];
      }
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float iscale = -127.0f / max;
    for (int j = 0; j < LS_QK_K; j++) {
      long v = lrintf(iscale * x[j]); /* default rounding mode: nearest, ties to even */
      y[b].qs[j] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int g = 0; g < LS_QK_K / 16; g++) {
      int s = 0;
      for (int j = 0; j < 16; j++) s += y[b].qs[16 * g + j];
      y[b].bsums[g] = (int16_t)s;
    }
    y[b].d = 1.0f / iscale;
  }
}

/* One 32-element block as llama.cpp's x86 activation quantisers round it:
 * q = nearest-even(x * (127 / amax)), d = amax / 127; returns sum(q). */
static int quant_block_q8(const float *x, uint16_t *dh, int8_t *qs) {
  float amax = 0.0f;
  for (int j = 0; j < LS_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
  float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < LS_QK; j++) {
    qs[j] = (int8_t)lrintf(x[j] * id);
    sum += qs[j];
  }
  *dh = ls_fp32_to_fp16(d);
  return sum;
}

void ls_quantize_row_q8_0_nearest(const float *x, ls_block_q8_0 *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK; b++) quant_block_q8(x + b * LS_QK, &y[b].d, y[b].qs);
}

void ls_quantize_row_q8_1(const float *x, ls_block_q8_1 *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK; b++) {
    int sum = quant_block_q8(x + b * LS_QK, &y[b].d, y[b].qs);
    float amax = 0.0f;
    for (int j = 0; j < LS_QK; j++) amax = fmaxf(amax, fabsf(x[b * LS_QK + j]));
    y[b].s = ls_fp32_to_fp16((float)sum * (amax / 127.0f));
  }
}

/* ---- Q4_K quantiser ------------------------------------------------------ */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void quantize_block_q4_k(const float *x, ls_block_q4_K *y) {
  float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
  for (int i = 0; i < 8; i++) { /* x ~ scale * q - min with q in 0..15 and min >= 0 */
    float lo = 0.0f, hi = 0.0f;
    for (int l = 0; l < 32; l++) {
      lo = fminf(lo, x[32 * i + l]);
      hi = fmaxf(hi, x[32 * i + l]);
    }
    scale[i] = (hi - lo) / 15.0f;
    minv[i] = -lo;
    max_scale = fmaxf(max_scale, scale[i]);
    max_min = fmaxf(max_min, minv[i]);
  }
  float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  y->d = ls_fp32_to_fp16(d);
  y->dmin = ls_fp32_to_fp16(dmin);
  d = ls_fp16_to_fp32(y->d); /* quantise against the scales as stored */
  dmin = ls_fp16_to_fp32(y->dmin);
  int sc[8], m[8];
  for (int i = 0; i < 8; i++) {
    sc[i] = d > 0 ? clampi((int)lrintf(scale[i] / d), 0, 63) : 0;
    m[i] = dmin > 0 ? clampi((int)lrintf(minv[i] / dmin), 0, 63) : 0;
  }
  memset(y->scales, 0, sizeof y->scales);
  for (int i = 0; i < 4; i++) {
    y->scales[i] = (uint8_t)(sc[i] | (sc[i + 4] >> 4) << 6);
    y->scales[i + 4] = (uint8_t)(m[i] | (m[i + 4] >> 4) << 6);
    y->scales[i + 8] = (uint8_t)((sc[i + 4] & 15) | (m[i + 4] & 15) << 4);
  }
  memset(y->qs, 0, sizeof y->qs);
  for (int i = 0; i < 8; i++) {
    float ds = d * (float)sc[i], dm = dmin * (float)m[i];
    for (int l = 0; l < 32; l++) {
      int q = ds > 0 ? clampi((int)lrintf((x[32 * i + l] + dm) / ds), 0, 15) : 0;
      y->qs[32 * (i / 2) + l] |= (uint8_t)(i & 1 ? q << 4 : q);
    }
  }
}

void ls_quantize_row_q4_K(const float *x, ls_block_q4_K *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK_K; b++) quantize_block_q4_k(x + b * LS_QK_K, y + b);
}

/* ---- Q6_K quantiser ------------------------------------------------------ */

/* Element e of a super-block: its ql byte, nibble, qh byte and qh shift
 * (the layout ls_kquants.h states for Q6_K). */
static void q6_k_place(int e, int *ql, int *high_nibble, int *qh, int *shift) {
  int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
  *ql = 64 * h + l + (quarter & 1) * 32;
  *high_nibble = quarter >= 2;
  *qh = 32 * h + l;
  *shift = 2 * quarter;
}

static void quantize_block_q6_k(const float *x, ls_block_q6_K *y) {
  float scale[16], max_scale = 0.0f;
  for (int j = 0; j < 16; j++) { /* x ~ scale * q with q in -32..31 */
    float amax = 0.0f;
    for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * j + l]));
    scale[j] = amax / 31.0f;
    max_scale = fmaxf(max_scale, scale[j]);
  }
  float d = max_scale / 127.0f;
  y->d = ls_fp32_to_fp16(d);
  d = ls_fp16_to_fp32(y->d); /* quantise against the scales as stored */
  for (int j = 0; j < 16; j++) y->scales[j] = (int8_t)(d > 0 ? clampi((int)lrintf(scale[j] / d), -128, 127) : 0);
  memset(y->ql, 0, sizeof y->ql);
  memset(y->qh, 0, sizeof y->qh);
  for (int e = 0; e < LS_QK_K; e++) {
    float ds = d * (float)y->scales[e / 16];
    int q = ds > 0 ? clampi((int)lrintf(x[e] / ds), -32, 31) + 32 : 32;
    int ql, high, qh, shift;
    q6_k_place(e, &ql, &high, &qh, &shift);
    y->ql[ql] |= (uint8_t)(high ? (q & 15) << 4 : q & 15);
    y->qh[qh] |= (uint8_t)((q >> 4) << shift);
  }
}

void ls_quantize_row_q6_K(const float *x, ls_block_q6_K *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK_K; b++) quantize_block_q6_k(x + b * LS_QK_K, y + b);
}
