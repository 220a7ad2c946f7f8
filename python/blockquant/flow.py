"""The quantize -> validate -> export flow, from Python.

    >>> report = bq.quantize_model("model-f16.gguf", "model-q4_k_m.gguf", policy="Q4_K_M")
    >>> report["verdict"], report["totals"]["bits_per_weight"]

The report is the same JSON the CLI and the C++ tool write (docs/flow.md).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

from . import _core


def _threads(threads: Optional[int]) -> int:
    return threads if threads and threads > 0 else (os.cpu_count() or 1)


def parse_size(text: str) -> int:
    """"2.0GB", "1.5GiB", "500MB", "123456" -> bytes (GB = 10^9, GiB = 2^30)."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    t = text.strip().upper()
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    if unit not in units or not num:
        raise ValueError(f"cannot read size {text!r} (use e.g. 2.0GB, 1.5GiB, 500MB)")
    return int(float(num) * units[unit])


def quantize_model(input: str, output: str, policy: str = "Q4_K_M", threads: Optional[int] = None,
                   accept: Iterable[str] = (), reports: bool = True, manifest: bool = True,
                   compress: Optional[str] = None, progress: Optional[bool] = None,
                   target_size: Optional[Any] = None, target_bpw: Optional[float] = None,
                   imatrix: Optional[str] = None) -> Dict[str, Any]:
    """Quantizes the GGUF file ``input`` into ``output`` with ``policy`` (a preset such as
    "Q4_K_M", or "int8-core", "aggressive", "balanced[:GLOB,...]"), measures every tensor,
    and writes ``output``.report.json/.md and ``output``.manifest.json. ``accept`` overrides
    thresholds ("rel_rmse.Q4_K=0.08", "cosine.min=0.99"). ``compress``: "gzip" or "zstd"
    also writes a compressed copy and records its measured ratio. Returns the report (a dict);
    ``report["verdict"]`` is "GO" or "NO-GO". ``target_size`` (bytes or "2.0GB") or ``target_bpw``
    let the budget solver pick per-tensor types that fit and minimise the total squared error,
    measured per tensor and candidate type on a sample of rows. ``imatrix``: a llama.cpp
    importance matrix (GGUF or legacy .dat) whose per-column mean x^2 weights the rounding."""
    if compress not in (None, "gzip", "zstd"):
        raise ValueError(f"compress must be 'gzip' or 'zstd', got {compress!r}")
    if progress is None:
        progress = sys.stderr.isatty()
    target_bytes = -1 if target_size is None else (
        parse_size(target_size) if isinstance(target_size, str) else int(target_size))
    out = _core.quantize_model(input, output, policy, _threads(threads), list(accept), False, reports,
                               manifest and compress is None, bool(progress), target_bytes,
                               -1.0 if target_bpw is None else float(target_bpw), imatrix or "")
    report = json.loads(out.report_json)
    report["files"] = list(out.files)
    if compress is not None:
        report["compressed"] = compress_file(output, compress)
        report["files"].append(report["compressed"]["path"])
        if manifest:  # the manifest lists the compressed file too, so it is written last
            _write_manifest_with(output, report)
    return report


def plan(input: str, policy: str = "Q4_K_M", target_size: Optional[Any] = None,
         target_bpw: Optional[float] = None, threads: Optional[int] = None) -> Dict[str, Any]:
    """The per-tensor plan (type, rule, bytes) and totals, before any quantization. With a
    budget the solver samples each tensor's error per candidate type (a few seconds)."""
    target_bytes = -1 if target_size is None else (
        parse_size(target_size) if isinstance(target_size, str) else int(target_size))
    out = _core.quantize_model(input, "", policy, _threads(threads), [], True, False, False, False,
                               target_bytes, -1.0 if target_bpw is None else float(target_bpw))
    report = json.loads(out.report_json)
    report["text"] = out.plan_text
    return report


