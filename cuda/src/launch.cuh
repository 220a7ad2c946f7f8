// Internal: typed launchers behind blockquant_cuda.h. Each matmul_<type>.cu
// instantiates one type, so the kernels compile in parallel.
#ifndef BLOCKQUANT_CUDA_SRC_LAUNCH_CUH_
#define BLOCKQUANT_CUDA_SRC_LAUNCH_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "blockquant_cuda.h"
#include "bq_gemv.cuh"
#include "bq_matmul.cuh"
#include "bq_mma_q8.cuh"
#include "bq_mma_q8_g16.cuh"
#include "bq_wgmma.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

// quantize_ref.cu: the reference quantizer on the GPU, any type but Q8_0.
cudaError_t LaunchQuantizeRef(QuantType type, const float* x, int64_t rows, int64_t cols, const float* importance,
                              uint8_t* out, cudaStream_t stream);

// gptq.cu: bq_gptq.cuh's kernels for Q2_K..Q6_K (cudaErrorInvalidValue for others).
cudaError_t LaunchGptqRoundBatch(QuantType type, float* w, int64_t rows, int64_t ld, int64_t c0,
                                 const uint8_t* blocks, const float* u, int64_t ldu, int8_t* levels, float* err,
                                 cudaStream_t stream);
cudaError_t LaunchWriteLevels(QuantType type, const int8_t* levels, int64_t rows, int64_t cols, int64_t ld,
                              uint8_t* blocks, cudaStream_t stream);

// From this many rows bq_mma_q8_g16.cuh's mma_q8 runs 4 warps per 16 rows
// and 4 CTAs per SM instead of LaunchMmaQ8G16's defaults (8 and 2), which
// shorter matrices need so that every SM gets enough warps (H200, n = 16,
// Q2_K / Q3_K / Q6_K / Q8_0: 28672 x 8192 68.9 / 68.4 / 82.6 / 90.4 us
// against 81.2 / 77.5 / 93.5 / 101.1; 4096 x 14336 30.3 / 31.1 / 36.2 /
// 37.0 against 22.3 / 22.8 / 27.2 / 29.8).
constexpr int64_t kMmaQ8G16TallRows = 16384;

// The wide mma_q8 (n = 17..64) for a type, rows and n: consumer warps per K
// group, K groups, stages. H200, cold, us (bench/results/
// cuda_wide_variants_h200_2026-12-03.md; the setting taken, then the one it
// replaced):
// - 28672 x 8192, n = 24 and 32: 2 x 2 warps and 4 stages for Q2_K 93.4 /
//   94.0 against 4 x 1 and 3 stages' 101.0 / 101.2 (and wgmma's 100.8 /
//   100.1), Q3_K 104.6 / 105.9 against 110.5 / 111.7, Q6_K 101.9 / 103.4
//   against 106.3 / 106.6, Q4_0 84.9 / 86.1 against 90.7 / 90.5; Q8_0 keeps
//   4 x 1 (91.3 / 91.6 against 93.0 / 94.0). At n = 64, 4 x 1 is within 1%
//   of the best but for Q2_K (213.4 against 8 x 1's 194.0, with BF16 x only:
//   F16 x takes wgmma there).
// - 4096 x 14336, n = 24 and 32: 1 x 4 warps and 8 stages for Q6_K 32.0 /
//   32.2 against 2 x 4 and 4 stages' 32.9 / 33.1, Q8_0 29.5 / 29.6 against
//   32.0 / 32.3, Q4_0 29.6 / 29.7 against 30.8 / 31.0; Q2_K keeps 2 x 4
//   (31.8 / 32.1 against 42.1 / 42.7), and Q3_K (32.5 / 32.8 against 32.2 /
//   32.6: within the runs' spread). n = 48 and 64: 2 x 2 for Q2_K 52.1 /
//   52.6 against 55.3 / 56.2; the others keep 2 x 4 (1 x 4 with 8 stages
//   lost 18-26%).
// Those runs had no proxy fence before the refills; with it the same
// settings won again (Q2_K 94.2 against 101.4 at n = 32 on 28672 rows, Q8_0
// 31.6 against 33.2 on 4096), but Q4_0 on 4096 rows tied (31.7 against
// 31.3; docs/cuda.md, "The proxy fence").
// Stages are a multiple of the K groups (the kernel asserts it).
template <QuantType kType, typename Act>
cudaError_t LaunchMmaQ8G16WideFor(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                                  uint8_t* workspace, cudaStream_t stream) {
  constexpr bool kQ2 = kType == QuantType::kQ2_K, kQ3 = kType == QuantType::kQ3_K;
  if (rows >= kMmaQ8G16TallRows) {
    if constexpr (kType != QuantType::kQ8_0) {
      if (n <= 32) return LaunchMmaQ8G16Wide<kType, Act, 2, 2, 4>(w, rows, cols, x, n, y, workspace, stream);
    }
    return LaunchMmaQ8G16Wide<kType, Act>(w, rows, cols, x, n, y, workspace, stream);
  }
  if constexpr (kQ2) {
    if (n > 32) return LaunchMmaQ8G16Wide<kType, Act, 2, 2, 4>(w, rows, cols, x, n, y, workspace, stream);
  } else if constexpr (!kQ3) {
    if (n <= 32) return LaunchMmaQ8G16Wide<kType, Act, 1, 4, 8>(w, rows, cols, x, n, y, workspace, stream);
  }
  return LaunchMmaQ8G16Wide<kType, Act, 2, 4, 4>(w, rows, cols, x, n, y, workspace, stream);
}

