#include "ls_quant.h"

#include <math.h>
#include <string.h>

int ls_dtype_supported(uint32_t type) {
  return type == LS_F32 || type == LS_F16 || type == LS_BF16 || type == LS_Q8_0 || type == LS_Q4_0;
}

const char *ls_dtype_name(uint32_t type) {
  switch (type) {
  case 0: return "F32";
  case 1: return "F16";
  case 2: return "Q4_0";
  case 3: return "Q4_1";
  case 6: return "Q5_0";
  case 7: return "Q5_1";
  case 8: return "Q8_0";
  case 9: return "Q8_1";
  case 10: return "Q2_K";
  case 11: return "Q3_K";
  case 12: return "Q4_K";
  case 13: return "Q5_K";
  case 14: return "Q6_K";
  case 15: return "Q8_K";
  case 24: return "I8";
  case 25: return "I16";
  case 26: return "I32";
  case 27: return "I64";
  case 28: return "F64";
  case 30: return "BF16";
  default: return "unknown";
  }
}

int ls_dtype_block_elems(uint32_t type) {
  switch (type) {
  case LS_F32: case LS_F16: case LS_BF16: return 1;
  case LS_Q8_0: case LS_Q4_0: return LS_QK;
  default: return 0;
  }
}

size_t ls_dtype_block_bytes(uint32_t type) {
  switch (type) {
  case LS_F32: return 4;
  case LS_F16: case LS_BF16: return 2;
  case LS_Q8_0: return sizeof(ls_block_q8_0);
  case LS_Q4_0: return sizeof(ls_block_q4_0);
  default: return 0;
  }
}

size_t ls_dtype_row_bytes(uint32_t type, int64_t cols) {
  int be = ls_dtype_block_elems(type);
  if (be == 0 || cols < 0 || cols % be) return 0;
  return (size_t)(cols / be) * ls_dtype_block_bytes(type);
}

float ls_fp16_to_fp32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400));
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t ls_fp32_to_fp16(float f) {
  /* round to nearest even, with subnormals, infinities and NaN */
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
  if (absx < 0x38800000u) { /* subnormal or zero in fp16 */
    if (absx < 0x33000000u) return (uint16_t)sign;
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7fffff) | 0x800000;
    /* value = m * 2^(e-150); the fp16 subnormal unit is 2^-24, so q = m * 2^(e-126) */
    uint32_t s = 126 - e; /* right shift, 14..24 */
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t halfway = 1u << (s - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t e = (absx >> 23) - 127 + 15;
  uint32_t m = absx & 0x7fffff;
  uint32_t h = (e << 10) | (m >> 13);
  uint32_t rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float ls_bf16_to_fp32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t ls_fp32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

void ls_quantize_row_q8_0(const float *x, ls_block_q8_0 *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK; b++) {
    const float *xb = x + b * LS_QK;
    float amax = 0.0f;
    for (int j = 0; j < LS_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
    float d = amax / 127.0f;
    float id = d ? 1.0f / d : 0.0f;
    y[b].d = ls_fp32_to_fp16(d);
    for (int j = 0; j < LS_QK; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
  }
}

void ls_quantize_row_q4_0(const float *x, ls_block_q4_0 *y, int64_t k) {
  for (int64_t b = 0; b < k / LS_QK; b++) {
    const float *xb = x + b * LS_QK;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < LS_QK; j++) {
      if (fabsf(xb[j]) > amax) {
        amax = fabsf(xb[j]);
        max = xb[j];
      }
    }
    float d = max / -8.0f;
    float id = d ? 1.0f / d : 0.0f;
    y[b].d = ls_fp32_to_fp16(d);
    for (int j = 0; j < LS_QK / 2; j++) {
      float x0 = xb[j] * id, x1 = xb[j + LS_QK / 2] * id;
      int q0 = (int)(x0 + 8.5f), q1 = (int)(x1 + 8.5f);
      if (q0 > 15) q0 = 15;
      if (q1 > 15) q1 = 15;
      if (q0 < 0) q0 = 0;
      if (q1 < 0) q1 = 0;
      y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void ls_dequantize_row(uint32_t type, const void *row, float *y, int64_t k) {
  switch (type) {
  case LS_F32: memcpy(y, row, (size_t)k * 4); break;
  case LS_F16: {
    const uint16_t *h = row;
    for (int64_t i = 0; i < k; i++) y[i] = ls_fp16_to_fp32(h[i]);
  } break;
  case LS_BF16: {
    const uint16_t *h = row;
    for (int64_t i = 0; i < k; i++) y[i] = ls_bf16_to_fp32(h[i]);
  } break;
  case LS_Q8_0: {
    const ls_block_q8_0 *b = row;
    for (int64_t i = 0; i < k / LS_QK; i++) {
      float d = ls_fp16_to_fp32(b[i].d);
      for (int j = 0; j < LS_QK; j++) y[i * LS_QK + j] = d * (float)b[i].qs[j];
    }
  } break;
  case LS_Q4_0: {
    const ls_block_q4_0 *b = row;
    for (int64_t i = 0; i < k / LS_QK; i++) {
      float d = ls_fp16_to_fp32(b[i].d);
      for (int j = 0; j < LS_QK / 2; j++) {
        y[i * LS_QK + j] = d * (float)((b[i].qs[j] & 15) - 8);
        y[i * LS_QK + j + LS_QK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
      }
    }
  } break;
  default: memset(y, 0, (size_t)k * 4);
  }
}
