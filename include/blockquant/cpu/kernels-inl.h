// Highway kernels (per target): row dequantization (bit-exact with
// quant/dequantize.h), activation quantization to Q8_K/Q8_0 (byte-identical
// with quant/q8.h), dot products, matvec and matmul.
//
// Static dispatch (header-only): include this file in a .cc compiled for your
// target and call blockquant::HWY_NAMESPACE::DequantizeRowF32(...) etc.
// Dynamic dispatch: link blockquant::dispatch and include cpu/kernels.h.
//
// Toggle guard: this file is re-included once per target by foreach_target.h.
#if defined(BLOCKQUANT_CPU_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef BLOCKQUANT_CPU_KERNELS_INL_H_
#undef BLOCKQUANT_CPU_KERNELS_INL_H_
#else
#define BLOCKQUANT_CPU_KERNELS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "blockquant/cpu/codec-inl.h"
#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace blockquant {
inline namespace v0 {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Float kernels use at most 16 f32 lanes: groups are 16 values. Zen 4 runs
// 512-bit ops as two 256-bit halves, so the cap costs little there.
using DF = hn::CappedTag<float, 16>;

// ---------------------------------------------------------------- f16/bf16

// Exact f16 -> f32 in integer ops (hardware cvtph quiets signaling NaNs; the
// reference keeps the payload as is).
template <class D>
HWY_INLINE hn::Vec<D> F16BitsToF32(D df, hn::Vec<hn::RebindToUnsigned<D>> h) {
  const hn::RebindToUnsigned<D> du;
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const auto exp = hn::And(hn::ShiftRight<10>(h), hn::Set(du, 0x1Fu));
  const auto mant = hn::And(h, hn::Set(du, 0x3FFu));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exp, hn::Set(du, 112u))), hn::ShiftLeft<13>(mant));
  const auto infnan = hn::Or(hn::Set(du, 0x7F800000u), hn::ShiftLeft<13>(mant));
  // Subnormal (and zero): mant * 2^-24, exact.
  const auto sub = hn::BitCast(du, hn::Mul(hn::ConvertTo(df, hn::BitCast(hn::RebindToSigned<D>(), mant)),
                                           hn::Set(df, 5.9604644775390625e-8f)));
  auto bits = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), sub, normal);
  bits = hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x1Fu)), infnan, bits);
  return hn::BitCast(df, hn::Or(bits, sign));
}

// f32 -> bf16 bits (as u32 lanes), as F32ToBF16: ties to even, NaN quieted.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> F32ToBF16Bits(D /*df*/, hn::Vec<D> v) {
  const hn::RebindToUnsigned<D> du;
  const auto u = hn::BitCast(du, v);
  const auto rounded = hn::ShiftRight<16>(
      hn::Add(hn::Add(u, hn::Set(du, 0x7FFFu)), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u))));
  const auto nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40u));
  const auto is_nan = hn::Gt(hn::And(u, hn::Set(du, 0x7FFFFFFFu)), hn::Set(du, 0x7F800000u));
  return hn::IfThenElse(hn::RebindMask(du, is_nan), nan, rounded);
}

// Writes count floats as f16 or bf16.
HWY_INLINE void StoreF32AsF16(const float* HWY_RESTRICT in, uint16_t* HWY_RESTRICT out, int64_t count) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // F16C/AVX-512 vcvtps2ph rounds to nearest even, quiets NaN keeping the
  // upper payload, and handles subnormals: identical to F32ToF16.
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> df16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= count; i += N) {
    hn::StoreU(hn::DemoteTo(df16, hn::LoadU(df, in + i)), df16,
               reinterpret_cast<hwy::float16_t*>(out + i));
  }
  for (; i < count; ++i) out[i] = F32ToF16(in[i]);
#else
  for (int64_t i = 0; i < count; ++i) out[i] = F32ToF16(in[i]);
#endif
}

HWY_INLINE void StoreF32AsBF16(const float* HWY_RESTRICT in, uint16_t* HWY_RESTRICT out, int64_t count) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= count; i += N) {
    hn::StoreU(hn::TruncateTo(du16, F32ToBF16Bits(df, hn::LoadU(df, in + i))), du16, out + i);
  }
  (void)du;
  for (; i < count; ++i) out[i] = F32ToBF16(in[i]);
}

// ---------------------------------------------------------------- dequantize

// Decoded block -> kElems floats, the reference's expression per element.
template <class Codec>
HWY_INLINE void DecodedToF32(const DecodedBlock& b, float* HWY_RESTRICT y) {
  const DF df;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<int8_t, DF> di8;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int g = 0; g < Codec::kElems / 16; ++g) {
    const auto a = hn::Set(df, b.a[g]);
    const auto c = hn::Set(df, b.c[g]);
    for (int l = 0; l < 16; l += N) {
      const auto q = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, b.q + 16 * g + l)));
      auto v = hn::Mul(a, q);
      if (Codec::kOp == FloatOp::kMulSub) v = hn::Sub(v, c);
      if (Codec::kOp == FloatOp::kMulAdd) v = hn::Add(v, c);
      hn::StoreU(v, df, y + 16 * g + l);
    }
  }
}

template <class Codec>
HWY_INLINE void DequantizeBlocks(const void* src, float* HWY_RESTRICT y, int64_t n) {
  const auto* x = static_cast<const typename Codec::Block*>(src);
  HWY_ALIGN DecodedBlock dec;
  for (int64_t b = 0; b < n / Codec::kElems; ++b) {
    Codec::Decode(x[b], &dec);
    DecodedToF32<Codec>(dec, y + b * Codec::kElems);
  }
}

