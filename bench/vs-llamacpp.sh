#!/usr/bin/env bash
# LiteStage against llama.cpp on this machine, in one run: CPU model and SIMD
# flags, measured memory read bandwidth (the decode roofline), and for the
# TinyLlama-shape Q8_0 and Q4_0 synth GGUF files at 1 and 2 threads: our and
# llama.cpp's decode (64 tokens after a 16-token prompt) and prefill-256
# tok/s on the same file, alternating (ours first on odd rounds, llama.cpp
# first on even ones), --reps rounds, medians; then the small-batch step
# cost (a forward call of 4 rows against 1 row).
#
# usage: bench/vs-llamacpp.sh [--reps 3] [--threads 1,2] [--types q8_0,q4_0] [--no-llamacpp]
# --types: any `litestage-run synth --type` (q8_0, q4_0, f16, bf16, q4_k, q6_k, q4_k_m: Q4_K
# with llama-quantize's Q6_K tensors, see docs/formats-gguf.md), one TinyLlama-shape file each
# (f16: 2.2 GB, llama.cpp reads it as written).
# Raw rows and the summary go to bench/results-vs-HOST.tsv; the summary rows
# (bench=vs, tab-separated key=value) are printed last:
#   what=decode|prefill type= cpu= threads= ours_tok_s= llamacpp_tok_s= ratio=
#   bw_gb_s= (median read bandwidth at that thread count, over the sample at
#   the start and one at the start of every round) bw_span= (their min-max)
#   mb_tok= (weights streamed per token) roofline_tok_s= (bw / bytes per
#   token) ours_roofline= llamacpp_roofline= (decode tok/s as a fraction of
#   the roofline) ours_roofline_rounds= llamacpp_roofline_rounds= (min-max
#   over rounds of each round's decode against its own bandwidth sample: on
#   a host whose bandwidth drifts, the fraction to trust) load=
#   what=step rows=N x_1row= (median step time against the 1-row step)
# Shared machine: each row carries the load average; compare only rows of
# one run. llama.cpp comes from bench/llamacpp.sh (node-llama-cpp 3.21.1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(dirname "$here")"
"$src/scripts/deps.sh" --with-llamacpp  # installs missing Debian packages (root) or names them
build="${LS_BENCH_BUILD:-$src/build-bench}"
reps=3 threads=1,2 types=q8_0,q4_0 llama=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    --no-llamacpp) llama=0; shift ;;
    *) echo "vs-llamacpp.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "vs-llamacpp.sh: --reps $reps: expected a positive count" >&2; exit 2; }

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLS_BUILD_TESTS=OFF -DLS_BUILD_SEARCH=OFF >/dev/null
cmake --build "$build" -j2 --target bench_engine bench_membw litestage-run >/dev/null
pkg=""
[[ $llama == 1 ]] && pkg="$("$here/llamacpp.sh")"

out="$here/results-vs-$(hostname -s).tsv"
: >"$out.tmp"
emit() { tee -a "$out.tmp"; }

cpu="$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')"
fam="$(grep -m1 '^cpu family' /proc/cpuinfo | sed 's/^[^:]*: *//')"
mod="$(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | sed 's/^[^:]*: *//')"
simd="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|f16c|avx512.*|avx_vnni|amx.*)$' | paste -sd, -)"
memavail="$(awk '/^MemAvailable/ {printf "%d", $2/1024}' /proc/meminfo)"
thp="$(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
printf 'bench=cpu\tcpu=%s\tfamily=%s\tmodel=%s\tcpus=%s\tsimd=%s\tmem_available_mb=%s\tthp=%s\tload=%s\n' \
  "$cpu" "$fam" "$mod" "$(nproc)" "$simd" "$memavail" "$thp" "$(cut -d' ' -f1 /proc/loadavg)" | emit

"$build/bench/bench_membw" --threads "$threads" --mib 1024 --reps 7 | emit

IFS=, read -r -a tlist <<<"$types"
for t in "${tlist[@]}"; do
  model="$build/tinyllama-shape-$t.gguf"
  if [[ ! -s "$model" ]]; then
    "$build/runtime/litestage-run" synth -o "$model" --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
      --vocab 32000 --type "$t" >&2
  fi
done