def inspect(path: str, max_array: int = 16) -> Dict[str, Any]:
    """Header, metadata (long arrays summarised), tensor table, type histogram and size."""
    info = _core.inspect(path, max_array)
    hist: Dict[str, Dict[str, int]] = {}
    for t in info["tensors"]:
        h = hist.setdefault(t["type"], {"tensors": 0, "bytes": 0, "elements": 0})
        h["tensors"] += 1
        h["bytes"] += t["bytes"]
        h["elements"] += t["elements"]
    info["type_histogram"] = hist
    n = sum(t["elements"] for t in info["tensors"])
    info["bits_per_weight"] = 8.0 * sum(t["bytes"] for t in info["tensors"]) / n if n else 0.0
    return info


def validate_model(original: str, quantized: str, accept: Iterable[str] = (),
                   threads: Optional[int] = None) -> Dict[str, Any]:
    """Metrics of every tensor of ``quantized`` against ``original``, in the report format."""
    text, markdown = _core.compare_models(original, quantized, list(accept), _threads(threads))
    report = json.loads(text)
    report["markdown"] = markdown
    return report


def make_demo_model(path: str, small: bool = False, threads: Optional[int] = None) -> int:
    """Writes the embedded llama-shaped F16 GGUF (~125M parameters; ``small``: ~3M for tests).
    Returns the parameter count."""
    if small:
        return _core.make_demo_model(path, 2, 256, 512, 1000, _threads(threads))
    return _core.make_demo_model(path, threads=_threads(threads))


def compress_file(path: str, codec: str, level: Optional[int] = None) -> Dict[str, Any]:
    """Writes ``path``.gz or ``path``.zst (atomically) and returns the measured sizes and ratio.
    Quantized weights are near-random bits: expect ratios close to 1."""
    if codec == "gzip":
        target = path + ".gz"
        opener = lambda f: gzip.GzipFile(fileobj=f, mode="wb", compresslevel=level or 6, mtime=0)  # noqa: E731
    elif codec == "zstd":
        try:
            import zstandard
        except ImportError as e:
            raise ImportError("compress='zstd' needs the 'zstandard' package (pip install zstandard)") from e
        target = path + ".zst"
        opener = lambda f: zstandard.ZstdCompressor(level=level or 10).stream_writer(f)  # noqa: E731
    else:
        raise ValueError(f"unknown codec {codec!r}")
    tmp = f"{target}.tmp.{os.getpid()}"
    t0 = time.perf_counter()
    try:
        with open(path, "rb") as src, open(tmp, "wb") as raw:
            with opener(raw) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    original, compressed = os.path.getsize(path), os.path.getsize(target)
    return {"codec": codec, "path": target, "original_bytes": original, "compressed_bytes": compressed,
            "ratio": compressed / original if original else 1.0, "seconds": time.perf_counter() - t0}


def _write_manifest_with(output: str, report: Dict[str, Any]) -> None:
    """Manifest listing the GGUF and its compressed copy (sizes and SHA-256)."""
    import hashlib

    files: List[Dict[str, Any]] = []
    for p in [output, report["compressed"]["path"]]:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        files.append({"path": os.path.basename(p), "size": os.path.getsize(p), "sha256": h.hexdigest()})
    manifest = {
        "model": inspect(output, 0)["metadata"].get("general.name", "model"),
        "created_by": f"blockquant {_core.__version__}",
        "policy": report["policy"],
        "verdict": report["verdict"],
        "files": files,
        "tensor_count": report["totals"]["tensors"],
        "parameters": report["totals"]["parameters"],
        "bits_per_weight": report["totals"]["bits_per_weight"],
        "source_bytes": report["totals"]["source_bytes"],
        "compression_vs_source": report["totals"]["compression_vs_source"],
        "compressed": {k: report["compressed"][k] for k in ("codec", "original_bytes", "compressed_bytes", "ratio")},
        "tensors": [{"name": t["name"], "type": t["type"], "shape": t["shape"], "bytes": t["bytes"]}
                    for t in report["tensors"]],
    }
    path = output + ".manifest.json"
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    report["files"].append(path)
