// Small batches (n = 1..16) of Q6_K weights on int8 tensor cores, x rounded to
// int8 per 32 values as in gemv_q8 (bq_gemv.cuh): the `mma_q8` kernel for a
// type with 16-value groups.
//
// Why: Q6_K has no wgmma kernel, and its f16 tensor-core kernels (bq_matmul.cuh)
// turn every code into an f16 times its scale, which holds them near 17% of the
// copy bound at any n; gemv_q8 pays a dp4a per 4 weights and column, so its
// time grows with n. Here each 16-value group is one mma.sync.m16n8k16 (s8 x s8,
// s32 sums) per 8 columns of x, whatever n is.
//
// Layout of the work: a CTA takes 16 rows; its warps take every kWarps-th
// super-block of them and add their sums in shared memory in a fixed order
// (deterministic). Lane (g, t) holds rows g and g + 8 and, in group G, the
// values 4t..4t+3 (the MMA's k order is the group's own), read as words
// straight from the GGUF blocks (2-byte aligned: two 16-bit loads where a word
// is not 4-byte aligned). A code word is ql's nibbles OR qh's 2 bits << 4,
// minus 32 per byte.
//
// Numerics: each group's integer product times its 8-bit scale, summed over
// the two groups of one 32-value block of x, is below 2^24 (2 * 128 * 16 * 32
// * 127), so it is exact in f32 before x's scale and d multiply it. As in
// gemv_q8: |y - W x| <= sum_k |w_k| * dx(k) / 2 (+ f32 rounding); a NaN or Inf
// in x makes its column NaN.
//
// Requirements: cols % 256 == 0; weights 2-byte aligned; x 16-byte aligned,
// f16 or bf16; a workspace of MmaQ8G16WorkspaceBytes(n, cols) bytes, 16-byte
// aligned; a GPU of compute capability 8 or newer.
#ifndef BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_
#define BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bq_gemv.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace mmaq8g16 {

// x -> int8 codes [n][cols], then their scales dx [n][cols / 32] (f32), with
// gemv_q8's rounding; one thread per 8 values.
template <typename Act>
__global__ void QuantizeXKernel(const Act* __restrict__ x, int64_t chunks, uint8_t* __restrict__ ws) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // Every lane runs RoundBlockOf32 (it shuffles across 4 lanes), in range or not.
  const uint4 raw = idx < chunks ? __ldg(reinterpret_cast<const uint4*>(x) + idx) : make_uint4(0, 0, 0, 0);
  float f[8];
  gemv::ActToFloat8<Act>(raw, f);
  uint32_t packed[2];
  int qsum;
  const float d = gemv::RoundBlockOf32(f, packed, &qsum);
  if (idx < chunks) {
    *reinterpret_cast<uint2*>(ws + 8 * idx) = make_uint2(packed[0], packed[1]);
    if (idx % 4 == 0) reinterpret_cast<float*>(ws + 8 * chunks)[idx / 4] = d;
  }
}

__device__ __forceinline__ void MmaS8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // MmaQ8G16Fits keeps the launcher from getting here
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(b));
#endif
}

// 4 bytes from a 2-byte aligned address.
__device__ __forceinline__ uint32_t LoadWord2(const uint8_t* p) {
  if ((reinterpret_cast<uintptr_t>(p) & 3) == 0) return gemv::Load4(p);
  return gemv::Load2(p) | (gemv::Load2(p + 2) << 16);
}

// Four 6-bit codes u (one per byte) -> u - 32 as s8: flipping bit 5 gives
// u - 32 as a 6-bit two's complement, whose sign bit is copied into bits 6
// and 7 (no carries between bytes).
__device__ __forceinline__ uint32_t CentreQ6(uint32_t u) {
  const uint32_t v = u ^ 0x20202020u;
  return v | (((v & 0x20202020u) >> 5) * 0xC0u);
}

}  // namespace mmaq8g16

// Workspace of LaunchMmaQ8G16: x's int8 codes, then their f32 scales.
__host__ __device__ constexpr int64_t MmaQ8G16WorkspaceBytes(int64_t n, int64_t cols) {
  return n * cols + 4 * (n * cols / 32);
}

