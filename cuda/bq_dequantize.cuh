// Dequantization kernels: rows x cols blocks -> f32 / f16 / bf16, row-major.
// f32 output is bit-identical to ref::DequantizeRowXxx (NaN payloads aside:
// the GPU produces the canonical NaN); f16/bf16 output is that f32 value
// rounded to nearest-even, as F32ToF16/F32ToBF16 do.
#ifndef BLOCKQUANT_CUDA_BQ_DEQUANTIZE_CUH_
#define BLOCKQUANT_CUDA_BQ_DEQUANTIZE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "bq_decode.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

// Stores 8 consecutive outputs; kVector uses one or two 16-byte stores
// (dst 16-byte aligned).
template <typename Out, bool kVector>
__device__ __forceinline__ void Store8(Out* dst, const float* v);

template <>
__device__ __forceinline__ void Store8<float, true>(float* dst, const float* v) {
  reinterpret_cast<float4*>(dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
template <>
__device__ __forceinline__ void Store8<float, false>(float* dst, const float* v) {
  for (int i = 0; i < 8; ++i) dst[i] = v[i];
}
template <>
__device__ __forceinline__ void Store8<__half, true>(__half* dst, const float* v) {
  __half2 h[4];
  for (int i = 0; i < 4; ++i) h[i] = __halves2half2(__float2half_rn(v[2 * i]), __float2half_rn(v[2 * i + 1]));
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
}
template <>
__device__ __forceinline__ void Store8<__half, false>(__half* dst, const float* v) {
  for (int i = 0; i < 8; ++i) dst[i] = __float2half_rn(v[i]);
}
template <>
__device__ __forceinline__ void Store8<__nv_bfloat16, true>(__nv_bfloat16* dst, const float* v) {
  __nv_bfloat162 h[4];
  for (int i = 0; i < 4; ++i) {
    h[i] = __halves2bfloat162(__float2bfloat16_rn(v[2 * i]), __float2bfloat16_rn(v[2 * i + 1]));
  }
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
}
template <>
__device__ __forceinline__ void Store8<__nv_bfloat16, false>(__nv_bfloat16* dst, const float* v) {
  for (int i = 0; i < 8; ++i) dst[i] = __float2bfloat16_rn(v[i]);
}

}  // namespace detail

// One thread per 8 consecutive outputs; adjacent threads write adjacent
// outputs, so stores coalesce. Grid-stride over rows * cols / 8.
template <QuantType kType, typename Out, bool kVector>
__global__ void DequantizeKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, Out* __restrict__ y) {
  using D = ExactDecoder<kType>;
  const int64_t octs_per_row = cols / 8;
  const int64_t total = rows * octs_per_row;
  const int64_t row_bytes = cols / D::kElems * D::kBytes;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / octs_per_row, e = (i % octs_per_row) * 8;
    float v[8];
    D::Decode8(w + row * row_bytes + e / D::kElems * D::kBytes, static_cast<int>(e % D::kElems), v);
    detail::Store8<Out, kVector>(y + row * cols + e, v);
  }
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_DEQUANTIZE_CUH_
