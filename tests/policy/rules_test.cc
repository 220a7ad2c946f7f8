// Tensor classification and user-rule precedence (first match wins).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "blockquant/policy/plan.h"
#include "model_shapes.h"

namespace {

using blockquant::ClassifyTensor;
using blockquant::MakePlan;
using blockquant::ParseRoleMask;
using blockquant::Plan;
using blockquant::Policy;
using blockquant::QuantType;
using blockquant::Rule;
using blockquant::RuleAction;
using blockquant::RuleSet;
using blockquant::TensorRole;

Rule R(RuleAction a) {
  Rule r;
  r.action = a;
  return r;
}

}  // namespace

TEST_CASE("ClassifyTensor: roles and layers") {
  struct Case {
    const char* name;
    TensorRole role;
    int layer;
  };
  const std::vector<Case> cases = {
      {"token_embd.weight", TensorRole::kTokenEmbd, -1},
      {"output.weight", TensorRole::kOutput, -1},
      {"output_norm.weight", TensorRole::kNorm, -1},
      {"rope_freqs.weight", TensorRole::kOther, -1},
      {"blk.0.attn_q.weight", TensorRole::kAttnQ, 0},
      {"blk.12.attn_k.weight", TensorRole::kAttnK, 12},
      {"blk.3.attn_v.weight", TensorRole::kAttnV, 3},
      {"blk.3.attn_qkv.weight", TensorRole::kAttnQkv, 3},
      {"blk.3.attn_kv_b.weight", TensorRole::kAttnKvB, 3},
      {"blk.31.attn_output.weight", TensorRole::kAttnOutput, 31},
      {"blk.1.ffn_up.weight", TensorRole::kFfnUp, 1},
      {"blk.1.ffn_gate.weight", TensorRole::kFfnGate, 1},
      {"blk.1.ffn_down.weight", TensorRole::kFfnDown, 1},
      {"blk.7.ffn_up_exps.weight", TensorRole::kFfnUpExps, 7},
      {"blk.7.ffn_gate_exps.weight", TensorRole::kFfnGateExps, 7},
      {"blk.7.ffn_down_exps.weight", TensorRole::kFfnDownExps, 7},
      {"blk.7.ffn_up_shexp.weight", TensorRole::kFfnUpShexp, 7},
      {"blk.7.ffn_gate_shexp.weight", TensorRole::kFfnGateShexp, 7},
      {"blk.7.ffn_down_shexp.weight", TensorRole::kFfnDownShexp, 7},
      {"blk.7.ffn_gate_inp.weight", TensorRole::kRouter, 7},
      {"blk.7.ffn_gate_inp_shexp.weight", TensorRole::kRouter, 7},
      {"blk.7.attn_norm.weight", TensorRole::kNorm, 7},
      {"blk.7.attn_q_norm.weight", TensorRole::kNorm, 7},
      {"blk.7.attn_q.bias", TensorRole::kBias, 7},
      {"blk.x.attn_q.weight", TensorRole::kOther, -1},
      {"blk.7attn_q.weight", TensorRole::kOther, -1},
      // encoder-decoder (t5) names
      {"enc.blk.2.attn_q.weight", TensorRole::kAttnQ, 2},
      {"enc.blk.2.attn_o.weight", TensorRole::kAttnOutput, 2},
      {"dec.blk.5.cross_attn_k.weight", TensorRole::kAttnK, 5},
      {"dec.blk.5.cross_attn_o.weight", TensorRole::kAttnOutput, 5},
      {"dec.blk.5.ffn_down.weight", TensorRole::kFfnDown, 5},
      {"enc.output_norm.weight", TensorRole::kNorm, -1},
      {"xyz.blk.1.attn_q.weight", TensorRole::kOther, -1},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const auto cls = ClassifyTensor(c.name);
    CHECK(cls.role == c.role);
    CHECK(cls.layer == c.layer);
  }
}

