/* What one rank remembers of the teacher-forced scoring: the fidelity of one
 * stage of one example under one plan (mask and early-exit rule). Under the
 * reuse and recompute KV policies that number depends on nothing else (the
 * reference's tokens are fixed, and a row's logits do not depend on its batch
 * or on reused positions computed under the same mask), so a candidate that
 * shares a stage's plan with an earlier one (the greedy search varies one
 * stage at a time) is not scored on it again: the same bits either way, so
 * the scores stay identical for any rank count. Not used under shared-prefix,
 * where a stage is scored on the earlier stages' cache. */
#ifndef LS_STAGE_MEMO_H
#define LS_STAGE_MEMO_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"

#define LS_STAGE_MEMO_MAX ((size_t)1 << 20) /* entries kept at most; later ones are not remembered */

typedef struct ls_stage_memo_entry {
  uint64_t hash; /* 0: empty */
  int ex, stage, ee_window;
  double ee_threshold;
  double fidelity;
  size_t mask_at; /* into masks */
} ls_stage_memo_entry;

typedef struct ls_stage_memo {
  int n_layers;
  size_t n, cap;               /* entries, table size (a power of two) */
  ls_stage_memo_entry *table;  /* [cap] open addressing */
  uint8_t *masks;              /* [n][n_layers] */
} ls_stage_memo;

void ls_stage_memo_init(ls_stage_memo *m, int n_layers);
void ls_stage_memo_free(ls_stage_memo *m);
/* 1 and *fidelity if remembered, else 0. mask: n_layers bytes or NULL (full model). */
int ls_stage_memo_find(const ls_stage_memo *m, int ex, int stage, const uint8_t *mask, int ee_window,
                       double ee_threshold, double *fidelity);
int ls_stage_memo_add(ls_stage_memo *m, int ex, int stage, const uint8_t *mask, int ee_window, double ee_threshold,
                      double fidelity, ls_err *err);

#endif
