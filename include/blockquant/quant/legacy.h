// Scalar reference quantizers for the 32-element types Q4_0, Q4_1, Q5_0 and
// Q5_1 (llama.cpp's fallbacks for rows that 256 does not divide). One scale
// (and min) per block, found by the search in search.h, then stored as f16;
// the values are re-assigned with the f16 factors as they decode.
#ifndef BLOCKQUANT_QUANT_LEGACY_H_
#define BLOCKQUANT_QUANT_LEGACY_H_

#include <cstdint>
#include <cstring>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/quant/search.h"

namespace blockquant {
inline namespace v0 {
namespace ref {

// Symmetric block: q in [-(qmax+1), qmax], stored biased by qmax + 1.
BLOCKQUANT_HOST_DEVICE inline uint16_t QuantizeBlockSym(const float* x, const float* importance, int qmax, uint8_t* q) {
  float w[kQK], L[kQK];
  GroupWeights(kQK, importance, w);
  const uint16_t d = F32ToF16Saturate(FitSymmetric(kQK, qmax, x, w, L));
  const float fd = F16ToF32(d), id = fd != 0.0f ? 1.0f / fd : 0.0f;
  const float fqmax = static_cast<float>(qmax);
  for (int i = 0; i < kQK; ++i) {
    const float v = fd != 0.0f ? ClampRound(x[i] * id, -fqmax - 1.0f, fqmax) : 0.0f;
    q[i] = static_cast<uint8_t>(static_cast<int>(v) + qmax + 1);
  }
  return d;
}

// Asymmetric block: value = d * q + m, q in [0, nmax], m of either sign.
BLOCKQUANT_HOST_DEVICE inline void QuantizeBlockAsym(const float* x, const float* importance, int nmax,
                                                     uint16_t* d, uint16_t* m, uint8_t* q) {
  float w[kQK], L[kQK];
  GroupWeights(kQK, importance, w);
  const GroupFit fit = FitAsymmetric(kQK, nmax, x, w, L, false);
  *d = F32ToF16Saturate(fit.scale);
  *m = F32ToF16Saturate(fit.offset);
  const float fd = F16ToF32(*d), fm = F16ToF32(*m), id = fd > 0.0f ? 1.0f / fd : 0.0f;
  for (int i = 0; i < kQK; ++i) {
    q[i] = static_cast<uint8_t>(fd > 0.0f ? ClampRound((x[i] - fm) * id, 0.0f, static_cast<float>(nmax)) : 0.0f);
  }
}

BLOCKQUANT_HOST_DEVICE inline void PackNibbles32(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}

BLOCKQUANT_HOST_DEVICE inline void PackHighBits32(const uint8_t* q, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(h >> (8 * k));
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t q[kQK];
    y[b].d = QuantizeBlockSym(x + b * kQK, importance ? importance + b * kQK : nullptr, 7, q);
    PackNibbles32(q, y[b].qs);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ5_0(const float* x, BlockQ5_0* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t q[kQK];
    y[b].d = QuantizeBlockSym(x + b * kQK, importance ? importance + b * kQK : nullptr, 15, q);
    PackNibbles32(q, y[b].qs);
    PackHighBits32(q, y[b].qh);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ4_1(const float* x, BlockQ4_1* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t q[kQK];
    QuantizeBlockAsym(x + b * kQK, importance ? importance + b * kQK : nullptr, 15, &y[b].d, &y[b].m, q);
    PackNibbles32(q, y[b].qs);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ5_1(const float* x, BlockQ5_1* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t q[kQK];
    QuantizeBlockAsym(x + b * kQK, importance ? importance + b * kQK : nullptr, 31, &y[b].d, &y[b].m, q);
    PackNibbles32(q, y[b].qs);
    PackHighBits32(q, y[b].qh);
  }
}

}  // namespace ref
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_LEGACY_H_
