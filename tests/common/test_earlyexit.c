/* Early exit on synthetic confidence streams: where it fires, never before `window` tokens,
 * never with threshold 0 or window 0, equality fires, and the array form agrees with the
 * streaming form. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ls_earlyexit.h"
#include "ls_test.h"

static int first_fire(ls_earlyexit *e, const float *c, int n) {
  for (int i = 0; i < n; i++)
    if (ls_ee_push(e, c[i])) return i;
  return -1;
}

START_TEST(fires_where_expected) {
  ls_earlyexit e;
  ls_err err = {0};
  ck_assert_int_eq(ls_ee_init(&e, 3, 0.5, "test", &err), LS_OK);
  /* windows: (.9,.9,.9)=.9 (.9,.9,.3)=.7 (.9,.3,.3)=.5 -> fires at index 4 */
  const float c[] = {0.9f, 0.9f, 0.9f, 0.3f, 0.3f, 0.1f};
  ck_assert_int_eq(first_fire(&e, c, 6), 4);
  ck_assert_int_eq(ls_ee_stop_index(c, 6, 3, 0.5f), 4);
  ck_assert_int_eq(ls_ee_kept_tokens(c, 6, 3, 0.5f), 5);
  /* a slightly lower threshold: (.3,.3,.1)=.2333 at index 5 */
  ck_assert_int_eq(ls_ee_stop_index(c, 6, 3, 0.49f), 5);
  /* never */
  ck_assert_int_eq(ls_ee_stop_index(c, 6, 3, 0.2f), -1);
  ck_assert_int_eq(ls_ee_kept_tokens(c, 6, 3, 0.2f), 6);
}
END_TEST

START_TEST(never_before_window) {
  /* every token is below the threshold, yet nothing fires before `window` tokens */
  float c[64];
  for (int i = 0; i < 64; i++) c[i] = 0.01f;
  for (int w = 1; w <= LS_EE_MAX_WINDOW; w++) {
    ls_earlyexit e;
    ls_err err = {0};
    ck_assert_int_eq(ls_ee_init(&e, w, 0.5, "test", &err), LS_OK);
    ck_assert_int_eq(first_fire(&e, c, 64), w - 1);
    ck_assert_int_eq(ls_ee_stop_index(c, 64, w, 0.5f), w - 1);
    ck_assert_int_eq(e.n, w);
  }
}
END_TEST

START_TEST(disabled) {
  float c[100];
  for (int i = 0; i < 100; i++) c[i] = 0.0f; /* even zero confidence */
  ls_earlyexit e;
  ls_err err = {0};
  ck_assert_int_eq(ls_ee_init(&e, 4, 0.0, "test", &err), LS_OK);
  ck_assert_int_eq(ls_ee_enabled(&e), 0);
  ck_assert_int_eq(first_fire(&e, c, 100), -1);
  ck_assert_int_eq(ls_ee_init(&e, 0, 0.9, "test", &err), LS_OK);
  ck_assert_int_eq(ls_ee_enabled(&e), 0);
  ck_assert_int_eq(first_fire(&e, c, 100), -1);
  ck_assert_int_eq(ls_ee_stop_index(c, 100, 4, 0.0f), -1);
  ck_assert_int_eq(ls_ee_stop_index(c, 100, 0, 0.9f), -1);
  ck_assert_int_eq(ls_ee_stop_index(c, 100, 4, -0.5f), -1);
  ck_assert_int_eq(ls_ee_kept_tokens(c, 100, 4, 0.0f), 100);
}
END_TEST

START_TEST(equality_fires) {
  /* mean == threshold ends the stage, for thresholds that are not exact binary fractions too */
  const float th[] = {0.5f, 0.3f, 0.1f, 0.7f, 0.33f, 1.0f};
  for (size_t k = 0; k < sizeof th / sizeof th[0]; k++)
    for (int w = 1; w <= 8; w++) {
      float c[16];
      for (int i = 0; i < 16; i++) c[i] = i < 3 ? 1.0f : th[k];
      if (th[k] == 1.0f) {
        ck_assert_int_eq(ls_ee_stop_index(c, 16, w, th[k]), w - 1);
      } else {
        /* the first window made only of th[k] ends at index 3 + w - 1 */
        int idx = ls_ee_stop_index(c, 16, w, th[k]);
        ck_assert_msg(idx == 2 + w, "threshold %g window %d: fired at %d", th[k], w, idx);
      }
      /* the same through ls_ee_init with the threshold as a double read from JSON */
      ls_earlyexit e;
      ls_err err = {0};
      ck_assert_int_eq(ls_ee_init(&e, w, (double)th[k], "test", &err), LS_OK);
      ck_assert_int_eq(first_fire(&e, c, 16), ls_ee_stop_index(c, 16, w, th[k]));
    }
  /* 0.3 given as a double (as in a schedule file) and confidences 0.3f */
  ls_earlyexit e;
  ls_err err = {0};
  ck_assert_int_eq(ls_ee_init(&e, 2, 0.3, "test", &err), LS_OK);
  ck_assert_int_eq(ls_ee_push(&e, 0.3f), 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.3f), 1);
  /* just above the threshold does not fire */
  ls_ee_reset(&e);
  ck_assert_int_eq(ls_ee_push(&e, 0.3f), 0);
  ck_assert_int_eq(ls_ee_push(&e, nextafterf(0.3f, 1.0f) + 0.0001f), 0);
}
END_TEST

