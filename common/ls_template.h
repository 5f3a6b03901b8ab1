/* Stage templates: the stages of a multi-stage chain (docs/formats.md,
 * "Stage templates"). A stage's prompt is built from the example and the
 * outputs of earlier stages:
 *   {question} {options} {opening}      the example ("(A) text (B) text" for options)
 *   {option} {option_text}              the current option (per-option stages only)
 *   {STAGE}                             an earlier stage's output, whitespace-trimmed;
 *                                       for a per-option stage its outputs joined (join_item)
 *   {{ and }}                           literal braces
 * Unknown placeholders and forward references are refused when the file is loaded. */
#ifndef LS_TEMPLATE_H
#define LS_TEMPLATE_H

#include <regex.h>
#include <stddef.h>

#include "ls_dataset.h"
#include "ls_error.h"
#include "ls_strbuf.h"

#define LS_TEMPLATE_MAX_STAGES 16
#define LS_TEMPLATE_MAX_STOPS 8
/* Limits on untrusted template fields: every stage scans its text for each stop
 * string, and regcomp's memory grows with the regex's expanded size. */
#define LS_TEMPLATE_MAX_STOP_LEN 256
#define LS_TEMPLATE_MAX_REGEX_LEN 256
#define LS_TEMPLATE_MAX_REGEX_STATES 4096

typedef struct ls_stage_def {
  char *name;            /* [a-z0-9_]+, unique; also the placeholder of its output */
  char *prompt;          /* template text */
  int per_option;        /* 1: run once per answer option */
  int max_new_tokens;    /* > 0 */
  int n_stop;
  char **stop;           /* [n_stop] generation ends at the first occurrence */
  int keep_stop;         /* 1: the stop string that ended the stage is kept in its output (0: cut off) */
  /* per-option stages: how outputs are joined into {STAGE} */
  char *join_item;       /* with {option} {option_text} {output}; default "{output}" */
  char *join_separator;  /* default " " */
  int join_ensure_period; /* append '.' to a trimmed output that does not end with '.' */
} ls_stage_def;

typedef struct ls_template {
  char *path;            /* file it was loaded from */
  char *name;
  char *description;     /* may be NULL */
  int n_stages;
  ls_stage_def *stages;  /* [n_stages] */
  /* answer extraction (from the last stage's "answer_regex"; absent for stories) */
  char *answer_regex;    /* POSIX extended regex, group 1 = option letter; NULL: none */
  int answer_ignore_case; /* phrase matched case-insensitively, the letter must still be A-Z */
  int has_answer_re;
  regex_t answer_re;
} ls_template;

/* Outputs of one earlier stage: n = 1 for a normal stage, n = n_options for a per-option stage
 * (text[k] generated for option k). Texts are raw generated text (not trimmed). */
typedef struct ls_stage_text {
  int n;
  const char *const *text;
} ls_stage_text;

int ls_template_load(const char *path, ls_template **out, ls_err *err);
void ls_template_free(ls_template *t);

/* Renders the prompt of `stage` for `ex` into out (cleared first). prev[j] holds the outputs of
 * stage j for every j < stage (prev may be NULL for stage 0). option is the option index for a
 * per-option stage (0 <= option < ex->n_options) and ignored otherwise. */
int ls_template_render(const ls_template *t, int stage, const ls_example *ex, const ls_stage_text *prev,
                       int option, ls_strbuf *out, ls_err *err);

/* The value {STAGE} stands for, appended to out: the trimmed output of a normal stage; for a
 * per-option stage each trimmed output (with '.' appended if join_ensure_period and missing)
 * substituted into join_item, items joined with join_separator. outputs->n must equal
 * ex->n_options for a per-option stage and 1 otherwise. */
int ls_template_join_outputs(const ls_template *t, int stage, const ls_example *ex,
                             const ls_stage_text *outputs, ls_strbuf *out, ls_err *err);

/* Earliest stop string of `stage` in text[0..len) that starts at or after `from` (pass the
 * previous length minus the longest stop string to scan only new text). Returns 1 and in *cut
 * where the stage's output ends: the stop string's start, or its end with keep_stop (the output
 * is text[0..*cut)); 0 if none. Allocates nothing. */
int ls_template_find_stop(const ls_template *t, int stage, const char *text, size_t len, size_t from,
                          size_t *cut);
/* Length of the longest stop string of a stage (0 if none). */
size_t ls_template_max_stop_len(const ls_template *t, int stage);

/* Answer extraction on the last stage's output: the FIRST match of the answer regex whose
 * group 1 is one upper-case letter A-Z. Returns 1 and *option = letter - 'A', or 0 and
 * *option = -1 (no match, or the template has no answer regex). The option may be >= the
 * example's n_options; it then simply never equals the gold answer. */
int ls_template_extract_answer(const ls_template *t, const char *text, int *option);

/* "(A) text (B) text ..." appended to out. */
int ls_render_options(const ls_example *ex, ls_strbuf *out, ls_err *err);

#endif
