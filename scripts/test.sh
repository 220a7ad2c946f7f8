#!/usr/bin/env bash
# The test command: sets up, builds, then runs the C++ suite (ctest: doctest
# binaries and the consumer projects), the Python suite (pytest), both again
# under ASan + UBSan (scripts/sanitize.sh), and each libFuzzer target for a
# short bounded time (tests/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j2)
.venv/bin/python -m pytest -q tests/python
bash scripts/sanitize.sh
bash tests/fuzz/run_fuzz.sh 15
