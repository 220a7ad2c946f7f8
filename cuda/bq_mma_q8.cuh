// Small batches (n = 1..16) on Q4_K and Q5_K weights with int8 tensor cores,
// the mma_q8 kernel (sm_90):
//   y[c][r] = sum_k W[r][k] * x[c][k]   (layouts as in bq_matmul.cuh).
//
// Why: gemv_q8 spends a dp4a per 4 weights and column, so its cost grows
// with n (n = 3 runs at 56% of the copy bound), and the f16 tensor-core
// kernels (mma8, wgmma) must turn every code into an f16 times its scale,
// about 3 instructions per weight whatever n is. Here a Q4_K code goes to
// mma.sync.m16n8k32 (u8 weights x s8 activations -> s32) as the nibble it
// is (Q5_K: with its fifth bit ORed in): one AND (and one shift for the
// high nibbles) per 4 codes, and one MMA per 32 values of 16 rows x 8
// columns. The group scales and x's scales are applied to the integer
// products in f32; the mins' term is three bf16 MMAs per super-block.
//
// Data path: a first kernel rounds x into a workspace laid out as the MMAs'
// B registers; the product kernel gives each warp 16 rows, whose blocks TMA
// copies into a small per-warp ring in shared memory (no register cost for
// bytes in flight, and one copy instruction per super-block), while x comes
// through L1, which every warp of the SM shares.
//
// Numerics: as gemv_q8 (bq_gemv.cuh). x is rounded to int8 per 32 values
// (dx = max|x| / 127); weights stay exact; each group's product is an exact
// integer; the group sums of x carry 24 bits. So
//   |y - W x| <= sum_k |w_k| * dx(k) / 2  (+ f32 rounding).
//
// Lane layout (g = lane / 4, t = lane % 4). For group 2c or 2c + 1 of a
// super-block, the MMA's k index is a permutation of the group's 32 values:
// lane t holds values 8t .. 8t + 7, its A registers a0/a2 for row g and
// a1/a3 for row g + 8 come from one 8-byte read of code bytes 32c + 8t ..
// 8t + 7 (low nibbles: group 2c, high: 2c + 1; Q5_K's fifth bits from one
// more 8-byte read, the same for every chunk), and its B registers are the
// same 8 values of x's column g, from one 16-byte load that holds them for
// both groups. A dot product does not care about the order of k.
//
// Requirements: an sm_90 GPU and code for it; cols % 256 == 0; rows < 2^31;
// weights 16-byte aligned; x 16-byte aligned, f16 or bf16; a workspace of
// MmaQ8WorkspaceBytes(n, cols) bytes, 16-byte aligned (MmaQ8Fits checks
// the rest).
#ifndef BLOCKQUANT_CUDA_BQ_MMA_Q8_CUH_
#define BLOCKQUANT_CUDA_BQ_MMA_Q8_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bq_decode.cuh"
#include "bq_gemv.cuh"
#include "bq_wgmma.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace mmaq8 {

// Tiles of 8 columns for n.
__host__ __device__ constexpr int ColumnTiles(int64_t n) { return n <= 8 ? 1 : 2; }

// The workspace: x's codes, then dx, then the group sums, per 256-value
// super-block s and tile nt of 8 columns:
//   codes [s][c = 0..3][nt][col 0..7][t = 0..3] 16 bytes: values 8t .. 8t + 7
//         of group 2c, then of group 2c + 1 (one lane's B registers for the
//         two MMAs of chunk c);
//   dx    [s][nt][t][group 0..7][2] f32: columns 2t and 2t + 1 (the columns
//         of the lane's accumulators);
//   sums  [s][nt][col 0..7][t][3][2] bf16: xg = dx * (sum of the group's
//         codes) of groups 2t and 2t + 1, split in three bf16 parts (hi, mid,
//         lo: 24 bits), then 4 bytes of padding: the B registers of the three
//         m16n8k8 MMAs that take the mins' term.
// Columns n .. 8 * tiles - 1 are zeros.
__host__ __device__ constexpr int64_t CodeBytes(int tiles, int64_t cols) { return int64_t{8} * tiles * cols; }
__host__ __device__ constexpr int64_t ScaleFloats(int tiles, int64_t cols) { return int64_t{8} * tiles * cols / 32; }
__host__ __device__ constexpr int64_t SumBytes(int tiles, int64_t cols) { return int64_t{2} * tiles * cols; }

