"""blockquant's CUDA kernels on device arrays the caller owns (``bq.cuda``).

Arrays are any objects with ``__cuda_array_interface__`` (CuPy, Numba, PyTorch) or PyTorch CUDA
tensors (bfloat16 included, which the interface cannot describe). They must be C-contiguous
and on the current CUDA device. Nothing is copied. Calls are asynchronous on ``stream``, a raw
``cudaStream_t`` as an int. The default is the tensor's current PyTorch stream for PyTorch
inputs, else 0 (the legacy default stream).

Outputs go to ``out`` when it is given. Otherwise one is made with the input's library, for
PyTorch or CuPy inputs only.

Errors: a missing GPU or driver raises ``bq.DeviceError`` at the first call, as does a kernel
launch that fails (out of memory included). Shapes and dtypes are checked before any kernel
runs (``ShapeError``, ``TypeError``). This module never falls back to the CPU: call
``bq.matmul`` for that.

    >>> import torch, blockquant as bq
    >>> w = torch.randn(4096, 4096, device="cuda")
    >>> x = torch.randn(2, 4096, device="cuda", dtype=torch.float16)
    >>> blocks = bq.cuda.quantize(w, "Q4_K")                # uint8 (4096, row_bytes)
    >>> y = bq.cuda.matmul(blocks, "Q4_K", x)               # float32 (2, 4096)
    >>> w2 = bq.cuda.dequantize(blocks, "Q4_K", dtype="F16")  # float16 (4096, 4096)
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Tuple

import numpy as np

from . import _core

__all__ = ["available", "device_count", "supported", "matmul", "dequantize", "quantize", "to_planar", "from_planar"]


_cuda_module: Any = None


def _module() -> Any:
    global _cuda_module
    if _cuda_module is None:
        try:
            from . import _cuda  # type: ignore[attr-defined]
        except ImportError:
            raise _core.DeviceError("this build of blockquant has no CUDA kernels (nvcc was not found at build time)")
        _cuda_module = _cuda
    return _cuda_module


def device_count() -> int:
    """CUDA devices visible to this process (0 without a driver or device, or without CUDA
    kernels in this build)."""
    try:
        return int(_module().device_count())
    except _core.DeviceError:
        return 0


def available() -> bool:
    """Whether the CUDA kernels can run here: built in, and a device is visible."""
    return device_count() > 0


def supported(qtype: str) -> bool:
    """Whether ``qtype`` has CUDA matmul and dequantize kernels (quantize takes every block type)."""
    return bool(_module().supported(_core.canonical_type_name(qtype)))


# typestr of __cuda_array_interface__ -> blockquant type name
_TYPESTR = {"<f4": "F32", "<f2": "F16", "|u1": "U8", "<u2": "U16"}
_TORCH = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "uint8": "U8"}


class _Arr:
    """Pointer, shape and element type of a device array, checked C-contiguous."""

    def __init__(self, obj: Any, what: str) -> None:
        self.obj = obj
        self.torch = type(obj).__module__.startswith("torch")
        if self.torch:
            if not obj.is_cuda:
                raise TypeError(f"{what} is a PyTorch tensor on {obj.device}, expected a CUDA tensor")
            if not obj.is_contiguous():
                raise ValueError(f"{what} must be contiguous (call .contiguous())")
            self.ptr = int(obj.data_ptr())
            self.shape: Tuple[int, ...] = tuple(int(s) for s in obj.shape)
            self.dtype = _TORCH.get(str(obj.dtype).replace("torch.", ""), str(obj.dtype))
            return
        cai = getattr(obj, "__cuda_array_interface__", None)
        if cai is None:
            raise TypeError(f"{what} must be a CUDA array (an object with __cuda_array_interface__, or a CUDA "
                            f"tensor), got {type(obj).__name__}; for host arrays use bq.matmul/bq.quantize")
        self.shape = tuple(int(s) for s in cai["shape"])
        self.dtype = _TYPESTR.get(cai["typestr"], cai["typestr"])
        self.ptr = int(cai["data"][0])
        strides = cai.get("strides")
        if strides is not None:
            itemsize = int(cai["typestr"][2:])
            expect, acc = [], itemsize
            for s in reversed(self.shape):
                expect.append(acc)
                acc *= s
            if tuple(strides) != tuple(reversed(expect)) and 0 not in self.shape:
                raise ValueError(f"{what} must be C-contiguous, got strides {tuple(strides)}")

    def stream(self, stream: Optional[int]) -> int:
        if stream is not None:
            return int(stream)
        if self.torch:
            import torch
            return int(torch.cuda.current_stream(self.obj.device).cuda_stream)
        return 0

    def empty(self, shape: Tuple[int, ...], dtype: str, what: str) -> Any:
        """A new array of the input's library, for ``out=None``."""
        if self.torch:
            import torch
            tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "U8": torch.uint8}[dtype]
            return torch.empty(shape, dtype=tdt, device=self.obj.device)
        if type(self.obj).__module__.startswith("cupy"):
            import cupy  # type: ignore[import-not-found]
            cdt = {"F32": cupy.float32, "F16": cupy.float16, "U8": cupy.uint8}.get(dtype)
            if cdt is None:
                raise TypeError(f"CuPy has no {dtype} arrays: pass {what}")
            return cupy.empty(shape, dtype=cdt)
        raise ValueError(f"pass {what}: only PyTorch and CuPy inputs get an output made for them")


