"""blockquant: GGUF-compatible block quantization.

    >>> import numpy as np, blockquant as bq
    >>> qt = bq.quantize(np.random.randn(8, 256).astype(np.float32), "q4_k")
    >>> qt.type, qt.shape, qt.nbytes
    ('Q4_K', (8, 256), 1152)
    >>> w = bq.dequantize(qt)   # float32, shape (8, 256)

The bytes in ``qt.data`` are exactly what a GGUF file stores for the tensor,
so ``gguf.quants.dequantize`` (llama.cpp's Python package) decodes them to
the same floats, bit for bit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import (
    DeviceError,
    Error,
    FormatError,
    InvalidArgumentError,
    IoError,
    LimitError,
    NonFiniteError,
    ShapeError,
    UnsupportedTypeError,
    ValidationError,
)

from . import calib  # noqa: E402  (bq.calib)
from .flow import Policy, compress_file, inspect, make_demo_model, plan, quantize_model, validate_model

__version__: str = _core.__version__


def __getattr__(name: str) -> Any:
    # bq.torch and bq.cuda load on first use, so `import blockquant` never needs PyTorch
    # or the CUDA module.
    if name in ("torch", "cuda"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "QuantizedTensor", "TypeInfo", "quantize", "dequantize", "types", "matmul", "cpu_targets",
    "quantize_model", "plan", "Policy", "inspect", "validate_model", "make_demo_model", "compress_file",
    "Error", "InvalidArgumentError", "UnsupportedTypeError", "ShapeError", "NonFiniteError",
    "IoError", "FormatError", "LimitError", "DeviceError", "ValidationError",
]


@dataclass(frozen=True)
class TypeInfo:
    """Facts about one tensor type (GGUF's ggml_type)."""

    name: str
    id: int
    block_elems: int
    block_bytes: int
    bits_per_weight: float
    quantized: bool
    storable: bool


def types() -> List[TypeInfo]:
    """Every type blockquant knows, with its block size and bits per weight."""
    return [TypeInfo(**t) for t in _core.types()]


def _threads(threads: Optional[int]) -> int:
    if threads is None:
        return os.cpu_count() or 1
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


class QuantizedTensor:
    """A tensor held as GGUF blocks: ``data`` is the raw block bytes (uint8)."""

    __slots__ = ("_type", "_shape", "_data")

    def __init__(self, type: str, shape: Sequence[int], data: np.ndarray) -> None:
        self._type = _core.canonical_type_name(type)
        self._shape = tuple(int(s) for s in shape)
        if len(self._shape) == 0 or any(s <= 0 for s in self._shape):
            raise ShapeError(f"shape must have positive dimensions, got {self._shape}")
        rows = int(np.prod(self._shape[:-1], dtype=np.int64)) if len(self._shape) > 1 else 1
        expected = rows * _core.row_bytes(self._type, self._shape[-1])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError("data must be a 1-D numpy uint8 array")
        if data.nbytes != expected:
            raise ShapeError(
                f"{data.nbytes} bytes do not hold a {self._type} tensor of shape {self._shape} "
                f"({expected} bytes)")
        self._data = data

    @classmethod
    def from_bytes(cls, type: str, shape: Sequence[int], buffer: Any) -> "QuantizedTensor":
        """Wraps raw GGUF block bytes (bytes, bytearray, memoryview or uint8 array) without copying
        when the buffer allows it."""
        data = np.frombuffer(buffer, dtype=np.uint8) if not isinstance(buffer, np.ndarray) else buffer
        if isinstance(buffer, np.ndarray):
            if buffer.dtype != np.uint8:
                raise TypeError(f"buffer must hold uint8 bytes, got dtype {buffer.dtype}")
            if not buffer.flags.c_contiguous:
                raise TypeError("buffer must be C-contiguous")
            data = buffer.reshape(-1)
        return cls(type, shape, data)

    @property
    def type(self) -> str:
        return self._type

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def data(self) -> np.ndarray:
        return self._data

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @property
    def n_elements(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / self.n_elements

    @property
    def _rows_cols(self) -> Tuple[int, int]:
        return self.n_elements // self._shape[-1], self._shape[-1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        return (self._type == other._type and self._shape == other._shape
                and np.array_equal(self._data, other._data))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"QuantizedTensor(type={self._type!r}, shape={self._shape}, nbytes={self.nbytes}, "
                f"bits_per_weight={self.bits_per_weight:.4g})")