// c[0..3] = A (16 x 32 u8) * B (32 x 8 s8), fresh accumulators.
__device__ __forceinline__ void MmaU8S8(uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1,
                                        int* c) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
#else
  c[0] = c[1] = c[2] = c[3] = 0;  // not reached: the kernel traps below sm_90
#endif
}

// x -> the workspace. One thread per 8 values, 4 consecutive threads per
// 32-block; columns past n become zeros.
template <typename Act, int kTiles>
__global__ void __launch_bounds__(256) QuantizeXKernel(const Act* __restrict__ x, int64_t n, int64_t cols,
                                                       uint8_t* __restrict__ ws) {
  gemv::WaitForPreviousGrid();
  // The product kernel may launch now: it waits for this grid before it
  // reads x's codes, and this grid has waited for the kernels before it.
  gemv::AllowNextGrid();
  const int64_t chunks = int64_t{kTiles} * 8 * cols / 8;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chunks) return;  // whole 32-blocks: chunks and blockDim are multiples of 4
  int64_t col, e;
  uint32_t packed[2];
  int qsum;
  const float d = gemv::RoundXChunk(x, n, cols, idx, &col, &e, packed, &qsum);
  qsum += __shfl_xor_sync(0xFFFFFFFFu, qsum, 1);
  qsum += __shfl_xor_sync(0xFFFFFFFFu, qsum, 2);
  const int64_t s = e / 256;
  const int r = static_cast<int>(e % 256), group = r / 32, t = (r % 32) / 8;
  const int tile = static_cast<int>(col / 8), cg = static_cast<int>(col % 8);
  const int64_t at = ((((s * 4 + group / 2) * kTiles + tile) * 8 + cg) * 4 + t) * 16 + 8 * (group % 2);
  *reinterpret_cast<uint2*>(ws + at) = make_uint2(packed[0], packed[1]);
  if (t == 0) {
    float* dx = reinterpret_cast<float*>(ws + CodeBytes(kTiles, cols));
    dx[((s * kTiles + tile) * 4 + cg / 2) * 16 + 2 * group + cg % 2] = d;
    __nv_bfloat16* sums = reinterpret_cast<__nv_bfloat16*>(dx + ScaleFloats(kTiles, cols)) +
                          (((s * kTiles + tile) * 8 + cg) * 4 + group / 2) * 8 + group % 2;
    detail::SplitBf16x3(d * static_cast<float>(qsum), sums, sums + 2, sums + 4);
  }
}

// Per type: the super-block's bytes, and where its codes' low nibbles sit
// (Q5_K: after 32 bytes of fifth bits, bit j of byte l for value l of group
// j).
template <QuantType kType>
struct Q8Unit;
template <>
struct Q8Unit<QuantType::kQ4_K> {
  static constexpr int kBytes = 144, kQs = 16, kQh = -1;
};
template <>
struct Q8Unit<QuantType::kQ5_K> {
  static constexpr int kBytes = 176, kQs = 48, kQh = 16;
};

// One super-block of rows g and g + 8, as one lane reads it from its stage:
// headers (d, dmin, 12 scale bytes), code bytes 32c + 8t .. 8t + 7 for
// c = 0..3, and (Q5_K) fifth-bit bytes 8t .. 8t + 7.
struct RawK4 {
  uint4 h[2];
  uint2 q[2][4];
  uint2 qh[2];
};
template <QuantType kType>
__device__ __forceinline__ RawK4 ReadStage(const uint8_t* st, int g, int t) {
  using U = Q8Unit<kType>;
  RawK4 r;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint8_t* row = st + (g + 8 * i) * U::kBytes;
    r.h[i] = *reinterpret_cast<const uint4*>(row);
#pragma unroll
    for (int c = 0; c < 4; ++c) r.q[i][c] = *reinterpret_cast<const uint2*>(row + U::kQs + 32 * c + 8 * t);
    r.qh[i] = U::kQh >= 0 ? *reinterpret_cast<const uint2*>(row + U::kQh + 8 * t) : make_uint2(0, 0);
  }
  return r;
}

// Codes of group j (= 2c + half) in the bytes of w (the low nibbles of code
// word w, and for Q5_K bit j of each fifth-bit byte in h).
template <QuantType kType>
__device__ __forceinline__ uint32_t Codes(uint32_t w, uint32_t h, int half, int j) {
  const uint32_t low = (w >> (4 * half)) & 0x0F0F0F0Fu;
  if (Q8Unit<kType>::kQh < 0) return low;
  return low | (((h >> j) & 0x01010101u) << 4);
}

