#include "ls_earlyexit.h"

#include <math.h>

int ls_ee_validate(int window, double threshold, const char *where, ls_err *err) {
  if (window < 0 || window > LS_EE_MAX_WINDOW)
    return ls_err_set(err, LS_EINVAL, "%s: early-exit window %d is out of range (0..%d, 0 = off)", where, window,
                      LS_EE_MAX_WINDOW);
  if (!isfinite(threshold) || threshold < 0.0 || threshold > 1.0)
    return ls_err_set(err, LS_EINVAL, "%s: early-exit threshold %g is out of range (0..1, 0 = off)", where,
                      threshold);
  return LS_OK;
}

int ls_ee_init(ls_earlyexit *e, int window, double threshold, const char *where, ls_err *err) {
  LS_TRY(ls_ee_validate(window, threshold, where, err));
  e->window = window;
  e->threshold = (float)threshold;
  ls_ee_reset(e);
  return LS_OK;
}

void ls_ee_reset(ls_earlyexit *e) {
  e->n = 0;
  for (int i = 0; i < LS_EE_MAX_WINDOW; i++) e->ring[i] = 0.0f;
}

int ls_ee_enabled(const ls_earlyexit *e) { return e->window > 0 && e->threshold > 0.0f; }

/* Mean of the last `window` entries, oldest first, in double, rounded to float. */
static float window_mean(const ls_earlyexit *e) {
  double sum = 0.0;
  for (int k = e->n - e->window; k < e->n; k++) sum += (double)e->ring[k % e->window];
  return (float)(sum / (double)e->window);
}

int ls_ee_push(ls_earlyexit *e, float confidence) {
  if (!ls_ee_enabled(e)) return 0;
  e->ring[e->n % e->window] = confidence;
  e->n++;
  /* e->n can only overflow after 2^31 tokens; keep it in range anyway */
  if (e->n == 2 * LS_EE_MAX_WINDOW * 1024 * 1024) e->n -= (e->n / e->window - 2) * e->window;
  if (e->n < e->window) return 0;
  return window_mean(e) <= e->threshold;
}

int ls_ee_stop_index(const float *conf, int n, int window, float threshold) {
  if (window <= 0 || window > LS_EE_MAX_WINDOW || !(threshold > 0.0f)) return -1;
  ls_earlyexit e;
  e.window = window;
  e.threshold = threshold;
  ls_ee_reset(&e);
  for (int i = 0; i < n; i++)
    if (ls_ee_push(&e, conf[i])) return i;
  return -1;
}

int ls_ee_kept_tokens(const float *conf, int n, int window, float threshold) {
  int i = ls_ee_stop_index(conf, n, window, threshold);
  return i < 0 ? n : i + 1;
}
