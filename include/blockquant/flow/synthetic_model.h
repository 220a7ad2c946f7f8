// The embedded default model: a llama-shaped F16 GGUF with the metadata
// llama.cpp expects and synthetic weights with realistic statistics
// (synthetic_weights.h). The default config has ~125M parameters.
#ifndef BLOCKQUANT_FLOW_SYNTHETIC_MODEL_H_
#define BLOCKQUANT_FLOW_SYNTHETIC_MODEL_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "blockquant/format/fp16.h"
#include "blockquant/flow/synthetic_weights.h"
#include "blockquant/io/gguf_writer.h"
#include "blockquant/parallel.h"

namespace blockquant {
inline namespace v0 {

struct SyntheticModelConfig {
  int n_layer = 12;
  int n_embd = 768;
  int n_ff = 2048;
  int n_head = 12;
  int n_head_kv = 4;
  int n_vocab = 32000;
  uint64_t seed = 1;
  std::string name = "blockquant-synthetic-125m";
};

struct SyntheticTensor {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order
  bool is_norm;               // 1-D, stored as F32
};

// Tensors in llama.cpp's order.
inline std::vector<SyntheticTensor> SyntheticTensors(const SyntheticModelConfig& c) {
  const int64_t e = c.n_embd, kv = static_cast<int64_t>(c.n_embd) / c.n_head * c.n_head_kv;
  std::vector<SyntheticTensor> t = {{"token_embd.weight", {e, c.n_vocab}, false},
                                    {"output_norm.weight", {e}, true},
                                    {"output.weight", {e, c.n_vocab}, false}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", {e}, true});
    t.push_back({p + "attn_q.weight", {e, e}, false});
    t.push_back({p + "attn_k.weight", {e, kv}, false});
    t.push_back({p + "attn_v.weight", {e, kv}, false});
    t.push_back({p + "attn_output.weight", {e, e}, false});
    t.push_back({p + "ffn_norm.weight", {e}, true});
    t.push_back({p + "ffn_gate.weight", {e, c.n_ff}, false});
    t.push_back({p + "ffn_up.weight", {e, c.n_ff}, false});
    t.push_back({p + "ffn_down.weight", {static_cast<int64_t>(c.n_ff), e}, false});
  }
  return t;
}

// Writes the model to path (atomically). Returns the parameter count.
inline int64_t WriteSyntheticModel(const std::string& path, const SyntheticModelConfig& c,
                                   const ParallelFor& parallel_for = SerialFor()) {
  GgufWriter w(path);
  const std::string a = "llama.";
  w.Set("general.architecture", GgufValue::String("llama"));
  w.Set("general.name", GgufValue::String(c.name));
  w.Set("general.file_type", GgufValue::U32(1));  // MOSTLY_F16
  w.Set(a + "vocab_size", GgufValue::U32(static_cast<uint32_t>(c.n_vocab)));
  w.Set(a + "context_length", GgufValue::U32(2048));
  w.Set(a + "embedding_length", GgufValue::U32(static_cast<uint32_t>(c.n_embd)));
  w.Set(a + "block_count", GgufValue::U32(static_cast<uint32_t>(c.n_layer)));
  w.Set(a + "feed_forward_length", GgufValue::U32(static_cast<uint32_t>(c.n_ff)));
  w.Set(a + "rope.dimension_count", GgufValue::U32(static_cast<uint32_t>(c.n_embd / c.n_head)));
  w.Set(a + "rope.freq_base", GgufValue::F32(10000.0f));
  w.Set(a + "attention.head_count", GgufValue::U32(static_cast<uint32_t>(c.n_head)));
  w.Set(a + "attention.head_count_kv", GgufValue::U32(static_cast<uint32_t>(c.n_head_kv)));
  w.Set(a + "attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5f));
  // A placeholder vocabulary in llama's SentencePiece layout: 3 control
  // tokens, 256 byte tokens, then plain pieces.
  std::vector<GgufValue> tokens, scores, types;
  for (int i = 0; i < c.n_vocab; ++i) {
    std::string tok;
    int type = 1;  // normal
    if (i == 0) { tok = "<unk>"; type = 2; }
    else if (i == 1) { tok = "<s>"; type = 3; }
    else if (i == 2) { tok = "</s>"; type = 3; }
    else if (i < 259) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", i - 3);
      tok = buf;
      type = 6;  // byte
    } else {
      tok = "tok" + std::to_string(i);
    }
    tokens.push_back(GgufValue::String(tok));
    scores.push_back(GgufValue::F32(-static_cast<float>(i)));
    types.push_back(GgufValue::I32(type));
  }
  w.Set("tokenizer.ggml.model", GgufValue::String("llama"));
  w.Set("tokenizer.ggml.tokens", GgufValue::Array(GgufType::kString, std::move(tokens)));
  w.Set("tokenizer.ggml.scores", GgufValue::Array(GgufType::kF32, std::move(scores)));
  w.Set("tokenizer.ggml.token_type", GgufValue::Array(GgufType::kI32, std::move(types)));
  w.Set("tokenizer.ggml.bos_token_id", GgufValue::U32(1));
  w.Set("tokenizer.ggml.eos_token_id", GgufValue::U32(2));
  w.Set("tokenizer.ggml.unknown_token_id", GgufValue::U32(0));

  const std::vector<SyntheticTensor> tensors = SyntheticTensors(c);
  for (const SyntheticTensor& t : tensors) {
    w.AddTensor(t.name, t.is_norm ? QuantType::kF32 : QuantType::kF16, t.dims);
  }
  w.Begin();
  const SyntheticWeightStats stats;
  int64_t params = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SyntheticTensor& t = tensors[i];
    const int64_t cols = t.dims[0], rows = t.dims.size() > 1 ? t.dims[1] : 1;
    params += cols * rows;
    if (t.is_norm) {  // RMSNorm gains near 1
      std::vector<float> g(static_cast<size_t>(cols));
      SplitMix64 rng(c.seed * 7919 + i);
      for (float& v : g) v = static_cast<float>(1.0 + 0.1 * rng.Normal());
      w.Write(i, g.data(), static_cast<uint64_t>(cols) * 4);
      continue;
    }
    const uint64_t tensor_seed = c.seed * 1000003ull + i;
    const std::vector<float> gains = SyntheticColumnGains(tensor_seed, cols, stats);
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / cols);
    std::vector<uint16_t> out(static_cast<size_t>(chunk * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      parallel_for(static_cast<size_t>(nr), [&](size_t begin, size_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (size_t r = begin; r < end; ++r) {
          FillSyntheticRow(tensor_seed, r0 + static_cast<int64_t>(r), gains, stats, row.data());
          for (int64_t k = 0; k < cols; ++k) out[r * static_cast<size_t>(cols) + static_cast<size_t>(k)] = F32ToF16(row[static_cast<size_t>(k)]);
        }
      });
      w.Write(i, out.data(), static_cast<uint64_t>(nr * cols) * 2);
    }
  }
  w.Commit();
  return params;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FLOW_SYNTHETIC_MODEL_H_
