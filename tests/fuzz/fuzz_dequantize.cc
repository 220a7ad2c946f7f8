// Block bytes of every type: the first byte picks the type, the rest is a row
// (trimmed to whole blocks). Dequantization must accept any bits (NaN and Inf
// scales included); finite results in the f16 range are quantized again.
#include <cmath>
#include <cstdint>
#include <vector>

#include "blockquant/format/type_traits.h"
#include "blockquant/quant/quantize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using blockquant::QuantType;
  static const QuantType kTypes[] = {QuantType::kF32,  QuantType::kF16,  QuantType::kBF16, QuantType::kQ4_0,
                                     QuantType::kQ4_1, QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kQ8_0,
                                     QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                                     QuantType::kQ6_K, QuantType::kQ8_K};
  if (size < 1) return 0;
  const QuantType type = kTypes[data[0] % (sizeof(kTypes) / sizeof(kTypes[0]))];
  const auto& t = blockquant::Traits(type);
  const int64_t blocks = static_cast<int64_t>(size - 1) / t.block_bytes;
  if (blocks == 0) return 0;
  const int64_t n = blocks * t.block_elems;
  std::vector<float> x(static_cast<size_t>(n));
  // Block structs need their fields aligned: copy (DequantizeTensor does the
  // same for unaligned input; tests/quant covers that).
  std::vector<uint8_t> blocks_copy(data + 1, data + 1 + blocks * t.block_bytes);
  blockquant::DequantizeRowReference(type, blocks_copy.data(), x.data(), n);
  for (float v : x) {
    if (!std::isfinite(v) || std::fabs(v) > 60000.0f) return 0;
  }
  if (!t.storable) return 0;
  std::vector<uint8_t> q(static_cast<size_t>(blockquant::RowBytes(type, n)));
  blockquant::QuantizeRowReference(type, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  blockquant::DequantizeRowReference(type, q.data(), y.data(), n);
  return 0;
}
