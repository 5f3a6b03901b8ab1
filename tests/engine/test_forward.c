/* The forward pass on stories260K: skip masks against an independent scalar
 * reference forward pass written here (plain C, no engine kernels), thread
 * count independence, prefill vs decode, statistics, greedy decoding that
 * reproduces llama2.c, and the skip-list parser. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ls_forward.h"
#include "ls_schedule.h"
#include "ls_model.h"
#include "ls_test.h"
#include "ls_util.h"

static ls_model model;

static void load_model(void) {
  ls_err err = {0};
  int rc = ls_model_load(&model, ls_test_data("models/stories260K/stories260K.bin"),
                         ls_test_data("models/stories260K/tok512.bin"), &err);
  ck_assert_msg(rc == LS_OK, "load: %s", err.msg);
}

static void free_model(void) { ls_model_free(&model); }

static ls_ctx *new_ctx(int n_threads, int max_batch) {
  ls_ctx *c = NULL;
  ls_err err = {0};
  ls_ctx_params p = {.n_ctx = 0, .max_batch = max_batch, .n_threads = n_threads};
  ck_assert_msg(ls_ctx_new(&model, &p, &c, &err) == LS_OK, "ctx: %s", err.msg);
  return c;
}

/* ---- independent reference forward pass --------------------------------- */

typedef struct refnet {
  const ls_model *m;
  int n_ctx, kv_dim;
  float *kc, *vc; /* [layers][n_ctx][kv_dim] */
  float *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits, *row;
} refnet;

static void ref_new(refnet *r, const ls_model *m) {
  const ls_config *p = &m->cfg;
  r->m = m;
  r->n_ctx = p->seq_len;
  r->kv_dim = p->n_kv_heads * p->head_dim;
  r->kc = calloc((size_t)p->n_layers * r->n_ctx * r->kv_dim, sizeof(float));
  r->vc = calloc((size_t)p->n_layers * r->n_ctx * r->kv_dim, sizeof(float));
  r->x = calloc(p->dim, 4);
  r->xb = calloc(p->dim, 4);
  r->xb2 = calloc(p->dim, 4);
  r->q = calloc((size_t)p->n_heads * p->head_dim, 4);
  r->hb = calloc(p->hidden_dim, 4);
  r->hb2 = calloc(p->hidden_dim, 4);
  r->att = calloc(r->n_ctx, 4);
  r->logits = calloc(p->vocab_size, 4);
  r->row = calloc(p->dim > p->hidden_dim ? p->dim : p->hidden_dim, 4);
}

static void ref_free(refnet *r) {
  free(r->kc); free(r->vc); free(r->x); free(r->xb); free(r->xb2); free(r->q);
  free(r->hb); free(r->hb2); free(r->att); free(r->logits); free(r->row);
}

/* out[rows] = W in, dequantising each row first, accumulating in double. */
static void ref_matvec(refnet *r, const ls_mat *w, const float *in, float *out) {
  for (int64_t i = 0; i < w->rows; i++) {
    ls_mat_row_f32(w, i, r->row);
    double s = 0;
    for (int64_t j = 0; j < w->cols; j++) s += (double)r->row[j] * in[j];
    out[i] = (float)s;
  }
}

static void ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  double inv = 1.0 / sqrt(ss / n + eps);
  for (int i = 0; i < n; i++) o[i] = (float)(w[i] * (x[i] * inv));
}

