// Highway weight quantizers (per target), byte-identical with the scalar
// reference in quant/ on every target.
//
// How the bytes stay identical: each vector lane runs one group (or one
// legacy block) through exactly the reference's sequence of IEEE operations.
// The groups of a super-block are transposed so that element i of every
// group sits in one vector; the reference's halving-tree sums over a group
// then become vertical adds in the same order, and its branches become
// per-lane selects. Only the super-block level (f16 scales, refits) runs per
// super-block, with sums over its 256 values in the reference's order.
//
// Static dispatch: call blockquant::HWY_NAMESPACE::QuantizeRowFast. Dynamic
// dispatch: cpu::QuantizeRow (cpu/kernels.h).
//
// Toggle guard: this file is re-included once per target by foreach_target.h.
#if defined(BLOCKQUANT_CPU_QUANTIZE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef BLOCKQUANT_CPU_QUANTIZE_INL_H_
#undef BLOCKQUANT_CPU_QUANTIZE_INL_H_
#else
#define BLOCKQUANT_CPU_QUANTIZE_INL_H_
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "blockquant/cpu/kernels-inl.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/quant/quantize.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace blockquant {
inline namespace v0 {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace quant_detail {

// Lanes = groups. At most 8 lanes: the asymmetric K-quants have 8 groups per
// super-block, and the legacy types fill lanes with blocks.
using DQ = hn::CappedTag<float, 8>;
using VQ = hn::Vec<DQ>;
inline constexpr int kMaxLanes = 8;

// Min2/Max2 of search.h. x86's minps/maxps are exactly "a < b ? a : b" and
// "a > b ? a : b" (zeros and NaN included); elsewhere spell them out.
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
HWY_INLINE VQ Min2V(VQ a, VQ b) { return hn::Min(a, b); }
HWY_INLINE VQ Max2V(VQ a, VQ b) { return hn::Max(a, b); }
#else
HWY_INLINE VQ Min2V(VQ a, VQ b) { return hn::IfThenElse(hn::Lt(a, b), a, b); }
HWY_INLINE VQ Max2V(VQ a, VQ b) { return hn::IfThenElse(hn::Gt(a, b), a, b); }
#endif

// ClampRound of search.h: round half to even, then r < lo ? lo : (r > hi ?
// hi : r), which is Min2(hi, Max2(lo, r)).
HWY_INLINE VQ ClampRoundV(DQ, VQ v, VQ lo, VQ hi) { return Min2V(hi, Max2V(lo, hn::Round(v))); }

// FixedSum over i of t[i * N + lane]: the reference's tree, lane by lane.
// t is clobbered.
template <int kN>
HWY_INLINE VQ TreeSum(DQ d, float* HWY_RESTRICT t) {
  const size_t N = hn::Lanes(d);
  for (int half = kN / 2; half >= 1; half /= 2) {
    for (int i = 0; i < half; ++i) {
      hn::Store(hn::Add(hn::Load(d, t + i * N), hn::Load(d, t + (i + half) * N)), d, t + i * N);
    }
  }
  return hn::Load(d, t);
}

// The same tree over terms f(i), with its first two levels fused into the
// calls: entry i < kN/4 is (f(i) + f(i + kN/2)) + (f(i + kN/4) + f(i + 3kN/4)),
// exactly what the first two halvings leave there.
template <int kN, class F>
HWY_INLINE VQ TreeSumOf(DQ d, const F& f, float* HWY_RESTRICT scratch) {
  constexpr int kQ = kN / 4;
  const size_t N = hn::Lanes(d);
  for (int i = 0; i < kQ; ++i) {
    const VQ s = hn::Add(hn::Add(f(i), f(i + 2 * kQ)), hn::Add(f(i + kQ), f(i + 3 * kQ)));
    hn::Store(s, d, scratch + i * N);
  }
  return TreeSum<kQ>(d, scratch);
}

// Three such sums at once: f(i, VQ* out) writes the three terms of index i.
template <int kN, class F>
HWY_INLINE void TreeSum3Of(DQ d, const F& f, float* HWY_RESTRICT scratch, VQ* sums) {
  constexpr int kQ = kN / 4;
  const size_t N = hn::Lanes(d);
  for (int i = 0; i < kQ; ++i) {
    VQ a[3], b[3], c[3], e[3];
    f(i, a);
    f(i + 2 * kQ, b);
    f(i + kQ, c);
    f(i + 3 * kQ, e);
    for (int k = 0; k < 3; ++k) {
      hn::Store(hn::Add(hn::Add(a[k], b[k]), hn::Add(c[k], e[k])), d, scratch + (k * kQ + i) * N);
    }
  }
  for (int k = 0; k < 3; ++k) sums[k] = TreeSum<kQ>(d, scratch + k * kQ * N);
}

// Per-group weights in the lane layout: importance where the group has any
// positive entry, else ones (ref::GroupWeights).
template <int kN>
HWY_INLINE void LaneWeights(const float* importance, int64_t stride_groups, size_t lanes, size_t N,
                            float* HWY_RESTRICT wt) {
  for (size_t j = 0; j < lanes; ++j) {
    const float* imp = importance != nullptr ? importance + static_cast<int64_t>(j) * stride_groups : nullptr;
    bool any = false;
    if (imp != nullptr) {
      for (int i = 0; i < kN; ++i) any = any || imp[i] > 0.0f;
    }
    for (int i = 0; i < kN; ++i) wt[i * N + j] = any ? imp[i] : 1.0f;
  }
  for (size_t j = lanes; j < N; ++j) {
    for (int i = 0; i < kN; ++i) wt[i * N + j] = 1.0f;
  }
}

// Scratch for the lane-parallel fits: kN rows of N floats each.
struct FitScratch {
  HWY_ALIGN float xs[32 * kMaxLanes];
  HWY_ALIGN float cand[32 * kMaxLanes];
  HWY_ALIGN float t0[32 * kMaxLanes];
  HWY_ALIGN float t1[32 * kMaxLanes];
  HWY_ALIGN float t2[32 * kMaxLanes];
};

// ref::FitAsymmetric for N groups at once. xt/wt hold element i of lane j at
// [i * N + j]. Writes the fitted scale and offset per lane.
template <int kN, bool kNonPositive>
HWY_INLINE void FitAsymLanes(DQ d, int nmax, const float* HWY_RESTRICT xt, const float* HWY_RESTRICT wt,
                             float* HWY_RESTRICT out_scale, float* HWY_RESTRICT out_offset, FitScratch& s) {
  const size_t N = hn::Lanes(d);
  const VQ zero = hn::Zero(d);
  VQ amax = zero;
  for (int i = 0; i < kN; ++i) amax = Max2V(amax, hn::Abs(hn::Load(d, xt + i * N)));
  const auto tiny = hn::Not(hn::Ge(amax, hn::Set(d, ref::kTinyGroup)));
  const VQ inv = hn::Div(hn::Set(d, 1.0f), amax);
  VQ lo = hn::Mul(hn::Load(d, xt), inv), hi = lo;
  for (int i = 0; i < kN; ++i) {
    const VQ x = hn::Mul(hn::Load(d, xt + i * N), inv);
    hn::Store(x, d, s.xs + i * N);
    lo = Min2V(lo, x);
    hi = Max2V(hi, x);
  }
  if (kNonPositive) lo = Min2V(lo, zero);
  const auto constant = hn::Eq(hi, lo);

  for (int i = 0; i < kN; ++i) {
    const VQ w = hn::Load(d, wt + i * N);
    hn::Store(w, d, s.t0 + i * N);
    hn::Store(hn::Mul(w, hn::Load(d, s.xs + i * N)), d, s.t1 + i * N);
  }
  const VQ sw = TreeSum<kN>(d, s.t0);
  const VQ sx = TreeSum<kN>(d, s.t1);
  const VQ fmax_q = hn::Set(d, static_cast<float>(nmax));

  // Least squares for the candidate levels in s.cand, then its error.
  auto solve_and_error = [&](VQ* a_out, VQ* c_out) -> VQ {
    VQ sums[3];
    TreeSum3Of<kN>(
        d,
        [&](int i, VQ* p) {
          const VQ w = hn::Load(d, wt + i * N), L = hn::Load(d, s.cand + i * N);
          p[0] = hn::Mul(w, L);
          p[1] = hn::Mul(w, hn::Mul(L, L));
          p[2] = hn::Mul(w, hn::Mul(L, hn::Load(d, s.xs + i * N)));
        },
        s.t0, sums);
    const VQ sl = sums[0], sl2 = sums[1], slx = sums[2];
    const VQ det = hn::Sub(hn::Mul(sw, sl2), hn::Mul(sl, sl));
    const auto det_pos = hn::Gt(det, zero);
    VQ a = hn::IfThenElseZero(det_pos, hn::Div(hn::Sub(hn::Mul(sw, slx), hn::Mul(sl, sx)), det));
    VQ c = hn::IfThenElse(det_pos, hn::Div(hn::Sub(hn::Mul(sl2, sx), hn::Mul(sl, slx)), det), hn::Div(sx, sw));
    if (kNonPositive) {
      const auto clamp = hn::Gt(c, zero);
      const VQ refit = hn::IfThenElseZero(hn::Gt(sl2, zero), hn::Div(slx, sl2));
      a = hn::IfThenElse(clamp, refit, a);
      c = hn::IfThenElse(clamp, zero, c);
    }
    *a_out = a;
    *c_out = c;
    return TreeSumOf<kN>(
        d,
        [&](int i) {
          const VQ diff = hn::Sub(hn::Add(hn::Mul(a, hn::Load(d, s.cand + i * N)), c), hn::Load(d, s.xs + i * N));
          return hn::Mul(hn::Load(d, wt + i * N), hn::Mul(diff, diff));
        },
        s.t0);
  };

  VQ best_a = zero, best_c = zero, best_err = zero;
  const VQ range = hn::Sub(hi, lo);
  for (int k = 0; k <= 2 * ref::kCandHalf; ++k) {
    const float num = static_cast<float>(nmax) + ref::kCandStep * static_cast<float>(k - ref::kCandHalf);
    const VQ iscale = hn::Div(hn::Set(d, num), range);
    for (int i = 0; i < kN; ++i) {
      hn::Store(ClampRoundV(d, hn::Mul(iscale, hn::Sub(hn::Load(d, s.xs + i * N), lo)), zero, fmax_q), d,
                s.cand + i * N);
    }
    VQ a, c;
    const VQ err = solve_and_error(&a, &c);
    const auto better = k == 0 ? hn::Eq(zero, zero) : hn::Lt(err, best_err);
    best_err = hn::IfThenElse(better, err, best_err);
    best_a = hn::IfThenElse(better, a, best_a);
    best_c = hn::IfThenElse(better, c, best_c);
  }
  auto active = hn::Gt(best_a, zero);
  for (int it = 0; it < ref::kRefineIters && !hn::AllFalse(d, active); ++it) {
    const VQ ia = hn::Div(hn::Set(d, 1.0f), best_a);
    for (int i = 0; i < kN; ++i) {
      hn::Store(ClampRoundV(d, hn::Mul(hn::Sub(hn::Load(d, s.xs + i * N), best_c), ia), zero, fmax_q), d,
                s.cand + i * N);
    }
    VQ a, c;
    const VQ err = solve_and_error(&a, &c);
    const auto better = hn::And(active, hn::Lt(err, best_err));
    best_err = hn::IfThenElse(better, err, best_err);
    best_a = hn::IfThenElse(better, a, best_a);
    best_c = hn::IfThenElse(better, c, best_c);
    active = hn::And(better, hn::Gt(best_a, zero));
  }
  VQ scale = hn::Mul(best_a, amax), offset = hn::Mul(best_c, amax);
  scale = hn::IfThenElse(constant, zero, scale);
  offset = hn::IfThenElse(constant, hn::Mul(lo, amax), offset);
  hn::Store(hn::IfThenElse(tiny, zero, scale), d, out_scale);
  hn::Store(hn::IfThenElse(tiny, zero, offset), d, out_offset);
}

// ref::FitSymmetric for N groups at once; writes the scale per lane.
template <int kN>
HWY_INLINE void FitSymLanes(DQ d, int qmax, const float* HWY_RESTRICT xt, const float* HWY_RESTRICT wt,
                            float* HWY_RESTRICT out_scale, FitScratch& s) {
  const size_t N = hn::Lanes(d);
  const VQ zero = hn::Zero(d);
  const float fqmax = static_cast<float>(qmax), fqmin = -fqmax - 1.0f;
  const VQ vqmax = hn::Set(d, fqmax), vqmin = hn::Set(d, fqmin);
  VQ amax = zero, extreme = zero;
  for (int i = 0; i < kN; ++i) {
    const VQ x = hn::Load(d, xt + i * N), ax = hn::Abs(x);
    const auto more = hn::Gt(ax, amax);  // first index wins ties
    amax = hn::IfThenElse(more, ax, amax);
    extreme = hn::IfThenElse(more, x, extreme);
  }
  const auto tiny = hn::Not(hn::Ge(amax, hn::Set(d, ref::kTinyGroup)));
  const VQ inv = hn::Div(hn::Set(d, 1.0f), amax);
  for (int i = 0; i < kN; ++i) hn::Store(hn::Mul(hn::Load(d, xt + i * N), inv), d, s.xs + i * N);
  const VQ ext = hn::Mul(extreme, inv);

  auto solve_and_error = [&](VQ* a_out) -> VQ {
    VQ sums[3];
    TreeSum3Of<kN>(
        d,
        [&](int i, VQ* p) {
          const VQ w = hn::Load(d, wt + i * N), L = hn::Load(d, s.cand + i * N);
          p[0] = hn::Mul(w, hn::Mul(L, L));
          p[1] = hn::Mul(w, hn::Mul(L, hn::Load(d, s.xs + i * N)));
          p[2] = p[0];  // unused third sum
        },
        s.t0, sums);
    const VQ sl2 = sums[0], slx = sums[1];
    const VQ a = hn::IfThenElseZero(hn::Gt(sl2, zero), hn::Div(slx, sl2));
    *a_out = a;
    return TreeSumOf<kN>(
        d,
        [&](int i) {
          const VQ diff = hn::Sub(hn::Add(hn::Mul(a, hn::Load(d, s.cand + i * N)), zero), hn::Load(d, s.xs + i * N));
          return hn::Mul(hn::Load(d, wt + i * N), hn::Mul(diff, diff));
        },
        s.t0);
  };

  VQ best_a = zero, best_err = zero;
  for (int orient = 0; orient < 2; ++orient) {
    const float end = orient == 0 ? fqmin : fqmax;
    for (int k = 0; k <= 2 * ref::kCandHalf; ++k) {
      const float mag = std::fabs(end) + ref::kCandStep * static_cast<float>(k - ref::kCandHalf);
      const VQ iscale = hn::Div(hn::Set(d, end < 0.0f ? -mag : mag), ext);
      for (int i = 0; i < kN; ++i) {
        hn::Store(ClampRoundV(d, hn::Mul(iscale, hn::Load(d, s.xs + i * N)), vqmin, vqmax), d, s.cand + i * N);
      }
      VQ a;
      const VQ err = solve_and_error(&a);
      const auto better = (orient == 0 && k == 0) ? hn::Eq(zero, zero) : hn::Lt(err, best_err);
      best_err = hn::IfThenElse(better, err, best_err);
      best_a = hn::IfThenElse(better, a, best_a);
    }
  }
  auto active = hn::Ne(best_a, zero);
  for (int it = 0; it < ref::kRefineIters && !hn::AllFalse(d, active); ++it) {
    const VQ ia = hn::Div(hn::Set(d, 1.0f), best_a);
    for (int i = 0; i < kN; ++i) {
      hn::Store(ClampRoundV(d, hn::Mul(hn::Load(d, s.xs + i * N), ia), vqmin, vqmax), d, s.cand + i * N);
    }
    VQ a;
    const VQ err = solve_and_error(&a);
    const auto better = hn::And(active, hn::Lt(err, best_err));
    best_err = hn::IfThenElse(better, err, best_err);
    best_a = hn::IfThenElse(better, a, best_a);
    active = hn::And(better, hn::Ne(best_a, zero));
  }
  hn::Store(hn::IfThenElse(tiny, zero, hn::Mul(best_a, amax)), d, out_scale);
}

// The reference's FixedSum over a super-block's 256 values in value order,
// the terms given a vector at a time: f(v) returns values [v*N, v*N + N).
// The tree's halvings down to N pair whole vectors (the first two are fused
// into the calls, f is called once per v); the last ones are within a vector.
template <class F>
HWY_INLINE float SuperSumOf(DQ d, const F& f, float* HWY_RESTRICT scratch) {
  const int N = static_cast<int>(hn::Lanes(d));
  const int q = kQK_K / N / 4;
  for (int v = 0; v < q; ++v) {
    hn::Store(hn::Add(hn::Add(f(v), f(v + 2 * q)), hn::Add(f(v + q), f(v + 3 * q))), d, scratch + v * N);
  }
  for (int half = q / 2; half >= 1; half /= 2) {
    for (int v = 0; v < half; ++v) {
      hn::Store(hn::Add(hn::Load(d, scratch + v * N), hn::Load(d, scratch + (v + half) * N)), d, scratch + v * N);
    }
  }
  return ref::FixedSum(scratch, N);
}

// ---------------------------------------------------------------- K-quants

// One super-block of G groups of kN values, in value order (xn, wn) and in
// the lane layout (xt, wt: value j * kN + i at [i * G + j]).
template <int kN>
struct SuperLanes {
  static constexpr int kG = kQK_K / kN;
  const float* xn = nullptr;
  HWY_ALIGN float wn[kQK_K];
  HWY_ALIGN float xt[kQK_K];
  HWY_ALIGN float wt[kQK_K];
  HWY_ALIGN float scratch[kQK_K];
};

// Loads a super-block: weights per group as ref::GroupWeights, both layouts.
template <int kN>
HWY_INLINE void LoadSuper(const float* HWY_RESTRICT x, const float* importance, SuperLanes<kN>& sl) {
  constexpr int kG = SuperLanes<kN>::kG;
  sl.xn = x;
  for (int j = 0; j < kG; ++j) {
    const float* imp = importance != nullptr ? importance + j * kN : nullptr;
    bool any = false;
    if (imp != nullptr) {
      for (int i = 0; i < kN; ++i) any = any || imp[i] > 0.0f;
    }
    for (int i = 0; i < kN; ++i) {
      const float w = any ? imp[i] : 1.0f;
      sl.wn[j * kN + i] = w;
      sl.xt[i * kG + j] = x[j * kN + i];
      sl.wt[i * kG + j] = w;
    }
  }
}

// ref::ChooseGroupScalesAsym with lanes = groups: writes sc, m and the
// levels L (lane layout); returns the total error.
template <int kN>
HWY_INLINE float ChooseScalesAsym(DQ d, int nmax, int scale_max, const float* HWY_RESTRICT a,
                                  const float* HWY_RESTRICT b, uint16_t d16, uint16_t dmin16, SuperLanes<kN>& sl,
                                  float* HWY_RESTRICT L, uint8_t* sc_out, uint8_t* m_out) {
  constexpr int kG = SuperLanes<kN>::kG;
  const size_t N = hn::Lanes(d);
  const float fd = F16ToF32(d16), fdm = F16ToF32(dmin16);
  const float id = fd > 0.0f ? 1.0f / fd : 0.0f, idm = fdm > 0.0f ? 1.0f / fdm : 0.0f;
  const VQ zero = hn::Zero(d), one = hn::Set(d, 1.0f);
  const VQ vfd = hn::Set(d, fd), vfdm = hn::Set(d, fdm), vmax_s = hn::Set(d, static_cast<float>(scale_max));
  const VQ vnmax = hn::Set(d, static_cast<float>(nmax));
  float group_err[16] = {};
  HWY_ALIGN float terms[32 * kMaxLanes];
  HWY_ALIGN float lane_buf[3][kMaxLanes];
  for (size_t c = 0; c < static_cast<size_t>(kG); c += N) {
    const VQ sc0 = ClampRoundV(d, hn::Mul(hn::LoadU(d, a + c), hn::Set(d, id)), zero, vmax_s);
    const VQ m0 = ClampRoundV(d, hn::Mul(hn::LoadU(d, b + c), hn::Set(d, idm)), zero, vmax_s);
    VQ best_err = zero, best_sc = sc0, best_m = m0;
    for (int t = 0; t < 9; ++t) {
      const int k = t == 0 ? 4 : (t <= 4 ? t - 1 : t);
      const VQ sc = hn::Add(sc0, hn::Set(d, static_cast<float>(k / 3 - 1)));
      const VQ m = hn::Add(m0, hn::Set(d, static_cast<float>(k % 3 - 1)));
      const auto out_of_range =
          hn::Or(hn::Or(hn::Lt(sc, zero), hn::Gt(sc, vmax_s)), hn::Or(hn::Lt(m, zero), hn::Gt(m, vmax_s)));
      if (t != 0 && hn::AllTrue(d, out_of_range)) continue;
      const VQ fa = hn::Mul(vfd, sc), fb = hn::Mul(vfdm, m);
      const auto fa_pos = hn::Gt(fa, zero);
      const VQ ia = hn::IfThenElseZero(fa_pos, hn::Div(one, fa));
      const VQ err = TreeSumOf<kN>(
          d,
          [&](int i) {
            const VQ x = hn::Load(d, sl.xt + i * kG + c);
            const VQ q = hn::IfThenElseZero(fa_pos, ClampRoundV(d, hn::Mul(hn::Add(x, fb), ia), zero, vnmax));
            const VQ diff = hn::Sub(hn::Sub(hn::Mul(fa, q), fb), x);
            return hn::Mul(hn::Load(d, sl.wt + i * kG + c), hn::Mul(diff, diff));
          },
          terms);
      const auto better = t == 0 ? hn::Eq(zero, zero) : hn::AndNot(out_of_range, hn::Lt(err, best_err));
      best_err = hn::IfThenElse(better, err, best_err);
      best_sc = hn::IfThenElse(better, sc, best_sc);
      best_m = hn::IfThenElse(better, m, best_m);
    }
    // The levels of the winners, computed as in their trial.
    {
      const VQ fa = hn::Mul(vfd, best_sc), fb = hn::Mul(vfdm, best_m);
      const auto fa_pos = hn::Gt(fa, zero);
      const VQ ia = hn::IfThenElseZero(fa_pos, hn::Div(one, fa));
      for (int i = 0; i < kN; ++i) {
        const VQ x = hn::Load(d, sl.xt + i * kG + c);
        hn::Store(hn::IfThenElseZero(fa_pos, ClampRoundV(d, hn::Mul(hn::Add(x, fb), ia), zero, vnmax)), d,
                  L + i * kG + c);
      }
    }
    hn::Store(best_err, d, lane_buf[0]);
    hn::Store(best_sc, d, lane_buf[1]);
    hn::Store(best_m, d, lane_buf[2]);
    for (size_t j = 0; j < N && c + j < static_cast<size_t>(kG); ++j) {
      group_err[c + j] = lane_buf[0][j];
      sc_out[c + j] = static_cast<uint8_t>(lane_buf[1][j]);
      m_out[c + j] = static_cast<uint8_t>(lane_buf[2][j]);
    }
  }
  return ref::FixedSum(group_err, 16);
}

struct AsymState {
  uint16_t d = 0, dmin = 0;
  uint8_t sc[16] = {}, m[16] = {};
  HWY_ALIGN float L[kQK_K];
};

// ref::QuantizeSuperAsym; leaves the levels in st.L (lane layout).
template <int kN>
HWY_INLINE void QuantizeSuperAsymFast(DQ d, int nmax, int scale_max, SuperLanes<kN>& sl, FitScratch& fs,
                                      AsymState& st) {
  constexpr int kG = SuperLanes<kN>::kG;
  const size_t N = hn::Lanes(d);
  HWY_ALIGN float a[16], off[16], b[16];
  HWY_ALIGN float xg[32 * kMaxLanes], wg[32 * kMaxLanes];
  for (size_t c = 0; c < static_cast<size_t>(kG); c += N) {
    for (int i = 0; i < kN; ++i) {
      hn::Store(hn::Load(d, sl.xt + i * kG + c), d, xg + i * N);
      hn::Store(hn::Load(d, sl.wt + i * kG + c), d, wg + i * N);
    }
    FitAsymLanes<kN, true>(d, nmax, xg, wg, a + c, off + c, fs);
  }
  float max_a = 0.0f, max_b = 0.0f;
  for (int j = 0; j < kG; ++j) {
    b[j] = 0.0f - off[j];
    max_a = ref::Max2(max_a, a[j]);
    max_b = ref::Max2(max_b, b[j]);
  }
  const float fmax_s = static_cast<float>(scale_max);
  st.d = F32ToF16Saturate(max_a / fmax_s);
  st.dmin = F32ToF16Saturate(max_b / fmax_s);
  float err = ChooseScalesAsym<kN>(d, nmax, scale_max, a, b, st.d, st.dmin, sl, st.L, st.sc, st.m);

  for (int r = 0; r < ref::kSuperRefits; ++r) {
    // Refit sums over the 256 values in value order: levels back to it first.
    HWY_ALIGN float Ln[kQK_K];
    for (int j = 0; j < kG; ++j) {
      for (int i = 0; i < kN; ++i) Ln[j * kN + i] = st.L[i * kG + j];
    }
    const int vpg = kN / static_cast<int>(N);  // vectors per group
    auto sum_of = [&](auto which) {
      return SuperSumOf(
          d,
          [&](int v) {
            const int j = v / vpg;
            const size_t o = static_cast<size_t>(v) * N;
            const VQ u = hn::Mul(hn::Set(d, static_cast<float>(st.sc[j])), hn::Load(d, Ln + o));
            const VQ m = hn::Set(d, static_cast<float>(st.m[j]));
            const VQ w = hn::Load(d, sl.wn + o);
            if constexpr (decltype(which)::value == 0) return hn::Mul(w, hn::Mul(u, u));
            if constexpr (decltype(which)::value == 1) return hn::Mul(w, hn::Mul(u, m));
            if constexpr (decltype(which)::value == 2) return hn::Mul(w, hn::Mul(m, m));
            if constexpr (decltype(which)::value == 3) return hn::Mul(w, hn::Mul(u, hn::LoadU(d, sl.xn + o)));
            if constexpr (decltype(which)::value == 4) return hn::Mul(w, hn::Mul(m, hn::LoadU(d, sl.xn + o)));
          },
          sl.scratch);
    };
    const float suu = sum_of(std::integral_constant<int, 0>()), suv = sum_of(std::integral_constant<int, 1>());
    const float svv = sum_of(std::integral_constant<int, 2>()), sux = sum_of(std::integral_constant<int, 3>());
    const float svx = sum_of(std::integral_constant<int, 4>());
    float nd, ndm;
    const float det = suu * svv - suv * suv;
    if (det > 0.0f) {
      nd = (sux * svv - suv * svx) / det;
      ndm = 0.0f - (suu * svx - suv * sux) / det;
    } else if (suu > 0.0f) {
      nd = sux / suu;
      ndm = F16ToF32(st.dmin);
    } else {
      break;
    }
    if (!(nd >= 0.0f) || !(ndm >= 0.0f) || !std::isfinite(nd) || !std::isfinite(ndm)) break;
    AsymState trial;
    trial.d = F32ToF16Saturate(nd);
    trial.dmin = F32ToF16Saturate(ndm);
    if (trial.d == st.d && trial.dmin == st.dmin) break;
    const float trial_err =
        ChooseScalesAsym<kN>(d, nmax, scale_max, a, b, trial.d, trial.dmin, sl, trial.L, trial.sc, trial.m);
    if (!(trial_err < err)) break;
    err = trial_err;
    st = trial;
  }
}

struct SymState {
  uint16_t d = 0;
  int8_t s[16] = {};
  HWY_ALIGN float L[kQK_K];  // value order
};

// ref::AssignSym, in value order (16 groups of 16).
HWY_INLINE float AssignSymFast(DQ d, int qmax, SuperLanes<16>& sl, SymState& st) {
  const size_t N = hn::Lanes(d);
  const int vpg = 16 / static_cast<int>(N);
  const float fd = F16ToF32(st.d);
  const VQ zero = hn::Zero(d);
  const VQ vqmax = hn::Set(d, static_cast<float>(qmax)), vqmin = hn::Set(d, -static_cast<float>(qmax) - 1.0f);
  float af[16], iaf[16];
  for (int j = 0; j < 16; ++j) {
    af[j] = fd * static_cast<float>(st.s[j]);
    iaf[j] = af[j] != 0.0f ? 1.0f / af[j] : 0.0f;
  }
  return SuperSumOf(
      d,
      [&](int v) {
        const int j = v / vpg;
        const size_t o = static_cast<size_t>(v) * N;
        const VQ a = hn::Set(d, af[j]), x = hn::LoadU(d, sl.xn + o);
        const VQ q = af[j] != 0.0f ? ClampRoundV(d, hn::Mul(x, hn::Set(d, iaf[j])), vqmin, vqmax) : zero;
        hn::Store(q, d, st.L + o);
        const VQ diff = hn::Sub(hn::Mul(a, q), x);
        return hn::Mul(hn::Load(d, sl.wn + o), hn::Mul(diff, diff));
      },
      sl.scratch);
}

// ref::QuantizeSuperSym; leaves the levels in st.L (value order).
HWY_INLINE void QuantizeSuperSymFast(DQ d, int qmax, int scale_neg_end, SuperLanes<16>& sl, FitScratch& fs,
                                     SymState& st) {
  constexpr int kG = 16;
  const size_t N = hn::Lanes(d);
  const int vpg = 16 / static_cast<int>(N);
  HWY_ALIGN float a[16];
  HWY_ALIGN float xg[16 * kMaxLanes], wg[16 * kMaxLanes];
  for (size_t c = 0; c < static_cast<size_t>(kG); c += N) {
    for (int i = 0; i < 16; ++i) {
      hn::Store(hn::Load(d, sl.xt + i * kG + c), d, xg + i * N);
      hn::Store(hn::Load(d, sl.wt + i * kG + c), d, wg + i * N);
    }
    FitSymLanes<16>(d, qmax, xg, wg, a + c, fs);
  }
  float amax = 0.0f, extreme = 0.0f;
  for (int j = 0; j < kG; ++j) {
    if (std::fabs(a[j]) > amax) {
      amax = std::fabs(a[j]);
      extreme = a[j];
    }
  }
  const float fneg = static_cast<float>(scale_neg_end);
  st.d = F32ToF16Saturate(extreme / fneg);
  const float fd = F16ToF32(st.d);
  const float id = fd != 0.0f ? 1.0f / fd : 0.0f;
  for (int j = 0; j < kG; ++j) st.s[j] = static_cast<int8_t>(ref::ClampRound(a[j] * id, fneg, -fneg - 1.0f));
  float err = AssignSymFast(d, qmax, sl, st);

  for (int r = 0; r < ref::kSuperRefits; ++r) {
    auto sum_of = [&](bool ux) {
      return SuperSumOf(
          d,
          [&](int v) {
            const size_t o = static_cast<size_t>(v) * N;
            const VQ u = hn::Mul(hn::Set(d, static_cast<float>(st.s[v / vpg])), hn::Load(d, st.L + o));
            const VQ w = hn::Load(d, sl.wn + o);
            return ux ? hn::Mul(w, hn::Mul(u, hn::LoadU(d, sl.xn + o))) : hn::Mul(w, hn::Mul(u, u));
          },
          sl.scratch);
    };
    const float suu = sum_of(false), sux = sum_of(true);
    if (!(suu > 0.0f)) break;
    const float nd = sux / suu;
    if (!std::isfinite(nd)) break;
    SymState trial;
    trial.d = F32ToF16Saturate(nd);
    if (trial.d == st.d) break;
    std::memcpy(trial.s, st.s, sizeof(st.s));
    const float trial_err = AssignSymFast(d, qmax, sl, trial);
    if (!(trial_err < err)) break;
    err = trial_err;
    st = trial;
  }
}

// Levels from the lane layout back to value order, as bytes (+ bias).
template <int kN>
HWY_INLINE void LevelsToBytes(const float* HWY_RESTRICT L, int bias, uint8_t* HWY_RESTRICT q) {
  constexpr int kG = kQK_K / kN;
  for (int j = 0; j < kG; ++j) {
    for (int i = 0; i < kN; ++i) q[j * kN + i] = static_cast<uint8_t>(static_cast<int>(L[i * kG + j]) + bias);
  }
}

HWY_INLINE void NaturalLevelsToBytes(const float* HWY_RESTRICT L, int bias, uint8_t* HWY_RESTRICT q) {
  for (int i = 0; i < kQK_K; ++i) q[i] = static_cast<uint8_t>(static_cast<int>(L[i]) + bias);
}

template <int kN, int kNmax>
HWY_INLINE void QuantizeAsymK(const float* x, const float* importance, AsymState& st) {
  const DQ d;
  SuperLanes<kN> sl;
  FitScratch fs;
  LoadSuper<kN>(x, importance, sl);
  QuantizeSuperAsymFast<kN>(d, kNmax, kN == 16 ? 15 : 63, sl, fs, st);
}

inline void QuantizeRowQ2KFast(const float* x, BlockQ2_K* y, int64_t n, const float* imp) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int64_t off = b * kQK_K;
    AsymState st;
    QuantizeAsymK<16, 3>(x + off, imp ? imp + off : nullptr, st);
    uint8_t q[kQK_K];
    LevelsToBytes<16>(st.L, 0, q);
    for (int g = 0; g < 16; ++g) y[b].scales[g] = static_cast<uint8_t>(st.sc[g] | (st.m[g] << 4));
    ref::PackLow2(q, y[b].qs);
    y[b].d = st.d;
    y[b].dmin = st.dmin;
  }
}

