"""Calibration in the model flow (quantize_model(calib=, method=), blockquant quantize --calib):
each method's bytes against the array API, the held-out layer-output error against a direct
computation, AWQ folding checked on the written file, and bad calibration input."""
import json
import os

import numpy as np
import pytest

import blockquant as bq
from blockquant import _core

gguf = pytest.importorskip("gguf")
pytestmark = pytest.mark.skipif(not getattr(_core, "has_calib", False), reason="built without Eigen")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib_flow")
    src = str(d / "m.gguf")
    bq.make_demo_model(src, small=True, threads=2)
    acts = str(d / "acts.npz")
    shapes = bq.calib.make_demo_activations(src, acts, rows=400, seed=3)
    assert "blk.0.attn_q.weight" in shapes and "blk.0.attn_k.weight" not in shapes  # q/k/v share one array
    return d, src, acts


def _run(model, method, tmp_path, **kw):
    d, src, acts = model
    out = str(tmp_path / f"out-{method}.gguf")
    r = bq.quantize_model(src, out, "Q4_K_M", calib=acts, method=method, threads=2, progress=False, **kw)
    return out, r, {t["name"]: t for t in r["tensors"]}


def _split(acts, key, holdout=0.25):
    with np.load(acts) as z:
        x = z[key]
    n_held = int(np.ceil(x.shape[0] * holdout))
    return x[:-n_held], x[-n_held:]


def _bytes(path, name):
    """A tensor's stored bytes and type name, read by llama.cpp's gguf package."""
    t = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    return np.asarray(t.data).tobytes(), t.tensor_type.name


def test_each_method_writes_the_array_apis_bytes_and_reports_held_out_error(model, tmp_path):
    d, src, acts = model
    name = "blk.1.attn_v.weight"  # reads attn_q's array
    w = _core.read_tensor(src, name)
    calib, held = _split(acts, "blk.1.attn_q.weight")
    errors = {}
    for method in ("rtn", "imatrix", "gptq"):
        out, r, t = _run(model, method, tmp_path)
        data, qtype = _bytes(out, name)
        want = bq.calib.quantize(w, qtype, calib=calib, method=method, threads=1)
        assert data == want.data.tobytes(), method
        assert t[name]["method"] == method
        direct = bq.calib.layer_error(w, want, held)
        assert t[name]["layer_error"] == pytest.approx(direct, rel=1e-6), method
        errors[method] = np.mean([v["layer_error"] for v in t.values() if "layer_error" in v])
        # every blk.N matrix the demo activations cover has a layer error; norms and embeddings none
        assert {k for k, v in t.items() if "layer_error" in v} == {
            k for k in t if k.startswith("blk.") and not k.endswith("norm.weight")}
        with open(out + ".report.md") as f:
            md = f.read()
        assert "| method | layer error |" in md and f"| {method} |" in md
        with open(out + ".report.json") as f:
            assert json.load(f)["tensors"] == r["tensors"]
    # on these activations (outlier channels, low rank) each step must lower the error
    assert errors["gptq"] < errors["imatrix"] < errors["rtn"], errors


def test_rtn_with_activations_writes_the_plain_flows_file(model, tmp_path):
    d, src, acts = model
    out, _, _ = _run(model, "rtn", tmp_path)
    plain = str(tmp_path / "plain.gguf")
    bq.quantize_model(src, plain, "Q4_K_M", threads=2, progress=False)
    for t in bq.inspect(plain)["tensors"]:
        assert _bytes(out, t["name"]) == _bytes(plain, t["name"]), t["name"]


def test_awq_folds_into_the_norms_and_keeps_the_layer_function(model, tmp_path):
    d, src, acts = model
    out, r, t = _run(model, "awq", tmp_path)
    calib, held = _split(acts, "blk.0.attn_q.weight")
    g_in = _core.read_tensor(src, "blk.0.attn_norm.weight").reshape(-1)
    g_out = _core.read_tensor(out, "blk.0.attn_norm.weight").reshape(-1)
    assert t["blk.0.attn_norm.weight"]["method"] == "awq fold"
    assert not np.array_equal(g_in, g_out)
    s = g_in / g_out  # the exported norm is g / s
    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"):
        assert t[name]["method"] == "awq"
        w = _core.read_tensor(src, name).astype(np.float64)
        wq = _core.read_tensor(out, name).astype(np.float64)  # quant(W diag(s)), dequantized
        ref = held.astype(np.float64) @ w.T
        got = (held / s).astype(np.float64) @ wq.T  # what the exported model computes
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert err == pytest.approx(t[name]["layer_error"], rel=1e-4), name
    # attn_output has nothing to fold into: imatrix rounding, as docs/calibration.md says
    assert t["blk.0.attn_output.weight"]["method"] == "imatrix"
    # ffn_down's s goes into ffn_up's rows; the same search again gives the hook's scales
    from blockquant.calib_flow import calibration_hook
    hook, _ = calibration_hook(src, acts, "awq", None, "Q4_K_M", -1, -1.0, 0.25, None, 0.01, False, 2)
    up, down, gate = "blk.1.ffn_up.weight", "blk.1.ffn_down.weight", "blk.1.ffn_gate.weight"
    assert t[down]["method"] == "awq" and t[up]["method"] == "awq"
    s_d, s_n = hook.row_scales[up], hook.col_scales[up]
    assert np.array_equal(hook.col_scales[down], s_d) and np.array_equal(hook.col_scales[gate], s_n)
    _, held_up = _split(acts, "blk.1.ffn_gate.weight")
    _, held_down = _split(acts, down)
    for name, held, scale_in, scale_out in ((up, held_up, s_n, s_d), (down, held_down, s_d, None)):
        w = _core.read_tensor(src, name).astype(np.float64)
        wq = _core.read_tensor(out, name).astype(np.float64)
        ref = held.astype(np.float64) @ w.T
        got = (held / scale_in).astype(np.float64) @ wq.T  # what the exported model computes
        if scale_out is not None:
            got *= scale_out  # ffn_up's outputs come out divided by s_d; ffn_down takes them so
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        assert err == pytest.approx(t[name]["layer_error"], rel=1e-4), name
    # in floats, the folded block computes what the original did
    wg, wu, wd = (_core.read_tensor(src, n).astype(np.float64) for n in (gate, up, down))
    x = np.random.default_rng(1).standard_normal((4, wg.shape[1]))
    silu = lambda v: v / (1.0 + np.exp(-v))  # noqa: E731
    a = (silu(x @ wg.T) * (x @ wu.T)) @ wd.T
    xs = x / s_n
    b = (silu(xs @ (wg * s_n).T) * (xs @ (wu * s_n / s_d[:, None]).T)) @ (wd * s_d).T
    assert np.allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(a).max())
    # the float model is unchanged by folding alone: (x * g/s) (W diag(s))^T == (x * g) W^T
    w = _core.read_tensor(src, "blk.0.attn_q.weight").astype(np.float64)
    x = np.random.default_rng(0).standard_normal((5, w.shape[1]))
    a = (x * g_in) @ w.T
    b = (x * (g_in / s)) @ (w * s).T
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(a).max())