static void ref_forward(refnet *r, int token, int pos, const uint8_t *skip) {
  const ls_model *m = r->m;
  const ls_config *p = &m->cfg;
  int dim = p->dim, hd = p->head_dim, kvd = r->kv_dim;
  ls_dequantize_row(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)token * m->tok_embd.row_bytes, r->x,
                    dim);
  for (int l = 0; l < p->n_layers; l++) {
    const ls_layer *L = &m->layers[l];
    if (!(skip && (skip[l] & LS_SKIP_ATTN))) {
      float *kc = r->kc + ((size_t)l * r->n_ctx + pos) * kvd, *vc = r->vc + ((size_t)l * r->n_ctx + pos) * kvd;
      ref_rmsnorm(r->xb, r->x, L->attn_norm, dim, p->norm_eps);
      ref_matvec(r, &L->wq, r->xb, r->q);
      ref_matvec(r, &L->wk, r->xb, kc);
      ref_matvec(r, &L->wv, r->xb, vc);
      for (int h = 0; h < p->n_heads + p->n_kv_heads; h++) {
        float *v = h < p->n_heads ? r->q + h * hd : kc + (h - p->n_heads) * hd;
        for (int i = 0; i < p->rope_dim; i += 2) {
          double ang = pos * pow(p->rope_theta, -(double)i / p->rope_dim);
          double c = cos(ang), s = sin(ang), a = v[i], b = v[i + 1];
          v[i] = (float)(a * c - b * s);
          v[i + 1] = (float)(a * s + b * c);
        }
      }
      for (int h = 0; h < p->n_heads; h++) {
        int kvh = h / (p->n_heads / p->n_kv_heads);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= pos; j++) {
          const float *k = r->kc + ((size_t)l * r->n_ctx + j) * kvd + kvh * hd;
          double s = 0;
          for (int i = 0; i < hd; i++) s += (double)r->q[h * hd + i] * k[i];
          r->att[j] = (float)(s / sqrt((double)hd));
          if (r->att[j] > mx) mx = r->att[j];
        }
        for (int j = 0; j <= pos; j++) sum += exp(r->att[j] - mx);
        for (int i = 0; i < hd; i++) {
          double o = 0;
          for (int j = 0; j <= pos; j++)
            o += exp(r->att[j] - mx) / sum * r->vc[((size_t)l * r->n_ctx + j) * kvd + kvh * hd + i];
          r->xb[h * hd + i] = (float)o;
        }
      }
      ref_matvec(r, &L->wo, r->xb, r->xb2);
      for (int i = 0; i < dim; i++) r->x[i] += r->xb2[i];
    }
    if (!(skip && (skip[l] & LS_SKIP_FFN))) {
      ref_rmsnorm(r->xb, r->x, L->ffn_norm, dim, p->norm_eps);
      ref_matvec(r, &L->w_gate, r->xb, r->hb);
      ref_matvec(r, &L->w_up, r->xb, r->hb2);
      for (int i = 0; i < p->hidden_dim; i++) r->hb[i] = (float)(r->hb[i] / (1.0 + exp(-(double)r->hb[i])) * r->hb2[i]);
      ref_matvec(r, &L->w_down, r->hb, r->xb2);
      for (int i = 0; i < dim; i++) r->x[i] += r->xb2[i];
    }
  }
  ref_rmsnorm(r->xb, r->x, m->out_norm, dim, p->norm_eps);
  ref_matvec(r, &m->output, r->xb, r->logits);
}

/* max |a-b| / max(1, max |b|) */
static double rel_diff(const float *a, const float *b, int n) {
  double d = 0, mx = 1;
  for (int i = 0; i < n; i++) {
    if (fabs(a[i] - b[i]) > d) d = fabs(a[i] - b[i]);
    if (fabs(b[i]) > mx) mx = fabs(b[i]);
  }
  return d / mx;
}

/* Engine greedy generation from BOS, token by token; fills toks[0..n) (toks[0]
 * = BOS) and logits [n-1][vocab] for each step. */
static void greedy(ls_ctx *c, int n, const uint8_t *skip, int *toks, float *logits) {
  int vocab = model.cfg.vocab_size;
  ls_err err = {0};
  toks[0] = 1;
  for (int pos = 0; pos + 1 < n; pos++) {
    ck_assert_msg(ls_forward(c, &toks[pos], 1, pos, skip, 0, &err) == LS_OK, "forward: %s", err.msg);
    if (logits) memcpy(logits + (size_t)pos * vocab, ls_ctx_logits(c), (size_t)vocab * sizeof(float));
    toks[pos + 1] = ls_argmax(ls_ctx_logits(c), vocab);
  }
}

