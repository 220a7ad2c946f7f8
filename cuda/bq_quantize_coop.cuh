// GPU K-quant quantization with one lane per group: the 8 or 16 group
// searches of a super-block (the bulk of the work) run side by side; the
// super-block's 256-term sums are split over its lanes in FixedSum's own
// order, and every lane takes the reference's decisions from them. The steps
// mirror ref::QuantizeSuperAsym and ref::QuantizeSuperSym (quant/k_quants.h)
// one for one, so the bytes are the CPU reference's; the device tests compare
// them. One thread per super-block (QuantizeRefKernel) kept ~4 KB of arrays
// per thread in local memory and left the searches serial: 33 ms against 11
// for a 28672 x 8192 Q4_K tensor on an H200.
//
// Compile with -fmad=false, as every GPU copy of the reference.
#ifndef BLOCKQUANT_CUDA_BQ_QUANTIZE_COOP_CUH_
#define BLOCKQUANT_CUDA_BQ_QUANTIZE_COOP_CUH_

#include <cstdint>
#include <type_traits>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/quant/k_quants.h"
#include "blockquant/quant/search.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace coop {

// Per type: the group layout and the reference's constants.
template <QuantType kType>
struct KQuant;
template <>
struct KQuant<QuantType::kQ2_K> {
  using Block = BlockQ2_K;
  static constexpr bool kAsym = true;
  static constexpr int kGroup = 16, kNmax = 3, kScaleMax = 15;
  static __device__ void Pack(const ref::AsymSuper& s, Block* y) { ref::PackQ2_K(s, y); }
};
template <>
struct KQuant<QuantType::kQ4_K> {
  using Block = BlockQ4_K;
  static constexpr bool kAsym = true;
  static constexpr int kGroup = 32, kNmax = 15, kScaleMax = 63;
  static __device__ void Pack(const ref::AsymSuper& s, Block* y) { ref::PackQ4_K(s, y); }
};
template <>
struct KQuant<QuantType::kQ5_K> {
  using Block = BlockQ5_K;
  static constexpr bool kAsym = true;
  static constexpr int kGroup = 32, kNmax = 31, kScaleMax = 63;
  static __device__ void Pack(const ref::AsymSuper& s, Block* y) { ref::PackQ5_K(s, y); }
};
template <>
struct KQuant<QuantType::kQ3_K> {
  using Block = BlockQ3_K;
  static constexpr bool kAsym = false;
  static constexpr int kGroup = 16, kQmax = 3, kScaleNegEnd = -32;
  static __device__ void Pack(const ref::SymSuper& s, Block* y) { ref::PackQ3_K(s, y); }
};
template <>
struct KQuant<QuantType::kQ6_K> {
  using Block = BlockQ6_K;
  static constexpr bool kAsym = false;
  static constexpr int kGroup = 16, kQmax = 31, kScaleNegEnd = -128;
  static __device__ void Pack(const ref::SymSuper& s, Block* y) { ref::PackQ6_K(s, y); }
};

// A super-block's shared state. Each group's values are contiguous (the
// reference functions take a pointer per group) but groups sit kGroup + 1
// floats apart: with a plain layout every lane's group started on the same
// shared-memory bank and the searches ran at 8-way conflicts (Nsight Compute:
// L1 at 90%). P(i) is element i's slot. Laid over raw shared memory (the
// reference structs have member initializers, which __shared__ variables
// cannot run); every field is written before it is read. At the end the
// reference struct that Pack takes is assembled over x and w.
template <int kGroup>
struct State {
  static constexpr int kStride = kGroup + 1, kPadded = kQK_K / kGroup * kStride;
  static __device__ int P(int i) { return i + i / kGroup; }
  float x[kPadded], w[kPadded];
  float L[kPadded], tL[kPadded];  // the current levels and the refit's trial
  float a[16], b[16], err[16];
  uint8_t sc[16], m[16], tsc[16], tm[16];  // asymmetric: group scales and mins (current, trial)
  int8_t s[16];                             // symmetric: group scales
};
static_assert(sizeof(ref::AsymSuper) <= 2 * sizeof(float) * State<32>::kPadded, "Pack's struct fits over x, w");
static_assert(sizeof(ref::SymSuper) <= 2 * sizeof(float) * State<16>::kPadded, "Pack's struct fits over x, w");

constexpr int kThreads = 64;  // 8 Q4_K/Q5_K or 4 Q2_K/Q3_K/Q6_K super-blocks per CTA

