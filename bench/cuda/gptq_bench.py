"""GPTQ on the GPU against the CPU, on the issue's layer: 14336 x 4096 weights, 4096
calibration rows and 512 held-out rows (low-rank Student-t activations with outlier channels).
Run on the GPU machine after `pip install .`:  python3 bench/cuda/gptq_bench.py [--cpu-threads N]"""
import argparse
import os
import time

import numpy as np
import torch

import blockquant as bq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=14336)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--calib", type=int, default=4096)
    ap.add_argument("--types", default="Q4_K,Q3_K,Q2_K")
    ap.add_argument("--cpu-threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-cpu", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((a.rows, a.cols)) * rng.uniform(0.2, 2.0, size=(a.rows, 1))).astype(np.float32)
    basis = rng.standard_normal((256, a.cols)) * (np.arange(1, 257) ** -0.7)[:, None]
    x = rng.standard_t(4, size=(a.calib + 512, 256)) @ basis + rng.standard_normal((a.calib + 512, a.cols))
    x[:, rng.choice(a.cols, a.cols // 100, replace=False)] *= rng.uniform(20, 100, size=a.cols // 100)
    x = x.astype(np.float32)
    calib, held = x[:a.calib], x[a.calib:]
    print(f"device: {torch.cuda.get_device_name()}; {a.rows} x {a.cols}, {a.calib} calibration rows; "
          f"CPU: {a.cpu_threads} threads")
    print("\n| type | GPU s | CPU s | layer error GPU | CPU | rtn | values equal |\n|---|---|---|---|---|---|---|")
    for qtype in a.types.split(","):
        bq.calib.quantize(w[:256], qtype, calib=calib, method="gptq", device="cuda")  # warm-up
        t0 = time.perf_counter()
        g = bq.calib.quantize(w, qtype, calib=calib, method="gptq", device="cuda")
        tg = time.perf_counter() - t0
        eg = bq.calib.layer_error(w, g, held)
        rtn = bq.calib.layer_error(w, bq.quantize(w, qtype), held)
        if a.no_cpu:
            print(f"| {qtype} | {tg:.3f} | - | {eg:.5f} | - | {rtn:.5f} | - |", flush=True)
            continue
        t0 = time.perf_counter()
        c = bq.calib.quantize(w, qtype, calib=calib, method="gptq", threads=a.cpu_threads)
        tc = time.perf_counter() - t0
        ec = bq.calib.layer_error(w, c, held)
        same = float(np.mean(bq.dequantize(g) == bq.dequantize(c)))
        print(f"| {qtype} | {tg:.3f} | {tc:.2f} | {eg:.5f} | {ec:.5f} | {rtn:.5f} | {same:.4f} |", flush=True)


if __name__ == "__main__":
    main()
