/* The search method (ls_search.h, docs/search.md): one run, from opening the model to closing
 * the store; its steps live beside it (search_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_schedule.h"
#include "ls_util.h"
#include "search_internal.h"

static int gather_hosts(searcher *s, char *hosts, size_t n) {
  char name[MPI_MAX_PROCESSOR_NAME] = "";
  int len = 0;
  MPI_Get_processor_name(name, &len);
  char *all = calloc((size_t)s->dist.size, MPI_MAX_PROCESSOR_NAME);
  if (!all) return -1;
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, s->dist.comm);
  hosts[0] = 0;
  if (s->dist.rank == 0) {
    for (int r = 0; r < s->dist.size; r++) {
      const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
      int seen = 0;
      for (int q = 0; q < r; q++) seen |= strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0;
      if (!seen) {
        if (hosts[0]) strncat(hosts, ",", n - strlen(hosts) - 1);
        strncat(hosts, h, n - strlen(hosts) - 1);
      }
    }
  }
  free(all);
  MPI_Bcast(hosts, (int)n, MPI_CHAR, 0, s->dist.comm);
  return 0;
}

/* KV cache one rank gives to running a shard's examples together, and the most examples at once. */
#define LS_SEARCH_KV_BUDGET ((size_t)512 << 20)
#define LS_SEARCH_MAX_LANES 8

/* The engine, with one KV slot per call of the widest stage (a per-option stage's calls run
 * together) times the examples a shard runs at once (s->lanes): as many as a shard has, at most
 * LS_SEARCH_MAX_LANES and what LS_SEARCH_KV_BUDGET holds; one at a time when latency is measured
 * (a wall time means something for an example alone). The lanes depend on the job and the model,
 * not on the rank count. */
static int open_engine(searcher *s, ls_err *err) {
  ls_job *j = s->job;
  int per = 1;
  for (int st = 0; st < s->S; st++)
    for (int i = 0; s->tpl->stages[st].per_option && i < s->E; i++)
      if (s->ds->ex[i].n_options > per) per = s->ds->ex[i].n_options;
  if (per > LS_MAX_SEQ)
    return ls_err_set(err, LS_EINVAL, "%s: an example has %d options (at most %d)", j->dataset, per, LS_MAX_SEQ);
  ls_engine_params p = {.model_path = j->model, .tokenizer_path = j->tokenizer, .n_threads = j->threads,
                        .temperature = 0.0f, .top_p = 1.0f, .seed = j->seed, .need_tokenizer = 1,
                        .fingerprint = 1, .kv_policy = j->kv_policy, .n_seq = per,
                        /* ranks on one node share the file's page cache; N private
                         * copies would multiply the weights' memory (LS_WEIGHTS=copy
                         * overrides) */
                        .weights = getenv("LS_WEIGHTS") ? LS_WEIGHTS_AUTO : LS_WEIGHTS_MAP};
  LS_TRY(ls_engine_open(&s->eng, &p, err));
  s->have_eng = 1;
  int shard = (s->E + j->shards - 1) / j->shards;
  size_t lane_bytes = ls_ctx_kv_bytes(s->eng.ctx);
  s->lanes = j->latency_measured ? 1 : shard < LS_SEARCH_MAX_LANES ? shard : LS_SEARCH_MAX_LANES;
  while (s->lanes > 1 && ((size_t)s->lanes * lane_bytes > LS_SEARCH_KV_BUDGET || s->lanes * per > LS_MAX_SEQ))
    s->lanes--;
  if (s->lanes == 1) return LS_OK;
  ls_engine_close(&s->eng);
  s->have_eng = 0;
  p.n_seq = per * s->lanes;
  LS_TRY(ls_engine_open(&s->eng, &p, err));
  s->have_eng = 1;
  return LS_OK;
}

