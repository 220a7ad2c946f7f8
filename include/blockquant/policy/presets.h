// llama.cpp's quantization mixes (llama-quantize Q2_K ... Q8_0) as data: a
// table of rules evaluated by a small engine, so a plan can say which rule
// chose each type. The facts come from reading llama.cpp's
// src/llama-quant.cpp (llama_tensor_get_type and friends); docs/policies.md
// lists them, the commit read, and what could not be confirmed.
//
// Evaluation, per tensor that may be quantized:
//  1. start from the preset's default type;
//  2. select stage: the first kSelect rule (in table order) whose preset
//     mask, family and conditions all match sets the type;
//  3. adjust stage: every matching kAdjust rule applies, in table order;
//  4. the row-length fallback (plan.h) replaces a type whose block does not
//     divide the row.
// Tensors that may not be quantized (IsNeverQuantized) keep their source type.
#ifndef BLOCKQUANT_POLICY_PRESETS_H_
#define BLOCKQUANT_POLICY_PRESETS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/policy/model_facts.h"
#include "blockquant/policy/rules.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

// llama.cpp's mixes for which blockquant has every block type.
enum class PresetId : uint8_t {
  kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0,
  kQ2_K, kQ3_K_S, kQ3_K_M, kQ3_K_L, kQ4_K_S, kQ4_K_M, kQ5_K_S, kQ5_K_M, kQ6_K,
};

struct PresetInfo {
  PresetId id;
  const char* name;       // llama-quantize spelling
  uint32_t file_type;     // llama_ftype, written as general.file_type
  QuantType default_type; // the type of every tensor no rule changes
};

// llama_ftype values (include/llama.h) and default types
// (llama_ftype_get_default_type in src/llama-quant.cpp).
inline constexpr PresetInfo kLlamaPresets[] = {
    {PresetId::kQ4_0, "Q4_0", 2, QuantType::kQ4_0},
    {PresetId::kQ4_1, "Q4_1", 3, QuantType::kQ4_1},
    {PresetId::kQ5_0, "Q5_0", 8, QuantType::kQ5_0},
    {PresetId::kQ5_1, "Q5_1", 9, QuantType::kQ5_1},
    {PresetId::kQ8_0, "Q8_0", 7, QuantType::kQ8_0},
    {PresetId::kQ2_K, "Q2_K", 10, QuantType::kQ2_K},
    {PresetId::kQ3_K_S, "Q3_K_S", 11, QuantType::kQ3_K},
    {PresetId::kQ3_K_M, "Q3_K_M", 12, QuantType::kQ3_K},
    {PresetId::kQ3_K_L, "Q3_K_L", 13, QuantType::kQ3_K},
    {PresetId::kQ4_K_S, "Q4_K_S", 14, QuantType::kQ4_K},
    {PresetId::kQ4_K_M, "Q4_K_M", 15, QuantType::kQ4_K},
    {PresetId::kQ5_K_S, "Q5_K_S", 16, QuantType::kQ5_K},
    {PresetId::kQ5_K_M, "Q5_K_M", 17, QuantType::kQ5_K},
    {PresetId::kQ6_K, "Q6_K", 18, QuantType::kQ6_K},
};

// Other llama_ftype values a writer may need.
inline constexpr uint32_t kFileTypeAllF32 = 0;
inline constexpr uint32_t kFileTypeMostlyF16 = 1;
inline constexpr uint32_t kFileTypeMostlyBF16 = 32;
inline constexpr uint32_t kFileTypeGuessedFlag = 1024;  // LLAMA_FTYPE_GUESSED

inline const PresetInfo& GetPresetInfo(PresetId id) {
  for (const PresetInfo& p : kLlamaPresets) {
    if (p.id == id) return p;
  }
  BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "unknown preset id " + std::to_string(static_cast<int>(id)));
}

// Case-insensitive lookup of a llama preset name; nullptr when not one.
inline const PresetInfo* FindLlamaPreset(std::string_view name) {
  auto upper = [](char c) { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; };
  for (const PresetInfo& p : kLlamaPresets) {
    const std::string_view candidate(p.name);
    if (candidate.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) same = upper(name[i]) == candidate[i];
    if (same) return &p;
  }
  return nullptr;
}

