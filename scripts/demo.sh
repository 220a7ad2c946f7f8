#!/usr/bin/env bash
# The main job on the embedded default: sets up, builds, generates a
# llama-shaped ~125M-parameter F16 GGUF, quantizes it with Q4_K_M, validates
# every tensor (GO/NO-GO), and exports the GGUF, its gzip copy, the report and
# the manifest into demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --python
.venv/bin/blockquant demo --dir demo-out "$@"
