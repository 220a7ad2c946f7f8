#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <doctest/doctest.h>

#include "blockquant/format/fp16.h"

namespace bq = blockquant;

// A slow, obviously right f32 -> f16: pick the nearer of the two f16
// neighbours by exact double arithmetic, ties to the even one.
static uint16_t SlowF32ToF16(float f) {
  if (std::isnan(f)) return 0x7E00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7C00;
  uint16_t best = 0;
  double best_err = 1e300;
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const double v = bq::F16ToF32(static_cast<uint16_t>(h));
    const double err = std::fabs(v - a);
    if (err < best_err || (err == best_err && (h & 1) == 0)) {
      best = static_cast<uint16_t>(h);
      best_err = err;
    }
    if (v > a) break;
  }
  return sign | best;
}

TEST_CASE("f16 -> f32 -> f16 is the identity on every finite f16") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = bq::F16ToF32(bits);
    if (((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0) {
      CHECK(std::isnan(f));
      continue;
    }
    CHECK(bq::F32ToF16(f) == bits);
  }
}

TEST_CASE("f16 decoding of known values") {
  CHECK(bq::F16ToF32(0x3C00) == 1.0f);
  CHECK(bq::F16ToF32(0xC000) == -2.0f);
  CHECK(bq::F16ToF32(0x7BFF) == 65504.0f);
  CHECK(bq::F16ToF32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(bq::F16ToF32(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::isinf(bq::F16ToF32(0x7C00)));
  CHECK(std::signbit(bq::F16ToF32(0x8000)));
}

TEST_CASE("f32 -> f16 rounds to nearest even, like a slow exact search") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> exp_dist(-27, 17);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  for (int i = 0; i < 3000; ++i) {
    float f = std::ldexp(mant(rng), exp_dist(rng));
    if (i % 2) f = -f;
    CHECK(bq::F32ToF16(f) == SlowF32ToF16(f));
  }
  // Exact ties between f16 neighbours.
  CHECK(bq::F32ToF16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie -> even (down)
  CHECK(bq::F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie -> even (up)
  CHECK(bq::F32ToF16(std::ldexp(1.0f, -25)) == 0x0000);  // half the smallest subnormal
  CHECK(bq::F32ToF16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(bq::F32ToF16(65519.0f) == 0x7BFF);
  CHECK(bq::F32ToF16(65520.0f) == 0x7C00);
  CHECK(bq::F32ToF16(1e30f) == 0x7C00);
  CHECK(bq::F32ToF16(-1e30f) == 0xFC00);
  CHECK(bq::F32ToF16(1e-30f) == 0x0000);
  const uint16_t nan = bq::F32ToF16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
}

TEST_CASE("bf16 conversions round to nearest even and keep NaN") {
  CHECK(bq::F32ToBF16(1.0f) == 0x3F80);
  CHECK(bq::BF16ToF32(0x3F80) == 1.0f);
  const float tie_down = bq::BitsToFloat(0x3F808000u);  // halfway between 0x3F80 and 0x3F81
  CHECK(bq::F32ToBF16(tie_down) == 0x3F80);
  const float tie_up = bq::BitsToFloat(0x3F818000u);
  CHECK(bq::F32ToBF16(tie_up) == 0x3F82);
  CHECK(bq::F32ToBF16(bq::BitsToFloat(0x3F808001u)) == 0x3F81);
  const uint16_t nan = bq::F32ToBF16(bq::BitsToFloat(0x7F800001u));  // signalling NaN
  CHECK(std::isnan(bq::BF16ToF32(nan)));
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    const float f = bq::BF16ToF32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) CHECK(bq::F32ToBF16(f) == h);
  }
}