def _out(arg: Any, src: _Arr, shape: Tuple[int, ...], dtype: str, what: str) -> Tuple[Any, _Arr]:
    obj = src.empty(shape, dtype, what) if arg is None else arg
    o = _Arr(obj, what)
    if o.shape != shape or o.dtype != dtype:
        raise _core.ShapeError(f"{what} must be {dtype} of shape {shape}, got {o.dtype} of shape {o.shape}")
    return obj, o


@functools.lru_cache(maxsize=None)
def _block(qtype: str) -> Tuple[int, int]:
    """(elements, bytes) of one block of qtype. Cached: building the type table took about
    half of a small matmul call's Python time."""
    for t in _core.types():
        if t["name"] == qtype:
            return int(t["block_elems"]), int(t["block_bytes"])
    raise _core.UnsupportedTypeError(f"unknown type {qtype}")


def _rows_cols(w: _Arr, qtype: str) -> Tuple[int, int]:
    """Rows and columns of a (rows, row_bytes) uint8 array of qtype blocks."""
    if w.dtype != "U8" or len(w.shape) != 2:
        raise TypeError(f"weights must be uint8 GGUF blocks of shape (rows, row_bytes), got {w.dtype} {w.shape}")
    elems, nbytes = _block(qtype)
    rows, rb = w.shape
    if rb == 0 or rb % nbytes:
        raise _core.ShapeError(f"a row of {rb} bytes is not whole {qtype} blocks of {nbytes} bytes")
    return rows, rb // nbytes * elems


def matmul(weights: Any, qtype: str, x: Any, out: Any = None, *, stream: Optional[int] = None,
           planar: bool = False) -> Any:
    """``out = x @ W.T`` (float32, (n, rows)) for W the (rows, row_bytes) uint8 GGUF blocks of
    ``qtype`` and x of shape (n, cols) or (cols,), float16, bfloat16 or float32. For float16/
    bfloat16 x and n <= 16, where the int8 kernels run (beyond n = 2 they need rows of a
    multiple of 256 values and, for Q4_K and Q5_K, an sm_90 GPU, for the others sm_80 or newer),
    and for Q2_K, Q3_K, Q6_K, Q8_0 and Q4_0 to n = 64 (an sm_90 GPU, rows of a multiple of 16 bytes),
    the kernel rounds x to int8 per 32 values (docs/cuda.md bounds the error); otherwise x is
    used as is. With float16 x on an sm_90 GPU, for Q4_K and Q5_K beyond n = 16 and for Q6_K
    (rows of a multiple of 2048 values), Q8_0 and Q4_0 beyond n = 32, the kernel rounds the
    weights to float16 in registers instead, as dequantizing them for cuBLAS would (each off by
    at most about 2^-10 of its scale and min terms). ``planar``: ``weights`` came from
    ``to_planar`` (the same bits; read in place, and faster, where the blocks would take the
    GEMV kernel: n <= 2 on those GPUs)."""
    cu = _module()
    qtype = _core.canonical_type_name(qtype)
    w = _Arr(weights, "weights")
    if planar:
        _check_planar_type(cu, qtype)
    rows, cols = _rows_cols(w, qtype)
    xa = _Arr(x, "x")
    if xa.dtype not in ("F16", "BF16", "F32"):
        raise TypeError(f"x must be float16, bfloat16 or float32, got {xa.dtype}")
    if len(xa.shape) not in (1, 2) or xa.shape[-1] != cols:
        raise _core.ShapeError(f"x of shape {xa.shape} does not match weights of {rows} x {cols}")
    n = 1 if len(xa.shape) == 1 else xa.shape[0]
    shape = (rows,) if len(xa.shape) == 1 else (n, rows)
    obj, o = _out(out, xa, shape, "F32", "out")
    if n > 0:
        # PyTorch x on its current stream: the scratch comes from PyTorch's caching allocator
        # (the library's own per-call allocation cost 3-9 us); stream order keeps it alive.
        # A planar call needs scratch only where it cannot read the planes in place.
        nbytes = 0
        if xa.torch and stream is None:
            if planar:
                in_place = cu.planar_in_place(qtype, w.ptr, cols, xa.dtype, xa.ptr, n)
                nbytes = 0 if in_place else cu.planar_workspace_bytes(qtype, rows, cols)
            else:
                nbytes = cu.workspace_bytes(qtype, n, cols)
        ws = _Arr(xa.empty((nbytes,), "U8", "workspace"), "workspace").ptr if nbytes else 0
        cu.matmul(qtype, w.ptr, rows, cols, xa.dtype, xa.ptr, n, o.ptr, xa.stream(stream), ws, nbytes, planar)
    return obj


