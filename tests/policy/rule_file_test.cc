#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "blockquant/detail/json.h"
#include "blockquant/policy/rule_file.h"

namespace bq = blockquant;

TEST_CASE("JSON parser: values, escapes, and strict errors") {
  const auto v = bq::detail::ParseJson(R"({"a": [1, -2.5e2, true, null], "s": "x\u00e9\ud83d\ude00\n", "o": {}})");
  REQUIRE(v.kind == bq::detail::JsonValue::Kind::kObject);
  CHECK(v.Find("a")->items.at(1).number == -250.0);
  CHECK(v.Find("a")->items.at(2).boolean);
  CHECK(v.Find("s")->string == "x\xc3\xa9\xf0\x9f\x98\x80\n");
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "\"\\x\"", "{\"a\":1,\"a\":2}",
                          "[1] 2", "\"\\ud800\"", "nul", "\"a\nb\""}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(bq::detail::ParseJson(bad), bq::Error);
  }
  std::string deep(100, '[');
  CHECK_THROWS_AS(bq::detail::ParseJson(deep + std::string(100, ']')), bq::Error);
}

TEST_CASE("a rule file becomes a policy; bad files name the rule and field") {
  const std::string path = "/tmp/bq_rules_" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream f(path);
    f << R"({"version": 1, "default": "Q4_K",
             "rules": [{"name": "embeddings high", "role": "token_embd", "type": "Q8_0"},
                       {"glob": "blk.*.ffn_down.weight", "layers": [0, 3], "type": "Q6_K"}]})";
  }
  const bq::Policy p = bq::ResolvePolicy(path);
  CHECK(p.kind() == bq::Policy::Kind::kRules);
  const std::vector<bq::TensorDesc> tensors = {{"token_embd.weight", {256, 1000}, bq::QuantType::kF16},
                                               {"blk.1.ffn_down.weight", {512, 256}, bq::QuantType::kF16},
                                               {"blk.5.ffn_down.weight", {512, 256}, bq::QuantType::kF16}};
  const bq::Plan plan = bq::MakePlan(tensors, p);
  CHECK(plan.At("token_embd.weight").type == bq::QuantType::kQ8_0);
  CHECK(plan.At("blk.1.ffn_down.weight").type == bq::QuantType::kQ6_K);
  CHECK(plan.At("blk.5.ffn_down.weight").type == bq::QuantType::kQ4_K);
  {
    std::ofstream f(path);
    f << R"({"rules": [{"glob": "x"}, {"glob": "y", "type": "Q9"}]})";
  }
  try {
    bq::ResolvePolicy(path);
    FAIL("expected an error");
  } catch (const bq::Error& e) {
    CHECK(std::string(e.what()).find("rule 0") != std::string::npos);
  }
  std::remove(path.c_str());
  CHECK_THROWS_AS(bq::ResolvePolicy("/nonexistent/rules.json"), bq::Error);
  CHECK(bq::ResolvePolicy("Q4_K_M").kind() == bq::Policy::Kind::kPreset);
}
