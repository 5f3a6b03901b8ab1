/* llama.cpp oracles: what llama.cpp computed for a model, written by the shared
 * llama-logits-oracle tool (tests/data/archs/oracle, the llamacpp-fixtures' oracle/):
 *   NAME.json         n_vocab, seq_text / seq_tokens, prompt / prompt_tokens, greedy_tokens,
 *                     greedy_margins, ...
 *   NAME.seq.f32      the logits [n_seq][n_vocab] of seq_tokens run as one batch
 *   NAME.greedy.f32   (optional) the logits [n_greedy][n_vocab] before each greedy token */
#ifndef LS_TEST_ORACLE_H
#define LS_TEST_ORACLE_H

#include <jansson.h>

typedef struct ls_test_oracle {
  json_t *root; /* the whole NAME.json, for the keys a suite reads itself */
  int n_vocab;
  int *seq, *prompt, *greedy; /* token ids [n_seq], [n_prompt], [n_greedy] */
  int n_seq, n_prompt, n_greedy;
  float *seq_logits;    /* [n_seq][n_vocab] */
  float *greedy_logits; /* [n_greedy][n_vocab], NULL without NAME.greedy.f32 */
} ls_test_oracle;

/* Reads DIR/NAME.json and its logits files; the test fails on a missing or malformed one. */
void ls_test_oracle_load(ls_test_oracle *o, const char *dir, const char *name);
void ls_test_oracle_free(ls_test_oracle *o);

#endif