inline void QuantizeRowQ4KFast(const float* x, BlockQ4_K* y, int64_t n, const float* imp) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int64_t off = b * kQK_K;
    AsymState st;
    QuantizeAsymK<32, 15>(x + off, imp ? imp + off : nullptr, st);
    uint8_t q[kQK_K];
    LevelsToBytes<32>(st.L, 0, q);
    PackScaleMinK4(st.sc, st.m, y[b].scales);
    ref::PackNibblesK(q, y[b].qs);
    y[b].d = st.d;
    y[b].dmin = st.dmin;
  }
}

inline void QuantizeRowQ5KFast(const float* x, BlockQ5_K* y, int64_t n, const float* imp) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int64_t off = b * kQK_K;
    AsymState st;
    QuantizeAsymK<32, 31>(x + off, imp ? imp + off : nullptr, st);
    uint8_t q[kQK_K];
    LevelsToBytes<32>(st.L, 0, q);
    PackScaleMinK4(st.sc, st.m, y[b].scales);
    ref::PackNibblesK(q, y[b].qs);
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo_bit = (q[64 * c + l] >> 4) & 1, hi_bit = (q[64 * c + 32 + l] >> 4) & 1;
        y[b].qh[l] = static_cast<uint8_t>(y[b].qh[l] | (lo_bit << (2 * c)) | (hi_bit << (2 * c + 1)));
      }
    }
    y[b].d = st.d;
    y[b].dmin = st.dmin;
  }
}

