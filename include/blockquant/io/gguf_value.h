// GGUF metadata values: the 13 value types of GGUF v3, arrays (of arrays)
// included, as one tagged struct.
#ifndef BLOCKQUANT_IO_GGUF_VALUE_H_
#define BLOCKQUANT_IO_GGUF_VALUE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace blockquant {
inline namespace v0 {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

inline const char* GgufTypeName(GgufType t) {
  static const char* const kNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  const uint32_t i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "unknown";
}

// Bytes of a scalar of type t (0 for string and array, whose size varies).
inline uint64_t GgufScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    default: return 0;
  }
}

struct GgufValue {
  GgufType type = GgufType::kU32;
  uint64_t u = 0;          // unsigned integers and bool
  int64_t i = 0;           // signed integers
  double f = 0.0;          // f32 and f64
  std::string s;           // string
  GgufType elem_type = GgufType::kU8;  // array element type
  std::vector<GgufValue> array;

  static GgufValue U32(uint32_t v) { GgufValue x; x.type = GgufType::kU32; x.u = v; return x; }
  static GgufValue U64(uint64_t v) { GgufValue x; x.type = GgufType::kU64; x.u = v; return x; }
  static GgufValue I32(int32_t v) { GgufValue x; x.type = GgufType::kI32; x.i = v; return x; }
  static GgufValue F32(float v) { GgufValue x; x.type = GgufType::kF32; x.f = v; return x; }
  static GgufValue Bool(bool v) { GgufValue x; x.type = GgufType::kBool; x.u = v ? 1 : 0; return x; }
  static GgufValue String(std::string v) { GgufValue x; x.type = GgufType::kString; x.s = std::move(v); return x; }
  static GgufValue Array(GgufType elem, std::vector<GgufValue> items) {
    GgufValue x;
    x.type = GgufType::kArray;
    x.elem_type = elem;
    x.array = std::move(items);
    return x;
  }
  bool IsInteger() const {
    return type == GgufType::kU8 || type == GgufType::kI8 || type == GgufType::kU16 || type == GgufType::kI16 ||
           type == GgufType::kU32 || type == GgufType::kI32 || type == GgufType::kU64 || type == GgufType::kI64;
  }
  bool IsSigned() const {
    return type == GgufType::kI8 || type == GgufType::kI16 || type == GgufType::kI32 || type == GgufType::kI64;
  }
  // The value as a signed 64-bit integer (integers and bool only).
  int64_t AsInt() const { return IsSigned() ? i : static_cast<int64_t>(u); }
};

using GgufKV = std::pair<std::string, GgufValue>;

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_GGUF_VALUE_H_