// The mma_q8 kernel for F16 or BF16 x: bq_mma_q8.cuh's LaunchMmaQ8 for Q4_K
// and Q5_K, bq_mma_q8_g16.cuh's LaunchMmaQ8G16 for Q2_K, Q3_K, Q6_K, Q8_0
// and Q4_0; instantiated in the types' matmul_<type>.cu.
template <QuantType kType>
cudaError_t LaunchMmaQ8Act(const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type, const void* x,
                           int64_t n, float* y, uint8_t* workspace, cudaStream_t stream) {
  auto launch = [&](const auto* xa) {
    if constexpr (kType != QuantType::kQ4_K && kType != QuantType::kQ5_K) {
      using Act = std::remove_cv_t<std::remove_pointer_t<decltype(xa)>>;
      // The wide kernel: on short matrices fewer rows per CTA and a K split,
      // so that every SM gets work.
      if (n > 16) return LaunchMmaQ8G16WideFor<kType, Act>(w, rows, cols, xa, n, y, workspace, stream);
      if (rows >= kMmaQ8G16TallRows) {
        return LaunchMmaQ8G16<kType, Act, 4, 2, 4>(w, rows, cols, xa, n, y, workspace, stream);
      }
      return LaunchMmaQ8G16<kType>(w, rows, cols, xa, n, y, workspace, stream);
    } else {
      return LaunchMmaQ8<kType>(w, rows, cols, xa, n, y, workspace, stream);
    }
  };
  if (act_type == QuantType::kBF16) return launch(static_cast<const __nv_bfloat16*>(x));
  return launch(static_cast<const __half*>(x));
}
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ8_0>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ4_0>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ2_K>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ3_K>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ4_K>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ5_K>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);
extern template cudaError_t LaunchMmaQ8Act<QuantType::kQ6_K>(const uint8_t*, int64_t, int64_t, QuantType,
                                                             const void*, int64_t, float*, uint8_t*, cudaStream_t);

// 2 warps (32 rows) per CTA for n <= 8: small CTAs, so that every CTA of
// a GEMV is resident at once and the SMs get near-equal shares.
constexpr int kMma8Warps = 2;

template <QuantType kType, typename Act, int kNT, int kWarps, int kStages>
cudaError_t LaunchMma(const uint8_t* w, int64_t rows, int64_t cols, const void* x, int64_t n, float* y,
                      cudaStream_t stream) {
  return LaunchMmaMatMul<kType, Act, kNT, kWarps, kStages>(w, rows, cols, static_cast<const Act*>(x), n, y, stream);
}

// The wgmma configuration for n (H200 measurements in docs/cuda.md):
// 16 or 32 columns per CTA with one warpgroup (64 rows), 3 stages and up to
// 4 or 3 CTAs per SM, so that a 28672-row GEMV-like product fits one wave;
// two warpgroups sharing 64 or 128 columns beyond (64 to n = 128 on short
// matrices, WgmmaNarrowTileWins); a K split over clusters of 2 or 4 CTAs
// where the tiles alone would leave SMs idle (WgmmaKSplit).
// workspace: x's group sums, WgmmaWorkspaceBytes(kType, n, cols) bytes
// (Q3_K: none). Instantiated in matmul_q2_k.cu, matmul_q3_k.cu,
// matmul_q4_k.cu and matmul_q5_k.cu.
template <QuantType kType, int kBN, int kWGs, int kStages, int kMinBlocks, bool kF16W = false, int kBatch = 4,
          bool kProducerWarp = kF16W>
