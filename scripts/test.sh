#!/usr/bin/env bash
# The test command: sets up, builds, then runs the C++ suite (ctest: doctest
# binaries and the consumer projects) and the Python suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j2)
.venv/bin/python -m pytest -q tests/python
