"""bq.calib: GPTQ/imatrix/rtn through the Python API, layer error, AWQ scales, the
imatrix collector and its files (checked against the gguf package's reader)."""
import threading

import numpy as np
import pytest

import blockquant as bq

pytestmark = pytest.mark.skipif(not bq._core.has_calib, reason="built without Eigen")


def activations(n, cols, seed, mix_seed=7):
    """Correlated, heavy-tailed activations with outlier channels; mix_seed fixes the layer."""
    mix = np.random.default_rng(mix_seed).standard_normal((32, cols)).astype(np.float32) * 0.2
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, (n, 32)).astype(np.float32) @ mix + 0.3 * rng.standard_normal((n, cols)).astype(np.float32)
    x[:, ::61] *= 30.0
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.mark.parametrize("type_name", ["Q2_K", "Q3_K", "Q4_K"])
def test_gptq_beats_imatrix_beats_rtn_on_held_out(type_name, rng):
    w = rng.standard_normal((96, 512)).astype(np.float32)
    x, held = activations(1024, 512, 1), activations(256, 512, 2)
    errs = {m: bq.calib.layer_error(w, bq.calib.quantize(w, type_name, calib=x, method=m), held)
            for m in bq.calib.METHODS}
    assert errs["gptq"] < 0.9 * errs["imatrix"] < 0.9 * errs["rtn"], errs
    act = bq.calib.layer_error(w, bq.calib.quantize(w, type_name, calib=x, act_order=True), held)
    assert act < errs["imatrix"]


def test_quantized_tensor_is_plain_blocks_and_thread_independent(rng):
    w = rng.standard_normal((70, 256)).astype(np.float32)
    x = activations(200, 256, 3)
    a = bq.calib.quantize(w, "Q4_K", calib=x, threads=1)
    b = bq.calib.quantize(w, "Q4_K", calib=x, threads=3)
    assert a == b and a.shape == (70, 256) and a.nbytes == bq._core.row_bytes("Q4_K", 256) * 70
    # Standard blocks: the matmul kernels and dequantize read them as any Q4_K tensor.
    deq = bq.dequantize(a)
    assert np.isfinite(deq).all()
    if bq._core.has_kernels:
        y = bq.matmul(a, x[:4], activations="f32")
        np.testing.assert_allclose(y, x[:4] @ deq.T, rtol=1e-3, atol=1e-2)


def test_rtn_and_imatrix_match_plain_quantize(rng):
    w = rng.standard_normal((8, 512)).astype(np.float32)
    x = activations(64, 512, 4)
    assert bq.calib.quantize(w, "Q3_K", method="rtn") == bq.quantize(w, "Q3_K")
    imp = (x.astype(np.float64) ** 2).mean(0).astype(np.float32)
    assert bq.calib.quantize(w, "Q3_K", calib=x, method="imatrix") == bq.quantize(w, "Q3_K", importance=imp)


def test_layer_error_known_values(rng):
    w = rng.standard_normal((16, 64)).astype(np.float32)
    x = rng.standard_normal((10, 64)).astype(np.float32)
    assert bq.calib.layer_error(w, w, x) == 0.0
    assert bq.calib.layer_error(w, 0.5 * w, x) == pytest.approx(0.5, rel=1e-6)
    y, yq = x @ w.T, x @ (w + 0.01).T
    expect = np.linalg.norm(y - yq) / np.linalg.norm(y)
    assert bq.calib.layer_error(w, w + 0.01, x) == pytest.approx(expect, rel=1e-4)


