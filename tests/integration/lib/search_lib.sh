# Shared by tests/integration/search_*.sh: sourced, not a test (it lives in lib/, which the
# integration glob in tests/CMakeLists.txt does not read).
# Provides: $S (litestage-search), $T (temp dir), mpirun_ls (mpirun as root, oversubscribed),
# small_job OUT [jq-like python edits], h5num FILE DATASET (values, one per line, %.17g).
[ "${BASH_SOURCE[0]}" = "$0" ] && { echo "$0: a helper to source from a test script" >&2; exit 2; }
set -euo pipefail
S=${LS_SEARCH:-}
if [ -z "$S" ] || [ ! -x "$S" ]; then echo "litestage-search not built: skip"; exit 77; fi
command -v mpirun >/dev/null || { echo "mpirun missing: skip"; exit 77; }
command -v h5dump >/dev/null || { echo "h5dump missing: skip"; exit 77; }
T=$(mktemp -d /tmp/ls-search-test.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpirun_ls() { mpirun --oversubscribe "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# small_job OUT KEY=JSONVALUE... : the story job with absolute paths and overrides.
small_job() { job_from "$LS_SOURCE_DIR/jobs/story-stories260K.json" "$@"; }

# job_from SRC OUT KEY=JSONVALUE... : job SRC with absolute paths and overrides.
job_from() {
  local src=$1 out=$2; shift 2
  python3 - "$src" "$out" "$@" <<'PY'
import json, os, sys
src, out, *kv = sys.argv[1:]
j = json.load(open(src))
base = os.path.dirname(os.path.abspath(src))
for k in ("model", "tokenizer", "template", "latency"):
    if k in j and j[k] != "measured": j[k] = os.path.normpath(os.path.join(base, j[k]))
j["dataset"]["path"] = os.path.normpath(os.path.join(base, j["dataset"]["path"]))
for a in kv:
    k, v = a.split("=", 1)
    j[k] = json.loads(v)
json.dump(j, open(out, "w"), indent=1)
PY
}

# h5num FILE DATASET: the dataset's values with full precision, one per line.
h5num() { h5dump -m %.17g -d "$2" -y -w 0 "$1" | sed -n '/DATA {/,/}/p' | sed '1d;$d' | tr ',' '\n' | sed 's/ //g;/^$/d'; }
h5attr() { h5dump -a "$2" "$1" | sed -n 's/^ *(0): *//p'; }