// ref::FixedSum over t[i] = term(i), i < 256, by the kG lanes of a super-block,
// every lane getting the result. Lane g holds i = g, g + kG, ...: the halving
// tree's levels down to kG pair values of one lane, the last log2(kG) levels
// are shuffles; the same additions, operands in the same order.
template <int kG, typename Term>
__device__ inline float LaneFixedSum256(int g, Term term) {
  constexpr int kPer = kQK_K / kG;
  float v[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k) v[k] = term(g + k * kG);
  float sum = ref::FixedSumN<kPer>(v);
#pragma unroll
  for (int half = kG / 2; half >= 1; half /= 2) {
    const float upper = __shfl_down_sync(0xffffffffu, sum, half, kG);
    sum = sum + upper;  // right on lanes g < half, which are all the next level reads
  }
  return __shfl_sync(0xffffffffu, sum, 0, kG);
}

// The super-block's sum of 16 per-group errors, as ChooseGroupScalesAsym
// forms it (slots past the group count are 0).
__device__ inline float SumGroupErrors(const float* err) {
  float t[16];
#pragma unroll
  for (int j = 0; j < 16; ++j) t[j] = err[j];
  return ref::FixedSumN<16>(t);
}

// ref::RefitAsym with its five 256-term sums spread over the lanes.
template <int kG, int kGroup>
__device__ inline bool LaneRefitAsym(int g, const State<kGroup>& st, uint16_t dmin, float* nd, float* ndm) {
  using S = State<kGroup>;
  auto u = [&](int i) { return static_cast<float>(st.sc[i / kGroup]) * st.L[S::P(i)]; };
  auto v = [&](int i) { return static_cast<float>(st.m[i / kGroup]); };
  const float suu = LaneFixedSum256<kG>(g, [&](int i) { const float ui = u(i); return st.w[S::P(i)] * (ui * ui); });
  const float suv = LaneFixedSum256<kG>(g, [&](int i) { return st.w[S::P(i)] * (u(i) * v(i)); });
  const float svv = LaneFixedSum256<kG>(g, [&](int i) { const float vi = v(i); return st.w[S::P(i)] * (vi * vi); });
  const float sux = LaneFixedSum256<kG>(g, [&](int i) { return st.w[S::P(i)] * (u(i) * st.x[S::P(i)]); });
  const float svx = LaneFixedSum256<kG>(g, [&](int i) { return st.w[S::P(i)] * (v(i) * st.x[S::P(i)]); });
  const float det = suu * svv - suv * suv;
  if (det > 0.0f) {
    *nd = (sux * svv - suv * svx) / det;
    *ndm = 0.0f - (suu * svx - suv * sux) / det;
  } else if (suu > 0.0f) {
    *nd = sux / suu;
    *ndm = F16ToF32(dmin);
  } else {
    return false;
  }
  return *nd >= 0.0f && *ndm >= 0.0f && ref::IsFiniteF(*nd) && ref::IsFiniteF(*ndm);
}