cudaError_t LaunchWgmmaTile(const uint8_t* w, int64_t rows, int64_t cols, const __half* x, int64_t n, float* y,
                            void* workspace, cudaStream_t stream) {
  return LaunchWgmmaMatMul<kType, kBN, kWGs, kStages, kBatch, kMinBlocks, kF16W, kProducerWarp>(
      w, rows, cols, x, n, y, workspace, stream, kWgmmaKSplitAuto);
}
// Whether n = 65..128 columns take the 64-column tile over the 128-column
// one: where the latter's row tiles (128 rows each) are at most a quarter of
// the SMs, its K split of 4 leaves most SMs idle or needs more clusters of
// 4 than the GPU holds at once (an H200 holds 30 of the f16-weights
// kernel's), while 64 columns give twice the tiles, split by 2 (H200,
// 4096 x 14336, n = 128, f16 weights: 46.9 us against 68.8-71.1 with the
// fitted split, 96.7 before it).
inline bool WgmmaNarrowTileWins(int64_t rows, int64_t n) {
  if (n <= 64 || n > 128) return false;
  const int sms = CurrentSmCount();
  return sms > 0 && (rows + 127) / 128 * 4 <= sms;
}
// Whether n = 65..128 columns of f16 weights take 4 warpgroups (256 rows per
// CTA, thread 0 streaming the stages: a producer warp would leave too few
// registers) over 2: where that does not take more waves of one CTA per SM,
// counting a 4-warpgroup CTA as two (the tall matrices whose 128-row tiles
// are one to two times the SMs). The 4-warpgroup CTA shares each x tile
// among twice the rows. H200, Q4_K, 28672 x 8192, n = 128 (224 against 112
// tiles on 132 SMs): 111.5 and 112.4 us against 121.4 and 122.5, two runs.
inline bool WgmmaFourWarpgroupsWin(int64_t rows, int64_t n) {
  if (n <= 64 || n > 128) return false;
  const int64_t sms = CurrentSmCount();
  if (sms <= 0) return false;
  const int64_t tiles2 = (rows + 127) / 128, tiles4 = (rows + 255) / 256;
  return tiles2 > sms && 2 * ((tiles4 + sms - 1) / sms) <= (tiles2 + sms - 1) / sms;
}
template <QuantType kType>
cudaError_t LaunchWgmma(const uint8_t* w, int64_t rows, int64_t cols, const __half* x, int64_t n, float* y,
                        void* workspace, cudaStream_t stream) {
  if (n <= 16) return LaunchWgmmaTile<kType, 16, 1, 3, 4>(w, rows, cols, x, n, y, workspace, stream);
  if (n <= 32) return LaunchWgmmaTile<kType, 32, 1, 3, 3>(w, rows, cols, x, n, y, workspace, stream);
  if (n <= 64 || WgmmaNarrowTileWins(rows, n)) {
    return LaunchWgmmaTile<kType, 64, 2, 3, 1>(w, rows, cols, x, n, y, workspace, stream);
  }
  return LaunchWgmmaTile<kType, 128, 2, 2, 1>(w, rows, cols, x, n, y, workspace, stream);
}
// The f16-weights form of wgmma (Q4_K, Q5_K; kWgmmaF16W): the same tiles,
// no workspace; the 128-column tile decodes 8 k16 steps ahead of their
// wgmmas, not 4 (the same bits; H200, Q4_K, n = 512, us: 4096 x 14336
// 102.4-102.6 against 105.1-105.6; 28672 x 8192 448.8 / 511.3 / 511.3
// against 446.7 / 518.7 / 516.9), and takes 4 warpgroups where
// WgmmaFourWarpgroupsWin. Q6_K, Q8_0 and Q4_0 take the 2-warpgroup tiles
// only, decoding 4 steps ahead (their decoders need more registers; 4
// warpgroups of Q8_0's 272-byte blocks would not fit the shared memory).
template <QuantType kType>
cudaError_t LaunchWgmmaF16W(const uint8_t* w, int64_t rows, int64_t cols, const __half* x, int64_t n, float* y,
                            cudaStream_t stream) {
  constexpr bool kMinsType = StageTraits<kType>::kHeaderK4;  // Q4_K, Q5_K
  if constexpr (kMinsType) {
    if (n <= 16) return LaunchWgmmaTile<kType, 16, 1, 3, 4, true>(w, rows, cols, x, n, y, nullptr, stream);
    if (n <= 32) return LaunchWgmmaTile<kType, 32, 1, 3, 3, true>(w, rows, cols, x, n, y, nullptr, stream);
  }
  if (n <= 64 || WgmmaNarrowTileWins(rows, n)) {
    return LaunchWgmmaTile<kType, 64, 2, 3, 1, true>(w, rows, cols, x, n, y, nullptr, stream);
  }
  if constexpr (!kMinsType) {
    return LaunchWgmmaTile<kType, 128, 2, 2, 1, true>(w, rows, cols, x, n, y, nullptr, stream);
  } else {
    if (WgmmaFourWarpgroupsWin(rows, n)) {
      return LaunchWgmmaTile<kType, 128, 4, 2, 1, true, 4, false>(w, rows, cols, x, n, y, nullptr, stream);
    }
    return LaunchWgmmaTile<kType, 128, 2, 2, 1, true, 8>(w, rows, cols, x, n, y, nullptr, stream);
  }
}
extern template cudaError_t LaunchWgmmaF16W<QuantType::kQ4_K>(const uint8_t*, int64_t, int64_t, const __half*,
                                                              int64_t, float*, cudaStream_t);
