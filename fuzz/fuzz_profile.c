/* Latency profiles (JSON): a profile that loads drives the predictor the
 * search uses (every table interpolated and extrapolated, a stage and an
 * example predicted), is written back to JSON and read again unchanged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write("profile.json", data, size);
  ls_profile p;
  ls_err err;
  int rc = ls_profile_load(&p, path, &err);
  if (rc != LS_OK) {
    fz_check_err(rc, &err, path);
    return 0;
  }
  FZ_ASSERT(p.n_layers > 0 && p.n_dec > 0 && p.n_dec <= LS_PROFILE_MAX_POINTS && p.n_pre > 0 &&
                p.n_pre <= LS_PROFILE_MAX_POINTS, "shape %d layers, %d/%d points", p.n_layers, p.n_dec, p.n_pre);
  uint8_t skip[64] = {0};
  int L = p.n_layers < 64 ? p.n_layers : 64;
  for (int l = 0; l < L; l += 2) skip[l] = (uint8_t)(1 + l % 3);
  const int ns[] = {0, 1, 7, 300, 5000};
  for (int i = 0; i < 5; i++) {
    double a = ls_profile_dec_attn_ms(&p, ns[i]);
    double b = ls_profile_pre_ms(&p, 0, ns[i], ns[i]);
    FZ_ASSERT(a >= 0 && b >= 0, "negative interpolation %g %g", a, b);
    if (p.n_layers <= 64) {
      double ms = ls_predict_stage_ms(&p, skip, ns[i] + 1, ns[i], ns[4 - i]);
      FZ_ASSERT(ms >= 0 && !isnan(ms), "stage prediction %g", ms);
    }
  }
  char *text;
  rc = ls_profile_to_json(&p, &text, &err);
  FZ_ASSERT(rc == LS_OK, "to_json: %s", err.msg);
  ls_profile q;
  rc = ls_profile_from_json(&q, text, "written", &err);
  FZ_ASSERT(rc == LS_OK, "a written profile does not read back: %s", err.msg);
  char *again;
  rc = ls_profile_to_json(&q, &again, &err);
  FZ_ASSERT(rc == LS_OK && strcmp(text, again) == 0, "profile changes when written twice");
  free(text);
  free(again);
  ls_profile_free(&q);
  ls_profile_free(&p);
  return 0;
}