TEST_CASE("IsNeverQuantized: 1-D, norms, router, non-weights") {
  using blockquant::IsNeverQuantized;
  CHECK(IsNeverQuantized("blk.0.attn_norm.weight", {4096}));
  CHECK(IsNeverQuantized("blk.0.attn_q.weight", {4096, 1}));  // trailing 1s do not count
  CHECK(IsNeverQuantized("blk.0.ffn_gate_inp.weight", {4096, 8}));
  CHECK(IsNeverQuantized("blk.0.attn_q.bias", {4096, 2}));
  CHECK(IsNeverQuantized("position_embd.weight", {768, 1024}));
  CHECK(IsNeverQuantized("blk.0.ssm_conv1d.weight", {4, 1536}));
  CHECK_FALSE(IsNeverQuantized("blk.0.attn_q.weight", {4096, 4096}));
  CHECK_FALSE(IsNeverQuantized("blk.0.ffn_up_exps.weight", {4096, 14336, 8}));
}

TEST_CASE("role names and groups") {
  CHECK(ParseRoleMask("attn_v") == blockquant::RoleBit(TensorRole::kAttnV));
  CHECK((ParseRoleMask("ffn_down_all") & blockquant::RoleBit(TensorRole::kFfnDownExps)) != 0);
  CHECK((ParseRoleMask("ffn_down") & blockquant::RoleBit(TensorRole::kFfnDownExps)) == 0);
  CHECK((ParseRoleMask("attn") & blockquant::RoleBit(TensorRole::kAttnOutput)) != 0);
  CHECK(ParseRoleMask("attn_o") == blockquant::RoleBit(TensorRole::kAttnOutput));
  CHECK_THROWS_WITH_AS(ParseRoleMask("attn_x"), doctest::Contains("attn_x"), blockquant::Error);
}

TEST_CASE("glob matching") {
  using blockquant::policy_detail::GlobMatch;
  CHECK(GlobMatch("blk.*.attn_v.weight", "blk.12.attn_v.weight"));
  CHECK_FALSE(GlobMatch("blk.*.attn_v.weight", "blk.12.attn_q.weight"));
  CHECK(GlobMatch("blk.?.ffn_*", "blk.3.ffn_down.weight"));
  CHECK_FALSE(GlobMatch("blk.?.ffn_*", "blk.13.ffn_down.weight"));
  CHECK(GlobMatch("blk.[0-3].*", "blk.2.attn_q.weight"));
  CHECK_FALSE(GlobMatch("blk.[0-3].*", "blk.4.attn_q.weight"));
  CHECK(GlobMatch("blk.[!0-3].*", "blk.4.attn_q.weight"));
  CHECK(GlobMatch("*", ""));
  CHECK(GlobMatch("*output*", "output.weight"));
  CHECK_FALSE(GlobMatch("output", "output.weight"));  // whole-name match
  CHECK(GlobMatch("a*b*c", "aXXbYYbZc"));
}

TEST_CASE("first match wins; the default decides the rest") {
  RuleSet s;
  Rule first = R(RuleAction::To(QuantType::kQ8_0));
  first.label = "v-early";
  first.roles = ParseRoleMask("attn_v");
  first.layer_min = 0;
  first.layer_max = 3;
  s.rules.push_back(first);
  Rule second = R(RuleAction::To(QuantType::kQ6_K));
  second.label = "all-v";
  second.glob = "blk.*.attn_v.weight";
  s.rules.push_back(second);
  Rule third = R(RuleAction::To(QuantType::kQ2_K));  // would match attn_v too, but comes later
  third.regex = "attn_";
  s.rules.push_back(third);
  Rule last = R(RuleAction::Keep());
  last.roles = ParseRoleMask("output");
  s.rules.push_back(last);
  s.default_action = RuleAction::To(QuantType::kQ4_K);

  const Plan p = MakePlan(bq_test::MakeLlama({}), Policy::Rules(s, "test"));
  CHECK(p.At("blk.2.attn_v.weight").type == QuantType::kQ8_0);
  CHECK(p.At("blk.2.attn_v.weight").decided_by.find("rule #0 'v-early'") != std::string::npos);
  CHECK(p.At("blk.4.attn_v.weight").type == QuantType::kQ6_K);
  CHECK(p.At("blk.4.attn_v.weight").decided_by.find("rule #1") != std::string::npos);
  CHECK(p.At("blk.4.attn_q.weight").type == QuantType::kQ2_K);
  CHECK(p.At("output.weight").keep);
  CHECK(p.At("output.weight").type == QuantType::kF16);
  CHECK(p.At("blk.4.ffn_up.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.4.ffn_up.weight").decided_by.find("default -> Q4_K") != std::string::npos);
  // Rules never quantize norms, whatever they say.
  CHECK(p.At("blk.4.attn_norm.weight").type == QuantType::kF32);

  // Swapping the first two rules changes the outcome: order is the precedence.
  std::swap(s.rules[0], s.rules[1]);
  const Plan q = MakePlan(bq_test::MakeLlama({}), Policy::Rules(s, "test"));
  CHECK(q.At("blk.2.attn_v.weight").type == QuantType::kQ6_K);
}

