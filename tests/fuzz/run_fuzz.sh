#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS, starting from tests/fuzz/corpus/<target> (copied: new units stay
# in the scratch dir). WORKERS > 1 runs libFuzzer's -fork mode. Prints one
# summary line per target and exits non-zero on any crash, leak or sanitizer
# report (the reproducer is left in the scratch dir).
#
#   bash tests/fuzz/run_fuzz.sh [SECONDS=30] [WORKERS=1] [SCRATCH=build-fuzz/runs] [TARGETS]
# TARGETS: a space-separated subset of "gguf safetensors imatrix rules dequantize".
# FUZZ_NO_BUILD=1 reuses binaries already in build-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-30}
WORKERS=${2:-1}
SCRATCH=${3:-build-fuzz/runs}
mkdir -p "$SCRATCH" && SCRATCH=$(cd "$SCRATCH" && pwd)  # libFuzzer runs inside it
TARGETS=${4:-"gguf safetensors imatrix rules dequantize"}

if [ ! -x build-fuzz/tests/fuzz/fuzz_rules ] || [ -z "${FUZZ_NO_BUILD:-}" ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DBLOCKQUANT_FUZZ=ON \
    -DBLOCKQUANT_BUILD_TESTS=OFF -DBLOCKQUANT_BUILD_EXAMPLES=OFF -DBLOCKQUANT_CUDA=OFF \
    -DBLOCKQUANT_INSTALL=OFF > /dev/null
  cmake --build build-fuzz -j2 > /dev/null
fi

status=0
for t in $TARGETS; do
  dir="$SCRATCH/$t"
  rm -rf "$dir" && mkdir -p "$dir/corpus"
  cp tests/fuzz/corpus/$t/* "$dir/corpus/"
  args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$dir/")
  [ "$WORKERS" -gt 1 ] && args+=(-fork="$WORKERS")
  if ! (cd "$dir" && "$OLDPWD/build-fuzz/tests/fuzz/fuzz_$t" "${args[@]}" corpus > log.txt 2>&1); then
    status=1
  fi
  last=$( (grep -E "^#[0-9]+" "$dir/log.txt" || tail -1 "$dir/log.txt") | tail -1 | cut -c1-120)
  crashes=$(ls "$dir" | grep -cE "^(crash|leak|timeout|oom)-" || true)
  echo "fuzz_$t: ${SECONDS_EACH}s x $WORKERS worker(s): $last; reproducers: $crashes"
  [ "$crashes" -gt 0 ] && status=1
done
exit $status