extern template cudaError_t LaunchWgmmaF16W<QuantType::kQ5_K>(const uint8_t*, int64_t, int64_t, const __half*,
                                                              int64_t, float*, cudaStream_t);
extern template cudaError_t LaunchWgmmaF16W<QuantType::kQ6_K>(const uint8_t*, int64_t, int64_t, const __half*,
                                                              int64_t, float*, cudaStream_t);
extern template cudaError_t LaunchWgmmaF16W<QuantType::kQ8_0>(const uint8_t*, int64_t, int64_t, const __half*,
                                                              int64_t, float*, cudaStream_t);
extern template cudaError_t LaunchWgmmaF16W<QuantType::kQ4_0>(const uint8_t*, int64_t, int64_t, const __half*,
                                                              int64_t, float*, cudaStream_t);
extern template cudaError_t LaunchWgmma<QuantType::kQ2_K>(const uint8_t*, int64_t, int64_t, const __half*, int64_t,
                                                          float*, void*, cudaStream_t);
extern template cudaError_t LaunchWgmma<QuantType::kQ3_K>(const uint8_t*, int64_t, int64_t, const __half*, int64_t,
                                                          float*, void*, cudaStream_t);
extern template cudaError_t LaunchWgmma<QuantType::kQ4_K>(const uint8_t*, int64_t, int64_t, const __half*, int64_t,
                                                          float*, void*, cudaStream_t);
extern template cudaError_t LaunchWgmma<QuantType::kQ5_K>(const uint8_t*, int64_t, int64_t, const __half*, int64_t,
                                                          float*, void*, cudaStream_t);