// Q4_K/Q5_K rows: the generic path's per-group scale bookkeeping (16
// entries of four arrays per block) costs as much as the values; here the 8
// group factors d * sc and dmin * m are two vector multiplies (the same IEEE
// products), and the values go group by group.
template <class Codec>
HWY_INLINE void DequantizeK32Blocks(const void* src, float* HWY_RESTRICT y, int64_t n) {
  const auto* x = static_cast<const typename Codec::Block*>(src);
  const DF df;
  const hn::CappedTag<float, 8> d8;
  const hn::Rebind<int32_t, decltype(d8)> d8i;
  const hn::Rebind<uint8_t, decltype(d8)> d8u;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<int8_t, DF> di8;
  const int N = static_cast<int>(hn::Lanes(df)), N8 = static_cast<int>(hn::Lanes(d8));
  HWY_ALIGN int8_t q8[kQK_K];
  HWY_ALIGN float a[8], c[8];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto& blk = x[b];
    Codec::DecodeLevels(blk, q8);
    uint32_t u0, u1, u2;
    std::memcpy(&u0, blk.scales, 4);
    std::memcpy(&u1, blk.scales + 4, 4);
    std::memcpy(&u2, blk.scales + 8, 4);
    const uint32_t words[4] = {u0 & 0x3F3F3F3Fu, (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4),
                               u1 & 0x3F3F3F3Fu, ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4)};
    uint8_t sm[16];  // sc[0..7], m[0..7]
    std::memcpy(sm, words, 16);
    const float d = F16ToF32(blk.d), dmin = F16ToF32(blk.dmin);
    for (int j = 0; j < 8; j += N8) {
      const hn::RebindToUnsigned<decltype(d8i)> d8u32;
      const auto sc = hn::ConvertTo(d8, hn::BitCast(d8i, hn::PromoteTo(d8u32, hn::LoadU(d8u, sm + j))));
      const auto mn = hn::ConvertTo(d8, hn::BitCast(d8i, hn::PromoteTo(d8u32, hn::LoadU(d8u, sm + 8 + j))));
      hn::Store(hn::Mul(hn::Set(d8, d), sc), d8, a + j);
      hn::Store(hn::Mul(hn::Set(d8, dmin), mn), d8, c + j);
    }
    float* out = y + b * kQK_K;
    for (int g = 0; g < 8; ++g) {
      const auto va = hn::Set(df, a[g]), vc = hn::Set(df, c[g]);
      for (int l = 0; l < 32; l += N) {
        const auto q = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, q8 + 32 * g + l)));
        hn::StoreU(hn::Sub(hn::Mul(va, q), vc), df, out + 32 * g + l);
      }
    }
  }
}

HWY_INLINE void F16RowToF32(const uint16_t* HWY_RESTRICT h, float* HWY_RESTRICT y, int64_t n) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(F16BitsToF32(df, hn::PromoteTo(du, hn::LoadU(du16, h + i))), df, y + i);
  for (; i < n; ++i) y[i] = F16ToF32(h[i]);
}

HWY_INLINE void BF16RowToF32(const uint16_t* HWY_RESTRICT h, float* HWY_RESTRICT y, int64_t n) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(du16, h + i)))), df, y + i);
  }
  for (; i < n; ++i) y[i] = BF16ToF32(h[i]);
}

// Note: type switches are spelled out. A generic lambda dispatching on the
// codec miscompiled under GCC 12's per-target pragmas (dst left unwritten for
// Q2_K/Q4_K/Q5_K on AVX2 at -O1 and above), so no lambdas in target code.
inline void CheckRow(QuantType type, int64_t n, const char* what) {
  if (type == QuantType::kQ8_K) {
    BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, std::string(what) + ": Q8_K is an activation type");
  }
  RowBytes(type, n);  // throws kShape when the block does not divide n
}

// Dequantizes one row of n elements to f32; bit-exact with
// DequantizeRowReference.
inline void DequantizeRowF32(QuantType type, const void* src, float* dst, int64_t n) {
  CheckRow(type, n, "DequantizeRow");
  switch (type) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case QuantType::kF16: F16RowToF32(static_cast<const uint16_t*>(src), dst, n); return;
    case QuantType::kBF16: BF16RowToF32(static_cast<const uint16_t*>(src), dst, n); return;
    default: break;
  }
  switch (type) {
    case QuantType::kQ4_0: return DequantizeBlocks<CodecQ4_0>(src, dst, n);
    case QuantType::kQ4_1: return DequantizeBlocks<CodecQ4_1>(src, dst, n);
    case QuantType::kQ5_0: return DequantizeBlocks<CodecQ5_0>(src, dst, n);
    case QuantType::kQ5_1: return DequantizeBlocks<CodecQ5_1>(src, dst, n);
    case QuantType::kQ8_0: return DequantizeBlocks<CodecQ8_0>(src, dst, n);
    case QuantType::kQ2_K: return DequantizeBlocks<CodecQ2_K>(src, dst, n);
    case QuantType::kQ3_K: return DequantizeBlocks<CodecQ3_K>(src, dst, n);
    case QuantType::kQ4_K: return DequantizeK32Blocks<CodecQ4_K>(src, dst, n);
    case QuantType::kQ5_K: return DequantizeK32Blocks<CodecQ5_K>(src, dst, n);
    case QuantType::kQ6_K: return DequantizeBlocks<CodecQ6_K>(src, dst, n);
    default: break;
  }
}

// To f16/bf16 bits: the f32 result rounded with F32ToF16 / F32ToBF16.
inline void DequantizeRowHalf(QuantType type, const void* src, uint16_t* dst, int64_t n, bool bf16) {
  CheckRow(type, n, "DequantizeRow");
  if (type == QuantType::kF16 && !bf16) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 2);
    return;
  }
  if (type == QuantType::kBF16 && bf16) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 2);
    return;
  }
  // In chunks of 1024 values (a multiple of every block size) through L1.
  HWY_ALIGN float buf[1024];
  const int64_t step = 1024;
  for (int64_t i = 0; i < n; i += step) {
    const int64_t cnt = std::min(step, n - i);
    DequantizeRowF32(type, static_cast<const uint8_t*>(src) + RowBytes(type, i), buf, cnt);
    if (bf16) {
      StoreF32AsBF16(buf, dst + i, cnt);
    } else {
      StoreF32AsF16(buf, dst + i, cnt);
    }
  }
}

