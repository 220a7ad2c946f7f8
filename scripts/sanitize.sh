#!/usr/bin/env bash
# ASan + UBSan run of the test suites (docs/robustness.md), part of the test
# command. One build at -O1 (build-asan/) holds the doctest binaries and the
# Python extension; the C++ suites run under ctest, then pytest runs the
# Python suite against that extension with libasan preloaded into the
# interpreter (CPython itself is not instrumented; leaks are not checked
# there because the interpreter keeps its objects alive at exit). Any report
# fails the run (-fno-sanitize-recover). test_torch.py and test_cuda.py stay
# out: they import PyTorch, which is not instrumented, and this build has no
# CUDA module for them to test.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-2}
# GCC's -Wmaybe-uninitialized misfires inside libstdc++'s <regex> under
# -fsanitize=address (GCC's manual warns of such false positives); -Werror
# stays on for everything else.
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wno-maybe-uninitialized"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DBLOCKQUANT_CUDA=OFF -DBLOCKQUANT_BUILD_EXAMPLES=OFF -DBLOCKQUANT_INSTALL=OFF -DBLOCKQUANT_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$PWD/.venv/bin/python" \
  -Dpybind11_DIR="$(.venv/bin/python -m pybind11 --cmakedir)" > /dev/null
cmake --build build-asan -j"$jobs"

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The fault-injection tests truncate a mapped file on purpose: let SIGBUS
# kill the process as it would without ASan.
export ASAN_OPTIONS=detect_leaks=1:handle_sigbus=0
(cd build-asan && ctest --output-on-failure -j"$jobs" -E consumer)

# A package directory of the Python sources and the instrumented _core.
pkg=build-asan/pkg/blockquant
rm -rf build-asan/pkg && mkdir -p "$pkg"
cp python/blockquant/*.py python/blockquant/py.typed "$pkg/"
cp build-asan/python/_core*.so "$pkg/"
# libstdc++ is preloaded too: ASan resolves the real __cxa_throw when it
# starts, and the interpreter itself does not link libstdc++.
preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so.6)"
ASAN_OPTIONS=detect_leaks=0:handle_sigbus=0 LD_PRELOAD="$preload" \
  PYTHONPATH="$PWD/build-asan/pkg" .venv/bin/python -m pytest -q -p no:cacheprovider tests/python \
  --ignore=tests/python/test_torch.py --ignore=tests/python/test_cuda.py
