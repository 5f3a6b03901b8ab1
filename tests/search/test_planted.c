/* Planted redundancy: a copy of stories260K with two extra layers whose attention and FFN output
 * projections (wo, w2) are zero computes exactly the same function. The importance ranking must
 * put exactly those four sub-layers first, and greedy (fidelity, tolerance 0) must skip all of
 * them in every stage at no loss in score. Runs the real search in-process (MPI singleton).
 * The job's KV policy is recompute: under reuse a stage whose mask differs from the stage before
 * it cannot reuse that stage's cache, so greedy (one stage at a time) rightly predicts skipping in
 * one stage alone slower than the full model, and this test is about the ranking. */
#include <check.h>
#include <mpi.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_job.h"
#include "ls_model.h"
#include "ls_profile.h"
#include "ls_schedule.h"
#include "ls_search.h"
#include "ls_test.h"
#include "ls_test_mpi.h"
#include "ls_util.h"

#define N_PLANT 2
static const int plant_at[N_PLANT] = {1, 4}; /* indices in the new model */

/* Writes `n` floats per layer for L layers into the new file, inserting planted slices. */
static void put_group(FILE *f, const float **p, int L, size_t n, int zero_planted) {
  int src = 0;
  for (int l = 0; l < L + N_PLANT; l++) {
    int planted = l == plant_at[0] || l == plant_at[1];
    const float *slice = *p + (size_t)(planted ? (src > 0 ? src - 1 : 0) : src) * n;
    if (planted && zero_planted) {
      float *z = calloc(n, sizeof *z);
      fwrite(z, sizeof *z, n, f);
      free(z);
    } else {
      fwrite(slice, sizeof(float), n, f);
    }
    if (!planted) src++;
  }
  *p += (size_t)L * n;
}

static void write_planted(const char *src_path, const char *out) {
  char *buf = NULL;
  size_t len = 0;
  ls_err err;
  ck_assert_int_eq(ls_read_file(src_path, &buf, &len, &err), LS_OK);
  int32_t h[7];
  memcpy(h, buf, sizeof h);
  int dim = h[0], hid = h[1], L = h[2], nh = h[3], nkv = h[4], vocab = abs(h[5]), seq = h[6];
  int kv = dim / nh * nkv, hs = dim / nh;
  const float *p = (const float *)(buf + sizeof h);
  FILE *f = fopen(out, "wb");
  ck_assert_ptr_nonnull(f);
  int32_t h2[7] = {dim, hid, L + N_PLANT, nh, nkv, h[5], seq};
  fwrite(h2, sizeof h2, 1, f);
  fwrite(p, sizeof(float), (size_t)vocab * dim, f);
  p += (size_t)vocab * dim;
  put_group(f, &p, L, (size_t)dim, 0);             /* rms_att */
  put_group(f, &p, L, (size_t)dim * dim, 0);       /* wq */
  put_group(f, &p, L, (size_t)dim * kv, 0);        /* wk */
  put_group(f, &p, L, (size_t)dim * kv, 0);        /* wv */
  put_group(f, &p, L, (size_t)dim * dim, 1);       /* wo: zero in planted layers */
  put_group(f, &p, L, (size_t)dim, 0);             /* rms_ffn */
  put_group(f, &p, L, (size_t)hid * dim, 0);       /* w1 */
  put_group(f, &p, L, (size_t)dim * hid, 1);       /* w2: zero in planted layers */
  put_group(f, &p, L, (size_t)hid * dim, 0);       /* w3 */
  size_t rest = len - (size_t)((const char *)p - buf); /* rms_final, freq_cis, (wcls) */
  (void)hs;
  fwrite(p, 1, rest, f);
  fclose(f);
  free(buf);
}

/* The measured profile is real (this model's fingerprint and shape), but its times are a busy
 * machine's: a sub-layer measured at ~0 ms (clamped) would make skipping it look free of gain,
 * and the pick would then depend on the load. The test is about the ranking and the pick, so
 * every sub-layer gets a fixed positive cost (attention growing with the context). */
static void make_costs_deterministic(ls_profile *p) {
  for (int i = 0; i < p->n_dec; i++) {
    p->dec_attn_ms[i] = 0.010 + 0.0001 * p->dec_ctx[i];
  }
  p->dec_ffn_ms = 0.020;
  p->dec_fixed_ms = 0.050;
  for (int i = 0; i < p->n_pre; i++) {
    p->pre_attn_ms_per_token[i] = 0.002 + 0.00001 * p->pre_tokens[i];
    p->pre_ffn_ms_per_token[i] = 0.004;
    p->pre_fixed_ms_per_token[i] = 0.001;
  }
}

