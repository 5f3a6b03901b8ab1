# The generation memory (runtime/chain/ls_gen_memo.h: a rank replays the stage groups an earlier
# run of the same shard started under the same plans) changes nothing a search stores: with it
# (the default) and without it (LS_SEARCH_GEN_MEMO=0) the candidates' scores, per-example scores,
# predicted latencies, token counts and the chosen schedule are bit-identical, under each KV
# policy, on the OBQA template (a per-option stage; fidelity, and agreement, where the answers
# decide the scores) and the story template, at 1 rank and (with the memory) at 2 ranks. The
# memory must actually have replayed something. Sanitizer builds run the OBQA fidelity job of
# each policy (below).
source "$(dirname "$0")/lib/search_lib.sh"
obqa_job() { job_from "$LS_SOURCE_DIR/jobs/obqa-tinythinker-smoke.json" "$@"; }
same_stores() { # A B WHAT
  for ds in /reference/score /reference/predicted_ms /reference/answer /candidates/id /candidates/budget \
      /candidates/score /candidates/predicted_ms /candidates/prompt_tokens /candidates/gen_tokens /scores \
      /pareto/candidate_id; do
    h5num "$1" $ds >"$T/a"
    [ -s "$T/a" ] || fail "$ds empty ($3)"
    h5num "$2" $ds >"$T/b"
    cmp -s "$T/a" "$T/b" || fail "$ds differs with and without the generation memory ($3)"
  done
  [ "$(h5attr "$1" /schedule/candidate_id)" = "$(h5attr "$2" /schedule/candidate_id)" ] || fail "chosen candidate differs ($3)"
}
for policy in reuse recompute shared-prefix; do
  kinds="obqa-fidelity story"
  [ $policy = reuse ] && kinds="$kinds obqa-agreement" # answers decide the scores (one policy: the test is slow under ASan)
  # Under the sanitizers (LS_SANITIZED=1: 7x slower, 14 of CI's 24 minutes on an AVX2-only
  # EPYC) every policy runs its OBQA fidelity job, 1 and 2 ranks; the Release tree runs all.
  [ "${LS_SANITIZED:-0}" = 1 ] && kinds="obqa-fidelity"
  for kind in $kinds; do
    case $kind in
      obqa-fidelity) obqa_job "$T/job.json" "kv_policy=\"$policy\"" ;;
      obqa-agreement) obqa_job "$T/job.json" "kv_policy=\"$policy\"" 'objective="agreement"' 'tolerance=0.5' ;;
      story) small_job "$T/job.json" limit=6 shards=2 'budget={"min":0,"max":3}' "kv_policy=\"$policy\"" ;;
    esac
    what="$kind, $policy"
    rm -f "$T"/*.h5
    LS_SEARCH_GEN_MEMO=0 mpirun_ls -np 1 "$S" run "$T/job.json" --store "$T/off.h5" 2>"$T/off.log" || { cat "$T/off.log"; fail "no memory ($what)"; }
    if grep -q "generation memory" "$T/off.log"; then fail "LS_SEARCH_GEN_MEMO=0 still used the memory ($what)"; fi
    mpirun_ls -np 1 "$S" run "$T/job.json" --store "$T/on.h5" 2>"$T/on.log" || { cat "$T/on.log"; fail "memory ($what)"; }
    n=$(sed -n 's/.*rank 0 replayed \([0-9]*\) of [0-9]* stage groups.*/\1/p' "$T/on.log")
    [ -n "$n" ] && [ "$n" -gt 0 ] || { cat "$T/on.log"; fail "the memory replayed nothing ($what)"; }
    same_stores "$T/off.h5" "$T/on.h5" "$what, 1 rank"
    if [ $kind = obqa-fidelity ]; then
      mpirun_ls -np 2 "$S" run "$T/job.json" --store "$T/on2.h5" 2>"$T/on2.log" || { cat "$T/on2.log"; fail "memory, 2 ranks ($what)"; }
      same_stores "$T/off.h5" "$T/on2.h5" "$what, 2 ranks"
    fi
  done
done
rm -rf "$T"
echo ok