def test_layer_error_decides_pass_and_holdout_options(model, tmp_path):
    d, src, acts = model
    _, r, t = _run(model, "gptq", tmp_path, accept=["layer_error=0.0001"])
    assert r["verdict"] == "NO-GO"
    assert any("layer-output error" in f for f in r["failing"])
    # a separate held-out file: every row of acts calibrates
    held = str(tmp_path / "held.npz")
    bq.calib.make_demo_activations(src, held, rows=100, seed=9)
    _, r2, t2 = _run(model, "gptq", tmp_path, heldout=held)
    name = "blk.0.ffn_gate.weight"
    w = _core.read_tensor(src, name)
    with np.load(acts) as z, np.load(held) as h:
        want = bq.calib.quantize(w, t2[name]["type"], calib=z[name], method="gptq", threads=1)
        assert t2[name]["layer_error"] == pytest.approx(bq.calib.layer_error(w, want, h[name]), rel=1e-6)


def test_cli_calib(model, tmp_path, capsys):
    from blockquant.cli import main
    d, src, acts = model
    out = str(tmp_path / "cli.gguf")
    rc = main(["quantize", src, out, "--calib", acts, "--method", "gptq", "--threads", "2", "--quiet"])
    assert rc == 0
    with open(out + ".report.json") as f:
        rep = json.load(f)
    assert any(t.get("method") == "gptq" for t in rep["tensors"])
    rc = main(["quantize", src, out, "--calib", acts, "--method", "gptq", "--accept", "layer_error=0",
                      "--quiet"])
    assert rc == 1 and "NO-GO" in capsys.readouterr().out


def test_bad_calibration_input_leaves_no_output(model, tmp_path):
    d, src, acts = model
    out = str(tmp_path / "bad.gguf")
    with pytest.raises(bq.IoError, match="does not exist"):
        bq.quantize_model(src, out, calib=str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="needs activations"):
        imat = str(tmp_path / "imatrix.gguf")
        col = bq.calib.ImatrixCollector()
        col.add("blk.0.attn_q.weight", np.ones((2, 256), np.float32))
        col.save(imat)
        bq.quantize_model(src, out, calib=imat, method="gptq")
    with pytest.raises(ValueError, match="needs calib"):
        bq.quantize_model(src, out, method="gptq")
    with pytest.raises(ValueError, match="method must be"):
        bq.quantize_model(src, out, calib=acts, method="optimal")
    with np.load(acts) as z:
        arrays = {k: z[k] for k in z.files}
    nan = dict(arrays)
    nan["blk.1.ffn_down.weight"] = nan["blk.1.ffn_down.weight"].copy()
    nan["blk.1.ffn_down.weight"][7, 3] = np.nan
    np.savez(str(tmp_path / "nan.npz"), **nan)
    with pytest.raises(bq.NonFiniteError, match="blk.1.ffn_down"):
        bq.quantize_model(src, out, calib=str(tmp_path / "nan.npz"), progress=False)
    wrong = dict(arrays)
    wrong["blk.0.ffn_gate.weight"] = wrong["blk.0.ffn_gate.weight"][:, :100]
    np.savez(str(tmp_path / "wrong.npz"), **wrong)
    with pytest.raises(bq.ShapeError, match="columns"):
        bq.quantize_model(src, out, calib=str(tmp_path / "wrong.npz"), progress=False)
    few = {"blk.0.attn_q.weight": arrays["blk.0.attn_q.weight"][:1]}
    np.savez(str(tmp_path / "few.npz"), **few)
    with pytest.raises(bq.ShapeError, match="too few"):
        bq.quantize_model(src, out, calib=str(tmp_path / "few.npz"), progress=False)
    with open(str(tmp_path / "junk.npz"), "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    with pytest.raises(bq.FormatError, match="npz"):
        bq.quantize_model(src, out, calib=str(tmp_path / "junk.npz"), progress=False)
    np.save(str(tmp_path / "single.npy"), arrays["blk.0.attn_q.weight"])
    os.replace(str(tmp_path / "single.npy"), str(tmp_path / "single.npz"))
    with pytest.raises(bq.FormatError, match="one unnamed array"):
        bq.quantize_model(src, out, calib=str(tmp_path / "single.npz"), progress=False)
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]
