// GGUF v2/v3 reader over a memory map. Every count, length, offset and size
// is checked against the file before it is used: no allocation is sized by
// an unchecked field, and tensor data are zero-copy views inside the file.
#ifndef BLOCKQUANT_IO_GGUF_READER_H_
#define BLOCKQUANT_IO_GGUF_READER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/io/gguf_value.h"
#include "blockquant/io/mapped_file.h"

namespace blockquant {
inline namespace v0 {

struct GgufReadOptions {
  uint64_t max_metadata_bytes = uint64_t{1} << 30;  // header + metadata + tensor infos
  int max_array_depth = 4;                          // arrays of arrays of ...
  uint64_t max_tensor_count = uint64_t{1} << 24;
};

struct GgufTensor {
  std::string name;
  QuantType type = QuantType::kF32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the row length
  uint64_t offset = 0;        // relative to the data section
  int64_t n_elements = 0;
  int64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the map; valid while the GgufFile lives

  int64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  int64_t rows() const { return dims.empty() ? 1 : n_elements / dims[0]; }
};

class GgufFile {
 public:
  static GgufFile Open(const std::string& path, const GgufReadOptions& options = {}) {
    GgufFile f;
    f.file_ = MappedFile(path);
    f.Parse(options);
    return f;
  }

  const std::string& path() const { return file_.path(); }
  const MappedFile& file() const { return file_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::vector<GgufKV>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufValue* Find(const std::string& key) const {
    for (const GgufKV& kv : metadata_) {
      if (kv.first == key) return &kv.second;
    }
    return nullptr;
  }
  const GgufTensor* FindTensor(const std::string& name) const {
    for (const GgufTensor& t : tensors_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  std::string GetString(const std::string& key, const std::string& fallback = "") const {
    const GgufValue* v = Find(key);
    return v && v->type == GgufType::kString ? v->s : fallback;
  }
  int64_t GetInt(const std::string& key, int64_t fallback) const {
    const GgufValue* v = Find(key);
    return v && v->IsInteger() ? v->AsInt() : fallback;
  }

 private:
  std::string ReadString(ByteReader& r, const char* what) {
    const uint64_t len = r.Read<uint64_t>(what);
    r.Need(len, what);  // checked before allocating
    const uint8_t* p = r.Bytes(len, what);
    return std::string(reinterpret_cast<const char*>(p), len);
  }

  GgufValue ReadValue(ByteReader& r, GgufType type, int depth, const GgufReadOptions& o) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case GgufType::kU8: v.u = r.Read<uint8_t>("u8"); break;
      case GgufType::kI8: v.i = r.Read<int8_t>("i8"); break;
      case GgufType::kU16: v.u = r.Read<uint16_t>("u16"); break;
      case GgufType::kI16: v.i = r.Read<int16_t>("i16"); break;
      case GgufType::kU32: v.u = r.Read<uint32_t>("u32"); break;
      case GgufType::kI32: v.i = r.Read<int32_t>("i32"); break;
      case GgufType::kU64: v.u = r.Read<uint64_t>("u64"); break;
      case GgufType::kI64: v.i = r.Read<int64_t>("i64"); break;
      case GgufType::kF32: v.f = r.Read<float>("f32"); break;
      case GgufType::kF64: v.f = r.Read<double>("f64"); break;
      case GgufType::kBool: {
        const uint8_t b = r.Read<uint8_t>("bool");
        if (b > 1) r.Fail("bool value " + std::to_string(b) + " is neither 0 nor 1");
        v.u = b;
        break;
      }
      case GgufType::kString: v.s = ReadString(r, "string"); break;
      case GgufType::kArray: {
        if (depth >= o.max_array_depth) r.Fail("arrays nested deeper than " + std::to_string(o.max_array_depth));
        const uint32_t et = r.Read<uint32_t>("array type");
        if (et > 12) r.Fail("unknown array element type " + std::to_string(et));
        v.elem_type = static_cast<GgufType>(et);
        const uint64_t count = r.Read<uint64_t>("array count");
        // Each element takes at least 1 byte (8 for strings and arrays):
        // a count the rest of the file cannot hold is rejected before reserving.
        const uint64_t min_elem = GgufScalarSize(v.elem_type) ? GgufScalarSize(v.elem_type) : 8;
        if (count > r.remaining() / min_elem) {
          if (r.capped()) r.Need(r.remaining() + 1, "array elements");  // kLimit, naming the cap
          r.Fail("array of " + std::to_string(count) + " elements cannot fit in the " +
                 std::to_string(r.remaining()) + " bytes left");
        }
        v.array.reserve(count);
        for (uint64_t k = 0; k < count; ++k) v.array.push_back(ReadValue(r, v.elem_type, depth + 1, o));
        break;
      }
      default: r.Fail("unknown value type " + std::to_string(static_cast<uint32_t>(type)));
    }
    return v;
  }

  void Parse(const GgufReadOptions& o) {
    const uint64_t parse_limit = std::min<uint64_t>(file_.size(), o.max_metadata_bytes);
    ByteReader r(file_.data(), parse_limit, "'" + file_.path() + "'",
                 parse_limit < file_.size()
                     ? "the header size limit (GgufReadOptions::max_metadata_bytes = " +
                           std::to_string(o.max_metadata_bytes) + ")"
                     : std::string());
    const uint8_t* magic = r.Bytes(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) r.Fail("not a GGUF file (bad magic)");
    version_ = r.Read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) r.Fail("unsupported GGUF version " + std::to_string(version_));
    const uint64_t n_tensors = r.Read<uint64_t>("tensor count");
    const uint64_t n_kv = r.Read<uint64_t>("metadata count");
    // Minimum sizes: a tensor info is >= 24 bytes, a key/value >= 13.
    if (n_tensors > o.max_tensor_count) {
      BLOCKQUANT_THROW(ErrorCode::kLimit, "'" + file_.path() + "': tensor count " + std::to_string(n_tensors) +
                                              " is over GgufReadOptions::max_tensor_count = " +
                                              std::to_string(o.max_tensor_count));
    }
    const uint64_t rest_of_file = file_.size() - r.offset();  // not the cap: these are facts of the file
    if (n_tensors > rest_of_file / 24) {
      r.Fail("tensor count " + std::to_string(n_tensors) + " is impossible for this file");
    }
    if (n_kv > rest_of_file / 13) r.Fail("metadata count " + std::to_string(n_kv) + " is impossible for this file");

    std::unordered_set<std::string> keys;
    metadata_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
      std::string key = ReadString(r, "metadata key");
      if (!keys.insert(key).second) r.Fail("duplicate metadata key '" + key + "'");
      const uint32_t t = r.Read<uint32_t>("value type");
      if (t > 12) r.Fail("metadata '" + key + "' has unknown value type " + std::to_string(t));
      metadata_.emplace_back(std::move(key), ReadValue(r, static_cast<GgufType>(t), 0, o));
    }
    alignment_ = 32;
    if (const GgufValue* a = Find("general.alignment")) {
      if (a->type != GgufType::kU32 || a->u == 0 || (a->u & (a->u - 1)) != 0) {
        r.Fail("general.alignment must be a u32 power of two");
      }
      alignment_ = static_cast<uint32_t>(a->u);
    }

    std::unordered_set<std::string> names;
    tensors_.reserve(n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
      GgufTensor t;
      t.name = ReadString(r, "tensor name");
      if (!names.insert(t.name).second) r.Fail("duplicate tensor name '" + t.name + "'");
      const uint32_t n_dims = r.Read<uint32_t>("n_dims");
      if (n_dims == 0 || n_dims > 4) r.Fail("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions");
      uint64_t n = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t dim = r.Read<uint64_t>("dimension");
        if (dim == 0 || dim > (uint64_t{1} << 62) || n > (uint64_t{1} << 62) / dim) {
          r.Fail("tensor '" + t.name + "' has an impossible shape (dimension " + std::to_string(dim) + ")");
        }
        n *= dim;
        t.dims.push_back(static_cast<int64_t>(dim));
      }
      t.n_elements = static_cast<int64_t>(n);
      const uint32_t type_id = r.Read<uint32_t>("tensor type");
      const TypeTraits* traits = FindTraits(type_id);
      if (traits == nullptr || !traits->storable) {
        BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "'" + file_.path() + "': tensor '" + t.name +
                                                          "' has unsupported type id " + std::to_string(type_id));
      }
      t.type = traits->type;
      if (t.dims[0] % traits->block_elems != 0) {
        r.Fail("tensor '" + t.name + "' row length " + std::to_string(t.dims[0]) + " is not a multiple of " +
               std::to_string(traits->block_elems) + " for " + traits->name);
      }
      const uint64_t blocks = n / static_cast<uint64_t>(traits->block_elems);
      if (blocks > (uint64_t{1} << 62) / static_cast<uint64_t>(traits->block_bytes)) {
        r.Fail("tensor '" + t.name + "' byte size overflows");
      }
      t.n_bytes = static_cast<int64_t>(blocks * static_cast<uint64_t>(traits->block_bytes));
      t.offset = r.Read<uint64_t>("tensor offset");
      if (t.offset % alignment_ != 0) {
        r.Fail("tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " +
               std::to_string(alignment_));
      }
      tensors_.push_back(std::move(t));
    }
    data_offset_ = (r.offset() + alignment_ - 1) / alignment_ * alignment_;
    if (data_offset_ > file_.size() && !tensors_.empty()) {
      BLOCKQUANT_THROW(ErrorCode::kFormat, "'" + file_.path() + "': truncated before the data section");
    }
    const uint64_t data_size = file_.size() > data_offset_ ? file_.size() - data_offset_ : 0;
    std::vector<std::pair<uint64_t, size_t>> order;
    for (size_t k = 0; k < tensors_.size(); ++k) {
      GgufTensor& t = tensors_[k];
      const uint64_t nb = static_cast<uint64_t>(t.n_bytes);
      if (t.offset > data_size || nb > data_size - t.offset) {
        BLOCKQUANT_THROW(ErrorCode::kFormat, "'" + file_.path() + "': tensor '" + t.name + "' data [" +
                                                 std::to_string(t.offset) + ", +" + std::to_string(nb) +
                                                 ") lies past the end of the file");
      }
      t.data = file_.data() + data_offset_ + t.offset;
      order.emplace_back(t.offset, k);
    }
    std::sort(order.begin(), order.end());
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensor& prev = tensors_[order[k - 1].second];
      if (prev.offset + static_cast<uint64_t>(prev.n_bytes) > order[k].first) {
        BLOCKQUANT_THROW(ErrorCode::kFormat, "'" + file_.path() + "': tensors '" + prev.name + "' and '" +
                                                 tensors_[order[k].second].name + "' overlap");
      }
    }
  }

  MappedFile file_;
  uint32_t version_ = 0, alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> metadata_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_GGUF_READER_H_