// Lanes g = 0..G-1 of one super-block (G = 256 / group). Every lane reaches
// the same decisions from the same shared values, so no lane leads and all
// lanes of the warp run the same control flow (plain __syncwarp()). Leaves
// the result as a ref::AsymSuper over st.x, for Pack.
template <QuantType kType>
__device__ ref::AsymSuper& QuantizeAsym(State<KQuant<kType>::kGroup>& st, int g, const float* imp) {
  using K = KQuant<kType>;
  using S = State<K::kGroup>;
  constexpr int kG = kQK_K / K::kGroup;
  float* xg = st.x + g * S::kStride;
  float* wg = st.w + g * S::kStride;
  const float fmax_s = static_cast<float>(K::kScaleMax);
  ref::FitGroupAsymN<K::kGroup>(K::kNmax, xg, imp ? imp + g * K::kGroup : nullptr, wg, &st.a[g], &st.b[g]);
  if (g == 0) {
    for (int j = kG; j < 16; ++j) st.err[j] = 0.0f;
  }
  __syncwarp();
  float max_a = 0.0f, max_b = 0.0f;
  for (int j = 0; j < kG; ++j) {
    max_a = ref::Max2(max_a, st.a[j]);
    max_b = ref::Max2(max_b, st.b[j]);
  }
  uint16_t d = F32ToF16Saturate(max_a / fmax_s), dmin = F32ToF16Saturate(max_b / fmax_s);
  st.err[g] = ref::ChooseGroupScaleAsymN<K::kGroup>(K::kNmax, K::kScaleMax, xg, wg, st.a[g], st.b[g], F16ToF32(d),
                                                    F16ToF32(dmin), &st.sc[g], &st.m[g], st.L + g * S::kStride);
  __syncwarp();
  float err = SumGroupErrors(st.err);
  // The reference's refit loop, with `active` for its breaks: the super-blocks
  // of one warp may stop at different rounds, and the shuffles need them all.
  bool active = true;
  for (int r = 0; r < ref::kSuperRefits; ++r) {
    float nd, ndm;
    uint16_t td = 0, tdm = 0;
    const bool refit = LaneRefitAsym<kG, K::kGroup>(g, st, dmin, &nd, &ndm);
    if (active) {
      if (!refit) {
        active = false;
      } else {
        td = F32ToF16Saturate(nd);
        tdm = F32ToF16Saturate(ndm);
        if (td == d && tdm == dmin) active = false;
      }
    }
    __syncwarp();  // every lane has read err[] and the refit's inputs
    if (active) {
      st.err[g] = ref::ChooseGroupScaleAsymN<K::kGroup>(K::kNmax, K::kScaleMax, xg, wg, st.a[g], st.b[g],
                                                        F16ToF32(td), F16ToF32(tdm), &st.tsc[g], &st.tm[g],
                                                        st.tL + g * S::kStride);
    }
    __syncwarp();
    if (active) {
      const float trial_err = SumGroupErrors(st.err);
      if (!(trial_err < err)) {
        active = false;
      } else {
        err = trial_err;
        d = td;
        dmin = tdm;
        st.sc[g] = st.tsc[g];
        st.m[g] = st.tm[g];
        for (int i = g * S::kStride; i < g * S::kStride + K::kGroup; ++i) st.L[i] = st.tL[i];
      }
    }
    __syncwarp();
  }
  // Assemble the reference struct over x and w, which are no longer read.
  ref::AsymSuper& out = *reinterpret_cast<ref::AsymSuper*>(st.x);
  for (int i = g; i < kQK_K; i += kG) out.L[i] = st.L[S::P(i)];
  if (g == 0) {
    out.d = d;
    out.dmin = dmin;
    for (int j = 0; j < 16; ++j) {
      out.sc[j] = j < kG ? st.sc[j] : 0;
      out.m[j] = j < kG ? st.m[j] : 0;
    }
  }
  __syncwarp();
  return out;
}

// ref::AssignSym over the lanes, into `L` with scale d: the levels, and the
// weighted squared error (every lane gets it).
template <int kQmax>
__device__ inline float LaneAssignSym(int g, State<16>& st, uint16_t d, float* L) {
  using S = State<16>;
  const float fd = F16ToF32(d);
  const float fqmax = static_cast<float>(kQmax);
  return LaneFixedSum256<16>(g, [&](int i) {
    const float a = fd * static_cast<float>(st.s[i / 16]);
    const float ia = a != 0.0f ? 1.0f / a : 0.0f;
    const int p = S::P(i);
    L[p] = a != 0.0f ? ref::ClampRound(st.x[p] * ia, -fqmax - 1.0f, fqmax) : 0.0f;
    const float diff = a * L[p] - st.x[p];
    return st.w[p] * (diff * diff);
  });
}

