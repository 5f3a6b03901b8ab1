/* The sampler's truncations (runtime/text/sampler.c): top-k keeps exactly the
 * k most probable tokens, top-p within them, and both leave the greedy and
 * the untruncated paths as they were. */
#include <check.h>
#include <math.h>

#include "ls_sampler.h"
#include "ls_test.h"

#define V 16
#define DRAWS 4000

/* logits with token i's probability decreasing in i, except token 5 the most likely */
static void make_logits(float *l) {
  for (int i = 0; i < V; i++) l[i] = -0.25f * (float)i;
  l[5] = 1.0f;
}

static void histogram(ls_sampler *s, const float *logits, int *count) {
  for (int i = 0; i < V; i++) count[i] = 0;
  for (int d = 0; d < DRAWS; d++) count[ls_sample(s, logits, NULL)]++;
}

START_TEST(top_k_keeps_the_k_most_probable) {
  float l[V];
  make_logits(l);
  ls_sampler s;
  ck_assert_int_eq(ls_sampler_init(&s, V, 1.0f, 1.0f, 11, NULL), LS_OK);
  int count[V];
  s.top_k = 3; /* tokens 5, 0, 1 */
  histogram(&s, l, count);
  for (int i = 0; i < V; i++) {
    int kept = i == 5 || i == 0 || i == 1;
    if (kept) ck_assert_msg(count[i] > DRAWS / 20, "token %d drawn %d times", i, count[i]);
    else ck_assert_msg(count[i] == 0, "token %d outside the top 3 drawn %d times", i, count[i]);
  }
  s.top_k = 1; /* argmax at any temperature */
  histogram(&s, l, count);
  ck_assert_int_eq(count[5], DRAWS);
  ls_sampler_free(&s);
}
END_TEST

START_TEST(top_p_applies_within_top_k) {
  float l[V];
  make_logits(l);
  ls_sampler s;
  /* p(5) = 0.40, p(0) = 0.15, p(1) = 0.11 (top 3: 0.65 of the mass). Top-p 0.7
   * of the top-3 mass (0.46) keeps tokens 5 and 0 only; 0.7 of the whole mass
   * would keep all three. */
  ck_assert_int_eq(ls_sampler_init(&s, V, 1.0f, 0.7f, 5, NULL), LS_OK);
  s.top_k = 3;
  int count[V];
  histogram(&s, l, count);
  ck_assert_int_gt(count[5], 0);
  ck_assert_int_gt(count[0], 0);
  ck_assert_int_eq(count[5] + count[0], DRAWS);
  ls_sampler_free(&s);
}
END_TEST

START_TEST(top_k_off_changes_nothing) {
  float l[V];
  make_logits(l);
  ls_sampler a, b;
  ck_assert_int_eq(ls_sampler_init(&a, V, 0.8f, 0.9f, 99, NULL), LS_OK);
  ck_assert_int_eq(ls_sampler_init(&b, V, 0.8f, 0.9f, 99, NULL), LS_OK);
  b.top_k = V; /* k >= vocabulary: no truncation */
  for (int d = 0; d < 500; d++) ck_assert_int_eq(ls_sample(&a, l, NULL), ls_sample(&b, l, NULL));
  ls_sampler_free(&a);
  ls_sampler_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sampler");
  TCase *tc = tcase_create("truncation");
  tcase_add_test(tc, top_k_keeps_the_k_most_probable);
  tcase_add_test(tc, top_p_applies_within_top_k);
  tcase_add_test(tc, top_k_off_changes_nothing);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
