// The planar weight layout (optional; Q2_K, Q3_K, Q6_K): the bytes of a
// matrix's GGUF blocks, regrouped into three planes over the whole matrix,
// in block order (row-major):
//   codes:  every block's code bytes, kCodeBytes each (a multiple of 16);
//   scales: every block's scale bytes, kScaleBytes each;
//   d:      every block's f16 d (and dmin), kDBytes each.
// The size is that of the blocks. GGUF blocks of these types are 84, 110 and
// 210 bytes, so their fields sit at every 2- or 4-byte alignment and
// gemv_q8's lanes read them in many 4-byte pieces; here each lane's codes
// are one 16-byte (or 8-byte) load. Inside the planes the bytes keep GGUF
// order, except Q6_K's low bits, which are grouped by the lane that reads
// them (Slot). docs/cuda.md has what it saves.
#ifndef BLOCKQUANT_CUDA_BQ_PLANAR_CUH_
#define BLOCKQUANT_CUDA_BQ_PLANAR_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "blockquant/format/quant_type.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {

// Per type: the plane widths, and Slot(b), where byte b of a GGUF block goes
// in the block's record [codes | scales | d].
template <QuantType kType>
struct Planar {
  static constexpr bool kSupported = false;
};

// Q2_K block: scales[16], qs[64], d, dmin.
template <>
struct Planar<QuantType::kQ2_K> {
  static constexpr bool kSupported = true;
  static constexpr int kBlockBytes = 84, kCodeBytes = 64, kScaleBytes = 16, kDBytes = 4;
  __host__ __device__ static constexpr int Slot(int b) { return b < 16 ? 64 + b : (b < 80 ? b - 16 : b); }
};

// Q3_K block: hmask[32], qs[64], scales[12], d: already in record order.
template <>
struct Planar<QuantType::kQ3_K> {
  static constexpr bool kSupported = true;
  static constexpr int kBlockBytes = 110, kCodeBytes = 96, kScaleBytes = 12, kDBytes = 2;
  __host__ __device__ static constexpr int Slot(int b) { return b; }
};

// Q6_K block: ql[128], qh[64], scales[16], d. gemv_q8's lane j (h = j / 4,
// l0 = 8 * (j % 4)) reads ql bytes 64h + l0 .. + 7 and 64h + 32 + l0 .. + 7:
// they become codes 16j .. 16j + 15. The rest keeps its order.
template <>
struct Planar<QuantType::kQ6_K> {
  static constexpr bool kSupported = true;
  static constexpr int kBlockBytes = 210, kCodeBytes = 192, kScaleBytes = 16, kDBytes = 2;
  __host__ __device__ static constexpr int Slot(int b) {
    return b >= 128 ? b : 16 * (4 * (b / 64) + (b % 32) / 8) + 8 * ((b % 64) / 32) + b % 8;
  }
};

// The offset of byte b of block `block` (of `blocks` in the matrix) in the
// planar buffer.
template <QuantType kType>
__host__ __device__ constexpr int64_t PlanarOffset(int64_t block, int b, int64_t blocks) {
  using P = Planar<kType>;
  const int s = P::Slot(b);
  if (s < P::kCodeBytes) return block * P::kCodeBytes + s;
  if (s < P::kCodeBytes + P::kScaleBytes) return blocks * P::kCodeBytes + block * P::kScaleBytes + s - P::kCodeBytes;
  return blocks * (P::kCodeBytes + P::kScaleBytes) + block * P::kDBytes + s - P::kCodeBytes - P::kScaleBytes;
}

// GGUF blocks <-> planar: one warp per block (grid-stride over blocks), each
// lane moving 2-byte pieces (every field and run of Slot starts at an even
// byte, so a piece never splits). H200, Q6_K 28672 x 8192 (193 MB): 125 us
// to planar, 135 back; a thread per byte took 863.
template <QuantType kType, bool kToPlanar>
__global__ void PlanarRepackKernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t blocks) {
  constexpr int kPieces = Planar<kType>::kBlockBytes / 2;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; b < blocks; b += warps) {
#pragma unroll
    for (int h = lane; h < kPieces; h += 32) {
      const int64_t planar = PlanarOffset<kType>(b, 2 * h, blocks);
      const int64_t gguf = b * Planar<kType>::kBlockBytes + 2 * h;
      if (kToPlanar) {
        *reinterpret_cast<uint16_t*>(dst + planar) = *reinterpret_cast<const uint16_t*>(src + gguf);
      } else {
        *reinterpret_cast<uint16_t*>(dst + gguf) = *reinterpret_cast<const uint16_t*>(src + planar);
      }
    }
  }
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_PLANAR_CUH_
