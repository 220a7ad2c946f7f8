// A Plan: the type of every tensor, the rule that chose it, its bytes, and
// totals (size, bits/weight, compression vs the source), before any
// quantization runs. Deterministic: the same tensors, policy and facts give
// the same plan, whatever order the caller lists tensors in.
#ifndef BLOCKQUANT_POLICY_PLAN_H_
#define BLOCKQUANT_POLICY_PLAN_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/policy/model_facts.h"
#include "blockquant/policy/presets.h"
#include "blockquant/policy/rules.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

// The row-length fallback (llama.cpp's, as facts): when a type's block does
// not divide the row, a 32-element type of at least as many bits replaces it,
// and F16 when 32 does not divide the row either.
struct RowFallback {
  QuantType from;
  QuantType to;
};

inline constexpr RowFallback kRowFallbacks[] = {
    {QuantType::kQ2_K, QuantType::kQ4_0}, {QuantType::kQ3_K, QuantType::kQ4_0},
    {QuantType::kQ4_K, QuantType::kQ5_0}, {QuantType::kQ5_K, QuantType::kQ5_1},
    {QuantType::kQ6_K, QuantType::kQ8_0},
};

// `type` itself when its block divides row_length. Types without a table
// entry (Q4_0 ... Q8_0) go straight to F16; llama.cpp refuses those cases
// instead (no fallback defined), see docs/policies.md.
inline QuantType FallbackType(QuantType type, int64_t row_length) {
  if (row_length % Traits(type).block_elems == 0) return type;
  for (const RowFallback& f : kRowFallbacks) {
    if (f.from == type && row_length % Traits(f.to).block_elems == 0) return f.to;
  }
  return QuantType::kF16;
}

// Bytes of a whole tensor of `type`: RowBytes(dims[0]) * rows.
inline int64_t TensorBytes(QuantType type, const TensorDesc& t) {
  const int64_t rows = policy_detail::RowCount(t);
  const int64_t row_bytes = RowBytes(type, t.dims[0]);
  if (rows != 0 && row_bytes > INT64_MAX / rows) {
    BLOCKQUANT_THROW(ErrorCode::kLimit, "tensor '" + t.name + "': byte count overflows 64 bits");
  }
  return row_bytes * rows;
}

// Which policy a plan follows: a llama.cpp preset or a rule set.
class Policy {
 public:
  enum class Kind { kPreset, kRules };

  static Policy Preset(PresetId id) {
    Policy p;
    p.kind_ = Kind::kPreset;
    p.preset_ = id;
    p.name_ = GetPresetInfo(id).name;
    return p;
  }

  static Policy Rules(RuleSet rules, std::string name = "rules") {
    Policy p;
    p.kind_ = Kind::kRules;
    p.name_ = std::move(name);
    p.matcher_ = std::make_shared<const RuleMatcher>(std::move(rules));
    return p;
  }

  // "Q4_K_M" (any llama preset, case-insensitive), "int8-core", "aggressive",
  // "balanced" or "balanced:GLOB,GLOB,..." (the globs name excluded tensors).
  static Policy Named(std::string_view name) {
    if (const PresetInfo* p = FindLlamaPreset(name)) return Preset(p->id);
    if (name == "int8-core") return Rules(Int8CoreRules(), "int8-core");
    if (name == "aggressive") return Rules(AggressiveRules(), "aggressive");
    if (name == "balanced") return Rules(BalancedRules(), "balanced");
    constexpr std::string_view kBalanced = "balanced:";
    if (name.substr(0, kBalanced.size()) == kBalanced) {
      std::vector<std::string> globs;
      std::string_view rest = name.substr(kBalanced.size());
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view g = rest.substr(0, comma);
        if (!g.empty()) globs.emplace_back(g);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      return Rules(BalancedRules(globs), std::string(name));
    }
    std::string known;
    for (const PresetInfo& p : kLlamaPresets) known += std::string(p.name) + ", ";
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "unknown policy '" + std::string(name) + "' (known: " + known +
                                                      "int8-core, aggressive, balanced[:GLOB,...])");
  }

  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  PresetId preset() const { return preset_; }
  const RuleMatcher& matcher() const { return *matcher_; }

 private:
  Policy() = default;
  Kind kind_ = Kind::kPreset;
  PresetId preset_ = PresetId::kQ4_K_M;
  std::string name_;
  std::shared_ptr<const RuleMatcher> matcher_;
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> dims;
  TensorRole role = TensorRole::kOther;
  int layer = -1;
  QuantType source_type = QuantType::kF16;
  QuantType type = QuantType::kF16;            // what will be written
  QuantType requested_type = QuantType::kF16;  // what the policy asked for, before the row fallback
  bool keep = false;                           // left in its source type (never quantized, or "keep")
  bool fallback = false;                       // requested_type's block does not divide the row
  std::string decided_by;                      // the rule, human-readable
  int64_t n_elements = 0;
  int64_t source_bytes = 0;
  int64_t bytes = 0;
};

