/* llama2.c checkpoints (legacy 7-int header and "ak42" v1) through
 * ls_model_load: the header is validated, then every weight is mapped from
 * the file, so a checkpoint whose header promises more than the file holds
 * must be refused with a message naming the file. */
#include <string.h>

#include "fuzz_common.h"
#include "ls_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 4 && memcmp(data, "GGUF", 4) == 0) return 0; /* that is fuzz_gguf's format */
  const char *path = fz_write("model.bin", data, size);
  ls_model m;
  ls_err err;
  int rc = ls_model_load(&m, path, NULL, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  const ls_config *c = &m.cfg;
  const char *end = (const char *)m.map + m.map_size;
  /* every mapped weight lies inside the file */
  const float *last_norm = m.layers[c->n_layers - 1].ffn_norm;
  FZ_ASSERT((const char *)(last_norm + c->dim) <= end, "FFN norms past the end");
  const ls_mat *w = &m.layers[c->n_layers - 1].w_up;
  FZ_ASSERT((const char *)w->data + (size_t)w->rows * w->row_bytes <= end, "w3 past the end");
  FZ_ASSERT((const char *)m.output.data + (size_t)m.output.rows * m.output.row_bytes <= end, "classifier past the end");
  /* touch the last byte of the classifier */
  fz_sink += ((const unsigned char *)m.output.data)[(size_t)m.output.rows * m.output.row_bytes - 1];
  ls_model_free(&m);
  return 0;
}
