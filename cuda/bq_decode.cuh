// Device-side block decoding for the GGUF block types (blocks.h structs).
//
// Two kinds of decoder live here:
// - exact decoders (DecodeExact8) that reproduce the scalar reference
//   (quant/dequantize.h) bit for bit in f32: per-group factors first, each
//   product rounded separately (__fmul_rn/__fsub_rn, so nvcc cannot contract
//   a * q - b into an FMA);
// - code extractors (StageTraits<T>) used by the tensor-core kernels: they
//   return the small unsigned integer codes u of four consecutive elements
//   packed in one u32 (value = a_group * (u - kOffset) - b_group), so the
//   matrix units multiply exact integers and the scales are applied in f32.
#ifndef BLOCKQUANT_CUDA_BQ_DECODE_CUH_
#define BLOCKQUANT_CUDA_BQ_DECODE_CUH_

#include <cuda_fp16.h>

#include <cstdint>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {

// Byte readers that need only 2-byte alignment (blocks of Q8_0, Q6_K, ...
// start at even offsets only).
__device__ __forceinline__ uint32_t LoadU16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}
// f16 -> f32 is exact, so the hardware conversion equals F16ToF32 (NaN
// payloads aside).
__device__ __forceinline__ float LoadF16(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

// Four bytes at an even address: one aligned load, or two plus a byte permute.
__device__ __forceinline__ uint32_t LoadU32Even(const uint8_t* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if ((a & 3u) == 0) return *reinterpret_cast<const uint32_t*>(p);
  const uint32_t* q = reinterpret_cast<const uint32_t*>(a & ~static_cast<uintptr_t>(3));
  return __byte_perm(q[0], q[1], 0x5432);
}

// 6-bit scale and min of group j (0..7) of Q4_K/Q5_K (FORMATS.md).
__device__ __forceinline__ void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block, one per byte:
// sc[0] holds groups 0..3, sc[1] groups 4..7 (same for m). w0..w2 are the
// 12 scale bytes as little-endian words.
__device__ __forceinline__ void UnpackScaleMinK4x8(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t* sc,
                                                   uint32_t* m) {
  sc[0] = w0 & 0x3F3F3F3Fu;
  m[0] = w1 & 0x3F3F3F3Fu;
  sc[1] = (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u);
  m[1] = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u);
}

// 6-bit scale index S_g (0..63) of group g (0..15) of Q3_K.
__device__ __forceinline__ int ScaleQ3K(int g, const uint8_t* s) {
  const int low = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
  const int high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
  return low | (high << 4);
}

// The 16 six-bit scale indices S_g of a Q3_K super-block, one per byte:
// S[k] holds groups 4k..4k+3 (low nibbles of scales[0..7], then the high
// nibbles; the top 2 bits are bits 2k, 2k + 1 of scales[8 + g % 4]). w0..w2
// are the 12 scale bytes as little-endian words.
__device__ __forceinline__ void UnpackScalesQ3Kx16(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t* S) {
  const uint32_t low[4] = {w0 & 0x0F0F0F0Fu, w1 & 0x0F0F0F0Fu, (w0 >> 4) & 0x0F0F0F0Fu, (w1 >> 4) & 0x0F0F0F0Fu};
#pragma unroll
  for (int k = 0; k < 4; ++k) S[k] = low[k] | (((w2 >> (2 * k)) & 0x03030303u) << 4);
}

// ---------------------------------------------------------------------------
// Exact f32 decoding of 8 consecutive elements e0..e0+7 (e0 % 8 == 0) of one
// block, bit-identical to ref::DequantizeRowXxx.
template <QuantType kType>
struct ExactDecoder;