// The families llama.cpp's rules distinguish (its tensor categories).
enum class PresetFamily : uint8_t {
  kOutput,      // output.weight, and token_embd when the model has no output.weight (tied)
  kTokenEmbd,   // token_embd with a separate output.weight
  kAttnV,       // attn_v, attn_qkv and attn_kv_b: llama.cpp treats all three as "attn_v-like"
  kAttnK,
  kAttnQ,
  kAttnOutput,
  kFfnUp,       // any name containing ffn_up (dense, experts, shared experts)
  kFfnGate,     // any name containing ffn_gate (the router never gets here: it is not quantized)
  kFfnDown,     // any name containing ffn_down
  kOther,
};

inline const char* PresetFamilyName(PresetFamily f) {
  switch (f) {
    case PresetFamily::kOutput: return "output";
    case PresetFamily::kTokenEmbd: return "token_embd";
    case PresetFamily::kAttnV: return "attn_v-like";
    case PresetFamily::kAttnK: return "attn_k";
    case PresetFamily::kAttnQ: return "attn_q";
    case PresetFamily::kAttnOutput: return "attn_output";
    case PresetFamily::kFfnUp: return "ffn_up";
    case PresetFamily::kFfnGate: return "ffn_gate";
    case PresetFamily::kFfnDown: return "ffn_down";
    case PresetFamily::kOther: return "other";
  }
  return "other";
}

// llama.cpp's categorisation, in its order of tests: exact names first, then
// substrings. The order matters ("attn_qkv.weight" before "attn_v.weight").
inline PresetFamily LlamaFamily(std::string_view name, bool tied_embeddings) {
  using policy_detail::Contains;
  if (name == "output.weight") return PresetFamily::kOutput;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
    return tied_embeddings ? PresetFamily::kOutput : PresetFamily::kTokenEmbd;
  }
  struct Part {
    const char* part;
    PresetFamily family;
  };
  static constexpr Part kParts[] = {
      {"attn_qkv.weight", PresetFamily::kAttnV},    {"attn_kv_b.weight", PresetFamily::kAttnV},
      {"attn_v.weight", PresetFamily::kAttnV},      {"attn_k.weight", PresetFamily::kAttnK},
      {"attn_q.weight", PresetFamily::kAttnQ},      {"attn_output.weight", PresetFamily::kAttnOutput},
      {"ffn_up", PresetFamily::kFfnUp},             {"ffn_gate", PresetFamily::kFfnGate},
      {"ffn_down", PresetFamily::kFfnDown},
  };
  for (const Part& p : kParts) {
    if (Contains(name, p.part)) return p.family;
  }
  return PresetFamily::kOther;
}

// Conditions a preset rule can test. "i" and "n" are the tensor's position
// and count as llama.cpp counts them (see PresetContext).
enum class PresetCond : uint8_t {
  kAlways,
  kGqaAtLeast4,       // n_head / n_head_kv >= 4
  kIndexBelow2,       // i < 2
  kIndexBelow4,       // i < 4
  kUseMoreBits,       // i < n/8, or i >= 7n/8, or (i - n/8) % 3 == 2
  kFirstEighth,       // i < n/8
  kFirstSixteenth,    // i < n/16
  kRowNotAligned,     // row length not a multiple of the preset default type's block
  kFalcon,            // arch == "falcon"
  kNotFalcon,
  kExperts8,          // n_expert == 8 (exactly: llama.cpp tunes this for Mixtral-8x7B)
  kNotExperts8,
  kModel70B,          // llama arch, 80 layers, grouped KV heads
  kCurrentQ3KorQ4K,   // the type chosen so far is Q3_K or Q4_K
  kHasImatrix,
};

enum class PresetStage : uint8_t { kSelect, kAdjust };

using PresetMask = uint32_t;
constexpr PresetMask PresetBit(PresetId id) { return PresetMask{1} << static_cast<unsigned>(id); }
inline constexpr PresetMask kAllPresets = 0x3FFFu;  // the 14 PresetId values

struct PresetRule {
  PresetMask presets;
  PresetFamily family;
  PresetCond cond1;
  PresetCond cond2;
  PresetStage stage;
  QuantType type;
  const char* note;  // why, for plans and docs
};

namespace policy_detail {
constexpr PresetMask B(PresetId id) { return PresetBit(id); }
}  // namespace policy_detail