TEST_CASE("layer ranges: negative bounds count from the end; blockless tensors never match") {
  RuleSet s;
  Rule last4 = R(RuleAction::To(QuantType::kQ8_0));
  last4.layer_min = -4;
  last4.layer_max = -1;
  s.rules.push_back(last4);
  s.default_action = RuleAction::To(QuantType::kQ4_K);
  const Plan p = MakePlan(bq_test::MakeLlama({}), Policy::Rules(s));
  CHECK(p.At("blk.27.attn_q.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.28.attn_q.weight").type == QuantType::kQ8_0);
  CHECK(p.At("blk.31.ffn_down.weight").type == QuantType::kQ8_0);
  CHECK(p.At("output.weight").type == QuantType::kQ4_K);
}

TEST_CASE("size bounds") {
  RuleSet s;
  Rule small = R(RuleAction::To(QuantType::kF16));
  small.max_elements = 4096 * 1024;  // attn_k / attn_v of llama-3-8B
  s.rules.push_back(small);
  Rule big = R(RuleAction::To(QuantType::kQ3_K));
  big.min_elements = 4096LL * 14336;
  s.rules.push_back(big);
  s.default_action = RuleAction::To(QuantType::kQ5_K);
  const Plan p = MakePlan(bq_test::MakeLlama({}), Policy::Rules(s));
  CHECK(p.At("blk.0.attn_k.weight").type == QuantType::kF16);
  CHECK(p.At("blk.0.ffn_up.weight").type == QuantType::kQ3_K);
  CHECK(p.At("blk.0.attn_q.weight").type == QuantType::kQ5_K);
}