static int open_all(searcher *s, ls_err *err) {
  ls_job *j = s->job;
  LS_TRY(ls_template_load(j->template_path, &s->tpl, err));
  s->S = s->tpl->n_stages;
  if (s->S > LS_SEARCH_MAX_STAGES) return ls_err_set(err, LS_EUNSUPPORTED, "%s: more than %d stages", j->template_path, LS_SEARCH_MAX_STAGES);
  if (j->max_new_tokens > 0)
    for (int st = 0; st < s->S; st++)
      if (s->tpl->stages[st].max_new_tokens > j->max_new_tokens) s->tpl->stages[st].max_new_tokens = j->max_new_tokens;
  LS_TRY(ls_dataset_load(j->dataset, j->dataset_format, &s->ds, err));
  LS_TRY(ls_dataset_select(s->ds, j->limit, 0, 1, err));
  s->E = s->ds->n;
  LS_TRY(open_engine(s, err));
  s->L = s->eng.model.cfg.n_layers;
  ls_stage_memo_init(&s->memo, s->L);
  ls_gen_memo_init(&s->gen_memo, s->L);
  /* measured latency cannot be remembered; LS_SEARCH_GEN_MEMO=0 turns the memory off (the tests
   * compare the stores with and without it) */
  const char *gm = getenv("LS_SEARCH_GEN_MEMO");
  s->use_gen_memo = !j->latency_measured && !(gm && strcmp(gm, "0") == 0);
  if (!j->latency_measured) {
    LS_TRY(ls_profile_load(&s->prof, j->latency, err));
    s->have_prof = 1;
    LS_TRY(ls_profile_check_model(&s->prof, &s->eng.model, NULL, j->latency, err));
  }
  return LS_OK;
}