// ---------------------------------------------------------------- Q8 activations

template <class D>
HWY_INLINE float MaxAbs(D df, const float* HWY_RESTRICT x, int count) {
  auto m = hn::Zero(df);
  for (int j = 0; j < count; j += static_cast<int>(hn::Lanes(df))) m = hn::Max(m, hn::Abs(hn::LoadU(df, x + j)));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// Byte-identical with ref::QuantizeRowQ8_K (ties to even: hn::Round).
inline void QuantizeRowQ8K(const float* HWY_RESTRICT x, BlockQ8_K* HWY_RESTRICT y, int64_t n) {
  if (n % kQK_K != 0) BLOCKQUANT_THROW(ErrorCode::kShape, "QuantizeActivationsQ8K: n not a multiple of 256");
  const DF df;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<int8_t, DF> di8;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    const float amax = MaxAbs(df, x, kQK_K);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    const auto id = hn::Set(df, 127.0f / amax);
    const auto hi = hn::Set(df, 127.0f), lo = hn::Set(df, -127.0f);
    for (int j = 0; j < kQK_K; j += N) {
      const auto v = hn::Min(hi, hn::Max(lo, hn::Round(hn::Mul(hn::LoadU(df, x + j), id))));
      hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di32, v)), di8, y[b].qs + j);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * g + l];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = amax / 127.0f;
  }
}

// Byte-identical with ref::QuantizeRowQ8_0 (round half away from zero).
inline void QuantizeRowQ80(const float* HWY_RESTRICT x, BlockQ8_0* HWY_RESTRICT y, int64_t n) {
  if (n % kQK != 0) BLOCKQUANT_THROW(ErrorCode::kShape, "QuantizeActivationsQ8_0: n not a multiple of 32");
  const DF df;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<int8_t, DF> di8;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float amax = MaxAbs(df, x, kQK);
    const float d = amax / 127.0f;
    float idf = d != 0.0f ? 1.0f / d : 0.0f;
    if (std::isinf(idf)) idf = 0.0f;  // as the reference: q = 0 when 1/d overflows
    const auto id = hn::Set(df, idf);
    const auto half = hn::Set(df, 0.5f), one = hn::Set(df, 1.0f);
    y[b].d = F32ToF16Saturate(d);
    for (int j = 0; j < kQK; j += N) {
      const auto t = hn::Mul(hn::LoadU(df, x + j), id);
      // round(t) = trunc(t) + sign(t) where |t - trunc(t)| >= 0.5 (t - trunc(t)
      // is exact, so no double rounding).
      const auto tr = hn::Trunc(t);
      const auto frac = hn::Abs(hn::Sub(t, tr));
      const auto r = hn::Add(tr, hn::IfThenElseZero(hn::Ge(frac, half), hn::CopySign(one, t)));
      hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di32, r)), di8, y[b].qs + j);
    }
  }
}

// ---------------------------------------------------------------- dot products

// Up to kMaxTile activation rows share each decoded weight block.
constexpr int kMaxTile = 4;

using DI16 = hn::CappedTag<int16_t, 16>;

using VI32 = hn::Vec<hn::Repartition<int32_t, DI16>>;

// acc += lanes whose total is sc0 * sum_{i<16} w[i] a[i] + sc1 * sum_{16<=i<32} w[i] a[i].
// |w| <= 128, |a| <= 127, |sc| <= 128: pair sums fit int16 (maddubs does not
// saturate here), and a 256-value block sums well inside int32.
HWY_INLINE VI32 DotScaled32(const int8_t* HWY_RESTRICT w, const int8_t* HWY_RESTRICT a, int16_t sc0,
                            int16_t sc1, VI32 acc) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // x86: u8 x i8 pair products (vpmaddubsw) on |w| and a * sign(w), then
  // vpmaddwd with the two group scales. Highway 1.0.3 has no op for this.
  const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
  const __m256i sc = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(sc0)), _mm_set1_epi16(sc1), 1);
  return VI32{_mm256_add_epi32(acc.raw, _mm256_madd_epi16(p, sc))};
#else
  const DI16 d16;
  const hn::Rebind<int8_t, DI16> d8;
  const hn::Repartition<int32_t, DI16> d32;
  const int N = static_cast<int>(hn::Lanes(d16));
  VI32 acc1 = hn::Zero(d32);
  for (int h = 0; h < 2; ++h) {
    const auto s = hn::Set(d16, h == 0 ? sc0 : sc1);
    for (int l = 0; l < 16; l += N) {
      const auto wq = hn::Mul(hn::PromoteTo(d16, hn::LoadU(d8, w + 16 * h + l)), s);
      acc = hn::ReorderWidenMulAccumulate(d32, wq, hn::PromoteTo(d16, hn::LoadU(d8, a + 16 * h + l)), acc, acc1);
    }
  }
  return hn::RearrangeToOddPlusEven(acc, acc1);
#endif
}

// Activation partner views: the q8 block's ints, scale and 16-group sums.
// The same product split in two so one weight chunk (32 values, two group
// scales) is prepared once and reused for every activation row of a tile.
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
struct PreparedW {
  __m256i absw, w, sc;
};
HWY_INLINE PreparedW PrepareW(const int8_t* HWY_RESTRICT w, int16_t sc0, int16_t sc1) {
  PreparedW p;
  p.w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  p.absw = _mm256_sign_epi8(p.w, p.w);
  p.sc = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(sc0)), _mm_set1_epi16(sc1), 1);
  return p;
}
HWY_INLINE VI32 DotPrepared(const PreparedW& p, const int8_t* HWY_RESTRICT a, VI32 acc) {
  const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i prod = _mm256_maddubs_epi16(p.absw, _mm256_sign_epi8(av, p.w));
  return VI32{_mm256_add_epi32(acc.raw, _mm256_madd_epi16(prod, p.sc))};
}
#else
struct PreparedW {
  const int8_t* w;
  int16_t sc0, sc1;
};
HWY_INLINE PreparedW PrepareW(const int8_t* HWY_RESTRICT w, int16_t sc0, int16_t sc1) { return {w, sc0, sc1}; }
HWY_INLINE VI32 DotPrepared(const PreparedW& p, const int8_t* HWY_RESTRICT a, VI32 acc) {
  return DotScaled32(p.w, a, p.sc0, p.sc1, acc);
}
#endif

