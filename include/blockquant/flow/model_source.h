// What the flow reads: a GGUF file, or a safetensors checkpoint whose
// Hugging Face names are mapped to GGUF names (io/safetensors.h), seen
// through one interface of GGUF-style tensor views and metadata.
#ifndef BLOCKQUANT_FLOW_MODEL_SOURCE_H_
#define BLOCKQUANT_FLOW_MODEL_SOURCE_H_

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "blockquant/io/gguf_reader.h"
#include "blockquant/io/safetensors.h"
#include "blockquant/policy/tensor_role.h"

namespace blockquant {
inline namespace v0 {

class ModelSource {
 public:
  // By extension: *.safetensors, anything else is read as GGUF.
  static ModelSource Open(const std::string& path) {
    ModelSource s;
    const std::string ext = ".safetensors";
    if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) {
      s.st_ = std::make_shared<SafetensorsFile>(SafetensorsFile::Open(path));
      int n_layer = 0;
      for (const SafetensorsTensor& t : s.st_->tensors()) {
        GgufTensor g;
        const std::string mapped = HfToGgufName(t.name);
        g.name = mapped.empty() ? t.name : mapped;  // unmapped names keep their HF spelling
        g.type = t.type;
        g.dims.assign(t.shape.rbegin(), t.shape.rend());  // GGUF order: row length first
        if (g.dims.empty()) g.dims.push_back(1);
        g.n_elements = 1;
        for (int64_t d : g.dims) g.n_elements *= d;
        g.n_bytes = t.n_bytes;
        g.data = t.data;
        n_layer = std::max(n_layer, ClassifyTensor(g.name).layer + 1);
        s.tensors_.push_back(std::move(g));
      }
      std::sort(s.tensors_.begin(), s.tensors_.end(),
                [](const GgufTensor& a, const GgufTensor& b) { return a.data < b.data; });  // file order
      const size_t slash = path.rfind('/');
      std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
      name = name.substr(0, name.size() - ext.size());
      s.metadata_ = {{"general.architecture", GgufValue::String("llama")},
                     {"general.name", GgufValue::String(name)},
                     {"llama.block_count", GgufValue::U32(static_cast<uint32_t>(n_layer))}};
      s.file_ = &s.st_->file();
    } else {
      s.gguf_ = std::make_shared<GgufFile>(GgufFile::Open(path));
      s.tensors_ = s.gguf_->tensors();
      s.metadata_ = s.gguf_->metadata();
      s.file_ = &s.gguf_->file();
    }
    return s;
  }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const std::vector<GgufKV>& metadata() const { return metadata_; }
  const MappedFile& file() const { return *file_; }

  const GgufTensor* FindTensor(const std::string& name) const {
    for (const GgufTensor& t : tensors_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  std::string GetString(const std::string& key, const std::string& fallback = "") const {
    for (const GgufKV& kv : metadata_) {
      if (kv.first == key && kv.second.type == GgufType::kString) return kv.second.s;
    }
    return fallback;
  }
  int64_t GetInt(const std::string& key, int64_t fallback) const {
    for (const GgufKV& kv : metadata_) {
      if (kv.first == key && kv.second.IsInteger()) return kv.second.AsInt();
    }
    return fallback;
  }

 private:
  std::shared_ptr<GgufFile> gguf_;
  std::shared_ptr<SafetensorsFile> st_;
  std::vector<GgufTensor> tensors_;
  std::vector<GgufKV> metadata_;
  const MappedFile* file_ = nullptr;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FLOW_MODEL_SOURCE_H_