/* Decodes llama2.c-style: strip the leading space after BOS, bytes as bytes. */
static void decode_text(const int *toks, int n, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 1; i < n; i++) {
    const char *piece = model.vocab.tokens[toks[i]];
    if (toks[i - 1] == 1 && piece[0] == ' ') piece++;
    unsigned byte;
    char one[2] = {0};
    if (sscanf(piece, "<0x%02X>", &byte) == 1) {
      one[0] = (char)byte;
      piece = one;
    }
    size_t pl = strlen(piece);
    if (len + pl + 1 < cap) {
      memcpy(out + len, piece, pl + 1);
      len += pl;
    }
  }
}

START_TEST(test_greedy_matches_llama2c) {
  load_model();
  ls_ctx *c = new_ctx(1, 0);
  /* llama2.c -n 200: 200 forward steps from BOS print 200 tokens */
  int toks[201];
  greedy(c, 201, NULL, toks, NULL);
  char text[8192];
  decode_text(toks, 201, text, sizeof text);
  strcat(text, "\n");
  char *expected;
  size_t elen;
  ls_err err = {0};
  ck_assert_int_eq(ls_read_file(ls_test_data("models/stories260K/expected-greedy-empty-n200.txt"), &expected, &elen,
                                &err), LS_OK);
  ck_assert_msg(strncmp(text, "Once upon a time", 16) == 0, "starts with: %.40s", text);
  ck_assert_str_eq(text, expected);
  free(expected);
  ls_ctx_free(c);
  free_model();
}
END_TEST

START_TEST(test_empty_mask_bit_identical) {
  load_model();
  int L = model.cfg.n_layers, vocab = model.cfg.vocab_size;
  ls_ctx *a = new_ctx(1, 0), *b = new_ctx(1, 0);
  uint8_t *zero = calloc(L, 1);
  int toks[24];
  float *la = malloc(sizeof(float) * 23 * vocab), *lb = malloc(sizeof(float) * 23 * vocab);
  greedy(a, 24, NULL, toks, la);
  int toks2[24];
  greedy(b, 24, zero, toks2, lb);
  ck_assert(memcmp(toks, toks2, sizeof toks) == 0);
  ck_assert(memcmp(la, lb, sizeof(float) * 23 * vocab) == 0);
  free(la); free(lb); free(zero);
  ls_ctx_free(a); ls_ctx_free(b);
  free_model();
}
END_TEST

/* Masks to compare against the reference, index _i of the loop test. */
static const char *masks[] = {"", "L0.attn", "L2.ffn", "L1.attn,L3.ffn,L4.attn", "L0.ffn,L1.ffn,L2.attn,L4.ffn"};

START_TEST(test_skip_matches_reference) {
  load_model();
  int L = model.cfg.n_layers, vocab = model.cfg.vocab_size;
  uint8_t mask[64];
  ls_err err = {0};
  ck_assert_msg(ls_skip_mask_parse(masks[_i], L, mask, &err) == LS_OK, "%s", err.msg);
  ls_ctx *c = new_ctx(2, 0);
  refnet r;
  ref_new(&r, &model);
  /* teacher-force a fixed token sequence through both */
  int toks[40];
  greedy(c, 40, NULL, toks, NULL);
  double worst = 0;
  int agree = 0;
  for (int pos = 0; pos < 39; pos++) {
    ck_assert(ls_forward(c, &toks[pos], 1, pos, mask, 0, &err) == LS_OK);
    ref_forward(&r, toks[pos], pos, mask);
    double d = rel_diff(ls_ctx_logits(c), r.logits, vocab);
    if (d > worst) worst = d;
    agree += ls_argmax(ls_ctx_logits(c), vocab) == ls_argmax(r.logits, vocab);
  }
  /* f32 kernels vs a double-precision reference: 1e-4 of the largest logit */
  ck_assert_msg(worst < 1e-4, "mask '%s': logits differ from the reference by %g (relative)", masks[_i], worst);
  ck_assert_int_ge(agree, 38);
  /* and the skipped run really differs from the full one when something is skipped */
  if (masks[_i][0]) {
    refnet full;
    ref_new(&full, &model);
    double dmax = 0;
    for (int pos = 0; pos < 10; pos++) {
      ref_forward(&full, toks[pos], pos, NULL);
      ref_forward(&r, toks[pos], pos, mask);
      double d = rel_diff(full.logits, r.logits, vocab);
      if (d > dmax) dmax = d;
    }
    ck_assert_msg(dmax > 1e-3, "mask '%s' changes nothing", masks[_i]);
    ref_free(&full);
  }
  ref_free(&r);
  ls_ctx_free(c);
  free_model();
}
END_TEST