// Sum of mn[g] * bsums[g] over 16 groups, as i32 lanes (reduced later).
HWY_INLINE VI32 MinDot16(const int16_t* HWY_RESTRICT mn, const int16_t* HWY_RESTRICT bsums, VI32 acc) {
  const DI16 d16;
  const hn::Repartition<int32_t, DI16> d32;
  VI32 acc1 = hn::Zero(d32);
  for (int l = 0; l < 16; l += static_cast<int>(hn::Lanes(d16))) {
    acc = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, mn + l), hn::LoadU(d16, bsums + l), acc, acc1);
  }
  return hn::RearrangeToOddPlusEven(acc, acc1);
}

struct ActQ8K {
  using Block = BlockQ8_K;
  static HWY_INLINE float Scale(const Block& a) { return a.d; }
  static constexpr bool kHasBsums = true;
  static HWY_INLINE const int16_t* Bsums(const Block& a) { return a.bsums; }
  static HWY_INLINE int GroupSum(const Block& a, int g) { return a.bsums[g]; }
};
struct ActQ80 {
  using Block = BlockQ8_0;
  static HWY_INLINE float Scale(const Block& a) { return F16ToF32Dot(a.d); }
  static constexpr bool kHasBsums = false;
  static HWY_INLINE const int16_t* Bsums(const Block&) { return nullptr; }
  static HWY_INLINE int GroupSum(const Block& a, int g) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += a.qs[16 * g + l];
    return s;
  }
};

// out[r] = dot(weight row, act row r) for r < kTile, act rows quantized to
// the codec's q8 partner. Each weight block is decoded once, and each 32-value
// chunk of it prepared once, for all kTile rows.
template <class Codec, class Act, int kTile>
HWY_NOINLINE void DotQ8Tile(const void* w_row, const typename Act::Block* const* acts, int64_t n,
                            float* out) {
  constexpr int kE = Codec::kElems;
  const auto* w = static_cast<const typename Codec::Block*>(w_row);
  const DI16 d16;
  const hn::Repartition<int32_t, DI16> d32;
  const hn::Rebind<float, decltype(d32)> df32;
  (void)d16;
  HWY_ALIGN DecodedBlock dec;
  using VF = hn::Vec<decltype(df32)>;
  VF acc[kTile], accm[kTile];
  float corr[kTile];
  for (int r = 0; r < kTile; ++r) {
    acc[r] = accm[r] = hn::Zero(df32);
    corr[r] = 0.0f;
  }
  for (int64_t b = 0; b < n / kE; ++b) {
    Codec::Decode(w[b], &dec, /*want_float=*/false);
    // One weight block always matches one activation block: K-quants pair
    // with Q8_K (256 values), legacy types with Q8_0 (32 values).
    VI32 isum[kTile];
    for (int r = 0; r < kTile; ++r) isum[r] = hn::Zero(d32);
    for (int g = 0; g < kE / 16; g += 2) {
      const PreparedW pw = PrepareW(dec.q + 16 * g, dec.sc[g], dec.sc[g + 1]);
      for (int r = 0; r < kTile; ++r) isum[r] = DotPrepared(pw, acts[r][b].qs + 16 * g, isum[r]);
    }
    for (int r = 0; r < kTile; ++r) {
      const typename Act::Block& a = acts[r][b];
      const float da = Act::Scale(a);
      acc[r] = hn::MulAdd(hn::ConvertTo(df32, isum[r]), hn::Set(df32, dec.d * da), acc[r]);
      if (Act::kHasBsums && dec.dmin != 0.0f) {
        const VI32 msum = MinDot16(dec.mn, Act::Bsums(a), hn::Zero(d32));
        accm[r] = hn::MulAdd(hn::ConvertTo(df32, msum), hn::Set(df32, dec.dmin * da), accm[r]);
      }
      if (dec.m != 0.0f) {
        const int asum = Act::GroupSum(a, 0) + Act::GroupSum(a, 1);
        corr[r] += dec.m * da * static_cast<float>(asum);
      }
    }
  }
  for (int r = 0; r < kTile; ++r) out[r] = hn::GetLane(hn::SumOfLanes(df32, hn::Sub(acc[r], accm[r]))) + corr[r];
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// ---------------------------------------------------------------- x86 fused dots
// K-quant x Q8_K and Q8_0/Q4_0 x Q8_0 straight from the packed blocks, no
// decoded copy. Each 32-value chunk becomes unsigned bytes for vpmaddubsw
// (K-quants: the stored levels, before any offset), then vpmaddwd applies
// the chunk's group scales. Offsets (-32 for Q6_K, -4 for Q3_K) and mins
// meet the activation's 16-value sums once per block. Up to kTile activation
// rows share each unpacked chunk. Integer sums are exact; one f32 multiply-
// add per block and row (FMA: the dot bounds do not need the float path's
// bit-exactness).

// f16 scale via F16C (every AVX2 target has it).
HWY_INLINE float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
constexpr int kPrefetchBytes = 2048;
HWY_INLINE __m256i Load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
HWY_INLINE __m256i Bits(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(static_cast<char>(mask)));
}
// 16-bit lane k of both 128-bit halves to every lane of the half (k_lo for
// the low half, k_hi for the high one).
HWY_INLINE __m256i PickMask(int k_lo, int k_hi) {
  const __m128i lo = _mm_set1_epi16(static_cast<int16_t>((2 * k_lo) | ((2 * k_lo + 1) << 8)));
  const __m128i hi = _mm_set1_epi16(static_cast<int16_t>((2 * k_hi) | ((2 * k_hi + 1) << 8)));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Per-type pieces: Setup reads the block's scales; Chunk(c) gives values
// 32c..32c+31 as bytes and ChunkScale(c) their scales as i16 lanes (low half
// of the vector = values 32c..32c+15). kOffset: levels minus kOffset are the
// values (sum offset * scale * bsum is subtracted); kMins: 16 or 32-value
// groups of mins (dmin * sum min * bsum is subtracted), 0 for none.
struct FusedQ4K {
  using Block = BlockQ4_K;
  static constexpr int kOffset = 0, kMins = 32;
  __m256i scales;  // sc[0..7] in both halves
  __m128i mins;    // m[0..7]
  float d, dmin;
  HWY_INLINE void Setup(const Block& b) {
    uint32_t u0, u1, u2;
    std::memcpy(&u0, b.scales, 4);
    std::memcpy(&u1, b.scales + 4, 4);
    std::memcpy(&u2, b.scales + 8, 4);
    // sc[0..3]: low 6 bits of bytes 0..3; sc[4..7]: low nibbles of 8..11 with
    // the top 2 bits of bytes 0..3; mins likewise from bytes 4..7 and 8..11.
    const uint32_t sc_lo = u0 & 0x3F3F3F3Fu, m_lo = u1 & 0x3F3F3F3Fu;
    const uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
    scales = _mm256_broadcastsi128_si256(
        _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(sc_hi), static_cast<int>(sc_lo))));
    mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(m_hi), static_cast<int>(m_lo)));
    d = HalfToFloat(b.d);
    dmin = HalfToFloat(b.dmin);
  }
  static HWY_INLINE __m256i Chunk(const Block& b, int c) {
    return Bits(Load32(b.qs + 32 * (c / 2)), 4 * (c % 2), 0x0F);
  }
  HWY_INLINE __m256i ChunkScale(int c) const { return _mm256_shuffle_epi8(scales, PickMask(c, c)); }
};