template <int kQmax, int kScaleNegEnd>
HWY_INLINE void QuantizeSymK(const float* x, const float* importance, SymState& st) {
  const DQ d;
  SuperLanes<16> sl;
  FitScratch fs;
  LoadSuper<16>(x, importance, sl);
  QuantizeSuperSymFast(d, kQmax, kScaleNegEnd, sl, fs, st);
}

inline void QuantizeRowQ3KFast(const float* x, BlockQ3_K* y, int64_t n, const float* imp) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int64_t off = b * kQK_K;
    SymState st;
    QuantizeSymK<3, -32>(x + off, imp ? imp + off : nullptr, st);
    uint8_t code[kQK_K];
    NaturalLevelsToBytes(st.L, 4, code);
    ref::PackLow2(code, y[b].qs);
    std::memset(y[b].hmask, 0, sizeof(y[b].hmask));
    for (int i = 0; i < kQK_K; ++i) {
      if (code[i] >= 4) y[b].hmask[i % 32] = static_cast<uint8_t>(y[b].hmask[i % 32] | (1 << (i / 32)));
    }
    uint8_t S[16];
    for (int g = 0; g < 16; ++g) S[g] = static_cast<uint8_t>(st.s[g] + 32);
    PackScalesQ3K(S, y[b].scales);
    y[b].d = st.d;
  }
}

