#!/usr/bin/env bash
# Installs llama.cpp as node-llama-cpp@3.21.1 (npm; prebuilt CPU libraries,
# one per x86 variant, chosen at run time) into a scratch folder outside the
# repository, once, and prints that folder. Reusable by any benchmark:
#   pkg="$(bench/llamacpp.sh)" && node bench/llamacpp_bench.mjs --pkg "$pkg" --model F.gguf
# LS_LLAMACPP_DIR overrides the folder (default: the user's cache folder).
# The package has no llama-bench binary, so llamacpp_bench.mjs drives its API.
set -euo pipefail
version=3.21.1
dir="${LS_LLAMACPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/litestage/node-llama-cpp-$version}"
pkg="$dir/node_modules/node-llama-cpp/package.json"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "llamacpp.sh: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if [[ ! -s "$pkg" ]] || ! grep -q "\"version\": \"$version\"" "$pkg"; then
  mkdir -p "$dir"
  echo "llamacpp.sh: installing node-llama-cpp@$version into $dir (a few minutes, ~700 MB)" >&2
  # the postinstall script only offers to build from source: the prebuilt
  # binaries are plain optional dependencies and need no script
  (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts "node-llama-cpp@$version" >&2)
fi
if [[ ! -d "$dir/node_modules/@node-llama-cpp/linux-x64" && "$(uname -m)" == x86_64 ]]; then
  echo "llamacpp.sh: $dir has no prebuilt linux-x64 llama.cpp (@node-llama-cpp/linux-x64)" >&2
  exit 1
fi
echo "$dir"
