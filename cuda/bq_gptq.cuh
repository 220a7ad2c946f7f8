// The GPU half of GPTQ-style quantization (include/blockquant/calib/gptq.h
// has the algorithm and the CPU version): rounding one 256-column batch onto
// its blocks' grids with compensation inside the batch, and writing the
// chosen levels into blocks whose scale bytes stay as the quantizer chose
// them. The caller runs the linear algebra (H = X^T X, its inverse Cholesky
// factor U, the update of the later columns), e.g. with PyTorch or cuBLAS.
// K-quants (Q2_K..Q6_K). Compile with -fmad=false, like the CPU's arithmetic.
#ifndef BLOCKQUANT_CUDA_BQ_GPTQ_CUH_
#define BLOCKQUANT_CUDA_BQ_GPTQ_CUH_

#include <cstdint>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/quant/k_quants.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace gptq {

// Element i's grid in a block (calib::ReadBlockGrid's arithmetic): it
// decodes level q to step * q - offset.
template <QuantType kType>
struct Grid;
template <>
struct Grid<QuantType::kQ2_K> {
  using Block = BlockQ2_K;
  static constexpr int kMin = 0, kMax = 3;
  static __device__ void Of(const Block& b, int i, float* step, float* offset) {
    *step = F16ToF32(b.d) * static_cast<float>(b.scales[i / 16] & 0xF);
    *offset = F16ToF32(b.dmin) * static_cast<float>(b.scales[i / 16] >> 4);
  }
  static __device__ void Write(const uint8_t* code, Block* b) { ref::PackLow2(code, b->qs); }
};
template <>
struct Grid<QuantType::kQ3_K> {
  using Block = BlockQ3_K;
  static constexpr int kMin = -4, kMax = 3;
  static __device__ void Of(const Block& b, int i, float* step, float* offset) {
    *step = F16ToF32(b.d) * static_cast<float>(static_cast<int>(UnpackScaleQ3K(i / 16, b.scales)) - 32);
    *offset = 0.0f;
  }
  static __device__ void Write(const uint8_t* code, Block* b) { ref::PackLevelsQ3_K(code, b); }
};
template <QuantType kType, typename B, int kMaxLevel>
struct GridK45 {
  using Block = B;
  static constexpr int kMin = 0, kMax = kMaxLevel;
  static __device__ void Of(const Block& b, int i, float* step, float* offset) {
    uint8_t sc, m;
    UnpackScaleMinK4(i / 32, b.scales, &sc, &m);
    *step = F16ToF32(b.d) * static_cast<float>(sc);
    *offset = F16ToF32(b.dmin) * static_cast<float>(m);
  }
};
template <>
struct Grid<QuantType::kQ4_K> : GridK45<QuantType::kQ4_K, BlockQ4_K, 15> {
  static __device__ void Write(const uint8_t* code, Block* b) { ref::PackNibblesK(code, b->qs); }
};
template <>
struct Grid<QuantType::kQ5_K> : GridK45<QuantType::kQ5_K, BlockQ5_K, 31> {
  static __device__ void Write(const uint8_t* code, Block* b) { ref::PackLevelsQ5_K(code, b); }
};
template <>
struct Grid<QuantType::kQ6_K> {
  using Block = BlockQ6_K;
  static constexpr int kMin = -32, kMax = 31;
  static __device__ void Of(const Block& b, int i, float* step, float* offset) {
    *step = F16ToF32(b.d) * static_cast<float>(b.scales[i / 16]);
    *offset = 0.0f;
  }
  static __device__ void Write(const uint8_t* code, Block* b) { ref::PackLevelsQ6_K(code, b); }
};

// One warp per row of the batch [c0, c0 + 256): lane l keeps columns l, l + 32,
// ... in registers. Column c is rounded to its grid (calib::RoundToGrid), its
// level stored, e = (x - value) / U[c][c] stored, and e * U[c][j] taken off
// every later column j of the batch: gptq.h's inner loop for one row.
template <QuantType kType>
__global__ void RoundBatchKernel(float* __restrict__ w, int64_t rows, int64_t ld, int64_t c0,
                                 const uint8_t* __restrict__ blocks, const float* __restrict__ u, int64_t ldu,
                                 int8_t* __restrict__ levels, float* __restrict__ err) {
  using G = Grid<kType>;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together
  const auto& block = reinterpret_cast<const typename G::Block*>(blocks)[row];
  float* wr = w + row * ld + c0;
  float x[8], step[8], offset[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    x[k] = wr[lane + 32 * k];
    G::Of(block, lane + 32 * k, &step[k], &offset[k]);
  }
  const float qmin = static_cast<float>(G::kMin), qmax = static_cast<float>(G::kMax);
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    for (int l = 0; l < 32; ++l) {
      const int c = 32 * k + l;
      const float xc = __shfl_sync(0xffffffffu, x[k], l);
      const float sc = __shfl_sync(0xffffffffu, step[k], l);
      const float oc = __shfl_sync(0xffffffffu, offset[k], l);
      float q = 0.0f;
      if (sc != 0.0f) {
        q = rintf((xc + oc) / sc);
        q = q < qmin ? qmin : (q > qmax ? qmax : q);
      }
      const float* urow = u + (c0 + c) * ldu + c0;
      const float e = (xc - (sc * q - oc)) / urow[c];
      if (lane == l) {
        levels[row * ld + c0 + c] = static_cast<int8_t>(q);
        err[row * 256 + c] = e;
      }
#pragma unroll
      for (int kk = k; kk < 8; ++kk) {
        const int j = lane + 32 * kk;
        if (j > c) x[kk] -= e * urow[j];
      }
    }
  }
}

// One thread per block: the levels (int8, row-major with stride ld) into the
// block's level bits (calib::WriteBlockLevels), scales untouched.
template <QuantType kType>
__global__ void WriteLevelsKernel(const int8_t* __restrict__ levels, int64_t rows, int64_t cols, int64_t ld,
                                  uint8_t* __restrict__ blocks) {
  using G = Grid<kType>;
  const int64_t per_row = cols / kQK_K;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * per_row;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, b = i % per_row;
    const int8_t* q = levels + r * ld + b * kQK_K;
    uint8_t code[kQK_K];
    for (int k = 0; k < kQK_K; ++k) code[k] = static_cast<uint8_t>(q[k] - G::kMin);
    G::Write(code, reinterpret_cast<typename G::Block*>(blocks) + i);
  }
}

}  // namespace gptq
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_GPTQ_CUH_
