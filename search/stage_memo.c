/* Remembered stage fidelities (ls_stage_memo.h). */
#include "ls_stage_memo.h"

#include <stdlib.h>
#include <string.h>

void ls_stage_memo_init(ls_stage_memo *m, int n_layers) {
  memset(m, 0, sizeof *m);
  m->n_layers = n_layers;
}

void ls_stage_memo_free(ls_stage_memo *m) {
  free(m->table);
  free(m->masks);
  memset(m, 0, sizeof *m);
}

static uint8_t mask_byte(const uint8_t *mask, int l) { return mask ? mask[l] : 0; }

static uint64_t key_hash(const ls_stage_memo *m, int ex, int stage, const uint8_t *mask, int ee_window,
                         double ee_threshold) {
  uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
  MIX((uint32_t)ex);
  MIX((uint32_t)stage);
  MIX((uint32_t)ee_window);
  uint64_t bits;
  memcpy(&bits, &ee_threshold, sizeof bits);
  MIX(bits);
  for (int l = 0; l < m->n_layers; l++) MIX(mask_byte(mask, l));
#undef MIX
  return h ? h : 1;
}

static int same_key(const ls_stage_memo *m, const ls_stage_memo_entry *e, int ex, int stage, const uint8_t *mask,
                    int ee_window, double ee_threshold) {
  if (e->ex != ex || e->stage != stage || e->ee_window != ee_window || e->ee_threshold != ee_threshold) return 0;
  const uint8_t *held = m->masks + e->mask_at;
  for (int l = 0; l < m->n_layers; l++)
    if (held[l] != mask_byte(mask, l)) return 0;
  return 1;
}

int ls_stage_memo_find(const ls_stage_memo *m, int ex, int stage, const uint8_t *mask, int ee_window,
                       double ee_threshold, double *fidelity) {
  if (!m->cap) return 0;
  uint64_t h = key_hash(m, ex, stage, mask, ee_window, ee_threshold);
  for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    const ls_stage_memo_entry *e = &m->table[i];
    if (!e->hash) return 0;
    if (e->hash == h && same_key(m, e, ex, stage, mask, ee_window, ee_threshold)) {
      *fidelity = e->fidelity;
      return 1;
    }
  }
}

static void place(ls_stage_memo_entry *table, size_t cap, const ls_stage_memo_entry *e) {
  size_t i = e->hash & (cap - 1);
  while (table[i].hash) i = (i + 1) & (cap - 1);
  table[i] = *e;
}

/* Doubles the table (kept at most half full) and the mask store. */
static int grow(ls_stage_memo *m, ls_err *err) {
  size_t cap = m->cap ? 2 * m->cap : 1024;
  ls_stage_memo_entry *t = calloc(cap, sizeof *t);
  uint8_t *masks = realloc(m->masks, cap / 2 * (size_t)(m->n_layers > 0 ? m->n_layers : 1));
  if (!t || !masks) {
    free(t);
    if (masks) m->masks = masks;
    return ls_err_set(err, LS_ENOMEM, "out of memory for remembered stage scores (%zu)", m->n);
  }
  m->masks = masks;
  for (size_t i = 0; i < m->cap; i++)
    if (m->table[i].hash) place(t, cap, &m->table[i]);
  free(m->table);
  m->table = t;
  m->cap = cap;
  return LS_OK;
}

int ls_stage_memo_add(ls_stage_memo *m, int ex, int stage, const uint8_t *mask, int ee_window, double ee_threshold,
                      double fidelity, ls_err *err) {
  double held;
  if (m->n >= LS_STAGE_MEMO_MAX || ls_stage_memo_find(m, ex, stage, mask, ee_window, ee_threshold, &held))
    return LS_OK;
  if (2 * (m->n + 1) > m->cap) LS_TRY(grow(m, err));
  size_t at = m->n * (size_t)m->n_layers;
  for (int l = 0; l < m->n_layers; l++) m->masks[at + (size_t)l] = mask_byte(mask, l);
  ls_stage_memo_entry e = {.hash = key_hash(m, ex, stage, mask, ee_window, ee_threshold), .ex = ex, .stage = stage,
                           .ee_window = ee_window, .ee_threshold = ee_threshold, .fidelity = fidelity,
                           .mask_at = at};
  place(m->table, m->cap, &e);
  m->n++;
  return LS_OK;
}
