/* Confidence-based early exit (per stage). After at least `window` generated
 * tokens, the stage ends when the mean confidence of the last `window`
 * tokens is <= threshold (equality ends it). Confidence is the sampled
 * token's maximum softmax probability, in [0, 1].
 *
 * Disabled when window == 0 or threshold <= 0: a stage never exits early with
 * threshold 0 (confidences are never negative, so "<= 0" would otherwise only
 * fire on exact zeros; 0 is the "off" value instead).
 *
 * The mean is recomputed from the ring buffer on every push, oldest token
 * first, in double, then rounded to float and compared with the float
 * threshold: deterministic, no drift from a running sum, and a threshold of
 * 0.3 fires on a window of confidences 0.3f. No allocation. */
#ifndef LS_EARLYEXIT_H
#define LS_EARLYEXIT_H

#include "ls_error.h"

#define LS_EE_MAX_WINDOW 64

typedef struct ls_earlyexit {
  int window;      /* 0: disabled */
  float threshold; /* <= 0: disabled */
  int n;           /* tokens pushed since reset */
  float ring[LS_EE_MAX_WINDOW]; /* confidence of token k at ring[k % window] */
} ls_earlyexit;

/* Checks a (window, threshold) pair: 0 <= window <= LS_EE_MAX_WINDOW, threshold finite and in
 * [0, 1]. `where` names the file/flag in the message. */
int ls_ee_validate(int window, double threshold, const char *where, ls_err *err);
/* Validates, then sets up and resets e. */
int ls_ee_init(ls_earlyexit *e, int window, double threshold, const char *where, ls_err *err);
/* Forget pushed tokens (start of a stage); keeps window and threshold. */
void ls_ee_reset(ls_earlyexit *e);
int ls_ee_enabled(const ls_earlyexit *e);
/* Records the confidence of the token just generated; returns 1 if the stage must end now
 * (this token is kept), 0 otherwise. Always 0 when disabled. */
int ls_ee_push(ls_earlyexit *e, float confidence);

/* For teacher-forced evaluation: the 0-based index of the token at which the rule ends the
 * stage when conf[0..n) are pushed in order, or -1 if it never fires. The stage would then keep
 * tokens 0..index (index + 1 tokens). */
int ls_ee_stop_index(const float *conf, int n, int window, float threshold);
/* Tokens the stage keeps: ls_ee_stop_index + 1, or n if the rule never fires. */
int ls_ee_kept_tokens(const float *conf, int n, int window, float threshold);

#endif
