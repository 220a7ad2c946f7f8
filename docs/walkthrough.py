"""A walkthrough of blockquant from Python, top to bottom (it runs as a test:
tests/python/test_walkthrough.py). Run it yourself with
    .venv/bin/python docs/walkthrough.py [WORKDIR]
"""
import os
import sys
import tempfile

import numpy as np

import blockquant as bq

work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bq-walkthrough-")
os.makedirs(work, exist_ok=True)

# 1. Blocks: a float matrix to GGUF Q4_K blocks and back.
w = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
qt = bq.quantize(w, "q4_k")
err = np.sqrt(np.mean((w - bq.dequantize(qt)) ** 2) / np.mean(w ** 2))
print(f"1. {qt}: relative RMSE {err:.4f}")
assert qt.nbytes == 512 * 4 * 144 and err < 0.0707

# 2. Importance: weight the columns that matter (an imatrix row) and their error drops.
imp = np.ones(1024, np.float32)
imp[::4] = 50.0  # every 4th input column carries large activations
wq = bq.dequantize(bq.quantize(w, "Q3_K", importance=imp))
pq = bq.dequantize(bq.quantize(w, "Q3_K"))
e_plain, e_imp = (float(np.abs(w - q)[:, ::4].mean()) for q in (pq, wq))
print(f"2. error on the important columns: {e_plain:.4f} plain, {e_imp:.4f} with importance")
assert e_imp < 0.9 * e_plain

# 3. A model: generate the small demo GGUF, look at the plan, quantize, validate.
src = os.path.join(work, "small-f16.gguf")
bq.make_demo_model(src, small=True)
plan = bq.plan(src, "Q4_K_M")
print(f"3. plan: {plan['totals']['bits_per_weight']:.3f} bits/weight before any work")
policy = bq.Policy({"version": 1, "default": "Q4_K",
                    "rules": [{"role": "output", "type": "Q8_0"}, {"role": "token_embd", "type": "Q6_K"}]})
out = os.path.join(work, "small-custom.gguf")
report = bq.quantize_model(src, out, policy=policy, threads=2)
print(f"   {report['verdict']}: {report['totals']['file_bytes']} bytes, "
      f"{report['totals']['bits_per_weight']:.3f} bits/weight; manifest at {out}.manifest.json")
assert report["verdict"] == "GO"
types = {t["name"]: t["type"] for t in bq.inspect(out)["tensors"]}
assert types["output.weight"] == "Q8_0" and types["token_embd.weight"] == "Q6_K"
check = bq.validate_model(src, out)
print(f"   validate: {check['verdict']}, worst rel RMSE "
      f"{max(t.get('rel_rmse', 0) for t in check['tensors']):.4f}")

# 4. Kernels: multiply by the quantized weight without dequantizing it.
if bq._core.has_kernels:
    x = np.random.default_rng(1).standard_normal((4, 1024)).astype(np.float32)
    y = bq.matmul(qt, x)
    ref = x @ bq.dequantize(qt).T
    rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    print(f"4. matmul on {bq.cpu_targets()['chosen']} (q8 activations): relative error {rel:.4f}")
    assert rel < 0.02
print("walkthrough done in", work)
