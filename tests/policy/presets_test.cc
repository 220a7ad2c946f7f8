// Pins every llama.cpp preset on a llama-3-8B-shaped model (32 layers, 4096
// hidden, 14336 FFN, 8 KV heads of 128, vocab 128256), on MoE shapes, and on
// shapes whose rows no 256-block divides. Counts marked "seen in llama.cpp
// logs" match type histograms that llama.cpp printed when loading real files
// (docs/policies.md cites them).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "blockquant/policy/plan.h"
#include "model_shapes.h"

namespace {

using blockquant::MakePlan;
using blockquant::ModelFacts;
using blockquant::Plan;
using blockquant::Policy;
using blockquant::PresetId;
using blockquant::QuantType;
using bq_test::Blk;
using bq_test::LlamaShape;
using bq_test::MakeLlama;
using bq_test::MoreBits32;

Plan PlanFor(const char* preset, const LlamaShape& shape = {}, const ModelFacts& facts = {}) {
  return MakePlan(MakeLlama(shape), Policy::Named(preset), facts);
}

QuantType TypeOf(const Plan& p, const std::string& name) { return p.At(name).type; }

}  // namespace

TEST_CASE("llama-3-8B Q4_K_M: attn_v and ffn_down get Q6_K on use_more_bits layers") {
  const Plan p = PlanFor("Q4_K_M");
  CHECK(p.file_type == 15);
  CHECK(p.tensors.size() == 292);
  // 65 norms + rope_freqs stay F32; seen in llama.cpp logs: f32 66 / q4_K 193 / q6_K 33.
  CHECK(p.CountOf(QuantType::kF32) == 66);
  CHECK(p.CountOf(QuantType::kQ4_K) == 193);
  CHECK(p.CountOf(QuantType::kQ6_K) == 33);
  CHECK(p.n_fallback == 0);
  CHECK(TypeOf(p, "token_embd.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(p, "output.weight") == QuantType::kQ6_K);
  std::vector<int> bumped;
  for (int i = 0; i < 32; ++i) {
    const QuantType want = MoreBits32(i) ? QuantType::kQ6_K : QuantType::kQ4_K;
    CHECK(TypeOf(p, Blk(i, "attn_v.weight")) == want);
    CHECK(TypeOf(p, Blk(i, "ffn_down.weight")) == want);
    CHECK(TypeOf(p, Blk(i, "attn_q.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(p, Blk(i, "attn_k.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(p, Blk(i, "attn_output.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(p, Blk(i, "ffn_up.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(p, Blk(i, "ffn_gate.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(p, Blk(i, "attn_norm.weight")) == QuantType::kF32);
    if (MoreBits32(i)) bumped.push_back(i);
  }
  CHECK(bumped == std::vector<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31});
  CHECK(p.At("blk.6.attn_v.weight").decided_by.find("use_more_bits") != std::string::npos);
  CHECK(p.At("blk.0.attn_norm.weight").keep);
  // Seen in llama.cpp logs for Llama-3.1-8B Q4_K_M: "4.58 GiB (4.89 BPW)".
  CHECK(static_cast<double>(p.total_bytes) / (1024.0 * 1024.0 * 1024.0) == doctest::Approx(4.58).epsilon(0.002));
  CHECK(p.BitsPerWeight() == doctest::Approx(4.89).epsilon(0.001));
}

TEST_CASE("Mistral-7B-shaped Q4_K_M matches llama.cpp's reported size") {
  LlamaShape s;
  s.n_vocab = 32000;
  s.rope_freqs = false;
  const Plan p = PlanFor("Q4_K_M", s);
  // Seen in llama.cpp logs for 32000-vocab 32-layer GQA-4 models:
  // f32 65 / q4_K 193 / q6_K 33, "file size = 4.07 GiB (4.83 BPW)".
  CHECK(p.CountOf(QuantType::kF32) == 65);
  CHECK(p.CountOf(QuantType::kQ4_K) == 193);
  CHECK(p.CountOf(QuantType::kQ6_K) == 33);
  const double gib = static_cast<double>(p.total_bytes) / (1024.0 * 1024.0 * 1024.0);
  CHECK(gib == doctest::Approx(4.07).epsilon(0.003));
  CHECK(p.BitsPerWeight() == doctest::Approx(4.83).epsilon(0.002));
}

TEST_CASE("llama-3-8B: every preset's type histogram") {
  struct Row {
    const char* preset;
    uint32_t ftype;
    std::vector<std::pair<QuantType, int>> counts;
  };
  const std::vector<Row> rows = {
      // Q2_K: n_gqa = 4 -> attn_v Q4_K; ffn_down and attn_output Q3_K.
      {"Q2_K", 10, {{QuantType::kQ2_K, 129}, {QuantType::kQ3_K, 64}, {QuantType::kQ4_K, 32}, {QuantType::kQ6_K, 1}}},
      {"Q3_K_S", 11, {{QuantType::kQ3_K, 225}, {QuantType::kQ6_K, 1}}},
      // Seen in llama.cpp logs (32000-vocab model): q3_K 129 / q4_K 92 / q5_K 4 / q6_K 1.
      {"Q3_K_M", 12, {{QuantType::kQ3_K, 129}, {QuantType::kQ4_K, 92}, {QuantType::kQ5_K, 4}, {QuantType::kQ6_K, 1}}},
      // Seen in llama.cpp logs (Llama-3.1-8B): f32 66 / q3_K 129 / q5_K 96 / q6_K 1.
      {"Q3_K_L", 13, {{QuantType::kQ3_K, 129}, {QuantType::kQ5_K, 96}, {QuantType::kQ6_K, 1}}},
      {"Q4_K_S", 14, {{QuantType::kQ4_K, 217}, {QuantType::kQ5_K, 8}, {QuantType::kQ6_K, 1}}},
      {"Q4_K_M", 15, {{QuantType::kQ4_K, 193}, {QuantType::kQ6_K, 33}}},
      {"Q5_K_S", 16, {{QuantType::kQ5_K, 225}, {QuantType::kQ6_K, 1}}},
      {"Q5_K_M", 17, {{QuantType::kQ5_K, 193}, {QuantType::kQ6_K, 33}}},
      {"Q6_K", 18, {{QuantType::kQ6_K, 226}}},
      {"Q8_0", 7, {{QuantType::kQ8_0, 226}}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.preset);
    const Plan p = PlanFor(row.preset);
    CHECK(p.file_type == row.ftype);
    CHECK(p.CountOf(QuantType::kF32) == 66);
    int quantized = 0;
    for (const auto& c : row.counts) {
      CAPTURE(blockquant::TypeName(c.first));
      CHECK(p.CountOf(c.first) == c.second);
      quantized += c.second;
    }
    CHECK(quantized == 226);
    CHECK(p.n_fallback == 0);
    // Output is Q6_K except in Q8_0; token_embd keeps the default type.
    CHECK(TypeOf(p, "output.weight") == (row.ftype == 7 ? QuantType::kQ8_0 : QuantType::kQ6_K));
  }
}

TEST_CASE("llama-3-8B: layer bumps of Q3_K_M, Q4_K_S, Q2_K") {
  const Plan m = PlanFor("Q3_K_M");
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(TypeOf(m, Blk(i, "attn_v.weight")) == (i < 2 ? QuantType::kQ5_K : QuantType::kQ4_K));
    CHECK(TypeOf(m, Blk(i, "ffn_down.weight")) == (i < 2 ? QuantType::kQ5_K : QuantType::kQ4_K));
    CHECK(TypeOf(m, Blk(i, "attn_output.weight")) == QuantType::kQ4_K);
    CHECK(TypeOf(m, Blk(i, "attn_q.weight")) == QuantType::kQ3_K);
  }
  CHECK(TypeOf(m, "token_embd.weight") == QuantType::kQ3_K);
  const Plan s = PlanFor("Q4_K_S");
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(TypeOf(s, Blk(i, "attn_v.weight")) == (i < 4 ? QuantType::kQ5_K : QuantType::kQ4_K));
    CHECK(TypeOf(s, Blk(i, "ffn_down.weight")) == (i < 4 ? QuantType::kQ5_K : QuantType::kQ4_K));
  }
  // Without grouped-query attention, Q2_K's attn_v is Q3_K only.
  LlamaShape mha;
  mha.n_head_kv = 32;
  const Plan q2 = PlanFor("Q2_K", mha);
  CHECK(q2.facts.n_gqa == 1);
  CHECK(TypeOf(q2, "blk.5.attn_v.weight") == QuantType::kQ3_K);
  // Metadata wins over shapes.
  ModelFacts f;
  f.n_head = 32;
  f.n_head_kv = 8;
  const Plan q2m = PlanFor("Q2_K", mha, f);
  CHECK(TypeOf(q2m, "blk.5.attn_v.weight") == QuantType::kQ4_K);
}

TEST_CASE("input order does not change a plan") {
  std::vector<blockquant::TensorDesc> t = MakeLlama({});
  const Plan a = MakePlan(t, Policy::Named("Q4_K_M"));
  std::vector<blockquant::TensorDesc> r(t.rbegin(), t.rend());
  const Plan b = MakePlan(r, Policy::Named("Q4_K_M"));
  for (const auto& x : a.tensors) CHECK(b.At(x.name).type == x.type);
  CHECK(a.total_bytes == b.total_bytes);
}

TEST_CASE("tied embeddings: token_embd follows the output rule") {
  LlamaShape s;
  s.tied = true;
  const Plan p = PlanFor("Q4_K_M", s);
  CHECK(TypeOf(p, "token_embd.weight") == QuantType::kQ6_K);
  const Plan q8 = PlanFor("Q8_0", s);
  CHECK(TypeOf(q8, "token_embd.weight") == QuantType::kQ8_0);
}

TEST_CASE("70B llama: attn_v Q3_K/Q4_K raised to Q5_K") {
  LlamaShape s;
  s.n_layer = 80;
  s.n_embd = 8192;
  s.n_ff = 28672;
  s.n_head = 64;
  s.n_head_kv = 8;
  s.n_vocab = 32000;
  const Plan p = PlanFor("Q4_K_M", s);
  CHECK(p.facts.is_70b);
  // use_more_bits(i, 80): i < 10, i >= 70, (i - 10) % 3 == 2.
  CHECK(TypeOf(p, "blk.0.attn_v.weight") == QuantType::kQ6_K);
  CHECK(TypeOf(p, "blk.10.attn_v.weight") == QuantType::kQ5_K);
  CHECK(TypeOf(p, "blk.12.attn_v.weight") == QuantType::kQ6_K);
  CHECK(TypeOf(p, "blk.10.ffn_down.weight") == QuantType::kQ4_K);
  const Plan q3 = PlanFor("Q3_K_S", s);
  CHECK(TypeOf(q3, "blk.40.attn_v.weight") == QuantType::kQ5_K);
  CHECK(TypeOf(q3, "blk.40.attn_q.weight") == QuantType::kQ3_K);
  // Not 70B when every head has its own KV head.
  s.n_head_kv = 64;
  CHECK_FALSE(PlanFor("Q4_K_M", s).facts.is_70b);
}

TEST_CASE("Mixtral-shaped MoE (8 experts): expert-8 rules and per-layer ffn_down_exps") {
  LlamaShape s;
  s.n_expert = 8;
  s.n_vocab = 32000;
  s.rope_freqs = false;
  const Plan p = PlanFor("Q4_K_M", s);
  CHECK(p.facts.n_expert == 8);
  CHECK(p.tensors.size() == 32 * 10 + 3);
  // Router (2-D but ffn_gate_inp) and norms stay F32.
  CHECK(p.CountOf(QuantType::kF32) == 32 * 3 + 1);
  CHECK(p.At("blk.3.ffn_gate_inp.weight").keep);
  CHECK(p.CountOf(QuantType::kQ8_0) == 64);  // attn_v + attn_k
  CHECK(p.CountOf(QuantType::kQ5_K) == 32);  // attn_output
  CHECK(p.CountOf(QuantType::kQ6_K) == 16 + 1);
  CHECK(p.CountOf(QuantType::kQ4_K) == 32 * 3 + 1 + 16);
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(TypeOf(p, Blk(i, "attn_v.weight")) == QuantType::kQ8_0);
    CHECK(TypeOf(p, Blk(i, "attn_k.weight")) == QuantType::kQ8_0);
    CHECK(TypeOf(p, Blk(i, "attn_output.weight")) == QuantType::kQ5_K);
    CHECK(TypeOf(p, Blk(i, "ffn_down_exps.weight")) == (MoreBits32(i) ? QuantType::kQ6_K : QuantType::kQ4_K));
    CHECK(TypeOf(p, Blk(i, "ffn_up_exps.weight")) == QuantType::kQ4_K);
  }
  // Bytes of a 3-D expert tensor: RowBytes * dims[1] * dims[2].
  CHECK(p.At("blk.0.ffn_up_exps.weight").bytes == 4096 / 256 * 144 * int64_t{14336} * 8);
  // Q3_K_L is not in llama.cpp's 8-expert attn_output list: stays Q3_K.
  CHECK(TypeOf(PlanFor("Q3_K_L", s), "blk.0.attn_output.weight") == QuantType::kQ3_K);
  CHECK(TypeOf(PlanFor("Q5_K_M", s), "blk.0.attn_output.weight") == QuantType::kQ5_K);
  CHECK(TypeOf(PlanFor("Q6_K", s), "blk.0.attn_v.weight") == QuantType::kQ8_0);
}

TEST_CASE("MoE with 4 experts and shared experts: no expert-8 rules, ffn_down layer from the name") {
  LlamaShape s;
  s.n_layer = 24;
  s.n_embd = 2048;
  s.n_ff = 1408;  // 1408 = 5.5 * 256: expert ffn_down rows fall back
  s.n_head = 16;
  s.n_head_kv = 16;
  s.n_expert = 4;
  s.shared_expert = true;
  s.n_vocab = 151936;
  const Plan p = PlanFor("Q4_K_M", s);
  CHECK(p.facts.n_expert == 4);
  CHECK(TypeOf(p, "blk.0.attn_v.weight") == QuantType::kQ6_K);
  CHECK(TypeOf(p, "blk.0.attn_k.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(p, "blk.0.attn_output.weight") == QuantType::kQ4_K);
  CHECK(p.At("blk.5.ffn_gate_inp_shexp.weight").keep);  // 1-D
  for (int i = 0; i < 24; ++i) {
    // use_more_bits(i, 24): i < 3, i >= 21, (i - 3) % 3 == 2.
    const bool more = i < 3 || i >= 21 || (i - 3) % 3 == 2;
    CAPTURE(i);
    // Both expert and shared-expert ffn_down take the layer rule; rows of
    // 1408 do not fit 256-blocks: Q6_K -> Q8_0, Q4_K -> Q5_0.
    for (const char* stem : {"ffn_down_exps.weight", "ffn_down_shexp.weight"}) {
      const auto& t = p.At(Blk(i, stem));
      CHECK(t.requested_type == (more ? QuantType::kQ6_K : QuantType::kQ4_K));
      CHECK(t.type == (more ? QuantType::kQ8_0 : QuantType::kQ5_0));
      CHECK(t.fallback);
    }
    CHECK(TypeOf(p, Blk(i, "ffn_up_shexp.weight")) == QuantType::kQ4_K);
  }
}

TEST_CASE("rows no 256-block divides: the llama.cpp fallbacks") {
  // hidden 2880 = 11.25 * 256 (but 90 * 32); ffn 13696 = 53.5 * 256.
  LlamaShape s;
  s.n_embd = 2880;
  s.n_ff = 13696;
  s.n_head = 64;
  s.n_head_kv = 8;
  s.head_dim = 64;
  s.n_layer = 16;
  s.n_vocab = 32000;
  const Plan p = PlanFor("Q4_K_M", s);
  // Output: llama.cpp's own output rule picks Q8_0 (not a fallback).
  CHECK(TypeOf(p, "output.weight") == QuantType::kQ8_0);
  CHECK_FALSE(p.At("output.weight").fallback);
  CHECK(TypeOf(p, "token_embd.weight") == QuantType::kQ5_0);
  CHECK(p.At("token_embd.weight").fallback);
  CHECK(TypeOf(p, "blk.0.attn_q.weight") == QuantType::kQ5_0);
  CHECK(TypeOf(p, "blk.0.ffn_down.weight") == QuantType::kQ8_0);  // Q6_K -> Q8_0
  CHECK(TypeOf(p, "blk.3.ffn_down.weight") == QuantType::kQ5_0);  // Q4_K -> Q5_0 (use_more_bits(3, 16) is false)
  CHECK(p.At("blk.0.ffn_down.weight").decided_by.find("fallback Q6_K -> Q8_0") != std::string::npos);
  // Not falling back: 34 1-D tensors, output (its own rule), attn_output (rows of 64 * 64).
  CHECK(p.n_fallback == static_cast<int>(p.tensors.size()) - 34 - 1 - 16);
  const std::vector<std::pair<const char*, QuantType>> by_preset = {
      {"Q2_K", QuantType::kQ4_0}, {"Q3_K_S", QuantType::kQ4_0}, {"Q5_K_S", QuantType::kQ5_1},
      {"Q6_K", QuantType::kQ8_0}, {"Q8_0", QuantType::kQ8_0}};
  for (const auto& e : by_preset) {
    CAPTURE(e.first);
    CHECK(TypeOf(PlanFor(e.first, s), "blk.3.attn_q.weight") == e.second);
  }
  // 32 does not divide either: F16.
  std::vector<blockquant::TensorDesc> odd = {{"blk.0.attn_q.weight", {100, 64}, QuantType::kF32},
                                             {"blk.0.attn_k.weight", {96, 64}, QuantType::kF32}};
  const Plan o = MakePlan(odd, Policy::Named("Q4_K_M"));
  CHECK(o.tensors[0].type == QuantType::kF16);
  CHECK(o.tensors[0].bytes == 100 * 64 * 2);
  CHECK(o.tensors[1].type == QuantType::kQ5_0);
}

TEST_CASE("Q4_0 / Q5_0 with an imatrix: first n/8 ffn_down get Q4_1 / Q5_1") {
  ModelFacts f;
  f.has_imatrix = true;
  const Plan p = PlanFor("Q4_0", {}, f);
  CHECK(TypeOf(p, "blk.3.ffn_down.weight") == QuantType::kQ4_1);
  CHECK(TypeOf(p, "blk.4.ffn_down.weight") == QuantType::kQ4_0);
  CHECK(TypeOf(p, "output.weight") == QuantType::kQ6_K);
  CHECK(TypeOf(PlanFor("Q4_0"), "blk.3.ffn_down.weight") == QuantType::kQ4_0);
  CHECK(TypeOf(PlanFor("Q5_0", {}, f), "blk.0.ffn_down.weight") == QuantType::kQ5_1);
}

TEST_CASE("Falcon rules") {
  ModelFacts f;
  f.arch = "falcon";
  const Plan p = PlanFor("Q4_K_M", {}, f);
  CHECK(TypeOf(p, "output.weight") == QuantType::kQ8_0);
  CHECK(TypeOf(p, "blk.1.ffn_down.weight") == QuantType::kQ6_K);  // i < n/16
  CHECK(TypeOf(p, "blk.3.ffn_down.weight") == QuantType::kQ5_K);  // use_more_bits
  CHECK(TypeOf(p, "blk.4.ffn_down.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(PlanFor("Q3_K_L", {}, f), "blk.4.attn_output.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(PlanFor("Q3_K_M", {}, f), "blk.4.ffn_down.weight") == QuantType::kQ3_K);
  CHECK(TypeOf(PlanFor("Q3_K_M", {}, f), "blk.6.ffn_down.weight") == QuantType::kQ4_K);
}

TEST_CASE("hybrid presets") {
  const Plan c = PlanFor("int8-core");
  CHECK(TypeOf(c, "token_embd.weight") == QuantType::kQ8_0);
  CHECK(TypeOf(c, "output.weight") == QuantType::kQ8_0);
  CHECK(TypeOf(c, "blk.7.attn_q.weight") == QuantType::kQ8_0);
  CHECK(TypeOf(c, "blk.7.attn_v.weight") == QuantType::kQ8_0);
  CHECK(TypeOf(c, "blk.7.ffn_down.weight") == QuantType::kQ4_K);
  CHECK(c.CountOf(QuantType::kQ8_0) == 2 + 32 * 4);
  CHECK(c.CountOf(QuantType::kQ4_K) == 32 * 3);
  CHECK(c.file_type == 7);  // most common quantized type: Q8_0
  const Plan a = PlanFor("aggressive");
  CHECK(TypeOf(a, "blk.0.ffn_down.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(a, "blk.31.ffn_down.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(a, "blk.30.ffn_down.weight") == QuantType::kQ3_K);
  CHECK(TypeOf(a, "blk.30.attn_v.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(a, "output.weight") == QuantType::kQ6_K);
  CHECK(a.BitsPerWeight() < PlanFor("Q3_K_M").BitsPerWeight());
  const Plan b = PlanFor("balanced:blk.0.*,blk.31.attn_*");
  CHECK(b.At("blk.0.ffn_up.weight").keep);
  CHECK(TypeOf(b, "blk.0.ffn_up.weight") == QuantType::kF16);
  CHECK(TypeOf(b, "blk.31.attn_q.weight") == QuantType::kF16);
  CHECK(TypeOf(b, "blk.31.ffn_up.weight") == QuantType::kQ4_K);
  CHECK(TypeOf(b, "blk.5.ffn_down.weight") == QuantType::kQ5_K);
  CHECK(TypeOf(b, "blk.5.attn_v.weight") == QuantType::kQ6_K);
  CHECK(b.At("blk.0.ffn_up.weight").decided_by.find("excluded") != std::string::npos);
  CHECK_THROWS_AS(Policy::Named("Q4_K_X"), blockquant::Error);
}
