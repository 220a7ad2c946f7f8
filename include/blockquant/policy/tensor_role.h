// What a GGUF tensor is, from its name: a role (attention q/k/v/o, FFN
// up/gate/down, experts, embeddings, output, norm, ...) and a layer index.
// Policies match on roles, so every naming convention is decoded here once.
#ifndef BLOCKQUANT_POLICY_TENSOR_ROLE_H_
#define BLOCKQUANT_POLICY_TENSOR_ROLE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blockquant/error.h"

namespace blockquant {
inline namespace v0 {

enum class TensorRole : uint8_t {
  kTokenEmbd,      // token_embd.weight
  kOutput,         // output.weight (the LM head)
  kAttnQ,          // blk.N.attn_q.weight
  kAttnK,          // blk.N.attn_k.weight
  kAttnV,          // blk.N.attn_v.weight
  kAttnQkv,        // blk.N.attn_qkv.weight (fused q/k/v)
  kAttnKvB,        // blk.N.attn_kv_b.weight (MLA)
  kAttnOutput,     // blk.N.attn_output.weight
  kFfnUp,          // blk.N.ffn_up.weight
  kFfnGate,        // blk.N.ffn_gate.weight
  kFfnDown,        // blk.N.ffn_down.weight
  kFfnUpExps,      // blk.N.ffn_up_exps.weight   (3-D: experts stacked in dims[2])
  kFfnGateExps,    // blk.N.ffn_gate_exps.weight
  kFfnDownExps,    // blk.N.ffn_down_exps.weight
  kFfnUpShexp,     // blk.N.ffn_up_shexp.weight  (shared expert)
  kFfnGateShexp,   // blk.N.ffn_gate_shexp.weight
  kFfnDownShexp,   // blk.N.ffn_down_shexp.weight
  kRouter,         // blk.N.ffn_gate_inp.weight (and ffn_gate_inp_shexp): expert gating
  kNorm,           // *_norm.weight
  kBias,           // *.bias
  kOther,          // anything else (rope factors, positional embeddings, ...)
};

inline constexpr TensorRole kAllTensorRoles[] = {
    TensorRole::kTokenEmbd,   TensorRole::kOutput,       TensorRole::kAttnQ,
    TensorRole::kAttnK,       TensorRole::kAttnV,        TensorRole::kAttnQkv,
    TensorRole::kAttnKvB,     TensorRole::kAttnOutput,   TensorRole::kFfnUp,
    TensorRole::kFfnGate,     TensorRole::kFfnDown,      TensorRole::kFfnUpExps,
    TensorRole::kFfnGateExps, TensorRole::kFfnDownExps,  TensorRole::kFfnUpShexp,
    TensorRole::kFfnGateShexp, TensorRole::kFfnDownShexp, TensorRole::kRouter,
    TensorRole::kNorm,        TensorRole::kBias,         TensorRole::kOther,
};

// The spelling used in rule files and plans: the GGUF name stem.
inline const char* RoleName(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbd: return "token_embd";
    case TensorRole::kOutput: return "output";
    case TensorRole::kAttnQ: return "attn_q";
    case TensorRole::kAttnK: return "attn_k";
    case TensorRole::kAttnV: return "attn_v";
    case TensorRole::kAttnQkv: return "attn_qkv";
    case TensorRole::kAttnKvB: return "attn_kv_b";
    case TensorRole::kAttnOutput: return "attn_output";
    case TensorRole::kFfnUp: return "ffn_up";
    case TensorRole::kFfnGate: return "ffn_gate";
    case TensorRole::kFfnDown: return "ffn_down";
    case TensorRole::kFfnUpExps: return "ffn_up_exps";
    case TensorRole::kFfnGateExps: return "ffn_gate_exps";
    case TensorRole::kFfnDownExps: return "ffn_down_exps";
    case TensorRole::kFfnUpShexp: return "ffn_up_shexp";
    case TensorRole::kFfnGateShexp: return "ffn_gate_shexp";
    case TensorRole::kFfnDownShexp: return "ffn_down_shexp";
    case TensorRole::kRouter: return "router";
    case TensorRole::kNorm: return "norm";
    case TensorRole::kBias: return "bias";
    case TensorRole::kOther: return "other";
  }
  return "other";
}

// Role groups accepted wherever a role is: a rule naming "ffn_down" means the
// dense FFN only; "ffn_down_all" also covers the expert and shared-expert
// forms. Bit i of the mask is TensorRole value i.
using RoleMask = uint32_t;

constexpr RoleMask RoleBit(TensorRole role) { return RoleMask{1} << static_cast<unsigned>(role); }

struct RoleGroup {
  const char* name;
  RoleMask mask;
};

inline constexpr RoleGroup kRoleGroups[] = {
    {"embeddings", RoleBit(TensorRole::kTokenEmbd)},
    {"attn_o", RoleBit(TensorRole::kAttnOutput)},
    {"attn", RoleBit(TensorRole::kAttnQ) | RoleBit(TensorRole::kAttnK) | RoleBit(TensorRole::kAttnV) |
                 RoleBit(TensorRole::kAttnQkv) | RoleBit(TensorRole::kAttnKvB) |
                 RoleBit(TensorRole::kAttnOutput)},
    {"ffn", RoleBit(TensorRole::kFfnUp) | RoleBit(TensorRole::kFfnGate) | RoleBit(TensorRole::kFfnDown) |
                RoleBit(TensorRole::kFfnUpExps) | RoleBit(TensorRole::kFfnGateExps) |
                RoleBit(TensorRole::kFfnDownExps) | RoleBit(TensorRole::kFfnUpShexp) |
                RoleBit(TensorRole::kFfnGateShexp) | RoleBit(TensorRole::kFfnDownShexp)},
    {"experts", RoleBit(TensorRole::kFfnUpExps) | RoleBit(TensorRole::kFfnGateExps) |
                    RoleBit(TensorRole::kFfnDownExps)},
    {"shared_experts", RoleBit(TensorRole::kFfnUpShexp) | RoleBit(TensorRole::kFfnGateShexp) |
                           RoleBit(TensorRole::kFfnDownShexp)},
    {"ffn_up_all", RoleBit(TensorRole::kFfnUp) | RoleBit(TensorRole::kFfnUpExps) |
                       RoleBit(TensorRole::kFfnUpShexp)},
    {"ffn_gate_all", RoleBit(TensorRole::kFfnGate) | RoleBit(TensorRole::kFfnGateExps) |
                         RoleBit(TensorRole::kFfnGateShexp)},
    {"ffn_down_all", RoleBit(TensorRole::kFfnDown) | RoleBit(TensorRole::kFfnDownExps) |
                         RoleBit(TensorRole::kFfnDownShexp)},
};

// A role or group name -> mask. Throws kInvalidArgument naming the word.
inline RoleMask ParseRoleMask(std::string_view word) {
  for (TensorRole role : kAllTensorRoles) {
    if (word == RoleName(role)) return RoleBit(role);
  }
  for (const RoleGroup& group : kRoleGroups) {
    if (word == group.name) return group.mask;
  }
  std::string known;
  for (TensorRole role : kAllTensorRoles) known += std::string(known.empty() ? "" : ", ") + RoleName(role);
  for (const RoleGroup& group : kRoleGroups) known += std::string(", ") + group.name;
  BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                   "unknown tensor role '" + std::string(word) + "' (known: " + known + ")");
}