template <QuantType kType>
__device__ ref::SymSuper& QuantizeSym(State<16>& st, int g, const float* imp) {
  using K = KQuant<kType>;
  using S = State<16>;
  float* xg = st.x + g * S::kStride;
  float* wg = st.w + g * S::kStride;
  ref::GroupWeights(16, imp ? imp + 16 * g : nullptr, wg);
  st.a[g] = ref::FitSymmetricN<16>(K::kQmax, xg, wg, st.L + g * S::kStride);
  __syncwarp();
  const float fneg = static_cast<float>(K::kScaleNegEnd);
  float amax = 0.0f, extreme = 0.0f;
  for (int j = 0; j < 16; ++j) {
    if (ref::AbsF(st.a[j]) > amax) {
      amax = ref::AbsF(st.a[j]);
      extreme = st.a[j];
    }
  }
  uint16_t d = F32ToF16Saturate(extreme / fneg);
  {
    const float fd = F16ToF32(d);
    const float id = fd != 0.0f ? 1.0f / fd : 0.0f;
    st.s[g] = static_cast<int8_t>(ref::ClampRound(st.a[g] * id, fneg, -fneg - 1.0f));  // kept by the refits
  }
  __syncwarp();
  float err = LaneAssignSym<K::kQmax>(g, st, d, st.L);
  __syncwarp();
  bool active = true;  // the reference's breaks, as in QuantizeAsym
  for (int r = 0; r < ref::kSuperRefits; ++r) {
    // Refit d: x ~ d * (s_j q) over 256 values.
    auto u = [&](int i) { return static_cast<float>(st.s[i / 16]) * st.L[S::P(i)]; };
    const float suu = LaneFixedSum256<16>(g, [&](int i) { const float ui = u(i); return st.w[S::P(i)] * (ui * ui); });
    const float sux = LaneFixedSum256<16>(g, [&](int i) { return st.w[S::P(i)] * (u(i) * st.x[S::P(i)]); });
    uint16_t td = 0;
    if (active) {
      const float nd = suu > 0.0f ? sux / suu : 0.0f;
      if (!(suu > 0.0f) || !ref::IsFiniteF(nd)) {
        active = false;
      } else {
        td = F32ToF16Saturate(nd);
        if (td == d) active = false;
      }
    }
    __syncwarp();
    const float trial_err = LaneAssignSym<K::kQmax>(g, st, td, st.tL);  // every lane: it shuffles
    __syncwarp();
    if (active) {
      if (!(trial_err < err)) {
        active = false;
      } else {
        err = trial_err;
        d = td;
        for (int i = g * S::kStride; i < g * S::kStride + 16; ++i) st.L[i] = st.tL[i];
      }
    }
    __syncwarp();
  }
  ref::SymSuper& out = *reinterpret_cast<ref::SymSuper*>(st.x);
  for (int i = g; i < kQK_K; i += 16) out.L[i] = st.L[S::P(i)];
  out.s[g] = st.s[g];
  if (g == 0) out.d = d;
  __syncwarp();
  return out;
}

// Super-blocks are numbered across rows; a row-major tensor's are contiguous
// (cols is a multiple of 256), so a CTA loads its run of x in one coalesced
// sweep. Grid-stride over CTA-sized runs.
template <QuantType kType>
__global__ void __launch_bounds__(kThreads) QuantizeKQuantKernel(const float* __restrict__ x, int64_t rows,
                                                                 int64_t cols, const float* __restrict__ importance,
                                                                 uint8_t* __restrict__ out) {
  using K = KQuant<kType>;
  using S = State<K::kGroup>;
  constexpr int kG = kQK_K / K::kGroup;   // lanes per super-block
  constexpr int kPerCta = kThreads / kG;  // super-blocks per CTA
  __shared__ alignas(16) unsigned char raw[kPerCta * sizeof(S)];
  S* states = reinterpret_cast<S*>(raw);
  const int local = threadIdx.x / kG, g = threadIdx.x % kG;
  S& st = states[local];
  const int64_t per_row = cols / kQK_K, total = rows * per_row;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * kPerCta; first < total;
       first += static_cast<int64_t>(gridDim.x) * kPerCta) {
    const int64_t n_here = total - first < kPerCta ? total - first : kPerCta;
    // Lanes of a missing super-block (the tensor's tail) still take part in
    // their warp's shuffles, on a copy of the run's first super-block.
    for (int64_t i = threadIdx.x; i < kPerCta * kQK_K; i += kThreads) {
      const int64_t sb = i / kQK_K < n_here ? i / kQK_K : 0;
      states[i / kQK_K].x[S::P(static_cast<int>(i % kQK_K))] = x[(first + sb) * kQK_K + i % kQK_K];
    }
    __syncthreads();
    const int64_t sb = first + local;
    const bool real = local < n_here;
    const float* imp = importance ? importance + ((real ? sb : first) % per_row) * kQK_K : nullptr;
    if constexpr (K::kAsym) {
      const ref::AsymSuper& s = QuantizeAsym<kType>(st, g, imp);
      if (real && g == 0) K::Pack(s, reinterpret_cast<typename K::Block*>(out) + sb);
    } else {
      const ref::SymSuper& s = QuantizeSym<kType>(st, g, imp);
      if (real && g == 0) K::Pack(s, reinterpret_cast<typename K::Block*>(out) + sb);
    }
    __syncthreads();
  }
}

}  // namespace coop
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_QUANTIZE_COOP_CUH_
