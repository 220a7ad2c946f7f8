// Policy rule files: JSON text -> rules -> a plan for a small llama-shaped
// model (every rule is matched against real tensor names).
#include <cstdint>
#include <string>

#include "blockquant/detail/json.h"
#include "blockquant/policy/plan.h"
#include "blockquant/policy/rules_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const blockquant::detail::JsonValue root = blockquant::detail::ParseJson(text, "fuzz");
    const blockquant::Policy policy =
        blockquant::Policy::Rules(blockquant::RuleSetFromJson<blockquant::detail::JsonAdapter>(root), "fuzz");
    std::vector<blockquant::TensorDesc> model;
    for (const char* name : {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight",
                             "blk.1.attn_v.weight", "output_norm.weight", "output.weight"}) {
      blockquant::TensorDesc t;
      t.name = name;
      t.dims = {256, 512};
      model.push_back(t);
    }
    const blockquant::Plan plan = blockquant::MakePlan(model, policy, blockquant::ModelFacts{});
    (void)plan;  // building it matched every rule against every name
    return 0;
  } catch (const blockquant::Error&) {
    return 0;
  }
}
