// Per-format block decoders (Highway, per target). A codec only turns one
// block into integers and scales; the kernels in kernels-inl.h accumulate.
// Every format decodes into the same DecodedBlock shape (groups of 16 values),
// so adding a format never touches a kernel.
//
// Toggle guard: this file is re-included once per target by foreach_target.h.
#if defined(BLOCKQUANT_CPU_CODEC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef BLOCKQUANT_CPU_CODEC_INL_H_
#undef BLOCKQUANT_CPU_CODEC_INL_H_
#else
#define BLOCKQUANT_CPU_CODEC_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace blockquant {
inline namespace v0 {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// How the f32 value of element i (group g = i / 16) is formed, matching the
// reference expression exactly (no FMA, same operand order):
//   kMul:    a[g] * q[i]
//   kMulSub: a[g] * q[i] - c[g]
//   kMulAdd: a[g] * q[i] + c[g]   (Q4_1/Q5_1: kept apart from kMulSub so a
//                                  NaN m keeps its sign bit, as in the ref)
enum class FloatOp { kMul, kMulSub, kMulAdd };

// One block, decoded. q holds signed integers already offset (Q4_0: q - 8,
// Q6_K: q - 32, ...), so |q| <= 32 except Q8_0 (int8).
//  f32 path:  value = a[g] * q[i] (op c[g])
//  int path:  dot = d * sum_g sc[g] * sum_{i in g} q[i] * act[i]
//                   - dmin * sum_g mn[g] * actsum_g          (K-quants)
//                   + m * sum_i act[i]                        (Q4_1/Q5_1)
// |q * sc| <= 4096 (Q6_K), so q * sc fits int16.
struct DecodedBlock {
  int8_t q[kQK_K];
  int16_t sc[kQK_K / 16];
  int16_t mn[kQK_K / 16];
  float a[kQK_K / 16];
  float c[kQK_K / 16];
  float d;     // integer-path block scale
  float dmin;  // K-quants with mins; 0 otherwise
  float m;     // Q4_1/Q5_1 additive min; 0 otherwise
};

// Unpacks bit fields: out[l] = ((in[l] >> kShift) & mask) - offset, l < kCount.
// Vectors of exactly kCount bytes where the target has them, so no byte past
// the block is read and each later 32-byte load forwards from one store.
template <int kShift, int kBits, int kCount>
HWY_INLINE void UnpackBits(const uint8_t* HWY_RESTRICT in, int8_t* HWY_RESTRICT out, int offset) {
  const hn::CappedTag<uint8_t, kCount> du8;
  const hn::Rebind<int8_t, decltype(du8)> di8;
  const auto mask = hn::Set(du8, static_cast<uint8_t>((1u << kBits) - 1));
  const auto off = hn::Set(di8, static_cast<int8_t>(offset));
  for (int l = 0; l < kCount; l += static_cast<int>(hn::Lanes(du8))) {
    const auto v = hn::And(hn::ShiftRight<kShift>(hn::LoadU(du8, in + l)), mask);
    hn::StoreU(hn::Sub(hn::BitCast(di8, v), off), di8, out + l);
  }
}

// Both nibbles of 16 bytes: out[0..15] = low - offset, out[16..31] = high -
// offset. One 32-byte store where vectors are that wide (a later 32-byte load
// then forwards from it).
HWY_INLINE void UnpackNibbles16(const uint8_t* HWY_RESTRICT in, int8_t* HWY_RESTRICT out, int offset) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const hn::Full128<uint8_t> d16;
  const hn::Full256<uint8_t> d32;
  const hn::Full256<int8_t> di8;
  const auto v = hn::LoadU(d16, in);
  const auto both = hn::Combine(d32, hn::ShiftRight<4>(v), v);
  const auto q = hn::BitCast(di8, hn::And(both, hn::Set(d32, 0x0F)));
  hn::StoreU(hn::Sub(q, hn::Set(di8, static_cast<int8_t>(offset))), di8, out);
#else
  UnpackBits<0, 4, 16>(in, out, offset);
  UnpackBits<4, 4, 16>(in, out + 16, offset);
#endif
}

