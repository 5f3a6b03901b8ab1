#include "ls_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ls_sampler_init(ls_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed, ls_err *err) {
  memset(s, 0, sizeof *s);
  if (vocab_size <= 0) return ls_err_set(err, LS_EINVAL, "sampler: vocabulary size %d", vocab_size);
  if (!(temperature >= 0.0f) || !isfinite(temperature))
    return ls_err_set(err, LS_EINVAL, "--temp %g: must be >= 0", (double)temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return ls_err_set(err, LS_EINVAL, "--top-p %g: must be in (0, 1]", (double)top_p);
  s->vocab_size = vocab_size;
  s->temperature = temperature;
  s->top_p = top_p;
  ls_sampler_reseed(s, seed);
  s->probs = malloc((size_t)vocab_size * sizeof *s->probs);
  s->cands = malloc((size_t)vocab_size * sizeof *s->cands);
  if (!s->probs || !s->cands) {
    ls_sampler_free(s);
    return ls_err_set(err, LS_ENOMEM, "out of memory for the sampler");
  }
  return LS_OK;
}

void ls_sampler_free(ls_sampler *s) {
  free(s->probs);
  free(s->cands);
  memset(s, 0, sizeof *s);
}

void ls_sampler_reseed(ls_sampler *s, uint64_t seed) { s->rng_state = seed ? seed : 0x9E3779B97F4A7C15ull; }

/* xorshift* as in llama2.c */
static uint32_t random_u32(uint64_t *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float random_f32(uint64_t *state) { return (float)(random_u32(state) >> 8) / 16777216.0f; }

int ls_argmax_confidence(const float *logits, int n, float *confidence) {
  int best = 0;
  float max = logits[0];
  for (int i = 1; i < n; i++)
    if (logits[i] > max) {
      max = logits[i];
      best = i;
    }
  if (confidence) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)(logits[i] - max));
    *confidence = (float)(1.0 / sum);
  }
  return best;
}

static void softmax_temp(const float *logits, float *probs, int n, float temperature) {
  float max = logits[0];
  for (int i = 1; i < n; i++) max = logits[i] > max ? logits[i] : max;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    probs[i] = expf((logits[i] - max) / temperature);
    sum += probs[i];
  }
  for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
}

static int sample_mult(const float *probs, int n, float coin) {
  float cdf = 0.0f;
  for (int i = 0; i < n; i++) {
    cdf += probs[i];
    if (coin < cdf) return i;
  }
  return n - 1;
}

static int cmp_prob_desc(const void *a, const void *b) {
  const ls_prob_index *x = a, *y = b;
  if (x->prob > y->prob) return -1;
  if (x->prob < y->prob) return 1;
  return x->index - y->index;
}

/* Top-k, then nucleus sampling over what is left: the k most probable tokens
 * (ties by index), then the smallest prefix of them whose probability exceeds
 * top_p of their mass; the draw is over that prefix. */
static int sample_truncated(ls_sampler *s, float coin) {
  int n = s->vocab_size, n0 = 0;
  int k = s->top_k > 0 && s->top_k < n ? s->top_k : n;
  /* without top-k, a token below this cutoff cannot be in the nucleus (llama2.c's trick) */
  const float cutoff = k < n ? 0.0f : (1.0f - s->top_p) / (float)(n - 1 > 0 ? n - 1 : 1);
  for (int i = 0; i < n; i++)
    if (s->probs[i] >= cutoff) s->cands[n0++] = (ls_prob_index){s->probs[i], i};
  qsort(s->cands, (size_t)n0, sizeof *s->cands, cmp_prob_desc);
  if (n0 > k) n0 = k;
  float mass = 1.0f;
  if (k < n) {
    mass = 0.0f;
    for (int i = 0; i < n0; i++) mass += s->cands[i].prob;
  }
  float cum = 0.0f;
  int last = n0 - 1;
  for (int i = 0; i < n0; i++) {
    cum += s->cands[i].prob;
    if (s->top_p < 1.0f && cum > s->top_p * mass) {
      last = i;
      break;
    }
  }
  float r = coin * cum, cdf = 0.0f;
  for (int i = 0; i <= last; i++) {
    cdf += s->cands[i].prob;
    if (r < cdf) return s->cands[i].index;
  }
  return s->cands[last].index;
}

int ls_sample(ls_sampler *s, const float *logits, float *confidence) {
  int best = ls_argmax_confidence(logits, s->vocab_size, confidence);
  if (s->temperature == 0.0f) return best;
  softmax_temp(logits, s->probs, s->vocab_size, s->temperature);
  float coin = random_f32(&s->rng_state);
  if (s->top_p >= 1.0f && s->top_k <= 0) return sample_mult(s->probs, s->vocab_size, coin);
  return sample_truncated(s, coin);
}
