"""The ``blockquant`` command line. One function per subcommand."""
from __future__ import annotations

import argparse
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
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except bq.Error as e:
        print(f"blockquant: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