template <>
struct ExactDecoder<QuantType::kQ4_0> {
  static constexpr int kElems = kQK, kBytes = 18;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b);
    const int l0 = e0 % 16, shift = e0 < 16 ? 0 : 4;
    for (int i = 0; i < 8; ++i) {
      const int q = (b[2 + l0 + i] >> shift) & 0xF;
      out[i] = __fmul_rn(d, static_cast<float>(q - 8));
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ8_0> {
  static constexpr int kElems = kQK, kBytes = 34;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b);
    for (int i = 0; i < 8; ++i) {
      out[i] = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(b[2 + e0 + i])));
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ2_K> {
  static constexpr int kElems = kQK_K, kBytes = 84;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b + 80), dmin = LoadF16(b + 82);
    const int g = e0 / 16, h = e0 / 128, j = (e0 % 128) / 32, l0 = e0 % 32;
    const float a = __fmul_rn(d, static_cast<float>(b[g] & 0xF));
    const float m = __fmul_rn(dmin, static_cast<float>(b[g] >> 4));
    for (int i = 0; i < 8; ++i) {
      const int q = (b[16 + 32 * h + l0 + i] >> (2 * j)) & 3;
      out[i] = __fsub_rn(__fmul_rn(a, static_cast<float>(q)), m);
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ3_K> {
  static constexpr int kElems = kQK_K, kBytes = 110;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b + 108);
    const int g = e0 / 16, h = e0 / 128, j = (e0 % 128) / 32, l0 = e0 % 32, k = e0 / 32;
    const float a = __fmul_rn(d, static_cast<float>(ScaleQ3K(g, b + 96) - 32));
    for (int i = 0; i < 8; ++i) {
      const int low2 = (b[32 + 32 * h + l0 + i] >> (2 * j)) & 3;
      const int high = (b[l0 + i] >> k) & 1;
      out[i] = __fmul_rn(a, static_cast<float>(low2 + 4 * high - 4));
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ4_K> {
  static constexpr int kElems = kQK_K, kBytes = 144;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b), dmin = LoadF16(b + 2);
    const int j = e0 / 32, l0 = e0 % 32;
    int sc, m;
    ScaleMinK4(j, b + 4, &sc, &m);
    const float a = __fmul_rn(d, static_cast<float>(sc)), c = __fmul_rn(dmin, static_cast<float>(m));
    const uint8_t* q = b + 16 + 32 * (j / 2) + l0;
    const int shift = 4 * (j % 2);
    for (int i = 0; i < 8; ++i) {
      out[i] = __fsub_rn(__fmul_rn(a, static_cast<float>((q[i] >> shift) & 0xF)), c);
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ5_K> {
  static constexpr int kElems = kQK_K, kBytes = 176;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b), dmin = LoadF16(b + 2);
    const int j = e0 / 32, l0 = e0 % 32;
    int sc, m;
    ScaleMinK4(j, b + 4, &sc, &m);
    const float a = __fmul_rn(d, static_cast<float>(sc)), c = __fmul_rn(dmin, static_cast<float>(m));
    const uint8_t* q = b + 48 + 32 * (j / 2) + l0;
    const uint8_t* qh = b + 16 + l0;
    const int shift = 4 * (j % 2);
    for (int i = 0; i < 8; ++i) {
      const int v = ((q[i] >> shift) & 0xF) | (((qh[i] >> j) & 1) << 4);
      out[i] = __fsub_rn(__fmul_rn(a, static_cast<float>(v)), c);
    }
  }
};

template <>
struct ExactDecoder<QuantType::kQ6_K> {
  static constexpr int kElems = kQK_K, kBytes = 210;
  __device__ static void Decode8(const uint8_t* b, int e0, float* out) {
    const float d = LoadF16(b + 208);
    const int h = e0 / 128, k = (e0 % 128) / 32, l0 = e0 % 32;
    const float a = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(b[192 + e0 / 16])));
    for (int i = 0; i < 8; ++i) {
      const uint8_t lbyte = b[64 * h + 32 * (k % 2) + l0 + i];
      const int low = k < 2 ? (lbyte & 0xF) : (lbyte >> 4);
      const int high = (b[128 + 32 * h + l0 + i] >> (2 * k)) & 3;
      out[i] = __fmul_rn(a, static_cast<float>((low | (high << 4)) - 32));
    }
  }
};

// ---------------------------------------------------------------------------
// Stage traits for the tensor-core kernels. A stage is 256 elements of one
// row (one super-block, or 8 legacy blocks): kStageBytes contiguous bytes.
// Groups are the runs of kGroup elements sharing one scale (and min).
// Codes(base, e) returns the codes u of elements e..e+3 (e % 4 == 0, all in
// one group), one per byte; Factors(base, j) the f32 factors a, b of group j
// computed exactly as the reference does (value = a * (u - kOffset) - b).
// For the K-quants the value is also d * sc_j * u - F * m_j with small
// integers sc_j (|sc_j| <= kMaxScale) and m_j from GroupInts, d = SuperD and
// -F = SuperF; kMinKind: 0 no m term, 1 m_j is the min (F = dmin), 2 m_j is
// kOffset * sc_j (F = d).
template <QuantType kType>
struct StageTraits;

