"""PyTorch bridge: run your own evaluation on exactly the blocks the GGUF will hold.

    import blockquant as bq
    report = bq.torch.quantize_(model, policy="Q4_K_M")                 # "fake": weights <- decoded blocks
    print(report.to_markdown())
    bq.torch.quantize_(model, policy="Q4_K_M", mode="kernel")            # QuantLinear runs blockquant's kernels

Hugging Face module names are mapped to GGUF names (``model.layers.3.self_attn.q_proj`` ->
``blk.3.attn_q``), so the policy picks the same type for each weight as ``bq.quantize_model``
does for the converted GGUF. Decoder (llama, mistral, qwen2, gemma, phi3), encoder (BERT) and
encoder-decoder (t5, marian, nllb/m2m100, bart) names are known; other Linear/Embedding modules
fall to the policy's default rule and are listed in ``report.unmapped``. docs/torch.md has more.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

try:
    import torch
    from torch import nn
except ImportError as e:  # torch stays optional: `import blockquant` works without it
    raise ImportError("blockquant.torch needs PyTorch, which is not installed (pip install torch); "
                      "the rest of blockquant works without it") from e

import numpy as np

from . import QuantizedTensor, _core, dequantize, quantize
from .calib import ImatrixCollector as _NumpyImatrixCollector
from .flow import Policy, _policy, _threads

__all__ = ["quantize_", "QuantLinear", "QuantEmbedding", "ImatrixCollector", "Report", "gguf_name", "plan"]

# --------------------------------------------------------------------------------------------
# Hugging Face module names -> GGUF tensor names (without ".weight").

_L = r"(\d+)"
# (pattern, replacement); the pattern matches the end of the module name, so wrappers such as
# sentence-transformers' "0.auto_model." or a task head's "bert." prefix do not matter.
_NAME_RULES: List[Tuple[str, str]] = [
    # encoder-decoders first: their "encoder.layers.N.self_attn" would match the decoder rules.
    # t5 (llama.cpp's t5 names: enc./dec. blocks, attn_o, cross_attn_*)
    (r"shared", "token_embd"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.0\.SelfAttention\.([qkv])", r"\1.blk.\2.attn_\3"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.0\.SelfAttention\.o", r"\1.blk.\2.attn_o"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.0\.SelfAttention\.relative_attention_bias", r"\1.blk.\2.attn_rel_b"),
    (rf"decoder\.block\.{_L}\.layer\.1\.EncDecAttention\.([qkvo])", r"dec.blk.\1.cross_attn_\2"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.\d\.DenseReluDense\.wi", r"\1.blk.\2.ffn_up"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.\d\.DenseReluDense\.wi_0", r"\1.blk.\2.ffn_gate"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.\d\.DenseReluDense\.wi_1", r"\1.blk.\2.ffn_up"),
    (rf"(enc|dec)oder\.block\.{_L}\.layer\.\d\.DenseReluDense\.wo", r"\1.blk.\2.ffn_down"),
    # marian, nllb/m2m100, bart, mbart (same t5-style names)
    (r"(enc|dec)oder\.embed_tokens", "token_embd"),
    (r"(enc|dec)oder\.embed_positions", r"\1.position_embd"),
    (rf"(enc|dec)oder\.layers\.{_L}\.self_attn\.([qkv])_proj", r"\1.blk.\2.attn_\3"),
    (rf"(enc|dec)oder\.layers\.{_L}\.self_attn\.out_proj", r"\1.blk.\2.attn_o"),
    (rf"decoder\.layers\.{_L}\.encoder_attn\.([qkv])_proj", r"dec.blk.\1.cross_attn_\2"),
    (rf"decoder\.layers\.{_L}\.encoder_attn\.out_proj", r"dec.blk.\1.cross_attn_o"),
    (rf"(enc|dec)oder\.layers\.{_L}\.fc1", r"\1.blk.\2.ffn_up"),
    (rf"(enc|dec)oder\.layers\.{_L}\.fc2", r"\1.blk.\2.ffn_down"),
    # decoders: llama, mistral, qwen2, gemma, phi3
    (r"model\.embed_tokens", "token_embd"),
    (r"lm_head", "output"),
    (rf"layers\.{_L}\.self_attn\.q_proj", r"blk.\1.attn_q"),
    (rf"layers\.{_L}\.self_attn\.k_proj", r"blk.\1.attn_k"),
    (rf"layers\.{_L}\.self_attn\.v_proj", r"blk.\1.attn_v"),
    (rf"layers\.{_L}\.self_attn\.o_proj", r"blk.\1.attn_output"),
    (rf"layers\.{_L}\.self_attn\.qkv_proj", r"blk.\1.attn_qkv"),
    (rf"layers\.{_L}\.mlp\.gate_proj", r"blk.\1.ffn_gate"),
    (rf"layers\.{_L}\.mlp\.up_proj", r"blk.\1.ffn_up"),
    (rf"layers\.{_L}\.mlp\.gate_up_proj", r"blk.\1.ffn_up"),  # phi3's fused gate+up, as llama.cpp names it
    (rf"layers\.{_L}\.mlp\.down_proj", r"blk.\1.ffn_down"),
    # BERT-style encoders
    (r"embeddings\.word_embeddings", "token_embd"),
    (r"embeddings\.position_embeddings", "position_embd"),
    (r"embeddings\.token_type_embeddings", "token_types"),
    (rf"encoder\.layer\.{_L}\.attention\.self\.query", r"blk.\1.attn_q"),
    (rf"encoder\.layer\.{_L}\.attention\.self\.key", r"blk.\1.attn_k"),
    (rf"encoder\.layer\.{_L}\.attention\.self\.value", r"blk.\1.attn_v"),
    (rf"encoder\.layer\.{_L}\.attention\.output\.dense", r"blk.\1.attn_output"),
    (rf"encoder\.layer\.{_L}\.intermediate\.dense", r"blk.\1.ffn_up"),
    (rf"encoder\.layer\.{_L}\.output\.dense", r"blk.\1.ffn_down"),
]
_COMPILED = [(re.compile(r"(?:^|\.)" + p + "$"), r) for p, r in _NAME_RULES]


def gguf_name(module_name: str) -> Optional[str]:
    """The GGUF tensor name (with ".weight") of a Hugging Face Linear/Embedding module, or None
    when the name is not one blockquant knows."""
    for pattern, repl in _COMPILED:
        m = pattern.search(module_name)
        if m:
            # expand only the matched part; the leading "." (if any) is not part of the name
            return m.expand(repl) + ".weight"
    return None


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _facts(model: nn.Module) -> Dict[str, Any]:
    """Model facts the llama.cpp presets depend on, from a transformers config when there is one."""
    # the model's own config, or a wrapped one's (sentence-transformers keeps it in 0.auto_model)
    cfg = next((m.config for m in model.modules() if hasattr(getattr(m, "config", None), "model_type")), None)
    if cfg is None:
        return {}
    arch = {"mistral": "llama", "llama": "llama", "qwen2": "qwen2", "gemma": "gemma", "gemma2": "gemma2",
            "phi3": "phi3", "bert": "bert", "t5": "t5", "marian": "t5", "m2m_100": "t5", "nllb": "t5",
            "bart": "t5", "mbart": "t5"}.get(getattr(cfg, "model_type", ""), getattr(cfg, "model_type", ""))
    facts: Dict[str, Any] = {"arch": arch} if arch else {}
    for key, names in (("n_layer", ("num_hidden_layers",)),
                       ("n_head", ("num_attention_heads", "encoder_attention_heads", "num_heads")),
                       ("n_head_kv", ("num_key_value_heads",))):
        for n in names:
            v = getattr(cfg, n, None)
            if isinstance(v, int) and v > 0:
                facts[key] = v
                break
    if "n_head" in facts and "n_head_kv" not in facts:
        facts["n_head_kv"] = facts["n_head"]
    return facts


@dataclass
class _Target:
    module_name: str
    module: nn.Module
    gguf: str
    mapped: bool
    tied_to: Optional[str] = None  # module name of the first module holding the same weight


def _targets(model: nn.Module) -> List[_Target]:
    out: List[_Target] = []
    seen: Dict[int, str] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Linear, nn.Embedding, QuantLinear, QuantEmbedding)) or not name:
            continue
        w = getattr(mod, "weight", None)
        if isinstance(mod, (QuantLinear, QuantEmbedding)):
            raise ValueError(f"module {name!r} is already quantized (blockquant {mod.qtype})")
        mapped = gguf_name(name)
        t = _Target(name, mod, mapped or f"{name}.weight", mapped is not None)
        if w is not None and id(w) in seen:
            t.tied_to = seen[id(w)]
        elif w is not None:
            seen[id(w)] = name
        out.append(t)
    # A GGUF name can only hold one tensor: a second module mapping to the same name (a
    # model with untied encoder and decoder embeddings, say) keeps its own spelling.
    used: Dict[str, str] = {}
    for t in out:
        if t.tied_to is not None:
            continue
        if t.gguf in used:
            t.gguf, t.mapped = f"{t.module_name}.weight", False
        used[t.gguf] = t.module_name
    return out


def _desc(t: _Target) -> Tuple[str, List[int], str]:
    w = t.module.weight
    if w.dtype not in _DTYPES:
        raise TypeError(f"module {t.module_name!r}: weights of dtype {w.dtype} (need float32, float16 or bfloat16)")
    return (t.gguf, [int(d) for d in reversed(w.shape)], _DTYPES[w.dtype])


def plan(model: nn.Module, policy: Any = "Q4_K_M", imatrix: Any = None) -> Dict[str, Any]:
    """The policy's per-module plan (GGUF name, role, type, bytes), before any quantization."""
    keep = Policy(policy) if isinstance(policy, dict) else policy
    targets = [t for t in _targets(model) if t.tied_to is None]
    p = _core.plan_tensors([_desc(t) for t in targets], _policy(keep), _facts(model), imatrix is not None)
    for t, row in zip(targets, p["tensors"]):
        row["module"] = t.module_name
        row["mapped"] = t.mapped
    return p


