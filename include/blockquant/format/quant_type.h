// Tensor element types. Values are GGUF's ggml_type ids, so a QuantType is
// written to and read from files as is.
#ifndef BLOCKQUANT_FORMAT_QUANT_TYPE_H_
#define BLOCKQUANT_FORMAT_QUANT_TYPE_H_

#include <cstdint>

namespace blockquant {
inline namespace v0 {

enum class QuantType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,  // activations only: never stored in files
  kBF16 = 30,
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FORMAT_QUANT_TYPE_H_
