#!/usr/bin/env bash
# README.md's quick tour runs as written: every command of the fenced block between the
# <!-- quick-tour:begin --> and <!-- quick-tour:end --> markers, from the repository root, in
# order, each with exit status 0. Two substitutions only: `build` is this ctest's build tree
# (LS_BUILD_DIR, e.g. build-asan) and /tmp/ is a temporary folder removed at the end.
set -uo pipefail
SRC=${LS_SOURCE_DIR:?LS_SOURCE_DIR not set}
B=${LS_BUILD_DIR:?LS_BUILD_DIR not set}
[[ -x $B/search/litestage-search ]] || { echo "litestage-search not built: skip"; exit 77; }
command -v mpirun >/dev/null || { echo "mpirun missing: skip"; exit 77; }
tmp=$(mktemp -d /tmp/ls-readme-tour.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# the block, continuation lines joined, comments and blank lines dropped
python3 - "$SRC/README.md" "$B" "$tmp" >"$tmp/tour.sh" <<'PY' || { echo "FAIL: no quick tour block in README.md"; exit 1; }
import re, shlex, sys
readme, build, tmp = sys.argv[1:]
text = open(readme).read()
m = re.search(r"<!-- quick-tour:begin -->\s*```sh\n(.*?)```\s*<!-- quick-tour:end -->", text, re.S)
if not m:
    sys.exit(1)
cmds = []
for line in m.group(1).replace("\\\n", " ").split("\n"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    line = re.sub(r"(?<![\w/.-])build(?=/|\s|$)", shlex.quote(build), line)
    line = line.replace("/tmp/", tmp + "/")
    cmds.append(line)
if len(cmds) < 10:
    sys.exit(1)
print("\n".join(cmds))
PY
n=$(wc -l <"$tmp/tour.sh")
i=0
cd "$SRC"
while IFS= read -r cmd; do
  i=$((i + 1))
  # M=... assignments carry over to the later commands
  if [[ $cmd =~ ^[A-Z_]+=[^\ ]*$ ]]; then
    eval "$cmd"
    echo "ok   $i/$n: $cmd"
    continue
  fi
  if eval "$cmd" >"$tmp/out" 2>&1 </dev/null; then
    echo "ok   $i/$n: $cmd"
  else
    echo "FAIL $i/$n (exit $?): $cmd"
    tail -20 "$tmp/out"
    exit 1
  fi
done <"$tmp/tour.sh"
# what the tour produced is there
for f in s.gguf tinyllama-shape.gguf profile.json story.h5 schedule.json; do
  [[ -s $tmp/$f ]] || { echo "FAIL: the tour did not write /tmp/$f"; exit 1; }
done
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert len(s['stages']) == 3" "$tmp/schedule.json" \
  || { echo "FAIL: the exported schedule"; exit 1; }
echo "readme_tour: all $n commands ran"
