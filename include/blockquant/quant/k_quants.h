// Scalar reference quantizers for the K-quants (Q2_K..Q6_K): the ground
// truth every fast path must reproduce byte for byte (see search.h for the
// arithmetic contract and docs/quantizers.md for the algorithm).
//
// Two levels, as the formats have:
// 1. each group (16 or 32 values) gets its best scale (and min) by a search
//    over candidate scales with a least-squares refit (search.h);
// 2. the super-block scale d (and dmin) is chosen so the largest group scale
//    uses the full 4/6/8-bit range, group scales are rounded to integers,
//    the values are re-assigned with the scales as they decode, and d/dmin
//    are refit by least squares over all 256 values while that lowers the
//    (weighted) error.
#ifndef BLOCKQUANT_QUANT_K_QUANTS_H_
#define BLOCKQUANT_QUANT_K_QUANTS_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/quant/search.h"

namespace blockquant {
inline namespace v0 {
namespace ref {

inline constexpr int kSuperRefits = 2;

// Super-block state shared by the asymmetric K-quants (value = A_j q - B_j).
struct AsymSuper {
  uint16_t d = 0, dmin = 0;
  uint8_t sc[16] = {}, m[16] = {};
  float L[kQK_K] = {};
};

// Group j's integer scale/min: tries the pairs next to round(a_j / d) and
// round(b_j / dmin), the centre first, then the other 8 of the 3 x 3
// neighbourhood in scale-major order, a strict improvement winning. Values
// are assigned with the factors as they decode (into Lj). fd/fdm: d and dmin
// as f32. Returns the group's weighted error.
template <int kGroup>
BLOCKQUANT_HOST_DEVICE inline float ChooseGroupScaleAsymN(int nmax, int scale_max, const float* xj, const float* wj,
                                                          float a_j, float b_j, float fd, float fdm, uint8_t* sc_j,
                                                          uint8_t* m_j, float* Lj) {
  constexpr int group = kGroup;
  const float id = fd > 0.0f ? 1.0f / fd : 0.0f, idm = fdm > 0.0f ? 1.0f / fdm : 0.0f;
  const float fmax_s = static_cast<float>(scale_max), fnmax = static_cast<float>(nmax);
  const float sc0 = ClampRound(a_j * id, 0.0f, fmax_s), m0 = ClampRound(b_j * idm, 0.0f, fmax_s);
  float best_err = 0.0f;
  for (int t = 0; t < 9; ++t) {
    const int k = t == 0 ? 4 : (t <= 4 ? t - 1 : t);
    const float sc = sc0 + static_cast<float>(k / 3 - 1), m = m0 + static_cast<float>(k % 3 - 1);
    if (sc < 0.0f || sc > fmax_s || m < 0.0f || m > fmax_s) continue;
    const float fa = fd * sc, fb = fdm * m;
    const float ia = fa > 0.0f ? 1.0f / fa : 0.0f;
    float Lc[kGroup], terms[kGroup];
    BLOCKQUANT_UNROLL
    for (int i = 0; i < group; ++i) {
      Lc[i] = fa > 0.0f ? ClampRound((xj[i] + fb) * ia, 0.0f, fnmax) : 0.0f;
      const float diff = fa * Lc[i] - fb - xj[i];
      terms[i] = wj[i] * (diff * diff);
    }
    const float err = FixedSumN<kGroup>(terms);
    if (t == 0 || err < best_err) {  // the centre is always in range
      best_err = err;
      *sc_j = static_cast<uint8_t>(sc);
      *m_j = static_cast<uint8_t>(m);
      BLOCKQUANT_UNROLL
      for (int i = 0; i < group; ++i) Lj[i] = Lc[i];
    }
  }
  return best_err;
}

// group is 16 or 32.
BLOCKQUANT_HOST_DEVICE inline float ChooseGroupScaleAsym(int group, int nmax, int scale_max, const float* xj,
                                                         const float* wj, float a_j, float b_j, float fd, float fdm,
                                                         uint8_t* sc_j, uint8_t* m_j, float* Lj) {
  return group == 16 ? ChooseGroupScaleAsymN<16>(nmax, scale_max, xj, wj, a_j, b_j, fd, fdm, sc_j, m_j, Lj)
                     : ChooseGroupScaleAsymN<32>(nmax, scale_max, xj, wj, a_j, b_j, fd, fdm, sc_j, m_j, Lj);
}

// Every group's choice for d/dmin as s holds them; returns the total error
// (the per-group errors summed as FixedSum over 16 slots).
BLOCKQUANT_HOST_DEVICE inline float ChooseGroupScalesAsym(int group, int nmax, int scale_max, const float* x,
                                                          const float* w, const float* a, const float* b,
                                                          AsymSuper* s) {
  const float fd = F16ToF32(s->d), fdm = F16ToF32(s->dmin);
  float group_err[16] = {};
  for (int j = 0; j < kQK_K / group; ++j) {
    group_err[j] = ChooseGroupScaleAsym(group, nmax, scale_max, x + j * group, w + j * group, a[j], b[j], fd, fdm,
                                        &s->sc[j], &s->m[j], s->L + j * group);
  }
  return FixedSum(group_err, 16);
}

// Group j's fit (level 1): its weights into wj, scale a_j and min b_j >= 0.
template <int kGroup>
BLOCKQUANT_HOST_DEVICE inline void FitGroupAsymN(int nmax, const float* xj, const float* importance_j, float* wj,
                                                 float* a_j, float* b_j) {
  float L[kGroup];
  GroupWeights(kGroup, importance_j, wj);
  const GroupFit fit = FitAsymmetricN<kGroup>(nmax, xj, wj, L, true);
  *a_j = fit.scale;
  *b_j = 0.0f - fit.offset;  // +0, not -0, when there is no min
}

// group is 16 or 32.
BLOCKQUANT_HOST_DEVICE inline void FitGroupAsym(int group, int nmax, const float* xj, const float* importance_j,
                                                float* wj, float* a_j, float* b_j) {
  if (group == 16) {
    FitGroupAsymN<16>(nmax, xj, importance_j, wj, a_j, b_j);
  } else {
    FitGroupAsymN<32>(nmax, xj, importance_j, wj, a_j, b_j);
  }
}

// The least-squares refit of d and dmin: x ~ d * (sc_j q) - dmin * m_j over
// the 256 values. Returns false when there is nothing to refit.
BLOCKQUANT_HOST_DEVICE inline bool RefitAsym(int group, const float* x, const float* w, const uint8_t* sc,
                                             const uint8_t* m, const float* L, uint16_t dmin, float* nd,
                                             float* ndm) {
  float tuu[kQK_K], tuv[kQK_K], tvv[kQK_K], tux[kQK_K], tvx[kQK_K];
  for (int i = 0; i < kQK_K; ++i) {
    const float u = static_cast<float>(sc[i / group]) * L[i];
    const float v = static_cast<float>(m[i / group]);
    tuu[i] = w[i] * (u * u);
    tuv[i] = w[i] * (u * v);
    tvv[i] = w[i] * (v * v);
    tux[i] = w[i] * (u * x[i]);
    tvx[i] = w[i] * (v * x[i]);
  }
  const float suu = FixedSum(tuu, kQK_K), suv = FixedSum(tuv, kQK_K), svv = FixedSum(tvv, kQK_K);
  const float sux = FixedSum(tux, kQK_K), svx = FixedSum(tvx, kQK_K);
  const float det = suu * svv - suv * suv;
  if (det > 0.0f) {
    *nd = (sux * svv - suv * svx) / det;
    *ndm = 0.0f - (suu * svx - suv * sux) / det;  // +0 rather than -0
  } else if (suu > 0.0f) {  // no min terms in play
    *nd = sux / suu;
    *ndm = F16ToF32(dmin);
  } else {
    return false;
  }
  return *nd >= 0.0f && *ndm >= 0.0f && IsFiniteF(*nd) && IsFiniteF(*ndm);
}

// Levels 1 and 2 for Q2_K (group 16, q 0..3, 4-bit scales), Q4_K (32, 0..15,
// 6-bit) and Q5_K (32, 0..31, 6-bit). cuda/bq_quantize_coop.cuh runs the same
// steps with one GPU lane per group: change the two together (the device
// tests compare their bytes).
BLOCKQUANT_HOST_DEVICE inline void QuantizeSuperAsym(int group, int nmax, int scale_max, const float* x,
                                                     const float* importance, AsymSuper* s) {
  const int groups = kQK_K / group;
  float w[kQK_K], a[16], b[16];
  float max_a = 0.0f, max_b = 0.0f;
  for (int j = 0; j < groups; ++j) {
    FitGroupAsym(group, nmax, x + j * group, importance ? importance + j * group : nullptr, w + j * group, &a[j],
                 &b[j]);
    max_a = Max2(max_a, a[j]);
    max_b = Max2(max_b, b[j]);
  }
  const float fmax_s = static_cast<float>(scale_max);
  s->d = F32ToF16Saturate(max_a / fmax_s);
  s->dmin = F32ToF16Saturate(max_b / fmax_s);
  float err = ChooseGroupScalesAsym(group, nmax, scale_max, x, w, a, b, s);
  for (int r = 0; r < kSuperRefits; ++r) {
    float nd, ndm;
    if (!RefitAsym(group, x, w, s->sc, s->m, s->L, s->dmin, &nd, &ndm)) break;
    AsymSuper trial = *s;
    trial.d = F32ToF16Saturate(nd);
    trial.dmin = F32ToF16Saturate(ndm);
    if (trial.d == s->d && trial.dmin == s->dmin) break;
    const float trial_err = ChooseGroupScalesAsym(group, nmax, scale_max, x, w, a, b, &trial);
    if (!(trial_err < err)) break;
    err = trial_err;
    *s = trial;
  }
}

// Super-block state shared by the symmetric K-quants (value = A_j q).
struct SymSuper {
  uint16_t d = 0;
  int8_t s[16] = {};
  float L[kQK_K] = {};
};

BLOCKQUANT_HOST_DEVICE inline float AssignSym(int qmax, const float* x, const float* w, SymSuper* st) {
  const float fd = F16ToF32(st->d);
  const float fqmax = static_cast<float>(qmax);
  float t[kQK_K];
  for (int j = 0; j < 16; ++j) {
    const float a = fd * static_cast<float>(st->s[j]);
    const float ia = a != 0.0f ? 1.0f / a : 0.0f;
    for (int i = 16 * j; i < 16 * (j + 1); ++i) {
      st->L[i] = a != 0.0f ? ClampRound(x[i] * ia, -fqmax - 1.0f, fqmax) : 0.0f;
      const float diff = a * st->L[i] - x[i];
      t[i] = w[i] * (diff * diff);
    }
  }
  return FixedSum(t, kQK_K);
}

// Levels 1 and 2 for Q3_K (q -4..3, scales -32..31) and Q6_K (q -32..31,
// scales -128..127); both have 16 groups of 16. The largest group scale maps
// to the negative end of the scale range, which is one step longer. Mirrored
// lane by lane in cuda/bq_quantize_coop.cuh, as QuantizeSuperAsym is.
BLOCKQUANT_HOST_DEVICE inline void QuantizeSuperSym(int qmax, int scale_neg_end, const float* x,
                                                    const float* importance, SymSuper* st) {
  float w[kQK_K], a[16];
  float amax = 0.0f, extreme = 0.0f;
  for (int j = 0; j < 16; ++j) {
    GroupWeights(16, importance ? importance + 16 * j : nullptr, w + 16 * j);
    a[j] = FitSymmetric(16, qmax, x + 16 * j, w + 16 * j, st->L + 16 * j);
    if (AbsF(a[j]) > amax) {
      amax = AbsF(a[j]);
      extreme = a[j];
    }
  }
  const float fneg = static_cast<float>(scale_neg_end);  // -32 or -128
  st->d = F32ToF16Saturate(extreme / fneg);
  const float fd = F16ToF32(st->d);
  const float id = fd != 0.0f ? 1.0f / fd : 0.0f;
  for (int j = 0; j < 16; ++j) {
    st->s[j] = static_cast<int8_t>(ClampRound(a[j] * id, fneg, -fneg - 1.0f));
  }
  float err = AssignSym(qmax, x, w, st);

  // Refit d: x ~ d * (s_j q) over 256 values.
  for (int r = 0; r < kSuperRefits; ++r) {
    float tuu[kQK_K], tux[kQK_K];
    for (int i = 0; i < kQK_K; ++i) {
      const float u = static_cast<float>(st->s[i / 16]) * st->L[i];
      tuu[i] = w[i] * (u * u);
      tux[i] = w[i] * (u * x[i]);
    }
    const float suu = FixedSum(tuu, kQK_K), sux = FixedSum(tux, kQK_K);
    if (!(suu > 0.0f)) break;
    const float nd = sux / suu;
    if (!IsFiniteF(nd)) break;
    SymSuper trial = *st;
    trial.d = F32ToF16Saturate(nd);
    if (trial.d == st->d) break;
    const float trial_err = AssignSym(qmax, x, w, &trial);
    if (!(trial_err < err)) break;
    err = trial_err;
    *st = trial;
  }
}

// Q2_K and Q3_K share the 2-bit layout: element 128h + 32j + l at bit shift
// 2j of byte 32h + l.
BLOCKQUANT_HOST_DEVICE inline void PackLow2(const uint8_t* q, uint8_t* qs) {
  for (int i = 0; i < kQK_K / 4; ++i) qs[i] = 0;
  for (int i = 0; i < kQK_K; ++i) {
    const int h = i / 128, j = (i % 128) / 32, l = i % 32;
    qs[32 * h + l] = static_cast<uint8_t>(qs[32 * h + l] | ((q[i] & 3) << (2 * j)));
  }
}

// Q4_K and Q5_K share the nibble layout: chunk c of 64 values, byte 32c + l
// holds value 64c + l (low nibble) and 64c + 32 + l (high nibble).
BLOCKQUANT_HOST_DEVICE inline void PackNibblesK(const uint8_t* q, uint8_t* qs) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>((q[64 * c + l] & 0xF) | ((q[64 * c + 32 + l] & 0xF) << 4));
    }
  }
}