// The rules, restricted to the presets above (llama.cpp's IQ*, TQ*, MXFP4 and
// Q2_K_S mixes need block types blockquant does not have). Table order is
// evaluation order. attn_qkv is attn_v-like, so llama.cpp's separate attn_qkv
// branch (Q4_K_M -> Q5_K etc.) is never reached and has no row here.
inline constexpr PresetRule kLlamaPresetRules[] = {
    // output.weight (and tied token embeddings)
    {kAllPresets, PresetFamily::kOutput, PresetCond::kFalcon, PresetCond::kAlways, PresetStage::kSelect,
     QuantType::kQ8_0, "output of a Falcon model"},
    {kAllPresets, PresetFamily::kOutput, PresetCond::kRowNotAligned, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ8_0, "output row not a multiple of the default type's block"},
    {kAllPresets & ~policy_detail::B(PresetId::kQ8_0), PresetFamily::kOutput, PresetCond::kAlways,
     PresetCond::kAlways, PresetStage::kSelect, QuantType::kQ6_K, "output tensor"},
    // attn_v-like
    {policy_detail::B(PresetId::kQ2_K), PresetFamily::kAttnV, PresetCond::kGqaAtLeast4, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ4_K, "attn_v, n_gqa >= 4"},
    {policy_detail::B(PresetId::kQ2_K), PresetFamily::kAttnV, PresetCond::kAlways, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ3_K, "attn_v, n_gqa < 4"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kAttnV, PresetCond::kIndexBelow2, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ5_K, "attn_v, first two"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kAttnV, PresetCond::kAlways, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ4_K, "attn_v"},
    {policy_detail::B(PresetId::kQ3_K_L), PresetFamily::kAttnV, PresetCond::kAlways, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ5_K, "attn_v"},
    {policy_detail::B(PresetId::kQ4_K_M) | policy_detail::B(PresetId::kQ5_K_M), PresetFamily::kAttnV,
     PresetCond::kUseMoreBits, PresetCond::kAlways, PresetStage::kSelect, QuantType::kQ6_K,
     "attn_v, use_more_bits layer"},
    {policy_detail::B(PresetId::kQ4_K_S), PresetFamily::kAttnV, PresetCond::kIndexBelow4, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ5_K, "attn_v, first four"},
    {kAllPresets, PresetFamily::kAttnV, PresetCond::kModel70B, PresetCond::kCurrentQ3KorQ4K,
     PresetStage::kAdjust, QuantType::kQ5_K, "attn_v of a 70B llama (8 heads share v)"},
    {kAllPresets, PresetFamily::kAttnV, PresetCond::kExperts8, PresetCond::kAlways, PresetStage::kAdjust,
     QuantType::kQ8_0, "attn_v of an 8-expert model"},
    // attn_k
    {kAllPresets, PresetFamily::kAttnK, PresetCond::kExperts8, PresetCond::kAlways, PresetStage::kSelect,
     QuantType::kQ8_0, "attn_k of an 8-expert model"},
    // ffn_down (dense, experts and shared experts alike)
    {policy_detail::B(PresetId::kQ2_K), PresetFamily::kFfnDown, PresetCond::kAlways, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ3_K, "ffn_down"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kFfnDown, PresetCond::kFirstSixteenth,
     PresetCond::kAlways, PresetStage::kSelect, QuantType::kQ5_K, "ffn_down, first n/16 layers"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kFfnDown, PresetCond::kNotFalcon, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ4_K, "ffn_down"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kFfnDown, PresetCond::kUseMoreBits,
     PresetCond::kAlways, PresetStage::kSelect, QuantType::kQ4_K, "ffn_down (Falcon), use_more_bits layer"},
    {policy_detail::B(PresetId::kQ3_K_L), PresetFamily::kFfnDown, PresetCond::kFalcon, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ4_K, "ffn_down (Falcon)"},
    {policy_detail::B(PresetId::kQ3_K_L), PresetFamily::kFfnDown, PresetCond::kAlways, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ5_K, "ffn_down"},
    {policy_detail::B(PresetId::kQ4_K_M), PresetFamily::kFfnDown, PresetCond::kFalcon,
     PresetCond::kFirstSixteenth, PresetStage::kSelect, QuantType::kQ6_K,
     "ffn_down (Falcon), first n/16 layers"},
    {policy_detail::B(PresetId::kQ4_K_M), PresetFamily::kFfnDown, PresetCond::kFalcon, PresetCond::kUseMoreBits,
     PresetStage::kSelect, QuantType::kQ5_K, "ffn_down (Falcon), use_more_bits layer"},
    {policy_detail::B(PresetId::kQ4_K_M) | policy_detail::B(PresetId::kQ5_K_M), PresetFamily::kFfnDown,
     PresetCond::kNotFalcon, PresetCond::kUseMoreBits, PresetStage::kSelect, QuantType::kQ6_K,
     "ffn_down, use_more_bits layer"},
    {policy_detail::B(PresetId::kQ5_K_M), PresetFamily::kFfnDown, PresetCond::kFalcon, PresetCond::kUseMoreBits,
     PresetStage::kSelect, QuantType::kQ6_K, "ffn_down (Falcon), use_more_bits layer"},
    {policy_detail::B(PresetId::kQ4_K_S), PresetFamily::kFfnDown, PresetCond::kNotFalcon,
     PresetCond::kFirstEighth, PresetStage::kSelect, QuantType::kQ5_K, "ffn_down, first n/8 layers"},
    {policy_detail::B(PresetId::kQ4_0), PresetFamily::kFfnDown, PresetCond::kHasImatrix,
     PresetCond::kFirstEighth, PresetStage::kSelect, QuantType::kQ4_1,
     "ffn_down, first n/8 layers, with imatrix"},
    {policy_detail::B(PresetId::kQ5_0), PresetFamily::kFfnDown, PresetCond::kHasImatrix,
     PresetCond::kFirstEighth, PresetStage::kSelect, QuantType::kQ5_1,
     "ffn_down, first n/8 layers, with imatrix"},
    // attn_output
    {policy_detail::B(PresetId::kQ2_K) | policy_detail::B(PresetId::kQ3_K_S) |
         policy_detail::B(PresetId::kQ3_K_M) | policy_detail::B(PresetId::kQ4_K_S) |
         policy_detail::B(PresetId::kQ4_K_M),
     PresetFamily::kAttnOutput, PresetCond::kNotFalcon, PresetCond::kExperts8, PresetStage::kSelect,
     QuantType::kQ5_K, "attn_output of an 8-expert model"},
    {policy_detail::B(PresetId::kQ2_K), PresetFamily::kAttnOutput, PresetCond::kNotFalcon,
     PresetCond::kNotExperts8, PresetStage::kSelect, QuantType::kQ3_K, "attn_output"},
    {policy_detail::B(PresetId::kQ3_K_M), PresetFamily::kAttnOutput, PresetCond::kNotFalcon,
     PresetCond::kNotExperts8, PresetStage::kSelect, QuantType::kQ4_K, "attn_output"},
    {policy_detail::B(PresetId::kQ3_K_L), PresetFamily::kAttnOutput, PresetCond::kNotFalcon,
     PresetCond::kNotExperts8, PresetStage::kSelect, QuantType::kQ5_K, "attn_output"},
    {policy_detail::B(PresetId::kQ3_K_L), PresetFamily::kAttnOutput, PresetCond::kFalcon, PresetCond::kAlways,
     PresetStage::kSelect, QuantType::kQ4_K, "attn_output (Falcon)"},
};

