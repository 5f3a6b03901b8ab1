#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_engine.h"
#include "ls_util.h"

static int alloc_buffers(ls_engine *e, ls_err *err) {
  int n_layers = e->model.cfg.n_layers;
  e->tokens = malloc(((size_t)e->n_ctx + 1) * sizeof *e->tokens);
  e->confidence = malloc(((size_t)e->n_ctx + 1) * sizeof *e->confidence);
  e->no_skip = calloc((size_t)n_layers, 1);
  /* every generated piece is at most the longest token */
  size_t piece_max = e->tok.vocab ? e->tok.max_piece + 1 : 8;
  e->text_cap = ((size_t)e->n_ctx + 1) * piece_max + 1;
  e->text = malloc(e->text_cap);
  if (!e->tokens || !e->confidence || !e->no_skip || !e->text)
    return ls_err_set(err, LS_ENOMEM, "out of memory for generation buffers");
  e->text[0] = '\0';
  return LS_OK;
}

static int open_parts(ls_engine *e, const ls_engine_params *p, ls_err *err) {
  LS_TRY(ls_model_load(&e->model, p->model_path, p->tokenizer_path, err));
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
  ls_ctx_params cp = {.n_ctx = p->n_ctx, .max_batch = p->max_batch, .n_threads = p->n_threads};
  LS_TRY(ls_ctx_new(&e->model, &cp, &e->ctx, err));
  e->n_ctx = ls_ctx_n_ctx(e->ctx);
  LS_TRY(ls_sampler_init(&e->sampler, e->model.cfg.vocab_size, p->temperature, p->top_p, p->seed, err));
  e->sampler.top_k = p->top_k > 0 ? p->top_k : 0;
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
  free(e->tokens);
  free(e->confidence);
  free(e->text);
  free(e->no_skip);
  memset(e, 0, sizeof *e);
}

/* Runs tokens [0, n) from position 0 in chunks of max_batch; logits of the last. */
static int prefill(ls_engine *e, int n, const uint8_t *skip, ls_err *err) {
  int batch = ls_ctx_max_batch(e->ctx);
  for (int i = 0; i < n; i += batch) {
    int m = n - i < batch ? n - i : batch;
    LS_TRY(ls_forward(e->ctx, e->tokens + i, m, i, skip, 0, err));
  }
  return LS_OK;
}

static int load_prompt(ls_engine *e, const ls_gen_request *req, int *n_prompt, ls_err *err) {
  if (req->prompt) {
    if (!e->tok.vocab) return ls_err_set(err, LS_EINVAL, "%s: the model has no tokenizer", e->model.path);
    return ls_tokenize(&e->tok, req->prompt, 1, e->tokens, e->n_ctx, n_prompt, err);
  }
  if (req->n_prompt_tokens <= 0 || req->n_prompt_tokens > e->n_ctx)
    return ls_err_set(err, LS_EINVAL, "prompt of %d tokens does not fit a context of %d", req->n_prompt_tokens,
                      e->n_ctx);
  memcpy(e->tokens, req->prompt_tokens, (size_t)req->n_prompt_tokens * sizeof *e->tokens);
  *n_prompt = req->n_prompt_tokens;
  return LS_OK;
}

/* Appends a piece; returns 1 if a stop string now appears (text cut there). */
static int append_piece(ls_engine *e, size_t *len, const char *piece, const ls_gen_request *req) {
  size_t pl = strlen(piece);
  if (*len + pl + 1 > e->text_cap) pl = e->text_cap - *len - 1;
  memcpy(e->text + *len, piece, pl);
  size_t old = *len;
  *len += pl;
  e->text[*len] = '\0';
  if (req->on_text) req->on_text(piece, req->user);
  /* the earliest stop string that ends inside the new piece wins */
  char *first = NULL;
  size_t first_len = 0;
  for (int s = 0; s < req->n_stops; s++) {
    size_t sl = strlen(req->stops[s]);
    if (!sl) continue;
    size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
    char *hit = strstr(e->text + from, req->stops[s]);
    if (hit && (!first || hit < first)) {
      first = hit;
      first_len = sl;
    }
  }
  if (first) {
    if (req->keep_stop) first += first_len;
    *first = '\0';
    *len = (size_t)(first - e->text);
    return 1;
  }
  return 0;
}

