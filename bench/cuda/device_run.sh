#!/usr/bin/env bash
# One call on the lent GPU: build the CUDA targets, run the device tests, the
# benchmark, and compute-sanitizer (memcheck, racecheck) on the small test
# set. Logs and results go to $OUT (default: ./out-cuda).
#   bash bench/cuda/device_run.sh [MODE]
# MODE: --quick, --wide, --wgmma-q3, --wgmma-q2, --wgmma-f16w and --ratio
# pass to the benchmark (a shorter set; the 16-group types' n = 24..64 only;
# Q3_K's or Q2_K's wgmma, or the f16-weights one, against the kernels beside
# it; Q4_K's goal cases and cuBLAS fp16 in alternating rounds); --no-bench runs
# the tests and sanitizers only, --bench-only the benchmark only, and --part1
# and --part2 the benchmark's two halves only. The build takes about 4 of
# the device tool's 10 minutes per call: build the binaries beforehand with
# pack_binaries.sh and run with PREBUILT=.cuda-bin in two calls: --no-bench
# (about 360 s) and --bench-only (171 s on an H200 on 2026-12-04; --part1
# took 56 s and --part2 129 s, so the halves are needed only when a call
# has less time).
set -u
OUT=${OUT:-$PWD/out-cuda}
mkdir -p "$OUT"
MODE=${1:-}
MODES="--quick --part1 --part2 --wide --wgmma-q3 --wgmma-q2 --wgmma-f16w --ratio --no-bench --bench-only"
case " $MODES " in
  *" $MODE "*) ;;
  *) [ -z "$MODE" ] || { echo "usage: $0 [$(echo $MODES | sed 's/ / | /g')]"; exit 2; } ;;
esac
BENCH_ARG=$MODE
[ "$MODE" = --no-bench ] || [ "$MODE" = --bench-only ] && BENCH_ARG=
TESTS=true
case "$MODE" in --bench-only | --part1 | --part2) TESTS=false ;; esac
BUILD=build-cuda-device
{
  nvidia-smi -L; nvcc --version | tail -1; cmake --version | head -1
} 2>&1 | tee "$OUT/env.log"

set -o pipefail
if [ -n "${PREBUILT:-}" ]; then
  # Binaries from pack_binaries.sh: unpack instead of building.
  cat "$PREBUILT/source" | tee -a "$OUT/env.log"
  mkdir -p $BUILD/cuda/tests $BUILD/cuda/bench
  if ! python3 - "$PREBUILT" $BUILD <<'PY'
import lzma, os, shutil, sys
src, build = sys.argv[1], sys.argv[2]
for sub, name in (("tests", "bq_cuda_test"), ("bench", "bq_cuda_bench")):
    dst = os.path.join(build, "cuda", sub, name)
    with lzma.open(os.path.join(src, name + ".xz")) as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    os.chmod(dst, 0o755)
PY
  then echo "UNPACK FAILED"; exit 1; fi
  echo "unpacked $PREBUILT"
  # The bench links libcublas from the toolkit.
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
elif ! { cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DBLOCKQUANT_BUILD_TESTS=OFF \
         -DBLOCKQUANT_BUILD_EXAMPLES=OFF -DBLOCKQUANT_INSTALL=OFF -DBLOCKQUANT_CUDA=ON &&
       cmake --build $BUILD -j16 --target bq_cuda_test bq_cuda_bench; } > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
else
  echo "build ok"
fi
T=$BUILD/cuda/tests/bq_cuda_test
B=$BUILD/cuda/bench/bq_cuda_bench

if $TESTS; then
  $T > "$OUT/test.log" 2>&1; test_rc=$?
  grep -E "^FAIL" "$OUT/test.log" | head -40
  tail -1 "$OUT/test.log"; echo "test exit code: $test_rc"
fi

if [ "$MODE" != --no-bench ]; then
  # Line-buffered where stdbuf is: a call stopped by its time limit keeps
  # every row printed.
  LINEBUF=$(command -v stdbuf > /dev/null && echo "stdbuf -oL")
  $LINEBUF $B "$OUT" $BENCH_ARG 2>&1 | tee "$OUT/bench.log" | grep -vE "^(device|copy)" | cut -c1-150
  cuobjdump -sass -fun '_ZN10blockquant2v04cuda15MmaMatMulKernelILNS0_9QuantTypeE12E6__halfLi1ELi2ELi4EEEvPKhllPKT0_lPfi' \
    $T > "$OUT/sass_q4k_mma8.txt" 2>&1 || true
fi

if $TESTS; then
  for tool in memcheck racecheck; do
    timeout 200 compute-sanitizer --tool $tool --error-exitcode 3 $T --small > "$OUT/$tool.log" 2>&1
    echo "$tool exit code: $? ; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$tool.log" | tail -1) ; $(tail -1 "$OUT/$tool.log" | cut -c1-80)"
  done
fi
