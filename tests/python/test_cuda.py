"""bq.cuda: the CUDA kernels on caller-owned device arrays. Argument checks run everywhere (they
come before any CUDA call); the kernels are checked against the CPU functions where a GPU is."""
import subprocess
import sys

import numpy as np
import pytest

import blockquant as bq

pytestmark = pytest.mark.skipif(not hasattr(bq, "__version__"), reason="blockquant not importable")


class FakeDeviceArray:
    """Describes device memory through __cuda_array_interface__ without owning any."""

    def __init__(self, shape, typestr, ptr=0x1000, strides=None):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False),
                                         "version": 3, "strides": strides}


def _cuda_built():
    try:
        from blockquant import _cuda  # noqa: F401
    except ImportError:
        return False
    return True


needs_module = pytest.mark.skipif(not _cuda_built(), reason="blockquant built without CUDA kernels")


def test_import_blockquant_does_not_load_the_cuda_module():
    code = "import sys, blockquant\nprint('blockquant._cuda' in sys.modules, 'blockquant.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_device_count_is_consistent_with_available():
    n = bq.cuda.device_count()
    assert isinstance(n, int) and n >= 0
    assert bq.cuda.available() == (n > 0)


@needs_module
def test_argument_checks_come_before_any_cuda_call():
    w = FakeDeviceArray((64, 144 * 2), "|u1")  # 64 rows of 512 Q4_K columns
    with pytest.raises(TypeError, match="__cuda_array_interface__"):
        bq.cuda.matmul(np.zeros((64, 288), np.uint8), "Q4_K", FakeDeviceArray((1, 512), "<f2"))
    with pytest.raises(bq.ShapeError, match="does not match"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((1, 256), "<f2"), FakeDeviceArray((1, 64), "<f4"))
    with pytest.raises(TypeError, match="uint8"):
        bq.cuda.matmul(FakeDeviceArray((64, 288), "<f4"), "Q4_K", FakeDeviceArray((1, 512), "<f2"))
    with pytest.raises(bq.ShapeError, match="whole Q4_K blocks"):
        bq.cuda.matmul(FakeDeviceArray((64, 300), "|u1"), "Q4_K", FakeDeviceArray((1, 512), "<f2"))
    with pytest.raises(bq.ShapeError, match="out must be F32 of shape"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((2, 512), "<f2"), FakeDeviceArray((2, 63), "<f4"))
    with pytest.raises(ValueError, match="C-contiguous"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((2, 512), "<f2", strides=(2, 1024)), FakeDeviceArray((2, 64), "<f4"))
    with pytest.raises(ValueError, match="pass out"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((1, 512), "<f2"))
    with pytest.raises(TypeError, match="float16, bfloat16 or float32"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((1, 512), "|u1"), FakeDeviceArray((1, 64), "<f4"))
    with pytest.raises(bq.ShapeError, match="importance"):
        bq.cuda.quantize(FakeDeviceArray((4, 512), "<f4"), "Q4_K", FakeDeviceArray((4, 288), "|u1"),
                         importance=FakeDeviceArray((256,), "<f4"))
    with pytest.raises(bq.ShapeError, match="whole Q4_K blocks of 256"):
        bq.cuda.quantize(FakeDeviceArray((4, 500), "<f4"), "Q4_K", FakeDeviceArray((4, 288), "|u1"))
    with pytest.raises(TypeError, match="dtype must be F32, F16 or BF16"):
        bq.cuda.dequantize(w, "Q4_K", FakeDeviceArray((64, 512), "<f4"), dtype="Q8_0")
    with pytest.raises(bq.UnsupportedTypeError):
        bq.cuda.matmul(w, "Q9_K", FakeDeviceArray((1, 512), "<f2"), FakeDeviceArray((1, 64), "<f4"))
    with pytest.raises(bq.UnsupportedTypeError, match="planar layout covers"):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((1, 512), "<f2"), FakeDeviceArray((1, 64), "<f4"), planar=True)
    with pytest.raises(bq.UnsupportedTypeError, match="planar layout covers"):
        bq.cuda.to_planar(w, "Q4_K", FakeDeviceArray((64, 288), "|u1"))
    with pytest.raises(bq.ShapeError, match="whole Q6_K blocks"):
        bq.cuda.to_planar(w, "Q6_K", FakeDeviceArray((64, 288), "|u1"))


