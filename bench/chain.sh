#!/usr/bin/env bash
# The TinyThinker OBQA chain (Recall, Analyze per option, Summarize; token caps
# 40/30/12, no stop strings: bench/obqa-capped.json) on a TinyLlama-shape Q8_0
# model written by `litestage-run synth`, side by side with llama.cpp
# (node-llama-cpp 3.21.1 from npm, installed by bench/llamacpp.sh into a scratch
# folder; driven by bench/llamacpp_chain.mjs), alternating runners each round:
#   llamacpp-fresh   every call from an empty sequence
#   llamacpp-reuse   one sequence kept between calls (common token prefix kept)
#   ours-recompute   litestage-run pipeline --kv-policy recompute
#   ours-reuse       litestage-run pipeline --kv-policy reuse (the default)
#   ours-parallel    the same with --parallel (all questions at once)
# Each round prints one row per runner (tab-separated key=value): bench=chain
# runner= model= cpu= threads= questions= s_per_question= ratio_vs_llamacpp_fresh=
# ratio_vs_llamacpp_reuse= (llama.cpp seconds / ours; >1 = ours faster) load=
# (1-minute load average before the run; the machine may be shared). Rounds alternate
# the order: llama.cpp first on odd rounds, ours first on even ones.
# Our rows also check that reuse's outputs equal recompute's (same_as_recompute=).
#
# usage: bench/chain.sh [--threads 2] [--limit 3] [--rounds 2] [--ctx 2048] [--model F.gguf]
# (--model: another GGUF with a vocabulary instead of the synth file, e.g. a quick
# check with data/models/tiny-random-gguf/llama-2-tiny-random.gguf)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/.." && pwd)"
"$src/scripts/deps.sh" --with-llamacpp  # installs missing Debian packages (root) or names them
threads=2 limit=3 rounds=2 ctx=2048 model=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --ctx) ctx="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    *) echo "chain.sh: unknown option $1 (--threads N --limit N --rounds N --ctx N)" >&2; exit 2 ;;
  esac
done
build="${LS_BENCH_BUILD:-$src/build-bench}"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_TESTS=OFF -DLS_BUILD_SEARCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target litestage-run >/dev/null
run="$build/runtime/litestage-run"
model="${model:-$build/tinyllama-shape-q8_0.gguf}"
name="$(basename "$model" .gguf)"
if [[ ! -s "$model" ]]; then
  "$run" synth -o "$model" --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000 --type q8_0 >&2
fi
pkg="$("$here/llamacpp.sh")"
data="$src/data/datasets/obqa/dev.jsonl"
tmpl="$here/obqa-capped.json"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1 | tr ' \t' '__')"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
load() { cut -d' ' -f1 /proc/loadavg; }
field() { tr '\t' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# ours: seconds per question from the pipeline's wall/example line
ours() { # policy out [--parallel N]
  "$run" pipeline -m "$model" --stages "$tmpl" --data "$data" --limit "$limit" -t "$threads" -c "$ctx" \
    --kv-policy "$1" --out "$2" -q "${@:3}" | sed -n 's/^ *wall\/example *\([0-9.]*\) ms.*/\1/p' | awk '{printf "%.3f", $1 / 1000}'
}

# one runner: llama.cpp rows are printed as they come, ours are kept (printed with the ratios
# once the round's llama.cpp times are known)
declare -A secs loadat
run_one() { # runner round
  local l; l="$(load)"
  case "$1" in
    llamacpp-fresh|llamacpp-reuse)
      local row; row="$(node "$here/llamacpp_chain.mjs" --pkg "$pkg" --model "$model" --data "$data" --limit "$limit" \
        --threads "$threads" --mode "${1#llamacpp-}" --ctx "$ctx")"
      secs[$1]="$(field "$row" s_per_question)"
      printf '%s\tmodel=%s\tcpu=%s\tround=%d\tload=%s\n' "$row" "$name" "$cpu" "$2" "$l" ;;
    ours-parallel) secs[$1]="$(ours reuse "$scratch/parallel.jsonl" --parallel "$limit")"; loadat[$1]=$l ;;
    ours-*) secs[$1]="$(ours "${1#ours-}" "$scratch/${1#ours-}.jsonl")"; loadat[$1]=$l ;;
  esac
}

runners=(llamacpp-fresh llamacpp-reuse ours-recompute ours-reuse ours-parallel)
for ((r = 1; r <= rounds; r++)); do
  # alternate: llama.cpp first on odd rounds, ours first on even ones
  order=("${runners[@]}")
  ((r % 2 == 0)) && order=(ours-recompute ours-reuse ours-parallel llamacpp-fresh llamacpp-reuse)
  for x in "${order[@]}"; do run_one "$x" "$r"; done
  for policy in recompute reuse parallel; do
    s="${secs[ours-$policy]}"
    same=-
    if [[ $policy != recompute ]]; then
      same=$(python3 -c 'import json,sys
a=[json.loads(x)["stages"] for x in open(sys.argv[1])]; b=[json.loads(x)["stages"] for x in open(sys.argv[2])]
print(int([[s["outputs"] for s in e] for e in a] == [[s["outputs"] for s in e] for e in b]))' \
        "$scratch/recompute.jsonl" "$scratch/$policy.jsonl")
    fi
    printf 'bench=chain\trunner=ours-%s\tthreads=%s\tquestions=%s\ts_per_question=%s\tratio_vs_llamacpp_fresh=%s\tratio_vs_llamacpp_reuse=%s\tsame_as_recompute=%s\tmodel=%s\tcpu=%s\tround=%d\tload=%s\n' \
      "$policy" "$threads" "$limit" "$s" "$(awk -v a="${secs[llamacpp-fresh]}" -v b="$s" 'BEGIN{printf "%.2f", a / b}')" \
      "$(awk -v a="${secs[llamacpp-reuse]}" -v b="$s" 'BEGIN{printf "%.2f", a / b}')" "$same" "$name" "$cpu" "$r" \
      "${loadat[ours-$policy]}"
  done
done
