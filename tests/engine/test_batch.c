/* The batched multi-sequence forward pass (ls_decode) against each sequence
 * run alone: every row's logits bit-identical for mixed batches (different
 * lengths, positions, interleaved sequences, forks, kept prefixes), with and
 * without a skip mask, for 1, 2 and 3 threads, on stories260K in F32 and
 * converted to Q8_0; and the batch/sequence errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_forward.h"
#include "gguf.h"
#include "kernels.h"
#include "ls_model.h"
#include "ls_test.h"

#define N_STREAM 5
#define MAX_LEN 24

static ls_model model;
static int vocab;
/* Streams of tokens; C shares A's first 6 tokens (a fork), E shares B's first 3 (keep + rewrite). */
static int stream[N_STREAM][MAX_LEN];
static const int stream_len[N_STREAM] = {20, 12, 15, 7, 10};
enum { A, B, C, D, E };
static float *ref[N_STREAM]; /* [len][vocab] logits of each stream run alone, token by token */

static void make_streams(void) {
  for (int s = 0; s < N_STREAM; s++) {
    stream[s][0] = 1;
    for (int i = 1; i < MAX_LEN; i++) stream[s][i] = (int)((7u + 131u * (unsigned)s + 17u * (unsigned)i * (unsigned)(s + 3)) % (unsigned)vocab);
  }
  memcpy(stream[C], stream[A], 6 * sizeof(int));
  memcpy(stream[E], stream[B], 3 * sizeof(int));
}

static void reference(const uint8_t *skip) {
  ls_err err = {0};
  for (int s = 0; s < N_STREAM; s++) {
    ls_ctx *c;
    ls_ctx_params p = {.n_ctx = 64, .max_batch = 1, .n_threads = 1};
    ck_assert_msg(ls_ctx_new(&model, &p, &c, &err) == LS_OK, "%s", err.msg);
    free(ref[s]);
    ref[s] = malloc(sizeof(float) * (size_t)stream_len[s] * vocab);
    for (int i = 0; i < stream_len[s]; i++) {
      ck_assert_msg(ls_forward(c, &stream[s][i], 1, i, skip, 0, &err) == LS_OK, "%s", err.msg);
      memcpy(ref[s] + (size_t)i * vocab, ls_ctx_logits(c), sizeof(float) * vocab);
    }
    ls_ctx_free(c);
  }
}

/* One piece of a batch: sequence slot `seq` runs stream `st` at positions [from, from+n). */
typedef struct piece {
  int seq, st, from, n;
} piece;

/* Adds the pieces' rows interleaved (round robin over pieces), runs them,
 * and compares every row's logits with the stream's reference bit for bit. */
static void run_and_check(ls_ctx *c, ls_batch *b, const piece *pc, int n_pc, const uint8_t *skip, const char *what) {
  ls_err err = {0};
  int row_st[64], row_pos[64];
  if (n_pc == 0) return;
  ls_batch_clear(b);
  for (int k = 0, more = 1; more; k++) {
    more = 0;
    for (int i = 0; i < n_pc; i++) {
      if (k >= pc[i].n) continue;
      more = 1;
      int pos = pc[i].from + k, r = b->n_tokens;
      ck_assert_int_ge(ls_batch_add(b, stream[pc[i].st][pos], pos, pc[i].seq, 1), 0);
      row_st[r] = pc[i].st;
      row_pos[r] = pos;
    }
  }
  ck_assert_msg(ls_decode(c, b, skip, &err) == LS_OK, "%s: %s", what, err.msg);
  ck_assert_int_eq(ls_ctx_n_outputs(c), b->n_tokens);
  for (int r = 0; r < b->n_tokens; r++)
    ck_assert_msg(memcmp(ls_ctx_logits_ith(c, r), ref[row_st[r]] + (size_t)row_pos[r] * vocab,
                         sizeof(float) * vocab) == 0,
                  "%s, %d threads: row %d (stream %d, position %d) differs from the sequence run alone", what,
                  ls_ctx_n_threads(c), r, row_st[r], row_pos[r]);
}

