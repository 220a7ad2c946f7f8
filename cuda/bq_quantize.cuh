// GPU quantization, byte-identical to the CPU reference quantizers.
// Q8_0 (ref::QuantizeRowQ8_0): d = max|x| / 127 (IEEE division, which nvcc
// keeps unless -prec-div=false / --use_fast_math), q = round-half-away(x * (1/d)),
// d stored as F32ToF16Saturate(d). Max and division are exact operations, so
// the order of the warp reduction cannot change a bit.
#ifndef BLOCKQUANT_CUDA_BQ_QUANTIZE_CUH_
#define BLOCKQUANT_CUDA_BQ_QUANTIZE_CUH_

#include <climits>
#include <cstdint>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/quant/k_quants.h"
#include "blockquant/quant/legacy.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {

// One warp per 32-value block; blocks are numbered across rows (a row-major
// tensor's blocks are contiguous). Grid-stride over warps. A template only so
// that the header can be included by several translation units.
template <typename Src = float>
__global__ void QuantizeQ8_0Kernel(const Src* __restrict__ x, int64_t blocks, uint8_t* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; b < blocks;
       b += warps) {
    const float v = static_cast<float>(x[b * kQK + lane]);
    float amax = fabsf(v);
    for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    uint8_t* blk = out + b * 34;
    // For finite x the rounded value is within [-127, 127]. When 1/d
    // overflows (max|x| < ~3.7e-37, d then stores as 0) x * id is +-Inf or
    // NaN, and the reference's float -> int8 cast is undefined; x86 (where the
    // reference bytes come from) produces INT_MIN there, i.e. a 0 byte, and so
    // do we.
    const float r = roundf(__fmul_rn(v, id));
    const int q = fabsf(r) < 2147483648.0f ? static_cast<int>(r) : INT_MIN;
    blk[2 + lane] = static_cast<uint8_t>(q & 0xFF);
    if (lane == 0) {
      const uint16_t h = F32ToF16Saturate(d);
      blk[0] = static_cast<uint8_t>(h & 0xFF);
      blk[1] = static_cast<uint8_t>(h >> 8);
    }
  }
}

// Every other type: one thread per block (256 values for the K-quants, 32
// for Q4_0..Q5_1) runs the CPU reference quantizer itself (quant/*.h are
// host/device code), so the bytes are the CPU's as long as nvcc neither
// fuses multiply-adds nor approximates division: compile with -fmad=false and
// without --use_fast_math (blockquant::cuda's quantize_ref.cu does).
// importance: null or cols weights (device memory), shared by every row.
template <QuantType kType>
struct RefQuantizer;
#define BLOCKQUANT_REF_QUANTIZER(kT, Blk, kElems, fn)                                           \
  template <>                                                                                   \
  struct RefQuantizer<QuantType::kT> {                                                          \
    using Block = Blk;                                                                          \
    static constexpr int kBlockElems = kElems;                                                  \
    static __device__ void Run(const float* x, Block* y, const float* imp) { ref::fn(x, y, kElems, imp); } \
  }
BLOCKQUANT_REF_QUANTIZER(kQ2_K, BlockQ2_K, kQK_K, QuantizeRowQ2_K);
BLOCKQUANT_REF_QUANTIZER(kQ3_K, BlockQ3_K, kQK_K, QuantizeRowQ3_K);
BLOCKQUANT_REF_QUANTIZER(kQ4_K, BlockQ4_K, kQK_K, QuantizeRowQ4_K);
BLOCKQUANT_REF_QUANTIZER(kQ5_K, BlockQ5_K, kQK_K, QuantizeRowQ5_K);
BLOCKQUANT_REF_QUANTIZER(kQ6_K, BlockQ6_K, kQK_K, QuantizeRowQ6_K);
BLOCKQUANT_REF_QUANTIZER(kQ4_0, BlockQ4_0, kQK, QuantizeRowQ4_0);
BLOCKQUANT_REF_QUANTIZER(kQ4_1, BlockQ4_1, kQK, QuantizeRowQ4_1);
BLOCKQUANT_REF_QUANTIZER(kQ5_0, BlockQ5_0, kQK, QuantizeRowQ5_0);
BLOCKQUANT_REF_QUANTIZER(kQ5_1, BlockQ5_1, kQK, QuantizeRowQ5_1);
#undef BLOCKQUANT_REF_QUANTIZER

template <QuantType kType>
__global__ void QuantizeRefKernel(const float* __restrict__ x, int64_t rows, int64_t cols,
                                  const float* __restrict__ importance, uint8_t* __restrict__ out) {
  using Q = RefQuantizer<kType>;
  const int64_t per_row = cols / Q::kBlockElems;
  const int64_t total = rows * per_row;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row, b = i % per_row;
    auto* dst = reinterpret_cast<typename Q::Block*>(out) + r * per_row + b;
    Q::Run(x + r * cols + b * Q::kBlockElems, dst, importance ? importance + b * Q::kBlockElems : nullptr);
  }
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_QUANTIZE_CUH_