// gemv_q8 for any n >= 1, on GGUF blocks or (kPlanar) the planar layout:
// one launch for n <= 4 (the tall launch for n = 1 on tall matrices), else
// ceil(n / 4) launches over near-equal runs of x's columns, each reading all
// the weights again. Preconditions: GemvQ8Fits for min(n, 4) columns.
template <QuantType kType, typename Act, bool kPlanar>
cudaError_t LaunchGemv(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                       cudaStream_t stream) {
  using gemv::GemvUnroll;
  if (n > gemv::kGemvMaxColumns) {
    const int64_t passes = (n + gemv::kGemvMaxColumns - 1) / gemv::kGemvMaxColumns;
    for (int64_t p = 0, c0 = 0; p < passes; ++p) {
      const int64_t cn = n / passes + (p < n % passes ? 1 : 0);
      const cudaError_t err = LaunchGemv<kType, Act, kPlanar>(w, rows, cols, x + c0 * cols, cn, y + c0 * rows, stream);
      if (err != cudaSuccess) return err;
      c0 += cn;
    }
    return cudaSuccess;
  }
  switch (n) {
    case 1:
      if (gemv::TallGemvPaysOff<kType>() && rows >= gemv::kTallGemvRows) {
        return LaunchGemvQ8<kType, Act, 1, gemv::TallGemvWarps<kType>(kPlanar), GemvUnroll<kType>(1, true, kPlanar),
                            gemv::TallGemvMinBlocks<kType>(kPlanar), kPlanar>(w, rows, cols, x, y, stream);
      }
      return LaunchGemvQ8<kType, Act, 1, 8, GemvUnroll<kType>(1, false, kPlanar), 2, kPlanar>(w, rows, cols, x, y,
                                                                                             stream);
    case 2: return LaunchGemvQ8<kType, Act, 2, 8, GemvUnroll<kType>(2, false), 2, kPlanar>(w, rows, cols, x, y, stream);
    case 3: return LaunchGemvQ8<kType, Act, 3, 8, GemvUnroll<kType>(3, false), 2, kPlanar>(w, rows, cols, x, y, stream);
    case 4: return LaunchGemvQ8<kType, Act, 4, 8, GemvUnroll<kType>(4, false), 2, kPlanar>(w, rows, cols, x, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

// gemv_q8 on planar weights (Q2_K, Q3_K, Q6_K; instantiated in their
// matmul_<type>.cu). act_type F16 or BF16; preconditions: GemvQ8Fits<kType, true>.
template <QuantType kType>
cudaError_t LaunchGemvPlanar(const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type, const void* x,
                             int64_t n, float* y, cudaStream_t stream) {
  if (act_type == QuantType::kBF16) {
    return LaunchGemv<kType, __nv_bfloat16, true>(w, rows, cols, static_cast<const __nv_bfloat16*>(x), n, y, stream);
  }
  return LaunchGemv<kType, __half, true>(w, rows, cols, static_cast<const __half*>(x), n, y, stream);
}
#define BLOCKQUANT_CUDA_DECLARE_GEMV_PLANAR(T)                                                                   \
  extern template cudaError_t LaunchGemvPlanar<QuantType::T>(const uint8_t*, int64_t, int64_t, QuantType, \
                                                               const void*, int64_t, float*, cudaStream_t)
BLOCKQUANT_CUDA_DECLARE_GEMV_PLANAR(kQ2_K);
BLOCKQUANT_CUDA_DECLARE_GEMV_PLANAR(kQ3_K);
BLOCKQUANT_CUDA_DECLARE_GEMV_PLANAR(kQ6_K);
#undef BLOCKQUANT_CUDA_DECLARE_GEMV_PLANAR

template <QuantType kType, typename Act>
cudaError_t LaunchMatMulAct(const uint8_t* w, int64_t rows, int64_t cols, const void* x, int64_t n, float* y,
                            cudaStream_t stream, MatMulKernel kernel) {
  switch (kernel) {
    case MatMulKernel::kMma8: return LaunchMma<kType, Act, 1, kMma8Warps, 4>(w, rows, cols, x, n, y, stream);
    case MatMulKernel::kMma16: return LaunchMma<kType, Act, 2, 4, 4>(w, rows, cols, x, n, y, stream);
    case MatMulKernel::kMma32: return LaunchMma<kType, Act, 4, 4, 3>(w, rows, cols, x, n, y, stream);
    case MatMulKernel::kMma64: return LaunchMma<kType, Act, 8, 8, 3>(w, rows, cols, x, n, y, stream);
    case MatMulKernel::kWgmma:  // needs scratch: MatMul launches it through LaunchWgmma
    case MatMulKernel::kWgmmaF16W:  // f16 x only: MatMul launches it through LaunchWgmmaF16W
    case MatMulKernel::kMmaQ8: return cudaErrorInvalidValue;
    case MatMulKernel::kGemvQ8:
      return LaunchGemv<kType, Act, false>(w, rows, cols, static_cast<const Act*>(x), n, y, stream);
    default: break;
  }
  constexpr int kRowsPerBlock = 8;
  const unsigned blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  SimpleMatMulKernel<kType, Act>
      <<<blocks, kRowsPerBlock * 32, 0, stream>>>(w, rows, cols, static_cast<const Act*>(x), n, y);
  return cudaGetLastError();
}

// kernel is resolved (never kAuto); act_type is F16/BF16 (F32: simple only).
template <QuantType kType>
cudaError_t LaunchMatMul(const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type, const void* x,
                         int64_t n, float* y, cudaStream_t stream, MatMulKernel kernel) {
  switch (act_type) {
    case QuantType::kF16: return LaunchMatMulAct<kType, __half>(w, rows, cols, x, n, y, stream, kernel);
    case QuantType::kBF16:
      return LaunchMatMulAct<kType, __nv_bfloat16>(w, rows, cols, x, n, y, stream, kernel);
    default: break;
  }
  constexpr int kRowsPerBlock = 8;
  const unsigned blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  SimpleMatMulKernel<kType, float>
      <<<blocks, kRowsPerBlock * 32, 0, stream>>>(w, rows, cols, static_cast<const float*>(x), n, y);
  return cudaGetLastError();
}

#define BLOCKQUANT_CUDA_DECLARE_MATMUL(T)                                                               \
  extern template cudaError_t LaunchMatMul<QuantType::T>(const uint8_t*, int64_t, int64_t, QuantType, \
                                                           const void*, int64_t, float*, cudaStream_t, \
                                                           MatMulKernel)
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ4_0);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ8_0);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ2_K);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ3_K);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ4_K);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ5_K);
BLOCKQUANT_CUDA_DECLARE_MATMUL(kQ6_K);
#undef BLOCKQUANT_CUDA_DECLARE_MATMUL

}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_SRC_LAUNCH_CUH_
