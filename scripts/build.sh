#!/usr/bin/env bash
# Builds the C++ tests and tools (build/) and installs the Python package into
# .venv; with --python, only the package (what scripts/demo.sh needs). Uses 2
# parallel jobs unless JOBS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-2}
if [ "${1:-}" != --python ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$jobs"
fi
CMAKE_BUILD_PARALLEL_LEVEL=$jobs .venv/bin/python -m pip install -q --no-build-isolation . 
