"""The calibrated flow on the demo model: held-out layer-output error and wall time per method
(quantize_model(calib=, method=)), on bq.calib.make_demo_activations' synthetic activations
(outlier channels, low rank; 3/4 calibrate, 1/4 held out).

    .venv/bin/python bench/calib_flow_bench.py [--small] [--rows 2048] [--threads 2] [--md OUT.md]
"""
import argparse
import os
import tempfile
import time

import numpy as np

import blockquant as bq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="the ~1M-parameter model")
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--policy", default="Q4_K_M")
    ap.add_argument("--md", help="also write the table here")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bq-calib-flow-")
    src, acts = os.path.join(d, "m.gguf"), os.path.join(d, "acts.npz")
    params = bq.make_demo_model(src, small=a.small, threads=a.threads)
    bq.calib.make_demo_activations(src, acts, rows=a.rows)
    lines = [f"Demo model ({params / 1e6:.0f} M parameters), policy {a.policy}, {a.rows} activation rows per "
             f"input ({a.rows - int(np.ceil(a.rows / 4))} calibrate, the rest held out), {a.threads} threads.",
             "", "| method | verdict | mean held-out layer error, Q4_K tensors | Q6_K tensors | seconds |",
             "|---|---|---|---|---|"]
    for method in ("rtn", "imatrix", "gptq", "awq"):
        t0 = time.perf_counter()
        r = bq.quantize_model(src, os.path.join(d, f"out-{method}.gguf"), a.policy, calib=acts, method=method,
                              threads=a.threads, progress=False)
        seconds = time.perf_counter() - t0
        by_type = {}
        for t in r["tensors"]:
            if "layer_error" in t:
                by_type.setdefault(t["type"], []).append(t["layer_error"])
        cell = {k: f"{np.mean(v):.5f} ({len(v)})" for k, v in by_type.items()}
        lines.append(f"| {method} | {r['verdict']} | {cell.get('Q4_K', '-')} | {cell.get('Q6_K', '-')} | "
                     f"{seconds:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