// kTiles column tiles of 8 (n <= 8 * kTiles); see the top of this file.
template <QuantType kType, int kTiles, int kWarps>
__global__ void __launch_bounds__(kWarps * 32)
    MmaQ8G16Kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, const uint8_t* __restrict__ ws,
                   int64_t n, float* __restrict__ y) {
  static_assert(kType == QuantType::kQ6_K, "MmaQ8G16Kernel decodes Q6_K");
  constexpr int kBlockBytes = 210;  // ql[128], qh[64], scales[16], d
  __shared__ float partial[kWarps][32][kTiles * 4];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t sbs = cols / 256;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * 16 + g, r1 = r0 + 8;
  // Rows past the end read the last row; their sums are never written.
  const uint8_t* w0 = w + (r0 < rows ? r0 : rows - 1) * sbs * kBlockBytes;
  const uint8_t* w1 = w + (r1 < rows ? r1 : rows - 1) * sbs * kBlockBytes;
  const int8_t* xq = reinterpret_cast<const int8_t*>(ws);
  const float* dxs = reinterpret_cast<const float*>(ws + n * cols);
  float tot[kTiles][4];
#pragma unroll
  for (int ct = 0; ct < kTiles; ++ct) tot[ct][0] = tot[ct][1] = tot[ct][2] = tot[ct][3] = 0.0f;
  for (int64_t sb = warp; sb < sbs; sb += kWarps) {
    // The lane's words of both rows: ql [row][half][l / 16][q & 1], qh
    // [row][half][l / 16], the 16 scale bytes [row][word].
    uint32_t ql[2][2][2][2], qh[2][2][2], sc[2][4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint8_t* b = (r ? w1 : w0) + sb * kBlockBytes;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int lh = 0; lh < 2; ++lh) {
          qh[r][h][lh] = mmaq8g16::LoadWord2(b + 128 + 32 * h + 16 * lh + 4 * t);
#pragma unroll
          for (int qo = 0; qo < 2; ++qo) ql[r][h][lh][qo] = mmaq8g16::LoadWord2(b + 64 * h + 32 * qo + 16 * lh + 4 * t);
        }
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) sc[r][k] = mmaq8g16::LoadWord2(b + 192 + 4 * k);
    }
    const float d0 = gemv::HalfBits(mmaq8g16::LoadWord2(w0 + sb * kBlockBytes + 206) >> 16);
    const float d1 = gemv::HalfBits(mmaq8g16::LoadWord2(w1 + sb * kBlockBytes + 206) >> 16);
    float acc[kTiles][4];
#pragma unroll
    for (int ct = 0; ct < kTiles; ++ct) acc[ct][0] = acc[ct][1] = acc[ct][2] = acc[ct][3] = 0.0f;
#pragma unroll
    for (int blk = 0; blk < 8; ++blk) {  // x's 32-value blocks: groups 2 blk and 2 blk + 1
      int isum[kTiles][4];
#pragma unroll
      for (int ct = 0; ct < kTiles; ++ct) isum[ct][0] = isum[ct][1] = isum[ct][2] = isum[ct][3] = 0;
#pragma unroll
      for (int gg = 0; gg < 2; ++gg) {
        // Group G: half h, quarter q (values 32 q + l of the half), l / 16 = lh.
        const int G = 2 * blk + gg, h = G / 8, q = (G % 8) / 2, lh = G % 2;
        uint32_t a[2];
        int s[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint32_t lo = (ql[r][h][lh][q & 1] >> (4 * (q >> 1))) & 0x0F0F0F0Fu;
          const uint32_t hi = ((qh[r][h][lh] >> (2 * q)) & 0x03030303u) << 4;
          a[r] = mmaq8g16::CentreQ6(lo | hi);
          s[r] = static_cast<int8_t>(sc[r][G / 4] >> (8 * (G % 4)));
        }
#pragma unroll
        for (int ct = 0; ct < kTiles; ++ct) {
          const int64_t c = 8 * ct + g;  // the B operand's column
          const uint32_t bx =
              c < n ? __ldg(reinterpret_cast<const unsigned int*>(xq + c * cols + sb * 256 + 16 * G + 4 * t)) : 0u;
          int p[4] = {0, 0, 0, 0};
          mmaq8g16::MmaS8(p, a[0], a[1], bx);
          isum[ct][0] += s[0] * p[0];
          isum[ct][1] += s[0] * p[1];
          isum[ct][2] += s[1] * p[2];
          isum[ct][3] += s[1] * p[3];
        }
      }
#pragma unroll
      for (int ct = 0; ct < kTiles; ++ct) {  // columns 8 ct + 2 t and 8 ct + 2 t + 1
        const int64_t c0 = 8 * ct + 2 * t, c1 = c0 + 1;
        const float dx0 = c0 < n ? __ldg(dxs + c0 * (cols / 32) + sb * 8 + blk) : 0.0f;
        const float dx1 = c1 < n ? __ldg(dxs + c1 * (cols / 32) + sb * 8 + blk) : 0.0f;
        acc[ct][0] = fmaf(dx0, static_cast<float>(isum[ct][0]), acc[ct][0]);
        acc[ct][1] = fmaf(dx1, static_cast<float>(isum[ct][1]), acc[ct][1]);
        acc[ct][2] = fmaf(dx0, static_cast<float>(isum[ct][2]), acc[ct][2]);
        acc[ct][3] = fmaf(dx1, static_cast<float>(isum[ct][3]), acc[ct][3]);
      }
    }
