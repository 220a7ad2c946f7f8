"""Calibration-aware quantization: importance matrices, GPTQ-style error compensation and
AWQ-style activation scaling, all writing plain GGUF blocks (docs/calibration.md).

    >>> qt = bq.calib.quantize(w, "Q4_K", calib=X, method="gptq")
    >>> bq.calib.layer_error(w, qt, X_heldout)   # ||X W^T - X Wq^T|| / ||X W^T||

``X`` holds the layer's input activations, one sample per row (n_samples x in_features).
Measure ``layer_error`` on activations the quantizer did not see.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import NonFiniteError, ShapeError
from .flow import _threads

METHODS = ("rtn", "imatrix", "gptq")


def _require_calib() -> None:
    if not _core.has_calib:
        raise ImportError("this build of blockquant has no calibration kernels (Eigen was not found at build time)")


def _f32_2d(a: Any, what: str, cols: Optional[int] = None) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float16, np.float64) and a.dtype.name != "bfloat16":
        raise TypeError(f"{what} must be floating point, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.size == 0:
        raise ShapeError(f"{what} must be a non-empty 2-D array, got shape {a.shape}")
    if cols is not None and a.shape[1] != cols:
        raise ShapeError(f"{what} has {a.shape[1]} columns; the weight has {cols}")
    return np.ascontiguousarray(a, dtype=np.float32)


def importance(calib: np.ndarray) -> np.ndarray:
    """Mean x^2 per input column of activations (n_samples x in): an imatrix row."""
    x = _f32_2d(calib, "calib")
    if not np.isfinite(x).all():
        raise NonFiniteError("non_finite: calibration activations hold NaN or Inf")
    return np.ascontiguousarray((x.astype(np.float64) ** 2).mean(axis=0), dtype=np.float32)


def quantize(weight: np.ndarray, type: str, calib: Optional[np.ndarray] = None, method: str = "gptq",
             damp: float = 0.01, act_order: bool = False, threads: Optional[int] = None,
             device: Optional[str] = None):
    """Quantizes a (out, in) weight to ``type`` using calibration activations ``calib``
    (n_samples x in). ``method``: ``"rtn"`` plain rounding (calib unused), ``"imatrix"``
    rounding weighted by mean x^2 per column, ``"gptq"`` error compensation through
    H = X^T X + damp * mean(diag H) * I, columns in order or, with ``act_order``, by
    decreasing diag(H). Returns a ``bq.QuantizedTensor`` of standard GGUF blocks; the bytes
    do not depend on ``threads``. ``device="cuda"`` runs gptq on the GPU (Q2_K..Q6_K, no
    act_order; needs PyTorch): the same algorithm, its sums in another order, so a few values
    may take the neighbouring level (docs/calibration.md)."""
    from . import QuantizedTensor, quantize as plain_quantize
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    w = _f32_2d(weight, "weight")
    if method == "rtn":
        return plain_quantize(w, type, threads=threads)
    if calib is None:
        raise ValueError(f"method {method!r} needs calib= activations (n_samples x {w.shape[1]})")
    x = _f32_2d(calib, "calib", w.shape[1])
    if method == "imatrix":
        return plain_quantize(w, type, importance=importance(x), threads=threads)
    if not (damp >= 0.0):
        raise ValueError(f"damp must be >= 0, got {damp}")
    if device is not None:
        if device != "cuda":
            raise ValueError(f"device must be None (the CPU) or 'cuda', got {device!r}")
        if act_order:
            raise ValueError("act_order runs on the CPU only (device=None)")
        from .calib_cuda import gptq_quantize as gptq_cuda
        for a, what in ((w, "weight"), (x, "calib")):
            if not np.isfinite(a).all():
                raise NonFiniteError(f"non_finite: the {what} holds NaN or Inf")
        qtype = _core.canonical_type_name(type)
        data = gptq_cuda(w, qtype, x, float(damp))
        return QuantizedTensor(qtype, w.shape, data)
    _require_calib()
    data = _core.gptq_quantize(w, type, x, float(damp), bool(act_order), _threads(threads))
    return QuantizedTensor(type, w.shape, data)


def layer_error(weight: np.ndarray, qt, x: np.ndarray, threads: Optional[int] = None) -> float:
    """Relative layer-output error ||X W^T - X Wq^T|| / ||X W^T|| of quantized ``qt`` (or a
    float array of the weight's shape) against ``weight`` on activations ``x``."""
    from . import QuantizedTensor, dequantize
    _require_calib()
    w = _f32_2d(weight, "weight")
    wq = dequantize(qt, threads=threads) if isinstance(qt, QuantizedTensor) else np.asarray(qt)
    wq = _f32_2d(wq.reshape(w.shape) if wq.size == w.size else wq, "quantized weight", w.shape[1])
    if wq.shape != w.shape:
        raise ShapeError(f"quantized weight has shape {wq.shape}; the weight has {w.shape}")
    return float(_core.layer_error(w, wq, _f32_2d(x, "x", w.shape[1]), _threads(threads)))


def awq_scales(weights: Sequence[np.ndarray], calib: np.ndarray, type: str, grid: int = 20,
               max_search_samples: int = 256, threads: Optional[int] = None) -> Dict[str, Any]:
    """Searches AWQ per-input-channel scales s for weights that read the same input (q/k/v
    after attn_norm, gate/up after ffn_norm). Returns ``{"scales", "alpha", "error",
    "error_unscaled"}``. Export ``W * s`` (per column) quantized, and fold ``1/s`` into the
    norm weight before the layer; the float model's outputs are unchanged."""
    _require_calib()
    ws = [_f32_2d(w, "weight") for w in weights]
    if not ws:
        raise ValueError("awq_scales needs at least one weight")
    x = _f32_2d(calib, "calib", ws[0].shape[1])
    return _core.awq_search(type, ws, x, int(grid), int(max_search_samples), _threads(threads))


class ImatrixCollector:
    """Accumulates per-weight sums of x^2 per input column from activations, the numbers
    llama.cpp's imatrix tool records. Feed it from your own calibration loop::

        col = bq.calib.ImatrixCollector()
        col.add("blk.0.attn_q.weight", x)          # x: (..., in) activations entering the weight
        col.save("imatrix.gguf")                    # or .dat (legacy); llama.cpp reads both
        bq.quantize_model(src, dst, "Q4_K_M", imatrix="imatrix.gguf")
    """

    def __init__(self) -> None:
        self._sum2: Dict[str, np.ndarray] = {}
        self._count: Dict[str, int] = {}
        self.chunks = 0
        self.datasets: List[str] = []

    def add(self, name: str, x: Any) -> None:
        """Adds activations entering weight ``name``; the last axis is the input width."""
        a = np.asarray(x)
        if a.ndim == 0 or a.size == 0:
            raise ShapeError(f"activations for {name!r} must be a non-empty array")
        a = a.reshape(-1, a.shape[-1]).astype(np.float64, copy=False)
        if not np.isfinite(a).all():
            raise NonFiniteError(f"non_finite: activations for {name!r} hold NaN or Inf")
        s = (a * a).sum(axis=0)
        if name in self._sum2:
            if self._sum2[name].shape != s.shape:
                raise ShapeError(f"activations for {name!r} have {s.shape[0]} columns; "
                                 f"earlier ones had {self._sum2[name].shape[0]}")
            self._sum2[name] += s
        else:
            self._sum2[name] = s
        self._count[name] = self._count.get(name, 0) + a.shape[0]

    def end_chunk(self) -> None:
        """Counts one calibration chunk (llama.cpp records how many it saw)."""
        self.chunks += 1

    def names(self) -> List[str]:
        return sorted(self._sum2)

    def count(self, name: str) -> int:
        return self._count.get(name, 0)

    def importance(self, name: str) -> np.ndarray:
        """Mean x^2 per column for ``name`` (float32), what the quantizers weight with."""
        return (self._sum2[name] / self._count[name]).astype(np.float32)

    def save(self, path: str, format: Optional[str] = None, chunk_size: int = 0) -> None:
        """Writes llama.cpp's GGUF imatrix (default; ``.dat`` paths get the legacy format)."""
        fmt = format or ("dat" if path.endswith(".dat") else "gguf")
        entries = {n: (self._sum2[n].astype(np.float32), np.array([self._count[n]], np.float32),
                       int(self._sum2[n].shape[0])) for n in self._sum2}
        _core.save_imatrix(path, entries, self.datasets, self.chunks, int(chunk_size), fmt)

    @classmethod
    def load(cls, path: str) -> "ImatrixCollector":
        """Reads a GGUF or legacy .dat imatrix (its first matrix per entry; counts as stored)."""
        m = _core.load_imatrix(path)
        out = cls()
        for name, (sum2, counts, cols) in m["entries"].items():
            out._sum2[name] = np.asarray(sum2[:cols], np.float64)
            out._count[name] = int(counts[0])
        out.chunks = int(m["chunk_count"])
        out.datasets = list(m["datasets"])
        return out


def load_imatrix(path: str) -> Dict[str, Any]:
    """The raw contents of an imatrix file: entries {name: (sum2, counts, cols)}, datasets,
    chunk_count, chunk_size."""
    return _core.load_imatrix(path)


def make_demo_activations(model: str, path: str, rows: int = 1024, seed: int = 0) -> Dict[str, Tuple[int, int]]:
    """Writes ``path`` (.npz): synthetic input activations for every 2-D linear weight of
    ``model`` (a GGUF or safetensors file, e.g. ``bq.make_demo_model``'s), shaped like real
    ones: a low-rank Student-t signal with a power-law spectrum, isotropic noise, and 1% of
    channels 20-100x the median. Weights reading one input (q/k/v, gate/up) share one array,
    keyed by the first of them. For trying the calibrated flow, not for real calibration:
    record your model's own activations (``ImatrixCollector`` shows where). Returns
    {key: shape}."""
    if rows < 2:
        raise ValueError(f"rows must be >= 2, got {rows}")
    if not path.endswith(".npz"):
        raise ValueError(f"path must end in .npz (numpy would add it), got {path!r}")
    rng = np.random.default_rng(seed)
    shared = {"attn_k": "attn_q", "attn_v": "attn_q", "ffn_up": "ffn_gate"}
    arrays: Dict[str, np.ndarray] = {}
    for t in _core.inspect(model)["tensors"]:
        parts = t["name"].split(".")
        if len(t["shape"]) != 2 or parts[0] != "blk" or parts[-1] != "weight" or parts[2] in shared:
            continue
        cols = int(t["shape"][0])
        k = min(64, cols)
        basis = rng.standard_normal((k, cols)) * (np.arange(1, k + 1) ** -0.7)[:, None]
        x = rng.standard_t(4, size=(rows, k)) @ basis + 0.3 * rng.standard_normal((rows, cols))
        outliers = rng.choice(cols, max(1, cols // 100), replace=False)
        x[:, outliers] *= rng.uniform(20, 100, size=outliers.size)
        arrays[t["name"]] = x.astype(np.float32)
    if not arrays:
        raise ShapeError(f"'{model}' has no blk.N.*.weight matrices to make activations for")
    tmp = path[:-4] + ".tmp.npz"  # written whole, then renamed: no partial file at path
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return {k: v.shape for k, v in arrays.items()}
