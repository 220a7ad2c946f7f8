#!/usr/bin/env bash
# Cross-compiles the CPU kernel tests for aarch64 and runs them under
# qemu-user on the NEON target (and every other target the emulated CPU
# supports). Documented script, not part of CI. Needs root for apt-get.
#
#   bash tests/cpu/aarch64_cross.sh [build-dir]
#
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-aarch64}

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  dpkg --add-architecture arm64
  apt-get update
  apt-get install -y g++-aarch64-linux-gnu qemu-user libhwy-dev:arm64 doctest-dev
fi

cat > "$BUILD.toolchain.cmake" <<TC
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
TC

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$BUILD.toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DBLOCKQUANT_BUILD_EXAMPLES=OFF -DBLOCKQUANT_BUILD_PYTHON=OFF -DBLOCKQUANT_CUDA=OFF
cmake --build "$BUILD" --target bq_cpu_tests -j2

export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
# Debian 12's qemu-user hangs when a dynamically linked aarch64 program starts
# a std::thread (a static one does not, but Debian ships no static libhwy for
# arm64), so the two test cases that start a ThreadPool are left out here;
# they test the thread split, which is not target code.
EXCLUDE='*ParallelFor*,fast quantizers: odd*'
# The test itself loops over every target the (emulated) CPU reports; run it
# with qemu's default CPU model for NEON. (SVE targets are not compiled: see
# docs/kernels.md.)
for cpu in cortex-a72; do
  echo "== qemu-aarch64 -cpu $cpu"
  QEMU_CPU=$cpu qemu-aarch64 "$BUILD/tests/bq_cpu_tests" -tce="$EXCLUDE"
done
