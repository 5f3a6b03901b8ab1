#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_engine.h"
#include "ls_util.h"

static int alloc_buffers(ls_engine *e, ls_err *err) {
  int n_layers = e->model.cfg.n_layers;
  e->no_skip = calloc((size_t)n_layers, 1);
  e->slots = calloc((size_t)e->n_seq, sizeof *e->slots);
  /* every generated piece is at most the longest token */
  size_t piece_max = e->tok.vocab ? e->tok.max_piece + 1 : 8;
  e->text_cap = ((size_t)e->n_ctx + 1) * piece_max + 1;
  if (!e->no_skip || !e->slots) return ls_err_set(err, LS_ENOMEM, "out of memory for generation buffers");
  for (int s = 0; s < e->n_seq; s++) {
    ls_gen_slot *g = &e->slots[s];
    g->tokens = malloc(((size_t)e->n_ctx + 1) * sizeof *g->tokens);
    g->confidence = malloc(((size_t)e->n_ctx + 1) * sizeof *g->confidence);
    g->text = malloc(e->text_cap);
    if (!g->tokens || !g->confidence || !g->text)
      return ls_err_set(err, LS_ENOMEM, "out of memory for generation buffers (%d slots)", e->n_seq);
    g->text[0] = '\0';
  }
  e->tokens = e->slots[0].tokens;
  e->confidence = e->slots[0].confidence;
  e->text = e->slots[0].text;
  return ls_batch_init(&e->batch, ls_ctx_max_batch(e->ctx), err);
}

static int open_parts(ls_engine *e, const ls_engine_params *p, ls_err *err) {
  LS_TRY(ls_model_load_placed(&e->model, p->model_path, p->tokenizer_path, (ls_weights_place)p->weights, err));
  if (p->fingerprint) LS_TRY(ls_sha256_file(p->model_path, e->fingerprint, err));
  if (e->model.vocab.n_tokens > 0) {
    if (e->model.vocab.n_tokens != e->model.cfg.vocab_size)
      return ls_err_set(err, LS_EMISMATCH, "%s: vocabulary has %d tokens but the model has %d logits",
                        p->tokenizer_path ? p->tokenizer_path : p->model_path, e->model.vocab.n_tokens,
                        e->model.cfg.vocab_size);
    LS_TRY(ls_tokenizer_init(&e->tok, &e->model.vocab, err));
  } else if (p->need_tokenizer) {
    return ls_err_set(err, LS_EINVAL, "%s: the model has no tokenizer; pass one with -z TOKENIZER.bin",
                      p->model_path);
  }
  int n_ctx = p->n_ctx;
  if (n_ctx <= 0 && p->n_ctx_needed > 0 && p->n_ctx_needed < e->model.cfg.seq_len) n_ctx = p->n_ctx_needed;
  ls_ctx_params cp = {.n_ctx = n_ctx, .n_seq = p->n_seq, .max_batch = p->max_batch, .n_threads = p->n_threads};
  LS_TRY(ls_ctx_new(&e->model, &cp, &e->ctx, err));
  e->n_ctx = ls_ctx_n_ctx(e->ctx);
  e->n_seq = ls_ctx_n_seq(e->ctx);
  e->kv_policy = p->kv_policy;
  LS_TRY(ls_sampler_init(&e->sampler, e->model.cfg.vocab_size, p->temperature, p->top_p, p->seed, err));
  e->sampler.top_k = p->top_k > 0 ? p->top_k : 0;
  e->seed_state = e->sampler.rng_state;
  return alloc_buffers(e, err);
}

int ls_engine_open(ls_engine *e, const ls_engine_params *p, ls_err *err) {
  memset(e, 0, sizeof *e);
  int rc = open_parts(e, p, err);
  if (rc) ls_engine_close(e);
  return rc;
}

void ls_engine_close(ls_engine *e) {
  if (!e) return;
  ls_ctx_free(e->ctx);
  ls_sampler_free(&e->sampler);
  if (e->tok.vocab) ls_tokenizer_free(&e->tok);
  ls_model_free(&e->model);
  for (int s = 0; e->slots && s < e->n_seq; s++) {
    free(e->slots[s].tokens);
    free(e->slots[s].confidence);
    free(e->slots[s].text);
  }
  free(e->slots);
  ls_batch_free(&e->batch);
  free(e->no_skip);
  for (int i = 0; i < LS_PROMPT_CACHE; i++) {
    free(e->prompt_cache[i].text);
    free(e->prompt_cache[i].tokens);
  }
  memset(e, 0, sizeof *e);
}