struct FusedQ5K : FusedQ4K {
  using Block = BlockQ5_K;
  HWY_INLINE void Setup(const Block& b) { FusedQ4K::Setup(reinterpret_cast<const BlockQ4_K&>(b)); }
  static HWY_INLINE __m256i Chunk(const Block& b, int c) {
    const __m256i low = Bits(Load32(b.qs + 32 * (c / 2)), 4 * (c % 2), 0x0F);
    return _mm256_or_si256(low, _mm256_slli_epi16(Bits(Load32(b.qh), c, 0x01), 4));
  }
};

// Scales of 16-value groups, as i16, split by half: half h holds groups
// 8h..8h+7, which are the groups of chunks 4h..4h+3.
struct Scales16 {
  __m256i half[2];
  __m256i all;  // the 16 scales, for the bsums
  HWY_INLINE void Set(__m128i sc8) {  // 16 signed bytes
    all = _mm256_cvtepi8_epi16(sc8);
    half[0] = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(all));
    half[1] = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(all, 1));
  }
  HWY_INLINE __m256i Chunk(int c) const {
    return _mm256_shuffle_epi8(half[c / 4], PickMask(2 * (c % 4), 2 * (c % 4) + 1));
  }
};

struct FusedQ6K {
  using Block = BlockQ6_K;
  static constexpr int kOffset = 32, kMins = 0;
  Scales16 sc;
  __m128i mins;  // unused
  float d, dmin = 0.0f;
  HWY_INLINE void Setup(const Block& b) {
    sc.Set(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    d = HalfToFloat(b.d);
  }
  // value 128h + 32k + l: nibble (k >= 2: high) of ql[64h + 32(k % 2) + l],
  // bits 2k..2k+1 of qh[32h + l] above it.
  static HWY_INLINE __m256i Chunk(const Block& b, int c) {
    const int h = c / 4, k = c % 4;
    const __m256i low = Bits(Load32(b.ql + 64 * h + 32 * (k % 2)), 4 * (k / 2), 0x0F);
    return _mm256_or_si256(low, _mm256_slli_epi16(Bits(Load32(b.qh + 32 * h), 2 * k, 0x03), 4));
  }
  HWY_INLINE __m256i ChunkScale(int c) const { return sc.Chunk(c); }
};

struct FusedQ3K {
  using Block = BlockQ3_K;
  static constexpr int kOffset = 4, kMins = 0;
  Scales16 sc;
  __m128i mins;
  float d, dmin = 0.0f;
  HWY_INLINE void Setup(const Block& b) {
    uint32_t a, bb, c;
    std::memcpy(&a, b.scales, 4);
    std::memcpy(&bb, b.scales + 4, 4);
    std::memcpy(&c, b.scales + 8, 4);
    // Group g: low nibble from byte g (g < 8) or the high one of byte g - 8,
    // 2 high bits from byte 8 + g % 4 at bit 2 * (g / 4); stored + 32.
    const uint32_t w0 = (a & 0x0F0F0F0Fu) | ((c & 0x03030303u) << 4);
    const uint32_t w1 = (bb & 0x0F0F0F0Fu) | (((c >> 2) & 0x03030303u) << 4);
    const uint32_t w2 = ((a >> 4) & 0x0F0F0F0Fu) | (((c >> 4) & 0x03030303u) << 4);
    const uint32_t w3 = ((bb >> 4) & 0x0F0F0F0Fu) | (((c >> 6) & 0x03030303u) << 4);
    const __m128i biased = _mm_set_epi32(static_cast<int>(w3), static_cast<int>(w2), static_cast<int>(w1),
                                         static_cast<int>(w0));
    sc.Set(_mm_sub_epi8(biased, _mm_set1_epi8(32)));
    d = HalfToFloat(b.d);
  }
  // low 2 bits: bits 2j of qs[32h + l] for value 128h + 32j + l; high bit:
  // bit c of hmask[l] for value 32c + l.
  static HWY_INLINE __m256i Chunk(const Block& b, int c) {
    const __m256i low = Bits(Load32(b.qs + 32 * (c / 4)), 2 * (c % 4), 0x03);
    return _mm256_or_si256(low, _mm256_slli_epi16(Bits(Load32(b.hmask), c, 0x01), 2));
  }
  HWY_INLINE __m256i ChunkScale(int c) const { return sc.Chunk(c); }
};

struct FusedQ2K {
  using Block = BlockQ2_K;
  static constexpr int kOffset = 0, kMins = 16;
  Scales16 sc;
  __m256i mins16;
  __m128i mins;
  float d, dmin;
  HWY_INLINE void Setup(const Block& b) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    sc.Set(_mm_and_si128(raw, low4));
    mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low4));
    d = HalfToFloat(b.d);
    dmin = HalfToFloat(b.dmin);
  }
  static HWY_INLINE __m256i Chunk(const Block& b, int c) {
    return Bits(Load32(b.qs + 32 * (c / 4)), 2 * (c % 4), 0x03);
  }
  HWY_INLINE __m256i ChunkScale(int c) const { return sc.Chunk(c); }
};

