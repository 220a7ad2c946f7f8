#include <cstring>

#include <doctest/doctest.h>

#include "blockquant/format/blocks.h"
#include "blockquant/format/type_traits.h"

namespace bq = blockquant;

TEST_CASE("traits table matches the GGUF type ids and block sizes") {
  struct Row { uint32_t id; const char* name; int64_t elems, bytes; };
  const Row expected[] = {
      {0, "F32", 1, 4},       {1, "F16", 1, 2},       {30, "BF16", 1, 2},     {2, "Q4_0", 32, 18},
      {3, "Q4_1", 32, 20},    {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},
      {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
      {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},
  };
  for (const Row& r : expected) {
    const bq::TypeTraits* t = bq::FindTraits(r.id);
    REQUIRE(t != nullptr);
    CHECK(std::strcmp(t->name, r.name) == 0);
    CHECK(t->block_elems == r.elems);
    CHECK(t->block_bytes == r.bytes);
    CHECK(bq::ParseQuantType(r.name) == t->type);
  }
  CHECK(bq::FindTraits(4) == nullptr);  // Q4_2 was removed from ggml
  CHECK(bq::FindTraits(9) == nullptr);  // Q8_1 is not supported
  CHECK(bq::Traits(bq::QuantType::kQ4_K).BitsPerWeight() == doctest::Approx(4.5));
  CHECK(bq::Traits(bq::QuantType::kQ3_K).BitsPerWeight() == doctest::Approx(3.4375));
  CHECK(bq::Traits(bq::QuantType::kQ6_K).BitsPerWeight() == doctest::Approx(6.5625));
  CHECK_FALSE(bq::Traits(bq::QuantType::kQ8_K).storable);
}

TEST_CASE("type names parse case-insensitively and unknown names throw") {
  CHECK(bq::ParseQuantType("q4_k") == bq::QuantType::kQ4_K);
  CHECK(bq::ParseQuantType("Q5_k") == bq::QuantType::kQ5_K);
  CHECK(bq::ParseQuantType("bf16") == bq::QuantType::kBF16);
  CHECK_THROWS_AS(bq::ParseQuantType("q4_k_m"), bq::Error);
  CHECK_THROWS_AS(bq::ParseQuantType(""), bq::Error);
  CHECK_THROWS_AS(bq::Traits(static_cast<bq::QuantType>(99)), bq::Error);
}

TEST_CASE("row bytes need a row length the block divides") {
  CHECK(bq::RowBytes(bq::QuantType::kQ4_K, 4096) == 16 * 144);
  CHECK(bq::RowBytes(bq::QuantType::kQ8_0, 96) == 3 * 34);
  CHECK(bq::RowBytes(bq::QuantType::kF16, 7) == 14);
  try {
    bq::RowBytes(bq::QuantType::kQ4_K, 4000);
    FAIL("expected an error");
  } catch (const bq::Error& e) {
    CHECK(e.code() == bq::ErrorCode::kShape);
    CHECK(std::string(e.what()).find("256") != std::string::npos);
  }
}

TEST_CASE("Q4_K/Q5_K 6-bit scale packing round-trips every value") {
  uint8_t sc[8], m[8], packed[12];
  for (int v = 0; v < 64; ++v) {
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>((v + 7 * j) % 64);
      m[j] = static_cast<uint8_t>((63 - v + 3 * j) % 64);
    }
    bq::PackScaleMinK4(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      uint8_t s2, m2;
      bq::UnpackScaleMinK4(j, packed, &s2, &m2);
      CHECK(s2 == sc[j]);
      CHECK(m2 == m[j]);
    }
  }
}

TEST_CASE("Q4_K scale packing matches the documented bit table") {
  // FORMATS.md: j < 4: sc = scales[j] & 63; j >= 4: sc = (scales[j+4] & 0xF) | ((scales[j-4] >> 6) << 4).
  const uint8_t s[12] = {0xC1, 0x42, 0x83, 0x04, 0x45, 0x86, 0xC7, 0x08, 0x9A, 0xBC, 0xDE, 0xF0};
  uint8_t sc, m;
  bq::UnpackScaleMinK4(0, s, &sc, &m);
  CHECK(sc == 0x01);
  CHECK(m == 0x05);
  bq::UnpackScaleMinK4(4, s, &sc, &m);
  CHECK(sc == (0xA | (3 << 4)));
  CHECK(m == (0x9 | (1 << 4)));
  bq::UnpackScaleMinK4(7, s, &sc, &m);
  CHECK(sc == (0x0 | (0 << 4)));
  CHECK(m == (0xF | (0 << 4)));
}

TEST_CASE("Q3_K 6-bit scale packing round-trips and matches the bit table") {
  uint8_t S[16], packed[12];
  for (int v = 0; v < 64; ++v) {
    for (int g = 0; g < 16; ++g) S[g] = static_cast<uint8_t>((v + 5 * g) % 64);
    bq::PackScalesQ3K(S, packed);
    for (int g = 0; g < 16; ++g) CHECK(bq::UnpackScaleQ3K(g, packed) == S[g]);
  }
  // Group 9: low 4 bits = high nibble of scales[1]; top 2 bits = bits 4,5 of scales[9].
  const uint8_t s[12] = {0, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0};
  CHECK(bq::UnpackScaleQ3K(9, s) == (0xA | (2 << 4)));
}
