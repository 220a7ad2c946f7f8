// Scalar IEEE binary16 and bfloat16 conversions, bit-exact and portable
// (no F16C or compiler extensions), usable on host and device.
// f32 -> f16 and f32 -> bf16 round to nearest, ties to even, as numpy and
// ggml do; overflow goes to Inf; NaN stays NaN (quiet).
#ifndef BLOCKQUANT_FORMAT_FP16_H_
#define BLOCKQUANT_FORMAT_FP16_H_

#include <cstdint>
#include <cstring>

#include "blockquant/config.h"

namespace blockquant {
inline namespace v0 {

BLOCKQUANT_HOST_DEVICE inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

BLOCKQUANT_HOST_DEVICE inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

BLOCKQUANT_HOST_DEVICE inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return BitsToFloat(sign | 0x7F800000u | (mant << 13));  // Inf/NaN
  if (exp != 0) return BitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return BitsToFloat(sign);
  // Subnormal: normalize. value = mant * 2^-24.
  int e = -1;
  do {
    ++e;
    mant <<= 1;
  } while ((mant & 0x400u) == 0);
  return BitsToFloat(sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3FFu) << 13));
}

BLOCKQUANT_HOST_DEVICE inline uint16_t F32ToF16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // Inf or NaN
    if (abs == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x1FFu));
  }
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504
  if (abs >= 0x38800000u) {  // normal in f16 (>= 2^-14)
    const uint32_t mant_lsb = (abs >> 13) & 1u;
    const uint32_t rounded = abs + 0xFFFu + mant_lsb;
    return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (abs < 0x33000000u) return sign;  // below half the smallest subnormal: 0
  // Subnormal in f16: value = m * 2^-24 with m in 1..1023, rounded to even.
  const uint32_t exp = abs >> 23;
  const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - exp;  // 14..24 for exp in 102..112
  const uint32_t half = 1u << (shift - 1);
  const uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t m = mant >> shift;
  if (rem > half || (rem == half && (m & 1u))) ++m;
  return static_cast<uint16_t>(sign | m);
}

// f32 -> f16 that saturates to +-65504 instead of overflowing to Inf: what
// quantizers use for scales, so no stored scale is ever Inf (NaN input still
// gives NaN; quantizers never see NaN).
BLOCKQUANT_HOST_DEVICE inline uint16_t F32ToF16Saturate(float f) {
  const float kMax = 65504.0f;
  return F32ToF16(f > kMax ? kMax : (f < -kMax ? -kMax : f));
}

BLOCKQUANT_HOST_DEVICE inline float BF16ToF32(uint16_t h) {
  return BitsToFloat(static_cast<uint32_t>(h) << 16);
}

BLOCKQUANT_HOST_DEVICE inline uint16_t F32ToBF16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FORMAT_FP16_H_
