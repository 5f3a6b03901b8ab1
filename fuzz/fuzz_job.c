/* Search job specs: the input is a job file in a directory that also holds
 * the bundled model, tokenizer, templates, a small dataset of each kind and
 * the profile under short names (model.bin, tok.bin, story.json, obqa.json,
 * stories.txt, obqa.jsonl, profile.json). A job that parses and names only
 * files of that directory is validated too, which opens and checks them all. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "ls_job.h"

static void link_fixture(const char *name, const char *target) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
  if (symlink(target, path) != 0) {
    perror(path);
    abort();
  }
}

static void setup(void) {
  link_fixture("model.bin", fz_data("models/stories260K/stories260K.bin"));
  link_fixture("tok.bin", fz_data("models/stories260K/tok512.bin"));
  link_fixture("story.json", fz_data("templates/story.json"));
  link_fixture("obqa.json", fz_data("templates/obqa.json"));
  char prof[4096];
  snprintf(prof, sizeof prof, "%s/../jobs/profiles/stories260K.json", fz_data(""));
  link_fixture("profile.json", prof);
  static const char stories[] = "Once upon a time, there was a cat. It sat.\n\nOnce there was a dog.\n\n"
                                "Once upon a time, a bird sang.\n";
  fz_write("stories.txt", stories, sizeof stories - 1);
  static const char obqa[] =
      "{\"id\": \"q1\", \"question\": {\"stem\": \"What is red?\", \"choices\": [{\"label\": \"A\", \"text\": "
      "\"apple\"}, {\"label\": \"B\", \"text\": \"sky\"}]}, \"answerKey\": \"A\"}\n"
      "{\"id\": \"q2\", \"question\": {\"stem\": \"What is up?\", \"choices\": [{\"label\": \"A\", \"text\": "
      "\"ground\"}, {\"label\": \"B\", \"text\": \"sky\"}]}, \"answerKey\": \"B\"}\n";
  fz_write("obqa.jsonl", obqa, sizeof obqa - 1);
}

/* A path the job resolved into the fixture directory, naming one entry of it. */
static int inside(const char *p) {
  if (!p) return 1;
  size_t n = strlen(fz_tmpdir());
  return strncmp(p, fz_tmpdir(), n) == 0 && p[n] == '/' && !strchr(p + n + 1, '/') && strcmp(p + n + 1, "..") &&
         strcmp(p + n + 1, ".");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    setup();
    ready = 1;
  }
  const char *path = fz_write("job.json", data, size);
  ls_job *j;
  ls_err err;
  int rc = ls_job_load(path, &j, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  FZ_ASSERT(strlen(j->hash) == 64, "job hash \"%s\"", j->hash);
  FZ_ASSERT(j->limit >= 1 && j->shards >= 1 && j->shards <= j->limit, "limit %d shards %d", j->limit, j->shards);
  FZ_ASSERT(j->budget_min <= j->budget_max, "budget %d..%d", j->budget_min, j->budget_max);
  /* the early-exit sweep is the windows x thresholds grid: both lists empty or both not */
  FZ_ASSERT((j->n_windows == 0) == (j->n_thresholds == 0), "grid %d x %d", j->n_windows, j->n_thresholds);
  if (inside(j->model) && inside(j->tokenizer) && inside(j->template_path) && inside(j->dataset) &&
      (j->latency_measured || inside(j->latency))) {
    rc = ls_job_validate(j, &err);
    if (rc != LS_OK) fz_check_err(rc, &err, path);
    else FZ_ASSERT(j->n_layers > 0 && j->n_stages > 0 && j->n_examples >= j->shards, "validated job shape");
  }
  ls_job_free(j);
  return 0;
}