TEST_CASE("invalid rules: kInvalidArgument naming the rule index and field") {
  auto error_of = [](const RuleSet& s) -> std::string {
    try {
      Policy::Rules(s);
    } catch (const blockquant::Error& e) {
      CHECK(e.code() == blockquant::ErrorCode::kInvalidArgument);
      return e.what();
    }
    return "";
  };
  RuleSet s;
  s.rules.push_back(R(RuleAction::To(QuantType::kQ4_K)));
  Rule bad = R(RuleAction::To(QuantType::kQ4_K));
  bad.regex = "attn_(";
  s.rules.push_back(bad);
  std::string msg = error_of(s);
  CHECK(msg.find("rule 1, field 'regex'") != std::string::npos);

  // Patterns that would overflow libstdc++'s regex compiler (a fuzzer find:
  // a count of 77777777777777777777 overflows a long), its stack or its state
  // budget, and back references (backtracking only) are refused before
  // std::regex sees them.
  for (const std::string& hostile :
       {std::string("a{77777777777777777777}"), std::string("a{2,99999}"), std::string("(a)\\1"),
        std::string("((a{40}){40}){40}"), std::string("(ab{1000}){3}"), std::string(600, 'a'),
        std::string(40, '(') + "a" + std::string(40, ')')}) {
    s.rules[1] = R(RuleAction::To(QuantType::kQ4_K));
    s.rules[1].regex = hostile;
    msg = error_of(s);
    CHECK_MESSAGE(msg.find("rule 1, field 'regex': refused") != std::string::npos, hostile);
  }
  // Real rules stay within the limits: counts, classes with braces and
  // digits, escapes; nested quantifiers are fine too, because the matcher
  // runs in polynomial time (a backtracking one would take ages on
  // "(.*){500}x" against a 20-character name).
  for (const char* fine : {"blk\\.(1[0-9]|2[0-3])\\.ffn_down", "a{2,1000}", "[{0-9}]+\\{12345\\}",
                           "(.*){500}x", "((a|aa)+)+$"}) {
    s.rules[1] = R(RuleAction::To(QuantType::kQ4_K));
    s.rules[1].regex = fine;
    CHECK_MESSAGE(error_of(s).empty(), fine);
    const std::vector<blockquant::TensorDesc> names = {{"blk.12.ffn_down.weight", {256, 512}, QuantType::kF16},
                                           {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", {256, 512}, QuantType::kF16}};
    CHECK(MakePlan(names, Policy::Rules(s)).tensors.size() == 2);
  }

  s.rules[1] = R(RuleAction::To(QuantType::kQ4_K));
  s.rules[1].glob = "blk.[0-3.*";
  CHECK(error_of(s).find("rule 1, field 'glob'") != std::string::npos);

  s.rules[1] = R(RuleAction::To(QuantType::kQ4_K));
  s.rules[1].layer_min = 5;
  s.rules[1].layer_max = 2;
  CHECK(error_of(s).find("rule 1, field 'layers'") != std::string::npos);

  s.rules[1] = R(RuleAction::To(QuantType::kQ8_K));
  CHECK(error_of(s).find("rule 1, field 'type'") != std::string::npos);

  s.rules[1] = R(RuleAction::To(QuantType::kQ4_K));
  s.rules[1].min_elements = 10;
  s.rules[1].max_elements = 5;
  CHECK(error_of(s).find("rule 1, field 'max_elements'") != std::string::npos);
}

TEST_CASE("docs/policies.md worked example (struct form of the JSON rule file)") {
  RuleSet s;
  auto add = [&](const char* label, RuleAction a) -> Rule& {
    Rule r = R(a);
    r.label = label;
    s.rules.push_back(r);
    return s.rules.back();
  };
  add("keep-vision", RuleAction::Keep()).glob = "v.*";
  Rule& v = add("v-early", RuleAction::To(QuantType::kQ8_0));
  v.roles = ParseRoleMask("attn_v");
  v.layer_min = 0;
  v.layer_max = 3;
  Rule& d = add("down-edges", RuleAction::To(QuantType::kQ6_K));
  d.roles = ParseRoleMask("ffn_down_all");
  d.layer_min = -2;
  d.layer_max = -1;
  add("small-f16", RuleAction::To(QuantType::kF16)).max_elements = 1048576;
  add("experts", RuleAction::To(QuantType::kQ3_K)).roles = ParseRoleMask("experts");
  add("attn", RuleAction::To(QuantType::kQ5_K)).regex = "attn_(q|k|output)";
  s.default_action = RuleAction::To(QuantType::kQ4_K);
  const Plan p = MakePlan(bq_test::MakeLlama({}), Policy::Rules(s, "rules"));
  CHECK(p.At("blk.2.attn_v.weight").type == QuantType::kQ8_0);
  CHECK(p.At("blk.2.attn_v.weight").decided_by == "rules: rule #1 'v-early' role=attn_v layers 0..3 -> Q8_0");
  CHECK(p.At("blk.9.attn_v.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.31.ffn_down.weight").type == QuantType::kQ6_K);
  CHECK(p.At("blk.29.ffn_down.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.0.attn_k.weight").type == QuantType::kQ5_K);
  CHECK(p.At("blk.0.attn_norm.weight").type == QuantType::kF32);
  CHECK(p.At("output.weight").type == QuantType::kQ4_K);
}
