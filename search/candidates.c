/* Candidate helpers of the search (search_internal.h): masks from budgets, the latency a job
 * ranks by, ordering, the list of evaluated candidates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

void ls_search_masks_for(const searcher *s, const int32_t *budget, uint8_t *masks) {
  memset(masks, 0, (size_t)s->S * s->L);
  for (int st = 0; st < s->S; st++)
    for (int k = 0; k < budget[st] && k < 2 * s->L; k++) {
      int sub = s->ranking[k];
      masks[(size_t)st * s->L + sub / 2] |= (uint8_t)(sub % 2 ? LS_SKIP_FFN : LS_SKIP_ATTN);
    }
}

double ls_search_cand_latency(const searcher *s, const ls_cand *c) {
  return s->job->latency_measured ? c->measured_ms : c->predicted_ms;
}

/* a is better than b (or b is NULL): lower latency, ties to the earlier candidate. */
int ls_search_better(const searcher *s, const ls_cand *a, const ls_cand *b) {
  if (!b) return 1;
  double la = ls_search_cand_latency(s, a), lb = ls_search_cand_latency(s, b);
  if (la != lb) return la < lb;
  return a->id < b->id; /* deterministic tie-break: earlier candidate */
}

static int same_def(const searcher *s, const ls_cand *a, const ls_cand *b) {
  if (a->kind != b->kind) return 0;
  for (int st = 0; st < s->S; st++)
    if (a->budget[st] != b->budget[st] || a->ee_window[st] != b->ee_window[st] ||
        a->ee_threshold[st] != b->ee_threshold[st])
      return 0;
  return 1;
}

const ls_cand *ls_search_find_known(const searcher *s, const ls_cand *c) {
  for (int64_t i = 0; i < s->n_known; i++)
    if (same_def(s, &s->known[i], c)) return &s->known[i];
  return NULL;
}

int ls_search_add_known(searcher *s, const ls_cand *c, ls_err *err) {
  if (s->n_known == s->cap_known) {
    int64_t cap = s->cap_known ? 2 * s->cap_known : 64;
    ls_cand *k = realloc(s->known, (size_t)cap * sizeof *k);
    if (!k) return ls_err_set(err, LS_ENOMEM, "out of memory for candidates");
    s->known = k;
    s->cap_known = cap;
  }
  s->known[s->n_known++] = *c;
  return LS_OK;
}

void ls_search_describe(const searcher *s, const ls_cand *c, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "budgets");
  for (int st = 0; st < s->S && o < n; st++) o += (size_t)snprintf(buf + o, n - o, "%s%d", st ? "," : " ", c->budget[st]);
  if (c->kind == LS_CAND_EARLY_EXIT && o < n)
    snprintf(buf + o, n - o, " ee %d/%.3g", c->ee_window[0], c->ee_threshold[0]);
}
