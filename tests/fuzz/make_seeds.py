#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/: small valid inputs
from the gguf package and blockquant, plus truncated copies. Run from the
repository root with the venv's python (numpy, gguf, blockquant importable):

  .venv/bin/python tests/fuzz/make_seeds.py
"""
import json
import os
import struct

import numpy as np
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data, truncations=(0.5, 0.9)):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    for t in truncations:
        with open(os.path.join(d, f"{name}.trunc{int(t * 100)}"), "wb") as f:
            f.write(data[: int(len(data) * t)])


def gguf_bytes(path, build):
    w = gguf.GGUFWriter(path, "llama")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "rb") as f:
        return f.read()


def main():
    os.makedirs(ROOT, exist_ok=True)
    tmp = os.path.join(ROOT, "seed.tmp")
    rng = np.random.default_rng(0)

    def model(w):
        w.add_uint32("llama.block_count", 1)
        w.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
        w.add_tensor("token_embd.weight", rng.standard_normal((4, 32), dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((2, 32)).astype(np.float16))
    put("gguf", "model.gguf", gguf_bytes(tmp, model))

    def imatrix(w):
        w.add_string("general.type", "imatrix")
        w.add_uint32("imatrix.chunk_count", 3)
        w.add_uint32("imatrix.chunk_size", 512)
        w.add_tensor("blk.0.attn_q.weight.in_sum2", rng.random((1, 32), dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight.counts", np.array([[3.0]], dtype=np.float32))
    put("imatrix", "imatrix.gguf", b"\x01" + gguf_bytes(tmp, imatrix))
    os.remove(tmp)

    # Legacy .dat: count, then per entry name, ncall, nval, values; then the
    # chunk count and the dataset name.
    name = b"blk.0.ffn_down.weight"
    dat = struct.pack("<i", 1) + struct.pack("<i", len(name)) + name + struct.pack("<ii", 4, 16)
    dat += rng.random(16, dtype=np.float32).tobytes() + struct.pack("<i", 4) + struct.pack("<i", 4) + b"wiki"
    put("imatrix", "imatrix.dat", b"\x00" + dat)

    header = {"model.layers.0.self_attn.q_proj.weight": {"dtype": "F16", "shape": [2, 8], "data_offsets": [0, 32]},
              "lm_head.weight": {"dtype": "BF16", "shape": [1, 8], "data_offsets": [32, 48]},
              "__metadata__": {"format": "pt"}}
    h = json.dumps(header).encode()
    put("safetensors", "model.safetensors", struct.pack("<Q", len(h)) + h + bytes(range(48)))

    rules = {"version": 1, "rules": [
        {"name": "keep-vision", "glob": "v.*", "type": "keep"},
        {"name": "v-early", "role": "attn_v", "layers": [0, 3], "type": "Q8_0"},
        {"name": "down-edges", "role": "ffn_down_all", "layers": [-2, -1], "type": "Q6_K"},
        {"name": "small-f16", "max_elements": 1048576, "type": "F16"},
        {"name": "attn", "regex": "attn_(q|k|output)", "type": "Q5_K"}], "default": "Q4_K"}
    put("rules", "rules.json", json.dumps(rules).encode(), truncations=(0.5,))
    # Regression: a repetition count that overflowed libstdc++'s regex parser
    # (signed overflow, found by fuzz_rules); now refused before compiling.
    hostile = {"version": 1, "rules": [{"name": "count", "regex": "a{77777777777777777777}", "type": "Q8_0"}],
               "default": "Q4_K"}
    put("rules", "regex_count_overflow.json", json.dumps(hostile).encode(), truncations=())

    import blockquant as bq
    x = rng.standard_normal((1, 256), dtype=np.float32)
    for i, t in enumerate(["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]):
        ids = {"F32": 0, "F16": 1, "BF16": 2, "Q4_0": 3, "Q4_1": 4, "Q5_0": 5, "Q5_1": 6, "Q8_0": 7,
               "Q2_K": 8, "Q3_K": 9, "Q4_K": 10, "Q5_K": 11, "Q6_K": 12}
        q = bq.quantize(x, t).data.tobytes()
        put("dequantize", f"{t}.bin", bytes([ids[t]]) + q, truncations=())


if __name__ == "__main__":
    main()
