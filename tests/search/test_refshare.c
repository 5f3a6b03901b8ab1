/* Reference runs shared between ranks (search/ls_refshare.h): pack/unpack keep every field of
 * the examples a rank computed, reject truncated or repeated data, and the all-gather (here on
 * a one-rank world) leaves every example present or names the missing one. */
#include <check.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_refshare.h"
#include "ls_test.h"
#include "ls_test_mpi.h"
#include "ls_search.h"

/* A synthetic run: example i has 1 + i%3 stages, stage s has 1 + s calls of varying lengths. */
static void make_run(ls_example_result *e, int i) {
  memset(e, 0, sizeof *e);
  e->n_stages = 1 + i % 3;
  e->answer = i % 2 ? -1 : i;
  e->correct = i % 3 - 1;
  e->total_ms = 1.25 * i + 0.1;
  e->stages = calloc((size_t)e->n_stages, sizeof *e->stages);
  for (int s = 0; s < e->n_stages; s++) {
    ls_stage_result *st = &e->stages[s];
    st->n_calls = 1 + s;
    st->calls = calloc((size_t)st->n_calls, sizeof *st->calls);
    st->prompt_tokens = 10 * i + s;
    st->n_generated = 3 * s + i;
    st->early_exits = s;
    st->sublayers_executed = 7 - s;
    st->reused_tokens = 4 * s + i;
    st->prefill_ms = 0.5 * s + i;
    st->decode_ms = 2.5 * s - i;
    for (int k = 0; k < st->n_calls; k++) {
      ls_call_result *c = &st->calls[k];
      c->n_prompt = 1 + 5 * k + i;
      c->n_generated = (i + k + s) % 4; /* includes empty outputs */
      c->prompt_tokens = malloc(sizeof(int) * (size_t)c->n_prompt);
      c->tokens = malloc(sizeof(int) * (size_t)(c->n_generated ? c->n_generated : 1));
      for (int t = 0; t < c->n_prompt; t++) c->prompt_tokens[t] = 1000 * i + 100 * s + t;
      for (int t = 0; t < c->n_generated; t++) c->tokens[t] = 7 * t + k;
      if ((i + k) % 3 == 0) {
        c->text = NULL;
      } else {
        c->text = malloc(32);
        snprintf(c->text, 32, (i + k) % 3 == 1 ? "" : "out %d.%d.%d", i, s, k);
      }
      c->prefill_ms = 0.125 * k;
      c->decode_ms = 0.25 * k + s;
      c->stop = k % 3;
      c->n_reused = c->n_prompt / 2;
      c->n_cached = c->n_prompt / 3;
    }
  }
}

static void assert_same(const ls_example_result *a, const ls_example_result *b) {
  ck_assert_int_eq(a->n_stages, b->n_stages);
  ck_assert_int_eq(a->answer, b->answer);
  ck_assert_int_eq(a->correct, b->correct);
  ck_assert(a->total_ms == b->total_ms);
  for (int s = 0; s < a->n_stages; s++) {
    const ls_stage_result *x = &a->stages[s], *y = &b->stages[s];
    ck_assert_int_eq(x->n_calls, y->n_calls);
    ck_assert_int_eq(x->prompt_tokens, y->prompt_tokens);
    ck_assert_int_eq(x->n_generated, y->n_generated);
    ck_assert_int_eq(x->early_exits, y->early_exits);
    ck_assert_int_eq(x->sublayers_executed, y->sublayers_executed);
    ck_assert_int_eq(x->reused_tokens, y->reused_tokens);
    ck_assert(x->prefill_ms == y->prefill_ms && x->decode_ms == y->decode_ms);
    for (int k = 0; k < x->n_calls; k++) {
      const ls_call_result *c = &x->calls[k], *d = &y->calls[k];
      ck_assert_int_eq(c->n_prompt, d->n_prompt);
      ck_assert_int_eq(c->n_generated, d->n_generated);
      ck_assert_int_eq(c->stop, d->stop);
      ck_assert_int_eq(c->n_reused, d->n_reused);
      ck_assert_int_eq(c->n_cached, d->n_cached);
      ck_assert(c->prefill_ms == d->prefill_ms && c->decode_ms == d->decode_ms);
      ck_assert_mem_eq(c->prompt_tokens, d->prompt_tokens, sizeof(int) * (size_t)c->n_prompt);
      if (c->n_generated) ck_assert_mem_eq(c->tokens, d->tokens, sizeof(int) * (size_t)c->n_generated);
      ck_assert_int_eq(c->text == NULL, d->text == NULL);
      if (c->text) ck_assert_str_eq(c->text, d->text);
    }
  }
}

