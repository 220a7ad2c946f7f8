// One constexpr table of per-type facts, indexed by lookup on the GGUF id.
#ifndef BLOCKQUANT_FORMAT_TYPE_TRAITS_H_
#define BLOCKQUANT_FORMAT_TYPE_TRAITS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "blockquant/error.h"
#include "blockquant/format/quant_type.h"

namespace blockquant {
inline namespace v0 {

struct TypeTraits {
  QuantType type;
  const char* name;       // GGUF/ggml spelling, e.g. "Q4_K"
  int64_t block_elems;    // elements per block (1 for plain floats)
  int64_t block_bytes;    // bytes per block
  bool is_quantized;      // block-quantized (not F32/F16/BF16)
  bool storable;          // may appear in a GGUF file (Q8_K may not)
  QuantType vec_dot_type; // the activation type llama.cpp pairs it with

  constexpr double BitsPerWeight() const {
    return 8.0 * static_cast<double>(block_bytes) / static_cast<double>(block_elems);
  }
};

inline constexpr TypeTraits kTypeTraits[] = {
    {QuantType::kF32, "F32", 1, 4, false, true, QuantType::kF32},
    {QuantType::kF16, "F16", 1, 2, false, true, QuantType::kF16},
    {QuantType::kBF16, "BF16", 1, 2, false, true, QuantType::kBF16},
    {QuantType::kQ4_0, "Q4_0", 32, 18, true, true, QuantType::kQ8_0},
    {QuantType::kQ4_1, "Q4_1", 32, 20, true, true, QuantType::kQ8_0},
    {QuantType::kQ5_0, "Q5_0", 32, 22, true, true, QuantType::kQ8_0},
    {QuantType::kQ5_1, "Q5_1", 32, 24, true, true, QuantType::kQ8_0},
    {QuantType::kQ8_0, "Q8_0", 32, 34, true, true, QuantType::kQ8_0},
    {QuantType::kQ2_K, "Q2_K", 256, 84, true, true, QuantType::kQ8_K},
    {QuantType::kQ3_K, "Q3_K", 256, 110, true, true, QuantType::kQ8_K},
    {QuantType::kQ4_K, "Q4_K", 256, 144, true, true, QuantType::kQ8_K},
    {QuantType::kQ5_K, "Q5_K", 256, 176, true, true, QuantType::kQ8_K},
    {QuantType::kQ6_K, "Q6_K", 256, 210, true, true, QuantType::kQ8_K},
    {QuantType::kQ8_K, "Q8_K", 256, 292, true, false, QuantType::kQ8_K},
};

// nullptr when the id is not one blockquant knows.
constexpr const TypeTraits* FindTraits(uint32_t id) {
  for (const TypeTraits& t : kTypeTraits) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

inline const TypeTraits& Traits(QuantType type) {
  const TypeTraits* t = FindTraits(static_cast<uint32_t>(type));
  if (t == nullptr) {
    BLOCKQUANT_THROW(ErrorCode::kUnsupportedType,
                     "unknown type id " + std::to_string(static_cast<uint32_t>(type)));
  }
  return *t;
}

inline const char* TypeName(QuantType type) { return Traits(type).name; }

// Case-insensitive: "q4_k", "Q4_K" and "q4_K" all name Q4_K; nullptr when
// no type has that name.
inline const TypeTraits* FindTraitsByName(std::string_view name) {
  auto upper = [](char c) { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; };
  for (const TypeTraits& t : kTypeTraits) {
    const std::string_view candidate(t.name);
    if (candidate.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) same = upper(name[i]) == candidate[i];
    if (same) return &t;
  }
  return nullptr;
}

inline QuantType ParseQuantType(std::string_view name) {
  if (const TypeTraits* t = FindTraitsByName(name)) return t->type;
  BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "unknown type name '" + std::string(name) + "'");
}

// Bytes of one row of n elements; the block must divide n.
inline int64_t RowBytes(QuantType type, int64_t n) {
  const TypeTraits& t = Traits(type);
  if (n < 0 || n % t.block_elems != 0) {
    BLOCKQUANT_THROW(ErrorCode::kShape, std::string(t.name) + " needs a row length that is a multiple of " +
                                            std::to_string(t.block_elems) + ", got " + std::to_string(n));
  }
  return n / t.block_elems * t.block_bytes;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FORMAT_TYPE_TRAITS_H_
