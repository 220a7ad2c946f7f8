"""The quantize -> validate -> export flow on a small generated model, checked
with llama.cpp's gguf package."""
import json
import os

import numpy as np
import pytest

import blockquant as bq

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("flow")
    path = str(d / "small-f16.gguf")
    params = bq.make_demo_model(path, small=True, threads=2)
    assert params > 1_000_000
    return d, path


def test_quantize_model_writes_a_file_gguf_reads(small_model):
    d, src = small_model
    out = str(d / "small-q4_k_m.gguf")
    report = bq.quantize_model(src, out, policy="Q4_K_M", threads=2)
    assert report["verdict"] == "GO"
    assert os.path.exists(out + ".report.json") and os.path.exists(out + ".manifest.json")
    reader = gguf.GGUFReader(out)
    src_reader = gguf.GGUFReader(src)
    assert len(reader.tensors) == len(src_reader.tensors)
    fields = {f.name: f for f in reader.fields.values()}
    assert "general.architecture" in fields and "tokenizer.ggml.tokens" in fields
    ftype = fields["general.file_type"]
    assert int(ftype.parts[ftype.data[0]][0]) == 15  # MOSTLY_Q4_K_M
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_K"
    assert types["output.weight"] == "Q6_K"
    assert types["blk.0.attn_norm.weight"] == "F32"
    by_name = {t["name"]: t for t in report["tensors"]}
    for t in reader.tensors:
        assert by_name[t.name]["type"] == t.tensor_type.name
        if t.tensor_type.name in ("Q4_K", "Q6_K"):
            theirs = gguf.quants.dequantize(t.data, t.tensor_type)
            rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
            ours = bq.dequantize(bq.QuantizedTensor.from_bytes(
                t.tensor_type.name, (rows, int(t.shape[0])), np.ascontiguousarray(t.data).reshape(-1)))
            assert np.array_equal(ours.reshape(-1).view(np.uint32),
                                  theirs.astype(np.float32).reshape(-1).view(np.uint32))


def test_manifest_hashes_the_written_file(small_model):
    import hashlib
    d, src = small_model
    out = str(d / "small-q8.gguf")
    bq.quantize_model(src, out, policy="Q8_0", threads=1)
    manifest = json.load(open(out + ".manifest.json"))
    entry = manifest["files"][0]
    assert entry["path"] == os.path.basename(out)
    assert entry["size"] == os.path.getsize(out)
    assert entry["sha256"] == hashlib.sha256(open(out, "rb").read()).hexdigest()
    assert manifest["tensor_count"] == len(manifest["tensors"])


def test_thread_count_does_not_change_the_file(small_model):
    d, src = small_model
    a, b = str(d / "t1.gguf"), str(d / "t2.gguf")
    bq.quantize_model(src, a, policy="Q3_K_M", threads=1, reports=False)
    bq.quantize_model(src, b, policy="Q3_K_M", threads=2, reports=False)
    assert open(a, "rb").read() == open(b, "rb").read()


def test_plan_inspect_validate_and_compress(small_model):
    d, src = small_model
    p = bq.plan(src, "Q4_K_M")
    assert p["dry_run"] is True and p["totals"]["tensor_bytes"] > 0
    assert all(t["decided_by"] for t in p["tensors"])
    out = str(d / "small-q2.gguf")
    report = bq.quantize_model(src, out, policy="Q2_K", threads=2, compress="gzip")
    c = report["compressed"]
    assert c["path"].endswith(".gz") and 0.5 < c["ratio"] <= 1.01  # quantized bits barely compress
    manifest = json.load(open(out + ".manifest.json"))
    assert [f["path"] for f in manifest["files"]] == [os.path.basename(out), os.path.basename(out) + ".gz"]
    info = bq.inspect(out)
    assert info["type_histogram"]["Q2_K"]["tensors"] > 0
    assert info["metadata"]["quantize.policy"] == "Q2_K"
    v = bq.validate_model(src, out)
    assert v["verdict"] == "GO" and len(v["tensors"]) == len(info["tensors"])
    strict = bq.validate_model(src, out, accept=["rel_rmse=0.01"])
    assert strict["verdict"] == "NO-GO" and strict["failing"]