inline void QuantizeRowQ6KFast(const float* x, BlockQ6_K* y, int64_t n, const float* imp) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int64_t off = b * kQK_K;
    SymState st;
    QuantizeSymK<31, -128>(x + off, imp ? imp + off : nullptr, st);
    uint8_t q[kQK_K];
    NaturalLevelsToBytes(st.L, 32, q);
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t* e = q + 128 * h;
        y[b].ql[64 * h + l] = static_cast<uint8_t>((e[l] & 0xF) | ((e[64 + l] & 0xF) << 4));
        y[b].ql[64 * h + 32 + l] = static_cast<uint8_t>((e[32 + l] & 0xF) | ((e[96 + l] & 0xF) << 4));
        y[b].qh[32 * h + l] = static_cast<uint8_t>((e[l] >> 4) | ((e[32 + l] >> 4) << 2) |
                                                   ((e[64 + l] >> 4) << 4) | ((e[96 + l] >> 4) << 6));
      }
    }
    for (int g = 0; g < 16; ++g) y[b].scales[g] = st.s[g];
    y[b].d = st.d;
  }
}

// ---------------------------------------------------------------- legacy

// Q4_0/Q5_0 (kSym) and Q4_1/Q5_1: lanes = blocks of 32. The level fit runs
// N blocks at once; the final assignment with the f16 factors is scalar.
template <bool kSym, int kQ>  // kQ: qmax (symmetric) or nmax
HWY_INLINE void QuantizeLegacyBlocks(const float* x, const float* importance, int64_t blocks,
                                     void (*emit)(void* y, int64_t b, const uint8_t* q, uint16_t d, uint16_t m),
                                     void* y) {
  const DQ d;
  const size_t N = hn::Lanes(d);
  FitScratch fs;
  HWY_ALIGN float xt[32 * kMaxLanes], wt[32 * kMaxLanes], scale[kMaxLanes], offset[kMaxLanes];
  for (int64_t b0 = 0; b0 < blocks; b0 += static_cast<int64_t>(N)) {
    const size_t lanes = static_cast<size_t>(blocks - b0 < static_cast<int64_t>(N) ? blocks - b0 : N);
    for (size_t j = 0; j < N; ++j) {
      for (int i = 0; i < kQK; ++i) xt[i * N + j] = j < lanes ? x[(b0 + static_cast<int64_t>(j)) * kQK + i] : 0.0f;
    }
    LaneWeights<kQK>(importance ? importance + b0 * kQK : nullptr, kQK, lanes, N, wt);
    if (kSym) {
      FitSymLanes<kQK>(d, kQ, xt, wt, scale, fs);
    } else {
      FitAsymLanes<kQK, false>(d, kQ, xt, wt, scale, offset, fs);
    }
    for (size_t j = 0; j < lanes; ++j) {
      const float* xb = x + (b0 + static_cast<int64_t>(j)) * kQK;
      uint8_t q[kQK];
      if (kSym) {
        const uint16_t dh = F32ToF16Saturate(scale[j]);
        const float fd = F16ToF32(dh), id = fd != 0.0f ? 1.0f / fd : 0.0f;
        const float fq = static_cast<float>(kQ);
        for (int i = 0; i < kQK; ++i) {
          const float v = fd != 0.0f ? ref::ClampRound(xb[i] * id, -fq - 1.0f, fq) : 0.0f;
          q[i] = static_cast<uint8_t>(static_cast<int>(v) + kQ + 1);
        }
        emit(y, b0 + static_cast<int64_t>(j), q, dh, 0);
      } else {
        const uint16_t dh = F32ToF16Saturate(scale[j]), mh = F32ToF16Saturate(offset[j]);
        const float fd = F16ToF32(dh), fm = F16ToF32(mh), id = fd > 0.0f ? 1.0f / fd : 0.0f;
        for (int i = 0; i < kQK; ++i) {
          q[i] = static_cast<uint8_t>(fd > 0.0f ? ref::ClampRound((xb[i] - fm) * id, 0.0f, static_cast<float>(kQ))
                                                : 0.0f);
        }
        emit(y, b0 + static_cast<int64_t>(j), q, dh, mh);
      }
    }
  }
}