// The per-tensor inputs of the conditions.
struct PresetContext {
  int64_t row_length = 0;
  int index = 0;  // i: position among its family (see below)
  int count = 0;  // n
};

namespace policy_detail {

inline bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

inline bool PresetCondHolds(PresetCond cond, const PresetInfo& preset, const ResolvedFacts& facts,
                            const PresetContext& ctx, QuantType current) {
  switch (cond) {
    case PresetCond::kAlways: return true;
    case PresetCond::kGqaAtLeast4: return facts.n_gqa >= 4;
    case PresetCond::kIndexBelow2: return ctx.index < 2;
    case PresetCond::kIndexBelow4: return ctx.index < 4;
    case PresetCond::kUseMoreBits: return UseMoreBits(ctx.index, ctx.count);
    case PresetCond::kFirstEighth: return ctx.index < ctx.count / 8;
    case PresetCond::kFirstSixteenth: return ctx.index < ctx.count / 16;
    case PresetCond::kRowNotAligned: {
      const int64_t block = Traits(preset.default_type).block_elems;
      return ctx.row_length % block != 0;
    }
    case PresetCond::kFalcon: return facts.arch == "falcon";
    case PresetCond::kNotFalcon: return facts.arch != "falcon";
    case PresetCond::kExperts8: return facts.n_expert == 8;
    case PresetCond::kNotExperts8: return facts.n_expert != 8;
    case PresetCond::kModel70B: return facts.is_70b;
    case PresetCond::kCurrentQ3KorQ4K: return current == QuantType::kQ3_K || current == QuantType::kQ4_K;
    case PresetCond::kHasImatrix: return facts.has_imatrix;
  }
  return false;
}

inline std::string DescribeContext(PresetFamily family, const PresetContext& ctx) {
  if (family == PresetFamily::kAttnV || family == PresetFamily::kFfnDown) {
    return " (i=" + std::to_string(ctx.index) + ", n=" + std::to_string(ctx.count) + ")";
  }
  return "";
}

}  // namespace policy_detail

