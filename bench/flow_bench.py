#!/usr/bin/env python3
"""End-to-end flow throughput against the quantize kernels alone, and peak RSS.

    .venv/bin/python bench/flow_bench.py [--small] [--threads N] [--out bench/results]

Generates the demo model (125M parameters, F16), then in one run:
  1. the flow through the C++ tool (bq-quantize, Q4_K_M), timed, with its peak RSS
     (getrusage of the child), and the same through the Python API;
  2. the kernels alone: every tensor of the plan quantized to its planned type with
     bq.quantize on data already in memory (no I/O, no metrics), summed.
Writes flow_bench.json and flow_bench.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import blockquant as bq

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--tool", default=os.path.join(HERE, "..", "build", "examples", "bq-quantize"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "model-f16.gguf"), os.path.join(d, "model-q4_k_m.gguf")
        params = bq.make_demo_model(src, small=args.small, threads=args.threads)
        largest = max(t["bytes"] for t in bq.inspect(src, 0)["tensors"])

        rows = {}
        if os.path.exists(args.tool):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            subprocess.run([args.tool, src, out, "--policy", "Q4_K_M", "--threads", str(args.threads)],
                           check=False, capture_output=True)
            seconds = time.perf_counter() - t0
            rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rows["flow (C++ bq-quantize)"] = {"seconds": seconds, "params_per_s": params / seconds,
                                              "peak_rss_mb": rss_kb / 1024 if rss_kb > before else None}
        t0 = time.perf_counter()
        report = bq.quantize_model(src, out, policy="Q4_K_M", threads=args.threads, progress=False)
        seconds = time.perf_counter() - t0
        rows["flow (Python API)"] = {"seconds": seconds, "params_per_s": params / seconds, "peak_rss_mb": None}

        # Kernels alone: same tensors, same types, data already decoded in memory.
        reader_types = {t["name"]: t["type"] for t in report["tensors"]}
        kernel_seconds = 0.0
        for t in bq.inspect(src, 0)["tensors"]:
            if reader_types[t["name"]] in ("F16", "F32"):
                continue
            x = np.random.default_rng(0).standard_normal((int(np.prod(t["shape"][1:])), t["shape"][0])).astype(np.float16)
            t1 = time.perf_counter()
            bq.quantize(x, reader_types[t["name"]], threads=args.threads)
            kernel_seconds += time.perf_counter() - t1
        rows["quantize kernels only"] = {"seconds": kernel_seconds, "params_per_s": params / kernel_seconds,
                                         "peak_rss_mb": None}

    result = {"parameters": params, "largest_tensor_bytes": largest, "threads": args.threads,
              "bits_per_weight": report["totals"]["bits_per_weight"], "verdict": report["verdict"], "rows": rows,
              "flow_over_kernels": rows["quantize kernels only"]["seconds"] / rows["flow (Python API)"]["seconds"]}
    with open(os.path.join(args.out, "flow_bench.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Flow benchmark ({params / 1e6:.1f} M parameters, Q4_K_M, {args.threads} threads)", "",
             "| run | seconds | M params/s | peak RSS MB |", "|---|---|---|---|"]
    for name, r in rows.items():
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "—"
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['params_per_s'] / 1e6:.2f} | {rss} |")
    lines += ["", f"Flow speed / kernel-only speed: {result['flow_over_kernels']:.2f}. "
              f"Largest tensor: {largest / 1e6:.1f} MB (F16). Verdict {report['verdict']}, "
              f"{report['totals']['bits_per_weight']:.4f} bits/weight."]
    with open(os.path.join(args.out, "flow_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