@needs_module
@pytest.mark.skipif(bq.cuda.device_count() > 0, reason="checks the no-GPU error; this machine has a GPU")
def test_no_gpu_is_a_device_error_not_a_crash():
    w = FakeDeviceArray((64, 288), "|u1")
    with pytest.raises(bq.DeviceError):
        bq.cuda.matmul(w, "Q4_K", FakeDeviceArray((1, 512), "<f2"), FakeDeviceArray((1, 64), "<f4"))
    with pytest.raises(bq.DeviceError):
        bq.cuda.dequantize(w, "Q4_K", FakeDeviceArray((64, 512), "<f4"))
    with pytest.raises(bq.DeviceError):
        bq.cuda.quantize(FakeDeviceArray((64, 512), "<f4"), "Q4_K", w)


# ---- on a GPU, through PyTorch tensors -------------------------------------------------------

def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


gpu = pytest.mark.skipif(_torch_cuda() is None, reason="no PyTorch with a CUDA device")


def _gpu_weights(torch, qtype, rows, cols, seed):
    """Random weights quantized on the CPU: their blocks on the GPU, and their values (float64)."""
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    qt = bq.quantize(w, qtype)
    return torch.from_numpy(qt.data.reshape(rows, -1).copy()).cuda(), bq.dequantize(qt).astype(np.float64)


