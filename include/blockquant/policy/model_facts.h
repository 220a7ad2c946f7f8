// The inputs every policy sees: the tensor list (name, shape, source type)
// and the model facts that llama.cpp's mixes depend on (layer count, expert
// count, grouped-query ratio, architecture). Facts come from GGUF metadata
// when the caller has it; whatever is unknown is inferred from tensor names
// and shapes, and the plan says which facts were inferred.
#ifndef BLOCKQUANT_POLICY_MODEL_FACTS_H_
#define BLOCKQUANT_POLICY_MODEL_FACTS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

struct TensorDesc {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the row length
  QuantType source_type = QuantType::kF16;
};

// From GGUF metadata (<arch>.block_count, <arch>.expert_count,
// <arch>.attention.head_count, <arch>.attention.head_count_kv); -1 = unknown.
struct ModelFacts {
  std::string arch;  // general.architecture; empty = unknown (treated as "llama")
  int n_layer = -1;
  int n_expert = -1;
  int n_head = -1;
  int n_head_kv = -1;
  bool has_imatrix = false;  // an importance matrix will be used (changes Q4_0/Q5_0 mixes)
};

struct ResolvedFacts {
  std::string arch;
  int n_layer = 0;
  int n_expert = 0;
  int n_gqa = 1;             // n_head / n_head_kv (integer division, as llama.cpp)
  bool heads_differ = false; // n_head != n_head_kv (the 70B test)
  bool is_70b = false;       // llama.cpp's LLM_TYPE_70B for the llama architecture
  bool has_imatrix = false;
  std::vector<std::string> notes;  // which facts were inferred, and how
};

namespace policy_detail {

inline int64_t ElementCount(const TensorDesc& t) {
  int64_t n = 1;
  for (int64_t d : t.dims) {
    if (d <= 0) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "tensor '" + t.name + "': dimension " + std::to_string(d) +
                                              " is not positive");
    }
    if (n > INT64_MAX / d) {
      BLOCKQUANT_THROW(ErrorCode::kLimit, "tensor '" + t.name + "': element count overflows 64 bits");
    }
    n *= d;
  }
  return n;
}

inline int64_t RowCount(const TensorDesc& t) { return ElementCount(t) / t.dims[0]; }

}  // namespace policy_detail

// Fills the unknown facts from the tensor list:
//  - n_layer: 1 + the largest N of "blk.N." names;
//  - n_expert: dims[2] of the stacked expert tensors (*_exps), else 0;
//  - n_gqa: attn_q rows / attn_k rows of the lowest layer that has both (the
//    ratio of head counts when q and k heads have the same width).
inline ResolvedFacts ResolveFacts(const std::vector<TensorDesc>& tensors, const ModelFacts& facts) {
  ResolvedFacts r;
  r.arch = facts.arch.empty() ? "llama" : facts.arch;
  if (facts.arch.empty()) r.notes.push_back("arch unknown: assumed llama");
  r.has_imatrix = facts.has_imatrix;

  int max_layer = -1;
  int64_t experts = 0;
  int q_layer = -1, k_layer = -1;
  int64_t q_rows = 0, k_rows = 0;
  for (const TensorDesc& t : tensors) {
    if (t.dims.empty()) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "tensor '" + t.name + "' has no dimensions");
    }
    const TensorClass c = ClassifyTensor(t.name);
    max_layer = std::max(max_layer, c.layer);
    const bool exps = c.role == TensorRole::kFfnUpExps || c.role == TensorRole::kFfnGateExps ||
                      c.role == TensorRole::kFfnDownExps;
    if (exps && t.dims.size() >= 3) experts = std::max(experts, t.dims[2]);
    if (c.role == TensorRole::kAttnQ && t.dims.size() >= 2 && (q_layer < 0 || c.layer < q_layer)) {
      q_layer = c.layer;
      q_rows = t.dims[1];
    }
    if (c.role == TensorRole::kAttnK && t.dims.size() >= 2 && (k_layer < 0 || c.layer < k_layer)) {
      k_layer = c.layer;
      k_rows = t.dims[1];
    }
  }

  if (facts.n_layer >= 0) {
    r.n_layer = facts.n_layer;
  } else {
    r.n_layer = max_layer + 1;
    r.notes.push_back("n_layer inferred from blk.N names: " + std::to_string(r.n_layer));
  }
  if (facts.n_expert >= 0) {
    r.n_expert = facts.n_expert;
  } else {
    r.n_expert = static_cast<int>(experts);
    if (experts > 0) r.notes.push_back("n_expert inferred from *_exps dims[2]: " + std::to_string(experts));
  }
  if (facts.n_head > 0 && facts.n_head_kv >= 0) {
    r.n_gqa = facts.n_head_kv == 0 ? 0 : facts.n_head / facts.n_head_kv;
    r.heads_differ = facts.n_head != facts.n_head_kv;
  } else if (q_rows > 0 && k_rows > 0 && q_layer == k_layer) {
    r.n_gqa = static_cast<int>(q_rows / k_rows);
    r.heads_differ = q_rows != k_rows;
    r.notes.push_back("n_gqa inferred from attn_q/attn_k rows: " + std::to_string(q_rows) + "/" +
                      std::to_string(k_rows) + " = " + std::to_string(r.n_gqa));
  } else {
    r.n_gqa = 1;
    r.notes.push_back("n_gqa unknown (no head counts, no attn_q/attn_k pair): assumed 1");
  }
  // llama.cpp labels a llama-architecture model with 80 layers and grouped
  // KV heads (and not 8 experts) as 70B; only that label matters here.
  r.is_70b = r.arch == "llama" && r.n_layer == 80 && r.heads_differ && r.n_expert != 8;
  return r;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_POLICY_MODEL_FACTS_H_