#define N 5

START_TEST(test_pack_unpack_subset) {
  ls_example_result src[N], dst[N];
  memset(dst, 0, sizeof dst);
  for (int i = 0; i < N; i++) make_run(&src[i], i);
  uint8_t mine[N] = {1, 0, 1, 1, 0};
  char *buf = NULL;
  size_t len = 0;
  ls_err err = {0};
  ck_assert_int_eq(ls_ref_pack(src, N, mine, &buf, &len, &err), LS_OK);
  ck_assert_uint_gt(len, 0);
  ck_assert_msg(ls_ref_unpack(buf, len, dst, N, &err) == LS_OK, "%s", err.msg);
  for (int i = 0; i < N; i++) {
    if (mine[i])
      assert_same(&src[i], &dst[i]);
    else
      ck_assert_ptr_null(dst[i].stages);
  }
  /* the same examples again: refused (each example comes from exactly one rank) */
  ck_assert_int_eq(ls_ref_unpack(buf, len, dst, N, &err), LS_EFORMAT);
  ck_assert_ptr_nonnull(strstr(err.msg, "repeated"));
  for (int i = 0; i < N; i++) ls_example_result_free(&dst[i]);
  /* the buffer is the examples one after the other: a cut between two of them is a shorter
   * valid buffer, a cut anywhere else an error (never a crash or a leak) */
  size_t ends[N], n_ends = 0, at = 0;
  for (int i = 0; i < N; i++) {
    if (!mine[i]) continue;
    uint8_t one[N] = {0};
    one[i] = 1;
    char *b1 = NULL;
    size_t l1 = 0;
    ck_assert_int_eq(ls_ref_pack(src, N, one, &b1, &l1, &err), LS_OK);
    ck_assert_mem_eq(b1, buf + at, l1);
    free(b1);
    at += l1;
    ends[n_ends++] = at;
  }
  ck_assert_uint_eq(at, len);
  for (size_t cut = 1; cut < len; cut++) {
    int boundary = 0;
    for (size_t k = 0; k < n_ends; k++) boundary |= ends[k] == len - cut;
    ls_example_result part[N];
    memset(part, 0, sizeof part);
    ck_assert_int_eq(ls_ref_unpack(buf, len - cut, part, N, &err), (boundary ? LS_OK : LS_EFORMAT));
    for (int i = 0; i < N; i++) ls_example_result_free(&part[i]);
  }
  /* an index outside the array */
  ls_example_result few[2];
  memset(few, 0, sizeof few);
  ck_assert_int_eq(ls_ref_unpack(buf, len, few, 2, &err), LS_EFORMAT);
  for (int i = 0; i < 2; i++) ls_example_result_free(&few[i]);
  free(buf);
  for (int i = 0; i < N; i++) ls_example_result_free(&src[i]);
}
END_TEST

START_TEST(test_allgather_one_rank) {
  ls_example_result ref[N], copy[N];
  for (int i = 0; i < N; i++) {
    make_run(&ref[i], i);
    make_run(&copy[i], i);
  }
  uint8_t all[N] = {1, 1, 1, 1, 1};
  ls_err err = {0};
  ck_assert_msg(ls_ref_allgather(MPI_COMM_WORLD, ref, N, all, &err) == LS_OK, "%s", err.msg);
  for (int i = 0; i < N; i++) assert_same(&copy[i], &ref[i]);
  /* an example nobody computed is named */
  ls_example_result_free(&ref[3]);
  uint8_t most[N] = {1, 1, 1, 0, 1};
  ck_assert_int_eq(ls_ref_allgather(MPI_COMM_WORLD, ref, N, most, &err), LS_ESTATE);
  ck_assert_ptr_nonnull(strstr(err.msg, "example 3"));
  for (int i = 0; i < N; i++) {
    ls_example_result_free(&ref[i]);
    ls_example_result_free(&copy[i]);
  }
}
END_TEST

int main(int argc, char **argv) {
  Suite *s = suite_create("refshare");
  TCase *tc = tcase_create("refshare");
  tcase_add_test(tc, test_pack_unpack_subset);
  tcase_add_test(tc, test_allgather_one_rank);
  suite_add_tcase(s, tc);
  return ls_test_run_mpi(s, &argc, &argv);
}