@gpu
@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K", "Q3_K", "Q8_0", "Q4_0"])
def test_gpu_quantize_and_dequantize_match_the_cpu(qtype):
    torch = _torch_cuda()
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((96, 1024)) * rng.uniform(0.01, 3, size=(96, 1))).astype(np.float32)
    w[3] = 0.0  # an all-zero row
    w[5, 17] = 40.0  # an outlier
    imp = rng.uniform(0, 2, size=1024).astype(np.float32)
    for importance in (None, imp):
        want = bq.quantize(w, qtype, importance=importance)
        got = bq.cuda.quantize(torch.from_numpy(w).cuda(), qtype,
                               importance=None if importance is None else torch.from_numpy(importance).cuda())
        assert got.dtype == torch.uint8 and tuple(got.shape) == (96, want.nbytes // 96)
        assert np.array_equal(got.cpu().numpy().reshape(-1), want.data.reshape(-1)), (qtype, importance is None)
    deq = bq.cuda.dequantize(got, qtype)
    assert np.array_equal(deq.cpu().numpy(), bq.dequantize(want))
    half = bq.cuda.dequantize(got, qtype, dtype="F16")
    assert torch.equal(half, deq.half())


@gpu
@pytest.mark.parametrize("qtype", ["Q4_K", "Q2_K", "Q3_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0"])
def test_gpu_matmul_matches_the_cpu_within_its_bound(qtype):
    torch = _torch_cuda()
    blocks, wd = _gpu_weights(torch, qtype, 300, 768, 3)
    for n in (1, 2, 3, 5, 16):
        for dt in (torch.float16, torch.bfloat16, torch.float32):
            x = torch.randn(n, 768, generator=torch.Generator().manual_seed(n)).to(dt)
            xf = x.float().numpy().astype(np.float64)
            ref = xf @ wd.T
            y = bq.cuda.matmul(blocks, qtype, x.cuda())
            assert y.dtype == torch.float32 and tuple(y.shape) == (n, 300)
            # int8 rounding of x per 32 values (f16/bf16 x, n <= 16: gemv_q8, mma_q8)
            # adds at most sum |w| * max|x| / 254
            amax = np.repeat(np.abs(xf).reshape(n, -1, 32).max(axis=2), 32, axis=1)
            bound = 1e-4 * (np.abs(xf) @ np.abs(wd).T) + (amax / 254) @ np.abs(wd).T * 1.001
            assert np.all(np.abs(y.cpu().numpy() - ref) <= bound + 1e-6), (qtype, n, dt)
    out = torch.empty(300, device="cuda")
    assert bq.cuda.matmul(blocks, qtype, torch.ones(768, device="cuda", dtype=torch.float16), out) is out
    assert torch.allclose(out.cpu().double(), torch.from_numpy(wd.sum(axis=1)), rtol=1e-2, atol=1e-2)


@gpu
@pytest.mark.parametrize("qtype", ["Q2_K", "Q3_K", "Q6_K"])
def test_gpu_planar_layout_round_trips_and_gives_the_same_products(qtype):
    # gemv_q8 reads the planes in place where the blocks would take it (f16/bf16 x, n <= 2);
    # the rest restores the blocks into scratch (PyTorch's, or the library's with an explicit
    # stream) and runs the usual kernels (n = 3..16: mma_q8).
    torch = _torch_cuda()
    blocks, _ = _gpu_weights(torch, qtype, 300, 1024, 13)
    planes = bq.cuda.to_planar(blocks, qtype)
    assert planes.dtype == torch.uint8 and planes.shape == blocks.shape and not torch.equal(planes, blocks)
    assert torch.equal(bq.cuda.from_planar(planes, qtype), blocks)
    for n in (1, 2, 3, 4, 8, 9, 17):
        for dt in (torch.float16, torch.bfloat16, torch.float32):
            x = torch.randn(n, 1024, generator=torch.Generator().manual_seed(n)).to(dt).cuda()
            want = bq.cuda.matmul(blocks, qtype, x)
            assert torch.equal(bq.cuda.matmul(planes, qtype, x, planar=True), want), (qtype, n, dt)
            y2 = bq.cuda.matmul(planes, qtype, x, planar=True, stream=torch.cuda.current_stream().cuda_stream)
            assert torch.equal(y2, want), (qtype, n, dt)


@gpu
@pytest.mark.parametrize("qtype, cols, ns", [("Q4_K", 1024, (17, 40, 200)), ("Q5_K", 1024, (17, 40, 200)),
                                             ("Q2_K", 1024, (65, 200)), ("Q3_K", 2048, (65, 200)),
                                             ("Q6_K", 2048, (65, 200)), ("Q8_0", 1024, (65, 200)),
                                             ("Q4_0", 1024, (65, 200))])
def test_gpu_matmul_past_n_16_keeps_x_exact_and_its_workspace_changes_no_bit(qtype, cols, ns):
    # From n = 17 on x is not rounded (f16 x on sm_90: wgmma, whose workspace comes from
    # PyTorch's allocator here; otherwise a tensor-core kernel), so only f32 accumulation errs,
    # but for Q4_K and Q5_K with f16 x on sm_90, whose weights are rounded to f16 in registers
    # (no workspace): each off by at most 2.001 * 2^-11 * (|w| + 2 |dmin m|) (+ 33 * 2^-25 near
    # zero). With an explicit stream the library allocates the scratch itself: the same bits.
    # Q2_K and Q3_K on 300 rows keep mma_q8 (x rounded) to n = 64; past it, wgmma (Q3_K's with
    # no workspace at all). Q6_K, Q8_0 and Q4_0 past n = 64: with f16 x the f16-weights wgmma
    # (from n = 33; Q8_0 and Q4_0 round each weight once, Q6_K twice: within the same bound), with
    # bf16 x the f16 mma kernel.
    torch = _torch_cuda()
    blocks, wd = _gpu_weights(torch, qtype, 300, cols, 11)
    mterm = np.zeros_like(wd)
    if qtype in ("Q4_K", "Q5_K"):  # each weight's -dmin * m: the blocks with their codes zeroed
        raw = blocks.cpu().numpy().reshape(-1, 144 if qtype == "Q4_K" else 176).copy()
        raw[:, 16:] = 0
        mterm = bq.dequantize(bq.QuantizedTensor(qtype, (300, cols), raw.reshape(-1))).astype(np.float64)
    for n in ns:
        for dt in (torch.float16, torch.bfloat16):
            x = torch.randn(n, cols, generator=torch.Generator().manual_seed(n)).to(dt)
            xf = x.float().numpy().astype(np.float64)
            y = bq.cuda.matmul(blocks, qtype, x.cuda())
            assert y.dtype == torch.float32 and tuple(y.shape) == (n, 300)
            bound = 1e-4 * (np.abs(xf) @ np.abs(wd).T)
            if qtype not in ("Q2_K", "Q3_K") and dt == torch.float16:
                bound += 2.001 * 2.0**-11 * (np.abs(xf) @ (np.abs(wd) + 2 * np.abs(mterm)).T)
                bound += 33 * 2.0**-25 * np.abs(xf).sum(axis=1, keepdims=True)
            assert np.all(np.abs(y.cpu().numpy() - xf @ wd.T) <= bound), (qtype, n, dt)
            y2 = bq.cuda.matmul(blocks, qtype, x.cuda(), stream=torch.cuda.current_stream().cuda_stream)
            assert torch.equal(y, y2), (qtype, n, dt)


@gpu
def test_gpu_quantize_refuses_non_finite_weights_and_writes_nothing():
    torch = _torch_cuda()
    w = torch.randn(8, 512, device="cuda")
    out = torch.full((8, 2 * 144), 0xA5, dtype=torch.uint8, device="cuda")
    for bad, where in ((float("nan"), (0, 0)), (float("inf"), (7, 511)), (-float("inf"), (3, 200))):
        v = w.clone()
        v[where] = bad
        v[7, 511] = bad  # a later one too: the error names the first
        with pytest.raises(bq.NonFiniteError, match=rf"x\[{where[0]}, {where[1]}\]"):
            bq.cuda.quantize(v, "Q4_K", out)
        assert bool((out == 0xA5).all())
    # skipping the check is the caller's promise; finite input still gives the CPU's bytes
    got = bq.cuda.quantize(w, "Q4_K", check_finite=False)
    assert np.array_equal(got.cpu().numpy().reshape(-1), bq.quantize(w.cpu().numpy(), "Q4_K").data.reshape(-1))


# ---- GPTQ on the GPU (bq.calib.quantize(..., device="cuda")) --------------------------------

def _layer(rng, rows, cols, n):
    """Weights and activations like bq_calib_bench's: low-rank Student-t signal, noise, outliers."""
    w = (rng.standard_normal((rows, cols)) * rng.uniform(0.2, 2.0, size=(rows, 1))).astype(np.float32)
    basis = rng.standard_normal((32, cols)) * (np.arange(1, 33) ** -0.7)[:, None]
    x = rng.standard_t(4, size=(n, 32)) @ basis + 0.3 * rng.standard_normal((n, cols))
    x[:, rng.choice(cols, cols // 100, replace=False)] *= 40.0
    return w, x.astype(np.float32)


@gpu
@pytest.mark.skipif(not getattr(bq._core, "has_calib", False), reason="built without Eigen")
@pytest.mark.parametrize("qtype", ["Q4_K", "Q2_K", "Q3_K", "Q5_K", "Q6_K"])
def test_gpu_gptq_agrees_with_the_cpu(qtype):
    rng = np.random.default_rng(11)
    w, x = _layer(rng, 200, 1024, 1280)
    calib, held = x[:1024], x[1024:]
    cpu = bq.calib.quantize(w, qtype, calib=calib, method="gptq")
    gpu = bq.calib.quantize(w, qtype, calib=calib, method="gptq", device="cuda")
    assert gpu.type == qtype and gpu.data.nbytes == cpu.data.nbytes
    same = float(np.mean(bq.dequantize(gpu) == bq.dequantize(cpu)))
    e_cpu, e_gpu = bq.calib.layer_error(w, cpu, held), bq.calib.layer_error(w, gpu, held)
    rtn = bq.calib.layer_error(w, bq.quantize(w, qtype), held)
    print(f"{qtype}: {same:.4f} of values equal, layer error cpu {e_cpu:.5f} gpu {e_gpu:.5f} rtn {rtn:.5f}")
    # The same algorithm with its sums in another order: a value on a rounding boundary may
    # take the other level and move the later columns of its row.
    assert same >= 0.9, same
    assert abs(e_gpu - e_cpu) <= 0.03 * e_cpu, (e_cpu, e_gpu)
    assert e_gpu < 0.5 * rtn


@gpu
def test_gpu_gptq_argument_errors():
    w = np.ones((4, 256), np.float32)
    x = np.ones((8, 256), np.float32)
    with pytest.raises(ValueError, match="act_order"):
        bq.calib.quantize(w, "Q4_K", calib=x, method="gptq", act_order=True, device="cuda")
    with pytest.raises(bq.UnsupportedTypeError, match="Q8_0"):
        bq.calib.quantize(w, "Q8_0", calib=x, method="gptq", device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        bq.calib.quantize(w, "Q4_K", calib=x, method="gptq", device="tpu")
    bad = x.copy()
    bad[2, 3] = np.inf
    with pytest.raises(bq.NonFiniteError):
        bq.calib.quantize(w, "Q4_K", calib=bad, method="gptq", device="cuda")


def test_gpu_gptq_without_a_gpu_is_a_device_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the no-GPU error; this machine has a GPU")
    with pytest.raises(bq.DeviceError):
        bq.calib.quantize(np.ones((4, 256), np.float32), "Q4_K", calib=np.ones((8, 256), np.float32),
                          method="gptq", device="cuda")


# ---- bq.quantize / bq.matmul with device= -----------------------------------------------------

def test_device_argument_on_any_machine():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((16, 512)).astype(np.float32)
    want = bq.quantize(w, "Q4_K")
    assert bq.quantize(w, "Q4_K", device="cpu") == want
    assert bq.quantize(w, "Q4_K", device="auto") == want  # the GPU when usable: the same bytes either way
    x = rng.standard_normal((3, 512)).astype(np.float32)
    y = bq.matmul(want, x, device="auto")
    assert y.shape == (3, 16) and isinstance(y, np.ndarray)
    with pytest.raises(ValueError, match="device must be"):
        bq.quantize(w, "Q4_K", device="gpu")
    if bq.cuda.device_count() == 0:
        with pytest.raises(bq.DeviceError):
            bq.quantize(w, "Q4_K", device="cuda")
        with pytest.raises(bq.DeviceError):
            bq.matmul(want, x, device="cuda")


@gpu
def test_device_argument_on_the_gpu():
    torch = _torch_cuda()
    rng = np.random.default_rng(6)
    w = (rng.standard_normal((3, 40, 768)) * 2).astype(np.float32)  # 3-D: rows along the last axis
    imp = rng.uniform(0, 2, size=768).astype(np.float32)
    for qtype in ("Q4_K", "Q6_K", "Q8_0", "Q5_0"):
        want = bq.quantize(w, qtype, importance=imp)
        assert bq.quantize(w, qtype, importance=imp, device="cuda") == want, qtype
        assert bq.quantize(torch.from_numpy(w).cuda(), qtype, importance=imp) == want, qtype  # a CUDA array
    half = w.astype(np.float16)
    assert bq.quantize(half, "Q4_K", device="cuda") == bq.quantize(half, "Q4_K")
    qt = bq.quantize(w[0], "Q4_K")
    x = rng.standard_normal((5, 768)).astype(np.float32)
    wd = bq.dequantize(qt).astype(np.float64)
    ref = x.astype(np.float64) @ wd.T
    y = bq.matmul(qt, x, device="cuda")
    assert isinstance(y, np.ndarray) and y.shape == (5, 40)
    assert np.allclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    yd = bq.matmul(qt, torch.from_numpy(x).cuda())  # a CUDA x: the result stays on the GPU
    assert yd.is_cuda and np.allclose(yd.cpu().numpy(), y, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="device='cpu'"):
        bq.quantize(torch.from_numpy(w).cuda(), "Q4_K", device="cpu")