static uint64_t text_hash(const char *s, size_t *len) {
  uint64_t h = 14695981039346656037ull; /* FNV-1a */
  const char *p = s;
  for (; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  *len = (size_t)(p - s);
  return h;
}

/* Tokenises text (BOS first) into tokens[<= n_ctx], from the engine's prompt
 * cache when the same text was tokenised lately (tokenising is a function of
 * the text alone, so the tokens are the same). */
static int tokenize_prompt(ls_engine *e, const char *text, int *tokens, int *n_prompt, ls_err *err) {
  size_t len;
  uint64_t h = text_hash(text, &len);
  for (int i = 0; i < LS_PROMPT_CACHE; i++) {
    struct ls_prompt_memo *m = &e->prompt_cache[i];
    if (m->text && m->hash == h && !strcmp(m->text, text)) {
      memcpy(tokens, m->tokens, (size_t)m->n * sizeof *tokens);
      *n_prompt = m->n;
      return LS_OK;
    }
  }
  LS_TRY(ls_tokenize(&e->tok, text, 1, tokens, e->n_ctx, n_prompt, err));
  struct ls_prompt_memo *m = &e->prompt_cache[e->prompt_next];
  char *t = malloc(len + 1);
  int *tk = malloc((size_t)*n_prompt * sizeof *tk + 1);
  if (!t || !tk) { /* no room to remember it: the tokens are right all the same */
    free(t);
    free(tk);
    return LS_OK;
  }
  free(m->text);
  free(m->tokens);
  memcpy(t, text, len + 1);
  memcpy(tk, tokens, (size_t)*n_prompt * sizeof *tk);
  *m = (struct ls_prompt_memo){.hash = h, .text = t, .tokens = tk, .n = *n_prompt};
  e->prompt_next = (e->prompt_next + 1) % LS_PROMPT_CACHE;
  return LS_OK;
}

static int load_prompt(ls_engine *e, const ls_gen_request *req, int *tokens, int *n_prompt, ls_err *err) {
  if (req->prompt) {
    if (!e->tok.vocab) return ls_err_set(err, LS_EINVAL, "%s: the model has no tokenizer", e->model.path);
    return tokenize_prompt(e, req->prompt, tokens, n_prompt, err);
  }
  if (req->n_prompt_tokens <= 0 || req->n_prompt_tokens > e->n_ctx)
    return ls_err_set(err, LS_EINVAL, "prompt of %d tokens does not fit a context of %d", req->n_prompt_tokens,
                      e->n_ctx);
  memmove(tokens, req->prompt_tokens, (size_t)req->n_prompt_tokens * sizeof *tokens);
  *n_prompt = req->n_prompt_tokens;
  return LS_OK;
}

/* Appends a piece; returns 1 if a stop string now appears (text cut there). */
static int append_piece(ls_gen_slot *g, size_t cap, const char *piece, const ls_gen_request *req) {
  size_t pl = strlen(piece);
  if (g->len + pl + 1 > cap) pl = cap - g->len - 1;
  memcpy(g->text + g->len, piece, pl);
  size_t old = g->len;
  g->len += pl;
  g->text[g->len] = '\0';
  if (req->on_text) req->on_text(piece, req->user);
  /* the earliest stop string that ends inside the new piece wins */
  char *first = NULL;
  size_t first_len = 0;
  for (int s = 0; s < req->n_stops; s++) {
    size_t sl = strlen(req->stops[s]);
    if (!sl) continue;
    size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
    char *hit = strstr(g->text + from, req->stops[s]);
    if (hit && (!first || hit < first)) {
      first = hit;
      first_len = sl;
    }
  }
  if (first) {
    if (req->keep_stop) first += first_len;
    *first = '\0';
    g->len = (size_t)(first - g->text);
    return 1;
  }
  return 0;
}

static int count_logits(const ls_batch *b) {
  int c = 0;
  for (int t = 0; t < b->n_tokens; t++) c += b->logits[t] != 0;
  return c;
}

/* Slot k gets the longest reusable prefix of its prompt held by any slot
 * (copied in if another slot holds more), at most first_logits positions so
 * that every position whose logits are used is run. */
static int take_prefix(ls_engine *e, int k, ls_err *err) {
  int limit = e->slots[k].first_logits;
  ls_gen_slot *g = &e->slots[k];
  int best = k, best_n = ls_kv_seq_reusable(e->ctx, k, g->tokens, limit, g->skip, e->kv_policy);
  for (int s = 0; s < e->n_seq; s++) {
    int r = s == k ? 0 : ls_kv_seq_reusable(e->ctx, s, g->tokens, limit, g->skip, e->kv_policy);
    if (r > best_n) best = s, best_n = r;
  }
  if (best != k) LS_TRY(ls_kv_seq_fork(e->ctx, k, best, best_n, err));
  else ls_kv_seq_keep(e->ctx, k, best_n);
  g->n_reused = g->n_cached = best_n;
  g->next_prefill = best_n;
  return LS_OK;
}

/* Checks a sampled token against the request's ends; if none fires, the
 * token is fed at g->pos in the next step. */
static void accept_token(ls_engine *e, ls_gen_slot *g, int next, float conf) {
  const ls_vocab *v = &e->model.vocab;
  if (e->tok.vocab && (next == v->eos_id || next == v->bos_id || next == v->eot_id)) {
    g->stop = LS_STOP_EOS;
    return;
  }
  g->tokens[g->pos] = next;
  g->confidence[g->n_gen++] = conf;
  if (e->tok.vocab && append_piece(g, e->text_cap, ls_token_piece(&e->tok, g->tokens[g->pos - 1], next), g->req))
    g->stop = LS_STOP_STRING;
  else if (ls_ee_push(&g->ee, conf))
    g->stop = LS_STOP_EARLY_EXIT;
  else if (g->n_gen >= g->max_new)
    g->stop = LS_STOP_MAX_TOKENS;
  else if (g->pos + 1 >= e->n_ctx)
    g->stop = LS_STOP_CONTEXT;
  else
    g->has_next = 1;
  g->pos++;
}

/* A teacher-forced row's logits: the top-1 prediction of the next target
 * token; the call ends with its last fed position. */
static void record_forced(ls_engine *e, ls_gen_slot *g, int pos, const float *logits) {
  int i = pos - g->first_logits;
  g->req->pred[i] = ls_argmax_confidence(logits, e->model.cfg.vocab_size, &g->req->conf[i]);
  if (pos == g->n_prompt - 1) g->stop = LS_STOP_MAX_TOKENS;
}

/* Runs the batch under one mask, hands each logits row to its slot's sampler
 * step (or records a teacher-forced prediction) and shares the call's wall
 * time among the slots by rows. */
static int run_rows(ls_engine *e, const uint8_t *skip, ls_err *err) {
  ls_batch *b = &e->batch;
  if (!b->n_tokens) return LS_OK;
  double t0 = ls_now_ms();
  LS_TRY(ls_decode(e->ctx, b, skip, err));
  for (int t = 0, i = 0; t < b->n_tokens; t++) {
    if (!b->logits[t]) continue;
    ls_gen_slot *g = &e->slots[b->seq[t]];
    if (g->req->n_forced > 0) {
      record_forced(e, g, b->pos[t], ls_ctx_logits_ith(e->ctx, i++));
      continue;
    }
    float conf;
    /* each request samples from its own stream, so its tokens do not depend on
     * what else is in the batch or ran before it (temperature > 0) */
    e->sampler.rng_state = g->rng_state;
    int next = ls_sample(&e->sampler, ls_ctx_logits_ith(e->ctx, i++), &conf);
    g->rng_state = e->sampler.rng_state;
    accept_token(e, g, next, conf);
  }
  double share = (ls_now_ms() - t0) / b->n_tokens;
  for (int t = 0; t < b->n_tokens; t++) {
    ls_gen_slot *g = &e->slots[b->seq[t]];
    if (b->pos[t] < g->n_prompt) g->prefill_ms += share;
    else g->decode_ms += share;
  }
  ls_batch_clear(b);
  return LS_OK;
}

/* Adds a row, running the batch first if it is full (or its logits rows are). */
static int add_row(ls_engine *e, const uint8_t *skip, int k, int pos, int want, ls_err *err) {
  if (e->batch.n_tokens == e->batch.capacity || (want && ls_ctx_max_logits(e->ctx) <= count_logits(&e->batch)))
    LS_TRY(run_rows(e, skip, err));
  ls_batch_add(&e->batch, e->slots[k].tokens[pos], pos, k, want);
  return LS_OK;
}

static int same_mask(const ls_engine *e, const uint8_t *a, const uint8_t *b) {
  return a == b || !memcmp(a, b, (size_t)e->model.cfg.n_layers);
}

/* A teacher-forced request feeds its target but the last token after the
 * prompt; logits are wanted from the prompt's last position on. */
static int load_forced(ls_engine *e, const ls_gen_request *req, ls_gen_slot *g, ls_err *err) {
  g->first_logits = g->n_prompt - 1;
  if (req->n_forced <= 0) return LS_OK;
  if (!req->pred || !req->conf) return ls_err_set(err, LS_EINVAL, "teacher forcing needs pred and conf buffers");
  if (g->n_prompt + req->n_forced - 1 > e->n_ctx)
    return ls_err_set(err, LS_EINVAL, "teacher forcing: %d tokens exceed the context of %d",
                      g->n_prompt + req->n_forced - 1, e->n_ctx);
  memcpy(g->tokens + g->n_prompt, req->forced, (size_t)(req->n_forced - 1) * sizeof *g->tokens);
  g->n_prompt += req->n_forced - 1;
  return LS_OK;
}

int ls_engine_start(ls_engine *e, int slot0, const ls_gen_request *reqs, int n, ls_err *err) {
  if (n < 1 || slot0 < 0 || slot0 + n > e->n_seq)
    return ls_err_set(err, LS_EINVAL, "%d requests from slot %d, but the engine has %d sequence slots (--parallel)", n,
                      slot0, e->n_seq);
  const uint8_t *skip = reqs[0].skip ? reqs[0].skip : e->no_skip;
  for (int i = 1; i < n; i++)
    if (!same_mask(e, reqs[i].skip ? reqs[i].skip : e->no_skip, skip))
      return ls_err_set(err, LS_EINVAL, "requests started together must share one skip mask (request %d differs)", i);
  for (int i = 0; i < n; i++)
    if (!reqs[i].hold_only != !reqs[0].hold_only || (reqs[i].hold_only && reqs[i].n_forced <= 0))
      return ls_err_set(err, LS_EINVAL, "request %d: only teacher-forced requests, all of those started together, can be held", i);
  int common = e->n_ctx;
  for (int i = 0; i < n; i++) {
    ls_gen_slot *g = &e->slots[slot0 + i];
    *g = (ls_gen_slot){.tokens = g->tokens, .confidence = g->confidence, .text = g->text, .req = &reqs[i],
                       .skip = skip, .rng_state = e->seed_state};
    g->text[0] = '\0';
    LS_TRY(load_prompt(e, &reqs[i], g->tokens, &g->n_prompt, err));
    LS_TRY(load_forced(e, &reqs[i], g, err));
    LS_TRY(ls_ee_init(&g->ee, reqs[i].ee_window, reqs[i].ee_threshold, "early exit", err));
    g->pos = g->n_prompt;
    g->max_new = reqs[i].max_new_tokens > 0 ? reqs[i].max_new_tokens : e->n_ctx;
    if (g->first_logits < common) common = g->first_logits;
  }
  /* the prompts' common prefix, run once in the first slot and forked to the others */
  ls_gen_slot *g0 = &e->slots[slot0];
  for (int i = 1; i < n; i++)
    for (int p = 0; p < common; p++)
      if (e->slots[slot0 + i].tokens[p] != g0->tokens[p]) {
        common = p;
        break;
      }
  LS_TRY(take_prefix(e, slot0, err));
  if (n > 1 && g0->next_prefill < common && reqs[0].hold_only) {
    LS_TRY(ls_kv_seq_hold(e->ctx, slot0, g0->tokens, g0->next_prefill, common, skip, err));
    g0->next_prefill = common;
  } else if (n > 1 && g0->next_prefill < common) {
    ls_batch_clear(&e->batch);
    for (int p = g0->next_prefill; p < common; p++) LS_TRY(add_row(e, skip, slot0, p, 0, err));
    LS_TRY(run_rows(e, skip, err));
    g0->next_prefill = common;
  }
  g0->n_reused = g0->next_prefill; /* held before the suffixes run (shared work counts as reused for the others) */
  for (int i = 1; i < n; i++) LS_TRY(take_prefix(e, slot0 + i, err));
  for (int i = 0; i < n; i++) {
    ls_gen_slot *g = &e->slots[slot0 + i];
    g->active = 1;
    if (!reqs[i].hold_only) continue;
    LS_TRY(ls_kv_seq_hold(e->ctx, slot0 + i, g->tokens, g->next_prefill, g->n_prompt, skip, err));
    g->next_prefill = g->n_prompt;
    g->stop = LS_STOP_MAX_TOKENS;
  }
  return LS_OK;
}

int ls_engine_step(ls_engine *e, ls_err *err) {
  for (int k = 0; k < e->n_seq; k++) e->slots[k].stepped = 0;
  /* one batch (or more, if the rows exceed max_batch) per distinct mask */
  for (int k0 = 0; k0 < e->n_seq; k0++) {
    ls_gen_slot *a = &e->slots[k0];
    if (!a->active || a->stepped || a->stop != LS_STOP_NONE) continue;
    const uint8_t *skip = a->skip;
    ls_batch_clear(&e->batch);
    for (int k = k0; k < e->n_seq; k++) {
      ls_gen_slot *g = &e->slots[k];
      if (!g->active || g->stepped || g->stop != LS_STOP_NONE || !same_mask(e, g->skip, skip)) continue;
      g->stepped = 1;
      if (g->next_prefill < g->n_prompt) {
        for (; g->next_prefill < g->n_prompt; g->next_prefill++)
          LS_TRY(add_row(e, skip, k, g->next_prefill,
                         g->next_prefill >= (g->req->n_forced > 0 ? g->first_logits : g->n_prompt - 1), err));
      } else if (g->has_next) {
        g->has_next = 0;
        LS_TRY(add_row(e, skip, k, g->pos - 1, 1, err));
      }
    }
    LS_TRY(run_rows(e, skip, err));
  }
  return LS_OK;
}

int ls_engine_running(const ls_engine *e, int slot0, int n) {
  for (int k = slot0; k < slot0 + n; k++)
    if (e->slots[k].active && e->slots[k].stop == LS_STOP_NONE) return 1;
  return 0;
}

void ls_engine_finish(ls_engine *e, int slot0, int n, ls_gen_output *outs) {
  for (int i = 0; i < n; i++) {
    ls_gen_slot *g = &e->slots[slot0 + i];
    outs[i] = (ls_gen_output){.n_prompt = g->n_prompt, .n_generated = g->n_gen, .tokens = g->tokens,
                              .confidence = g->confidence, .text = g->text, .prefill_ms = g->prefill_ms,
                              .decode_ms = g->decode_ms, .n_reused = g->n_reused, .n_cached = g->n_cached,
                              .stop = (ls_stop_reason)g->stop};
    g->active = 0;
  }
}

void ls_engine_clear_cache(ls_engine *e) { ls_kv_clear(e->ctx); }
void ls_engine_drop_held(ls_engine *e) { ls_kv_drop_held(e->ctx); }

int ls_engine_generate_multi(ls_engine *e, const ls_gen_request *reqs, int n, ls_gen_output *outs, ls_err *err) {
  for (int i = 0; i < n; i++) memset(&outs[i], 0, sizeof outs[i]);
  int rc = ls_engine_start(e, 0, reqs, n, err);
  while (rc == LS_OK && ls_engine_running(e, 0, n)) rc = ls_engine_step(e, err);
  if (rc == LS_OK) ls_engine_finish(e, 0, n, outs);
  for (int i = 0; rc && i < n; i++) e->slots[i].active = 0;
  return rc;
}

int ls_engine_generate(ls_engine *e, const ls_gen_request *req, ls_gen_output *out, ls_err *err) {
  return ls_engine_generate_multi(e, req, 1, out, err);
}

typedef struct {
  int first; /* position whose logits predict target[0] */
  int vocab;
  int *pred;
  float *conf;
} forced_preds;

static void record_pred(void *user, int pos, const float *logits) {
  forced_preds *f = user;
  int p = pos - f->first;
  f->pred[p] = ls_argmax_confidence(logits, f->vocab, &f->conf[p]);
}

int ls_engine_teacher_force(ls_engine *e, const int *prompt, int n_prompt, const int *target, int n_target,
                            const uint8_t *skip, int *pred, float *conf, ls_err *err) {
  int n = n_prompt + n_target - 1; /* the last target token is never fed */
  if (n_prompt <= 0 || n_target <= 0) return ls_err_set(err, LS_EINVAL, "teacher forcing needs a prompt and a target");
  if (n > e->n_ctx) return ls_err_set(err, LS_EINVAL, "teacher forcing: %d tokens exceed the context of %d", n, e->n_ctx);
  memcpy(e->tokens, prompt, (size_t)n_prompt * sizeof *e->tokens);
  memcpy(e->tokens + n_prompt, target, (size_t)(n_target - 1) * sizeof *e->tokens);
  forced_preds f = {.first = n_prompt - 1, .vocab = e->model.cfg.vocab_size, .pred = pred, .conf = conf};
  return ls_forward_scored(e->ctx, e->tokens, n, n_prompt, skip ? skip : e->no_skip, record_pred, &f, err);
}