struct PresetDecision {
  bool keep = false;  // never quantized: the source type stays
  QuantType type = QuantType::kF16;
  std::string why;
};

// Applies a llama.cpp mix to a whole tensor list (positions depend on the
// whole list). Result i belongs to tensors[i]; the row-length fallback is not
// applied here (plan.h does it for every policy alike).
//
// How llama.cpp counts, reproduced here: it visits tensors sorted by block
// index (tensors outside blocks first), then by name. attn_v-like tensors use
// i = how many quantizable attn_v-like tensors came before, n = how many
// attn_v-like names the model has. ffn_down uses i = the same kind of running
// count and n = n_layer, except in MoE models (n_expert > 1), where i is the
// block index read from the name.
inline std::vector<PresetDecision> ApplyLlamaPreset(PresetId id, const std::vector<TensorDesc>& tensors,
                                                    const ResolvedFacts& facts) {
  const PresetInfo& preset = GetPresetInfo(id);
  const size_t n = tensors.size();
  std::vector<PresetDecision> out(n);

  bool tied = true;
  for (const TensorDesc& t : tensors) {
    if (t.name == "output.weight") tied = false;
  }

  std::vector<PresetFamily> family(n);
  std::vector<int> layer(n);
  int n_attn_v = 0;
  for (size_t i = 0; i < n; ++i) {
    family[i] = LlamaFamily(tensors[i].name, tied);
    layer[i] = policy_detail::ParseBlockIndex(tensors[i].name);
    if (family[i] == PresetFamily::kAttnV) ++n_attn_v;
  }

  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (layer[a] != layer[b]) return layer[a] < layer[b];
    return tensors[a].name < tensors[b].name;
  });

  int i_attn_v = 0;
  int i_ffn_down = 0;
  const std::string default_name = TypeName(preset.default_type);
  for (size_t k : order) {
    const TensorDesc& t = tensors[k];
    PresetDecision& d = out[k];
    if (IsNeverQuantized(t.name, t.dims)) {
      d.keep = true;
      d.type = t.source_type;
      d.why = "never quantized (1-D, norm, router or excluded name): keeps " +
              std::string(TypeName(t.source_type));
      continue;
    }
    PresetContext ctx;
    ctx.row_length = t.dims[0];
    if (family[k] == PresetFamily::kAttnV) {
      ctx.index = i_attn_v++;
      ctx.count = n_attn_v;
    } else if (family[k] == PresetFamily::kFfnDown) {
      ctx.count = facts.n_layer;
      if (facts.n_expert > 1) {
        if (layer[k] < 0 || layer[k] >= facts.n_layer) {
          BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                           "tensor '" + t.name + "': cannot read a block index in [0, " +
                               std::to_string(facts.n_layer) + ") from the name of an MoE ffn_down tensor");
        }
        ctx.index = layer[k];
        ++i_ffn_down;
      } else {
        ctx.index = i_ffn_down++;
      }
    }

    QuantType type = preset.default_type;
    std::string why = std::string(preset.name) + ": default " + default_name;
    bool selected = false;
    for (size_t r = 0; r < sizeof(kLlamaPresetRules) / sizeof(kLlamaPresetRules[0]); ++r) {
      const PresetRule& rule = kLlamaPresetRules[r];
      if ((rule.presets & PresetBit(id)) == 0 || rule.family != family[k]) continue;
      if (rule.stage == PresetStage::kSelect && selected) continue;
      if (!policy_detail::PresetCondHolds(rule.cond1, preset, facts, ctx, type) ||
          !policy_detail::PresetCondHolds(rule.cond2, preset, facts, ctx, type)) {
        continue;
      }
      const std::string step = std::string(rule.note) + policy_detail::DescribeContext(family[k], ctx) + " -> " +
                                TypeName(rule.type) + " [preset rule " + std::to_string(r) + "]";
      if (rule.stage == PresetStage::kSelect) {
        selected = true;
        why = std::string(preset.name) + ": " + step;
      } else {
        why += "; then " + step;
      }
      type = rule.type;
    }
    d.type = type;
    d.why = why;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Hybrid presets for mobile targets. They are plain rule sets (rules.h), so a