template <>
struct StageTraits<QuantType::kQ4_K> {
  static constexpr int kStageBytes = 144, kGroup = 32, kOffset = 0, kMaxCode = 15;
  static constexpr bool kHasMin = true;
  static constexpr int kMinKind = 1, kMaxScale = 63;
  static constexpr bool kHeaderK4 = true;  // d, dmin, 12 scale bytes in the first 16 bytes
  __device__ static void GroupInts(const uint8_t* s, int j, int* sc, int* m) { ScaleMinK4(j, s + 4, sc, m); }
  __device__ static float SuperD(const uint8_t* s) { return LoadF16(s); }
  __device__ static float SuperF(const uint8_t* s) { return -LoadF16(s + 2); }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int j = e / 32;
    const uint32_t w = *reinterpret_cast<const uint32_t*>(s + 16 + 32 * (j / 2) + e % 32);
    return (j & 1) ? (w >> 4) & 0x0F0F0F0Fu : w & 0x0F0F0F0Fu;
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    int sc, m;
    ScaleMinK4(j, s + 4, &sc, &m);
    *a = __fmul_rn(LoadF16(s), static_cast<float>(sc));
    *b = __fmul_rn(LoadF16(s + 2), static_cast<float>(m));
  }
};

template <>
struct StageTraits<QuantType::kQ5_K> {
  static constexpr int kStageBytes = 176, kGroup = 32, kOffset = 0, kMaxCode = 31;
  static constexpr bool kHasMin = true;
  static constexpr int kMinKind = 1, kMaxScale = 63;
  static constexpr bool kHeaderK4 = true;  // d, dmin, 12 scale bytes in the first 16 bytes
  __device__ static void GroupInts(const uint8_t* s, int j, int* sc, int* m) { ScaleMinK4(j, s + 4, sc, m); }
  __device__ static float SuperD(const uint8_t* s) { return LoadF16(s); }
  __device__ static float SuperF(const uint8_t* s) { return -LoadF16(s + 2); }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int j = e / 32, l = e % 32;
    const uint32_t w = *reinterpret_cast<const uint32_t*>(s + 48 + 32 * (j / 2) + l);
    const uint32_t h = *reinterpret_cast<const uint32_t*>(s + 16 + l);
    const uint32_t low = (j & 1) ? (w >> 4) & 0x0F0F0F0Fu : w & 0x0F0F0F0Fu;
    return low | (((h >> j) & 0x01010101u) << 4);
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    StageTraits<QuantType::kQ4_K>::Factors(s, j, a, b);
  }
};

template <>
struct StageTraits<QuantType::kQ6_K> {
  static constexpr bool kHeaderK4 = false;
  static constexpr int kStageBytes = 210, kGroup = 16, kOffset = 32, kMaxCode = 63;
  static constexpr bool kHasMin = false;
  static constexpr int kMinKind = 0, kMaxScale = 128;
  __device__ static void GroupInts(const uint8_t* s, int j, int* sc, int* m) {
    *sc = static_cast<int8_t>(s[192 + j]);
    *m = 0;
  }
  __device__ static float SuperD(const uint8_t* s) { return LoadF16(s + 208); }
  __device__ static float SuperF(const uint8_t*) { return 0.0f; }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint32_t ql = LoadU32Even(s + 64 * h + 32 * (k % 2) + l);
    const uint32_t qh = LoadU32Even(s + 128 + 32 * h + l);
    const uint32_t low = k < 2 ? ql & 0x0F0F0F0Fu : (ql >> 4) & 0x0F0F0F0Fu;
    return low | (((qh >> (2 * k)) & 0x03030303u) << 4);
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    *a = __fmul_rn(LoadF16(s + 208), static_cast<float>(static_cast<int8_t>(s[192 + j])));
    *b = 0.0f;
  }
};