struct TensorClass {
  TensorRole role = TensorRole::kOther;
  int layer = -1;  // N of "blk.N." ("enc.blk.N.", "dec.blk.N."), -1 outside the blocks
};

namespace policy_detail {

inline bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// N of a leading "blk.N." (decimal, no sign), or -1. Mirrors how llama.cpp
// reads the layer of a tensor from its name.
inline int ParseBlockIndex(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  size_t i = kPrefix.size();
  int64_t value = 0;
  size_t digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    value = value * 10 + (name[i] - '0');
    if (value > 1000000) return -1;  // not a layer index any model has
    ++i;
    ++digits;
  }
  if (digits == 0 || i >= name.size() || name[i] != '.') return -1;
  return static_cast<int>(value);
}

}  // namespace policy_detail

// Classifies by the name alone; shape matters only for what may be quantized
// (see IsNeverQuantized).
inline TensorClass ClassifyTensor(std::string_view name) {
  using policy_detail::Contains;
  using policy_detail::EndsWith;
  TensorClass c;
  // Encoder-decoder models (llama.cpp's t5 names) prefix their blocks with
  // "enc." or "dec."; the roles are the same as in a decoder's blocks.
  std::string_view blocks = name;
  if (blocks.substr(0, 4) == "enc." || blocks.substr(0, 4) == "dec.") blocks = blocks.substr(4);
  c.layer = policy_detail::ParseBlockIndex(blocks);
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
    c.role = TensorRole::kTokenEmbd;
  } else if (name == "output.weight") {
    c.role = TensorRole::kOutput;
  } else if (EndsWith(name, ".bias")) {
    c.role = TensorRole::kBias;
  } else if (Contains(name, "_norm.") || Contains(name, "norm.weight")) {
    c.role = TensorRole::kNorm;
  } else if (Contains(name, "ffn_gate_inp")) {
    c.role = TensorRole::kRouter;
  } else {
    // The stem between "blk.N." and ".weight" names the projection exactly.
    std::string_view stem = name;
    if (c.layer >= 0) stem = blocks.substr(blocks.find('.', 4) + 1);
    if (EndsWith(stem, ".weight")) stem = stem.substr(0, stem.size() - 7);
    struct StemRole {
      const char* stem;
      TensorRole role;
    };
    static constexpr StemRole kStems[] = {
        {"attn_q", TensorRole::kAttnQ},           {"attn_k", TensorRole::kAttnK},
        {"attn_v", TensorRole::kAttnV},           {"attn_qkv", TensorRole::kAttnQkv},
        {"attn_kv_b", TensorRole::kAttnKvB},      {"attn_output", TensorRole::kAttnOutput},
        {"ffn_up", TensorRole::kFfnUp},           {"ffn_gate", TensorRole::kFfnGate},
        {"ffn_down", TensorRole::kFfnDown},       {"ffn_up_exps", TensorRole::kFfnUpExps},
        {"ffn_gate_exps", TensorRole::kFfnGateExps}, {"ffn_down_exps", TensorRole::kFfnDownExps},
        {"ffn_up_shexp", TensorRole::kFfnUpShexp}, {"ffn_gate_shexp", TensorRole::kFfnGateShexp},
        {"ffn_down_shexp", TensorRole::kFfnDownShexp},
        // t5: the attention output is attn_o; cross-attention is attention.
        {"attn_o", TensorRole::kAttnOutput},      {"cross_attn_q", TensorRole::kAttnQ},
        {"cross_attn_k", TensorRole::kAttnK},     {"cross_attn_v", TensorRole::kAttnV},
        {"cross_attn_o", TensorRole::kAttnOutput},
    };
    for (const StemRole& s : kStems) {
      if (stem == s.stem) {
        c.role = s.role;
        break;
      }
    }
  }
  return c;
}

