/* Stage templates: the input up to the first NUL is the template file
 * (JSON); what follows is generated text. A template that loads is used the
 * way the pipeline uses it: every stage is rendered for an example, earlier
 * outputs are joined, stop strings are searched in the text, and the answer
 * regex extracts an option letter from it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_strbuf.h"
#include "ls_template.h"

static const char *const options[] = {"a red apple", "the sun", "", "x {y} z"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size};
  size_t tlen, olen;
  const uint8_t *tp = fz_until_nul(&in, &tlen);
  const char *path = fz_write("template.json", tp, tlen);
  const uint8_t *op = fz_until_nul(&in, &olen);
  char *output = fz_cstr(op, olen);
  ls_template *t;
  ls_err err;
  int rc = ls_template_load(path, &t, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    free(output);
    return 0;
  }
  ls_example ex = {.id = "ex-1", .question = "What is red?", .options = options, .n_options = 4, .answer = 0,
                   .opening = "Once upon a time.", .line = 1};
  /* every stage's outputs are the fuzzed text (per-option stages: one per option) */
  const char *per_option[4] = {output, output, output, output};
  ls_stage_text prev[LS_TEMPLATE_MAX_STAGES];
  for (int s = 0; s < t->n_stages; s++) {
    prev[s].n = t->stages[s].per_option ? ex.n_options : 1;
    prev[s].text = per_option;
  }
  ls_strbuf out;
  ls_strbuf_init(&out);
  for (int s = 0; s < t->n_stages; s++) {
    int n_calls = t->stages[s].per_option ? ex.n_options : 1;
    for (int o = 0; o < n_calls; o++) {
      rc = ls_template_render(t, s, &ex, prev, o, &out, &err);
      FZ_ASSERT(rc == LS_OK, "render stage %d: %s", s, err.msg);
    }
    rc = ls_template_join_outputs(t, s, &ex, &prev[s], &out, &err);
    FZ_ASSERT(rc == LS_OK, "join stage %d: %s", s, err.msg);
    size_t cut = 0, max_stop = ls_template_max_stop_len(t, s);
    if (ls_template_find_stop(t, s, output, olen, 0, &cut)) {
      FZ_ASSERT(cut <= olen, "stop cut %zu past the text (%zu)", cut, olen);
      /* scanning only the new text (as generation does) finds the same stop */
      size_t cut2 = 0, from = olen > max_stop ? olen - max_stop : 0;
      if (ls_template_find_stop(t, s, output, olen, from, &cut2)) FZ_ASSERT(cut2 >= cut, "later scan found earlier stop");
    }
  }
  int option = -2;
  int found = ls_template_extract_answer(t, output, &option);
  FZ_ASSERT(found ? option >= 0 && option < 26 : option == -1, "extracted option %d (found %d)", option, found);
  ls_strbuf_free(&out);
  ls_template_free(t);
  free(output);
  return 0;
}