int ls_engine_generate(ls_engine *e, const ls_gen_request *req, ls_gen_output *out, ls_err *err) {
  memset(out, 0, sizeof *out);
  const uint8_t *skip = req->skip ? req->skip : e->no_skip;
  int n_prompt = 0;
  LS_TRY(load_prompt(e, req, &n_prompt, err));
  ls_earlyexit ee;
  LS_TRY(ls_ee_init(&ee, req->ee_window, req->ee_threshold, "early exit", err));
  double t0 = ls_now_ms();
  LS_TRY(prefill(e, n_prompt, skip, err));
  double t1 = ls_now_ms();
  const ls_vocab *v = &e->model.vocab;
  int max_new = req->max_new_tokens > 0 ? req->max_new_tokens : e->n_ctx;
  size_t len = 0;
  e->text[0] = '\0';
  int pos = n_prompt, n_gen = 0;
  ls_stop_reason stop = LS_STOP_NONE;
  while (stop == LS_STOP_NONE) {
    float conf;
    int next = ls_sample(&e->sampler, ls_ctx_logits(e->ctx), &conf);
    if (e->tok.vocab && (next == v->eos_id || next == v->bos_id || next == v->eot_id)) {
      stop = LS_STOP_EOS;
      break;
    }
    e->tokens[pos] = next;
    e->confidence[n_gen++] = conf;
    if (e->tok.vocab && append_piece(e, &len, ls_token_piece(&e->tok, e->tokens[pos - 1], next), req))
      stop = LS_STOP_STRING;
    else if (ls_ee_push(&ee, conf))
      stop = LS_STOP_EARLY_EXIT;
    else if (n_gen >= max_new)
      stop = LS_STOP_MAX_TOKENS;
    else if (pos + 1 >= e->n_ctx)
      stop = LS_STOP_CONTEXT;
    else
      LS_TRY(ls_forward(e->ctx, &e->tokens[pos], 1, pos, skip, 0, err));
    pos++;
  }
  double t2 = ls_now_ms();
  out->n_prompt = n_prompt;
  out->n_generated = n_gen;
  out->tokens = e->tokens;
  out->confidence = e->confidence;
  out->text = e->text;
  out->prefill_ms = t1 - t0;
  out->decode_ms = t2 - t1;
  out->stop = stop;
  return LS_OK;
}

int ls_engine_teacher_force(ls_engine *e, const int *prompt, int n_prompt, const int *target, int n_target,
                            const uint8_t *skip, int *pred, float *conf, ls_err *err) {
  int n = n_prompt + n_target - 1; /* the last target token is never fed */
  if (n_prompt <= 0 || n_target <= 0) return ls_err_set(err, LS_EINVAL, "teacher forcing needs a prompt and a target");
  if (n > e->n_ctx) return ls_err_set(err, LS_EINVAL, "teacher forcing: %d tokens exceed the context of %d", n, e->n_ctx);
  memcpy(e->tokens, prompt, (size_t)n_prompt * sizeof *e->tokens);
  memcpy(e->tokens + n_prompt, target, (size_t)(n_target - 1) * sizeof *e->tokens);
  const uint8_t *mask = skip ? skip : e->no_skip;
  int batch = ls_ctx_max_batch(e->ctx), lbatch = ls_ctx_max_logits(e->ctx), vocab = e->model.cfg.vocab_size;
  for (int i = 0, m; i < n; i += m) {
    m = n - i < batch ? n - i : batch;
    int want = i + m > n_prompt - 1; /* does this chunk hold a predicting position? */
    /* the prompt's prefix in full batches without logits, then chunks of at
     * most ls_ctx_max_logits() (the logits buffer is bounded) */
    if (want && i < n_prompt - 1) m = n_prompt - 1 - i, want = 0;
    else if (want && m > lbatch) m = lbatch;
    LS_TRY(ls_forward(e->ctx, e->tokens + i, m, i, mask, want, err));
    if (!want) continue;
    const float *logits = ls_ctx_logits(e->ctx);
    for (int j = 0; j < m; j++) {
      int p = i + j - (n_prompt - 1); /* target index predicted at position i+j */
      if (p < 0) continue;
      pred[p] = ls_argmax_confidence(logits + (size_t)j * vocab, vocab, &conf[p]);
    }
  }
  return LS_OK;
}