def _check_planar_type(cu: Any, qtype: str) -> None:
    if not cu.planar_supported(qtype):
        raise _core.UnsupportedTypeError(f"the planar layout covers Q2_K, Q3_K and Q6_K, not {qtype}")


def _repack(src: Any, qtype: str, out: Any, stream: Optional[int], to_planar: bool) -> Any:
    cu = _module()
    qtype = _core.canonical_type_name(qtype)
    _check_planar_type(cu, qtype)
    s = _Arr(src, "weights")
    rows, cols = _rows_cols(s, qtype)
    obj, o = _out(out, s, s.shape, "U8", "out")
    cu.repack(qtype, s.ptr, rows, cols, o.ptr, s.stream(stream), to_planar)
    return obj


def to_planar(weights: Any, qtype: str, out: Any = None, *, stream: Optional[int] = None) -> Any:
    """The (rows, row_bytes) uint8 GGUF blocks of ``qtype`` (Q2_K, Q3_K, Q6_K) in the planar
    layout, an array of the same shape and size: the bytes regrouped so that ``matmul(...,
    planar=True)`` reads them with wide aligned loads (docs/cuda.md has the layout and what it
    saves). Keep it instead of the blocks; ``from_planar`` gives them back."""
    return _repack(weights, qtype, out, stream, True)


def from_planar(planes: Any, qtype: str, out: Any = None, *, stream: Optional[int] = None) -> Any:
    """The GGUF blocks of weights that ``to_planar`` repacked (the same shape)."""
    return _repack(planes, qtype, out, stream, False)


def dequantize(weights: Any, qtype: str, out: Any = None, *, dtype: str = "F32",
               stream: Optional[int] = None) -> Any:
    """The (rows, cols) values of the uint8 GGUF blocks ``weights`` in ``dtype`` (F32, F16 or
    BF16); F32 is bit-identical to ``bq.dequantize``."""
    cu = _module()
    qtype = _core.canonical_type_name(qtype)
    dtype = _core.canonical_type_name(dtype)
    if dtype not in ("F32", "F16", "BF16"):
        raise TypeError(f"dtype must be F32, F16 or BF16, got {dtype}")
    w = _Arr(weights, "weights")
    rows, cols = _rows_cols(w, qtype)
    obj, o = _out(out, w, (rows, cols), dtype, "out")
    cu.dequantize(qtype, w.ptr, rows, cols, dtype, o.ptr, w.stream(stream))
    return obj


def quantize(x: Any, qtype: str, out: Any = None, *, importance: Any = None, stream: Optional[int] = None,
             check_finite: bool = True) -> Any:
    """GGUF blocks (uint8, (rows, row_bytes)) of the float32 (rows, cols) array ``x``, with the
    same bytes as ``bq.quantize`` on the CPU. ``importance``: optional float32 (cols,) weights
    (an imatrix row). NaN or Inf in ``x`` raises ``bq.NonFiniteError`` naming the first one, as
    on the CPU; that check reads ``x`` once more and waits for the stream, so
    ``check_finite=False`` skips it for inputs known to be finite (their blocks are then
    unspecified)."""
    cu = _module()
    qtype = _core.canonical_type_name(qtype)
    xa = _Arr(x, "x")
    if xa.dtype != "F32" or len(xa.shape) != 2:
        raise TypeError(f"x must be a 2-D float32 array, got {xa.dtype} {xa.shape}")
    rows, cols = xa.shape
    elems, _ = _block(qtype)
    if cols % elems:
        raise _core.ShapeError(f"{cols} columns are not whole {qtype} blocks of {elems}")
    imp = 0
    if importance is not None:
        ia = _Arr(importance, "importance")
        if ia.dtype != "F32" or ia.shape != (cols,):
            raise _core.ShapeError(f"importance must be float32 of shape ({cols},), got {ia.dtype} {ia.shape}")
        imp = ia.ptr
    obj, o = _out(out, xa, (rows, _core.row_bytes(qtype, cols)), "U8", "out")
    if check_finite:
        bad = int(cu.find_non_finite(xa.ptr, rows * cols, xa.stream(stream)))
        if bad >= 0:
            raise _core.NonFiniteError(f"x[{bad // cols}, {bad % cols}] is not finite; nothing was quantized")
    cu.quantize(qtype, xa.ptr, rows, cols, o.ptr, xa.stream(stream), imp)
    return obj


