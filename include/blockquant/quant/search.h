// The scale/min search shared by every reference quantizer.
//
// Determinism contract (fast paths must follow it to produce the same bytes):
// - Group sums use FixedSum: a pairwise halving tree over a power-of-two
//   count (t[i] += t[i + n/2] for i < n/2, repeat), which is what a 16-lane
//   vector reduction computes when it folds registers then halves.
// - Rounding is round-to-nearest-even (std::nearbyint), as SIMD converts.
// - No fused multiply-add (the build has -ffp-contract=off; nvcc needs
//   -fmad=false for the GPU copies of these functions).
// - Candidates are tried in index order; a later one replaces the best only
//   when its error is strictly lower.
// - Min/max are the explicit comparisons Min2/Max2 (std::fmin/fmax pick
//   either zero for +0 vs -0, differently on x86 and ARM).
// - A group is normalised by 1/max|x| before the search, so sums of squares
//   cannot overflow for any finite input; results are scaled back.
#ifndef BLOCKQUANT_QUANT_SEARCH_H_
#define BLOCKQUANT_QUANT_SEARCH_H_

#include <cmath>
#include <cstdint>

#include "blockquant/config.h"
#include "blockquant/format/fp16.h"

namespace blockquant {
inline namespace v0 {
namespace ref {

// Groups below this magnitude quantize to zero: no f16 scale can reach them.
inline constexpr float kTinyGroup = 1e-20f;
// Candidate inverse scales: nmax + kCandStep * (k - kCandHalf), k = 0..2*kCandHalf.
inline constexpr int kCandHalf = 5;
inline constexpr float kCandStep = 0.2f;
// Lloyd refinements (reassign q for the fitted scale/min, refit) per group.
inline constexpr int kRefineIters = 2;

// Sum of t[0..n), n a power of two <= 256, by a pairwise halving tree.
// t is clobbered.
BLOCKQUANT_HOST_DEVICE inline float FixedSum(float* t, int n) {
  for (int half = n / 2; half >= 1; half /= 2) {
    for (int i = 0; i < half; ++i) t[i] = t[i] + t[i + half];
  }
  return t[0];
}

// FixedSum for a compile-time n: the same additions, one level per template
// instance, so that a GPU compiler unrolls it all and keeps t in registers.
template <int N>
BLOCKQUANT_HOST_DEVICE inline float FixedSumN(float* t) {
  if constexpr (N == 1) {
    return t[0];
  } else {
    BLOCKQUANT_UNROLL
    for (int i = 0; i < N / 2; ++i) t[i] = t[i] + t[i + N / 2];
    return FixedSumN<N / 2>(t);
  }
}

// Round half to even (the default rounding mode), on the host and on a GPU.
BLOCKQUANT_HOST_DEVICE inline float RoundHalfEven(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return std::nearbyint(v);
#endif
}
BLOCKQUANT_HOST_DEVICE inline float AbsF(float v) {
#if defined(__CUDA_ARCH__)
  return fabsf(v);
#else
  return std::fabs(v);
#endif
}
BLOCKQUANT_HOST_DEVICE inline bool IsFiniteF(float v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

// x86's minss/maxss semantics, spelled out so every platform agrees.
BLOCKQUANT_HOST_DEVICE inline float Min2(float a, float b) { return a < b ? a : b; }
BLOCKQUANT_HOST_DEVICE inline float Max2(float a, float b) { return a > b ? a : b; }

BLOCKQUANT_HOST_DEVICE inline float ClampRound(float v, float lo, float hi) {
  const float r = RoundHalfEven(v);
  return r < lo ? lo : (r > hi ? hi : r);
}

// Weighted error sum_i w_i (a * L_i + c - x_i)^2 in fixed order.
template <int N>
BLOCKQUANT_HOST_DEVICE inline float FitError(const float* x, const float* w, const float* L, float a, float c) {
  float t[N];
  BLOCKQUANT_UNROLL
  for (int i = 0; i < N; ++i) {
    const float diff = a * L[i] + c - x[i];
    t[i] = w[i] * (diff * diff);
  }
  return FixedSumN<N>(t);
}

// Result of fitting x ~ scale * L + offset over one group.
struct GroupFit {
  float scale = 0.0f;
  float offset = 0.0f;  // <= 0 when the format stores a non-negative min
};

// Asymmetric fit for the "scale * q + offset" formats (Q2_K/Q4_K/Q5_K with
// offset <= 0, Q4_1/Q5_1 with any offset). n is 16 or 32; L gets q in
// [0, nmax]. w are positive weights (the caller substitutes ones for an
// all-zero weight group).
template <int N>
BLOCKQUANT_HOST_DEVICE inline GroupFit FitAsymmetricN(int nmax, const float* x_in, const float* w, float* L,
                                                      bool offset_must_be_nonpositive) {
  constexpr int n = N;
  GroupFit fit;
  float amax = 0.0f;
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) amax = Max2(amax, AbsF(x_in[i]));
  if (!(amax >= kTinyGroup)) {
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) L[i] = 0.0f;
    return fit;
  }
  const float inv = 1.0f / amax;
  float x[N];
  float lo = x_in[0] * inv, hi = lo;
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) {
    x[i] = x_in[i] * inv;
    lo = Min2(lo, x[i]);
    hi = Max2(hi, x[i]);
  }
  if (offset_must_be_nonpositive) lo = Min2(lo, 0.0f);
  if (hi == lo) {  // constant group: the offset alone represents it
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) L[i] = 0.0f;
    fit.offset = lo * amax;
    return fit;
  }
  float t[N];
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) t[i] = w[i];
  const float sw = FixedSumN<N>(t);
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) t[i] = w[i] * x[i];
  const float sx = FixedSumN<N>(t);
  const float fmax_q = static_cast<float>(nmax);

  // Weighted least squares of x ~ a * L + c for given L; c clamped to <= 0
  // when required (then a is refit alone).
  auto solve = [&](const float* Lc, float* a, float* c) {
    float u[N];
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) u[i] = w[i] * Lc[i];
    const float sl = FixedSumN<N>(u);
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) u[i] = w[i] * (Lc[i] * Lc[i]);
    const float sl2 = FixedSumN<N>(u);
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) u[i] = w[i] * (Lc[i] * x[i]);
    const float slx = FixedSumN<N>(u);
    const float det = sw * sl2 - sl * sl;
    if (det > 0.0f) {
      *a = (sw * slx - sl * sx) / det;
      *c = (sl2 * sx - sl * slx) / det;
    } else {  // every L equal: only the offset is identifiable
      *a = 0.0f;
      *c = sx / sw;
    }
    if (offset_must_be_nonpositive && *c > 0.0f) {
      *c = 0.0f;
      *a = sl2 > 0.0f ? slx / sl2 : 0.0f;
    }
  };

  float best_a = 0.0f, best_c = 0.0f, best_err = 0.0f;
  float cand[N];
  const float range = hi - lo;
  for (int k = 0; k <= 2 * kCandHalf; ++k) {
    const float iscale = (fmax_q + kCandStep * static_cast<float>(k - kCandHalf)) / range;
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) cand[i] = ClampRound(iscale * (x[i] - lo), 0.0f, fmax_q);
    float a, c;
    solve(cand, &a, &c);
    const float err = FitError<N>(x, w, cand, a, c);
    if (k == 0 || err < best_err) {
      best_err = err;
      best_a = a;
      best_c = c;
      BLOCKQUANT_UNROLL
      for (int i = 0; i < n; ++i) L[i] = cand[i];
    }
  }
  for (int it = 0; it < kRefineIters && best_a > 0.0f; ++it) {
    const float ia = 1.0f / best_a;
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) cand[i] = ClampRound((x[i] - best_c) * ia, 0.0f, fmax_q);
    float a, c;
    solve(cand, &a, &c);
    const float err = FitError<N>(x, w, cand, a, c);
    if (!(err < best_err)) break;
    best_err = err;
    best_a = a;
    best_c = c;
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) L[i] = cand[i];
  }
  fit.scale = best_a * amax;
  fit.offset = best_c * amax;
  return fit;
}

