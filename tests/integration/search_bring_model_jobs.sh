# The TinyThinker jobs for Llama-3.2-1B and Qwen2.5-0.5B: with the user's file in place they
# validate; without it, validate fails with one line naming the missing model. Either way the
# rest of each job (template, dataset, tokenizer and architecture of that kind) validates
# against a tiny model of the same architecture and tokenizer (tests/data/archs).
source "$(dirname "$0")/lib/search_lib.sh"
for job in "$LS_SOURCE_DIR"/jobs/*-tinythinker-llama3.2-1b.json "$LS_SOURCE_DIR"/jobs/*-tinythinker-qwen2.5-0.5b.json; do
  model=$(python3 -c "import json,os,sys; j=json.load(open(sys.argv[1])); print(os.path.normpath(os.path.join(os.path.dirname(sys.argv[1]), j['model'])))" "$job")
  if [ -f "$model" ]; then
    "$S" validate "$job" >/dev/null || fail "$job does not validate with $model present"
  else
    set +e; "$S" validate "$job" 2>"$T/err" >/dev/null; rc=$?; set -e
    [ $rc = 1 ] || fail "$job: validate without the model: exit $rc, want 1"
    [ "$(wc -l <"$T/err")" = 1 ] && grep -q "$(basename "$model")" "$T/err" && grep -q "No such file" "$T/err" \
      || { cat "$T/err"; fail "$job: not one line naming the missing model"; }
  fi
  case "$job" in *qwen2.5*) tiny=qwen2-tiny.gguf ;; *) tiny=llama3-tiny.gguf ;; esac
  python3 - "$job" "$T/job.json" "$LS_SOURCE_DIR/tests/data/archs/$tiny" <<'PY'
import json, os, sys
src, out, tiny = sys.argv[1:]
j = json.load(open(src)); base = os.path.dirname(os.path.abspath(src))
j["template"] = os.path.normpath(os.path.join(base, j["template"]))
j["dataset"]["path"] = os.path.normpath(os.path.join(base, j["dataset"]["path"]))
j["model"] = tiny
j["budget"]["max"] = 4  # the tiny model has 2 layers
json.dump(j, open(out, "w"))
PY
  "$S" validate "$T/job.json" >/dev/null || fail "$job with $tiny"
done
rm -rf "$T"
echo ok
