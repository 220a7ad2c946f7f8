#!/usr/bin/env python3
"""Runs bq_cpu_bench over every kernel x type x shape x n x threads x cache and
writes results.json, results.md and results.png into --out.

  .venv/bin/python bench/run_cpu_bench.py --build build-bench    # full grid (the venv has matplotlib)
  .venv/bin/python bench/run_cpu_bench.py --build build-bench --quick

--build: a CMake build dir configured with -DBLOCKQUANT_BUILD_BENCH=ON (the
script builds bq_cpu_bench there). Set BLOCKQUANT_CPU_TARGET to time another
Highway target. Times are medians over interleaved repetitions; lo/hi are the
min and max. Ratios (f32/ours, bf16/ours, ref/ours) compare medians measured
in the same loop.
"""
import argparse
import json
import os
import subprocess
import sys

TYPES = "F32,F16,BF16,Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not a.no_build:
        subprocess.check_call(["cmake", "-S", root, "-B", a.build, "-DBLOCKQUANT_BUILD_BENCH=ON",
                               "-DCMAKE_BUILD_TYPE=Release"], stdout=subprocess.DEVNULL)
        subprocess.check_call(["cmake", "--build", a.build, "--target", "bq_cpu_bench", "-j2"],
                              stdout=subprocess.DEVNULL)
    exe = os.path.join(a.build, "bench", "bq_cpu_bench")
    if a.quick:
        runs = [
            ["--types", "Q4_K,Q8_0,Q4_0,Q6_K", "--shapes", "4096x4096", "--n", "1,32",
             "--threads", "1,2", "--cache", "hot", "--reps", "5", "--ref-max-ms", "200"],
            ["--types", "Q4_K,Q2_K,Q3_K,Q5_K,Q6_K,Q8_0,Q4_0", "--shapes", "14336x4096", "--n", "1",
             "--threads", "1,2", "--cache", "cold", "--reps", "5", "--ref-max-ms", "0"],
        ]
    else:
        runs = [["--types", TYPES, "--reps", "7"]]
    rows = []
    for args in runs:
        p = subprocess.run([exe] + args, check=True, capture_output=True, text=True)
        rows += [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    write_markdown(rows, os.path.join(a.out, "results.md"))
    write_plot(rows, os.path.join(a.out, "results.png"))
    print(open(os.path.join(a.out, "results.md")).read())


def ratio(num, den):
    return "" if num is None or not den else f"{num / den:.2f}x"


def write_markdown(rows, path):
    tgt = rows[0]["target"] if rows else "?"
    lines = [f"Target: {tgt}. Times in ms: median [min-max] over interleaved reps. "
             "q8 = quantized weights x q8 activations; f32act = same weights x f32 activations; "
             "f32/bf16 = our float-weight matmul, same shape; ref = scalar reference (1 thread).",
             "",
             "| type | shape | n | thr | cache | q8 ms | f32act ms | f32 ms | bf16 ms | ref ms | f32/q8 | bf16/q8 | ref/q8 | GB/s weights |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def fmt(k):
            if r.get(k + "_ms") is None:
                return "-"
            return f"{r[k + '_ms']:.3f} [{r[k + '_lo']:.3f}-{r[k + '_hi']:.3f}]"
        lines.append(
            f"| {r['type']} | {r['rows']}x{r['cols']} | {r['n']} | {r['threads']} | {r['cache']} | {fmt('q8')} | "
            f"{fmt('f32act')} | {fmt('f32')} | {fmt('bf16')} | {fmt('ref')} | {ratio(r['f32_ms'], r['q8_ms'])} | "
            f"{ratio(r['bf16_ms'], r['q8_ms'])} | {ratio(r.get('ref_ms'), r['q8_ms'])} | {r['weight_gbps']:.2f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG", file=sys.stderr)
        return
    sel = [r for r in rows if r["n"] == 1]
    labels = [f"{r['type']} {r['rows']}x{r['cols']} t{r['threads']} {r['cache']}" for r in sel]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(sel)), 4.5))
    x = range(len(sel))
    w = 0.27
    ax.bar([i - w for i in x], [r["q8_ms"] for r in sel], w, label="ours (q8)")
    ax.bar(list(x), [r["f32_ms"] for r in sel], w, label="f32 baseline")
    ax.bar([i + w for i in x], [r["bf16_ms"] for r in sel], w, label="bf16 baseline")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("ms per matvec (median)")
    ax.set_title(f"blockquant matvec, target {rows[0]['target'] if rows else '?'}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
