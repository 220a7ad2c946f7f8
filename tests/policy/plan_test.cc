// Plan arithmetic: bytes per tensor, totals, bits/weight, compression, the
// dry-run listing, fact inference and input errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "blockquant/policy/plan.h"
#include "model_shapes.h"

using blockquant::MakePlan;
using blockquant::ModelFacts;
using blockquant::Plan;
using blockquant::Policy;
using blockquant::QuantType;
using blockquant::TensorDesc;

TEST_CASE("bytes and totals add up") {
  const std::vector<TensorDesc> t = {
      {"token_embd.weight", {512, 1000}, QuantType::kF16},
      {"blk.0.attn_norm.weight", {512}, QuantType::kF32},
      {"blk.0.attn_q.weight", {512, 512}, QuantType::kF16},
      {"blk.0.ffn_down.weight", {1024, 512}, QuantType::kF32},
      {"output.weight", {512, 1000}, QuantType::kF16},
  };
  const Plan p = MakePlan(t, Policy::Named("q4_k_s"));
  CHECK(p.policy == "Q4_K_S");
  CHECK(p.At("token_embd.weight").bytes == 1000 * 2 * 144);
  CHECK(p.At("blk.0.attn_norm.weight").bytes == 512 * 4);
  CHECK(p.At("blk.0.attn_q.weight").bytes == 512 * 2 * 144);
  CHECK(p.At("blk.0.ffn_down.weight").type == QuantType::kQ4_K);  // n/8 = 0 layers bumped
  CHECK(p.At("blk.0.ffn_down.weight").bytes == 512 * 4 * 144);
  CHECK(p.At("output.weight").bytes == 1000 * 2 * 210);
  CHECK(p.total_bytes == 288000 + 2048 + 147456 + 294912 + 420000);
  CHECK(p.source_bytes == 1024000 + 2048 + 524288 + 2097152 + 1024000);
  CHECK(p.n_elements == 512000 + 512 + 262144 + 524288 + 512000);
  CHECK(p.BitsPerWeight() == doctest::Approx(8.0 * 1152416 / 1810944));
  CHECK(p.CompressionRatio() == doctest::Approx(4671488.0 / 1152416));
  const std::string text = p.ToText();
  CHECK(text.find("blk.0.ffn_down.weight") != std::string::npos);
  CHECK(text.find("Q4_K_S: default Q4_K") != std::string::npos);
  CHECK(text.find("total 1152416 bytes") != std::string::npos);
}

TEST_CASE("facts: metadata wins, otherwise inferred and noted") {
  const auto t = bq_test::MakeLlama({});
  const Plan p = MakePlan(t, Policy::Named("Q4_K_M"));
  CHECK(p.facts.n_layer == 32);
  CHECK(p.facts.n_gqa == 4);
  CHECK(p.facts.n_expert == 0);
  CHECK(p.facts.arch == "llama");
  CHECK(p.facts.notes.size() >= 3);
  ModelFacts f;
  f.arch = "llama";
  f.n_layer = 32;
  f.n_expert = 0;
  f.n_head = 32;
  f.n_head_kv = 8;
  CHECK(MakePlan(t, Policy::Named("Q4_K_M"), f).facts.notes.empty());
}

TEST_CASE("input errors") {
  CHECK_THROWS_AS(MakePlan({{"blk.0.attn_q.weight", {}, QuantType::kF16}}, Policy::Named("Q4_K_M")),
                  blockquant::Error);
  CHECK_THROWS_AS(MakePlan({{"blk.0.attn_q.weight", {256, 0}, QuantType::kF16}}, Policy::Named("Q4_K_M")),
                  blockquant::Error);
  // A quantized source whose block does not divide the row is malformed.
  CHECK_THROWS_AS(MakePlan({{"blk.0.attn_q.weight", {100, 4}, QuantType::kQ4_0}}, Policy::Named("Q4_K_M")),
                  blockquant::Error);
  // MoE ffn_down without a block index.
  ModelFacts f;
  f.n_expert = 8;
  f.n_layer = 1;
  CHECK_THROWS_WITH_AS(
      MakePlan({{"ffn_down_exps.weight", {256, 256, 8}, QuantType::kF16}}, Policy::Named("Q4_K_M"), f),
      doctest::Contains("ffn_down_exps.weight"), blockquant::Error);
}

TEST_CASE("FallbackType table") {
  using blockquant::FallbackType;
  CHECK(FallbackType(QuantType::kQ4_K, 4096) == QuantType::kQ4_K);
  CHECK(FallbackType(QuantType::kQ2_K, 2880) == QuantType::kQ4_0);
  CHECK(FallbackType(QuantType::kQ3_K, 2880) == QuantType::kQ4_0);
  CHECK(FallbackType(QuantType::kQ4_K, 2880) == QuantType::kQ5_0);
  CHECK(FallbackType(QuantType::kQ5_K, 2880) == QuantType::kQ5_1);
  CHECK(FallbackType(QuantType::kQ6_K, 2880) == QuantType::kQ8_0);
  CHECK(FallbackType(QuantType::kQ6_K, 100) == QuantType::kF16);
  CHECK(FallbackType(QuantType::kQ8_0, 100) == QuantType::kF16);
  CHECK(FallbackType(QuantType::kF16, 100) == QuantType::kF16);
}