inline void EmitQ4_0(void* y, int64_t b, const uint8_t* q, uint16_t d, uint16_t) {
  BlockQ4_0& blk = static_cast<BlockQ4_0*>(y)[b];
  blk.d = d;
  ref::PackNibbles32(q, blk.qs);
}
inline void EmitQ5_0(void* y, int64_t b, const uint8_t* q, uint16_t d, uint16_t) {
  BlockQ5_0& blk = static_cast<BlockQ5_0*>(y)[b];
  blk.d = d;
  ref::PackNibbles32(q, blk.qs);
  ref::PackHighBits32(q, blk.qh);
}
inline void EmitQ4_1(void* y, int64_t b, const uint8_t* q, uint16_t d, uint16_t m) {
  BlockQ4_1& blk = static_cast<BlockQ4_1*>(y)[b];
  blk.d = d;
  blk.m = m;
  ref::PackNibbles32(q, blk.qs);
}
inline void EmitQ5_1(void* y, int64_t b, const uint8_t* q, uint16_t d, uint16_t m) {
  BlockQ5_1& blk = static_cast<BlockQ5_1*>(y)[b];
  blk.d = d;
  blk.m = m;
  ref::PackNibbles32(q, blk.qs);
  ref::PackHighBits32(q, blk.qh);
}

}  // namespace quant_detail