ours() { "$build/bench/bench_engine" --only tinyllama --model "$1" --threads "$threads" --reps 1 --what decode,prefill; }
theirs() { node "$here/llamacpp_bench.mjs" --pkg "$pkg" --model "$1" --threads "$threads" --reps 1; }
# Each round starts with its own read-bandwidth sample: on a shared host the
# bandwidth drifts from minute to minute, so each round's decode is also set
# against the sample taken just before it (the summary's *_roofline_rounds).
for ((r = 1; r <= reps; r++)); do
  "$build/bench/bench_membw" --threads "$threads" --mib 1024 --reps 3 | sed "s/^/round=$r\t/" | emit
  for t in "${tlist[@]}"; do
    model="$build/tinyllama-shape-$t.gguf"
    if [[ $llama == 1 && $((r % 2)) == 0 ]]; then theirs "$model" | sed "s/^/round=$r\t/" | emit; fi
    ours "$model" | sed "s/\tmodel=[^\t]*/\tmodel=tinyllama-shape-$t.gguf/; s/^/round=$r\t/" | emit
    if [[ $llama == 1 && $((r % 2)) == 1 ]]; then theirs "$model" | sed "s/^/round=$r\t/" | emit; fi
  done
done
"$build/bench/bench_engine" --only tinyllama --model "$build/tinyllama-shape-${tlist[0]}.gguf" --threads "$threads" \
  --reps 7 --what step --steps 1,2,4,8,16,32 | emit

python3 - "$out.tmp" "$cpu" <<'PY' | emit
import statistics, sys
rows = [dict(f.split("=", 1) for f in line.rstrip("\n").split("\t") if "=" in f) for line in open(sys.argv[1])]
cpu = sys.argv[2]
med = lambda xs: statistics.median(xs) if xs else float("nan")
# read bandwidth per thread count: every sample of the run (the start's and each round's)
samples = {}
for r in rows:
    if r.get("bench") == "membw":
        samples.setdefault(r["threads"], []).append(float(r["gb_s"]))
bw = {th: med(v) for th, v in samples.items()}
round_bw = {(r["round"], r["threads"]): float(r["gb_s"]) for r in rows if r.get("bench") == "membw" and "round" in r}
span = lambda xs: f"{min(xs):.2f}-{max(xs):.2f}" if xs else "nan"

def round_fractions(sel_rows, mb):
    """Each round's decode tok/s against the bandwidth sampled at that round's start."""
    return [float(r["tok_s"]) * mb / (round_bw[(r["round"], r["threads"])] * 1e3)
            for r in sel_rows if (r.get("round"), r["threads"]) in round_bw]
for what in ("decode", "prefill"):
    keys = sorted({(r["model"], r["threads"]) for r in rows if r.get("bench") in ("engine", "llamacpp") and r.get("what") == what})
    for model, th in keys:
        sel = lambda b: [r for r in rows if r.get("bench") == b and r.get("what") == what and r["model"] == model and r["threads"] == th]
        ours, theirs = sel("engine"), sel("llamacpp")
        o = med([float(r["tok_s"]) for r in ours])
        l = med([float(r["tok_s"]) for r in theirs])
        loads = [float(r["load"]) for r in ours + theirs]
        out = {"bench": "vs", "what": what, "type": model.replace("tinyllama-shape-", "").replace(".gguf", ""),
               "cpu": cpu, "threads": th, "ours_tok_s": f"{o:.1f}", "llamacpp_tok_s": f"{l:.1f}",
               "ratio": f"{o / l:.2f}" if theirs else "nan", "n": len(ours)}
        if what == "decode" and ours:
            mb = med([float(r["gb_s"]) * 1e3 / float(r["tok_s"]) for r in ours])
            b = bw.get(th, float("nan"))
            roof = b * 1e3 / mb
            out.update(bw_gb_s=f"{b:.2f}", bw_span=span(samples.get(th, [])), mb_tok=f"{mb:.1f}",
                       roofline_tok_s=f"{roof:.1f}", ours_roofline=f"{o / roof:.2f}",
                       llamacpp_roofline=f"{l / roof:.2f}" if theirs else "nan",
                       ours_roofline_rounds=span(round_fractions(ours, mb)),
                       llamacpp_roofline_rounds=span(round_fractions(theirs, mb)))
        out["load"] = f"{min(loads):.1f}-{max(loads):.1f}"
        print("\t".join(f"{k}={v}" for k, v in out.items()))
for r in rows:
    if r.get("bench") == "engine" and r.get("what") == "step":
        print(f"bench=vs\twhat=step\ttype={r['type']}\tcpu={cpu}\tthreads={r['threads']}\trows={r['rows']}\t"
              f"ms_step={r['ms_step']}\tx_1row={r['x_1row']}\tload={r['load']}")
PY
mv "$out.tmp" "$out"