# --------------------------------------------------------------------------------------------
# Modules that keep GGUF blocks and run blockquant's kernels.

def _cuda_module():
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


def _matmul_impl(x: torch.Tensor, blocks: torch.Tensor, qtype: str, rows: int, cols: int) -> torch.Tensor:
    """y (n x rows, float32) = x (n x cols) @ W^T for W held as GGUF blocks, on x's device."""
    if x.device.type == "cuda":
        cu = _cuda_module()
        if cu is None:
            raise _core.DeviceError("this build of blockquant has no CUDA kernels (nvcc was not found at build time)")
        if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            x = x.float()
        x = x.contiguous()
        y = torch.empty((x.shape[0], rows), dtype=torch.float32, device=x.device)
        cu.matmul(qtype, blocks.data_ptr(), rows, cols, _DTYPES[x.dtype], x.data_ptr(), x.shape[0], y.data_ptr(),
                  torch.cuda.current_stream(x.device).cuda_stream)
        return y
    xs = x.detach().to(torch.float32).contiguous().numpy()
    y = _core.matmul(blocks.numpy(), rows, cols, qtype, xs, xs.shape[0], True, torch.get_num_threads())
    return torch.from_numpy(y)


def _fake_matmul(x: torch.Tensor, blocks: torch.Tensor, qtype: str, rows: int, cols: int) -> torch.Tensor:
    return x.new_empty((x.shape[0], rows), dtype=torch.float32)