def test_bad_input(rng):
    w = rng.standard_normal((4, 256)).astype(np.float32)
    x = activations(32, 256, 5)
    with pytest.raises(ValueError, match="method"):
        bq.calib.quantize(w, "Q4_K", calib=x, method="awq")
    with pytest.raises(ValueError, match="calib="):
        bq.calib.quantize(w, "Q4_K", method="gptq")
    with pytest.raises(bq.ShapeError):
        bq.calib.quantize(w, "Q4_K", calib=x[:, :128])
    with pytest.raises(bq.UnsupportedTypeError):
        bq.calib.quantize(w, "Q4_1", calib=x)
    bad = x.copy()
    bad[3, 7] = np.nan
    with pytest.raises(bq.NonFiniteError, match="row 3, column 7"):
        bq.calib.quantize(w, "Q4_K", calib=bad)
    wbad = w.copy()
    wbad[1, 2] = np.inf
    with pytest.raises(bq.NonFiniteError):
        bq.calib.quantize(wbad, "Q4_K", calib=x)
    with pytest.raises(TypeError):
        bq.calib.quantize(w.tolist(), "Q4_K", calib=x)
    with pytest.raises(bq.ShapeError):
        bq.calib.layer_error(w, w[:2], x)


def test_awq_scales(rng):
    x = activations(512, 512, 6)
    wq, wk = rng.standard_normal((64, 512)).astype(np.float32), rng.standard_normal((32, 512)).astype(np.float32)
    r = bq.calib.awq_scales([wq, wk], x, "Q3_K")
    assert r["scales"].shape == (512,) and (r["scales"] > 0).all()
    assert r["error"] <= r["error_unscaled"] and r["alpha"] > 0
    assert abs(np.log(r["scales"]).mean()) < 1e-4


def test_concurrent_gptq_calls_match_sequential(rng):
    w = rng.standard_normal((64, 512)).astype(np.float32)
    x = activations(256, 512, 8)
    expect = bq.calib.quantize(w, "Q4_K", calib=x, threads=1)
    got = [None] * 8

    def run(i):
        got[i] = bq.calib.quantize(w, "Q4_K", calib=x, threads=1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(g == expect for g in got)


@pytest.mark.parametrize("fmt", ["gguf", "dat"])
def test_imatrix_collector_round_trips_llama_cpp_files(fmt, tmp_path, rng):
    col = bq.calib.ImatrixCollector()
    a, b = rng.standard_normal((3, 5, 256)), rng.standard_normal((7, 128)).astype(np.float32)
    col.add("blk.0.attn_q.weight", a[:2])
    col.add("blk.0.attn_q.weight", a[2])
    col.add("blk.0.ffn_down.weight", b)
    col.end_chunk()
    col.datasets.append("calib.txt")
    expect = (a.reshape(-1, 256) ** 2).mean(0)
    np.testing.assert_allclose(col.importance("blk.0.attn_q.weight"), expect, rtol=1e-6)
    assert col.count("blk.0.attn_q.weight") == 15
    with pytest.raises(bq.ShapeError):
        col.add("blk.0.attn_q.weight", b)
    with pytest.raises(bq.NonFiniteError):
        col.add("x", np.array([[np.nan, 1.0]]))
    p = str(tmp_path / f"imatrix.{fmt}")
    col.save(p)
    back = bq.calib.ImatrixCollector.load(p)
    assert back.names() == col.names()
    for n in col.names():
        np.testing.assert_allclose(back.importance(n), col.importance(n), rtol=1e-6)
    # load -> save gives the same bytes, so files move between the tools unchanged.
    p2 = str(tmp_path / f"again.{fmt}")
    back.save(p2)
    assert open(p, "rb").read() == open(p2, "rb").read()
    if fmt == "gguf":
        gguf = pytest.importorskip("gguf")
        r = gguf.GGUFReader(p)
        t = {x.name: x for x in r.tensors}
        np.testing.assert_allclose(np.asarray(t["blk.0.attn_q.weight.in_sum2"].data).reshape(-1),
                                   (a.reshape(-1, 256) ** 2).sum(0), rtol=1e-6)
        assert float(np.asarray(t["blk.0.attn_q.weight.counts"].data).reshape(-1)[0]) == 15.0
