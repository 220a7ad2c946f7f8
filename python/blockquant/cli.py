"""The ``blockquant`` command line. One function per subcommand."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

import numpy as np

import blockquant as bq

ERROR_TABLE_TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]


def cmd_types(args: argparse.Namespace) -> int:
    print("| type | id | elements/block | bytes/block | bits/weight | in files |")
    print("|---|---|---|---|---|---|")
    for t in bq.types():
        print(f"| {t.name} | {t.id} | {t.block_elems} | {t.block_bytes} | {t.bits_per_weight:.4g} | "
              f"{'yes' if t.storable else 'no'} |")
    return 0


def cmd_error_table(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.cols), dtype=np.float32)
    print("| type | rel RMSE | bits/weight | quantize MB/s of f32 |")
    print("|---|---|---|---|")
    for name in ERROR_TABLE_TYPES:
        t0 = time.perf_counter()
        qt = bq.quantize(x, name, threads=args.threads)
        seconds = time.perf_counter() - t0
        y = bq.dequantize(qt)
        err = float(np.sqrt(np.mean((x.astype(np.float64) - y) ** 2) / np.mean(x.astype(np.float64) ** 2)))
        print(f"| {name} | {err:.5f} | {qt.bits_per_weight:.4g} | {x.nbytes / seconds / 1e6:.0f} |")
    return 0


def _print_verdict(report: dict) -> None:
    t = report["totals"]
    print(f"{report['verdict']}: {report['output']} — {t['file_bytes'] / 1e6:.2f} MB, "
          f"{t['bits_per_weight']:.4f} bits/weight, {t['compression_vs_source']:.2f}x smaller than the source, "
          f"{t['seconds']:.1f} s")
    for f in report["failing"]:
        print(f"  failing: {f}")


def cmd_quantize(args: argparse.Namespace) -> int:
    if args.dry_run:
        p = bq.plan(args.input, args.policy, target_size=args.target_size, target_bpw=args.target_bpw,
                    threads=args.threads)
        print(p["text"], end="")
        return 0
    report = bq.quantize_model(args.input, args.output, policy=args.policy, threads=args.threads,
                               target_size=args.target_size, target_bpw=args.target_bpw, imatrix=args.imatrix,
                               report_path=args.report, calib=args.calib, method=args.method,
                               holdout=args.holdout, heldout=args.heldout, damp=args.damp, act_order=args.act_order,
                               accept=args.accept or (), manifest=not args.no_manifest,
                               compress=args.compress, progress=False if args.quiet else None)
    _print_verdict(report)
    if "compressed" in report:
        c = report["compressed"]
        print(f"{c['codec']}: {c['path']} {c['compressed_bytes'] / 1e6:.2f} MB, "
              f"ratio {c['ratio']:.4f} (compressed / original)")
    for f in report["files"][1:]:
        print(f"wrote {f}")
    return 0 if report["verdict"] == "GO" else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    info = bq.inspect(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: GGUF v{info['version']}, alignment {info['alignment']}, "
          f"{info['file_bytes'] / 1e6:.2f} MB, {len(info['tensors'])} tensors, "
          f"{info['bits_per_weight']:.4f} bits/weight")
    print("\nmetadata:")
    for k, v in info["metadata"].items():
        print(f"  {k} = {v}")
    print("\n| type | tensors | elements | MB |\n|---|---|---|---|")
    for name, h in sorted(info["type_histogram"].items()):
        print(f"| {name} | {h['tensors']} | {h['elements']} | {h['bytes'] / 1e6:.2f} |")
    print("\n| tensor | type | shape | bytes |\n|---|---|---|---|")
    for t in info["tensors"]:
        print(f"| {t['name']} | {t['type']} | {'x'.join(map(str, t['shape']))} | {t['bytes']} |")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    report = bq.validate_model(args.original, args.quantized, accept=args.accept or (), threads=args.threads)
    if args.report:
        with open(args.report + ".json", "w") as f:
            json.dump({k: v for k, v in report.items() if k != "markdown"}, f, indent=2)
        with open(args.report + ".md", "w") as f:
            f.write(report["markdown"])
    print(report["markdown"] if args.verbose else "", end="")
    print(f"{report['verdict']}: {len(report['tensors'])} tensors compared")
    for f in report["failing"]:
        print(f"  failing: {f}")
    return 0 if report["verdict"] == "GO" else 1


def cmd_demo(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, exist_ok=True)
    src = os.path.join(args.dir, "demo-f16.gguf")
    out = os.path.join(args.dir, "demo-q4_k_m.gguf")
    t0 = time.perf_counter()
    params = bq.make_demo_model(src, small=args.small, threads=args.threads)
    print(f"generated {src}: llama-shaped F16 model, {params / 1e6:.1f} M parameters "
          f"({time.perf_counter() - t0:.1f} s)")
    report = bq.quantize_model(src, out, policy=args.policy, threads=args.threads, compress=args.compress)
    _print_verdict(report)
    if "compressed" in report:
        c = report["compressed"]
        print(f"{c['codec']}: {c['compressed_bytes'] / 1e6:.2f} MB, ratio {c['ratio']:.4f} (compressed / original)")
    check = bq.validate_model(src, out, threads=args.threads)
    print(f"validate {out} against {src}: {check['verdict']}")
    for f in report["files"]:
        print(f"  {f}")
    return 0 if report["verdict"] == "GO" and check["verdict"] == "GO" else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockquant", description="GGUF-compatible block quantization")
    p.add_argument("--version", action="version", version=f"blockquant {bq.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("types", help="list the tensor types and their block sizes")
    s.set_defaults(func=cmd_types)

    s = sub.add_parser("error-table", help="quantize N(0,1) data with every type and print the error")
    s.add_argument("--rows", type=int, default=1024)
    s.add_argument("--cols", type=int, default=4096)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_error_table)

    s = sub.add_parser("quantize", help="quantize a GGUF model, validate every tensor, export report and manifest")
    s.add_argument("input")
    s.add_argument("output", nargs="?", default="")
    s.add_argument("--policy", default="Q4_K_M",
                   help="Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0, int8-core, aggressive, balanced[:GLOBS]")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--accept", action="append", metavar="KEY=VALUE",
                   help="threshold override: rel_rmse.Q4_K=0.08, rel_rmse=0.1, cosine.min=0.99")
    s.add_argument("--target-size", help="size budget for the tensors, e.g. 2.0GB or 1.5GiB")
    s.add_argument("--target-bpw", type=float, help="bits/weight budget, e.g. 4.3")
    s.add_argument("--imatrix", help="llama.cpp importance matrix (imatrix.gguf or legacy .dat)")
    s.add_argument("--calib", help="input activations per tensor (.npz, keys = tensor names) or an importance "
                                   "matrix; docs/calibration.md")
    s.add_argument("--method", choices=["rtn", "imatrix", "gptq", "awq"],
                   help="how tensors with activations are quantized (default: gptq for .npz, imatrix otherwise)")
    s.add_argument("--holdout", type=float, default=0.25,
                   help="fraction of each activation array (its last rows) kept out of calibration to measure "
                        "the layer-output error (default 0.25)")
    s.add_argument("--heldout", help="held-out activations (.npz, same keys) instead of --holdout")
    s.add_argument("--damp", type=float, default=0.01, help="GPTQ damping, a fraction of mean(diag(X^T X))")
    s.add_argument("--act-order", action="store_true", help="GPTQ: columns by decreasing activation energy")
    s.add_argument("--report", help="write the report to REPORT.json and REPORT.md (default: OUT.report.*)")
    s.add_argument("--compress", choices=["gzip", "zstd"])
    s.add_argument("--no-manifest", action="store_true")
    s.add_argument("--dry-run", action="store_true", help="print the plan (rule, type, bytes per tensor) and stop")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("inspect", help="header, metadata, tensor table and type histogram of a GGUF file")
    s.add_argument("file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("validate", help="compare a quantized GGUF with its original, tensor by tensor")
    s.add_argument("original")
    s.add_argument("quantized")
    s.add_argument("--accept", action="append", metavar="KEY=VALUE")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--report", help="write REPORT.json and REPORT.md")
    s.add_argument("--verbose", action="store_true")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("demo", help="generate the embedded model and run quantize -> validate -> export on it")
    s.add_argument("--dir", default="demo-out")
    s.add_argument("--policy", default="Q4_K_M")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--compress", choices=["gzip", "zstd"], default="gzip")
    s.add_argument("--small", action="store_true", help="a ~1M-parameter model (for tests)")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quantize" and not args.dry_run and not args.output:
        print("blockquant quantize: an output path is required (or --dry-run)", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (bq.Error, OSError, ImportError, ValueError) as e:
        print(f"blockquant: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
