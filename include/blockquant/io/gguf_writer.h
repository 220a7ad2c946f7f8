// Streaming GGUF v3 writer. Declare metadata and tensors first, then stream
// each tensor's bytes in declaration order; Commit() makes the file appear
// at its path complete, or not at all (AtomicFile).
#ifndef BLOCKQUANT_IO_GGUF_WRITER_H_
#define BLOCKQUANT_IO_GGUF_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/io/atomic_file.h"
#include "blockquant/io/gguf_value.h"

namespace blockquant {
inline namespace v0 {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path) : path_(std::move(path)) {}

  // Sets (or replaces in place) a metadata key.
  void Set(const std::string& key, GgufValue value) {
    RequireNotStarted();
    for (GgufKV& kv : metadata_) {
      if (kv.first == key) {
        kv.second = std::move(value);
        return;
      }
    }
    metadata_.emplace_back(key, std::move(value));
  }
  void Remove(const std::string& key) {
    RequireNotStarted();
    for (size_t i = 0; i < metadata_.size(); ++i) {
      if (metadata_[i].first == key) {
        metadata_.erase(metadata_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }
  const std::vector<GgufKV>& metadata() const { return metadata_; }

  // Declares a tensor (dims in GGUF order, dims[0] = row length); returns its index.
  size_t AddTensor(const std::string& name, QuantType type, const std::vector<int64_t>& dims) {
    RequireNotStarted();
    if (dims.empty() || dims.size() > 4) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "tensor '" + name + "' must have 1 to 4 dimensions");
    }
    if (!Traits(type).storable) {
      BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, std::string(TypeName(type)) + " cannot be stored in GGUF");
    }
    for (const Entry& e : tensors_) {
      if (e.name == name) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "duplicate tensor name '" + name + "'");
    }
    int64_t rows = 1;
    for (size_t d = 1; d < dims.size(); ++d) rows *= dims[d];
    Entry e{name, type, dims, static_cast<uint64_t>(RowBytes(type, dims[0]) * rows), 0};
    tensors_.push_back(e);
    return tensors_.size() - 1;
  }
  uint64_t TensorBytes(size_t index) const { return tensors_.at(index).n_bytes; }
  size_t tensor_count() const { return tensors_.size(); }

  // Opens the temporary file and writes header, metadata, tensor infos and
  // padding. Offsets follow general.alignment when set, else 32.
  void Begin() {
    RequireNotStarted();
    alignment_ = 32;
    for (const GgufKV& kv : metadata_) {
      if (kv.first == "general.alignment") {
        if (kv.second.type != GgufType::kU32 || kv.second.u == 0 || (kv.second.u & (kv.second.u - 1)) != 0) {
          BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "general.alignment must be a u32 power of two");
        }
        alignment_ = static_cast<uint32_t>(kv.second.u);
      }
    }
    uint64_t offset = 0;
    for (Entry& e : tensors_) {
      e.offset = offset;
      offset = Align(offset + e.n_bytes);
    }
    file_ = std::make_unique<AtomicFile>(path_);
    std::string h;
    h.append("GGUF", 4);
    Put<uint32_t>(h, 3);
    Put<uint64_t>(h, tensors_.size());
    Put<uint64_t>(h, metadata_.size());
    for (const GgufKV& kv : metadata_) {
      PutString(h, kv.first);
      Put<uint32_t>(h, static_cast<uint32_t>(kv.second.type));
      PutValue(h, kv.second);
    }
    for (const Entry& e : tensors_) {
      PutString(h, e.name);
      Put<uint32_t>(h, static_cast<uint32_t>(e.dims.size()));
      for (int64_t d : e.dims) Put<uint64_t>(h, static_cast<uint64_t>(d));
      Put<uint32_t>(h, static_cast<uint32_t>(e.type));
      Put<uint64_t>(h, e.offset);
    }
    h.append(static_cast<size_t>(Align(h.size()) - h.size()), '\0');
    file_->Write(h.data(), h.size());
  }

  // Appends bytes of tensor `index`; tensors must be written in declaration
  // order, each completely (possibly in several calls).
  void Write(size_t index, const void* data, uint64_t n) {
    if (!file_) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "GgufWriter::Write before Begin");
    if (index != current_ || index >= tensors_.size()) {
      BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "tensor data must be written in declaration order");
    }
    const Entry& e = tensors_[index];
    if (n > e.n_bytes - current_written_) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "too many bytes for tensor '" + e.name + "'");
    }
    file_->Write(data, n);
    current_written_ += n;
    if (current_written_ == e.n_bytes) {
      file_->WriteZeros(static_cast<size_t>(Align(e.n_bytes) - e.n_bytes));
      ++current_;
      current_written_ = 0;
    }
  }

  // Checks every tensor was written, then makes the file appear at its path.
  void Commit() {
    if (!file_) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "GgufWriter::Commit before Begin");
    if (current_ != tensors_.size()) {
      file_->Abandon();
      BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "tensor '" + tensors_[current_].name + "' was not written");
    }
    file_->Commit();
    file_.reset();
  }

  const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string name;
    QuantType type;
    std::vector<int64_t> dims;
    uint64_t n_bytes;
    uint64_t offset;
  };

  void RequireNotStarted() const {
    if (file_) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "GgufWriter: metadata and tensors are fixed after Begin");
  }
  uint64_t Align(uint64_t v) const { return (v + alignment_ - 1) / alignment_ * alignment_; }

  template <typename T>
  static void Put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void PutString(std::string& out, const std::string& s) {
    Put<uint64_t>(out, s.size());
    out.append(s);
  }
  static void PutValue(std::string& out, const GgufValue& v) {
    switch (v.type) {
      case GgufType::kU8: Put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
      case GgufType::kI8: Put<int8_t>(out, static_cast<int8_t>(v.i)); break;
      case GgufType::kU16: Put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
      case GgufType::kI16: Put<int16_t>(out, static_cast<int16_t>(v.i)); break;
      case GgufType::kU32: Put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
      case GgufType::kI32: Put<int32_t>(out, static_cast<int32_t>(v.i)); break;
      case GgufType::kU64: Put<uint64_t>(out, v.u); break;
      case GgufType::kI64: Put<int64_t>(out, v.i); break;
      case GgufType::kF32: Put<float>(out, static_cast<float>(v.f)); break;
      case GgufType::kF64: Put<double>(out, v.f); break;
      case GgufType::kBool: Put<uint8_t>(out, v.u ? 1 : 0); break;
      case GgufType::kString: PutString(out, v.s); break;
      case GgufType::kArray:
        Put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
        Put<uint64_t>(out, v.array.size());
        for (const GgufValue& e : v.array) {
          if (e.type != v.elem_type) {
            BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "array element of type " + std::string(GgufTypeName(e.type)) +
                                                              " in an array of " + GgufTypeName(v.elem_type));
          }
          PutValue(out, e);
        }
        break;
    }
  }

  std::string path_;
  std::vector<GgufKV> metadata_;
  std::vector<Entry> tensors_;
  uint32_t alignment_ = 32;
  std::unique_ptr<AtomicFile> file_;
  size_t current_ = 0;
  uint64_t current_written_ = 0;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_GGUF_WRITER_H_