// Block packing from a finished super-block (also used by the GPU kernels).
BLOCKQUANT_HOST_DEVICE inline void PackQ2_K(const AsymSuper& s, BlockQ2_K* y) {
  uint8_t q[kQK_K];
  for (int i = 0; i < kQK_K; ++i) q[i] = static_cast<uint8_t>(s.L[i]);
  for (int g = 0; g < 16; ++g) y->scales[g] = static_cast<uint8_t>(s.sc[g] | (s.m[g] << 4));
  PackLow2(q, y->qs);
  y->d = s.d;
  y->dmin = s.dmin;
}

BLOCKQUANT_HOST_DEVICE inline void PackQ4_K(const AsymSuper& s, BlockQ4_K* y) {
  uint8_t q[kQK_K];
  for (int i = 0; i < kQK_K; ++i) q[i] = static_cast<uint8_t>(s.L[i]);
  PackScaleMinK4(s.sc, s.m, y->scales);
  PackNibblesK(q, y->qs);
  y->d = s.d;
  y->dmin = s.dmin;
}

// The level bits of a Q5_K block from q[256] in 0..31 (scales untouched).
BLOCKQUANT_HOST_DEVICE inline void PackLevelsQ5_K(const uint8_t* q, BlockQ5_K* y) {
  PackNibblesK(q, y->qs);
  for (auto& h : y->qh) h = 0;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo_bit = (q[64 * c + l] >> 4) & 1, hi_bit = (q[64 * c + 32 + l] >> 4) & 1;
      y->qh[l] = static_cast<uint8_t>(y->qh[l] | (lo_bit << (2 * c)) | (hi_bit << (2 * c + 1)));
    }
  }
}

