// The rule-file conversion, over a hand-built JSON tree (the adapter makes it
// independent of the parser).
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "blockquant/policy/plan.h"
#include "blockquant/policy/rule_file.h"
#include "blockquant/policy/rules_json.h"
#include "model_shapes.h"

namespace {

struct J {
  enum Kind { kObject, kArray, kString, kNumber } kind = kObject;
  std::string s;
  double n = 0;
  std::vector<std::pair<std::string, J>> members;
  std::vector<J> items;
};

J Str(std::string s) {
  J j;
  j.kind = J::kString;
  j.s = std::move(s);
  return j;
}
J Num(double n) {
  J j;
  j.kind = J::kNumber;
  j.n = n;
  return j;
}
J Arr(std::vector<J> items) {
  J j;
  j.kind = J::kArray;
  j.items = std::move(items);
  return j;
}
J Obj(std::vector<std::pair<std::string, J>> members) {
  J j;
  j.members = std::move(members);
  return j;
}

struct JA {
  static bool IsObject(const J& v) { return v.kind == J::kObject; }
  static bool IsArray(const J& v) { return v.kind == J::kArray; }
  static bool IsString(const J& v) { return v.kind == J::kString; }
  static bool IsNumber(const J& v) { return v.kind == J::kNumber; }
  static const J* Member(const J& v, std::string_view key) {
    for (const auto& m : v.members) {
      if (m.first == key) return &m.second;
    }
    return nullptr;
  }
  static std::vector<std::string> Keys(const J& v) {
    std::vector<std::string> k;
    for (const auto& m : v.members) k.push_back(m.first);
    return k;
  }
  static size_t Size(const J& v) { return v.items.size(); }
  static const J& At(const J& v, size_t i) { return v.items[i]; }
  static std::string String(const J& v) { return v.s; }
  static double Number(const J& v) { return v.n; }
};

using blockquant::QuantType;
using blockquant::RuleSet;

RuleSet Convert(const J& j) { return blockquant::RuleSetFromJson<JA>(j); }

std::string ErrorOf(const J& j) {
  try {
    blockquant::Policy::Rules(Convert(j));
  } catch (const blockquant::Error& e) {
    CHECK(e.code() == blockquant::ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

J DocsExample() {
  return Obj({{"version", Num(1)},
              {"rules", Arr({Obj({{"name", Str("keep-vision")}, {"glob", Str("v.*")}, {"type", Str("keep")}}),
                             Obj({{"name", Str("v-early")}, {"role", Str("attn_v")},
                                  {"layers", Arr({Num(0), Num(3)})}, {"type", Str("Q8_0")}}),
                             Obj({{"name", Str("down-edges")}, {"role", Str("ffn_down_all")},
                                  {"layers", Arr({Num(-2), Num(-1)})}, {"type", Str("Q6_K")}}),
                             Obj({{"name", Str("small-f16")}, {"max_elements", Num(1048576)}, {"type", Str("F16")}}),
                             Obj({{"name", Str("experts")}, {"role", Str("experts")}, {"type", Str("Q3_K")}}),
                             Obj({{"name", Str("attn")}, {"regex", Str("attn_(q|k|output)")}, {"type", Str("q5_k")}})})},
              {"default", Str("Q4_K")}});
}

}  // namespace

TEST_CASE("rule file: the docs example converts and plans as documented") {
  const RuleSet s = Convert(DocsExample());
  REQUIRE(s.rules.size() == 6);
  CHECK(s.rules[0].action.keep);
  CHECK(s.rules[1].layer_min == 0);
  CHECK(s.rules[1].layer_max == 3);
  CHECK(s.rules[5].action.type == QuantType::kQ5_K);
  CHECK(s.default_action.type == QuantType::kQ4_K);
  const blockquant::Plan p = blockquant::MakePlan(bq_test::MakeLlama({}), blockquant::Policy::Rules(s, "rules"));
  CHECK(p.At("blk.2.attn_v.weight").decided_by == "rules: rule #1 'v-early' role=attn_v layers 0..3 -> Q8_0");
  CHECK(p.At("blk.31.ffn_down.weight").type == QuantType::kQ6_K);
  CHECK(p.At("blk.0.attn_k.weight").type == QuantType::kQ5_K);
  CHECK(p.At("output.weight").type == QuantType::kQ4_K);
}

TEST_CASE("rule file: role arrays, single layers, keep default") {
  const RuleSet s = Convert(Obj({{"rules", Arr({Obj({{"role", Arr({Str("attn_q"), Str("attn_k")})},
                                                     {"layers", Num(5)},
                                                     {"type", Str("Q8_0")}})})}}));
  CHECK(s.default_action.keep);
  CHECK(s.rules[0].layer_min == 5);
  CHECK(s.rules[0].layer_max == 5);
  const blockquant::Plan p = blockquant::MakePlan(bq_test::MakeLlama({}), blockquant::Policy::Rules(s));
  CHECK(p.At("blk.5.attn_k.weight").type == QuantType::kQ8_0);
  CHECK(p.At("blk.4.attn_k.weight").type == QuantType::kF16);  // default: keep
}

TEST_CASE("rule file: errors name the rule index and field") {
  auto with_rule = [](J rule) { return Obj({{"rules", Arr({Obj({{"type", Str("Q4_K")}}), std::move(rule)})}}); };
  CHECK(ErrorOf(with_rule(Obj({{"type", Str("Q4_X")}}))).find("rule 1, field 'type': unknown or unstorable type 'Q4_X'") !=
        std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"type", Str("Q8_K")}}))).find("rule 1, field 'type'") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"glob", Str("x")}}))).find("rule 1, field 'type': missing") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"role", Str("attn_z")}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'role'") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"layers", Arr({Num(1)})}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'layers': expected a layer index or [lo, hi]") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"layers", Arr({Num(1.5), Num(2)})}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'layers': expected an integer") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"layers", Arr({Num(4), Num(2)})}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'layers': lower bound 4 > upper bound 2") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"regex", Str("(")}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'regex'") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"min_elements", Num(-1)}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'min_elements'") != std::string::npos);
  CHECK(ErrorOf(with_rule(Obj({{"colour", Str("red")}, {"type", Str("Q4_K")}})))
            .find("rule 1, field 'colour': unknown field") != std::string::npos);
  CHECK(ErrorOf(with_rule(Str("Q4_K"))).find("rule 1: expected an object") != std::string::npos);
  CHECK(ErrorOf(Obj({})).find("missing field 'rules'") != std::string::npos);
  CHECK(ErrorOf(Obj({{"rules", Arr({})}, {"default", Str("Q9")}})).find("field 'default'") != std::string::npos);
  CHECK(ErrorOf(Obj({{"rules", Arr({})}, {"version", Num(2)}})).find("field 'version'") != std::string::npos);
  CHECK(ErrorOf(Obj({{"rules", Arr({})}, {"extra", Num(2)}})).find("unknown top-level field 'extra'") !=
        std::string::npos);
  CHECK(ErrorOf(Arr({})).find("top level must be an object") != std::string::npos);
}

