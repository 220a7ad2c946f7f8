// safetensors reader (mmap, zero-copy) and the Hugging Face -> GGUF tensor
// name mapping for llama-style checkpoints (llama, mistral, qwen2, gemma).
//
// Layout: u64 LE header length N, N bytes of JSON {"name": {"dtype": "F16",
// "shape": [rows, cols], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data area. Offsets are relative to the data area. Every offset is
// checked against the file and the shape; tensors must not overlap.
//
// Tensor data are taken as they are. llama.cpp's converter also permutes the
// rows of q/k projections for llama's rotary layout; an F16 GGUF made by that
// converter is the recommended source for llama checkpoints (docs/flow.md).
#ifndef BLOCKQUANT_IO_SAFETENSORS_H_
#define BLOCKQUANT_IO_SAFETENSORS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "blockquant/detail/json.h"
#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/io/mapped_file.h"

namespace blockquant {
inline namespace v0 {

struct SafetensorsTensor {
  std::string name;
  QuantType type = QuantType::kF32;  // F32, F16 or BF16
  std::vector<int64_t> shape;        // row-major (numpy) order: shape.back() is the row length
  const uint8_t* data = nullptr;
  int64_t n_bytes = 0;
};

class SafetensorsFile {
 public:
  static SafetensorsFile Open(const std::string& path, uint64_t max_header_bytes = uint64_t{100} << 20) {
    SafetensorsFile f;
    f.file_ = MappedFile(path);
    ByteReader r(f.file_.data(), f.file_.size(), "'" + path + "'");
    const uint64_t n = r.Read<uint64_t>("header length");
    if (n > max_header_bytes) r.Fail("header of " + std::to_string(n) + " bytes is over the limit");
    const uint8_t* text = r.Bytes(n, "JSON header");
    const uint64_t data_start = 8 + n, data_size = f.file_.size() - data_start;
    const detail::JsonValue root = detail::ParseJson(
        std::string_view(reinterpret_cast<const char*>(text), n), "'" + path + "' header");
    if (root.kind != detail::JsonValue::Kind::kObject) r.Fail("the header is not a JSON object");
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const auto& m : root.members) {
      if (m.first == "__metadata__") {
        for (const auto& kv : m.second.members) {
          if (kv.second.kind == detail::JsonValue::Kind::kString) f.metadata_.emplace_back(kv.first, kv.second.string);
        }
        continue;
      }
      const std::string where = "'" + path + "' tensor '" + m.first + "'";
      auto bad = [&](const std::string& why) { BLOCKQUANT_THROW(ErrorCode::kFormat, where + ": " + why); };
      const detail::JsonValue* dtype = m.second.Find("dtype");
      const detail::JsonValue* shape = m.second.Find("shape");
      const detail::JsonValue* offsets = m.second.Find("data_offsets");
      if (!dtype || dtype->kind != detail::JsonValue::Kind::kString || !shape ||
          shape->kind != detail::JsonValue::Kind::kArray || !offsets ||
          offsets->kind != detail::JsonValue::Kind::kArray || offsets->items.size() != 2) {
        bad("needs dtype, shape and data_offsets [begin, end]");
      }
      SafetensorsTensor t;
      t.name = m.first;
      int64_t elem = 0;
      if (dtype->string == "F32") { t.type = QuantType::kF32; elem = 4; }
      else if (dtype->string == "F16") { t.type = QuantType::kF16; elem = 2; }
      else if (dtype->string == "BF16") { t.type = QuantType::kBF16; elem = 2; }
      else BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, where + ": dtype " + dtype->string + " (F32, F16, BF16 only)");
      uint64_t count = 1;
      for (const detail::JsonValue& d : shape->items) {
        if (d.kind != detail::JsonValue::Kind::kNumber || d.number < 0 || d.number > 9.0e15 ||
            d.number != static_cast<double>(static_cast<int64_t>(d.number))) {
          bad("shape entries must be non-negative integers");
        }
        const uint64_t v = static_cast<uint64_t>(d.number);
        if (v != 0 && count > (uint64_t{1} << 60) / v) bad("shape overflows");
        count *= v;
        t.shape.push_back(static_cast<int64_t>(v));
      }
      uint64_t span[2];
      for (int k = 0; k < 2; ++k) {
        const detail::JsonValue& o = offsets->items[static_cast<size_t>(k)];
        if (o.kind != detail::JsonValue::Kind::kNumber || o.number < 0 || o.number > 9.0e15) bad("bad data_offsets");
        span[k] = static_cast<uint64_t>(o.number);
      }
      if (span[1] < span[0] || span[1] > data_size) bad("data_offsets lie outside the data area");
      if (span[1] - span[0] != count * static_cast<uint64_t>(elem)) bad("data_offsets do not match shape x dtype");
      t.data = f.file_.data() + data_start + span[0];
      t.n_bytes = static_cast<int64_t>(span[1] - span[0]);
      spans.emplace_back(span[0], span[1]);
      f.tensors_.push_back(std::move(t));
    }
    std::sort(spans.begin(), spans.end());
    for (size_t k = 1; k < spans.size(); ++k) {
      if (spans[k].first < spans[k - 1].second) {
        BLOCKQUANT_THROW(ErrorCode::kFormat, "'" + path + "': tensor data overlap at offset " +
                                                 std::to_string(spans[k].first));
      }
    }
    return f;
  }

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  const MappedFile& file() const { return file_; }

 private:
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// Hugging Face llama/mistral/qwen2/gemma names -> GGUF names; "" when the
// name has no GGUF counterpart blockquant knows.
inline std::string HfToGgufName(const std::string& hf) {
  static const std::pair<const char*, const char*> kFixed[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& f : kFixed) {
    if (hf == f.first) return f.second;
  }
  static const std::pair<const char*, const char*> kLayer[] = {
      {"self_attn.q_proj.weight", "attn_q.weight"},       {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},       {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},           {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},           {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},            {"mlp.down_proj.weight", "ffn_down.weight"},
      {"input_layernorm.weight", "attn_norm.weight"},     {"post_attention_layernorm.weight", "ffn_norm.weight"},
  };
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) != 0) return "";
  const size_t dot = hf.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return "";
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  if (layer.find_first_not_of("0123456789") != std::string::npos) return "";
  const std::string rest = hf.substr(dot + 1);
  for (const auto& l : kLayer) {
    if (rest == l.first) return "blk." + layer + "." + l.second;
  }
  return "";
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_SAFETENSORS_H_