START_TEST(reset_and_long_streams) {
  ls_earlyexit e;
  ls_err err = {0};
  ck_assert_int_eq(ls_ee_init(&e, 5, 0.4, "test", &err), LS_OK);
  /* a long confident stream, then a dip: fires exactly when the dip fills the window */
  enum { N = 100000 };
  float *c = malloc(N * sizeof *c);
  for (int i = 0; i < N; i++) c[i] = (i % 7 == 0) ? 0.45f : 0.95f;
  for (int i = N - 5; i < N; i++) c[i] = 0.4f;
  ck_assert_int_eq(first_fire(&e, c, N), N - 1);
  ck_assert_int_eq(ls_ee_stop_index(c, N, 5, 0.4f), N - 1);
  /* reset forgets everything: the next stage needs `window` tokens again */
  ls_ee_reset(&e);
  ck_assert_int_eq(e.n, 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.0f), 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.0f), 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.0f), 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.0f), 0);
  ck_assert_int_eq(ls_ee_push(&e, 0.0f), 1);
  free(c);

  /* streaming and array forms agree on pseudo-random streams */
  unsigned s = 12345;
  for (int trial = 0; trial < 200; trial++) {
    float r[300];
    for (int i = 0; i < 300; i++) {
      s = s * 1103515245u + 12345u;
      r[i] = (float)((s >> 8) & 0xffff) / 65535.0f;
    }
    int w = 1 + trial % 16;
    float th = 0.2f + 0.002f * (float)trial;
    ck_assert_int_eq(ls_ee_init(&e, w, th, "test", &err), LS_OK);
    int streaming = first_fire(&e, r, 300);
    ck_assert_int_eq(streaming, ls_ee_stop_index(r, 300, w, th));
    /* brute force: the first i >= w-1 with mean(r[i-w+1..i]) <= th */
    int want = -1;
    for (int i = w - 1; i < 300 && want < 0; i++) {
      double sum = 0;
      for (int j = i - w + 1; j <= i; j++) sum += r[j];
      if ((float)(sum / w) <= th) want = i;
    }
    ck_assert_int_eq(streaming, want);
  }
}
END_TEST

START_TEST(validation) {
  ls_err err = {0};
  ls_earlyexit e;
  ck_assert_int_eq(ls_ee_validate(0, 0.0, "x", &err), LS_OK);
  ck_assert_int_eq(ls_ee_validate(LS_EE_MAX_WINDOW, 1.0, "x", &err), LS_OK);
  ck_assert_int_eq(ls_ee_validate(LS_EE_MAX_WINDOW + 1, 0.5, "s.json: stage \"recall\"", &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "s.json: stage \"recall\": early-exit window 65"));
  ck_assert_int_eq(ls_ee_validate(-1, 0.5, "x", &err), LS_EINVAL);
  ck_assert_int_eq(ls_ee_validate(4, 1.5, "x", &err), LS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "threshold 1.5"));
  ck_assert_int_eq(ls_ee_validate(4, -0.1, "x", &err), LS_EINVAL);
  ck_assert_int_eq(ls_ee_validate(4, NAN, "x", &err), LS_EINVAL);
  ck_assert_int_eq(ls_ee_init(&e, 100, 0.5, "x", &err), LS_EINVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("earlyexit");
  TCase *tc = tcase_create("earlyexit");
  tcase_add_test(tc, fires_where_expected);
  tcase_add_test(tc, never_before_window);
  tcase_add_test(tc, disabled);
  tcase_add_test(tc, equality_fires);
  tcase_add_test(tc, reset_and_long_streams);
  tcase_add_test(tc, validation);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