// ggml's notion of dimensionality: trailing dimensions of 1 do not count,
// so a [4096, 1] tensor is 1-D.
inline int EffectiveDims(const std::vector<int64_t>& dims) {
  int n = 1;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] != 1) n = static_cast<int>(i) + 1;
  }
  return n;
}

// Tensors that no policy quantizes: they stay in their source type. These are
// the exclusions of llama.cpp's quantizer (src/llama-quant.cpp,
// tensor_allows_quantization) as facts: fewer than 2 dimensions, a name not
// ending in "weight", norms, the MoE router, positional and token-type
// embeddings, and a list of small architecture-specific tensors.
inline bool IsNeverQuantized(std::string_view name, const std::vector<int64_t>& dims) {
  using policy_detail::Contains;
  using policy_detail::EndsWith;
  if (EffectiveDims(dims) < 2) return true;
  if (!EndsWith(name, "weight")) return true;
  if (Contains(name, "_norm.weight")) return true;
  if (Contains(name, "ffn_gate_inp.weight")) return true;
  if (name == "position_embd.weight" || name == "token_types.weight") return true;
  static constexpr const char* kSmallTensors[] = {
      "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d",
      "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
      "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
      "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
      "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
      ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
  };
  for (const char* part : kSmallTensors) {
    if (Contains(name, part)) return true;
  }
  return false;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_TENSOR_ROLE_H_
