#!/usr/bin/env bash
# The scripts' command lines and what they need: slurm/submit --help prints every flag its
# parser accepts on stdout with exit 0 (a usage error exits 2 on stderr); scripts/deps.sh
# lists the package of every tool bench/search_scaling.sh needs.
set -uo pipefail
SRC=${LS_SOURCE_DIR:?LS_SOURCE_DIR not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

SUBMIT=$SRC/slurm/submit
"$SUBMIT" --help >"$tmp/help" 2>"$tmp/err"
rc=$?
[[ $rc -eq 0 && ! -s $tmp/err ]] && grep -q "slurm/submit \[--sweep FILE\]" "$tmp/help" && ok "submit --help: stdout, exit 0" \
  || bad "submit --help: rc=$rc stderr=$(cat "$tmp/err")"
# every flag in the option parser's case patterns has a help line
flags=$(sed -n '/^while \[ \$# -gt 0 \]/,/^done/p' "$SUBMIT" | grep -oE '^\s+-[-a-z|]*[a-z]' | tr -d ' ' | tr '|' '\n' | sort -u)
[[ $(echo "$flags" | wc -l) -ge 6 ]] || bad "found only these flags in submit's parser: $flags"
for f in $flags; do
  grep -qE "^  (-h, )?$f( |,|$)" "$tmp/help" && ok "submit --help explains $f" || bad "submit --help lacks a line for $f"
done
"$SUBMIT" --bogus >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc -eq 2 && ! -s $tmp/out ]] && grep -q -- "--bogus" "$tmp/err" && ok "submit --bogus: exit 2, named" || bad "submit --bogus: rc=$rc"

# bench/search_scaling.sh's tools come from packages scripts/deps.sh installs
for tool in bc /usr/bin/time; do
  grep -q "$tool" "$SRC/bench/search_scaling.sh" || { bad "search_scaling.sh no longer uses $tool: update this test"; continue; }
  path=$(command -v "$tool") || { bad "$tool is not installed (scripts/deps.sh should install it)"; continue; }
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
  [[ -n $pkg ]] && sed -n '/^pkgs=(/,/)/p' "$SRC/scripts/deps.sh" | grep -qw -- "$pkg" \
    && ok "deps.sh installs $pkg for $tool" || bad "deps.sh lacks the package of $tool (${pkg:-unknown})"
done

[[ $fails -eq 0 ]] && echo "scripts_cli: all checks passed" || echo "scripts_cli: $fails check(s) failed"
exit $((fails > 0))