def _check_array(array: Any) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(array).__name__}")
    if array.ndim == 0 or array.size == 0:
        raise ShapeError(f"expected a non-empty array with at least one axis, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise TypeError("array must be C-contiguous (np.ascontiguousarray makes a copy if you accept one)")
    return array


def quantize(array: np.ndarray, type: str, importance: Optional[np.ndarray] = None,
             threads: Optional[int] = None, source_dtype: Optional[str] = None,
             device: Optional[str] = None) -> QuantizedTensor:
    """Quantizes ``array`` (float32, float16 or bfloat16; rows along the last axis) to ``type``.

    ``importance``: optional float32 weights, one per column (an importance-matrix row);
    the quantizer then minimises the importance-weighted squared error.
    ``source_dtype="bf16"`` marks a uint16 array as raw bfloat16 bits (for numpy without
    ml_dtypes). The GIL is released while the quantizer runs on ``threads`` threads
    (default: every core). The bytes do not depend on ``threads``.

    ``device``: ``None`` (the CPU, or the GPU when ``array`` is a CUDA array: a PyTorch CUDA
    tensor or any ``__cuda_array_interface__`` object), ``"cuda"`` (the GPU; ``DeviceError``
    without one; host arrays move through PyTorch) or ``"auto"`` (the GPU when usable, else
    the CPU). Every device writes the same bytes; the result's bytes are on the host.
    """
    from . import cuda as _gpu
    if _gpu.use_gpu(device, array, importance):
        if source_dtype is not None:
            raise ValueError("source_dtype is for host arrays on the CPU (device=None)")
        qtype = _core.canonical_type_name(type)
        data, shape = _gpu.quantize_to_host(array, qtype, importance)
        return QuantizedTensor(qtype, shape, data)
    array = _check_array(array)
    if source_dtype is None and array.dtype not in (np.float32, np.float16) and array.dtype.name != "bfloat16":
        raise TypeError(f"expected float32, float16 or bfloat16 data, got dtype {array.dtype}")
    if source_dtype is not None and source_dtype.lower() not in ("f32", "f16", "bf16"):
        raise ValueError(f"source_dtype must be 'f32', 'f16' or 'bf16', got {source_dtype!r}")
    if importance is not None:
        if not isinstance(importance, np.ndarray) or importance.dtype != np.float32:
            raise TypeError("importance must be a float32 numpy array")
        if not importance.flags.c_contiguous or importance.ndim != 1:
            raise TypeError("importance must be a 1-D C-contiguous array")
    cols = int(array.shape[-1])
    rows = int(array.size // cols)
    data = _core.quantize(array.reshape(-1), rows, cols, type, importance, _threads(threads),
                          source_dtype or "")
    return QuantizedTensor(type, array.shape, data)


def _require_kernels() -> None:
    if not _core.has_kernels:
        raise ImportError("this build of blockquant has no SIMD kernels (Highway was not found at build time)")


def cpu_targets() -> dict:
    """The Highway targets compiled in, those this CPU supports, and the one in use
    (BLOCKQUANT_CPU_TARGET, read at the first kernel call, forces one)."""
    _require_kernels()
    return _core.cpu_targets()


def matmul(qt: QuantizedTensor, x: np.ndarray, threads: Optional[int] = None,
           activations: str = "q8", device: Optional[str] = None) -> np.ndarray:
    """``x @ W.T`` for a quantized weight ``qt`` of shape (out, in) and ``x`` of shape (in,) or
    (n, in), float32 or float16; returns float32 (out,) or (n, out). ``activations="q8"``
    (the default) quantizes each row of x to the weight type's q8 partner, as llama.cpp does;
    ``"f32"`` keeps x in float. The GIL is released while the kernel runs.

    ``device`` as in ``bq.quantize``: on the GPU the weights are copied there on every call
    (keep them on the GPU with ``bq.cuda.matmul`` for repeated products), ``activations`` is
    the CUDA kernels' own choice (docs/cuda.md), a host x gives a host result and a CUDA x a
    CUDA result."""
    if not isinstance(qt, QuantizedTensor) or len(qt.shape) != 2:
        raise TypeError("qt must be a 2-D QuantizedTensor (out, in)")
    from . import cuda as _gpu
    if _gpu.use_gpu(device, x):
        return _gpu.matmul_any(qt.data, qt.type, (qt.shape[0], qt.shape[1]), x)
    _require_kernels()
    if activations not in ("q8", "f32"):
        raise ValueError(f"activations must be 'q8' or 'f32', got {activations!r}")
    x = _check_array(x)
    if x.dtype not in (np.float32, np.float16):
        raise TypeError(f"x must be float32 or float16, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != qt.shape[1]:
        raise ShapeError(f"x of shape {x.shape} does not match weights of shape {qt.shape}")
    x2 = x.reshape(-1, qt.shape[1]).astype(np.float32, copy=False)
    y = _core.matmul(qt.data, qt.shape[0], qt.shape[1], qt.type, np.ascontiguousarray(x2), x2.shape[0],
                     activations == "q8", _threads(threads))
    return y.reshape(qt.shape[0]) if x.ndim == 1 else y


def dequantize(qt: QuantizedTensor, threads: Optional[int] = None) -> np.ndarray:
    """Decodes ``qt`` to a float32 array of ``qt.shape`` (GIL released)."""
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"expected a QuantizedTensor, got {type(qt).__name__}")
    rows, cols = qt._rows_cols
    return _core.dequantize(qt.data, rows, cols, qt.type, _threads(threads)).reshape(qt.shape)