// x's part of one super-block, as one lane reads it from the workspace.
template <int kTiles>
struct XUnit {
  uint4 codes[kTiles][4];
  uint4 sums[kTiles];
  float4 dx[kTiles][4];
};
template <int kTiles>
__device__ __forceinline__ XUnit<kTiles> FetchX(int s, const uint8_t* codes, const float* dxs, const uint4* sums) {
  XUnit<kTiles> u;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const int unit = s * kTiles + nt;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      u.codes[nt][c] = __ldg(reinterpret_cast<const uint4*>(codes + ((s * 4 + c) * kTiles + nt) * 512));
      u.dx[nt][c] = __ldg(reinterpret_cast<const float4*>(dxs + unit * 64) + c);
    }
    u.sums[nt] = __ldg(sums + unit * 32);
  }
  return u;
}

// sc * P as an f32, exactly: Q4_K's |sc * P| <= 63 * 32 * 15 * 127 < 2^22
// fits the two-instruction SmallIntToFloat; Q5_K's codes reach 31, so its
// products reach 2^23 and take the conversion unit.
template <QuantType kType>
__device__ __forceinline__ float ScaledToFloat(int v) {
  return Q8Unit<kType>::kQh < 0 ? gemv::SmallIntToFloat(v) : __int2float_rn(v);
}

// Adds super-block s of the lane's rows times x to tot[tile][0..3]
// (accumulator layout of mma.m16n8: rows g, g, g + 8, g + 8; columns 2t,
// 2t + 1, 2t, 2t + 1).
//   y += d * sum_groups sc_j * dx_j * P_j - dmin * sum_groups m_j * xg_j
// P_j, the integer product of group j's codes with x's codes, is one
// m16n8k32 MMA; sc_j * P_j is an exact integer below 2^23, so exact in f32.
// The mins' term is three bf16 m16n8k8 MMAs (mins exact in bf16, xg in
// three parts).
template <QuantType kType, int kTiles>
__device__ __forceinline__ void Consume(const RawK4& r, const XUnit<kTiles>& xu, int t, float (&tot)[kTiles][4]) {
  uint32_t scw[2][2], mw[2][2];
  UnpackScaleMinK4x8(r.h[0].y, r.h[0].z, r.h[0].w, scw[0], mw[0]);
  UnpackScaleMinK4x8(r.h[1].y, r.h[1].z, r.h[1].w, scw[1], mw[1]);
  const float d[2] = {gemv::HalfBits(r.h[0].x), gemv::HalfBits(r.h[1].x)};
  const float dmin[2] = {gemv::HalfBits(r.h[0].x >> 16), gemv::HalfBits(r.h[1].x >> 16)};
  // The A registers of the mins' MMAs: mins of groups 2t, 2t + 1 (a select,
  // not mw[row][t / 2]: a runtime index would put mw in local memory).
  const uint32_t ma0 = detail::MinPairBf16(t < 2 ? mw[0][0] : mw[0][1], t % 2);
  const uint32_t ma1 = detail::MinPairBf16(t < 2 ? mw[1][0] : mw[1][1], t % 2);
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const uint4* b = xu.codes[nt];
    const uint4 xs = xu.sums[nt];
    float dx[16];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      dx[4 * k] = xu.dx[nt][k].x, dx[4 * k + 1] = xu.dx[nt][k].y, dx[4 * k + 2] = xu.dx[nt][k].z;
      dx[4 * k + 3] = xu.dx[nt][k].w;
    }
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, accm[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    detail::MmaBf16K8(accm, ma0, ma1, xs.x);
    detail::MmaBf16K8(accm, ma0, ma1, xs.y);
    detail::MmaBf16K8(accm, ma0, ma1, xs.z);
#pragma unroll
    for (int c = 0; c < 4; ++c) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int grp = 2 * c + half;
        int p[4];
        MmaU8S8(Codes<kType>(r.q[0][c].x, r.qh[0].x, half, grp), Codes<kType>(r.q[1][c].x, r.qh[1].x, half, grp),
                Codes<kType>(r.q[0][c].y, r.qh[0].y, half, grp), Codes<kType>(r.q[1][c].y, r.qh[1].y, half, grp),
                half ? b[c].z : b[c].x, half ? b[c].w : b[c].y, p);
        const int sc0 = (scw[0][grp / 4] >> (8 * (grp % 4))) & 0xFF;
        const int sc1 = (scw[1][grp / 4] >> (8 * (grp % 4))) & 0xFF;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          acc[i] = fmaf(dx[2 * grp + i % 2], ScaledToFloat<kType>((i < 2 ? sc0 : sc1) * p[i]), acc[i]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      tot[nt][i] = fmaf(d[i / 2], acc[i], tot[nt][i]);
      tot[nt][i] = fmaf(-dmin[i / 2], accm[i], tot[nt][i]);
    }
  }
}

}  // namespace mmaq8