// out[l] += add where bit (1 << bit) of bits[l] is set, for 32 bytes.
HWY_INLINE void AddHighBit(const uint8_t* HWY_RESTRICT bits, int bit, int8_t add,
                           int8_t* HWY_RESTRICT out) {
  const hn::CappedTag<uint8_t, 32> du8;
  const hn::Rebind<int8_t, decltype(du8)> di8;
  const auto b = hn::Set(du8, static_cast<uint8_t>(1u << bit));
  const auto addv = hn::Set(di8, add);
  for (int l = 0; l < 32; l += static_cast<int>(hn::Lanes(du8))) {
    const auto m = hn::RebindMask(di8, hn::TestBit(hn::LoadU(du8, bits + l), b));
    const auto o = hn::LoadU(di8, out + l);
    hn::StoreU(hn::Add(o, hn::IfThenElseZero(m, addv)), di8, out + l);
  }
}

// f16 -> f32 for scales in the dot path: exact for finite values (Inf/NaN
// scales give Inf/NaN results either way), branch-free unlike F16ToF32.
HWY_INLINE float F16ToF32Dot(uint16_t h) {
  const float mag = BitsToFloat(static_cast<uint32_t>(h & 0x7FFFu) << 13) * 5.192296858534828e33f;  // 2^112
  return BitsToFloat(FloatBits(mag) | (static_cast<uint32_t>(h & 0x8000u) << 16));
}

HWY_INLINE void FillGroups(DecodedBlock* o, int groups, float a, float c, int16_t sc, bool want_float) {
  for (int g = 0; g < groups; ++g) {
    if (want_float) {
      o->a[g] = a;
      o->c[g] = c;
    }
    o->sc[g] = sc;
    o->mn[g] = 0;
  }
}

// Exact F16ToF32 for the bit-exact float path; the branch-free conversion
// (exact for finite values) for the integer path.
HWY_INLINE float ScaleF16(uint16_t h, bool want_float) { return want_float ? F16ToF32(h) : F16ToF32Dot(h); }

struct CodecQ4_0 {
  using Block = BlockQ4_0;
  static constexpr int kElems = kQK;
  static constexpr FloatOp kOp = FloatOp::kMul;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    UnpackNibbles16(b.qs, o->q, 8);
    const float d = ScaleF16(b.d, want_float);
    FillGroups(o, 2, d, 0.0f, 1, want_float);
    o->d = d;
    o->dmin = 0.0f;
    o->m = 0.0f;
  }
};

struct CodecQ4_1 {
  using Block = BlockQ4_1;
  static constexpr int kElems = kQK;
  static constexpr FloatOp kOp = FloatOp::kMulAdd;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    UnpackNibbles16(b.qs, o->q, 0);
    const float d = ScaleF16(b.d, want_float), m = ScaleF16(b.m, want_float);
    FillGroups(o, 2, d, m, 1, want_float);
    o->d = d;
    o->dmin = 0.0f;
    o->m = m;
  }
};

// The fifth bit of Q5_0/Q5_1: bit j of qh (little-endian u32) for element j.
HWY_INLINE void AddQ5High(const uint8_t* qh, int8_t* q) {
  const uint32_t h = static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
                     static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(q[j] + static_cast<int>(((h >> j) & 1u) << 4));
}

struct CodecQ5_0 {
  using Block = BlockQ5_0;
  static constexpr int kElems = kQK;
  static constexpr FloatOp kOp = FloatOp::kMul;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    UnpackNibbles16(b.qs, o->q, 16);
    AddQ5High(b.qh, o->q);
    const float d = ScaleF16(b.d, want_float);
    FillGroups(o, 2, d, 0.0f, 1, want_float);
    o->d = d;
    o->dmin = 0.0f;
    o->m = 0.0f;
  }
};

struct CodecQ5_1 {
  using Block = BlockQ5_1;
  static constexpr int kElems = kQK;
  static constexpr FloatOp kOp = FloatOp::kMulAdd;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    UnpackNibbles16(b.qs, o->q, 0);
    AddQ5High(b.qh, o->q);
    const float d = ScaleF16(b.d, want_float), m = ScaleF16(b.m, want_float);
    FillGroups(o, 2, d, m, 1, want_float);
    o->d = d;
    o->dmin = 0.0f;
    o->m = m;
  }
};