#pragma unroll
    for (int ct = 0; ct < kTiles; ++ct) {
      tot[ct][0] = fmaf(d0, acc[ct][0], tot[ct][0]);
      tot[ct][1] = fmaf(d0, acc[ct][1], tot[ct][1]);
      tot[ct][2] = fmaf(d1, acc[ct][2], tot[ct][2]);
      tot[ct][3] = fmaf(d1, acc[ct][3], tot[ct][3]);
    }
  }
#pragma unroll
  for (int ct = 0; ct < kTiles; ++ct) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][lane][ct * 4 + i] = tot[ct][i];
  }
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int ct = 0; ct < kTiles; ++ct) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float v = partial[0][lane][ct * 4 + i];
      for (int k = 1; k < kWarps; ++k) v += partial[k][lane][ct * 4 + i];
      const int64_t row = i < 2 ? r0 : r1, col = 8 * ct + 2 * t + i % 2;
      if (row < rows && col < n) y[col * rows + row] = v;
    }
  }
}

// Whether LaunchMmaQ8G16<kType> can run these arguments on the current
// device (see the requirements above).
template <QuantType kType>
__host__ bool MmaQ8G16Fits(const void* w, int64_t rows, int64_t cols, const void* x, int64_t n) {
  const uintptr_t wa = reinterpret_cast<uintptr_t>(w), xa = reinterpret_cast<uintptr_t>(x);
  if (n < 1 || n > 16 || rows < 1 || cols % 256 != 0 || wa % 2 != 0 || xa % 16 != 0) return false;
  int dev = 0, major = 0;
  cudaFuncAttributes attr;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaFuncGetAttributes(&attr, MmaQ8G16Kernel<kType, 1, 8>) != cudaSuccess) {
    cudaGetLastError();  // clear, so the error does not surface at the next call
    return false;
  }
  return major >= 8 && attr.ptxVersion >= 80;
}

// Rounds x into `workspace` (MmaQ8G16WorkspaceBytes(n, cols) bytes) and runs
// the product: two kernels in `stream`. Preconditions: MmaQ8G16Fits<kType>.
// 8 warps per 16 rows were faster than 4 on an H200 (docs/cuda.md).
template <QuantType kType, typename Act, int kWarps = 8>
cudaError_t LaunchMmaQ8G16(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                           uint8_t* workspace, cudaStream_t stream) {
  const int64_t chunks = n * cols / 8;
  mmaq8g16::QuantizeXKernel<Act><<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(x, chunks, workspace);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const unsigned grid = static_cast<unsigned>((rows + 15) / 16);
  if (n <= 8) {
    MmaQ8G16Kernel<kType, 1, kWarps><<<grid, kWarps * 32, 0, stream>>>(w, rows, cols, workspace, n, y);
  } else {
    MmaQ8G16Kernel<kType, 2, kWarps><<<grid, kWarps * 32, 0, stream>>>(w, rows, cols, workspace, n, y);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_
