#!/usr/bin/env bash
# Builds the C++ tests and tools (build/) and installs the Python package into
# .venv. Uses 2 parallel jobs unless JOBS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-2}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
CMAKE_BUILD_PARALLEL_LEVEL=$jobs .venv/bin/python -m pip install -q --no-build-isolation . 