static int run(searcher *s, ls_err *err) {
  ls_job *j = s->job;
  LS_TRY(open_all(s, err));
  s->ranking = calloc((size_t)2 * s->L, sizeof *s->ranking);
  s->cand_scores = calloc((size_t)s->E + 1, sizeof *s->cand_scores);
  if (!s->ranking || !s->cand_scores) return ls_err_set(err, LS_ENOMEM, "out of memory");
  char hosts[4096];
  if (gather_hosts(s, hosts, sizeof hosts) < 0) return ls_err_set(err, LS_ENOMEM, "out of memory");
  const char *stage_names[LS_SEARCH_MAX_STAGES];
  for (int st = 0; st < s->S; st++) stage_names[st] = s->tpl->stages[st].name;
  ls_store_info info = {.job_json = j->text, .job_hash = j->hash, .job_path = j->path,
                        .model_fingerprint = s->eng.fingerprint, .model_name = s->eng.model.name,
                        .objective = ls_objective_name(j->objective), .strategy = ls_strategy_name(j->strategy),
                        .n_stages = s->S, .n_layers = s->L, .n_examples = s->E, .n_shards = j->shards,
                        .ranks = s->dist.size, .threads = j->threads, .hosts = hosts, .stage_names = stage_names};
  if (s->opts->resume) {
    ls_cand *loaded = NULL;
    int64_t nl = 0;
    int rc = ls_store_resume(&s->store, s->opts->store_path, s->dist.comm, &info, &loaded, &nl, err);
    s->have_store = s->store.file >= 0; /* closed (and PATH.work removed) on the way out */
    if (rc != LS_OK && !s->have_store) ls_store_abandon(&s->store);
    LS_TRY(rc);
    for (int64_t i = 0; i < nl; i++) {
      int rc = ls_search_add_known(s, &loaded[i], err);
      if (rc != LS_OK) {
        free(loaded);
        return rc;
      }
    }
    free(loaded);
    if (s->dist.rank == 0)
      fprintf(stderr, "litestage-search: resuming %s: %lld finished candidates will not be evaluated again\n",
              s->opts->store_path, (long long)nl);
  } else {
    int rc = ls_store_create(&s->store, s->opts->store_path, s->dist.comm, &info, s->opts->force, err);
    s->have_store = s->store.file >= 0;
    if (rc != LS_OK && !s->have_store) ls_store_abandon(&s->store);
    LS_TRY(rc);
  }
  s->t0 = ls_now_ms();
  if (s->dist.rank == 0 && !s->opts->quiet)
    fprintf(stderr, "litestage-search: reference pass over %d examples (%d stages)\n", s->E, s->S);
  LS_TRY(ls_search_reference_pass(s, err));
  int32_t gold[s->E > 0 ? s->E : 1];
  const char *ids[s->E > 0 ? s->E : 1];
  for (int i = 0; i < s->E; i++) {
    gold[i] = s->ds->ex[i].answer;
    ids[i] = s->ds->ex[i].id;
  }
  LS_TRY(ls_store_write_reference(&s->store, s->ref_sum, ids, gold, s->ref_score, s->chance, s->target,
                                  s->stage_order, err));
  if (j->objective == LS_OBJ_ACCURACY) {
    /* chance level: not above uniform guessing by two binomial standard deviations */
    double sd = sqrt(s->chance * (1 - s->chance) / s->E);
    if (s->ref_score <= s->chance + 2 * sd) {
      LS_TRY(ls_store_set_status(&s->store, "chance-level", err));
      return ls_err_set(err, LS_ECHANCE,
                        "%s: the full model's accuracy %.4f is at chance level (%.4f + 2 sd = %.4f over %d examples): "
                        "there is nothing to preserve; use a model that can answer these questions, or the "
                        "agreement or fidelity objective",
                        j->path, s->ref_score, s->chance, s->chance + 2 * sd, s->E);
    }
  }
  int n2 = 2 * s->L;
  double *per_stage = calloc((size_t)s->S * n2, sizeof(double)), *acc = calloc((size_t)n2, sizeof(double));
  int32_t *psr = calloc((size_t)s->S * n2, sizeof(int32_t));
  int rc = !per_stage || !acc || !psr ? ls_err_set(err, LS_ENOMEM, "out of memory") : LS_OK;
  double t_imp = ls_now_ms();
  if (rc == LS_OK) rc = ls_search_importance_pass(s, per_stage, acc, psr, err);
  if (rc == LS_OK && s->dist.rank == 0 && !s->opts->quiet)
    fprintf(stderr, "litestage-search: importance pass in %.2f s\n", (ls_now_ms() - t_imp) / 1000.0);
  if (rc == LS_OK) rc = ls_store_write_importance(&s->store, per_stage, acc, s->ranking, psr, err);
  free(per_stage);
  free(acc);
  free(psr);
  LS_TRY(rc);
  if (s->dist.rank == 0 && !s->opts->quiet) {
    fprintf(stderr, "litestage-search: reference score %.4f, target %.4f; importance ranking:", s->ref_score, s->target);
    for (int k = 0; k < n2 && k < 12; k++) {
      char name[32];
      ls_sublayer_index_name(s->ranking[k], name, sizeof name);
      fprintf(stderr, " %s", name);
    }
    fprintf(stderr, "%s\n", n2 > 12 ? " ..." : "");
  }
  int range = j->budget_max - j->budget_min + 1;
  int64_t grid = (int64_t)j->n_windows * j->n_thresholds;
  if (j->strategy == LS_STRAT_GREEDY) {
    /* every stage after the first starts from the candidate already chosen: one repeat each */
    s->expected_total = (int64_t)s->S * range - (s->S - 1) + grid;
  } else {
    s->expected_total = grid;
    int64_t t = 1;
    for (int st = 0; st < s->S; st++) t *= range;
    s->expected_total += t;
  }
  ls_cand best;
  LS_TRY(j->strategy == LS_STRAT_GREEDY ? ls_search_greedy(s, &best, err) : ls_search_exhaustive(s, &best, err));
  LS_TRY(ls_search_early_exit_sweep(s, &best, err));
  /* the full model as a candidate, for the speedup (usually already evaluated) */
  ls_cand full;
  ls_search_base_cand(s, &full, LS_CAND_BUDGET);
  for (int st = 0; st < s->S; st++) full.budget[st] = 0;
  const ls_cand *fk = ls_search_find_known(s, &full);
  int64_t *front = NULL;
  int nf = 0;
  LS_TRY(ls_search_pareto(s, &front, &nf, err));
  uint8_t *masks = calloc((size_t)s->S * s->L, 1);
  char *json = NULL;
  rc = masks ? LS_OK : ls_err_set(err, LS_ENOMEM, "out of memory");
  if (rc == LS_OK) {
    ls_search_masks_for(s, best.budget, masks);
    rc = ls_search_make_schedule(s, &best, masks, fk, &json, err);
  }
  if (rc == LS_OK) rc = ls_store_finish(&s->store, front, nf, json, best.id, "complete", err);
  if (rc == LS_OK && s->dist.rank == 0 && !s->opts->quiet && s->use_gen_memo)
    fprintf(stderr, "litestage-search: rank 0 replayed %lld of %lld stage groups from its generation memory (%lld without "
                    "prefill; %d runs, %.1f MB held)\n",
            (long long)s->gen_memo.groups_replayed, (long long)(s->gen_memo.groups_replayed + s->gen_memo.groups_run),
            (long long)s->gen_memo.groups_held,
            s->gen_memo.n_runs, (double)s->gen_memo.bytes / 1e6);
  if (rc == LS_OK && s->dist.rank == 0) {
    char d[256];
    ls_search_describe(s, &best, d, sizeof d);
    fprintf(stderr, "litestage-search: done in %.3f s: chose candidate #%lld (%s): score %.4f (target %.4f), %.2f ms%s\n",
            (ls_now_ms() - s->t0) / 1000.0, (long long)best.id, d, best.score, s->target, ls_search_cand_latency(s, &best),
            j->latency_measured ? " measured" : " predicted");
  }
  free(front);
  free(masks);
  free(json);
  return rc;
}