template <class K, int kTile>
HWY_NOINLINE void DotFusedK(const void* w_row, const BlockQ8_K* const* acts, int64_t n, float* out) {
  const auto* w = static_cast<const typename K::Block*>(w_row);
  __m256 acc[kTile];
  __m256 accm[kTile];
  for (int r = 0; r < kTile; ++r) acc[r] = accm[r] = _mm256_setzero_ps();
  K k;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const typename K::Block& blk = w[b];
    // Software prefetch well ahead of the hardware streamer (reads past the
    // row end are harmless hints).
    for (size_t o = 0; o < sizeof(blk); o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(&blk) + kPrefetchBytes + o, _MM_HINT_T0);
    }
    k.Setup(blk);
    __m256i isum[kTile];
    for (int r = 0; r < kTile; ++r) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
      const __m256i q = K::Chunk(blk, c);
      const __m256i s = k.ChunkScale(c);
      for (int r = 0; r < kTile; ++r) {
        const __m256i p = _mm256_maddubs_epi16(q, Load32(acts[r][b].qs + 32 * c));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, s));
      }
    }
    for (int r = 0; r < kTile; ++r) {
      const BlockQ8_K& a = acts[r][b];
      if constexpr (K::kOffset != 0) {
        const __m256i off = _mm256_madd_epi16(Load32(a.bsums), k.sc.all);
        isum[r] = _mm256_sub_epi32(isum[r], _mm256_mullo_epi32(off, _mm256_set1_epi32(K::kOffset)));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(k.d * a.d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      if constexpr (K::kMins == 16) {
        const __m256i msum = _mm256_madd_epi16(Load32(a.bsums), k.mins16);
        accm[r] = _mm256_fmadd_ps(_mm256_set1_ps(k.dmin * a.d), _mm256_cvtepi32_ps(msum), accm[r]);
      } else if constexpr (K::kMins == 32) {
        // Pairs of 16-value sums are the 32-value group sums.
        const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums)),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums + 8)));
        const __m128i msum = _mm_madd_epi16(pairs, k.mins);
        const __m256 m = _mm256_castps128_ps256(_mm_cvtepi32_ps(msum));
        accm[r] = _mm256_add_ps(accm[r], _mm256_mul_ps(_mm256_set1_ps(k.dmin * a.d),
                                                       _mm256_insertf128_ps(m, _mm_setzero_ps(), 1)));
      }
    }
  }
  for (int r = 0; r < kTile; ++r) {
    const __m256 v = _mm256_sub_ps(acc[r], accm[r]);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    out[r] = _mm_cvtss_f32(t);
  }
}

// Q8_0 / Q4_0 x Q8_0: |w| and sign(a) * sign(w) bytes for vpmaddubsw.
template <bool kQ4, int kTile>
HWY_NOINLINE void DotFusedLegacy(const void* w_row, const BlockQ8_0* const* acts, int64_t n, float* out) {
  __m256 acc[kTile];
  for (int r = 0; r < kTile; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const char* base = static_cast<const char*>(w_row);
  const size_t block_bytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  for (int64_t b = 0; b < n / kQK; ++b) {
    if (b % 2 == 0) _mm_prefetch(base + static_cast<size_t>(b) * block_bytes + kPrefetchBytes, _MM_HINT_T0);
    __m256i q;
    float d;
    if constexpr (kQ4) {
      const BlockQ4_0& blk = static_cast<const BlockQ4_0*>(w_row)[b];
      // Low nibbles are values 0..15, high nibbles 16..31; stored + 8.
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs));
      const __m128i low4 = _mm_set1_epi8(0x0F);
      q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(raw, low4)),
                                  _mm_and_si128(_mm_srli_epi16(raw, 4), low4), 1);
      q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
      d = HalfToFloat(blk.d);
    } else {
      const BlockQ8_0& blk = static_cast<const BlockQ8_0*>(w_row)[b];
      q = Load32(blk.qs);
      d = HalfToFloat(blk.d);
    }
    const __m256i absq = _mm256_sign_epi8(q, q);
    for (int r = 0; r < kTile; ++r) {
      const BlockQ8_0& a = acts[r][b];
      const __m256i p = _mm256_maddubs_epi16(absq, _mm256_sign_epi8(Load32(a.qs), q));
      const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * HalfToFloat(a.d)), f, acc[r]);
    }
  }
  for (int r = 0; r < kTile; ++r) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    out[r] = _mm_cvtss_f32(t);
  }
}

template <class K, class Act>
HWY_INLINE void DotFusedKN(const void* w_row, const Act* const* acts, int tile, int64_t n, float* out) {
  switch (tile) {
    case 1: return DotFusedK<K, 1>(w_row, acts, n, out);
    case 2: return DotFusedK<K, 2>(w_row, acts, n, out);
    case 3: return DotFusedK<K, 3>(w_row, acts, n, out);
    default: return DotFusedK<K, 4>(w_row, acts, n, out);
  }
}
template <bool kQ4, class Act>
HWY_INLINE void DotFusedLegacyN(const void* w_row, const Act* const* acts, int tile, int64_t n, float* out) {
  switch (tile) {
    case 1: return DotFusedLegacy<kQ4, 1>(w_row, acts, n, out);
    case 2: return DotFusedLegacy<kQ4, 2>(w_row, acts, n, out);
    case 3: return DotFusedLegacy<kQ4, 3>(w_row, acts, n, out);
    default: return DotFusedLegacy<kQ4, 4>(w_row, acts, n, out);
  }
}
#endif

