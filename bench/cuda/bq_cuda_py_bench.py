"""bq.cuda from Python on the lent GPU: what the NaN/Inf check adds to GPU quantization, and
the Python call's overhead on a small matmul against the C++ kernel time (bq_cuda_bench).
Run after `pip install .` there: python3 bench/cuda/bq_cuda_py_bench.py"""
import time

import torch

import blockquant as bq


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    print(f"device: {torch.cuda.get_device_name()}")
    x = torch.randn(28672, 8192, device="cuda")
    out = torch.empty((28672, 8192 // 256 * 144), dtype=torch.uint8, device="cuda")
    print("| call (28672 x 8192 f32 -> Q4_K) | ms |\n|---|---|")
    for check in (False, True):
        ms = timed(lambda: bq.cuda.quantize(x, "Q4_K", out, check_finite=check), 3) * 1e3
        print(f"| bq.cuda.quantize, check_finite={check} | {ms:.2f} |")
    blocks = bq.cuda.quantize(torch.randn(4096, 4096, device="cuda"), "Q4_K")
    v = torch.randn(1, 4096, device="cuda", dtype=torch.float16)
    y = torch.empty(1, 4096, device="cuda")
    us = timed(lambda: bq.cuda.matmul(blocks, "Q4_K", v, y), 200) * 1e6
    print(f"\n| 4096 x 4096 Q4_K, n = 1, hot, back-to-back calls | {us:.1f} us per call |")


if __name__ == "__main__":
    main()