START_TEST(test_threads_bit_identical) {
  load_model();
  int vocab = model.cfg.vocab_size, L = model.cfg.n_layers;
  uint8_t mask[64] = {0};
  mask[1] = LS_SKIP_FFN;
  mask[3] = LS_SKIP_ATTN;
  (void)L;
  int toks[3][50];
  float *lg[3];
  float *pf[3];
  ls_err err = {0};
  for (int th = 1; th <= 3; th++) {
    ls_ctx *c = new_ctx(th, 64);
    lg[th - 1] = malloc(sizeof(float) * 49 * vocab);
    greedy(c, 50, NULL, toks[th - 1], lg[th - 1]);
    /* batched prefill of the generated text, all logits, with a mask */
    pf[th - 1] = malloc(sizeof(float) * 50 * vocab);
    ck_assert(ls_forward(c, toks[0], 50, 0, mask, 1, &err) == LS_OK);
    memcpy(pf[th - 1], ls_ctx_logits(c), sizeof(float) * 50 * vocab);
    ls_ctx_free(c);
  }
  for (int th = 2; th <= 3; th++) {
    ck_assert_msg(memcmp(toks[0], toks[th - 1], sizeof toks[0]) == 0, "%d threads: different tokens", th);
    ck_assert_msg(memcmp(lg[0], lg[th - 1], sizeof(float) * 49 * vocab) == 0, "%d threads: different logits", th);
    ck_assert_msg(memcmp(pf[0], pf[th - 1], sizeof(float) * 50 * vocab) == 0, "%d threads: different prefill", th);
  }
  for (int i = 0; i < 3; i++) {
    free(lg[i]);
    free(pf[i]);
  }
  free_model();
}
END_TEST

START_TEST(test_prefill_matches_decode) {
  load_model();
  int vocab = model.cfg.vocab_size;
  ls_ctx *c = new_ctx(2, 16);
  int toks[45];
  float *dec = malloc(sizeof(float) * 44 * vocab), *pre = malloc(sizeof(float) * 44 * vocab);
  greedy(c, 45, NULL, toks, dec);
  ls_err err = {0};
  /* prefill in chunks of up to 16 (the context's max_batch), all logits */
  for (int pos = 0; pos < 44; pos += 16) {
    int n = 44 - pos < 16 ? 44 - pos : 16;
    ck_assert_msg(ls_forward(c, toks + pos, n, pos, NULL, 1, &err) == LS_OK, "%s", err.msg);
    memcpy(pre + (size_t)pos * vocab, ls_ctx_logits(c), sizeof(float) * n * vocab);
  }
  double d = rel_diff(pre, dec, 44 * vocab);
  ck_assert_msg(d < 1e-5, "prefill vs decode relative difference %g", d);
  /* last-token-only logits equal the last row of all_logits */
  ck_assert(ls_forward(c, toks + 32, 12, 32, NULL, 0, &err) == LS_OK);
  ck_assert(rel_diff(ls_ctx_logits(c), pre + (size_t)43 * vocab, vocab) < 1e-5);
  /* a too-large batch and a bad token are errors naming the problem */
  ck_assert_int_eq(ls_forward(c, toks, 17, 0, NULL, 0, &err), LS_EINVAL);
  int bad = vocab;
  ck_assert_int_eq(ls_forward(c, &bad, 1, 0, NULL, 0, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "vocabulary"));
  ck_assert_int_eq(ls_forward(c, toks, 1, ls_ctx_n_ctx(c), NULL, 0, &err), LS_EINVAL);
  free(dec); free(pre);
  ls_ctx_free(c);
  free_model();
}
END_TEST