// Workspace of LaunchMmaQ8 for n columns of x (n <= 16).
__host__ __device__ constexpr int64_t MmaQ8WorkspaceBytes(int64_t n, int64_t cols) {
  return mmaq8::CodeBytes(mmaq8::ColumnTiles(n), cols) + 4 * mmaq8::ScaleFloats(mmaq8::ColumnTiles(n), cols) +
         mmaq8::SumBytes(mmaq8::ColumnTiles(n), cols);
}

// One warp per 16-row tile. The weights come through TMA: each warp has a
// ring of kStages stages in shared memory, one super-block of its 16 rows
// (16 x 144 or 176 bytes) each, which its lane 0 refills as soon as the
// warp has read a stage. x's codes and scales come through L1 (every warp
// of an SM reads the same).
template <QuantType kType, int kTiles, int kWarps, int kStages, int kMinBlocks>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    MmaQ8Kernel(const __grid_constant__ CUtensorMap wmap, int64_t rows, int64_t cols, const uint8_t* __restrict__ ws,
                int64_t n, float* __restrict__ y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kUnitBytes = mmaq8::Q8Unit<kType>::kBytes, kStageBytes = 16 * kUnitBytes;  // a multiple of 128
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((128 - detail::SmemAddr(smem_raw) % 128) % 128);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int sbs = static_cast<int>(cols / 256);
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (tile * 16 >= rows) return;  // no barrier below is shared between warps
  uint8_t* ring = smem + warp * kStages * kStageBytes;
  const uint32_t bar0 = detail::SmemAddr(smem + kWarps * kStages * kStageBytes) + 8 * kStages * warp;
  const int row0 = static_cast<int>(tile * 16);
  // Warps start at different super-blocks and wrap around, so that the
  // warps of an SM do not all wait on the same L1 miss for x (worth about
  // 1 us of 47 on an H200).
  const int s0 = warp * sbs / kWarps;
  auto at = [&](int i) { return s0 + i < sbs ? s0 + i : s0 + i - sbs; };
  auto refill = [&](int s, int stage) {
    const uint32_t bar = bar0 + 8 * stage;
    detail::MbarExpectTx(bar, kStageBytes);
    detail::TmaLoad2d(detail::SmemAddr(ring + stage * kStageBytes), &wmap, s * kUnitBytes, row0, bar);
  };
  if (lane == 0) {
    for (int i = 0; i < kStages; ++i) detail::MbarInit(bar0 + 8 * i, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    // The weights may be read before the wait below: the x kernel, which
    // this one depends on, let it start only after every earlier kernel in
    // the stream had finished. x's codes are read after the wait.
    for (int i = 0; i < kStages && i < sbs; ++i) refill(at(i), i);
  }
  __syncwarp();
  gemv::WaitForPreviousGrid();
  const uint8_t* codes = ws + lane * 16;
  const float* dxs = reinterpret_cast<const float*>(ws + mmaq8::CodeBytes(kTiles, cols)) + t * 16;
  const uint4* sums = reinterpret_cast<const uint4*>(dxs - t * 16 + mmaq8::ScaleFloats(kTiles, cols)) + lane;
  float tot[kTiles][4];
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) tot[nt][0] = tot[nt][1] = tot[nt][2] = tot[nt][3] = 0.0f;
  int stage = 0;
  uint32_t phase = 0;
  for (int i = 0; i < sbs; ++i) {
    const int s = at(i);
    // x first: MbarWait's memory clobber keeps loads from moving above it.
    const mmaq8::XUnit<kTiles> xu = mmaq8::FetchX<kTiles>(s, codes, dxs, sums);
    detail::MbarWait(bar0 + 8 * stage, phase);
    const uint8_t* st = ring + stage * kStageBytes;
    const mmaq8::RawK4 r = mmaq8::ReadStage<kType>(st, g, t);
    __syncwarp();  // every lane has read the stage
    if (lane == 0 && i + kStages < sbs) {
      detail::FenceProxyAsync();
      refill(at(i + kStages), stage);
    }
    mmaq8::Consume<kType>(r, xu, t, tot);
    if (++stage == kStages) stage = 0, phase ^= 1;
  }
  const int64_t r0 = tile * 16 + g, r1 = r0 + 8;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = i < 2 ? r0 : r1, col = nt * 8 + 2 * t + i % 2;
      if (row < rows && col < n) y[col * rows + row] = tot[nt][i];
    }
  }
