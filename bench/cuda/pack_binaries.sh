#!/usr/bin/env bash
# Builds the CUDA test and bench binaries on this machine (nvcc links them
# without a GPU) and packs them, stripped and xz-compressed (about 10 MB),
# into .cuda-bin/, so that a device call runs them instead of building them
# (the build takes 3-4 of a call's 10 minutes there):
#   bash bench/cuda/pack_binaries.sh            # here
#   PREBUILT=.cuda-bin bash bench/cuda/device_run.sh ...   # there (carry .cuda-bin)
# libhwy as for device_run.sh (CMAKE_PREFIX_PATH). The device needs the CUDA
# major version of this build (the bench links libcublas).
set -eu
BUILD=${BUILD:-build-cuda-pack}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBLOCKQUANT_BUILD_TESTS=OFF -DBLOCKQUANT_BUILD_EXAMPLES=OFF \
  -DBLOCKQUANT_INSTALL=OFF -DBLOCKQUANT_CUDA=ON > /dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" --target bq_cuda_test bq_cuda_bench
mkdir -p .cuda-bin
for bin in tests/bq_cuda_test bench/bq_cuda_bench; do
  name=$(basename $bin)
  strip -o ".cuda-bin/$name" "$BUILD/cuda/$bin"
  xz -f -T0 -6 ".cuda-bin/$name"
done
# What the binaries were built from, for the device log.
echo "$(git describe --always --dirty) built $(date -u +%Y-%m-%dT%H:%MZ) with $(nvcc --version | tail -1)" \
  > .cuda-bin/source
ls -l .cuda-bin
