#!/usr/bin/env bash
# The Python tests that use the GPU, on the lent machine: installs the
# wheels carried in .whl (pytest, gguf, the build backend) and blockquant
# itself into a scratch folder, built against the carried libhwy (.hwy, as
# for device_run.sh), then runs test_cuda, test_torch, test_calib_flow and
# test_api. The pip log goes to $OUT (default: ./out-cuda).
#   bash bench/cuda/device_pytest.sh
set -u
OUT=${OUT:-$PWD/out-cuda}
SITE=/tmp/bq-site
mkdir -p "$OUT"
HWY_LIB=$PWD/.hwy/usr/lib/x86_64-linux-gnu
export PYTHONPATH=$SITE LD_LIBRARY_PATH=$HWY_LIB:${LD_LIBRARY_PATH:-}
py=python3
if ! { $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl &&
       CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $py -m pip install --no-index --no-deps --no-build-isolation \
         --target $SITE . -C cmake.define.hwy_DIR=$HWY_LIB/cmake/hwy; } > "$OUT/pip.log" 2>&1; then
  tail -30 "$OUT/pip.log"; echo "INSTALL FAILED"; exit 1
fi
tests=$PWD/tests/python
# From outside the checkout, so that `import blockquant` finds the installed package.
cd /tmp && $py -m pytest -q -p no:cacheprovider "$tests"/test_cuda.py "$tests"/test_torch.py \
  "$tests"/test_calib_flow.py "$tests"/test_api.py 2>&1 | tail -15