START_TEST(test_stats) {
  load_model();
  int L = model.cfg.n_layers;
  ls_ctx *c = new_ctx(2, 0);
  double cs[128] = {0};
  int64_t cnt[128] = {0};
  ls_sublayer_stats st = {.n_sublayers = 2 * L, .cos_sum = cs, .count = cnt};
  ls_ctx_set_stats(c, &st);
  uint8_t mask[64] = {0};
  mask[2] = LS_SKIP_ATTN;
  int toks[20];
  ls_ctx_set_stats(c, NULL);
  greedy(c, 20, NULL, toks, NULL);
  ls_ctx_set_stats(c, &st);
  ls_err err = {0};
  ck_assert(ls_forward(c, toks, 20, 0, mask, 0, &err) == LS_OK);
  for (int s = 0; s < 2 * L; s++) {
    if (s == 4) {
      ck_assert_int_eq(cnt[s], 0);
      ck_assert(cs[s] == 0);
      continue;
    }
    ck_assert_int_eq(cnt[s], 20);
    double mean = cs[s] / cnt[s];
    ck_assert_msg(mean >= -1 && mean <= 1 && mean != 0, "sub-layer %d mean cos %g", s, mean);
  }
  /* identical across thread counts, and equal to token-by-token accumulation */
  double cs1[128] = {0};
  int64_t cnt1[128] = {0};
  ls_sublayer_stats st1 = {.n_sublayers = 2 * L, .cos_sum = cs1, .count = cnt1};
  ls_ctx *c1 = new_ctx(1, 0);
  ls_ctx_set_stats(c1, &st1);
  ck_assert(ls_forward(c1, toks, 20, 0, mask, 0, &err) == LS_OK);
  ck_assert(memcmp(cs, cs1, sizeof(double) * 2 * L) == 0);
  ls_ctx_free(c1);
  ls_ctx_free(c);
  free_model();
}
END_TEST

START_TEST(test_teacher_forced) {
  load_model();
  ls_ctx *c = new_ctx(1, 8);
  int toks[30];
  greedy(c, 30, NULL, toks, NULL);
  int agree, total;
  ls_err err = {0};
  ck_assert(ls_teacher_forced_top1(c, toks, 30, 1, NULL, &agree, &total, &err) == LS_OK);
  ck_assert_int_eq(total, 29);
  ck_assert_int_eq(agree, 29); /* its own greedy output */
  uint8_t mask[64] = {0};
  for (int l = 0; l < model.cfg.n_layers; l++) mask[l] = LS_SKIP_ATTN | LS_SKIP_FFN;
  ck_assert(ls_teacher_forced_top1(c, toks, 30, 5, mask, &agree, &total, &err) == LS_OK);
  ck_assert_int_eq(total, 25);
  ck_assert_int_lt(agree, 25);
  ls_ctx_free(c);
  free_model();
}
END_TEST

/* The logits buffer is bounded (~8 MiB): with a 32000-token vocabulary one
 * all-logits call covers at most 65 tokens whatever max_batch is, and
 * teacher forcing chunks accordingly (same counts as with small batches). */
