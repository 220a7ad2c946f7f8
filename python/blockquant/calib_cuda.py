"""GPTQ-style quantization on a CUDA GPU: ``bq.calib.quantize(..., method="gptq",
device="cuda")``. PyTorch does the linear algebra (H = X^T X, the inverse Cholesky factor U of
H, the updates of the later columns); blockquant's kernels choose each batch's block scales
(``cuda::Quantize``, the CPU reference's bytes), round the batch onto them with compensation
(``cuda::GptqRoundBatch``) and write the levels (``cuda::WriteBlockLevels``). The algorithm is
calib/gptq.h's, act_order off; the sums run in another order than on the CPU, so a few values
on rounding boundaries can land on the other level (tests/python/test_cuda.py bounds it)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

GPU_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
_BATCH = 256


def _inverse_cholesky_upper(torch: Any, h: Any, damp: float) -> Any:
    """U with H^-1 = U^T U, as gptq_detail::InverseCholeskyUpper: columns calibration never saw
    get the mean diagonal, damp * mean diagonal is added, doubled up to 8 times if the
    factorisation fails; U = P L^-1 P for P H P = L L^T (P the reversal)."""
    n = h.shape[0]
    diag = h.diagonal().double().cpu().numpy()
    mean_diag = float(diag.mean())
    if not mean_diag > 0.0:
        mean_diag = 1.0
    base = torch.from_numpy(np.where(diag == 0.0, mean_diag, diag).astype(np.float32)).to(h.device)
    eye = torch.eye(n, device=h.device, dtype=torch.float32)
    for _ in range(8):
        hd = h.clone()
        hd.diagonal().copy_(base + np.float32(damp * mean_diag))
        lower, info = torch.linalg.cholesky_ex(hd.flip(0, 1))
        if int(info) == 0:
            u = torch.linalg.solve_triangular(lower, eye, upper=False).flip(0, 1).contiguous()
            if bool(torch.isfinite(u).all()):
                return u
        damp = damp * 2.0 if damp > 0.0 else 1e-4
    raise ValueError(f"the calibration Hessian is not positive definite even with damping {damp}; check the "
                     "activations")


def gptq_quantize(weight: np.ndarray, type: str, calib: np.ndarray, damp: float) -> np.ndarray:
    """The GGUF bytes (uint8, 1-D) of ``weight`` (rows x cols f32) quantized to ``type`` on the current CUDA
    device with error compensation through ``calib`` (n x cols). Inputs are checked finite by
    the caller."""
    try:
        import torch
    except ImportError:
        raise _core.DeviceError("GPTQ on the GPU needs PyTorch (pip install torch)") from None
    from . import cuda as bqc
    if not torch.cuda.is_available():
        raise _core.DeviceError("GPTQ on the GPU: no CUDA device visible to PyTorch")
    if type not in GPU_TYPES:
        raise _core.UnsupportedTypeError(f"GPTQ on the GPU writes {', '.join(GPU_TYPES)}, not {type}")
    cu = bqc._module()
    rows, cols = weight.shape
    if cols % _BATCH:
        raise _core.ShapeError(f"{type} needs rows that are a multiple of {_BATCH} values, got {cols}")
    dev = torch.device("cuda")
    try:
        x = torch.from_numpy(np.ascontiguousarray(calib, dtype=np.float32)).to(dev)
        h = x.T @ x  # float32 products (PyTorch's default keeps TF32 off for matmul)
        n_samples = x.shape[0]
        del x
        importance = (h.diagonal() / np.float32(n_samples)).contiguous()
        u = _inverse_cholesky_upper(torch, h, damp)
        del h
        w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)).to(dev)  # the working copy
        block_bytes = _core.row_bytes(type, _BATCH)
        row_bytes = _core.row_bytes(type, cols)
        blocks = torch.empty((rows, row_bytes), dtype=torch.uint8, device=dev)
        levels = torch.empty((rows, cols), dtype=torch.int8, device=dev)
        err = torch.empty((rows, _BATCH), dtype=torch.float32, device=dev)
        stream = int(torch.cuda.current_stream(dev).cuda_stream)
        for b, c0 in enumerate(range(0, cols, _BATCH)):
            c1 = c0 + _BATCH
            # The batch's scales, from the weights as the earlier batches left them.
            batch_blocks = bqc.quantize(w[:, c0:c1].contiguous(), type, importance=importance[c0:c1].contiguous(),
                                        check_finite=False, stream=stream)
            blocks[:, b * block_bytes:(b + 1) * block_bytes] = batch_blocks
            cu.gptq_round_batch(type, w.data_ptr(), rows, cols, c0, batch_blocks.data_ptr(), u.data_ptr(), cols,
                                levels.data_ptr(), err.data_ptr(), stream)
            if c1 < cols:
                w[:, c1:].addmm_(err, u[c0:c1, c1:], alpha=-1.0)
        cu.write_block_levels(type, levels.data_ptr(), rows, cols, cols, blocks.data_ptr(), stream)
        return blocks.cpu().numpy().reshape(-1)
    except torch.cuda.OutOfMemoryError as e:
        raise _core.DeviceError(f"GPTQ on the GPU ran out of GPU memory ({rows} x {cols} weights): {e}") from None