static void check_batches(const uint8_t *skip, const char *what) {
  reference(skip);
  ls_err err = {0};
  for (int th = 1; th <= 3; th++) {
    ls_ctx *c;
    ls_ctx_params p = {.n_ctx = 64, .n_seq = 4, .max_batch = 32, .n_threads = th};
    ck_assert_msg(ls_ctx_new(&model, &p, &c, &err) == LS_OK, "%s", err.msg);
    ls_batch b;
    ck_assert(ls_batch_init(&b, 32, &err) == LS_OK);
    /* two prompts of different lengths together */
    piece s1[] = {{0, A, 0, 10}, {1, B, 0, 5}};
    run_and_check(c, &b, s1, 2, skip, what);
    ck_assert_int_eq(ls_kv_seq_len(c, 0), 10);
    ck_assert_int_eq(ls_kv_seq_len(c, 1), 5);
    /* fork A's first 6 positions into slot 2 (stream C), start slot 3 from
     * scratch, and continue A and B: four sequences at four positions */
    ck_assert_msg(ls_kv_seq_fork(c, 2, 0, 6, &err) == LS_OK, "%s", err.msg);
    ck_assert_int_eq(ls_kv_seq_len(c, 2), 6);
    piece s2[] = {{2, C, 6, 4}, {0, A, 10, 1}, {3, D, 0, 7}, {1, B, 5, 3}};
    run_and_check(c, &b, s2, 4, skip, what);
    /* decode-like steps: one row per sequence, in a changing order */
    for (int k = 0; k < 3; k++) {
      piece s3[] = {{1, B, 8 + k, 1}, {2, C, 10 + k, 1}, {0, A, 11 + k, 1}};
      run_and_check(c, &b, s3 + (k % 3), 3 - (k % 3), skip, what);
      run_and_check(c, &b, s3, k % 3, skip, what);
    }
    /* keep B's first 3 positions in slot 1 and rewrite from there (stream E);
     * a single sequence alone in the batch, then with others */
    ls_kv_seq_keep(c, 1, 3);
    ck_assert_int_eq(ls_kv_seq_len(c, 1), 3);
    piece s4[] = {{1, E, 3, 4}};
    run_and_check(c, &b, s4, 1, skip, what);
    piece s5[] = {{0, A, 14, 6}, {1, E, 7, 3}, {2, C, 13, 2}};
    run_and_check(c, &b, s5, 3, skip, what);
    /* clear a slot and reuse it for another stream */
    ls_kv_seq_keep(c, 3, 0);
    piece s6[] = {{3, B, 0, 12}};
    run_and_check(c, &b, s6, 1, skip, what);
    ls_batch_free(&b);
    ls_ctx_free(c);
  }
}

static void load(const char *type) {
  ls_err err = {0};
  ck_assert_msg(ls_model_load(&model, ls_test_data("models/stories260K/stories260K.bin"),
                              ls_test_data("models/stories260K/tok512.bin"), &err) == LS_OK,
                "load: %s", err.msg);
  if (!strcmp(type, "q8_0")) {
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K-batch-q8_0.gguf", ls_test_tmpdir());
    ck_assert_msg(ls_gguf_convert(&model, path, LS_Q8_0, &err) == LS_OK, "%s", err.msg);
    ls_model_free(&model);
    ck_assert_msg(ls_model_load(&model, path, NULL, &err) == LS_OK, "%s", err.msg);
    unlink(path);
    ck_assert_int_eq(model.layers[0].wq.type, LS_Q8_0);
  }
  vocab = model.cfg.vocab_size;
  make_streams();
}

static void unload(void) {
  for (int s = 0; s < N_STREAM; s++) {
    free(ref[s]);
    ref[s] = NULL;
  }
  ls_model_free(&model);
}

static const char *types[] = {"f32", "q8_0"};

/* Every kernel level this CPU runs (LS_KERNELS picks the level of new contexts). */
START_TEST(test_batch_rows_match_alone) {
  load(types[_i]);
  uint8_t mask[64] = {0};
  mask[1] = LS_SKIP_ATTN;
  mask[3] = LS_SKIP_FFN;
  mask[4] = LS_SKIP_ATTN | LS_SKIP_FFN;
  for (int level = LS_KL_REF; level <= LS_KL_MAX; level++) {
    const ls_kernels *k = ls_kernels_level(level);
    if (!k) continue;
    setenv("LS_KERNELS", k->name, 1);
    char what[64];
    snprintf(what, sizeof what, "%s, %s kernels", types[_i], k->name);
    check_batches(NULL, what);
    check_batches(mask, what);
  }
  unsetenv("LS_KERNELS");
  unload();
}
END_TEST

