"""safetensors checkpoints (Hugging Face llama naming) through the flow."""
import json
import struct

import numpy as np
import pytest

import blockquant as bq

gguf = pytest.importorskip("gguf")


def write_safetensors(path, tensors, header_patch=None):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[arr.dtype]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if header_patch:
        header_patch(header)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def llama_tensors(rng, hidden=256, ffn=512, layers=2, vocab=300):
    t = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden)).astype(np.float16),
         "model.norm.weight": np.ones(hidden, np.float32),
         "lm_head.weight": rng.standard_normal((vocab, hidden)).astype(np.float16)}
    for l in range(layers):
        p = f"model.layers.{l}."
        for proj, shape in [("self_attn.q_proj", (hidden, hidden)), ("self_attn.k_proj", (hidden // 2, hidden)),
                            ("self_attn.v_proj", (hidden // 2, hidden)), ("self_attn.o_proj", (hidden, hidden)),
                            ("mlp.gate_proj", (ffn, hidden)), ("mlp.up_proj", (ffn, hidden)),
                            ("mlp.down_proj", (hidden, ffn))]:
            t[p + proj + ".weight"] = (rng.standard_normal(shape) * 0.02).astype(np.float16)
        t[p + "input_layernorm.weight"] = np.ones(hidden, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(hidden, np.float32)
    return t


def test_safetensors_checkpoint_quantizes_with_gguf_names(tmp_path):
    rng = np.random.default_rng(0)
    src = str(tmp_path / "tiny-llama.safetensors")
    tensors = llama_tensors(rng)
    write_safetensors(src, tensors)
    out = str(tmp_path / "tiny-llama-q4_k_m.gguf")
    report = bq.quantize_model(src, out, policy="Q4_K_M", threads=1)
    assert report["verdict"] == "GO"
    reader = gguf.GGUFReader(out)
    names = {t.name: t for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "output_norm.weight", "blk.1.ffn_down.weight",
            "blk.0.attn_k.weight", "blk.1.ffn_norm.weight"} <= set(names)
    q = names["blk.0.attn_q.weight"]
    assert q.tensor_type.name == "Q4_K" and list(q.shape) == [256, 256]
    deq = gguf.quants.dequantize(q.data, q.tensor_type).reshape(256, 256)
    orig = tensors["model.layers.0.self_attn.q_proj.weight"].astype(np.float32)
    assert np.sqrt(np.mean((deq - orig) ** 2) / np.mean(orig ** 2)) < 0.1


@pytest.mark.parametrize("patch,error,match", [
    (lambda h: h["lm_head.weight"].update(data_offsets=[0, 10 ** 12]), bq.FormatError, "outside"),
    (lambda h: h["lm_head.weight"].update(shape=[1, 1]), bq.FormatError, "match"),
    (lambda h: h["lm_head.weight"].update(dtype="I64"), bq.UnsupportedTypeError, "I64"),
    (lambda h: h["model.norm.weight"].update(data_offsets=h["lm_head.weight"]["data_offsets"][:1] * 2), bq.FormatError,
     "match"),
])
def test_bad_safetensors_headers(tmp_path, patch, error, match):
    src = str(tmp_path / "bad.safetensors")
    write_safetensors(src, llama_tensors(np.random.default_rng(1), layers=1), patch)
    with pytest.raises(error, match=match):
        bq.quantize_model(src, str(tmp_path / "out.gguf"))


def test_truncated_and_garbage_safetensors(tmp_path):
    src = str(tmp_path / "t.safetensors")
    write_safetensors(src, llama_tensors(np.random.default_rng(2), layers=1))
    data = open(src, "rb").read()
    for cut in (4, 20, len(data) // 2):
        with open(src, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(bq.FormatError):
            bq.quantize_model(src, str(tmp_path / "out.gguf"))
    with open(src, "wb") as f:
        f.write(struct.pack("<Q", 2 ** 62) + b"{}")
    with pytest.raises(bq.FormatError, match="limit"):
        bq.quantize_model(src, str(tmp_path / "out.gguf"))