template <>
struct StageTraits<QuantType::kQ2_K> {
  static constexpr bool kHeaderK4 = false;
  static constexpr int kStageBytes = 84, kGroup = 16, kOffset = 0, kMaxCode = 3;
  static constexpr bool kHasMin = true;
  static constexpr int kMinKind = 1, kMaxScale = 15;
  __device__ static void GroupInts(const uint8_t* s, int j, int* sc, int* m) {
    *sc = s[j] & 0xF;
    *m = s[j] >> 4;
  }
  __device__ static float SuperD(const uint8_t* s) { return LoadF16(s + 80); }
  __device__ static float SuperF(const uint8_t* s) { return -LoadF16(s + 82); }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const uint32_t w = *reinterpret_cast<const uint32_t*>(s + 16 + 32 * h + l);
    return (w >> (2 * j)) & 0x03030303u;
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    *a = __fmul_rn(LoadF16(s + 80), static_cast<float>(s[j] & 0xF));
    *b = __fmul_rn(LoadF16(s + 82), static_cast<float>(s[j] >> 4));
  }
};

template <>
struct StageTraits<QuantType::kQ3_K> {
  static constexpr bool kHeaderK4 = false;
  static constexpr int kStageBytes = 110, kGroup = 16, kOffset = 4, kMaxCode = 7;
  static constexpr bool kHasMin = false;
  // Folded, the offset 4 becomes a min: value = d*sc*u - d*(4*sc).
  static constexpr int kMinKind = 2, kMaxScale = 32;
  __device__ static void GroupInts(const uint8_t* s, int j, int* sc, int* m) {
    *sc = ScaleQ3K(j, s + 96) - 32;
    *m = 4 * *sc;
  }
  __device__ static float SuperD(const uint8_t* s) { return LoadF16(s + 108); }
  __device__ static float SuperF(const uint8_t* s) { return -LoadF16(s + 108); }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const uint32_t w = LoadU32Even(s + 32 + 32 * h + l);
    const uint32_t hm = LoadU32Even(s + l);
    return ((w >> (2 * j)) & 0x03030303u) | (((hm >> (e / 32)) & 0x01010101u) << 2);
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    *a = __fmul_rn(LoadF16(s + 108), static_cast<float>(ScaleQ3K(j, s + 96) - 32));
    *b = 0.0f;
  }
};

template <>
struct StageTraits<QuantType::kQ8_0> {
  static constexpr bool kHeaderK4 = false;
  static constexpr int kStageBytes = 8 * 34, kGroup = 32, kOffset = 128, kMaxCode = 255;
  static constexpr bool kHasMin = false;
  static constexpr int kMinKind = 0, kMaxScale = 0;  // a per-block f16 scale, no integer one
  __device__ static void GroupInts(const uint8_t*, int, int* sc, int* m) { *sc = *m = 0; }
  __device__ static float SuperD(const uint8_t*) { return 0.0f; }
  __device__ static float SuperF(const uint8_t*) { return 0.0f; }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    return LoadU32Even(s + 34 * (e / 32) + 2 + e % 32) ^ 0x80808080u;  // int8 -> u8 offset by 128
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    *a = LoadF16(s + 34 * j);
    *b = 0.0f;
  }
};

template <>
struct StageTraits<QuantType::kQ4_0> {
  static constexpr bool kHeaderK4 = false;
  static constexpr int kStageBytes = 8 * 18, kGroup = 32, kOffset = 8, kMaxCode = 15;
  static constexpr bool kHasMin = false;
  static constexpr int kMinKind = 0, kMaxScale = 0;
  __device__ static void GroupInts(const uint8_t*, int, int* sc, int* m) { *sc = *m = 0; }
  __device__ static float SuperD(const uint8_t*) { return 0.0f; }
  __device__ static float SuperF(const uint8_t*) { return 0.0f; }
  __device__ static uint32_t Codes(const uint8_t* s, int e) {
    const int l = e % 32;
    const uint32_t w = LoadU32Even(s + 18 * (e / 32) + 2 + l % 16);
    return l < 16 ? w & 0x0F0F0F0Fu : (w >> 4) & 0x0F0F0F0Fu;
  }
  __device__ static void Factors(const uint8_t* s, int j, float* a, float* b) {
    *a = LoadF16(s + 18 * j);
    *b = 0.0f;
  }
};

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_DECODE_CUH_