template <class Codec, class Act>
HWY_INLINE void DotQ8TileN(const void* w_row, const typename Act::Block* const* acts, int tile, int64_t n,
                           float* out) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if constexpr (std::is_same<Codec, CodecQ4_K>::value) return DotFusedKN<FusedQ4K>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ5_K>::value) return DotFusedKN<FusedQ5K>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ6_K>::value) return DotFusedKN<FusedQ6K>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ3_K>::value) return DotFusedKN<FusedQ3K>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ2_K>::value) return DotFusedKN<FusedQ2K>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ8_0>::value) return DotFusedLegacyN<false>(w_row, acts, tile, n, out);
  if constexpr (std::is_same<Codec, CodecQ4_0>::value) return DotFusedLegacyN<true>(w_row, acts, tile, n, out);
#endif
  switch (tile) {
    case 1: return DotQ8Tile<Codec, Act, 1>(w_row, acts, n, out);
    case 2: return DotQ8Tile<Codec, Act, 2>(w_row, acts, n, out);
    case 3: return DotQ8Tile<Codec, Act, 3>(w_row, acts, n, out);
    default: return DotQ8Tile<Codec, Act, 4>(w_row, acts, n, out);
  }
}

// out[r] = dot(weight row, x row r) with float activations: each block is
// decoded to f32 (bit-exact dequantization) and multiplied in with FMA.
template <class Codec>
HWY_NOINLINE void DotF32Tile(const void* w_row, const float* const* xs, int tile, int64_t n, float* out) {
  constexpr int kE = Codec::kElems;
  const auto* w = static_cast<const typename Codec::Block*>(w_row);
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  HWY_ALIGN DecodedBlock dec;
  HWY_ALIGN float wf[kQK_K];
  using VF = hn::Vec<DF>;
  VF acc[kMaxTile];
  for (int r = 0; r < kMaxTile; ++r) acc[r] = hn::Zero(df);
  for (int64_t b = 0; b < n / kE; ++b) {
    Codec::Decode(w[b], &dec);
    DecodedToF32<Codec>(dec, wf);
    for (int r = 0; r < tile; ++r) {
      const float* x = xs[r] + b * kE;
      for (int i = 0; i < kE; i += N) acc[r] = hn::MulAdd(hn::LoadU(df, wf + i), hn::LoadU(df, x + i), acc[r]);
    }
  }
  for (int r = 0; r < tile; ++r) out[r] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
}

// F32/F16/BF16 weights x f32 activations: the float baselines.
template <int kKind>  // 0 f32, 1 f16, 2 bf16
HWY_NOINLINE void DotFloatTile(const void* w_row, const float* const* xs, int tile, int64_t n, float* out) {
  const DF df;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> du16;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  using VF = hn::Vec<DF>;
  VF acc[kMaxTile], acc2[kMaxTile];
  for (int r = 0; r < kMaxTile; ++r) acc[r] = acc2[r] = hn::Zero(df);
  auto load = [&](int64_t i) {
    if (kKind == 0) return hn::LoadU(df, static_cast<const float*>(w_row) + i);
    const auto h = hn::PromoteTo(du, hn::LoadU(du16, static_cast<const uint16_t*>(w_row) + i));
    if (kKind == 1) return F16BitsToF32(df, h);
    return hn::BitCast(df, hn::ShiftLeft<16>(h));
  };
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto w0 = load(i), w1 = load(i + N);
    for (int r = 0; r < tile; ++r) {
      acc[r] = hn::MulAdd(w0, hn::LoadU(df, xs[r] + i), acc[r]);
      acc2[r] = hn::MulAdd(w1, hn::LoadU(df, xs[r] + i + N), acc2[r]);
    }
  }
  for (; i + N <= n; i += N) {
    const auto w0 = load(i);
    for (int r = 0; r < tile; ++r) acc[r] = hn::MulAdd(w0, hn::LoadU(df, xs[r] + i), acc[r]);
  }
  for (int r = 0; r < tile; ++r) {
    float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc[r], acc2[r])));
    for (int64_t k = i; k < n; ++k) {
      float wv;
      if (kKind == 0) {
        wv = static_cast<const float*>(w_row)[k];
      } else if (kKind == 1) {
        wv = F16ToF32(static_cast<const uint16_t*>(w_row)[k]);
      } else {
        wv = BF16ToF32(static_cast<const uint16_t*>(w_row)[k]);
      }
      s += wv * xs[r][k];
    }
    out[r] = s;
  }
}