BLOCKQUANT_HOST_DEVICE inline void PackQ5_K(const AsymSuper& s, BlockQ5_K* y) {
  uint8_t q[kQK_K];
  for (int i = 0; i < kQK_K; ++i) q[i] = static_cast<uint8_t>(s.L[i]);
  PackScaleMinK4(s.sc, s.m, y->scales);
  PackLevelsQ5_K(q, y);
  y->d = s.d;
  y->dmin = s.dmin;
}

// The level bits of a Q3_K block from code[256] = q + 4 in 0..7 (scales untouched).
BLOCKQUANT_HOST_DEVICE inline void PackLevelsQ3_K(const uint8_t* code, BlockQ3_K* y) {
  PackLow2(code, y->qs);
  for (auto& h : y->hmask) h = 0;
  for (int i = 0; i < kQK_K; ++i) {
    if (code[i] >= 4) y->hmask[i % 32] = static_cast<uint8_t>(y->hmask[i % 32] | (1 << (i / 32)));
  }
}

// The level bits of a Q6_K block from q[256] = level + 32 in 0..63 (scales untouched).
BLOCKQUANT_HOST_DEVICE inline void PackLevelsQ6_K(const uint8_t* q, BlockQ6_K* y) {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* e = q + 128 * h;
      y->ql[64 * h + l] = static_cast<uint8_t>((e[l] & 0xF) | ((e[64 + l] & 0xF) << 4));
      y->ql[64 * h + 32 + l] = static_cast<uint8_t>((e[32 + l] & 0xF) | ((e[96 + l] & 0xF) << 4));
      y->qh[32 * h + l] = static_cast<uint8_t>((e[l] >> 4) | ((e[32 + l] >> 4) << 2) | ((e[64 + l] >> 4) << 4) |
                                               ((e[96 + l] >> 4) << 6));
    }
  }
}