START_TEST(test_batch_errors) {
  load("f32");
  ls_err err = {0};
  ls_ctx *c;
  ls_ctx_params p = {.n_ctx = 32, .n_seq = 2, .max_batch = 8, .n_threads = 1};
  ck_assert(ls_ctx_new(&model, &p, &c, &err) == LS_OK);
  ck_assert_uint_eq(ls_ctx_kv_bytes(c), 2 * 2 * 4 * (size_t)model.cfg.n_layers * 32 * model.cfg.n_kv_heads *
                                            model.cfg.head_dim);
  ls_batch b;
  ck_assert(ls_batch_init(&b, 9, &err) == LS_OK);
  /* a position beyond the sequence's length would attend to nothing written */
  ls_batch_add(&b, 1, 1, 0, 1);
  ck_assert_int_eq(ls_decode(c, &b, NULL, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "sequence 0 at position 1") != NULL, "%s", err.msg);
  ck_assert_int_eq(ls_kv_seq_len(c, 0), 0); /* nothing changed */
  /* a gap inside the batch */
  ls_batch_clear(&b);
  ls_batch_add(&b, 1, 0, 0, 0);
  ls_batch_add(&b, 5, 2, 0, 1);
  ck_assert_int_eq(ls_decode(c, &b, NULL, &err), LS_EINVAL);
  /* an unknown sequence slot */
  ls_batch_clear(&b);
  ls_batch_add(&b, 1, 0, 2, 1);
  ck_assert_int_eq(ls_decode(c, &b, NULL, &err), LS_EINVAL);
  ck_assert_msg(strstr(err.msg, "sequence 2") != NULL, "%s", err.msg);
  /* more rows than max_batch */
  ls_batch_clear(&b);
  for (int i = 0; i < 9; i++) ls_batch_add(&b, 1, i, 0, 0);
  ck_assert_int_eq(ls_decode(c, &b, NULL, &err), LS_EINVAL);
  /* fork of more than the source holds */
  ck_assert_int_eq(ls_kv_seq_fork(c, 1, 0, 1, &err), LS_EINVAL);
  ck_assert_int_eq(ls_kv_seq_fork(c, 5, 0, 0, &err), LS_EINVAL);
  /* too many slots */
  ls_ctx *big;
  ls_ctx_params pb = {.n_ctx = 8, .n_seq = LS_MAX_SEQ + 1};
  ck_assert_int_eq(ls_ctx_new(&model, &pb, &big, &err), LS_EINVAL);
  ls_batch_free(&b);
  ls_ctx_free(c);
  unload();
}
END_TEST

/* Held positions (ls_kv_seq_hold: recorded, K/V never computed) are what
 * ls_kv_drop_held removes: every sequence keeps what it ran before its first
 * held position, forks carry the marks, and what is left is reused as before. */
START_TEST(test_drop_held) {
  load("f32");
  unsetenv("LS_KERNELS");
  reference(NULL);
  ls_err err = {0};
  ls_ctx *c;
  ls_ctx_params p = {.n_ctx = 32, .n_seq = 3, .max_batch = 8, .n_threads = 1};
  ck_assert(ls_ctx_new(&model, &p, &c, &err) == LS_OK);
  ls_batch b;
  ck_assert(ls_batch_init(&b, 8, &err) == LS_OK);
  for (int i = 0; i < 4; i++) ls_batch_add(&b, stream[A][i], i, 0, i == 3);
  ck_assert_msg(ls_decode(c, &b, NULL, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_kv_seq_hold(c, 0, stream[A], 4, 9, NULL, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(ls_kv_seq_len(c, 0), 9);
  /* held positions count as reusable tokens until dropped */
  ck_assert_int_eq(ls_kv_seq_reusable(c, 0, stream[A], 9, NULL, LS_KV_REUSE), 9);
  ck_assert_msg(ls_kv_seq_fork(c, 1, 0, 7, &err) == LS_OK, "%s", err.msg);
  /* sequence 2 runs 3 positions, holds none */
  ls_batch_clear(&b);
  for (int i = 0; i < 3; i++) ls_batch_add(&b, stream[B][i], i, 2, i == 2);
  ck_assert_msg(ls_decode(c, &b, NULL, &err) == LS_OK, "%s", err.msg);
  ls_kv_drop_held(c);
  ck_assert_int_eq(ls_kv_seq_len(c, 0), 4);
  ck_assert_int_eq(ls_kv_seq_len(c, 1), 4); /* the fork carried the marks */
  ck_assert_int_eq(ls_kv_seq_len(c, 2), 3);
  ck_assert_int_eq(ls_kv_seq_reusable(c, 0, stream[A], 9, NULL, LS_KV_REUSE), 4);
  /* running the dropped positions for real: they stay after another drop,
   * and the logits equal the stream run alone */
  ls_batch_clear(&b);
  for (int i = 4; i < 9; i++) ls_batch_add(&b, stream[A][i], i, 0, i == 8);
  ck_assert_msg(ls_decode(c, &b, NULL, &err) == LS_OK, "%s", err.msg);
  ls_kv_drop_held(c);
  ck_assert_int_eq(ls_kv_seq_len(c, 0), 9);
  ck_assert_msg(memcmp(ls_ctx_logits(c), ref[A] + (size_t)8 * vocab, sizeof(float) * vocab) == 0,
                "logits after a drop differ from the stream run alone");
  ls_batch_free(&b);
  ls_ctx_free(c);
  unload();
}
END_TEST

int main(void) {
  Suite *s = suite_create("batch");
  TCase *tc = tcase_create("stories260K");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, test_batch_rows_match_alone, 0, 2);
  tcase_add_test(tc, test_batch_errors);
  tcase_add_test(tc, test_drop_held);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
