// Scalar reference dequantizers: the ground truth for every fast path.
// Arithmetic follows shared/FORMATS.md exactly: per-group factors first
// (a = d * scale, b = dmin * min, each rounded to f32), then a * q - b with no
// fused multiply-add, which is what the gguf Python package computes.
// n is the number of elements and must be a multiple of the block size.
#ifndef BLOCKQUANT_QUANT_DEQUANTIZE_H_
#define BLOCKQUANT_QUANT_DEQUANTIZE_H_

#include <cstdint>
#include <cstring>

#include "blockquant/config.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/type_traits.h"

namespace blockquant {
inline namespace v0 {
namespace ref {

inline void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = F16ToF32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0xF) - 8);
      y[j + kQK / 2] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

inline void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = F16ToF32(x[b].d), m = F16ToF32(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(x[b].qs[j] & 0xF) + m;
      y[j + kQK / 2] = d * static_cast<float>(x[b].qs[j] >> 4) + m;
    }
  }
}

inline uint32_t LoadU32LE(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

inline void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = F16ToF32(x[b].d);
    const uint32_t h = LoadU32LE(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = (x[b].qs[j] & 0xF) | static_cast<int>(((h >> j) & 1u) << 4);
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>(((h >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(q0 - 16);
      y[j + kQK / 2] = d * static_cast<float>(q1 - 16);
    }
  }
}

inline void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = F16ToF32(x[b].d), m = F16ToF32(x[b].m);
    const uint32_t h = LoadU32LE(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = (x[b].qs[j] & 0xF) | static_cast<int>(((h >> j) & 1u) << 4);
      const int q1 = (x[b].qs[j] >> 4) | static_cast<int>(((h >> (j + 16)) & 1u) << 4);
      y[j] = d * static_cast<float>(q0) + m;
      y[j + kQK / 2] = d * static_cast<float>(q1) + m;
    }
  }
}

inline void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = F16ToF32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(x[b].qs[j]);
  }
}

inline void DequantizeRowQ8_K(const BlockQ8_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    for (int j = 0; j < kQK_K; ++j) y[j] = x[b].d * static_cast<float>(x[b].qs[j]);
  }
}

inline void DequantizeRowQ2_K(const BlockQ2_K* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const int g = i / 16, h = i / 128, j = (i % 128) / 32, l = i % 32;
      const float a = d * static_cast<float>(x[b].scales[g] & 0xF);
      const float m = dmin * static_cast<float>(x[b].scales[g] >> 4);
      const int q = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
      y[i] = a * static_cast<float>(q) - m;
    }
  }
}

inline void DequantizeRowQ3_K(const BlockQ3_K* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = F16ToF32(x[b].d);
    for (int i = 0; i < kQK_K; ++i) {
      const int g = i / 16, h = i / 128, j = (i % 128) / 32, l = i % 32;
      const float a = d * static_cast<float>(static_cast<int>(UnpackScaleQ3K(g, x[b].scales)) - 32);
      const int low2 = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
      const int high = (x[b].hmask[l] >> (i / 32)) & 1;
      y[i] = a * static_cast<float>(low2 + 4 * high - 4);
    }
  }
}

inline void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      UnpackScaleMinK4(j, x[b].scales, &sc, &m);
      const float a = d * static_cast<float>(sc), c = dmin * static_cast<float>(m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        y[32 * j + l] = a * static_cast<float>((q[l] >> shift) & 0xF) - c;
      }
    }
  }
}

inline void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = F16ToF32(x[b].d), dmin = F16ToF32(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      UnpackScaleMinK4(j, x[b].scales, &sc, &m);
      const float a = d * static_cast<float>(sc), c = dmin * static_cast<float>(m);
      const uint8_t* q = x[b].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        const int hi = (x[b].qh[l] >> j) & 1;
        y[32 * j + l] = a * static_cast<float>(((q[l] >> shift) & 0xF) | (hi << 4)) - c;
      }
    }
  }
}

inline void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n) {
  BLOCKQUANT_NO_CONTRACT
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    const float d = F16ToF32(x[b].d);
    for (int i = 0; i < kQK_K; ++i) {
      const int h = i / 128, k = (i % 128) / 32, l = i % 32;
      const uint8_t lbyte = x[b].ql[64 * h + 32 * (k % 2) + l];
      const int low = k < 2 ? (lbyte & 0xF) : (lbyte >> 4);
      const int high = (x[b].qh[32 * h + l] >> (2 * k)) & 3;
      const float a = d * static_cast<float>(x[b].scales[i / 16]);
      y[i] = a * static_cast<float>((low | (high << 4)) - 32);
    }
  }
}

}  // namespace ref

// Dequantizes one row of n elements of any type (F32/F16/BF16 included).
// Throws kShape when the block does not divide n.
inline void DequantizeRowReference(QuantType type, const void* src, float* dst, int64_t n) {
  RowBytes(type, n);  // validates n
  switch (type) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case QuantType::kF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case QuantType::kBF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(h[i]);
      return;
    }
    case QuantType::kQ4_0: return ref::DequantizeRowQ4_0(static_cast<const BlockQ4_0*>(src), dst, n);
    case QuantType::kQ4_1: return ref::DequantizeRowQ4_1(static_cast<const BlockQ4_1*>(src), dst, n);
    case QuantType::kQ5_0: return ref::DequantizeRowQ5_0(static_cast<const BlockQ5_0*>(src), dst, n);
    case QuantType::kQ5_1: return ref::DequantizeRowQ5_1(static_cast<const BlockQ5_1*>(src), dst, n);
    case QuantType::kQ8_0: return ref::DequantizeRowQ8_0(static_cast<const BlockQ8_0*>(src), dst, n);
    case QuantType::kQ8_K: return ref::DequantizeRowQ8_K(static_cast<const BlockQ8_K*>(src), dst, n);
    case QuantType::kQ2_K: return ref::DequantizeRowQ2_K(static_cast<const BlockQ2_K*>(src), dst, n);
    case QuantType::kQ3_K: return ref::DequantizeRowQ3_K(static_cast<const BlockQ3_K*>(src), dst, n);
    case QuantType::kQ4_K: return ref::DequantizeRowQ4_K(static_cast<const BlockQ4_K*>(src), dst, n);
    case QuantType::kQ5_K: return ref::DequantizeRowQ5_K(static_cast<const BlockQ5_K*>(src), dst, n);
    case QuantType::kQ6_K: return ref::DequantizeRowQ6_K(static_cast<const BlockQ6_K*>(src), dst, n);
  }
  BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "cannot dequantize type id " +
                                                    std::to_string(static_cast<uint32_t>(type)));
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_DEQUANTIZE_H_