struct CodecQ8_0 {
  using Block = BlockQ8_0;
  static constexpr int kElems = kQK;
  static constexpr FloatOp kOp = FloatOp::kMul;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    const hn::CappedTag<int8_t, kQK> d8;
    for (int l = 0; l < kQK; l += static_cast<int>(hn::Lanes(d8))) hn::StoreU(hn::LoadU(d8, b.qs + l), d8, o->q + l);
    const float d = ScaleF16(b.d, want_float);
    FillGroups(o, 2, d, 0.0f, 1, want_float);
    o->d = d;
    o->dmin = 0.0f;
    o->m = 0.0f;
  }
};

// 2-bit fields: element 128h + 32j + l is (qs[32h + l] >> 2j) & 3.
HWY_INLINE void Unpack2Bit(const uint8_t* qs, int8_t* q, int offset) {
  for (int h = 0; h < 2; ++h) {
    UnpackBits<0, 2, 32>(qs + 32 * h, q + 128 * h + 0, offset);
    UnpackBits<2, 2, 32>(qs + 32 * h, q + 128 * h + 32, offset);
    UnpackBits<4, 2, 32>(qs + 32 * h, q + 128 * h + 64, offset);
    UnpackBits<6, 2, 32>(qs + 32 * h, q + 128 * h + 96, offset);
  }
}

struct CodecQ2_K {
  using Block = BlockQ2_K;
  static constexpr int kElems = kQK_K;
  static constexpr FloatOp kOp = FloatOp::kMulSub;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    Unpack2Bit(b.qs, o->q, 0);
    const float d = ScaleF16(b.d, want_float), dmin = ScaleF16(b.dmin, want_float);
    for (int g = 0; g < 16; ++g) {
      const int sc = b.scales[g] & 0xF, mn = b.scales[g] >> 4;
      o->sc[g] = static_cast<int16_t>(sc);
      o->mn[g] = static_cast<int16_t>(mn);
      if (want_float) {
        o->a[g] = d * static_cast<float>(sc);
        o->c[g] = dmin * static_cast<float>(mn);
      }
    }
    o->d = d;
    o->dmin = dmin;
    o->m = 0.0f;
  }
};

struct CodecQ3_K {
  using Block = BlockQ3_K;
  static constexpr int kElems = kQK_K;
  static constexpr FloatOp kOp = FloatOp::kMul;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    // low2 + 4 * high - 4: offset -4 first, then +4 where the hmask bit is set.
    Unpack2Bit(b.qs, o->q, 4);
    for (int k = 0; k < 8; ++k) AddHighBit(b.hmask, k, 4, o->q + 32 * k);
    const float d = ScaleF16(b.d, want_float);
    for (int g = 0; g < 16; ++g) {
      const int sc = static_cast<int>(UnpackScaleQ3K(g, b.scales)) - 32;
      o->sc[g] = static_cast<int16_t>(sc);
      o->mn[g] = 0;
      if (want_float) {
        o->a[g] = d * static_cast<float>(sc);
        o->c[g] = 0.0f;
      }
    }
    o->d = d;
    o->dmin = 0.0f;
    o->m = 0.0f;
  }
};

