/* The schedule: the contract between litestage-search and litestage-run
 * (docs/formats.md "Schedules"). Per stage the
 * skipped sub-layers ("L3.attn", "L17.ffn", 0-based layers) and the early-exit
 * window and threshold, plus model, template, scores, latency and provenance.
 * Unknown numbers are NAN in memory and null in the file; unknown strings NULL. */
#ifndef LS_SCHEDULE_H
#define LS_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"
#include "ls_template.h"

#define LS_SCHEDULE_SCHEMA_VERSION 1

/* Sub-layer kinds (runtime/engine/ls_forward.h defines LS_SKIP_ATTN / LS_SKIP_FFN as these). */
enum { LS_SUBLAYER_ATTN = 1, LS_SUBLAYER_FFN = 2 };

/* Parses "L<layer>.attn" / "L<layer>.ffn" (layer: decimal, no sign, no leading zeros) into
 * (layer, LS_SUBLAYER_*). n_layers > 0 also refuses layer >= n_layers. The message names the
 * sub-layer; callers prefix the file. */
int ls_sublayer_name_parse(const char *name, int n_layers, int *layer, int *kind, ls_err *err);
/* "L3.attn" into buf (>= 24 bytes). */
void ls_sublayer_name_format(int layer, int kind, char *buf, size_t size);
/* The same for a sub-layer index s = 2 * layer + (0 attn, 1 ffn), the order of rankings and stores. */
void ls_sublayer_index_name(int s, char *buf, size_t size);

/* KV cache policy of a chain (docs/formats.md "Schedules"): REUSE (the default) reuses a cached
 * prompt prefix only where it was computed under the same mask, so outputs equal RECOMPUTE's
 * (every stage prefills its whole prompt) exactly; SHARED_PREFIX also reuses a prefix computed
 * under another mask (an approximation). */
typedef enum { LS_KV_REUSE = 0, LS_KV_RECOMPUTE = 1, LS_KV_SHARED_PREFIX = 2 } ls_kv_policy;
/* "reuse" | "recompute" | "shared-prefix"; the message names `where`. */
int ls_kv_policy_parse(const char *name, int *policy, const char *where, ls_err *err);
const char *ls_kv_policy_name(int policy);

typedef struct ls_sched_stage {
  char *name;
  int n_skip;
  char **skip;        /* [n_skip] sub-layer names, in file order, no duplicates */
  int ee_window;      /* 0: no early exit */
  float ee_threshold; /* <= 0: no early exit */
} ls_sched_stage;

typedef struct ls_schedule {
  int schema_version;
  char *path;               /* file read from or last written; NULL if built in memory */
  char *model_name;
  char *model_fingerprint;  /* SHA-256 of the model file, 64 lowercase hex digits */
  char *template_name;
  char *template_path;
  char *objective;          /* "accuracy" | "agreement" | "fidelity" | ... */
  int kv_policy;            /* ls_kv_policy (absent in the file: LS_KV_REUSE) */
  double target;
  double achieved_score;
  double reference_score;
  double predicted_latency_ms;
  double measured_latency_ms;
  double speedup;
  /* provenance */
  char *prov_job;
  char *prov_results_file;
  long long prov_candidate_id; /* -1: none */
  char *prov_date;
  char *prov_commit;
  int n_stages;
  ls_sched_stage *stages;   /* [n_stages] */
} ls_schedule;

/* A schedule with n_stages unnamed stages, no skips, no early exit, all metadata unknown. */
int ls_schedule_new(int n_stages, ls_schedule **out, ls_err *err);
/* The identity schedule of a template: its stage names, nothing skipped, no early exit. */
int ls_schedule_for_template(const ls_template *t, ls_schedule **out, ls_err *err);
void ls_schedule_free(ls_schedule *s);

/* Setters that copy the string (NULL clears). */
int ls_schedule_set_str(char **field, const char *value, ls_err *err);
int ls_sched_stage_add_skip(ls_sched_stage *st, const char *sublayer, ls_err *err);
/* Replaces the stage's skip list with the sub-layers a mask skips (mask: n_layers bytes of
 * LS_SUBLAYER_* bits), in layer order, attn before ffn. */
int ls_sched_stage_set_mask(ls_sched_stage *st, const uint8_t *mask, int n_layers, ls_err *err);
/* Builds the stage's mask (n_layers bytes, zeroed first). Errors name the sub-layer. */
int ls_sched_stage_mask(const ls_sched_stage *st, int n_layers, uint8_t *mask, ls_err *err);

/* Read/parse: syntax and type errors name the file (and line for syntax). Structure is checked
 * (types, schema_version, names, sub-layer syntax, duplicates, early-exit ranges); model-dependent
 * checks are ls_schedule_check. */
int ls_schedule_read(const char *path, ls_schedule **out, ls_err *err);
int ls_schedule_parse(const char *text, const char *where, ls_schedule **out, ls_err *err);
/* Atomic write (temp file + rename); sets nothing in s. */
int ls_schedule_write(const ls_schedule *s, const char *path, ls_err *err);
/* The JSON text (malloc'd, ends with a newline), e.g. to store in HDF5. */
int ls_schedule_to_string(const ls_schedule *s, char **out, ls_err *err);

/* Checks a schedule against the model and template it will run with; each failure is one
 * message naming the schedule file (s->path, or "schedule"):
 *   fingerprint differs from model_fingerprint (skipped if ignore_fingerprint or either is NULL),
 *   stage count or names (in order) differ from the template's (skipped if t is NULL),
 *   a sub-layer name is malformed or names a layer >= n_layers, a duplicate sub-layer,
 *   an early-exit window/threshold out of range. */
int ls_schedule_check(const ls_schedule *s, const char *model_fingerprint, int n_layers, const ls_template *t,
                      int ignore_fingerprint, ls_err *err);

#endif