// One weight row times `tile` activation rows (pointers to their rows).
// q8 == true: activations are Q8_K (K-quants) or Q8_0 blocks; else f32.
inline void DotRowTile(QuantType type, const void* w_row, const void* const* acts, int tile, int64_t n,
                       bool q8, float* out) {
  if (!q8 || type == QuantType::kF32 || type == QuantType::kF16 || type == QuantType::kBF16) {
    const float* const* xs = reinterpret_cast<const float* const*>(acts);
    switch (type) {
      case QuantType::kF32: return DotFloatTile<0>(w_row, xs, tile, n, out);
      case QuantType::kF16: return DotFloatTile<1>(w_row, xs, tile, n, out);
      case QuantType::kBF16: return DotFloatTile<2>(w_row, xs, tile, n, out);
      default: break;
    }
    switch (type) {
      case QuantType::kQ4_0: return DotF32Tile<CodecQ4_0>(w_row, xs, tile, n, out);
      case QuantType::kQ4_1: return DotF32Tile<CodecQ4_1>(w_row, xs, tile, n, out);
      case QuantType::kQ5_0: return DotF32Tile<CodecQ5_0>(w_row, xs, tile, n, out);
      case QuantType::kQ5_1: return DotF32Tile<CodecQ5_1>(w_row, xs, tile, n, out);
      case QuantType::kQ8_0: return DotF32Tile<CodecQ8_0>(w_row, xs, tile, n, out);
      case QuantType::kQ2_K: return DotF32Tile<CodecQ2_K>(w_row, xs, tile, n, out);
      case QuantType::kQ3_K: return DotF32Tile<CodecQ3_K>(w_row, xs, tile, n, out);
      case QuantType::kQ4_K: return DotF32Tile<CodecQ4_K>(w_row, xs, tile, n, out);
      case QuantType::kQ5_K: return DotF32Tile<CodecQ5_K>(w_row, xs, tile, n, out);
      case QuantType::kQ6_K: return DotF32Tile<CodecQ6_K>(w_row, xs, tile, n, out);
      default: return;
    }
  }
  const auto* k8 = reinterpret_cast<const BlockQ8_K* const*>(acts);
  const auto* l8 = reinterpret_cast<const BlockQ8_0* const*>(acts);
  switch (type) {
    case QuantType::kQ4_0: return DotQ8TileN<CodecQ4_0, ActQ80>(w_row, l8, tile, n, out);
    case QuantType::kQ4_1: return DotQ8TileN<CodecQ4_1, ActQ80>(w_row, l8, tile, n, out);
    case QuantType::kQ5_0: return DotQ8TileN<CodecQ5_0, ActQ80>(w_row, l8, tile, n, out);
    case QuantType::kQ5_1: return DotQ8TileN<CodecQ5_1, ActQ80>(w_row, l8, tile, n, out);
    case QuantType::kQ8_0: return DotQ8TileN<CodecQ8_0, ActQ80>(w_row, l8, tile, n, out);
    case QuantType::kQ2_K: return DotQ8TileN<CodecQ2_K, ActQ8K>(w_row, k8, tile, n, out);
    case QuantType::kQ3_K: return DotQ8TileN<CodecQ3_K, ActQ8K>(w_row, k8, tile, n, out);
    case QuantType::kQ4_K: return DotQ8TileN<CodecQ4_K, ActQ8K>(w_row, k8, tile, n, out);
    case QuantType::kQ5_K: return DotQ8TileN<CodecQ5_K, ActQ8K>(w_row, k8, tile, n, out);
    case QuantType::kQ6_K: return DotQ8TileN<CodecQ6_K, ActQ8K>(w_row, k8, tile, n, out);
    default: return;
  }
}

// Quantized (or float) weight row x q8 partner activation row.
inline float VecDotQ8(QuantType type, const void* w_row, const void* act_row, int64_t n) {
  CheckRow(type, n, "VecDot");
  float out;
  const void* acts[1] = {act_row};
  DotRowTile(type, w_row, acts, 1, n, true, &out);
  return out;
}

inline float VecDotF32(QuantType type, const void* w_row, const float* x, int64_t n) {
  CheckRow(type, n, "VecDotF32");
  float out;
  const void* acts[1] = {x};
  DotRowTile(type, w_row, acts, 1, n, false, &out);
  return out;
}

// y[j][r] = sum_k x[j][k] * W[r][k] for j < n, r < rows. q8: activations are
// first quantized to the weight type's q8 partner (F32/F16/BF16 weights
// always use f32 activations). Parallel over chunks of output rows; each task
// writes its own rows, so results do not depend on the ParallelFor.
inline void MatMul(QuantType type, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                   float* y, bool q8, const ParallelFor& pf) {
  CheckRow(type, cols, "MatMul");
  if (rows < 0 || n < 0) BLOCKQUANT_THROW(ErrorCode::kShape, "MatMul: negative rows or n");
  const bool use_q8 = q8 && Traits(type).is_quantized;
  const bool k_partner = Traits(type).vec_dot_type == QuantType::kQ8_K;
  const int64_t row_bytes = RowBytes(type, cols);
  std::vector<uint8_t> qact;
  int64_t act_bytes = cols * 4;
  if (use_q8) {
    act_bytes = RowBytes(k_partner ? QuantType::kQ8_K : QuantType::kQ8_0, cols);
    qact.resize(static_cast<size_t>(act_bytes * n));
    for (int64_t j = 0; j < n; ++j) {
      if (k_partner) {
        QuantizeRowQ8K(x + j * cols, reinterpret_cast<BlockQ8_K*>(qact.data() + j * act_bytes), cols);
      } else {
        QuantizeRowQ80(x + j * cols, reinterpret_cast<BlockQ8_0*>(qact.data() + j * act_bytes), cols);
      }
    }
  }
  const uint8_t* act_base = use_q8 ? qact.data() : reinterpret_cast<const uint8_t*>(x);
  // Rows per task: enough to amortize scheduling, few enough to balance.
  const int64_t kRowsPerTask = 16;
  const size_t tasks = static_cast<size_t>((rows + kRowsPerTask - 1) / kRowsPerTask);
  pf(tasks, [&](size_t begin, size_t end) {
    const int64_t r0 = static_cast<int64_t>(begin) * kRowsPerTask;
    const int64_t r1 = std::min(rows, static_cast<int64_t>(end) * kRowsPerTask);
    for (int64_t j0 = 0; j0 < n; j0 += kMaxTile) {
      const int tile = static_cast<int>(std::min<int64_t>(kMaxTile, n - j0));
      const void* acts[kMaxTile];
      for (int t = 0; t < tile; ++t) acts[t] = act_base + (j0 + t) * act_bytes;
      float out[kMaxTile];
      for (int64_t r = r0; r < r1; ++r) {
        DotRowTile(type, static_cast<const uint8_t*>(w) + r * row_bytes, acts, tile, cols, use_q8, out);
        for (int t = 0; t < tile; ++t) y[(j0 + t) * rows + r] = out[t];
      }
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace v0
}  // namespace blockquant
HWY_AFTER_NAMESPACE();

#endif  // BLOCKQUANT_CPU_KERNELS_INL_H_