// The 12 packed bytes of 6-bit scales and mins (UnpackScaleMinK4 for all 8
// groups at once, in 32-bit words): bytes 0-3 low 6 bits = sc[0..3], bytes
// 4-7 = mn[0..3], bytes 8-11 low/high nibbles + the top 2 bits of bytes 0-7 =
// sc/mn[4..7].
HWY_INLINE void KScales(const uint8_t* scales, float d, float dmin, DecodedBlock* o, bool want_float) {
  uint32_t a, b, c;
  std::memcpy(&a, scales, 4);
  std::memcpy(&b, scales + 4, 4);
  std::memcpy(&c, scales + 8, 4);
  const uint32_t words[4] = {a & 0x3F3F3F3Fu, (c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4),
                             b & 0x3F3F3F3Fu, ((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4)};
  uint8_t bytes[16];  // sc[0..7], mn[0..7]
  std::memcpy(bytes, words, 16);
  for (int j = 0; j < 8; ++j) {
    const uint8_t sc = bytes[j], mn = bytes[8 + j];
    o->sc[2 * j] = o->sc[2 * j + 1] = sc;
    o->mn[2 * j] = o->mn[2 * j + 1] = mn;
    if (want_float) {
      const float fa = d * static_cast<float>(sc), fc = dmin * static_cast<float>(mn);
      o->a[2 * j] = o->a[2 * j + 1] = fa;
      o->c[2 * j] = o->c[2 * j + 1] = fc;
    }
  }
  o->d = d;
  o->dmin = dmin;
  o->m = 0.0f;
}

struct CodecQ4_K {
  using Block = BlockQ4_K;
  static constexpr int kElems = kQK_K;
  static constexpr FloatOp kOp = FloatOp::kMulSub;
  static HWY_INLINE void DecodeLevels(const Block& b, int8_t* HWY_RESTRICT q) {
    for (int p = 0; p < 4; ++p) {
      UnpackBits<0, 4, 32>(b.qs + 32 * p, q + 64 * p, 0);
      UnpackBits<4, 4, 32>(b.qs + 32 * p, q + 64 * p + 32, 0);
    }
  }
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    DecodeLevels(b, o->q);
    KScales(b.scales, ScaleF16(b.d, want_float), ScaleF16(b.dmin, want_float), o, want_float);
  }
};

struct CodecQ5_K {
  using Block = BlockQ5_K;
  static constexpr int kElems = kQK_K;
  static constexpr FloatOp kOp = FloatOp::kMulSub;
  static HWY_INLINE void DecodeLevels(const Block& b, int8_t* HWY_RESTRICT q) {
    for (int p = 0; p < 4; ++p) {
      UnpackBits<0, 4, 32>(b.qs + 32 * p, q + 64 * p, 0);
      UnpackBits<4, 4, 32>(b.qs + 32 * p, q + 64 * p + 32, 0);
    }
    for (int j = 0; j < 8; ++j) AddHighBit(b.qh, j, 16, q + 32 * j);
  }
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    DecodeLevels(b, o->q);
    KScales(b.scales, ScaleF16(b.d, want_float), ScaleF16(b.dmin, want_float), o, want_float);
  }
};

struct CodecQ6_K {
  using Block = BlockQ6_K;
  static constexpr int kElems = kQK_K;
  static constexpr FloatOp kOp = FloatOp::kMul;
  static HWY_INLINE void Decode(const Block& b, DecodedBlock* o, bool want_float = true) {
    // element 128h + 32k + l: low nibble of ql[64h + 32(k%2) + l] (k < 2) or
    // its high nibble (k >= 2), plus ((qh[32h + l] >> 2k) & 3) << 4, minus 32.
    for (int h = 0; h < 2; ++h) {
      int8_t* q = o->q + 128 * h;
      UnpackBits<0, 4, 32>(b.ql + 64 * h, q, 32);
      UnpackBits<0, 4, 32>(b.ql + 64 * h + 32, q + 32, 32);
      UnpackBits<4, 4, 32>(b.ql + 64 * h, q + 64, 32);
      UnpackBits<4, 4, 32>(b.ql + 64 * h + 32, q + 96, 32);
      const uint8_t* qh = b.qh + 32 * h;
      for (int k = 0; k < 4; ++k) {
        AddHighBit(qh, 2 * k, 16, q + 32 * k);
        AddHighBit(qh, 2 * k + 1, 32, q + 32 * k);
      }
    }
    const float d = ScaleF16(b.d, want_float);
    for (int g = 0; g < 16; ++g) {
      o->sc[g] = b.scales[g];
      o->mn[g] = 0;
      if (want_float) {
        o->a[g] = d * static_cast<float>(b.scales[g]);
        o->c[g] = 0.0f;
      }
    }
    o->d = d;
    o->dmin = 0.0f;
    o->m = 0.0f;
  }
};

}  // namespace HWY_NAMESPACE
}  // namespace v0
}  // namespace blockquant
HWY_AFTER_NAMESPACE();

#endif  // BLOCKQUANT_CPU_CODEC_INL_H_
