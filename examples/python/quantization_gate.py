"""A GO/NO-GO gate for quantization policies, run on the team's own eval set before any GGUF
is exported: the metric of the float model against the metric of the same model quantized
with each candidate policy (bq.torch.quantize_, fake mode: the values the GGUF will hold).

    python examples/python/quantization_gate.py --model PATH --eval pairs.jsonl \\
        --policies Q8_0,Q6_K,Q4_K_M,Q3_K_M --out gate.json

``pairs.jsonl``: one example per line, {"src": ..., "ref": ..., "src_lang": "en", "tgt_lang": "de"}
(``ref`` and the language codes are optional for embedding and causal models; a line may give
{"text": ...} instead). The model kind is found from the folder (``--kind`` overrides):

- seq2seq (translation): BLEU of generated translations against ``ref`` per language pair when
  sacrebleu is installed (``--metric bleu``), else the per-token loss of ``ref`` given ``src``
  (``--metric nll``, no extra package);
- causal LM: perplexity of the texts;
- embedding (a sentence-transformers folder): cosine between float and quantized embeddings.

Quality loss per pair is the metric's relative change for the worse, in percent. A policy is
GO when the mean loss is under ``--mean-loss`` (default 1%) and every pair is under
``--pair-loss`` (default 2%). The JSON lists each policy's size, per-pair metrics, losses and
verdict, and ``choice``: the smallest policy that is GO.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

import torch

import blockquant as bq


def read_eval(path: str, max_examples: Optional[int] = None) -> "OrderedDict[str, List[dict]]":
    """Examples grouped by language pair ("en-de"; "all" when a line names no languages)."""
    pairs: "OrderedDict[str, List[dict]]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from e
            if "src" not in ex and "text" in ex:
                ex["src"] = ex["text"]
            if not isinstance(ex.get("src"), str):
                raise ValueError(f"{path}:{n}: needs a string 'src' (or 'text')")
            key = f"{ex['src_lang']}-{ex['tgt_lang']}" if "src_lang" in ex and "tgt_lang" in ex else "all"
            pairs.setdefault(key, []).append(ex)
    if max_examples:
        for k in pairs:
            pairs[k] = pairs[k][:max_examples]
    if not pairs:
        raise ValueError(f"{path}: no examples")
    return pairs


def detect_kind(path: str) -> str:
    if os.path.exists(os.path.join(path, "modules.json")):
        return "embedding"
    from transformers import AutoConfig
    return "seq2seq" if getattr(AutoConfig.from_pretrained(path), "is_encoder_decoder", False) else "causal"


def load(path: str, kind: str):
    """(model, tokenizer); the tokenizer is None for sentence-transformers models."""
    if kind == "embedding":
        from sentence_transformers import SentenceTransformer
        return SentenceTransformer(path, device="cpu"), None
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    cls = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    return cls.from_pretrained(path, torch_dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def _set_langs(tok, ex: dict) -> Dict[str, Any]:
    """NLLB/M2M-style tokenizers take the source language; the target is forced as the first token."""
    extra: Dict[str, Any] = {}
    if "src_lang" in ex and hasattr(tok, "src_lang"):
        tok.src_lang = ex["src_lang"]
    if "tgt_lang" in ex and ex["tgt_lang"] in tok.get_vocab():
        extra["forced_bos_token_id"] = tok.convert_tokens_to_ids(ex["tgt_lang"])
    return extra


def metric_fn(kind: str, metric: str, tok, reference_model=None) -> Callable[[Any, List[dict]], float]:
    """A function (model, examples) -> metric value; ``higher`` below says which way is better."""
    if kind == "embedding":
        def cosine(model, exs):
            texts = [e["src"] for e in exs]
            ref = reference_model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
            q = model.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
            return float((ref * q).sum(dim=1).mean())
        return cosine
    if kind == "causal":
        def perplexity(model, exs):
            nll = tokens = 0.0
            for e in exs:
                ids = tok(e["src"] + (" " + e["ref"] if e.get("ref") else ""), return_tensors="pt").input_ids
                out = model(ids, labels=ids)
                nll += float(out.loss) * (ids.shape[1] - 1)
                tokens += ids.shape[1] - 1
            return math.exp(nll / max(tokens, 1))
        return perplexity
    if metric == "bleu":
        import sacrebleu

        def bleu(model, exs):
            hyps = []
            for e in exs:
                extra = _set_langs(tok, e)
                enc = tok(e["src"], return_tensors="pt")
                out = model.generate(input_ids=enc["input_ids"], attention_mask=enc.get("attention_mask"), max_new_tokens=128, num_beams=1, do_sample=False, **extra)
                hyps.append(tok.decode(out[0], skip_special_tokens=True))
            return float(sacrebleu.corpus_bleu(hyps, [[e["ref"] for e in exs]]).score)
        return bleu

    def nll(model, exs):
        total = tokens = 0.0
        for e in exs:
            _set_langs(tok, e)
            enc = tok(e["src"], text_target=e["ref"], return_tensors="pt")
            out = model(**enc)
            n = int((enc["labels"] != -100).sum())
            total += float(out.loss) * n
            tokens += n
        return total / max(tokens, 1)
    return nll


HIGHER_IS_BETTER = {"cosine": True, "bleu": True, "perplexity": False, "nll": False}


def loss_percent(float_value: float, quant_value: float, higher_is_better: bool) -> float:
    """How much worse the quantized metric is, in percent of the float one (negative: better)."""
    worse = float_value - quant_value if higher_is_better else quant_value - float_value
    return 100.0 * worse / abs(float_value) if float_value != 0 else 100.0 * worse


def run_gate(model, tok, kind: str, metric: str, pairs: "OrderedDict[str, List[dict]]", policies: List[str],
             mean_limit: float = 1.0, pair_limit: float = 2.0, mode: str = "fake",
             imatrix: Optional[str] = None) -> Dict[str, Any]:
    with torch.no_grad():
        return _run_gate(model, tok, kind, metric, pairs, policies, mean_limit, pair_limit, mode, imatrix)


def _run_gate(model, tok, kind, metric, pairs, policies, mean_limit, pair_limit, mode, imatrix):
    measure = metric_fn(kind, metric, tok, reference_model=model)
    higher = HIGHER_IS_BETTER[metric]
    base = {k: measure(model, v) for k, v in pairs.items()}
    result: Dict[str, Any] = {"kind": kind, "metric": metric, "higher_is_better": higher,
                              "thresholds": {"mean_loss_percent": mean_limit, "pair_loss_percent": pair_limit},
                              "float": base, "policies": []}
    for policy in policies:
        q = copy.deepcopy(model)
        report = bq.torch.quantize_(q, policy, imatrix=imatrix, mode=mode)
        values = {k: measure(q, v) for k, v in pairs.items()}
        losses = {k: loss_percent(base[k], values[k], higher) for k in pairs}
        mean_loss = sum(losses.values()) / len(losses)
        go = mean_loss < mean_limit and all(v < pair_limit for v in losses.values())
        t = report.totals
        result["policies"].append({"policy": policy, "bytes": t["bytes"], "bits_per_weight": t["bits_per_weight"],
                                   "values": values, "loss_percent": losses, "mean_loss_percent": mean_loss,
                                   "verdict": "GO" if go else "NO-GO", "unmapped_modules": report.unmapped})
        del q
    go = [p for p in result["policies"] if p["verdict"] == "GO"]
    result["choice"] = min(go, key=lambda p: p["bytes"])["policy"] if go else None
    return result


def table(result: Dict[str, Any]) -> str:
    pairs = list(result["float"])
    head = f"| policy | MB | bits/w | " + " | ".join(f"{p} {result['metric']} (loss %)" for p in pairs) + \
        " | mean loss % | verdict |"
    lines = [head, "|" + "---|" * (5 + len(pairs))]
    lines.append("| float | - | - | " + " | ".join(f"{result['float'][p]:.4f}" for p in pairs) + " | - | - |")
    for r in result["policies"]:
        cells = " | ".join(f"{r['values'][p]:.4f} ({r['loss_percent'][p]:+.2f})" for p in pairs)
        lines.append(f"| {r['policy']} | {r['bytes'] / 1e6:.1f} | {r['bits_per_weight']:.2f} | {cells} | "
                     f"{r['mean_loss_percent']:+.2f} | {r['verdict']} |")
    lines.append(f"\nchoice (smallest GO): {result['choice'] or 'none'}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a Hugging Face or sentence-transformers model folder")
    ap.add_argument("--eval", required=True, help="JSONL eval set")
    ap.add_argument("--policies", default="Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M")
    ap.add_argument("--kind", choices=["auto", "seq2seq", "causal", "embedding"], default="auto")
    ap.add_argument("--metric", choices=["auto", "bleu", "nll"], default="auto", help="seq2seq only")
    ap.add_argument("--mean-loss", type=float, default=1.0, help="max mean quality loss, percent")
    ap.add_argument("--pair-loss", type=float, default=2.0, help="max loss of any language pair, percent")
    ap.add_argument("--mode", choices=["fake", "kernel"], default="fake")
    ap.add_argument("--imatrix", help="llama.cpp imatrix file (GGUF or .dat)")
    ap.add_argument("--max-examples", type=int, help="per language pair")
    ap.add_argument("--out", help="write the GO/NO-GO JSON here")
    args = ap.parse_args(argv)

    kind = detect_kind(args.model) if args.kind == "auto" else args.kind
    if kind == "seq2seq":
        metric = args.metric
        if metric == "auto":
            try:
                import sacrebleu  # noqa: F401
                metric = "bleu"
            except ImportError:
                metric = "nll"
                print("sacrebleu is not installed: gating on the reference's per-token loss (--metric nll)",
                      file=sys.stderr)
    else:
        metric = {"embedding": "cosine", "causal": "perplexity"}[kind]
    model, tok = load(args.model, kind)
    result = run_gate(model, tok, kind, metric, read_eval(args.eval, args.max_examples),
                      [p.strip() for p in args.policies.split(",") if p.strip()],
                      args.mean_loss, args.pair_loss, args.mode, args.imatrix)
    print(table(result))
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.out)
    return 0 if result["choice"] else 1


if __name__ == "__main__":
    sys.exit(main())