struct Plan {
  std::string policy;
  uint32_t file_type = 0;  // llama_ftype for general.file_type
  ResolvedFacts facts;
  std::vector<TensorPlan> tensors;  // in the caller's order
  int64_t n_elements = 0;
  int64_t source_bytes = 0;
  int64_t total_bytes = 0;
  int n_fallback = 0;

  double BitsPerWeight() const {
    return n_elements == 0 ? 0.0 : 8.0 * static_cast<double>(total_bytes) / static_cast<double>(n_elements);
  }
  // Source bytes over planned bytes (> 1 means smaller).
  double CompressionRatio() const {
    return total_bytes == 0 ? 0.0 : static_cast<double>(source_bytes) / static_cast<double>(total_bytes);
  }
  int CountOf(QuantType type) const {
    int n = 0;
    for (const TensorPlan& t : tensors) n += t.type == type ? 1 : 0;
    return n;
  }
  const TensorPlan* Find(std::string_view name) const {
    for (const TensorPlan& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  const TensorPlan& At(std::string_view name) const {
    const TensorPlan* t = Find(name);
    if (t == nullptr) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "no tensor '" + std::string(name) + "' in the plan");
    return *t;
  }
  // (type, tensor count, bytes), by type id.
  std::vector<std::pair<QuantType, std::pair<int, int64_t>>> TypeHistogram() const {
    std::vector<std::pair<QuantType, std::pair<int, int64_t>>> h;
    for (const TensorPlan& t : tensors) {
      auto it = std::find_if(h.begin(), h.end(), [&](const auto& e) { return e.first == t.type; });
      if (it == h.end()) {
        h.push_back({t.type, {1, t.bytes}});
      } else {
        it->second.first += 1;
        it->second.second += t.bytes;
      }
    }
    std::sort(h.begin(), h.end(), [](const auto& a, const auto& b) {
      return static_cast<uint32_t>(a.first) < static_cast<uint32_t>(b.first);
    });
    return h;
  }

  // The dry-run listing: one line per tensor (name, shape, source -> type,
  // bytes, deciding rule), then a type histogram and the totals.
  std::string ToText() const {
    std::string s = "policy " + policy + " (general.file_type " + std::to_string(file_type) + ")\n";
    for (const std::string& note : facts.notes) s += "  note: " + note + "\n";
    char line[512];
    for (const TensorPlan& t : tensors) {
      std::string shape;
      for (size_t i = 0; i < t.dims.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.dims[i]);
      std::snprintf(line, sizeof(line), "%-40s %-18s %5s -> %-5s %14lld  ", t.name.c_str(), shape.c_str(),
                    TypeName(t.source_type), TypeName(t.type), static_cast<long long>(t.bytes));
      s += line + t.decided_by + "\n";
    }
    for (const auto& e : TypeHistogram()) {
      std::snprintf(line, sizeof(line), "  %-5s %5d tensors %14lld bytes\n", TypeName(e.first), e.second.first,
                    static_cast<long long>(e.second.second));
      s += line;
    }
    std::snprintf(line, sizeof(line),
                  "total %lld bytes (%.4f bits/weight), source %lld bytes, compression %.3fx, %d fallback(s)\n",
                  static_cast<long long>(total_bytes), BitsPerWeight(), static_cast<long long>(source_bytes),
                  CompressionRatio(), n_fallback);
    return s + line;
  }
};

namespace policy_detail {

// llama_ftype of the most common quantized type (by tensor count; ties to
// the lower type id), the way llama.cpp's loader guesses a file's type.
inline uint32_t GuessFileType(const std::vector<TensorPlan>& tensors) {
  struct TypeFtype {
    QuantType type;
    uint32_t ftype;
  };
  static constexpr TypeFtype kMap[] = {
      {QuantType::kF32, 0},  {QuantType::kF16, 1},  {QuantType::kQ4_0, 2},  {QuantType::kQ4_1, 3},
      {QuantType::kQ5_0, 8}, {QuantType::kQ5_1, 9}, {QuantType::kQ8_0, 7},  {QuantType::kQ2_K, 10},
      {QuantType::kQ3_K, 12}, {QuantType::kQ4_K, 15}, {QuantType::kQ5_K, 17}, {QuantType::kQ6_K, 18},
      {QuantType::kBF16, 32},
  };
  int best = 0;
  uint32_t ftype = 0;
  for (const TypeFtype& m : kMap) {
    int n = 0;
    for (const TensorPlan& t : tensors) n += (!t.keep && t.type == m.type) ? 1 : 0;
    if (n > best) {
      best = n;
      ftype = m.ftype;
    }
  }
  return ftype;
}

inline void FinishTensor(TensorPlan& p, const TensorDesc& t) {
  p.n_elements = ElementCount(t);
  p.source_bytes = TensorBytes(t.source_type, t);
  if (p.keep) {
    p.type = p.requested_type = t.source_type;
  } else {
    p.type = FallbackType(p.requested_type, t.dims[0]);
    p.fallback = p.type != p.requested_type;
    if (p.fallback) {
      p.decided_by += "; row length " + std::to_string(t.dims[0]) + " not a multiple of " +
                      std::to_string(Traits(p.requested_type).block_elems) + ": fallback " +
                      TypeName(p.requested_type) + " -> " + TypeName(p.type);
    }
  }
  p.bytes = TensorBytes(p.type, t);
}

inline void Totals(Plan& plan) {
  plan.n_elements = plan.source_bytes = plan.total_bytes = 0;
  plan.n_fallback = 0;
  for (const TensorPlan& t : plan.tensors) {
    plan.n_elements += t.n_elements;
    plan.source_bytes += t.source_bytes;
    plan.total_bytes += t.bytes;
    plan.n_fallback += t.fallback ? 1 : 0;
  }
}

}  // namespace policy_detail

inline Plan MakePlan(const std::vector<TensorDesc>& tensors, const Policy& policy, const ModelFacts& facts = {}) {
  Plan plan;
  plan.policy = policy.name();
  plan.facts = ResolveFacts(tensors, facts);
  plan.tensors.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorDesc& t = tensors[i];
    TensorPlan& p = plan.tensors[i];
    p.name = t.name;
    p.dims = t.dims;
    p.source_type = t.source_type;
    const TensorClass cls = ClassifyTensor(t.name);
    p.role = cls.role;
    p.layer = cls.layer;
  }