BLOCKQUANT_HOST_DEVICE inline void PackQ3_K(const SymSuper& s, BlockQ3_K* y) {
  uint8_t code[kQK_K];
  for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(static_cast<int>(s.L[i]) + 4);
  PackLevelsQ3_K(code, y);
  uint8_t S[16];
  for (int g = 0; g < 16; ++g) S[g] = static_cast<uint8_t>(s.s[g] + 32);
  PackScalesQ3K(S, y->scales);
  y->d = s.d;
}

BLOCKQUANT_HOST_DEVICE inline void PackQ6_K(const SymSuper& s, BlockQ6_K* y) {
  uint8_t q[kQK_K];
  for (int i = 0; i < kQK_K; ++i) q[i] = static_cast<uint8_t>(static_cast<int>(s.L[i]) + 32);
  PackLevelsQ6_K(q, y);
  for (int g = 0; g < 16; ++g) y->scales[g] = s.s[g];
  y->d = s.d;
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ2_K(const float* x, BlockQ2_K* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    AsymSuper s;
    const int64_t off = b * kQK_K;
    QuantizeSuperAsym(16, 3, 15, x + off, importance ? importance + off : nullptr, &s);
    PackQ2_K(s, &y[b]);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ3_K(const float* x, BlockQ3_K* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    SymSuper s;
    const int64_t off = b * kQK_K;
    QuantizeSuperSym(3, -32, x + off, importance ? importance + off : nullptr, &s);
    PackQ3_K(s, &y[b]);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    AsymSuper s;
    const int64_t off = b * kQK_K;
    QuantizeSuperAsym(32, 15, 63, x + off, importance ? importance + off : nullptr, &s);
    PackQ4_K(s, &y[b]);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    AsymSuper s;
    const int64_t off = b * kQK_K;
    QuantizeSuperAsym(32, 31, 63, x + off, importance ? importance + off : nullptr, &s);
    PackQ5_K(s, &y[b]);
  }
}

BLOCKQUANT_HOST_DEVICE inline void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    SymSuper s;
    const int64_t off = b * kQK_K;
    QuantizeSuperSym(31, -128, x + off, importance ? importance + off : nullptr, &s);
    PackQ6_K(s, &y[b]);
  }
}

}  // namespace ref
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_K_QUANTS_H_
