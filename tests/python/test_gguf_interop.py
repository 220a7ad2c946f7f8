"""Files written by llama.cpp's gguf.GGUFWriter read by blockquant, and the
flow's failure modes at the file-system level."""
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import blockquant as bq

gguf = pytest.importorskip("gguf")


def test_gguf_writer_file_reads_and_quantizes(tmp_path):
    path = str(tmp_path / "from-gguf-writer.gguf")
    rng = np.random.default_rng(3)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("interop")
    w.add_block_count(1)
    w.add_uint8("t.u8", 7)
    w.add_int64("t.i64", -5)
    w.add_float64("t.f64", 2.5)
    w.add_bool("t.bool", True)
    w.add_array("t.strings", ["a", "b", "c"])
    a = rng.standard_normal((64, 256)).astype(np.float16)
    b = rng.standard_normal(256).astype(np.float32)
    q = gguf.quants.quantize(rng.standard_normal((8, 256)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", a)
    w.add_tensor("blk.0.attn_norm.weight", b)
    w.add_tensor("blk.0.ffn_up.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    info = bq.inspect(path)
    meta = info["metadata"]
    assert meta["general.architecture"] == "llama" and meta["general.name"] == "interop"
    assert meta["t.u8"] == 7 and meta["t.i64"] == -5 and meta["t.f64"] == 2.5 and meta["t.bool"] is True
    assert meta["t.strings"] == ["a", "b", "c"]
    tensors = {t["name"]: t for t in info["tensors"]}
    assert tensors["blk.0.attn_q.weight"]["type"] == "F16" and tensors["blk.0.attn_q.weight"]["shape"] == [256, 64]
    assert tensors["blk.0.ffn_up.weight"]["type"] == "Q8_0"

    out = str(tmp_path / "requant.gguf")
    report = bq.quantize_model(path, out, policy="Q8_0", threads=1)
    reader = gguf.GGUFReader(out)
    t = {x.name: x for x in reader.tensors}
    ours = gguf.quants.dequantize(t["blk.0.attn_q.weight"].data, t["blk.0.attn_q.weight"].tensor_type)
    assert np.abs(ours - a.astype(np.float32)).max() < 0.05
    assert report["verdict"] == "GO"


def test_disk_full_leaves_no_partial_file(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the write fails, the error is clear, and neither
    the output nor its temporary file remains."""
    src = str(tmp_path / "src.gguf")
    bq.make_demo_model(src, small=True)
    out = str(tmp_path / "out.gguf")
    code = (
        "import resource, signal, sys, blockquant as bq\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))\n"
        f"try:\n    bq.quantize_model({src!r}, {out!r}, threads=1)\n"
        "except bq.IoError as e:\n    print('IOERROR', e); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "IOERROR" in r.stdout and "out.gguf" in r.stdout
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory(tmp_path):
    src = str(tmp_path / "src.gguf")
    bq.make_demo_model(src, small=True)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(bq.IoError):
            bq.quantize_model(src, str(ro / "out.gguf"))
    finally:
        ro.chmod(0o700)


def test_nan_weights_are_reported_with_the_tensor_and_leave_no_file(tmp_path):
    path = str(tmp_path / "nan.gguf")
    w = gguf.GGUFWriter(path, "llama")
    good = np.ones((4, 256), np.float16)
    bad = np.ones((4, 256), np.float16)
    bad[2, 17] = np.nan
    w.add_tensor("blk.0.attn_q.weight", good)
    w.add_tensor("blk.0.attn_k.weight", bad)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = str(tmp_path / "out.gguf")
    with pytest.raises(bq.NonFiniteError, match=r"blk\.0\.attn_k\.weight.*row 2, column 17"):
        bq.quantize_model(path, out, policy="Q4_K_M")
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]
