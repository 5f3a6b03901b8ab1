/* Schedules: the input is a schedule file. One that reads is checked against
 * a model shape and the bundled story template (as `pipeline --schedule`
 * does), written back to JSON and read again (the same text must come out),
 * and every stage's skip list is turned into a mask and back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_schedule.h"

static ls_template *story;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ls_err err;
  if (!story && ls_template_load(fz_data("templates/story.json"), &story, &err) != LS_OK) {
    fprintf(stderr, "fuzz_schedule: %s\n", err.msg);
    abort();
  }
  const char *path = fz_write("schedule.json", data, size);
  ls_schedule *s;
  int rc = ls_schedule_read(path, &s, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  static const int layer_counts[] = {1, 5, 64};
  for (int i = 0; i < 3; i++) {
    rc = ls_schedule_check(s, NULL, layer_counts[i], i == 1 ? story : NULL, 0, &err);
    if (rc != LS_OK) fz_check_err(rc, &err, path);
  }
  char *text = NULL, *again = NULL;
  rc = ls_schedule_to_string(s, &text, &err);
  FZ_ASSERT(rc == LS_OK, "to_string: %s", err.msg);
  ls_schedule *s2;
  rc = ls_schedule_parse(text, "written", &s2, &err);
  FZ_ASSERT(rc == LS_OK, "a written schedule does not read back: %s\n%s", err.msg, text);
  rc = ls_schedule_to_string(s2, &again, &err);
  FZ_ASSERT(rc == LS_OK && strcmp(text, again) == 0, "schedule changes when written twice:\n%s\n%s", text,
            again ? again : "");
  if (ls_schedule_check(s, NULL, 64, NULL, 0, &err) == LS_OK) {
    uint8_t mask[64];
    for (int i = 0; i < s->n_stages; i++) {
      rc = ls_sched_stage_mask(&s->stages[i], 64, mask, &err);
      FZ_ASSERT(rc == LS_OK, "mask of a checked stage: %s", err.msg);
      int bits = 0;
      for (int l = 0; l < 64; l++) bits += (mask[l] & 1) + ((mask[l] >> 1) & 1);
      FZ_ASSERT(bits == s->stages[i].n_skip, "mask has %d sub-layers, the stage lists %d", bits, s->stages[i].n_skip);
      rc = ls_sched_stage_set_mask(&s2->stages[i], mask, 64, &err);
      FZ_ASSERT(rc == LS_OK && s2->stages[i].n_skip == bits, "set_mask: %s", err.msg);
    }
  }
  free(text);
  free(again);
  ls_schedule_free(s2);
  ls_schedule_free(s);
  return 0;
}