/* After the collective close every rank is here with an error: if all hold the same one (store
 * and round errors are agreed), only rank 0 keeps the message, so that it is printed once. */
static void report_once(const searcher *s, int rc, ls_err *err) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(uint32_t)rc, lo = 0, hi = 0;
  for (const char *p = err->msg; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  if (MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, s->dist.comm) != MPI_SUCCESS ||
      MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, s->dist.comm) != MPI_SUCCESS)
    return;
  if (lo == hi && s->dist.rank != 0) err->msg[0] = 0;
}

int ls_search_run(ls_job *job, const ls_search_opts *o, MPI_Comm comm, volatile sig_atomic_t *stop, ls_err *err) {
  searcher s;
  memset(&s, 0, sizeof s);
  s.job = job;
  s.opts = o;
  int rc = ls_dist_init(&s.dist, comm, stop, err);
  if (rc == LS_OK) rc = run(&s, err);
  /* make every rank agree on the outcome before touching the store collectively */
  if (rc != LS_EMPI && s.have_store) {
    if (rc == LS_EINTERRUPTED) {
      ls_err e2 = {0};
      ls_store_set_status(&s.store, "interrupted", &e2);
    } else if (rc != LS_OK && rc != LS_ECHANCE) {
      ls_err e2 = {0};
      ls_store_set_status(&s.store, "failed", &e2);
    }
    ls_err e3 = {0};
    int crc = ls_store_close(&s.store, &e3);
    if (rc == LS_OK && crc != LS_OK) {
      rc = crc;
      *err = e3;
    }
    if (rc != LS_OK && rc != LS_EINTERRUPTED && rc != LS_ECHANCE) report_once(&s, rc, err);
  } else if (s.have_store) {
    ls_store_abandon(&s.store);
  }
  if (s.ref)
    for (int i = 0; i < s.E; i++) ls_example_result_free(&s.ref[i]);
  free(s.ref);
  free(s.ref_sum);
  free(s.ranking);
  free(s.cand_scores);
  free(s.known);
  ls_stage_memo_free(&s.memo);
  ls_gen_memo_free(&s.gen_memo);
  if (s.have_prof) ls_profile_free(&s.prof);
  if (s.ds) ls_dataset_free(s.ds);
  if (s.tpl) ls_template_free(s.tpl);
  if (s.have_eng) ls_engine_close(&s.eng);
  return rc;
}
