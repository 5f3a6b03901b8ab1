/* Next-token sampling: greedy (temperature 0), temperature, top-k, top-p
 * (nucleus; within the top k when both are set, as llama.cpp chains them),
 * seeded. Every call also reports the step's confidence for early exit:
 * the maximum probability of softmax(logits) at temperature 1, i.e. how sure
 * the model itself is, independent of the sampling temperature. With greedy
 * decoding that is the probability of the token emitted. */
#ifndef LS_SAMPLER_H
#define LS_SAMPLER_H

#include <stdint.h>

#include "ls_error.h"

typedef struct ls_prob_index {
  float prob;
  int index;
} ls_prob_index;

typedef struct ls_sampler {
  int vocab_size;
  float temperature; /* 0: greedy */
  float top_p;       /* in (0, 1]; 1 disables nucleus sampling */
  int top_k;         /* 0 disables top-k; set after ls_sampler_init */
  uint64_t rng_state;
  float *probs;            /* [vocab_size] scratch */
  ls_prob_index *cands;    /* [vocab_size] scratch for top-k / top-p */
} ls_sampler;

int ls_sampler_init(ls_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed, ls_err *err);
void ls_sampler_free(ls_sampler *s);
void ls_sampler_reseed(ls_sampler *s, uint64_t seed);

/* Picks the next token from logits [vocab_size]; *confidence gets the max
 * softmax probability (may be NULL). Allocates nothing. */
int ls_sample(ls_sampler *s, const float *logits, float *confidence);

/* Argmax (first index on ties) and max softmax probability of a logits row. */
int ls_argmax_confidence(const float *logits, int n, float *confidence);

#endif