#else
  __trap();  // MmaQ8Fits keeps the launcher from getting here
#endif
}

// Whether LaunchMmaQ8<kType> can run these arguments: kType Q4_K or Q5_K,
// n = 1..16, the shape and alignment above, a GPU of compute capability 9
// or newer, and code for it in this binary (a build without sm_90 code has
// an empty kernel).
template <QuantType kType>
__host__ bool MmaQ8Fits(const void* w, int64_t rows, int64_t cols, const void* x, int64_t n) {
  static_assert(kType == QuantType::kQ4_K || kType == QuantType::kQ5_K, "mma_q8 takes Q4_K and Q5_K");
  const uintptr_t wa = reinterpret_cast<uintptr_t>(w), xa = reinterpret_cast<uintptr_t>(x);
  if (n < 1 || n > 16 || cols % 256 != 0 || rows >= (int64_t{1} << 31) || wa % 16 != 0 || xa % 16 != 0) {
    return false;
  }
  return gemv::KernelRuns(MmaQ8Kernel<kType, 1, 8, 2, 2>, 9);
}

// Quantizes x into `workspace` (MmaQ8WorkspaceBytes(n, cols) bytes) and runs
// the product: two kernels in `stream`, the second a programmatic dependent
// of the first (it starts while the first runs, has its first weights
// copied, and waits for x). Preconditions: MmaQ8Fits<kType>. The defaults were
// the fastest on an H200 (docs/cuda.md).
template <QuantType kType, typename Act, int kWarps = 8, int kStages = 2, int kMinBlocks = 2>
cudaError_t LaunchMmaQ8(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                        uint8_t* workspace, cudaStream_t stream) {
  const int tiles = mmaq8::ColumnTiles(n);
  const int64_t chunks = int64_t{8} * tiles * cols / 8;
  const unsigned qblocks = static_cast<unsigned>((chunks + 255) / 256);
  if (tiles == 1) {
    mmaq8::QuantizeXKernel<Act, 1><<<qblocks, 256, 0, stream>>>(x, n, cols, workspace);
  } else {
    mmaq8::QuantizeXKernel<Act, 2><<<qblocks, 256, 0, stream>>>(x, n, cols, workspace);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  constexpr int kUnitBytes = mmaq8::Q8Unit<kType>::kBytes;
  const uint64_t row_bytes = static_cast<uint64_t>(cols / 256) * kUnitBytes;
  CUtensorMap wmap;
  err = EncodeTensorMap2d(&wmap, CU_TENSOR_MAP_DATA_TYPE_UINT8, w, row_bytes, rows, row_bytes, kUnitBytes, 16,
                          CU_TENSOR_MAP_SWIZZLE_NONE);
  if (err != cudaSuccess) return err;
  auto kernel = tiles == 1 ? MmaQ8Kernel<kType, 1, kWarps, kStages, kMinBlocks>
                           : MmaQ8Kernel<kType, 2, kWarps, kStages, kMinBlocks>;
  const int smem = kWarps * kStages * (16 * kUnitBytes + 8) + 128;
  if ((err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) != cudaSuccess) {
    return err;
  }
  const int64_t row_tiles = (rows + 15) / 16;
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = gemv::LaunchConfig(static_cast<unsigned>((row_tiles + kWarps - 1) / kWarps),
                                                       kWarps * 32, static_cast<size_t>(smem), stream, true, &attr);
  return cudaLaunchKernelEx(&config, kernel, wmap, rows, cols, static_cast<const uint8_t*>(workspace), n, y);
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_MMA_Q8_CUH_
