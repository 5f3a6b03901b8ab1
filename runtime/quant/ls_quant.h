/* Tensor element types (numbered as GGML/GGUF numbers them), half-precision
 * conversions and the block quantisation formats Q8_0 and Q4_0. The other
 * block formats the engine computes with (Q4_1, Q5_0, Q5_1, IQ4_NL and the
 * K-quants) are in ls_kquants.h. */
#ifndef LS_QUANT_H
#define LS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"

typedef enum ls_dtype {
  LS_F32 = 0,
  LS_F16 = 1,
  LS_Q4_0 = 2,
  LS_Q4_1 = 3,
  LS_Q5_0 = 6,
  LS_Q5_1 = 7,
  LS_Q8_0 = 8,
  LS_Q8_1 = 9,  /* activations only */
  LS_Q2_K = 10,
  LS_Q3_K = 11,
  LS_Q4_K = 12,
  LS_Q5_K = 13,
  LS_Q6_K = 14,
  LS_Q8_K = 15, /* activations only */
  LS_IQ4_NL = 20,
  LS_BF16 = 30,
} ls_dtype;

#define LS_QK 32 /* elements per quantisation block */

/* Q8_0: 32 int8 values and one fp16 scale; x = d * q. 34 bytes. */
typedef struct {
  uint16_t d;
  int8_t qs[LS_QK];
} ls_block_q8_0;

/* Q4_0: 32 4-bit values and one fp16 scale; x = d * (q - 8). Element j<16 is
 * the low nibble of qs[j], element j+16 the high nibble. 18 bytes. */
typedef struct {
  uint16_t d;
  uint8_t qs[LS_QK / 2];
} ls_block_q4_0;

_Static_assert(sizeof(ls_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(ls_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* One row of the tensor-type table: every GGML type a GGUF file may hold, so
 * that inspect can show files the engine cannot run. */
typedef struct ls_dtype_info {
  const char *name;   /* GGML's name: "F32", "Q8_0", ... */
  int block_elems;    /* elements per block (1 for scalar types) */
  size_t block_bytes; /* bytes per block */
  int computes;       /* the engine's kernels read it */
  int writes;         /* ls_quantize_row encodes it (convert/synth --type) */
} ls_dtype_info;

/* The table row of a type (as GGUF numbers it); NULL if GGML has no such type. */
const ls_dtype_info *ls_dtype_get(uint32_t type);
/* Type codes are below this bound. */
#define LS_DTYPE_LIMIT 40u
/* 1 if the engine can compute with this type. */
int ls_dtype_supported(uint32_t type);
/* GGML's name, or "unknown". */
const char *ls_dtype_name(uint32_t type);
/* The type named `name` (case-insensitive, "q8_0" or "Q8_0"); 0 if none. */
int ls_dtype_parse(const char *name, uint32_t *type);
/* The writable types' names in lower case, separated by `sep`, into buf. */
void ls_dtype_list_writable(char *buf, size_t size, const char *sep);
/* A command-line --type value: a writable type into *(uint32_t *)dest, or an
 * error naming the flag and listing the writable types. */
int ls_dtype_arg(const char *flag, const char *value, void *dest, ls_err *err);
/* The types the engine computes with, GGML's names, separated by `sep`. */
void ls_dtype_list_computable(char *buf, size_t size, const char *sep);
/* Elements per block (1 for float types) and bytes per block. 0 if unknown. */
int ls_dtype_block_elems(uint32_t type);
size_t ls_dtype_block_bytes(uint32_t type);
/* Bytes of one row of `cols` elements; 0 if cols is not a multiple of the block. */
size_t ls_dtype_row_bytes(uint32_t type, int64_t cols);

float ls_fp16_to_fp32(uint16_t h);
uint16_t ls_fp32_to_fp16(float f);
float ls_bf16_to_fp32(uint16_t h);
uint16_t ls_fp32_to_bf16(float f);

/* k must be a multiple of LS_QK. Scalar reference implementations. */
void ls_quantize_row_q8_0(const float *x, ls_block_q8_0 *y, int64_t k);
void ls_quantize_row_q4_0(const float *x, ls_block_q4_0 *y, int64_t k);
/* Encodes one fp32 row of k elements as `type` (a writable type; k a multiple
 * of its block) into out (ls_dtype_row_bytes bytes). */
void ls_quantize_row(uint32_t type, const float *x, void *out, int64_t k);
/* Converts one row of any supported type to fp32. */
void ls_dequantize_row(uint32_t type, const void *row, float *y, int64_t k);

#endif
