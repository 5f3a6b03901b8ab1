/* The block formats beyond Q8_0/Q4_0 that llama-quantize writes: the
 * 32-element Q4_1, Q5_0, Q5_1 and IQ4_NL, and the 256-element "K-quants"
 * Q2_K..Q6_K, with their activation partners Q8_1 and Q8_K. Layouts are
 * ggml's (GGUF files hold these bytes as they are); the code is our own.
 *
 * K-quant super-blocks hold 256 weights in sub-blocks of 16 or 32 that have
 * their own small integer scale (and, for Q2_K/Q4_K/Q5_K, a min), themselves
 * scaled by the fp16 d (and dmin) of the super-block:
 *   Q2_K: x = d*(sc & 15)*q - dmin*(sc >> 4), q in 0..3,   16 sub-blocks of 16
 *   Q3_K: x = d*(sc - 32)*(q - 4),            q in 0..7,   16 of 16, 6-bit sc
 *   Q4_K: x = d*sc*q - dmin*m,                q in 0..15,   8 of 32, 6-bit sc, m
 *   Q5_K: x = d*sc*q - dmin*m,                q in 0..31,   8 of 32, 6-bit sc, m
 *   Q6_K: x = d*sc*(q - 32),                  q in 0..63,  16 of 16, int8 sc */
#ifndef LS_KQUANTS_H
#define LS_KQUANTS_H

#include <stddef.h>
#include <stdint.h>

#include "ls_quant.h"

#define LS_QK_K 256 /* elements per K-quant super-block */

/* Q4_1: x = d*q + m, q in 0..15; element j<16 low nibble of qs[j], j+16 high. */
typedef struct {
  uint16_t d, m;
  uint8_t qs[LS_QK / 2];
} ls_block_q4_1;

/* Q5_0: x = d*(q - 16); low 4 bits as Q4_0, bit 4 of element j is bit j of qh. */
typedef struct {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[LS_QK / 2];
} ls_block_q5_0;

/* Q5_1: x = d*q + m, q in 0..31, bits as Q5_0. */
typedef struct {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[LS_QK / 2];
} ls_block_q5_1;

/* IQ4_NL: x = d * ls_iq4nl_values[q], nibbles as Q4_0 (a non-linear grid). */
typedef struct {
  uint16_t d;
  uint8_t qs[LS_QK / 2];
} ls_block_iq4_nl;

/* Q8_1 (activations for Q4_1/Q5_1): Q8_0 plus s = d * sum(qs) in fp16. */
typedef struct {
  uint16_t d, s;
  int8_t qs[LS_QK];
} ls_block_q8_1;

/* Q2_K: scales[j] = sc | m << 4 of sub-block j; 2-bit q: byte l of 32-byte
 * group g (0..1) holds elements 128g + l, +32, +64, +96 at shifts 0, 2, 4, 6. */
typedef struct {
  uint8_t scales[LS_QK_K / 16];
  uint8_t qs[LS_QK_K / 4];
  uint16_t d, dmin;
} ls_block_q2_K;

/* Q3_K: low 2 bits as Q2_K; the third bit of element 32i + l is bit i of
 * hmask[l] (clear means "subtract 4"); 16 6-bit scales packed in 12 bytes. */
typedef struct {
  uint8_t hmask[LS_QK_K / 8];
  uint8_t qs[LS_QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
} ls_block_q3_K;

/* Q4_K: 8 6-bit scales and mins packed in 12 bytes; 32-byte group g holds
 * sub-block 2g in the low nibbles and 2g+1 in the high nibbles. */
typedef struct {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[LS_QK_K / 2];
} ls_block_q4_K;

/* Q5_K: Q4_K plus a fifth bit: element 32i + l has it in bit i of qh[l]. */
typedef struct {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[LS_QK_K / 8];
  uint8_t qs[LS_QK_K / 2];
} ls_block_q5_K;

/* Q6_K: per 128-element half, ql[l] / ql[l+32] low nibbles are elements l /
 * l+32, high nibbles l+64 / l+96; qh[l] holds their top 2 bits at shifts 0,
 * 2, 4, 6. 16 int8 scales. */
typedef struct {
  uint8_t ql[LS_QK_K / 2];
  uint8_t qh[LS_QK_K / 4];
  int8_t scales[LS_QK_K / 16];
  uint16_t d;
} ls_block_q6_K;

/* Q8_K (activations for the K-quants): float d, int8 q, and the sums of each
 * 16 q (they turn the mins of Q2_K/Q4_K/Q5_K into one product per sub-block). */
typedef struct {
  float d;
  int8_t qs[LS_QK_K];
  int16_t bsums[LS_QK_K / 16];
} ls_block_q8_K;

_Static_assert(sizeof(ls_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(ls_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(ls_block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(ls_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
_Static_assert(sizeof(ls_block_q8_1) == 36, "Q8_1 block is 36 bytes");
_Static_assert(sizeof(ls_block_q2_K) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(ls_block_q3_K) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(ls_block_q4_K) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(ls_block_q5_K) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(ls_block_q6_K) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(ls_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* The 16 levels of IQ4_NL. */
extern const int8_t ls_iq4nl_values[16];

/* 1 for the weight types this header adds (Q4_1 ... IQ4_NL, not Q8_1/Q8_K).
 * Their block sizes are in ls_quant.c's type table (ls_dtype_block_*). */
int ls_kq_is_type(uint32_t type);
/* Dequantises k elements (a multiple of the block) of one of those types. */
void ls_kq_dequantize_row(uint32_t type, const void *row, float *y, int64_t k);

/* Sub-block j (0..7) scale and min of Q4_K/Q5_K; Q3_K's scale j (0..15), minus 32. */
void ls_kq_scale_min_k4(const uint8_t *scales, int j, int *sc, int *m);
int ls_kq_scale_q3_k(const uint8_t *scales, int j);

/* Activation quantisers, rounding as llama.cpp's do on x86 (so that both
 * engines see the same activations): Q8_K with d = max / -127 (signed), Q8_0
 * and Q8_1 with q = x * (127 / amax) rounded to nearest, ties to even (the
 * project's ls_quantize_row_q8_0 for Q8_0/Q4_0 weights rounds ties away
 * from zero and scales by 1 / d). Q8_1's s is d * sum(q). */
void ls_quantize_row_q8_K(const float *x, ls_block_q8_K *y, int64_t k);
void ls_quantize_row_q8_0_nearest(const float *x, ls_block_q8_0 *y, int64_t k);
void ls_quantize_row_q8_1(const float *x, ls_block_q8_1 *y, int64_t k);

/* A simple Q4_K weight quantiser (no importance matrix; per sub-block
 * min/max, scales rounded to 6 bits): what `convert ... q4_k` writes. */
void ls_quantize_row_q4_K(const float *x, ls_block_q4_K *y, int64_t k);
/* A simple Q6_K weight quantiser (per 16-element sub-block absmax / 31,
 * int8 sub-block scales against d = max / 127): what Q4_K_M's Q6_K
 * tensors get from `synth --type q4_k_m`. */
void ls_quantize_row_q6_K(const float *x, ls_block_q6_K *y, int64_t k);

#endif