START_TEST(test_planted_layers_ranked_first_and_skipped) {
  const char *dir = ls_test_tmpdir();
  char model[1024], prof_path[1024], job[1024], store[1024];
  snprintf(model, sizeof model, "%s/planted.bin", dir);
  snprintf(prof_path, sizeof prof_path, "%s/planted.profile.json", dir);
  snprintf(job, sizeof job, "%s/planted.json", dir);
  snprintf(store, sizeof store, "%s/planted.h5", dir);
  write_planted(ls_test_data("models/stories260K/stories260K.bin"), model);

  ls_err err = {0};
  ls_model m;
  memset(&m, 0, sizeof m);
  ck_assert_msg(ls_model_load(&m, model, NULL, &err) == LS_OK, "%s", err.msg);
  ck_assert_int_eq(m.cfg.n_layers, 7);
  ls_profile prof;
  memset(&prof, 0, sizeof prof);
  ls_profile_opts po = {.n_threads = 1, .reps = 3, .n_ctx_list = 2, .ctx_list = {16, 128},
                        .n_batch_list = 2, .batch_list = {8, 64}};
  ck_assert_msg(ls_profile_measure(&prof, &m, &po, &err) == LS_OK, "%s", err.msg);
  make_costs_deterministic(&prof);
  ck_assert_msg(ls_profile_save(&prof, prof_path, &err) == LS_OK, "%s", err.msg);
  ls_profile_free(&prof);
  ls_model_free(&m);

  FILE *f = fopen(job, "w");
  fprintf(f,
          "{\"name\": \"planted\", \"model\": \"%s\", \"tokenizer\": \"%s\", \"template\": \"%s\",\n"
          " \"dataset\": {\"path\": \"%s\", \"format\": \"stories\"}, \"limit\": 4, \"shards\": 2,\n"
          " \"objective\": \"fidelity\", \"tolerance\": 0, \"strategy\": \"greedy\", \"budget\": {\"min\": 0, \"max\": 6},\n"
          " \"threads\": 1, \"latency\": \"%s\", \"seed\": 1, \"max_new_tokens\": 16, \"kv_policy\": \"recompute\"}\n",
          model, ls_test_data("models/stories260K/tok512.bin"), ls_test_data("templates/story.json"),
          ls_test_data("corpora/tinystories_val_subset.txt"), prof_path);
  fclose(f);
  ls_job *j = NULL;
  ck_assert_msg(ls_job_load(job, &j, &err) == LS_OK, "%s", err.msg);
  ck_assert_msg(ls_job_validate(j, &err) == LS_OK, "%s", err.msg);
  static volatile sig_atomic_t stop = 0;
  ls_search_opts o = {.store_path = store, .quiet = 1};
  ck_assert_msg(ls_search_run(j, &o, MPI_COMM_WORLD, &stop, &err) == LS_OK, "%s", err.msg);
  ls_job_free(j);

  hid_t h5 = H5Fopen(store, H5F_ACC_RDONLY, H5P_DEFAULT);
  ck_assert_int_ge(h5, 0);
  int32_t ranking[14];
  hid_t d = H5Dopen2(h5, "importance/ranking", H5P_DEFAULT);
  ck_assert_int_ge(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ranking), 0);
  H5Dclose(d);
  int planted_sub[4] = {2 * plant_at[0], 2 * plant_at[0] + 1, 2 * plant_at[1], 2 * plant_at[1] + 1};
  for (int k = 0; k < 4; k++) {
    int found = 0;
    for (int q = 0; q < 4; q++) found |= ranking[k] == planted_sub[q];
    ck_assert_msg(found, "ranking[%d] = sub-layer %d is not a planted one", k, ranking[k]);
  }
  d = H5Dopen2(h5, "schedule", H5P_DEFAULT);
  ck_assert_int_ge(d, 0);
  hid_t t = H5Dget_type(d);
  size_t n = H5Tget_size(t);
  char *json = calloc(n + 1, 1);
  ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, json), 0);
  H5Tclose(t);
  H5Dclose(d);
  H5Fclose(h5);
  ls_schedule *s = NULL;
  ck_assert_msg(ls_schedule_parse(json, store, &s, &err) == LS_OK, "%s", err.msg);
  free(json);
  ck_assert_msg(s->achieved_score == s->reference_score, "score %.17g vs reference %.17g", s->achieved_score,
                s->reference_score);
  for (int st = 0; st < s->n_stages; st++) {
    uint8_t mask[7];
    ck_assert_msg(ls_sched_stage_mask(&s->stages[st], 7, mask, &err) == LS_OK, "%s", err.msg);
    for (int q = 0; q < N_PLANT; q++)
      ck_assert_msg(mask[plant_at[q]] == 3, "stage %d does not skip planted layer %d (mask %d)", st, plant_at[q],
                    mask[plant_at[q]]);
  }
  ls_schedule_free(s);
}
END_TEST

int main(int argc, char **argv) {
  Suite *s = suite_create("planted");
  TCase *tc = tcase_create("planted");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_planted_layers_ranked_first_and_skipped);
  suite_add_tcase(s, tc);
  return ls_test_run_mpi(s, &argc, &argv);
}
