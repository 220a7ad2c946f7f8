// Hand-built blocks with values derived by hand from shared/FORMATS.md, one
// per type, so a layout slip in the reference decoder cannot hide behind a
// round trip through the (equally slipped) encoder.
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/format/fp16.h"
#include "blockquant/quant/dequantize.h"

namespace bq = blockquant;

namespace {
constexpr uint16_t kOne = 0x3C00;   // 1.0 in f16
constexpr uint16_t kHalf = 0x3800;  // 0.5
constexpr uint16_t kTwo = 0x4000;   // 2.0

template <typename Block>
std::vector<float> Decode(bq::QuantType type, const Block& b, int n) {
  std::vector<float> y(static_cast<size_t>(n));
  bq::DequantizeRowReference(type, &b, y.data(), n);
  return y;
}
}  // namespace

TEST_CASE("Q4_0: low nibbles are elements 0..15, high nibbles 16..31") {
  bq::BlockQ4_0 b{};
  b.d = kHalf;
  b.qs[0] = 0x9F;  // element 0: 15 - 8 = 7; element 16: 9 - 8 = 1
  b.qs[15] = 0x08; // element 15: 0; element 31: 0 - 8 = -8
  const auto y = Decode(bq::QuantType::kQ4_0, b, 32);
  CHECK(y[0] == 3.5f);
  CHECK(y[16] == 0.5f);
  CHECK(y[15] == 0.0f);
  CHECK(y[31] == -4.0f);
  CHECK(y[1] == -4.0f);  // qs[1] = 0: nibble 0 -> -8 * 0.5
}

TEST_CASE("Q4_1 and Q5_1 add the min") {
  bq::BlockQ4_1 b{};
  b.d = kTwo;
  b.m = bq::F32ToF16(-1.0f);
  b.qs[3] = 0x52;  // element 3: 2, element 19: 5
  const auto y = Decode(bq::QuantType::kQ4_1, b, 32);
  CHECK(y[3] == 3.0f);
  CHECK(y[19] == 9.0f);
  CHECK(y[0] == -1.0f);

  bq::BlockQ5_1 c{};
  c.d = kOne;
  c.m = kHalf;
  c.qh[2] = 0x01;  // bit 16 of H: fifth bit of element 16
  c.qs[0] = 0x30;  // element 0: 0, element 16: 3
  const auto z = Decode(bq::QuantType::kQ5_1, c, 32);
  CHECK(z[0] == 0.5f);
  CHECK(z[16] == 19.5f);
}

TEST_CASE("Q5_0: bit j of the little-endian qh word is element j's fifth bit") {
  bq::BlockQ5_0 b{};
  b.d = kOne;
  b.qh[0] = 0x02;  // element 1 gets +16
  b.qh[3] = 0x80;  // bit 31: element 31 gets +16
  b.qs[1] = 0x0F;  // element 1: 15 | 16 = 31 -> 15
  b.qs[15] = 0xF0; // element 31: 15 | 16 = 31 -> 15
  const auto y = Decode(bq::QuantType::kQ5_0, b, 32);
  CHECK(y[1] == 15.0f);
  CHECK(y[31] == 15.0f);
  CHECK(y[0] == -16.0f);
  CHECK(y[17] == -16.0f);
}

TEST_CASE("Q8_0 and Q8_K scale signed bytes") {
  bq::BlockQ8_0 b{};
  b.d = kHalf;
  b.qs[5] = -127;
  b.qs[31] = 4;
  const auto y = Decode(bq::QuantType::kQ8_0, b, 32);
  CHECK(y[5] == -63.5f);
  CHECK(y[31] == 2.0f);

  bq::BlockQ8_K k{};
  k.d = 0.25f;
  k.qs[255] = -8;
  const auto z = Decode(bq::QuantType::kQ8_K, k, 256);
  CHECK(z[255] == -2.0f);
  CHECK(z[0] == 0.0f);
}

TEST_CASE("Q2_K: element 128h + 32j + l sits at shift 2j of qs[32h + l]") {
  bq::BlockQ2_K b{};
  b.d = kOne;
  b.dmin = kHalf;
  b.scales[0] = 0x13;   // group 0: scale 3, min 1
  b.scales[10] = 0x25;  // group 10 (elements 160..175): scale 5, min 2
  b.qs[0] = 0x03;       // element 0: q = 3
  b.qs[32 + 1] = 0x04;  // half 1, l = 1, j = 1: element 128 + 32 + 1 = 161, q = 1
  const auto y = Decode(bq::QuantType::kQ2_K, b, 256);
  CHECK(y[0] == 3.0f * 3.0f - 0.5f);
  CHECK(y[1] == -0.5f);
  CHECK(y[161] == 5.0f * 1.0f - 1.0f);
  CHECK(y[160] == -1.0f);
}

