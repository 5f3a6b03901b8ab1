#!/usr/bin/env bash
# Installs what every LiteStage script needs (build, tests, demo, bench/, slurm/)
# from Debian's packages when they are missing (as root), or says exactly which
# are missing (otherwise).
# Usage: scripts/deps.sh [--with-slurm] [--with-llamacpp] [--with-fuzz]
# (--with-llamacpp: node and npm for bench/vs-llamacpp.sh, which installs llama.cpp from npm;
#  --with-fuzz: clang and libFuzzer, for the LS_FUZZ=ON build: scripts/fuzz.sh, docs/fuzzing.md)
set -euo pipefail

pkgs=(build-essential cmake pkg-config git
      libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools zlib1g-dev
      libjansson-dev libssl-dev check libsubunit-dev
      python3 python3-h5py gnuplot-nox
      bc time)  # bench/search_scaling.sh: bc for arithmetic, /usr/bin/time for peak RSS
for a in "$@"; do
  case "$a" in
    --with-slurm) pkgs+=(slurm-wlm munge) ;;
    --with-llamacpp) pkgs+=(nodejs); command -v npm >/dev/null || pkgs+=(npm) ;; # nodesource's nodejs ships npm
    --with-fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "deps: unknown option $a" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
