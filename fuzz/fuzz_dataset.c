/* Datasets in every format: the first input byte names the format given to the
 * loader (auto, obqa, csqa, strategyqa-bigbench, kard, plain, stories), the
 * rest is the file. A dataset that loads is limited and sharded as the search
 * does it, and each example's options are rendered. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_dataset.h"
#include "ls_strbuf.h"
#include "ls_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size};
  int format = fz_u8(&in) % (LS_DS_STORIES + 1);
  int limit = fz_u8(&in) % 8, shard_n = 1 + fz_u8(&in) % 4;
  const char *path = fz_write("dataset.txt", in.p, in.n);
  ls_dataset *ds;
  ls_err err;
  int rc = ls_dataset_load(path, format, &ds, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  FZ_ASSERT(ds->n > 0 && ds->n == ds->n_total, "%d examples of %d", ds->n, ds->n_total);
  FZ_ASSERT(ds->format != LS_DS_AUTO, "format left as auto");
  int total = ds->n;
  ls_strbuf b;
  ls_strbuf_init(&b);
  for (int i = 0; i < ds->n; i++) {
    const ls_example *ex = &ds->ex[i];
    FZ_ASSERT(ex->id && ex->question, "example %d lacks id or question", i);
    FZ_ASSERT(ex->n_options >= 0 && ex->n_options <= LS_MAX_OPTIONS, "%d options", ex->n_options);
    FZ_ASSERT(ex->answer >= -1 && ex->answer < (ex->n_options ? ex->n_options : 1), "answer %d of %d options",
              ex->answer, ex->n_options);
    ls_strbuf_clear(&b);
    FZ_ASSERT(ls_render_options(ex, &b, &err) == LS_OK, "options: %s", err.msg);
  }
  ls_strbuf_free(&b);
  /* the shards of the first `limit` examples cover them in order */
  int want = limit > 0 && limit < total ? limit : total, seen = 0;
  for (int i = 0; i < shard_n; i++) {
    ls_dataset *d2;
    rc = ls_dataset_load(path, format, &d2, &err);
    FZ_ASSERT(rc == LS_OK, "second load fails: %s", err.msg);
    rc = ls_dataset_select(d2, limit, i, shard_n, &err);
    FZ_ASSERT(rc == LS_OK, "select: %s", err.msg);
    for (int k = 0; k < d2->n; k++) FZ_ASSERT(d2->source_index[k] == seen + k, "shard %d/%d out of order", i, shard_n);
    seen += d2->n;
    ls_dataset_free(d2);
  }
  FZ_ASSERT(seen == want, "shards cover %d of %d examples", seen, want);
  ls_dataset_free(ds);
  return 0;
}