TEST_CASE("Q3_K: code = low2 + 4*hmask bit, value = d * (S - 32) * (code - 4)") {
  bq::BlockQ3_K b{};
  b.d = kOne;
  // S_0 = 33 (signed +1): low nibble 1 in scales[0], top bits 2 -> bits 0..1 of scales[8].
  b.scales[0] = 0x01;
  b.scales[8] = 0x02;
  // Every other group: S = 0 -> signed -32.
  b.hmask[0] = 0x01;  // element 0 has its high bit set
  b.qs[0] = 0x02;     // element 0: low2 = 2 -> code 6 -> +2
  const auto y = Decode(bq::QuantType::kQ3_K, b, 256);
  CHECK(y[0] == 2.0f);
  CHECK(y[1] == -4.0f);          // group 0, code 0 -> (0 - 4) * 1
  CHECK(y[16] == 128.0f);        // group 1: S = 0 -> -32 * (0 - 4)
}

TEST_CASE("Q4_K: chunk c holds elements 64c + l (low) and 64c + 32 + l (high)") {
  bq::BlockQ4_K b{};
  b.d = kOne;
  b.dmin = kOne;
  const uint8_t sc[8] = {1, 2, 3, 4, 5, 6, 7, 40};
  const uint8_t m[8] = {0, 1, 0, 0, 0, 0, 0, 33};
  bq::PackScaleMinK4(sc, m, b.scales);
  b.qs[0] = 0xA5;        // element 0: 5 (group 0), element 32: 10 (group 1)
  b.qs[96 + 31] = 0xF0;  // chunk 3, l = 31: element 223 = 0 (group 6), element 255 = 15 (group 7)
  const auto y = Decode(bq::QuantType::kQ4_K, b, 256);
  CHECK(y[0] == 5.0f);
  CHECK(y[32] == 2.0f * 10.0f - 1.0f);
  CHECK(y[223] == 0.0f);
  CHECK(y[255] == 40.0f * 15.0f - 33.0f);
}

TEST_CASE("Q5_K: fifth bit of element 64c + l is bit 2c of qh[l]") {
  bq::BlockQ5_K b{};
  b.d = kOne;
  b.dmin = 0;
  const uint8_t sc[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  const uint8_t m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  bq::PackScaleMinK4(sc, m, b.scales);
  b.qh[3] = 0x06;  // bits 1, 2: element 32 + 3 = 35 and element 64 + 3 = 67 get +16
  b.qs[32 + 3] = 0x21;  // element 67: 1 | 16 = 17; element 99: 2
  const auto y = Decode(bq::QuantType::kQ5_K, b, 256);
  CHECK(y[35] == 16.0f);
  CHECK(y[67] == 17.0f);
  CHECK(y[99] == 2.0f);
  CHECK(y[3] == 0.0f);
}

TEST_CASE("Q6_K: ql/qh layout of the two 128-element halves") {
  bq::BlockQ6_K b{};
  b.d = kHalf;
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  // Half 1 (elements 128..255), l = 2: ql[64 + 2] and ql[96 + 2], qh[32 + 2].
  b.ql[64 + 2] = 0x7A;   // element 130: low 0xA; element 194: low 7
  b.ql[96 + 2] = 0x15;   // element 162: low 5;   element 226: low 1
  b.qh[32 + 2] = 0xE4;   // 11 10 01 00: element 130 high 0, 162 high 1, 194 high 2, 226 high 3
  const auto y = Decode(bq::QuantType::kQ6_K, b, 256);
  // value = d * scale(g) * (q - 32), g = element / 16
  CHECK(y[130] == 0.5f * 0.0f * (10 - 32));                 // group 8: scale 0
  CHECK(y[162] == 0.5f * 2.0f * ((5 | 16) - 32));            // group 10: scale 2
  CHECK(y[194] == 0.5f * 4.0f * ((7 | 32) - 32));            // group 12: scale 4
  CHECK(y[226] == 0.5f * 6.0f * ((1 | 48) - 32));            // group 14: scale 6
  CHECK(y[0] == 0.5f * -8.0f * -32.0f);
}