# ---- bq.quantize / bq.matmul with device= ---------------------------------------------------

def is_device_array(obj: Any) -> bool:
    """A PyTorch CUDA tensor or an object with ``__cuda_array_interface__`` (CuPy, Numba)."""
    if type(obj).__module__.startswith("torch"):
        return bool(getattr(obj, "is_cuda", False))
    return hasattr(obj, "__cuda_array_interface__")


def use_gpu(device: Optional[str], *arrays: Any) -> bool:
    """Where bq.quantize/bq.matmul run: ``None``/"cpu" on the CPU unless an argument already
    lives on the GPU, "cuda" on the GPU (``DeviceError`` without one), "auto" on the GPU when
    one is usable (built in, a device visible, PyTorch there to move host arrays)."""
    if device not in (None, "cpu", "cuda", "auto"):
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'auto', got {device!r}")
    on_gpu = any(is_device_array(a) for a in arrays)
    if device == "cpu" and on_gpu:
        raise TypeError("device='cpu' with an array on the GPU: move it to the host first")
    if device in (None, "cpu"):
        return on_gpu
    if device == "auto":
        return on_gpu or (available() and _torch_cuda() is not None)
    if not available():
        raise _core.DeviceError("device='cuda': " + ("this build has no CUDA kernels" if _built() is None
                                                      else "no CUDA device is visible"))
    return True


def _built() -> Any:
    try:
        return _module()
    except _core.DeviceError:
        return None


def _torch_cuda() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _to_device(a: Any, what: str) -> Any:
    """A host numpy array as a CUDA tensor (through PyTorch), device arrays as they are."""
    if is_device_array(a):
        return a
    torch = _torch_cuda()
    if torch is None:
        raise _core.DeviceError(f"moving the {what} to the GPU needs PyTorch with CUDA; pass a CUDA array instead")
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def _to_host(a: Any) -> np.ndarray:
    if type(a).__module__.startswith("torch"):
        return a.cpu().numpy()
    if type(a).__module__.startswith("cupy"):
        return a.get()
    raise TypeError(f"cannot copy a {type(a).__name__} to the host")


def quantize_to_host(array: Any, qtype: str, importance: Any) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """bq.quantize on the GPU: (host bytes, shape), the CPU's bytes."""
    if isinstance(array, np.ndarray):
        if array.dtype != np.float32:
            if array.dtype != np.float16 and array.dtype.name != "bfloat16":
                raise TypeError(f"expected float32, float16 or bfloat16 data, got dtype {array.dtype}")
            array = array.astype(np.float32)  # the CPU widens the same way before quantizing
    shape = tuple(int(s) for s in array.shape)
    if len(shape) == 0 or 0 in shape:
        raise _core.ShapeError(f"expected a non-empty array with at least one axis, got shape {shape}")
    x = _to_device(array, "array")
    if len(shape) != 2:
        x = x.reshape(-1, shape[-1])
    imp = None if importance is None else _to_device(np.asarray(importance, dtype=np.float32), "importance")
    try:
        blocks = quantize(x, qtype, importance=imp)
    except Exception as e:  # PyTorch's or CuPy's out-of-memory error
        if "out of memory" in str(e).lower():
            raise _core.DeviceError(f"GPU out of memory quantizing {shape}: {e}") from None
        raise
    return _to_host(blocks).reshape(-1), shape


def matmul_any(data: np.ndarray, qtype: str, shape: Tuple[int, int], x: Any) -> Any:
    """bq.matmul on the GPU: numpy in, numpy out; a CUDA x gives a CUDA result."""
    rows, cols = shape
    host_x = isinstance(x, np.ndarray)
    if host_x and x.dtype not in (np.float32, np.float16):
        raise TypeError(f"x must be float32 or float16, got dtype {x.dtype}")
    xd = _to_device(x, "x")
    w = _to_device(data.reshape(rows, -1), "weights")
    y = matmul(w, qtype, xd)
    return _to_host(y) if host_x else y