def test_bad_inputs_leave_no_output(small_model, tmp_path):
    d, src = small_model
    out = str(tmp_path / "out.gguf")
    truncated = str(tmp_path / "truncated.gguf")
    with open(src, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(bq.FormatError, match="past the end"):
        bq.quantize_model(truncated, out)
    assert not os.path.exists(out)
    bad_magic = str(tmp_path / "magic.gguf")
    with open(bad_magic, "wb") as f:
        f.write(b"GGUX" + data[4:4096])
    with pytest.raises(bq.FormatError, match="magic"):
        bq.quantize_model(bad_magic, out)
    with pytest.raises(bq.InvalidArgumentError, match="is the input"):
        bq.quantize_model(src, src)
    with pytest.raises(bq.IoError):
        bq.quantize_model(src, str(tmp_path / "missing-dir" / "out.gguf"))
    with pytest.raises(bq.InvalidArgumentError, match="unknown policy"):
        bq.quantize_model(src, out, policy="Q4_K_X")
    with pytest.raises(bq.InvalidArgumentError, match="acceptance"):
        bq.quantize_model(src, out, accept=["rel_rmse.Q4_K"])
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


def test_cli_exit_codes(small_model, capsys):
    from blockquant.cli import main
    d, src = small_model
    out = str(d / "cli.gguf")
    assert main(["quantize", src, out, "--policy", "Q4_K_M", "--quiet"]) == 0
    assert "GO" in capsys.readouterr().out
    assert main(["quantize", src, str(d / "nogo.gguf"), "--accept", "rel_rmse=0.001", "--quiet"]) == 1
    assert "NO-GO" in capsys.readouterr().out
    assert main(["quantize", src, "--dry-run"]) == 0
    assert "Q4_K" in capsys.readouterr().out
    assert main(["inspect", out]) == 0
    assert "| Q4_K |" in capsys.readouterr().out
    assert main(["validate", src, out]) == 0
    assert main(["quantize", str(d / "nope.gguf"), out]) == 2


def test_budget_fits_and_beats_a_uniform_mix(small_model):
    d, src = small_model
    info = bq.inspect(src)
    n = sum(t["elements"] for t in info["tensors"])
    p = bq.plan(src, "Q4_K_M", target_bpw=4.0, threads=2)
    assert p["totals"]["bits_per_weight"] <= 4.0 + 1e-9
    assert len({t["type"] for t in p["tensors"]}) >= 2  # a real mix, not one type
    out = str(d / "budget.gguf")
    report = bq.quantize_model(src, out, target_size=int(n * 4.0 / 8) + 4096, threads=2)
    assert report["totals"]["tensor_bytes"] <= int(n * 4.0 / 8) + 4096
    assert bq.flow.parse_size("2.0GB") == 2_000_000_000 and bq.flow.parse_size("1GiB") == 2**30
    with pytest.raises(ValueError):
        bq.flow.parse_size("2 parsecs")


def write_legacy_imatrix(path, entries, chunks=4, dataset="calib.txt"):
    import struct
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, values in sorted(entries.items()):
            f.write(struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 1, len(values)))
            f.write(np.asarray(values, np.float32).tobytes())
        f.write(struct.pack("<i", chunks) + struct.pack("<i", len(dataset)) + dataset.encode())