START_TEST(test_logits_bound) {
  ls_model tm;
  ls_err err = {0};
  ck_assert_msg(ls_model_load(&tm, ls_test_data("models/tiny-random-gguf/llama-2-tiny-random.gguf"), NULL, &err) ==
                    LS_OK, "load: %s", err.msg);
  ck_assert_int_eq(tm.cfg.vocab_size, 32000);
  ls_ctx *big, *small;
  ls_ctx_params pb = {.n_ctx = 160, .max_batch = 128, .n_threads = 2};
  ls_ctx_params ps = {.n_ctx = 160, .max_batch = 16, .n_threads = 1};
  ck_assert_msg(ls_ctx_new(&tm, &pb, &big, &err) == LS_OK, "ctx: %s", err.msg);
  ck_assert_msg(ls_ctx_new(&tm, &ps, &small, &err) == LS_OK, "ctx: %s", err.msg);
  ck_assert_int_eq(ls_ctx_max_logits(big), (int)((8u << 20) / (4 * 32000)));
  ck_assert_int_eq(ls_ctx_max_logits(small), 16);
  ck_assert_uint_eq(ls_ctx_kv_bytes(big), 2 * 4 * (size_t)tm.cfg.n_layers * 160 * tm.cfg.n_kv_heads * tm.cfg.head_dim);
  int toks[150];
  for (int i = 0; i < 150; i++) toks[i] = i == 0 ? 1 : (i * 7919 + 13) % 32000;
  int lim = ls_ctx_max_logits(big);
  ck_assert_int_eq(ls_forward(big, toks, lim + 1, 0, NULL, 1, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "all logits") != NULL, "message: %s", err.msg);
  ck_assert_msg(ls_forward(big, toks, lim, 0, NULL, 1, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_forward(big, toks, 128, 0, NULL, 0, &err) == LS_OK, "%s", err.msg); /* no logits: max_batch */
  /* make half of the targets the model's own argmax so agreement is not trivially 0 */
  for (int i = 0; i + 1 < 150; i++) {
    if (i % 2) continue;
    ck_assert(ls_forward(small, &toks[i], 1, i, NULL, 0, &err) == LS_OK);
    if (i + 1 < 150) toks[i + 1] = ls_argmax(ls_ctx_logits(small), 32000);
    ck_assert(ls_forward(small, &toks[i + 1], 1, i + 1, NULL, 0, &err) == LS_OK);
  }
  const int prompts[] = {1, 3, 70, 130};
  for (int k = 0; k < 4; k++) {
    int a1, t1, a2, t2;
    ck_assert_msg(ls_teacher_forced_top1(big, toks, 150, prompts[k], NULL, &a1, &t1, &err) == LS_OK, "%s", err.msg);
    ck_assert_msg(ls_teacher_forced_top1(small, toks, 150, prompts[k], NULL, &a2, &t2, &err) == LS_OK, "%s", err.msg);
    ck_assert_int_eq(t1, 150 - prompts[k]);
    ck_assert_int_eq(t2, t1);
    ck_assert_int_eq(a1, a2);
    if (prompts[k] < 100) ck_assert_int_ge(a1, 10);
  }
  ls_ctx_free(big);
  ls_ctx_free(small);
  ls_model_free(&tm);
}
END_TEST

/* Weights placement: the anonymous huge-page copy and the file mapping give
 * bit-identical logits, and the copy really moved every tensor out of the
 * mapping (while MAP leaves them in it). LS_WEIGHTS overrides AUTO. */
static int in_map(const ls_model *m, const void *p) {
  return (const char *)p >= (const char *)m->map && (const char *)p < (const char *)m->map + m->map_size;
}

static void logits_of(const ls_model *m, float *out, int n) {
  ls_ctx *c;
  ls_err err = {0};
  ls_ctx_params p = {.n_ctx = 16, .max_batch = 8, .n_threads = 2};
  ck_assert_msg(ls_ctx_new(m, &p, &c, &err) == LS_OK, "ctx: %s", err.msg);
  int toks[5] = {1, 400, 31, 7, 12000};
  ck_assert_msg(ls_forward(c, toks, 5, 0, NULL, 0, &err) == LS_OK, "%s", err.msg);
  memcpy(out, ls_ctx_logits(c), sizeof(float) * (size_t)n);
  ls_ctx_free(c);
}

START_TEST(test_weights_placement) {
  const char *path = ls_test_data("models/tiny-random-gguf/llama-2-tiny-random.gguf");
  ls_model mm, mc, ma;
  ls_err err = {0};
  ck_assert_msg(ls_model_load_placed(&mm, path, NULL, LS_WEIGHTS_MAP, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_model_load_placed(&mc, path, NULL, LS_WEIGHTS_COPY, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(mm.weights_copied, 0);
  ck_assert_int_eq(mc.weights_copied, 1);
  ck_assert(in_map(&mm, mm.layers[0].wq.data) && in_map(&mm, mm.output.data));
  for (int l = 0; l < mc.cfg.n_layers; l++) {
    const ls_layer *L = &mc.layers[l];
    const void *ps[] = {L->wq.data, L->wk.data, L->wv.data, L->wo.data, L->w_gate.data, L->w_up.data,
                        L->w_down.data, L->attn_norm, L->ffn_norm};
    for (int i = 0; i < 9; i++) ck_assert_msg(!in_map(&mc, ps[i]), "layer %d tensor %d still in the mapping", l, i);
  }
  ck_assert(!in_map(&mc, mc.tok_embd.data) && !in_map(&mc, mc.output.data) && !in_map(&mc, mc.out_norm));
  ck_assert_int_eq(memcmp(mc.layers[0].w_down.data, mm.layers[0].w_down.data,
                          mm.layers[0].w_down.row_bytes * (size_t)mm.layers[0].w_down.rows), 0);
  int vocab = mm.cfg.vocab_size;
  float *a = malloc(sizeof(float) * (size_t)vocab), *b = malloc(sizeof(float) * (size_t)vocab);
  logits_of(&mm, a, vocab);
  logits_of(&mc, b, vocab);
  ck_assert_msg(memcmp(a, b, sizeof(float) * (size_t)vocab) == 0, "copied weights change the logits");
  /* LS_WEIGHTS decides AUTO */
  setenv("LS_WEIGHTS", "map", 1);
  ck_assert_msg(ls_model_load(&ma, path, NULL, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(ma.weights_copied, 0);
  ls_model_free(&ma);
  setenv("LS_WEIGHTS", "copy", 1);
  ck_assert_msg(ls_model_load(&ma, path, NULL, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(ma.weights_copied, 1);
  ls_model_free(&ma);
  unsetenv("LS_WEIGHTS");
  free(a);
  free(b);
  ls_model_free(&mm);
  ls_model_free(&mc);
}
END_TEST

START_TEST(test_skip_parse) {
  uint8_t m[6];
  ls_err err = {0};
  int layer, kind;
  ck_assert_int_eq(ls_sublayer_name_parse("L3.attn", 6, &layer, &kind, &err), LS_OK);
  ck_assert_int_eq(layer, 3);
  ck_assert_int_eq(kind, LS_SKIP_ATTN);
  ck_assert_int_eq(ls_sublayer_name_parse("L0.ffn", 6, &layer, &kind, &err), LS_OK);
  ck_assert_int_eq(kind, LS_SKIP_FFN);
  ck_assert_int_eq(ls_skip_mask_parse("L3.attn,L4.ffn,L3.ffn", 6, m, &err), LS_OK);
  ck_assert_int_eq(m[3], LS_SKIP_ATTN | LS_SKIP_FFN);
  ck_assert_int_eq(m[4], LS_SKIP_FFN);
  ck_assert_int_eq(m[0], 0);
  ck_assert_int_eq(ls_skip_mask_executed(m, 6), 9);
  ck_assert_int_eq(ls_skip_mask_executed(NULL, 6), 12);
  ck_assert_int_eq(ls_skip_mask_parse("", 6, m, &err), LS_OK);
  ck_assert_int_eq(ls_skip_mask_executed(m, 6), 12);
  /* a repeated sub-layer is refused, as in a schedule */
  ck_assert_int_eq(ls_skip_mask_parse("L4.ffn,L4.ffn", 6, m, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "L4.ffn is listed twice") != NULL, "%s", err.msg);
  ck_assert_int_eq(ls_skip_mask_parse("L4.ffn,L4.attn", 6, m, &err), LS_OK);
  ck_assert_int_eq(ls_skip_mask_executed(m, 6), 10);
  const char *bad[] = {"L6.attn", "L3.mlp", "3.attn", "L.attn", "L3", "L3.attn,", "L3.attn,,L4.ffn", "x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_msg(ls_skip_mask_parse(bad[i], 6, m, &err) == LS_EINVAL, "'%s' accepted", bad[i]);
  }
  ck_assert_int_eq(ls_skip_mask_parse("L1.attn,L9.ffn", 6, m, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "L9.ffn"));
  ck_assert_int_eq(ls_skip_mask_parse("L1.attn,L2.xyz", 6, m, &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "L2.xyz"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("forward");
  TCase *tc = tcase_create("stories260K");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_greedy_matches_llama2c);
  tcase_add_test(tc, test_empty_mask_bit_identical);
  tcase_add_loop_test(tc, test_skip_matches_reference, 0, (int)(sizeof masks / sizeof *masks));
  tcase_add_test(tc, test_threads_bit_identical);
  tcase_add_test(tc, test_prefill_matches_decode);
  tcase_add_test(tc, test_stats);
  tcase_add_test(tc, test_teacher_forced);
  tcase_add_test(tc, test_logits_bound);
  tcase_add_test(tc, test_skip_parse);
  tcase_add_test(tc, test_weights_placement);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