// Quantizes one row of n finite f32 values (QuantizeRowReference's contract)
// with the same bytes as the reference. importance: null or n weights >= 0.
inline void QuantizeRowFast(QuantType type, const float* src, void* dst, int64_t n, const float* importance) {
  namespace qd = quant_detail;
  RowBytes(type, n);  // validates n
  switch (type) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case QuantType::kF16: StoreF32AsF16(src, static_cast<uint16_t*>(dst), n); return;
    case QuantType::kBF16: StoreF32AsBF16(src, static_cast<uint16_t*>(dst), n); return;
    case QuantType::kQ8_0: QuantizeRowQ80(src, static_cast<BlockQ8_0*>(dst), n); return;
    case QuantType::kQ8_K: QuantizeRowQ8K(src, static_cast<BlockQ8_K*>(dst), n); return;
    case QuantType::kQ4_0: qd::QuantizeLegacyBlocks<true, 7>(src, importance, n / kQK, qd::EmitQ4_0, dst); return;
    case QuantType::kQ5_0: qd::QuantizeLegacyBlocks<true, 15>(src, importance, n / kQK, qd::EmitQ5_0, dst); return;
    case QuantType::kQ4_1: qd::QuantizeLegacyBlocks<false, 15>(src, importance, n / kQK, qd::EmitQ4_1, dst); return;
    case QuantType::kQ5_1: qd::QuantizeLegacyBlocks<false, 31>(src, importance, n / kQK, qd::EmitQ5_1, dst); return;
    case QuantType::kQ2_K: qd::QuantizeRowQ2KFast(src, static_cast<BlockQ2_K*>(dst), n, importance); return;
    case QuantType::kQ3_K: qd::QuantizeRowQ3KFast(src, static_cast<BlockQ3_K*>(dst), n, importance); return;
    case QuantType::kQ4_K: qd::QuantizeRowQ4KFast(src, static_cast<BlockQ4_K*>(dst), n, importance); return;
    case QuantType::kQ5_K: qd::QuantizeRowQ5KFast(src, static_cast<BlockQ5_K*>(dst), n, importance); return;
    case QuantType::kQ6_K: qd::QuantizeRowQ6KFast(src, static_cast<BlockQ6_K*>(dst), n, importance); return;
  }
  QuantizeRowReference(type, src, dst, n, importance);  // throws kUnsupportedType
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace v0
}  // namespace blockquant
HWY_AFTER_NAMESPACE();

#endif  // BLOCKQUANT_CPU_QUANTIZE_INL_H_