  if (policy.kind() == Policy::Kind::kPreset) {
    const std::vector<PresetDecision> d = ApplyLlamaPreset(policy.preset(), tensors, plan.facts);
    for (size_t i = 0; i < tensors.size(); ++i) {
      plan.tensors[i].keep = d[i].keep;
      plan.tensors[i].requested_type = d[i].type;
      plan.tensors[i].decided_by = d[i].why;
    }
    plan.file_type = GetPresetInfo(policy.preset()).file_type;
  } else {
    const RuleMatcher& m = policy.matcher();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorDesc& t = tensors[i];
      TensorPlan& p = plan.tensors[i];
      if (IsNeverQuantized(t.name, t.dims)) {
        p.keep = true;
        p.decided_by = "never quantized (1-D, norm, router or excluded name): keeps " +
                       std::string(TypeName(t.source_type));
        continue;
      }
      const int index = m.Match(t.name, ClassifyTensor(t.name), policy_detail::ElementCount(t), plan.facts.n_layer);
      const RuleAction& a = m.Action(index);
      p.keep = a.keep;
      p.requested_type = a.type;
      p.decided_by = policy.name() + ": " + m.Describe(index);
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i) policy_detail::FinishTensor(plan.tensors[i], tensors[i]);
  if (policy.kind() == Policy::Kind::kRules) plan.file_type = policy_detail::GuessFileType(plan.tensors);
  policy_detail::Totals(plan);
  return plan;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_PLAN_H_
