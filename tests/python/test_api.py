"""The public Python API: shapes, dtypes, errors, threads, round trips."""
import threading

import numpy as np
import pytest

import blockquant as bq
from conftest import QUANT_TYPES

GGML_ERRORS = {"Q2_K": 0.2679, "Q3_K": 0.1445, "Q4_K": 0.0707, "Q5_K": 0.0354, "Q6_K": 0.0173,
               "Q8_0": 0.0054, "Q4_0": 0.0816}


def rel_rmse(x, y, w=None):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    w = np.ones(x.shape[-1]) if w is None else w.astype(np.float64)
    return float(np.sqrt(np.sum(w * (x - y) ** 2) / np.sum(w * x ** 2)))


@pytest.mark.parametrize("type_name,bound", sorted(GGML_ERRORS.items()))
def test_error_at_or_below_ggml(type_name, bound, rng):
    x = rng.standard_normal((64, 4096)).astype(np.float32)
    assert rel_rmse(x, bq.dequantize(bq.quantize(x, type_name))) <= bound
    ones = np.ones(4096, dtype=np.float32)
    assert rel_rmse(x, bq.dequantize(bq.quantize(x, type_name, importance=ones))) <= bound


@pytest.mark.parametrize("type_name", [t for t in QUANT_TYPES if t != "Q8_0"])
def test_importance_lowers_weighted_error(type_name, rng):
    x = rng.standard_normal((32, 1024)).astype(np.float32)
    w = (rng.exponential(size=1024) ** 2).astype(np.float32)
    w[::50] = 0
    plain = bq.dequantize(bq.quantize(x, type_name))
    weighted = bq.dequantize(bq.quantize(x, type_name, importance=w))
    assert rel_rmse(x, weighted, w) < rel_rmse(x, plain, w)


def test_attributes_and_from_bytes(rng):
    x = rng.standard_normal((2, 3, 512)).astype(np.float32)
    qt = bq.quantize(x, "q4_k")
    assert qt.type == "Q4_K"
    assert qt.shape == (2, 3, 512)
    assert qt.data.dtype == np.uint8 and qt.data.ndim == 1
    assert qt.nbytes == 6 * 2 * 144
    assert qt.bits_per_weight == pytest.approx(4.5)
    again = bq.QuantizedTensor.from_bytes("Q4_K", qt.shape, qt.data.tobytes())
    assert again == qt
    assert bq.dequantize(again).shape == (2, 3, 512)
    with pytest.raises(bq.ShapeError):
        bq.QuantizedTensor.from_bytes("Q4_K", (2, 3, 512), qt.data.tobytes()[:-1])


def test_f16_and_bf16_sources(rng):
    x = rng.standard_normal((4, 256)).astype(np.float32)
    h = x.astype(np.float16)
    assert bq.quantize(h, "Q6_K") == bq.quantize(h.astype(np.float32), "Q6_K")
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncated bf16 bits
    as_f32 = (bf.astype(np.uint32) << 16).view(np.float32)
    assert bq.quantize(bf, "Q4_K", source_dtype="bf16") == bq.quantize(as_f32, "Q4_K")


def test_types_table():
    names = {t.name: t for t in bq.types()}
    assert names["Q4_K"].id == 12 and names["Q4_K"].block_bytes == 144
    assert names["Q8_K"].storable is False
    assert names["BF16"].id == 30


def test_bad_input_raises_clear_errors(rng):
    x = rng.standard_normal((4, 256)).astype(np.float32)
    with pytest.raises(TypeError, match="C-contiguous"):
        bq.quantize(np.asfortranarray(np.ones((256, 4), np.float32)), "Q8_0")
    with pytest.raises(TypeError, match="dtype"):
        bq.quantize(x.astype(np.float64), "Q4_K")
    with pytest.raises(bq.ShapeError, match="multiple of 256"):
        bq.quantize(np.ones((2, 320), np.float32), "Q4_K")
    bad = x.copy()
    bad[2, 7] = np.nan
    with pytest.raises(bq.NonFiniteError, match="row 2, column 7"):
        bq.quantize(bad, "Q4_K")
    bad[2, 7] = np.inf
    with pytest.raises(bq.NonFiniteError):
        bq.quantize(bad, "Q8_0")
    with pytest.raises(bq.UnsupportedTypeError):
        bq.quantize(x, "Q9_K")
    with pytest.raises(bq.UnsupportedTypeError):
        bq.quantize(x, "Q8_K")
    with pytest.raises(bq.LimitError, match="F16 range"):
        bq.quantize(np.full((1, 8), 1e6, np.float32), "F16")
    for value in (np.nan, np.inf, -1.0):
        imp = np.ones(256, np.float32)
        imp[3] = value
        with pytest.raises(bq.InvalidArgumentError, match="column 3"):
            bq.quantize(x, "Q4_K", importance=imp)
    with pytest.raises(bq.Error) as info:
        bq.quantize(x, "Q4_K", importance=np.ones(100, np.float32))
    assert info.value.code == "shape"


def test_threads_do_not_change_bytes_and_gil_is_released(rng):
    x = rng.standard_normal((64, 4096)).astype(np.float32)
    expected = bq.quantize(x, "Q4_K", threads=1)
    assert bq.quantize(x, "Q4_K", threads=2) == expected
    results = [None] * 4

    def work(i):
        results[i] = bq.quantize(x, "Q4_K", threads=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def test_eight_threads_at_once_give_the_sequential_results(rng):
    # quantize, dequantize and matmul from 8 Python threads at once (the GIL is
    # released inside each call), mixing types, importance and thread counts.
    x = rng.standard_normal((48, 2048)).astype(np.float32)
    imp = rng.uniform(0.1, 4.0, 2048).astype(np.float32)
    acts = rng.standard_normal((3, 2048)).astype(np.float32)
    jobs = []
    for i, t in enumerate(["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0", "Q4_K"]):
        jobs.append((t, imp if i % 2 else None, 1 + i % 3))

    def run(job):
        t, w, threads = job
        qt = bq.quantize(x, t, importance=w, threads=threads)
        return qt, bq.dequantize(qt, threads=threads), bq.matmul(qt, acts, threads=threads)

    expected = [run(job) for job in jobs]
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = run(jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (q0, d0, m0), (q1, d1, m1) in zip(expected, results):
        assert q1 == q0
        np.testing.assert_array_equal(d1, d0)
        np.testing.assert_array_equal(m1, m0)


def test_cli_types_and_error_table(capsys):
    from blockquant.cli import main
    assert main(["types"]) == 0
    assert "| Q4_K | 12 |" in capsys.readouterr().out
    assert main(["error-table", "--rows", "8", "--cols", "512"]) == 0
    assert "| Q6_K |" in capsys.readouterr().out