def test_imatrix_weights_the_rounding(small_model):
    d, src = small_model
    info = bq.inspect(src)
    rng = np.random.default_rng(9)
    entries, weights = {}, {}
    for t in info["tensors"]:
        if len(t["shape"]) == 2 and t["name"].startswith("blk."):
            w = (rng.exponential(size=t["shape"][0]) ** 3).astype(np.float32)
            entries[t["name"]] = w
            weights[t["name"]] = w
    imat = str(d / "imatrix.dat")
    write_legacy_imatrix(imat, entries)
    plain, weighted = str(d / "plain.gguf"), str(d / "weighted.gguf")
    bq.quantize_model(src, plain, policy="Q3_K_M", threads=2, reports=False)
    bq.quantize_model(src, weighted, policy="Q3_K_M", threads=2, reports=False, imatrix=imat)
    meta = bq.inspect(weighted)["metadata"]
    assert meta["quantize.imatrix.file"] == imat and meta["quantize.imatrix.dataset"] == "calib.txt"
    assert meta["quantize.imatrix.entries_count"] == len(entries) and meta["quantize.imatrix.chunks_count"] == 4
    src_r, p_r, w_r = (gguf.GGUFReader(p) for p in (src, plain, weighted))
    src_t = {t.name: t for t in src_r.tensors}
    better = 0
    for name, w in weights.items():
        x = np.asarray(src_t[name].data, np.float32)
        errs = []
        for r in (p_r, w_r):
            t = next(t for t in r.tensors if t.name == name)
            y = gguf.quants.dequantize(t.data, t.tensor_type).reshape(x.shape)
            errs.append(float(np.sum(w * (x - y) ** 2)))
        better += errs[1] < errs[0]
    assert better == len(weights)  # the importance-weighted error drops on every tensor


def test_report_path_and_policy_object(small_model, tmp_path):
    d, src = small_model
    out, rep = str(tmp_path / "o.gguf"), str(tmp_path / "reports" / "run1")
    os.makedirs(os.path.dirname(rep))
    policy = bq.Policy({"version": 1, "default": "Q5_K", "rules": [{"glob": "blk.0.*", "type": "keep"}]})
    report = bq.quantize_model(src, out, policy=policy, report_path=rep, threads=1)
    assert os.path.exists(rep + ".json") and os.path.exists(rep + ".md")
    assert not os.path.exists(out + ".report.json")
    assert json.load(open(rep + ".json"))["verdict"] == report["verdict"]
    assert json.load(open(out + ".manifest.json"))["files"][0]["path"] == "o.gguf"
    types = {t["name"]: t["type"] for t in report["tensors"]}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.1.attn_q.weight"] == "Q5_K"


def test_budget_with_imatrix_fits(small_model):
    d, src = small_model
    info = bq.inspect(src)
    rng = np.random.default_rng(4)
    entries = {t["name"]: rng.exponential(size=t["shape"][0]).astype(np.float32)
               for t in info["tensors"] if len(t["shape"]) == 2 and t["name"].startswith("blk.")}
    imat = str(d / "budget-imatrix.dat")
    write_legacy_imatrix(imat, entries)
    out = str(d / "budget-imat.gguf")
    report = bq.quantize_model(src, out, target_bpw=3.5, imatrix=imat, threads=2, reports=False)
    assert report["totals"]["bits_per_weight"] <= 3.5 + 1e-9
    assert bq.inspect(out)["metadata"]["quantize.imatrix.entries_count"] == len(entries)


def test_plan_tensors_matches_the_file_plan(small_model):
    """The planner bq.torch uses (tensors given as a list) decides exactly as for the file."""
    _, small_model = small_model
    from_file = bq.plan(small_model, "Q4_K_M")
    info = bq.inspect(small_model)
    listed = bq._core.plan_tensors([(t["name"], t["shape"], t["type"]) for t in info["tensors"]], "Q4_K_M",
                                   {"arch": info["metadata"]["general.architecture"],
                                    "n_layer": info["metadata"]["llama.block_count"]})
    assert [(t["name"], t["type"], t["bytes"]) for t in listed["tensors"]] == \
        [(t["name"], t["type"], t["bytes"]) for t in from_file["tensors"]]
    assert listed["total_bytes"] == from_file["totals"]["tensor_bytes"]
    with pytest.raises(bq.ShapeError):
        bq._core.plan_tensors([("blk.0.attn_q.weight", [256, 0], "F16")], "Q4_K_M", {})
    with pytest.raises(bq.UnsupportedTypeError):
        bq._core.plan_tensors([("blk.0.attn_q.weight", [256, 4], "F99")], "Q4_K_M", {})