// n is 16 or 32.
BLOCKQUANT_HOST_DEVICE inline GroupFit FitAsymmetric(int n, int nmax, const float* x_in, const float* w, float* L,
                                                     bool offset_must_be_nonpositive) {
  return n == 16 ? FitAsymmetricN<16>(nmax, x_in, w, L, offset_must_be_nonpositive)
                 : FitAsymmetricN<32>(nmax, x_in, w, L, offset_must_be_nonpositive);
}

// Symmetric fit for the "scale * q" formats, q in [qmin, qmax] with
// qmin = -(qmax + 1) (Q3_K, Q6_K, Q4_0, Q5_0). The scale may be negative, so
// the extreme value can use the longer negative end. L gets q.
template <int N>
BLOCKQUANT_HOST_DEVICE inline float FitSymmetricN(int qmax, const float* x_in, const float* w, float* L) {
  constexpr int n = N;
  const float fqmax = static_cast<float>(qmax), fqmin = -fqmax - 1.0f;
  float amax = 0.0f, extreme = 0.0f;
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) {
    if (AbsF(x_in[i]) > amax) {  // first index wins ties
      amax = AbsF(x_in[i]);
      extreme = x_in[i];
    }
  }
  if (!(amax >= kTinyGroup)) {
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) L[i] = 0.0f;
    return 0.0f;
  }
  const float inv = 1.0f / amax;
  float x[N];
  BLOCKQUANT_UNROLL
  for (int i = 0; i < n; ++i) x[i] = x_in[i] * inv;
  const float ext = extreme * inv;  // +1 or -1

  auto solve = [&](const float* Lc) {
    float u[N];
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) u[i] = w[i] * (Lc[i] * Lc[i]);
    const float sl2 = FixedSumN<N>(u);
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) u[i] = w[i] * (Lc[i] * x[i]);
    const float slx = FixedSumN<N>(u);
    return sl2 > 0.0f ? slx / sl2 : 0.0f;
  };

  float best_a = 0.0f, best_err = 0.0f;
  float cand[N];
  // Orientation 0 maps the extreme to the negative end (qmin), 1 to qmax.
  for (int orient = 0; orient < 2; ++orient) {
    const float end = orient == 0 ? fqmin : fqmax;
    for (int k = 0; k <= 2 * kCandHalf; ++k) {
      const float mag = AbsF(end) + kCandStep * static_cast<float>(k - kCandHalf);
      const float iscale = (end < 0.0f ? -mag : mag) / ext;
      BLOCKQUANT_UNROLL
      for (int i = 0; i < n; ++i) cand[i] = ClampRound(iscale * x[i], fqmin, fqmax);
      const float a = solve(cand);
      const float err = FitError<N>(x, w, cand, a, 0.0f);
      if ((orient == 0 && k == 0) || err < best_err) {
        best_err = err;
        best_a = a;
        BLOCKQUANT_UNROLL
        for (int i = 0; i < n; ++i) L[i] = cand[i];
      }
    }
  }
  for (int it = 0; it < kRefineIters && best_a != 0.0f; ++it) {
    const float ia = 1.0f / best_a;
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) cand[i] = ClampRound(x[i] * ia, fqmin, fqmax);
    const float a = solve(cand);
    const float err = FitError<N>(x, w, cand, a, 0.0f);
    if (!(err < best_err)) break;
    best_err = err;
    best_a = a;
    BLOCKQUANT_UNROLL
    for (int i = 0; i < n; ++i) L[i] = cand[i];
  }
  return best_a * amax;
}

// n is 16 or 32.
BLOCKQUANT_HOST_DEVICE inline float FitSymmetric(int n, int qmax, const float* x_in, const float* w, float* L) {
  return n == 16 ? FitSymmetricN<16>(qmax, x_in, w, L) : FitSymmetricN<32>(qmax, x_in, w, L);
}

// Per-element weights for one group: importance when given and not all zero
// in the group, else ones (every choice then costs the same under the
// weighted metric, and plain squared error is the sensible tie-break).
BLOCKQUANT_HOST_DEVICE inline void GroupWeights(int n, const float* importance, float* w) {
  bool any = false;
  if (importance != nullptr) {
    for (int i = 0; i < n; ++i) any = any || importance[i] > 0.0f;
  }
  for (int i = 0; i < n; ++i) w[i] = any ? importance[i] : 1.0f;
}

}  // namespace ref
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_SEARCH_H_
