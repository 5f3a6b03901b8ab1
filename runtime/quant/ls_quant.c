#include "ls_quant.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ls_kquants.h"

/* Removed GGML types (4, 5, 31-33, 36-38) have no row. */
static const ls_dtype_info dtypes[LS_DTYPE_LIMIT] = {
    [0] = {"F32", 1, 4, 1, 1},         [1] = {"F16", 1, 2, 1, 1},         [2] = {"Q4_0", 32, 18, 1, 1},
    [3] = {"Q4_1", 32, 20, 1, 0},      [6] = {"Q5_0", 32, 22, 1, 0},      [7] = {"Q5_1", 32, 24, 1, 0},
    [8] = {"Q8_0", 32, 34, 1, 1},      [9] = {"Q8_1", 32, 36, 0, 0},      [10] = {"Q2_K", 256, 84, 1, 0},
    [11] = {"Q3_K", 256, 110, 1, 0},   [12] = {"Q4_K", 256, 144, 1, 1},   [13] = {"Q5_K", 256, 176, 1, 0},
    [14] = {"Q6_K", 256, 210, 1, 1},   [15] = {"Q8_K", 256, 292, 0, 0},   [16] = {"IQ2_XXS", 256, 66, 0, 0},
    [17] = {"IQ2_XS", 256, 74, 0, 0},  [18] = {"IQ3_XXS", 256, 98, 0, 0}, [19] = {"IQ1_S", 256, 50, 0, 0},
    [20] = {"IQ4_NL", 32, 18, 1, 0},   [21] = {"IQ3_S", 256, 110, 0, 0},  [22] = {"IQ2_S", 256, 82, 0, 0},
    [23] = {"IQ4_XS", 256, 136, 0, 0}, [24] = {"I8", 1, 1, 0, 0},         [25] = {"I16", 1, 2, 0, 0},
    [26] = {"I32", 1, 4, 0, 0},        [27] = {"I64", 1, 8, 0, 0},        [28] = {"F64", 1, 8, 0, 0},
    [29] = {"IQ1_M", 256, 56, 0, 0},   [30] = {"BF16", 1, 2, 1, 1},       [34] = {"TQ1_0", 256, 54, 0, 0},
    [35] = {"TQ2_0", 256, 66, 0, 0},   [39] = {"MXFP4", 32, 17, 0, 0},
};

const ls_dtype_info *ls_dtype_get(uint32_t type) {
  return type < LS_DTYPE_LIMIT && dtypes[type].name ? &dtypes[type] : NULL;
}

int ls_dtype_supported(uint32_t type) {
  const ls_dtype_info *d = ls_dtype_get(type);
  return d && d->computes;
}

const char *ls_dtype_name(uint32_t type) {
  const ls_dtype_info *d = ls_dtype_get(type);
  return d ? d->name : "unknown";
}

int ls_dtype_parse(const char *name, uint32_t *type) {
  for (uint32_t t = 0; t < LS_DTYPE_LIMIT; t++)
    if (dtypes[t].name && !strcasecmp(name, dtypes[t].name)) {
      *type = t;
      return 1;
    }
  return 0;
}

/* Names of the types with the flag set (writes or computes), in table order. */
static void list_types(char *buf, size_t size, const char *sep, int writable, int lower) {
  size_t n = 0;
  if (size) buf[0] = '\0';
  for (uint32_t t = 0; t < LS_DTYPE_LIMIT && n < size; t++) {
    if (!dtypes[t].name || !(writable ? dtypes[t].writes : dtypes[t].computes)) continue;
    n += (size_t)snprintf(buf + n, size - n, "%s", n ? sep : "");
    for (const char *c = dtypes[t].name; *c && n + 1 < size; c++)
      buf[n++] = lower ? (char)tolower((unsigned char)*c) : *c;
    if (n < size) buf[n] = '\0';
  }
}

void ls_dtype_list_writable(char *buf, size_t size, const char *sep) { list_types(buf, size, sep, 1, 1); }

void ls_dtype_list_computable(char *buf, size_t size, const char *sep) { list_types(buf, size, sep, 0, 0); }

int ls_dtype_arg(const char *flag, const char *value, void *dest, ls_err *err) {
  uint32_t t;
  if (ls_dtype_parse(value, &t) && dtypes[t].writes) {
    *(uint32_t *)dest = t;
    return LS_OK;
  }
  char list[128];
  ls_dtype_list_writable(list, sizeof list, ", ");
  return ls_err_set(err, LS_EINVAL, "%s '%s': expected one of %s", flag, value, list);
}

int ls_dtype_block_elems(uint32_t type) {
  const ls_dtype_info *d = ls_dtype_get(type);
  return d ? d->block_elems : 0;
}

size_t ls_dtype_block_bytes(uint32_t type) {
  const ls_dtype_info *d = ls_dtype_get(type);
  return d ? d->block_bytes : 0;
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

void ls_quantize_row(uint32_t type, const float *x, void *out, int64_t k) {
  switch (type) {
  case LS_F32: memcpy(out, x, (size_t)k * 4); break;
  case LS_F16:
    for (int64_t i = 0; i < k; i++) {
      uint16_t h = ls_fp32_to_fp16(x[i]);
      memcpy((uint8_t *)out + 2 * i, &h, 2);
    }
    break;
  case LS_BF16:
    for (int64_t i = 0; i < k; i++) {
      uint16_t h = ls_fp32_to_bf16(x[i]);
      memcpy((uint8_t *)out + 2 * i, &h, 2);
    }
    break;
  case LS_Q8_0: ls_quantize_row_q8_0(x, out, k); break;
  case LS_Q4_0: ls_quantize_row_q4_0(x, out, k); break;
  case LS_Q4_K: ls_quantize_row_q4_K(x, out, k); break;
  case LS_Q6_K: ls_quantize_row_q6_K(x, out, k); break;
  default: break;
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
  default:
    if (ls_kq_is_type(type)) ls_kq_dequantize_row(type, row, y, k);
    else memset(y, 0, (size_t)k * 4);
  }
}