if hasattr(torch, "library") and hasattr(torch.library, "custom_op"):
    # An opaque op for torch.compile: the graph holds one call per layer, no Python loop.
    _matmul_op = torch.library.custom_op("blockquant::matmul", mutates_args=())(_matmul_impl)
    _matmul_op.register_fake(_fake_matmul)
else:  # torch < 2.4: eager only
    _matmul_op = _matmul_impl


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


class QuantLinear(nn.Module):
    """A Linear layer whose weight is GGUF blocks (buffer ``blocks``, uint8), multiplied by
    blockquant's kernels: the CPU kernels (activations quantized to the q8 partner type, as
    llama.cpp does) or, on a GPU, the CUDA kernels. Types without a CUDA kernel (Q4_1, Q5_0,
    Q5_1, F16, ...) decode once to the activation dtype on first use there and then run as a
    plain linear (``fallback_weight``). The blocks travel with ``.to()`` and ``state_dict``."""

    def __init__(self, in_features: int, out_features: int, qtype: str, bias: bool = False,
                 device: Any = None) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.qtype = _core.canonical_type_name(qtype)
        row_bytes = _core.row_bytes(self.qtype, self.in_features)
        self.register_buffer("blocks", torch.zeros(self.out_features * row_bytes, dtype=torch.uint8, device=device))
        self.bias = nn.Parameter(torch.zeros(self.out_features, device=device)) if bias else None
        # Follows the model's float dtype and device through .to()/.half(), for `weight`.
        self.register_buffer("_dtype_probe", torch.zeros(0, device=device), persistent=False)
        self._fallback: Optional[torch.Tensor] = None

    @classmethod
    def from_quantized(cls, qt: QuantizedTensor, bias: Optional[torch.Tensor] = None,
                       dtype: torch.dtype = torch.float32) -> "QuantLinear":
        if len(qt.shape) != 2:
            raise ValueError(f"QuantLinear needs a 2-D weight, got shape {qt.shape}")
        m = cls(qt.shape[1], qt.shape[0], qt.type, bias=bias is not None)
        m.blocks = torch.from_numpy(qt.data.copy())
        m._dtype_probe = m._dtype_probe.to(dtype)
        if bias is not None:
            m.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        return m

    @property
    def weight(self) -> torch.Tensor:
        """A stand-in with the float weight's shape, dtype and device, for model code that
        inspects ``layer.weight.dtype`` (t5 does); its values are NaN, so code that would
        multiply by it fails loudly. The values: ``dequantized_weight()``."""
        p = self._dtype_probe
        return torch.full((), float("nan"), dtype=p.dtype, device=p.device).expand(self.out_features,
                                                                                   self.in_features)

    def quantized(self) -> QuantizedTensor:
        """The weight as a bq.QuantizedTensor (a copy of the blocks on the CPU)."""
        return QuantizedTensor(self.qtype, (self.out_features, self.in_features),
                               self.blocks.detach().cpu().numpy().copy())

    def dequantized_weight(self) -> torch.Tensor:
        """The weight the blocks hold, float32 (out, in) on the CPU."""
        return torch.from_numpy(dequantize(self.quantized()))

    def memory_bytes(self) -> int:
        """Bytes this module holds: the blocks, the bias and any GPU fallback weight."""
        n = self.blocks.numel()
        if self.bias is not None:
            n += self.bias.numel() * self.bias.element_size()
        if self._fallback is not None:
            n += self._fallback.numel() * self._fallback.element_size()
        return int(n)

    def _apply(self, *args: Any, **kwargs: Any):  # .to()/.cuda(): the fallback belongs to the old device
        self._fallback = None
        return super()._apply(*args, **kwargs)

    def _needs_fallback(self) -> bool:
        if self.blocks.device.type != "cuda":
            return False
        cu = _cuda_module()
        return cu is None or not cu.supported(self.qtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.blocks.device:  # a host pointer must never reach a CUDA kernel
            raise ValueError(f"input on {x.device}, QuantLinear blocks on {self.blocks.device}: move one with .to()")
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self._needs_fallback():
            if self._fallback is None or self._fallback.dtype != x.dtype:
                self._fallback = self.dequantized_weight().to(device=x.device, dtype=x.dtype)
            y = torch.nn.functional.linear(x2, self._fallback)
        else:
            # Eager calls skip the custom op's dispatch (tens of microseconds a call, more than a
            # small GEMV on a GPU); torch.compile sees the op.
            op = _matmul_op if _compiling() else _matmul_impl
            y = op(x2, self.blocks, self.qtype, self.out_features, self.in_features).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, qtype={self.qtype}, "
                f"bias={self.bias is not None}")