TEST_CASE("the docs example as a file, through the JSON parser and ResolvePolicy") {
  const std::string text = R"json({
  "version": 1,
  "rules": [
    {"name": "keep-vision", "glob": "v.*", "type": "keep"},
    {"name": "v-early",     "role": "attn_v", "layers": [0, 3], "type": "Q8_0"},
    {"name": "down-edges",  "role": "ffn_down_all", "layers": [-2, -1], "type": "Q6_K"},
    {"name": "small-f16",   "max_elements": 1048576, "type": "F16"},
    {"name": "experts",     "role": "experts", "type": "Q3_K"},
    {"name": "attn",        "regex": "attn_(q|k|output)", "type": "Q5_K"}
  ],
  "default": "Q4_K"
})json";
  const std::string path = "bq_policy_docs_example_rules.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const blockquant::Plan p = blockquant::MakePlan(bq_test::MakeLlama({}), blockquant::ResolvePolicy(path));
  std::remove(path.c_str());
  CHECK(p.At("blk.2.attn_v.weight").type == QuantType::kQ8_0);
  CHECK(p.At("blk.2.attn_v.weight").decided_by.find("rule #1 'v-early' role=attn_v layers 0..3 -> Q8_0") !=
        std::string::npos);
  CHECK(p.At("blk.9.attn_v.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.31.ffn_down.weight").type == QuantType::kQ6_K);
  CHECK(p.At("blk.0.attn_k.weight").type == QuantType::kQ5_K);
  CHECK(p.At("output.weight").type == QuantType::kQ4_K);
  CHECK(p.At("blk.0.attn_norm.weight").type == QuantType::kF32);
}
