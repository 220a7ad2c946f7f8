// Tensor lists shaped like real GGUF models, for policy tests. Shapes are
// GGUF order (dims[0] = row length); weights F16, 1-D tensors F32, as
// llama.cpp's converter writes them.
#ifndef BLOCKQUANT_TESTS_POLICY_MODEL_SHAPES_H_
#define BLOCKQUANT_TESTS_POLICY_MODEL_SHAPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "blockquant/policy/model_facts.h"

namespace bq_test {

using blockquant::QuantType;
using blockquant::TensorDesc;

struct LlamaShape {
  int n_layer = 32;
  int64_t n_embd = 4096;
  int64_t n_ff = 14336;
  int64_t n_head = 32;
  int64_t n_head_kv = 8;
  int64_t head_dim = 128;
  int64_t n_vocab = 128256;
  bool tied = false;       // no output.weight
  bool rope_freqs = true;  // llama-3.1 style rope_freqs.weight (1-D)
  int n_expert = 0;        // > 0: MoE with stacked *_exps tensors and a router
  bool shared_expert = false;
};

inline std::string Blk(int i, const char* stem) { return "blk." + std::to_string(i) + "." + stem; }

inline std::vector<TensorDesc> MakeLlama(const LlamaShape& s) {
  std::vector<TensorDesc> t;
  const QuantType f16 = QuantType::kF16, f32 = QuantType::kF32;
  t.push_back({"token_embd.weight", {s.n_embd, s.n_vocab}, f16});
  if (s.rope_freqs) t.push_back({"rope_freqs.weight", {s.head_dim / 2}, f32});
  for (int i = 0; i < s.n_layer; ++i) {
    t.push_back({Blk(i, "attn_norm.weight"), {s.n_embd}, f32});
    t.push_back({Blk(i, "attn_q.weight"), {s.n_embd, s.n_head * s.head_dim}, f16});
    t.push_back({Blk(i, "attn_k.weight"), {s.n_embd, s.n_head_kv * s.head_dim}, f16});
    t.push_back({Blk(i, "attn_v.weight"), {s.n_embd, s.n_head_kv * s.head_dim}, f16});
    t.push_back({Blk(i, "attn_output.weight"), {s.n_head * s.head_dim, s.n_embd}, f16});
    t.push_back({Blk(i, "ffn_norm.weight"), {s.n_embd}, f32});
    if (s.n_expert > 0) {
      t.push_back({Blk(i, "ffn_gate_inp.weight"), {s.n_embd, s.n_expert}, f32});
      t.push_back({Blk(i, "ffn_gate_exps.weight"), {s.n_embd, s.n_ff, s.n_expert}, f16});
      t.push_back({Blk(i, "ffn_up_exps.weight"), {s.n_embd, s.n_ff, s.n_expert}, f16});
      t.push_back({Blk(i, "ffn_down_exps.weight"), {s.n_ff, s.n_embd, s.n_expert}, f16});
      if (s.shared_expert) {
        t.push_back({Blk(i, "ffn_gate_inp_shexp.weight"), {s.n_embd}, f32});
        t.push_back({Blk(i, "ffn_gate_shexp.weight"), {s.n_embd, s.n_ff}, f16});
        t.push_back({Blk(i, "ffn_up_shexp.weight"), {s.n_embd, s.n_ff}, f16});
        t.push_back({Blk(i, "ffn_down_shexp.weight"), {s.n_ff, s.n_embd}, f16});
      }
    } else {
      t.push_back({Blk(i, "ffn_gate.weight"), {s.n_embd, s.n_ff}, f16});
      t.push_back({Blk(i, "ffn_up.weight"), {s.n_embd, s.n_ff}, f16});
      t.push_back({Blk(i, "ffn_down.weight"), {s.n_ff, s.n_embd}, f16});
    }
  }
  t.push_back({"output_norm.weight", {s.n_embd}, f32});
  if (!s.tied) t.push_back({"output.weight", {s.n_embd, s.n_vocab}, f16});
  return t;
}

// The layers llama.cpp's use_more_bits(i, 32) selects.
inline bool MoreBits32(int i) { return i < 4 || i >= 28 || (i - 4) % 3 == 2; }

}  // namespace bq_test

#endif  // BLOCKQUANT_TESTS_POLICY_MODEL_SHAPES_H_