// plan names the rule that decided each tensor, and a user can start from one
// and edit it. docs/policies.md gives the rationale of each.

// "int8-core": int8 core / int4 bulk / f16 critical. Small matrices (<= 1Mi
// elements) stay F16: they cost little and are often sensitive. Embeddings,
// output and every attention projection get Q8_0; the FFN bulk gets Q4_K.
inline RuleSet Int8CoreRules() {
  RuleSet s;
  auto rule = [](const char* label, RoleMask roles, RuleAction action) {
    Rule r;
    r.label = label;
    r.roles = roles;
    r.action = action;
    return r;
  };
  Rule small = rule("f16-critical-small", 0, RuleAction::To(QuantType::kF16));
  small.max_elements = int64_t{1} << 20;
  s.rules.push_back(small);
  s.rules.push_back(rule("embeddings-q8", RoleBit(TensorRole::kTokenEmbd), RuleAction::To(QuantType::kQ8_0)));
  s.rules.push_back(rule("output-q8", RoleBit(TensorRole::kOutput), RuleAction::To(QuantType::kQ8_0)));
  s.rules.push_back(rule("attention-int8-core", ParseRoleMask("attn"), RuleAction::To(QuantType::kQ8_0)));
  s.rules.push_back(rule("ffn-int4-bulk", ParseRoleMask("ffn"), RuleAction::To(QuantType::kQ4_K)));
  s.default_action = RuleAction::To(QuantType::kQ8_0);
  return s;
}

// "aggressive": Q3_K bulk; Q4_K where the error hurts most per byte (attn_v /
// fused qkv, which GQA makes small, and ffn_down of the first and last
// blocks); Q6_K output.
inline RuleSet AggressiveRules() {
  RuleSet s;
  Rule out;
  out.label = "output-q6";
  out.roles = RoleBit(TensorRole::kOutput);
  out.action = RuleAction::To(QuantType::kQ6_K);
  s.rules.push_back(out);
  Rule v;
  v.label = "attn-v-q4";
  v.roles = RoleBit(TensorRole::kAttnV) | RoleBit(TensorRole::kAttnQkv) | RoleBit(TensorRole::kAttnKvB);
  v.action = RuleAction::To(QuantType::kQ4_K);
  s.rules.push_back(v);
  Rule first;
  first.label = "ffn-down-first-block-q4";
  first.roles = ParseRoleMask("ffn_down_all");
  first.layer_min = 0;
  first.layer_max = 0;
  first.action = RuleAction::To(QuantType::kQ4_K);
  s.rules.push_back(first);
  Rule last = first;
  last.label = "ffn-down-last-block-q4";
  last.layer_min = -1;
  last.layer_max = -1;
  s.rules.push_back(last);
  s.default_action = RuleAction::To(QuantType::kQ3_K);
  return s;
}

// "balanced": Q4_K bulk with the tensors named by `keep_globs` excluded (kept
// in their source type), Q6_K output and attn_v (small under GQA), Q5_K
// ffn_down (the most quantization-sensitive FFN matrix in llama.cpp's mixes).
inline RuleSet BalancedRules(const std::vector<std::string>& keep_globs = {}) {
  RuleSet s;
  for (const std::string& g : keep_globs) {
    Rule keep;
    keep.label = "excluded";
    keep.glob = g;
    keep.action = RuleAction::Keep();
    s.rules.push_back(keep);
  }
  Rule out;
  out.label = "output-q6";
  out.roles = RoleBit(TensorRole::kOutput);
  out.action = RuleAction::To(QuantType::kQ6_K);
  s.rules.push_back(out);
  Rule v = out;
  v.label = "attn-v-q6";
  v.roles = RoleBit(TensorRole::kAttnV) | RoleBit(TensorRole::kAttnQkv) | RoleBit(TensorRole::kAttnKvB);
  s.rules.push_back(v);
  Rule down;
  down.label = "ffn-down-q5";
  down.roles = ParseRoleMask("ffn_down_all");
  down.action = RuleAction::To(QuantType::kQ5_K);
  s.rules.push_back(down);
  s.default_action = RuleAction::To(QuantType::kQ4_K);
  return s;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_PRESETS_H_
