"""Plots a CUDA bench run (bq_cuda_bench's JSON) beside the CPU bench (bench/run_cpu_bench.py's
results.json): GEMV at n = 1 as a share of the copy bound per type, each type's time against n
(the kernel kAuto picks) with cuBLAS fp16, and CPU against GPU on the shape both measured (4096 x 4096). Writes PNG + Markdown.

    .venv/bin/python bench/cuda/plot_cuda_bench.py bench/results/cuda_bench_h200.json \\
        --cpu bench/results/results.json --out bench/results/cuda_vs_cpu_h200
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cuda_json")
    ap.add_argument("--cpu", help="results.json of bench/run_cpu_bench.py")
    ap.add_argument("--out", required=True, help="path prefix: writes OUT.png and OUT.md")
    a = ap.parse_args()
    with open(a.cuda_json) as f:
        g = json.load(f)
    rows = g["rows"]
    big = [r for r in rows if r["m"] == 28672 and r["k"] == 8192 and r["cache"] == "cold"]
    gemv = [r for r in big if r["n"] == 1 and r["kernel"].startswith(("ours auto", "ours planar"))]
    cublas1 = next((r for r in big if r["n"] == 1 and r["kernel"].startswith("cublas")), None)
    order = ["Q4_K", "Q5_K", "Q2_K", "Q3_K", "Q6_K", "Q8_0", "Q4_0"]
    sweeps = {}  # type -> {n: row}, kAuto's kernel
    for r in big:
        if r["kernel"].startswith("ours auto") and r["n"] >= 1:
            sweeps.setdefault(r["type"], {})[r["n"]] = r
    sweeps = {t: sweeps[t] for t in order if len(sweeps.get(t, {})) >= 3}
    cublas = {r["n"]: r for r in big if r["kernel"].startswith("cublas")}
    small_gpu = {r["type"]: r for r in rows if r["m"] == 4096 and r["k"] == 4096 and r["n"] == 1
                 and r["cache"] == "hot" and r["kernel"].startswith("ours auto")
                 and len(r["kernel"].split()) == 2}  # not BenchLaunchModes' "stream"/"graph" rows
    cpu = []
    if a.cpu:
        with open(a.cpu) as f:
            cpu = [r for r in json.load(f) if r["n"] == 1 and r["rows"] == 4096 and r["cols"] == 4096]
    md = [f"# {g['device']}: GPU kernels, and the CPU beside them", "",
          f"Copy bound: weight bytes / device-to-device copy rate measured in the same run ({g['copy_gbs']:.0f} GB/s).",
          "", "| GEMV n = 1, 28672 x 8192, cold | us | % of copy bound |", "|---|---|---|"]
    for r in gemv:
        layout = ", planar layout" if r["kernel"].startswith("ours planar") else ""
        md.append(f"| {r['type']} ({r['kernel'].split(':')[-1]}{layout}) | {r['us']:.1f} | "
                  f"{100 * r['bound_us'] / r['us']:.0f}% |")
    if cublas1:
        md.append(f"| cuBLAS fp16 (F16 weights) | {cublas1['us']:.1f} | {100 * cublas1['bound_us'] / cublas1['us']:.0f}% |")
    md += ["", "28672 x 8192, cold, us (the kernel kAuto picks):", "",
           "| n | " + " | ".join(sweeps) + " | cuBLAS fp16 |", "|---" * (len(sweeps) + 2) + "|"]
    for n in sorted({n for sw in sweeps.values() for n in sw} | set(cublas)):
        cells = [f"{sw[n]['us']:.1f} ({sw[n]['kernel'].split(':')[-1]})" if n in sw else "-" for sw in sweeps.values()]
        md.append(f"| {n} | " + " | ".join(cells) + f" | {cublas[n]['us']:.1f} |" if n in cublas else
                  f"| {n} | " + " | ".join(cells) + " | - |")
    pairs = []
    if cpu:
        md += ["", "| 4096 x 4096, n = 1, hot | CPU ms (threads, target) | GPU us | GPU / CPU speed |", "|---|---|---|---|"]
        for r in cpu:
            gr = small_gpu.get(r["type"])
            if gr is None:
                continue
            pairs.append((f"{r['type']} {r['threads']}t", r["q8_ms"] * 1e3, gr["us"]))
            md.append(f"| {r['type']} | {r['q8_ms']:.3f} ({r['threads']}, {r['target']}) | {gr['us']:.1f} | "
                      f"{r['q8_ms'] * 1e3 / gr['us']:.0f}x |")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    fig, axes = plt.subplots(1, 3 if pairs else 2, figsize=(15 if pairs else 10, 4.2))
    ax = axes[0]
    labels = [r["type"] + (" planar" if r["kernel"].startswith("ours planar") else "") for r in gemv] + \
        (["cuBLAS f16"] if cublas1 else [])
    vals = [100 * r["bound_us"] / r["us"] for r in gemv] + ([100 * cublas1["bound_us"] / cublas1["us"]] if cublas1 else [])
    ax.bar(labels, vals, color=["C0"] * len(gemv) + ["C1"] * (1 if cublas1 else 0))
    ax.axhline(90, color="gray", linestyle="--", linewidth=1)
    ax.set_ylabel("% of copy bound")
    ax.set_title("GEMV n=1, 28672x8192, cold")
    ax.tick_params(axis="x", rotation=45)
    ax = axes[1]
    for t, sw in sweeps.items():
        ns = sorted(sw)
        ax.plot(ns, [sw[n]["us"] for n in ns], "o-", markersize=3, label=f"ours {t}")
    cb_ns = sorted(cublas)
    ax.plot(cb_ns, [cublas[n]["us"] for n in cb_ns], "s--", color="black", label="cuBLAS fp16")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("n (activation columns)")
    ax.set_ylabel("us (log)")
    ax.set_title("28672x8192 against n (kAuto)")
    ax.legend(fontsize=7)
    if pairs:
        ax = axes[2]
        ax.bar([p[0] for p in pairs], [p[1] for p in pairs], label="CPU q8 kernel", color="C2")
        ax.bar([p[0] for p in pairs], [p[2] for p in pairs], label="GPU", color="C0")
        ax.set_yscale("log")
        ax.set_ylabel("us (log)")
        ax.set_title("4096x4096 n=1 hot: CPU vs GPU")
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    fig.suptitle(g["device"])
    fig.tight_layout()
    fig.savefig(a.out + ".png", dpi=110)
    print(f"wrote {a.out}.png and {a.out}.md")


if __name__ == "__main__":
    main()
