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


class Policy:
    """Which tensor gets which type: a preset ("Q4_K_M", "Q3_K_S", ...), a hybrid ("int8-core",
    "aggressive", "balanced:GLOB,..."), a rule-file path (*.json), or rules given inline as a
    dict in the rule-file format (docs/policies.md), e.g.
    ``bq.Policy({"version": 1, "default": "Q4_K", "rules": [{"role": "output", "type": "Q6_K"}]})``."""

    def __init__(self, spec: Any) -> None:
        self._tmp: Optional[str] = None
        if isinstance(spec, Policy):
            spec = spec.spec
        if isinstance(spec, dict):
            import tempfile
            fd, self._tmp = tempfile.mkstemp(suffix=".json", prefix="bq-policy-")
            with os.fdopen(fd, "w") as f:
                json.dump(spec, f)
            self.spec = self._tmp
            self.rules: Optional[Dict[str, Any]] = spec
        elif isinstance(spec, str) and spec:
            self.spec = spec
            self.rules = None
        else:
            raise TypeError("a policy is a preset name, a rule-file path or a dict of rules")

    def __del__(self) -> None:
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __repr__(self) -> str:
        return f"Policy({self.rules if self.rules is not None else self.spec!r})"


def _policy(policy: Any) -> str:
    return policy.spec if isinstance(policy, Policy) else Policy(policy).spec if isinstance(policy, dict) else policy


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


def quantize_model(input: str, output: str, policy: Any = "Q4_K_M", threads: Optional[int] = None,
                   accept: Iterable[str] = (), reports: bool = True, manifest: bool = True,
                   compress: Optional[str] = None, progress: Any = None,
                   target_size: Optional[Any] = None, target_bpw: Optional[float] = None,
                   imatrix: Optional[str] = None, report_path: Optional[str] = None,
                   calib: Optional[str] = None, method: Optional[str] = None, holdout: float = 0.25,
                   heldout: Optional[str] = None, damp: float = 0.01, act_order: bool = False) -> Dict[str, Any]:
    """Quantizes the GGUF file ``input`` into ``output`` with ``policy`` (a ``Policy``, a preset
    such as "Q4_K_M", a hybrid, a rule-file path or a dict of rules), measures every tensor,
    and writes ``output``.report.json/.md and ``output``.manifest.json. ``accept`` overrides
    thresholds ("rel_rmse.Q4_K=0.08", "cosine.min=0.99"). ``compress``: "gzip" or "zstd"
    also writes a compressed copy and records its measured ratio. Returns the report (a dict);
    ``report["verdict"]`` is "GO" or "NO-GO". ``target_size`` (bytes or "2.0GB") or ``target_bpw``
    let the budget solver pick per-tensor types that fit and minimise the total squared error,
    measured per tensor and candidate type on a sample of rows. ``imatrix``: a llama.cpp
    importance matrix (GGUF or legacy .dat) whose per-column mean x^2 weights the rounding.
    ``report_path``: write the report to REPORT_PATH.json/.md instead of beside the output.
    ``progress``: True prints a progress line (the default on a terminal); a callable is called
    after each tensor with a dict (index, count, name, done_bytes, total_bytes, seconds), e.g. to
    drive a notebook progress bar; an exception it raises stops the run and nothing is written.

    Calibration (docs/calibration.md): ``calib`` is an ``.npz`` of input activations per tensor
    name, or a llama.cpp importance matrix. ``method``: "rtn", "imatrix", "gptq" (the default
    for activations; ``damp``, ``act_order``) or "awq" (scales folded into attn_norm/ffn_norm).
    Tensors with activations get their held-out layer-output error in the report, and that
    error decides their pass (``accept`` "layer_error=0.05"). Held-out rows: the last
    ``holdout`` fraction of each array, or the arrays of a second file ``heldout``."""
    if compress not in (None, "gzip", "zstd"):
        raise ValueError(f"compress must be 'gzip' or 'zstd', got {compress!r}")
    on_tensor = progress if callable(progress) else None
    if progress is None:
        progress = sys.stderr.isatty()
    target_bytes = -1 if target_size is None else (
        parse_size(target_size) if isinstance(target_size, str) else int(target_size))
    bpw = -1.0 if target_bpw is None else float(target_bpw)
    keep = Policy(policy) if isinstance(policy, dict) else policy  # keeps an inline rule file alive
    hook = None
    if calib is not None or method is not None:
        from .calib_flow import calibration_hook
        hook, imatrix = calibration_hook(input, calib, method, imatrix, _policy(keep), target_bytes, bpw,
                                         holdout, heldout, damp, act_order, _threads(threads))
    out = _core.quantize_model(input, output, _policy(keep), _threads(threads), list(accept), False,
                               reports and report_path is None,
                               manifest and compress is None, bool(progress), target_bytes, bpw,
                               imatrix or "", on_tensor, hook)
    report = json.loads(out.report_json)
    report["files"] = list(out.files)
    if report_path is not None:
        for ext, text in ((".json", out.report_json), (".md", out.report_markdown)):
            _write_atomic(report_path + ext, text)
            report["files"].append(report_path + ext)
        if manifest and compress is None:
            _write_manifest_with(output, report)
    if compress is not None:
        report["compressed"] = compress_file(output, compress)
        report["files"].append(report["compressed"]["path"])
        if manifest:  # the manifest lists the compressed file too, so it is written last
            _write_manifest_with(output, report)
    return report


def plan(input: str, policy: Any = "Q4_K_M", target_size: Optional[Any] = None,
         target_bpw: Optional[float] = None, threads: Optional[int] = None) -> Dict[str, Any]:
    """The per-tensor plan (type, rule, bytes) and totals, before any quantization. With a
    budget the solver samples each tensor's error per candidate type (a few seconds)."""
    target_bytes = -1 if target_size is None else (
        parse_size(target_size) if isinstance(target_size, str) else int(target_size))
    keep = Policy(policy) if isinstance(policy, dict) else policy
    out = _core.quantize_model(input, "", _policy(keep), _threads(threads), [], True, False, False, False,
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


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_manifest_with(output: str, report: Dict[str, Any]) -> None:
    """Manifest listing the GGUF and, when there is one, its compressed copy (sizes and SHA-256)."""
    import hashlib

    files: List[Dict[str, Any]] = []
    for p in [output] + ([report["compressed"]["path"]] if "compressed" in report else []):
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
        "compressed": ({k: report["compressed"][k] for k in ("codec", "original_bytes", "compressed_bytes", "ratio")}
                       if "compressed" in report else None),
        "tensors": [{"name": t["name"], "type": t["type"], "shape": t["shape"], "bytes": t["bytes"]}
                    for t in report["tensors"]],
    }
    path = output + ".manifest.json"
    _write_atomic(path, json.dumps(manifest, indent=2))
    report["files"].append(path)
