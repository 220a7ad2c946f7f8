// Hand-derived quantizer bytes, stored-field sanity on extreme inputs, and
// the all-zero-importance fallback.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/format/type_traits.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"

namespace bq = blockquant;
using bq::QuantType;

namespace {

bool F16Finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

const QuantType kSearched[] = {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                               QuantType::kQ6_K, QuantType::kQ4_0, QuantType::kQ4_1, QuantType::kQ5_0,
                               QuantType::kQ5_1};

std::vector<uint8_t> QuantizeBytes(QuantType type, const std::vector<float>& x, int64_t cols,
                                   const float* importance = nullptr) {
  const int64_t rows = static_cast<int64_t>(x.size()) / cols;
  std::vector<uint8_t> q(static_cast<size_t>(rows * bq::RowBytes(type, cols)));
  bq::QuantizeTensor(type, QuantType::kF32, x.data(), rows, cols, q.data(), importance);
  return q;
}

// The f16 header fields of every block (d, and dmin/m where the type has one).
std::vector<uint16_t> HeaderFields(QuantType type, const std::vector<uint8_t>& q) {
  std::vector<uint16_t> out;
  auto take = [&](const auto* blocks, size_t n, auto&& fields) {
    for (size_t i = 0; i < n; ++i) fields(blocks[i]);
  };
  switch (type) {
    case QuantType::kQ4_0:
      take(reinterpret_cast<const bq::BlockQ4_0*>(q.data()), q.size() / sizeof(bq::BlockQ4_0),
           [&](const bq::BlockQ4_0& b) { out.push_back(b.d); });
      break;
    case QuantType::kQ5_0:
      take(reinterpret_cast<const bq::BlockQ5_0*>(q.data()), q.size() / sizeof(bq::BlockQ5_0),
           [&](const bq::BlockQ5_0& b) { out.push_back(b.d); });
      break;
    case QuantType::kQ4_1:
      take(reinterpret_cast<const bq::BlockQ4_1*>(q.data()), q.size() / sizeof(bq::BlockQ4_1),
           [&](const bq::BlockQ4_1& b) { out.insert(out.end(), {b.d, b.m}); });
      break;
    case QuantType::kQ5_1:
      take(reinterpret_cast<const bq::BlockQ5_1*>(q.data()), q.size() / sizeof(bq::BlockQ5_1),
           [&](const bq::BlockQ5_1& b) { out.insert(out.end(), {b.d, b.m}); });
      break;
    case QuantType::kQ2_K:
      take(reinterpret_cast<const bq::BlockQ2_K*>(q.data()), q.size() / sizeof(bq::BlockQ2_K),
           [&](const bq::BlockQ2_K& b) { out.insert(out.end(), {b.d, b.dmin}); });
      break;
    case QuantType::kQ3_K:
      take(reinterpret_cast<const bq::BlockQ3_K*>(q.data()), q.size() / sizeof(bq::BlockQ3_K),
           [&](const bq::BlockQ3_K& b) { out.push_back(b.d); });
      break;
    case QuantType::kQ4_K:
      take(reinterpret_cast<const bq::BlockQ4_K*>(q.data()), q.size() / sizeof(bq::BlockQ4_K),
           [&](const bq::BlockQ4_K& b) { out.insert(out.end(), {b.d, b.dmin}); });
      break;
    case QuantType::kQ5_K:
      take(reinterpret_cast<const bq::BlockQ5_K*>(q.data()), q.size() / sizeof(bq::BlockQ5_K),
           [&](const bq::BlockQ5_K& b) { out.insert(out.end(), {b.d, b.dmin}); });
      break;
    case QuantType::kQ6_K:
      take(reinterpret_cast<const bq::BlockQ6_K*>(q.data()), q.size() / sizeof(bq::BlockQ6_K),
           [&](const bq::BlockQ6_K& b) { out.push_back(b.d); });
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

TEST_CASE("stored f16 scales and mins are finite for extreme inputs") {
  const int64_t cols = 512;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> inputs;
  for (float scale : {1e-30f, 1e-8f, 1e30f, 3e37f}) {
    std::vector<float> x(cols);
    for (float& v : x) v = normal(rng) * scale;
    inputs.push_back(x);
  }
  inputs.emplace_back(cols, std::numeric_limits<float>::max());
  inputs.emplace_back(cols, -std::numeric_limits<float>::max());
  inputs.emplace_back(cols, std::numeric_limits<float>::denorm_min());
  std::vector<float> outlier(cols, 0.001f);
  outlier[77] = -1e35f;
  inputs.push_back(outlier);
  for (QuantType type : kSearched) {
    CAPTURE(bq::TypeName(type));
    for (const auto& x : inputs) {
      for (uint16_t h : HeaderFields(type, QuantizeBytes(type, x, cols))) CHECK(F16Finite(h));
    }
  }
}

TEST_CASE("importance all zero in a row gives the bytes of no importance") {
  const int64_t cols = 512;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(cols * 2);
  for (float& v : x) v = normal(rng);
  const std::vector<float> zeros(cols, 0.0f);
  for (QuantType type : kSearched) {
    CAPTURE(bq::TypeName(type));
    CHECK(QuantizeBytes(type, x, cols, zeros.data()) == QuantizeBytes(type, x, cols));
  }
}

TEST_CASE("golden Q4_1 block: 1 + 0.25 k for k = 0..15") {
  // The exact fit is d = 0.25 (f16 0x3400), m = 1 (0x3C00), q = k; elements
  // j and j + 16 are equal, so byte j holds k = j in both nibbles.
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = 1.0f + 0.25f * static_cast<float>(i % 16);
  bq::BlockQ4_1 b;
  bq::ref::QuantizeRowQ4_1(x, &b, 32, nullptr);
  CHECK(b.d == 0x3400);
  CHECK(b.m == 0x3C00);
  for (int j = 0; j < 16; ++j) CHECK(b.qs[j] == static_cast<uint8_t>(j | (j << 4)));
}

TEST_CASE("golden Q4_K block: k * 63/64 for k = 0..15 in every group") {
  // Every group scale is 63/64 with no min: d = 1/64 (f16 0x2400) so the
  // 6-bit scale is 63, dmin = 0, m = 0, q = k.
  // Scale bytes (6-bit packing): bytes 0-3 = sc_j | (sc_{j+4} >> 4) << 6 =
  // 0xFF; bytes 4-7 = m_j | (m_{j+4} >> 4) << 6 = 0x00; bytes 8-11 =
  // (sc_{j+4} & 15) | (m_{j+4} & 15) << 4 = 0x0F.
  // Nibbles: byte 32c + l holds values 64c + l and 64c + 32 + l, both l % 16.
  float x[256];
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 16) * (63.0f / 64.0f);
  bq::BlockQ4_K b;
  bq::ref::QuantizeRowQ4_K(x, &b, 256, nullptr);
  CHECK(b.d == 0x2400);
  CHECK(b.dmin == 0x0000);
  for (int j = 0; j < 4; ++j) CHECK(b.scales[j] == 0xFF);
  for (int j = 4; j < 8; ++j) CHECK(b.scales[j] == 0x00);
  for (int j = 8; j < 12; ++j) CHECK(b.scales[j] == 0x0F);
  for (int i = 0; i < 128; ++i) CHECK(b.qs[i] == static_cast<uint8_t>((i % 16) * 0x11));
  float y[256];
  bq::ref::DequantizeRowQ4_K(&b, y, 256);
  for (int i = 0; i < 256; ++i) CHECK(y[i] == x[i]);
}