class QuantEmbedding(nn.Module):
    """An Embedding whose table is GGUF blocks; a lookup decodes only the rows it reads (each
    row of a GGUF tensor is whole blocks). Used by ``quantize_(mode="kernel")``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, qtype: str, padding_idx: Optional[int] = None,
                 device: Any = None) -> None:
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = padding_idx
        self.qtype = _core.canonical_type_name(qtype)
        self.row_bytes = _core.row_bytes(self.qtype, self.embedding_dim)
        self.register_buffer("blocks", torch.zeros(self.num_embeddings * self.row_bytes, dtype=torch.uint8,
                                                   device=device))
        # Follows the model's float dtype through .to()/.half(): the dtype lookups return.
        self.register_buffer("_dtype_probe", torch.zeros(0, device=device), persistent=False)

    @classmethod
    def from_quantized(cls, qt: QuantizedTensor, padding_idx: Optional[int] = None,
                       dtype: torch.dtype = torch.float32) -> "QuantEmbedding":
        m = cls(qt.shape[0], qt.shape[1], qt.type, padding_idx)
        m.blocks = torch.from_numpy(qt.data.copy())
        m._dtype_probe = m._dtype_probe.to(dtype)
        return m

    def quantized(self) -> QuantizedTensor:
        return QuantizedTensor(self.qtype, (self.num_embeddings, self.embedding_dim),
                               self.blocks.detach().cpu().numpy().copy())

    def memory_bytes(self) -> int:
        return int(self.blocks.numel())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1).to(torch.int64)
        rows = self.blocks.view(self.num_embeddings, self.row_bytes).index_select(0, flat.to(self.blocks.device))
        dtype = self._dtype_probe.dtype
        cu = _cuda_module() if rows.is_cuda else None
        if cu is not None and cu.supported(self.qtype) and not _compiling():
            # decode on the GPU: no copy to the host, no synchronisation
            out = torch.empty((rows.shape[0], self.embedding_dim), dtype=dtype, device=rows.device)
            cu.dequantize(self.qtype, rows.data_ptr(), rows.shape[0], self.embedding_dim, _DTYPES[dtype],
                          out.data_ptr(), torch.cuda.current_stream(rows.device).cuda_stream)
        else:
            decoded = _core.dequantize(rows.cpu().numpy().reshape(-1), rows.shape[0], self.embedding_dim,
                                       self.qtype, 1)
            out = torch.from_numpy(decoded).to(device=ids.device, dtype=dtype)
        return out.reshape(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, qtype={self.qtype}"


# --------------------------------------------------------------------------------------------
# Importance matrices from the user's own calibration loop.

class ImatrixCollector(_NumpyImatrixCollector):
    """Forward hooks that accumulate per-input-column sums of x^2 for every Linear of ``model``,
    under GGUF names, while your own calibration loop runs::

        with bq.torch.ImatrixCollector(model) as col:
            for batch in calib_batches:
                model(**batch)
        col.save("imatrix.gguf")                      # llama.cpp reads it too
        bq.torch.quantize_(model, "Q4_K_M", imatrix=col)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._handles: List[Any] = []
        for t in _targets(model):
            if isinstance(t.module, nn.Linear) and t.tied_to is None:
                self._handles.append(t.module.register_forward_pre_hook(self._hook(t.gguf)))

    def _hook(self, name: str):
        def hook(_module: nn.Module, inputs: Tuple[Any, ...]) -> None:
            x = inputs[0].detach()
            self.add(name, x.reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy())
        return hook

    def remove(self) -> None:
        """Detaches the hooks (the sums stay)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "ImatrixCollector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _importance(imatrix: Any, name: str, cols: int) -> Optional[np.ndarray]:
    if imatrix is None:
        return None
    if isinstance(imatrix, _NumpyImatrixCollector):
        if imatrix.count(name) == 0:
            return None
        v = imatrix.importance(name)
    else:
        v = imatrix.get(name)
        if v is None:
            return None
        v = np.ascontiguousarray(v, dtype=np.float32)
    if v.shape != (cols,):
        raise ValueError(f"imatrix entry {name!r} has {v.shape} values; the weight has {cols} columns")
    return v


# --------------------------------------------------------------------------------------------
# quantize_

@dataclass
class Report:
    """What ``quantize_`` did: one row per module (type, bytes, error metrics) and totals."""

    policy: str
    mode: str
    modules: List[Dict[str, Any]] = field(default_factory=list)
    unmapped: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def totals(self) -> Dict[str, Any]:
        n = sum(m["elements"] for m in self.modules if not m.get("tied_to"))
        q = sum(m["bytes"] for m in self.modules if not m.get("tied_to"))
        s = sum(m["source_bytes"] for m in self.modules if not m.get("tied_to"))
        worst = max((m["rel_rmse"] for m in self.modules if m["rel_rmse"] is not None), default=0.0)
        return {"modules": len(self.modules), "elements": n, "bytes": q, "source_bytes": s,
                "bits_per_weight": 8.0 * q / n if n else 0.0, "compression_vs_source": s / q if q else 0.0,
                "worst_rel_rmse": worst}

    def to_dict(self) -> Dict[str, Any]:
        return {"policy": self.policy, "mode": self.mode, "modules": self.modules, "unmapped": self.unmapped,
                "notes": self.notes, "totals": self.totals}

    def to_markdown(self) -> str:
        t = self.totals
        lines = [f"policy {self.policy}, mode {self.mode}: {t['modules']} modules, {t['bytes']:,} bytes "
                 f"({t['bits_per_weight']:.3f} bits/weight, {t['compression_vs_source']:.2f}x smaller than the "
                 f"source), worst rel_rmse {t['worst_rel_rmse']:.4g}", "",
                 "| module | gguf name | type | bytes | rel_rmse | cosine |", "|---|---|---|---:|---:|---:|"]
        for m in self.modules:
            rr = "-" if m["rel_rmse"] is None else f"{m['rel_rmse']:.4g}"
            cs = "-" if m["cosine"] is None else f"{m['cosine']:.6f}"
            tied = f" (tied to {m['tied_to']})" if m.get("tied_to") else ""
            lines.append(f"| {m['module']}{tied} | {m['gguf_name']} | {m['type']} | {m['bytes']:,} | {rr} | {cs} |")
        if self.unmapped:
            lines += ["", "Not a known Hugging Face name (policy default rule): " + ", ".join(self.unmapped)]
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        t = self.totals
        return (f"Report(policy={self.policy!r}, mode={self.mode!r}, modules={t['modules']}, bytes={t['bytes']}, "
                f"bits_per_weight={t['bits_per_weight']:.3f}, unmapped={len(self.unmapped)})")


def _metrics(w: np.ndarray, wq: np.ndarray) -> Tuple[float, float, float]:
    """rel_rmse, cosine and max |error|, accumulated in float64 a slice at a time."""
    a, b = w.reshape(-1), wq.reshape(-1)
    e2 = w2 = q2 = wq_dot = 0.0
    max_abs = 0.0
    step = 1 << 22
    for i in range(0, a.size, step):
        x = a[i:i + step].astype(np.float64)
        y = b[i:i + step].astype(np.float64)
        d = x - y
        e2 += float(d @ d)
        w2 += float(x @ x)
        q2 += float(y @ y)
        wq_dot += float(x @ y)
        max_abs = max(max_abs, float(np.abs(d).max()))
    rel = (e2 / w2) ** 0.5 if w2 > 0 else (0.0 if e2 == 0 else float("inf"))
    cos = wq_dot / (w2 * q2) ** 0.5 if w2 > 0 and q2 > 0 else (1.0 if e2 == 0 else 0.0)
    return rel, cos, max_abs


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_(model: nn.Module, policy: Any = "Q4_K_M", imatrix: Any = None, mode: str = "fake",
              threads: Optional[int] = None, metrics: bool = True) -> Report:
    """Quantizes ``model``'s Linear and Embedding weights in place, as ``policy`` says (a preset such
    as "Q4_K_M", a hybrid, a rule file, a dict of rules or a ``bq.Policy``).

    ``mode="fake"``: each weight is replaced by the values its GGUF blocks decode to, in the
    weight's dtype (exactly the GGUF's values for float32 weights; rounded to float16/bfloat16
    otherwise). ``mode="kernel"``: Linear modules become ``QuantLinear`` and Embedding modules
    ``QuantEmbedding``, which keep the blocks and run blockquant's kernels.
    ``imatrix``: a ``bq.torch.ImatrixCollector``, a ``bq.calib.ImatrixCollector``, an imatrix file
    (GGUF or .dat, as llama.cpp writes) or a dict {gguf_name: mean x^2 per column}.
    Tensors the policy keeps (never quantized, or "keep") are left untouched. Returns a ``Report``.
    """
    if mode not in ("fake", "kernel"):
        raise ValueError(f"mode must be 'fake' or 'kernel', got {mode!r}")
    if isinstance(imatrix, str):
        imatrix = _NumpyImatrixCollector.load(imatrix)
    targets = _targets(model)
    primary = [t for t in targets if t.tied_to is None]
    keep_policy = Policy(policy) if isinstance(policy, dict) else policy
    p = _core.plan_tensors([_desc(t) for t in primary], _policy(keep_policy), _facts(model), imatrix is not None)
    report = Report(policy=p["policy"], mode=mode, notes=list(p["notes"]))
    report.unmapped = [t.module_name for t in primary if not t.mapped]
    n_threads = _threads(threads)
    # Phase 1 quantizes everything and touches nothing, so a bad weight (NaN, say) leaves the
    # model as it was; phase 2 swaps the blocks in.
    quantized: Dict[str, Tuple[Optional[QuantizedTensor], Dict[str, Any]]] = {}
    with torch.no_grad():
        for t, row in zip(primary, p["tensors"]):
            w = t.module.weight
            entry = {"module": t.module_name, "gguf_name": t.gguf, "role": row["role"], "type": row["type"],
                     "decided_by": row["decided_by"], "shape": list(w.shape), "elements": int(w.numel()),
                     "bytes": int(row["bytes"]), "source_bytes": int(row["source_bytes"]),
                     "rel_rmse": None, "cosine": None, "max_abs_error": None, "kept": bool(row["keep"])}
            qt = None
            if not row["keep"]:
                w32 = np.ascontiguousarray(w.detach().to(torch.float32).cpu().numpy())
                try:
                    qt = quantize(w32, row["type"], importance=_importance(imatrix, t.gguf, w32.shape[-1]),
                                  threads=n_threads)
                except _core.Error as e:
                    raise type(e)(f"{t.module_name} ({t.gguf}): {e}") from e
                if metrics:
                    entry["rel_rmse"], entry["cosine"], entry["max_abs_error"] = _metrics(
                        w32, dequantize(qt, threads=n_threads))
            quantized[t.module_name] = (qt, entry)
            report.modules.append(entry)
        for t in targets:
            if t.tied_to is not None:
                entry = dict(quantized[t.tied_to][1], module=t.module_name, tied_to=t.tied_to, bytes=0,
                             source_bytes=0)
                report.modules.append(entry)

        for t in primary:
            qt = quantized[t.module_name][0]
            if qt is None:
                continue
            if mode == "fake":
                t.module.weight.copy_(torch.from_numpy(dequantize(qt, threads=n_threads)).to(t.module.weight.dtype))
            else:
                _replace(model, t, qt)
        if mode == "kernel":  # tied modules (lm_head = embed_tokens) share the first one's blocks
            for t in targets:
                if t.tied_to is not None and quantized[t.tied_to][0] is not None:
                    _replace(model, t, quantized[t.tied_to][0], share=model.get_submodule(t.tied_to))
    if mode == "fake" and any(t.module.weight.dtype != torch.float32 for t in primary
                              if quantized[t.module_name][0] is not None):
        report.notes.append("fake mode on float16/bfloat16 weights: decoded values are rounded to the model dtype")
    return report


def _replace(model: nn.Module, t: _Target, qt: QuantizedTensor, share: Optional[nn.Module] = None) -> None:
    mod = t.module
    if isinstance(mod, nn.Embedding):
        if qt.shape[0] != mod.num_embeddings:
            raise ValueError(f"{t.module_name}: embedding shape changed")
        new: nn.Module = QuantEmbedding.from_quantized(qt, mod.padding_idx, dtype=mod.weight.dtype)
    else:
        new = QuantLinear.from_quantized(qt, mod.bias if getattr(mod, "bias", None) is not None else None,
                                         dtype=mod.weight.dtype)
    if share is not None and hasattr(share, "blocks"):
        new.blocks = share.blocks  # one copy of the blocks for tied weights (lm_head = embed_tokens)
    new.to(mod.weight.device)
    _set_submodule(model, t.module_name, new)
