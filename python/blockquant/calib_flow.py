"""Calibration in the model flow: ``bq.quantize_model(..., calib=, method=)`` and
``blockquant quantize --calib``. Loads per-tensor input activations, splits off held-out
rows, and hands the C++ flow a tensor hook that quantizes each covered tensor with the chosen
method and measures its layer-output error on the held-out rows (docs/calibration.md).

Activations file: an ``.npz`` whose keys are tensor names (``blk.0.attn_q.weight``; the
``.weight`` suffix may be left out), each an (n_samples, in_features) float array of the
inputs that tensor multiplies. Tensors that read the same input share one array: a key for any
of attn_q/attn_k/attn_v covers all three, and one for ffn_gate or ffn_up covers both.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _core
from .calib import METHODS as _ARRAY_METHODS
from .calib import _f32_2d, _require_calib, importance

FLOW_METHODS = _ARRAY_METHODS + ("awq",)
# Groups reading one input, and the norm whose output that input is (AWQ folds 1/s into it).
_GROUPS = {"attn_q": ("attn_norm", ("attn_q", "attn_k", "attn_v")),
           "attn_k": ("attn_norm", ("attn_q", "attn_k", "attn_v")),
           "attn_v": ("attn_norm", ("attn_q", "attn_k", "attn_v")),
           "ffn_gate": ("ffn_norm", ("ffn_gate", "ffn_up")),
           "ffn_up": ("ffn_norm", ("ffn_gate", "ffn_up"))}
_NAME = re.compile(r"^(blk\.\d+)\.([a-z_]+)\.weight$")
_FLOATS = ("F32", "F16", "BF16")  # kept in a float type: not quantized
# Types GPTQ writes; others with activations fall back to imatrix-weighted rounding.
_GPTQ_TYPES = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0")


def is_imatrix_file(path: str) -> bool:
    """llama.cpp importance matrices (imatrix.gguf, legacy .dat) rather than activations (.npz)."""
    return not path.endswith(".npz")


class Activations:
    """Calibration and held-out rows per tensor name, from one or two .npz files."""

    def __init__(self, path: str, heldout: Optional[str] = None, holdout: float = 0.25) -> None:
        if not os.path.exists(path):
            raise _core.IoError(f"calibration file '{path}' does not exist")
        if heldout is None and not (0.0 < holdout < 1.0):
            raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
        self.path, self.heldout_path, self.holdout = path, heldout, holdout
        self._calib = self._open(path)
        self._held = self._open(heldout) if heldout is not None else None
        # Arrays load one key at a time (a model's activations can be gigabytes); the last
        # one stays, since q/k/v (and gate/up) come one after another and share it.
        self._cache: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _open(path: str) -> Any:
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise _core.FormatError(f"'{path}' is not a readable .npz of activations: {e}") from e
        if not hasattr(table, "files"):  # a single .npy array under an .npz name
            raise _core.FormatError(f"'{path}' holds one unnamed array, not an .npz of arrays keyed by tensor name")
        return table

    @staticmethod
    def _read(table: Any, key: str, path: str) -> np.ndarray:
        try:
            return table[key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise _core.FormatError(f"activations '{key}' in '{path}' cannot be read: {e}") from e

    def _key(self, table: Any, name: str) -> Optional[str]:
        candidates = [name, name[:-len(".weight")] if name.endswith(".weight") else name]
        m = _NAME.match(name)
        if m and m.group(2) in _GROUPS:
            for sib in _GROUPS[m.group(2)][1]:
                candidates += [f"{m.group(1)}.{sib}.weight", f"{m.group(1)}.{sib}"]
        return next((k for k in candidates if k in table.files), None)

    def covers(self, name: str) -> bool:
        return self._key(self._calib, name) is not None

    def get(self, name: str, cols: int) -> Tuple[np.ndarray, np.ndarray]:
        """(calibration rows, held-out rows) for the tensor ``name`` of ``cols`` inputs."""
        key = self._key(self._calib, name)
        if key is None:
            raise KeyError(name)
        if key in self._cache:
            return self._cache[key]
        x = _f32_2d(self._read(self._calib, key, self.path), f"activations '{key}' in {self.path}", cols)
        if not np.isfinite(x).all():
            raise _core.NonFiniteError(f"activations '{key}' in {self.path} hold NaN or Inf")
        if self._held is not None:
            hkey = self._key(self._held, name)
            if hkey is None:
                raise _core.ShapeError(f"held-out file {self.heldout_path} has no activations for '{name}'")
            held = _f32_2d(self._read(self._held, hkey, str(self.heldout_path)), f"held-out activations '{hkey}'",
                           cols)
            if not np.isfinite(held).all():
                raise _core.NonFiniteError(f"held-out activations '{hkey}' hold NaN or Inf")
            calib = x
        else:
            n_held = int(np.ceil(x.shape[0] * self.holdout))
            if x.shape[0] < 2 or n_held >= x.shape[0]:
                raise _core.ShapeError(f"activations '{key}' have {x.shape[0]} rows: too few to hold out "
                                       f"{self.holdout:.0%} and still calibrate")
            calib, held = x[:-n_held], x[-n_held:]
        self._cache = {key: (calib, held)}
        return calib, held


class FlowHook:
    """The tensor hook the C++ flow calls (flow/quantize_model.h, TensorHook): claims the
    tensors with activations (and, for AWQ, the norms it folds into), quantizes them with
    ``method``, and measures the held-out layer-output error."""

    def __init__(self, input: str, acts: Activations, method: str, damp: float = 0.01,
                 act_order: bool = False, threads: int = 0) -> None:
        if method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {FLOW_METHODS}, got {method!r}")
        if method in ("gptq", "awq"):
            _require_calib()
        self.input, self.acts, self.method = input, acts, method
        self.damp, self.act_order, self.threads = float(damp), bool(act_order), int(threads)
        # name -> per-column scales the tensor's values were multiplied by (AWQ)
        self.col_scales: Dict[str, np.ndarray] = {}
        self.norm_scales: Dict[str, np.ndarray] = {}  # norm name -> s it is divided by
        self.row_scales: Dict[str, np.ndarray] = {}   # ffn_up -> ffn_down's s, dividing its rows

    # -- AWQ: scales for every group before the flow starts (a norm may come before its layers)
    def prepare_awq(self, tensors: List[Dict[str, Any]], plan: Dict[str, str]) -> None:
        names = {t["name"]: t for t in tensors}
        bits = {t["name"]: t["block_bytes"] / t["block_elems"] for t in _core.types()}
        done = set()
        for t in tensors:
            m = _NAME.match(t["name"])
            if not m or m.group(2) not in _GROUPS or not self.acts.covers(t["name"]):
                continue
            norm, members = _GROUPS[m.group(2)]
            blk = m.group(1)
            norm_name = f"{blk}.{norm}.weight"
            group = [f"{blk}.{g}.weight" for g in members if f"{blk}.{g}.weight" in names]
            if norm_name in done:
                continue
            done.add(norm_name)
            qtypes = {plan[g] for g in group}
            # Folding needs a float norm and every member quantized (a kept member would change).
            if (norm_name not in names or names[norm_name]["type"] not in _FLOATS
                    or plan.get(norm_name) not in _FLOATS or any(q in _FLOATS for q in qtypes)):
                continue
            ws = [_core.read_tensor(self.input, g, self.threads) for g in group]
            calib, _ = self.acts.get(group[0], ws[0].shape[1])
            # Score with the coarsest type of the group: its error dominates.
            qtype = min(qtypes, key=lambda q: bits[q])
            r = _core.awq_search(qtype, ws, calib, 20, 256, self.threads)
            s = np.asarray(r["scales"], dtype=np.float32)
            if r["alpha"] == 0.0:
                continue  # no scaling won: plain imatrix rounding, nothing to fold
            self.norm_scales[norm_name] = s
            for g in group:
                self.col_scales[g] = s
        # ffn_down reads act(gate) * up, which is linear in up's outputs: its s folds into
        # up's rows (W_up / s per row), so down can be scaled as well.
        for t in tensors:
            m = _NAME.match(t["name"])
            if not m or m.group(2) != "ffn_down" or not self.acts.covers(t["name"]):
                continue
            down, up = t["name"], f"{m.group(1)}.ffn_up.weight"
            if up not in names or plan[down] in _FLOATS or plan[up] in _FLOATS:
                continue
            wd = _core.read_tensor(self.input, down, self.threads)
            calib, _ = self.acts.get(down, wd.shape[1])
            r = _core.awq_search(plan[down], [wd], calib, 20, 256, self.threads)
            if r["alpha"] == 0.0:
                continue
            s = np.asarray(r["scales"], dtype=np.float32)
            self.col_scales[down] = s
            self.row_scales[up] = s

    # -- the TensorHook interface -------------------------------------------------------------
    def claims(self, p: Dict[str, Any]) -> bool:
        if p["name"] in self.norm_scales or p["name"] in self.row_scales:
            return True
        quantized = p["type"] not in _FLOATS and p["type"] != p["source_type"]
        return quantized and len(p["shape"]) == 2 and self.acts.covers(p["name"])

    def quantize(self, p: Dict[str, Any], values: np.ndarray, dst: np.ndarray) -> Optional[str]:
        name, qtype = p["name"], p["type"]
        if name in self.norm_scales:  # a norm AWQ folds 1/s into; the flow re-encodes it
            values /= self.norm_scales[name].reshape(1, -1)
            return "=awq fold"
        if name in self.row_scales:  # ffn_up, taking ffn_down's scales into its rows
            values /= self.row_scales[name].reshape(-1, 1)
            if not self.acts.covers(name):
                return "=awq fold"
        calib, _ = self.acts.get(name, values.shape[1])
        method = self.method
        if method == "rtn":
            return "=rtn"
        if method == "awq":
            s = self.col_scales.get(name)
            if s is None:  # nothing to fold into (attn_output), or alpha = 0 won
                method = "imatrix"
            else:
                values *= s.reshape(1, -1)
                calib = calib / s.reshape(1, -1)
        if method == "gptq" and qtype not in _GPTQ_TYPES:
            method = "imatrix"
        if method == "gptq":
            data = _core.gptq_quantize(values, qtype, calib, self.damp, self.act_order, self.threads)
        else:
            from . import quantize as plain_quantize
            data = plain_quantize(values, qtype, importance=importance(calib), threads=self.threads).data
        dst[...] = np.frombuffer(data, dtype=np.uint8).reshape(dst.shape)
        return method

    def layer_error(self, p: Dict[str, Any], values: np.ndarray, dequantized: np.ndarray) -> Optional[float]:
        name = p["name"]
        if name in self.norm_scales or not self.acts.covers(name):
            return None
        _, held = self.acts.get(name, values.shape[1])
        rows = self.row_scales.get(name)
        if rows is not None:  # outputs were divided by them: compare in the original units
            values = values * rows.reshape(-1, 1)
            dequantized = dequantized * rows.reshape(-1, 1)
        s = self.col_scales.get(name)
        if s is not None:  # values = W diag(s): X W^T = (X / s) values^T
            held = held / s.reshape(1, -1)
        return float(_core.layer_error(np.ascontiguousarray(values), np.ascontiguousarray(dequantized),
                                       np.ascontiguousarray(held, dtype=np.float32), self.threads))


def calibration_hook(input: str, calib: Optional[str], method: Optional[str], imatrix: Optional[str],
                     policy: str, target_bytes: int, target_bpw: float, holdout: float, heldout: Optional[str],
                     damp: float, act_order: bool, threads: int) -> Tuple[Optional[FlowHook], Optional[str]]:
    """(tensor hook or None, imatrix path for the flow) for quantize_model's calibration
    arguments. An importance matrix as ``calib`` needs no hook: the flow weights its rounding."""
    if calib is None:
        raise ValueError(f"method={method!r} needs calib= (activations .npz or an importance matrix)")
    if method is not None and method not in FLOW_METHODS:
        raise ValueError(f"method must be one of {FLOW_METHODS}, got {method!r}")
    if is_imatrix_file(calib):
        method = method or "imatrix"
        if method not in ("rtn", "imatrix"):
            raise ValueError(f"method {method!r} needs activations (.npz); an importance matrix such as "
                             f"'{calib}' only supports rtn and imatrix")
        if imatrix is not None:
            raise ValueError("pass the importance matrix once, as calib= or as imatrix=")
        if heldout is not None:
            raise ValueError("heldout= needs activations (.npz) as calib=")
        return None, (calib if method == "imatrix" else None)
    method = method or "gptq"
    if method == "rtn" and imatrix is not None:
        raise ValueError("method 'rtn' with an importance matrix would round with it: drop one of them")
    hook = FlowHook(input, Activations(calib, heldout, holdout), method, damp, act_order, threads)
    if method == "awq":
        dry = _core.quantize_model(input, "", policy, threads, [], True, False, False, False, target_bytes,
                                   target_bpw, imatrix or "")
        tensors = json.loads(dry.report_json)["tensors"]
        hook.prepare_awq([{"name": t["name"], "type": t["source_type"]} for t in tensors],
                         {t["name"]: t["type"] for t in tensors})
    return hook, imatrix
