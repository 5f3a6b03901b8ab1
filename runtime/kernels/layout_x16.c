/* The X16 weight layout (ls_model.h): packing a matrix in place, reading one
 * row back, and matmul row by row for levels that read only ROWS. Plain C:
 * packing runs once at load, unpacking only where a context's level differs
 * from the one the model was packed for (tests, LS_KERNELS). */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

int ls_x16_packable(const ls_mat *w) {
  return (w->type == LS_Q8_0 || w->type == LS_Q4_0 || w->type == LS_Q4_K) && w->layout == LS_LAYOUT_ROWS &&
         w->rows >= LS_X16_ROWS && w->row_bytes <= LS_X16_ROW_BYTES_MAX &&
         w->cols % ls_dtype_block_elems(w->type) == 0;
}

static int64_t blocks_per_row(const ls_mat *w) { return w->cols / ls_dtype_block_elems(w->type); }

/* One group: rows (ROWS, 16 x row_bytes) -> out (X16). */
static void pack_group(uint32_t type, int64_t nb, size_t row_bytes, const uint8_t *rows, uint8_t *out) {
  const size_t hb = ls_x16_head_bytes(type), qb = ls_x16_quant_bytes(type), bb = hb + qb;
  for (int64_t b = 0; b < nb; b++) {
    uint8_t *blk = out + (size_t)b * ls_x16_block_bytes(type);
    for (int i = 0; i < LS_X16_ROWS; i++) {
      const uint8_t *src = rows + (size_t)i * row_bytes + (size_t)b * bb;
      memcpy(blk + ls_x16_head_at(type, (size_t)i), src, hb);
      for (size_t k = 0; k < qb / 4; k++) memcpy(blk + ls_x16_quant_at(type, k, (size_t)i), src + hb + 4 * k, 4);
    }
  }
}

int ls_x16_pack(ls_mat *w, void *data) {
  if (!ls_x16_packable(w)) return 0;
  const size_t group_bytes = LS_X16_ROWS * w->row_bytes;
  uint8_t *rows = malloc(group_bytes);
  if (!rows) return -1;
  const int64_t nb = blocks_per_row(w);
  for (int64_t g = 0; g + LS_X16_ROWS <= w->rows; g += LS_X16_ROWS) {
    uint8_t *p = (uint8_t *)data + (size_t)g * w->row_bytes;
    memcpy(rows, p, group_bytes);
    pack_group(w->type, nb, w->row_bytes, rows, p);
  }
  free(rows);
  w->layout = LS_LAYOUT_X16;
  return 0;
}

void ls_x16_unpack_row(const ls_mat *w, int64_t r, void *out) {
  const uint8_t *data = w->data;
  const int64_t whole = w->rows / LS_X16_ROWS * LS_X16_ROWS;
  if (w->layout != LS_LAYOUT_X16 || r >= whole) {
    memcpy(out, data + (size_t)r * w->row_bytes, w->row_bytes);
    return;
  }
  const size_t hb = ls_x16_head_bytes(w->type), qb = ls_x16_quant_bytes(w->type), bb = hb + qb;
  const int64_t g = r / LS_X16_ROWS, i = r % LS_X16_ROWS, nb = blocks_per_row(w);
  const uint8_t *grp = data + (size_t)(g * LS_X16_ROWS) * w->row_bytes;
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = grp + (size_t)b * ls_x16_block_bytes(w->type);
    uint8_t *dst = (uint8_t *)out + (size_t)b * bb;
    memcpy(dst, blk + ls_x16_head_at(w->type, (size_t)i), hb);
    for (size_t k = 0; k < qb / 4; k++) memcpy(dst + hb + 4 * k, blk + ls_x16_quant_at(w->type, k, (size_t)i), 4);
  }
}

static _Thread_local unsigned char row_buf[LS_X16_ROW_BYTES_MAX] __attribute__((aligned(64)));

void ls_mat_row_f32(const ls_mat *w, int64_t r, float *out) {
  if (w->layout == LS_LAYOUT_ROWS) {
    ls_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->cols);
    return;
  }
  ls_x16_unpack_row(w, r, row_buf);
  ls_dequantize_row(w->type, row_buf, out, w->cols);
}

void ls_matmul_by_rows(ls_matmul_fn f, const ls_mat *w, const void *xa, size_t xs, int n, float *y, int64_t ldy,
                       int64_t r0, int64_t r1) {
  ls_mat one = *w;
  one.rows = 1;
  one.data = row_buf;
  one.layout = LS_LAYOUT_ROWS;
  for (int64_t r = r0; r < r1; r++) {
    ls_x16_unpack_row(w, r, row_buf);
    f(&one, xa, xs, n, y + r, ldy, 0, 1);
  }
}
