/* Placeholder until the GGUF reader lands. */
#include "ls_model.h"
int ls_model_load_gguf(ls_model *m, const char *path, ls_err *err) {
  (void)m;
  return ls_err_set(err, LS_EUNSUPPORTED, "%s: GGUF loading is not built yet", path);
}
