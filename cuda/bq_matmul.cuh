// Matrix products of GGUF-quantized weights with f16/bf16 activations:
//   y[c][r] = sum_k W[r][k] * x[c][k],  W: rows x cols blocks (row-major, as
//   GGUF stores a tensor), x: n x cols, y: n x rows, f32.
//
// Two kernels:
// - MmaMatMulKernel: the fast path. Rows are tiled by 16 per warp and
//   kWarps per CTA; activations by kNT * 8 columns per CTA (grid.y covers n).
//   Weight bytes and activations stream through a kStages-deep cp.async
//   pipeline in shared memory (16-byte copies, coalesced). Each warp turns
//   the block codes into exact small integers in f16/bf16 registers and
//   multiplies them on the tensor cores (mma.sync m16n8k16, f32
//   accumulation). The group scale is folded into the conversion where the
//   product stays an exact integer (K-quants with f16, Q2_K/Q3_K with bf16),
//   else applied in f32 per group; the min runs as a second MMA with m_j as
//   the A operand. Weights are never rounded: the only rounding is the f32
//   accumulation. Requires cols % 256 == 0 and 16-byte
//   aligned weights and activations.
// - SimpleMatMulKernel: one warp per row, exact f32 decode, FMA in f32.
//   Any alignment >= 2, any cols that the block divides, f32 activations too.
//   The fallback, and a second opinion in tests.
#ifndef BLOCKQUANT_CUDA_BQ_MATMUL_CUH_
#define BLOCKQUANT_CUDA_BQ_MATMUL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "bq_decode.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; bytes < 16 zero-fills the rest
// (bytes == 0 reads nothing).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(bytes));
}
// The bytes < 16 bytes at src, then zeros, to 16 bytes at dst (shared).
// Out of line, as inlined it slowed its caller's copy loop more. H200, mma8,
// 28672 x 8192, n = 8, us: Q6_K 241 before this copy existed (reading past
// the end), 267 inlined, 260 out of line; Q3_K 301, 332, 327; Q2_K 132,
// 141, 135.
__device__ __noinline__ inline void CopyShortPiece(uint8_t* dst, const uint8_t* src, int bytes) {
  for (int b = 0; b < 16; ++b) dst[b] = b < bytes ? src[b] : 0;
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

template <typename Act>
struct MmaOps;

template <>
struct MmaOps<__half> {
  static constexpr int kMagicBase = 1024;  // 0x64XX is the f16 1024 + XX
  // (v, v) for a small integer v (exact).
  __device__ static uint32_t IntPair(int v) {
    const __half2 h = __half2half2(__int2half_rn(v));
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
  }
  // (v, v) for byte `byte` of w: 0x64vv is the f16 1024 + v.
  __device__ static uint32_t BytePair(uint32_t w, int byte) {
    const uint32_t p = __byte_perm(w, 0x64646464u, 0x4040 + 0x0101 * byte);
    uint32_t r;
    asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(p), "r"(0x64006400u));
    return r;
  }
  __device__ static uint32_t Mul(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(b));
    return r;
  }
  static constexpr uint32_t kMinusBase2 = 0xE400E400u;  // (-1024, -1024)
  // Codes u0..u3 -> (sc*u0, sc*u1), (sc*u2, sc*u3): (1024 + u) * sc - 1024 * sc
  // in one fused op, exact because the result is an integer below 2048.
  __device__ static void ConvertScaled(uint32_t u, uint32_t sc2, uint32_t bias2, uint32_t* lo, uint32_t* hi) {
    const uint32_t l = __byte_perm(u, 0x64646464u, 0x4140), h = __byte_perm(u, 0x64646464u, 0x4342);
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(*lo) : "r"(l), "r"(sc2), "r"(bias2));
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(*hi) : "r"(h), "r"(sc2), "r"(bias2));
  }
  __device__ static void Mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // Codes u0..u3 (one per byte) -> (u0 - off, u1 - off), (u2 - off, u3 - off)
  // as exact f16 pairs: 0x64XX is the f16 1024 + XX, then one subtraction.
  template <int kOffset, int kMaxCode>
  __device__ static void Convert(uint32_t u, uint32_t* lo, uint32_t* hi) {
    const uint32_t l = __byte_perm(u, 0x64646464u, 0x4140), h = __byte_perm(u, 0x64646464u, 0x4342);
    const __half2 bias = __half2half2(__ushort_as_half(static_cast<unsigned short>(0x6400 + kOffset)));
    __half2 hl, hh;
    memcpy(&hl, &l, 4);
    memcpy(&hh, &h, 4);
    hl = __hsub2(hl, bias);
    hh = __hsub2(hh, bias);
    memcpy(lo, &hl, 4);
    memcpy(hi, &hh, 4);
  }
};

template <>
struct MmaOps<__nv_bfloat16> {
  static constexpr int kMagicBase = 128;  // 0x43XX is the bf16 128 + XX (XX < 128)
  __device__ static uint32_t IntPair(int v) {
    const __nv_bfloat162 h = __bfloat162bfloat162(__int2bfloat16_rn(v));
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
  }
  // (v, v) for byte `byte` (value < 128) of w: 0x43vv is the bf16 128 + v.
  __device__ static uint32_t BytePair(uint32_t w, int byte) {
    const uint32_t p = __byte_perm(w, 0x43434343u, 0x4040 + 0x0101 * byte);
    uint32_t r;
    asm("sub.rn.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(p), "r"(0x43004300u));
    return r;
  }
  __device__ static uint32_t Mul(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(b));
    return r;
  }
  static constexpr uint32_t kMinusBase2 = 0xC300C300u;  // (-128, -128)
  __device__ static void ConvertScaled(uint32_t u, uint32_t sc2, uint32_t bias2, uint32_t* lo, uint32_t* hi) {
    const uint32_t l = __byte_perm(u, 0x43434343u, 0x4140), h = __byte_perm(u, 0x43434343u, 0x4342);
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(*lo) : "r"(l), "r"(sc2), "r"(bias2));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(*hi) : "r"(h), "r"(sc2), "r"(bias2));
  }
  __device__ static void Mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // 0x43XX is the bf16 128 + XX for XX < 128; Q8_0's codes (up to 255) go
  // through f32 instead (0x4B0000XX is 2^23 + XX).
  template <int kOffset, int kMaxCode>
  __device__ static void Convert(uint32_t u, uint32_t* lo, uint32_t* hi) {
    __nv_bfloat162 bl, bh;
    if (kMaxCode < 128) {
      const uint32_t l = __byte_perm(u, 0x43434343u, 0x4140), h = __byte_perm(u, 0x43434343u, 0x4342);
      const __nv_bfloat162 bias =
          __bfloat162bfloat162(__ushort_as_bfloat16(static_cast<unsigned short>(0x4300 + kOffset)));
      memcpy(&bl, &l, 4);
      memcpy(&bh, &h, 4);
      bl = __hsub2(bl, bias);
      bh = __hsub2(bh, bias);
    } else {
      const float bias = 8388608.0f + static_cast<float>(kOffset);
      const float f0 = __int_as_float(static_cast<int>(__byte_perm(u, 0x4B000000u, 0x7440))) - bias;
      const float f1 = __int_as_float(static_cast<int>(__byte_perm(u, 0x4B000000u, 0x7441))) - bias;
      const float f2 = __int_as_float(static_cast<int>(__byte_perm(u, 0x4B000000u, 0x7442))) - bias;
      const float f3 = __int_as_float(static_cast<int>(__byte_perm(u, 0x4B000000u, 0x7443))) - bias;
      bl = __floats2bfloat162_rn(f0, f1);
      bh = __floats2bfloat162_rn(f2, f3);
    }
    memcpy(lo, &bl, 4);
    memcpy(hi, &bh, 4);
  }
};

template <typename T>
__device__ __forceinline__ float ActToFloat(T v);
template <>
__device__ __forceinline__ float ActToFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ float ActToFloat<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float ActToFloat<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

}  // namespace detail

// Shared-memory bytes per row and stage: the stage's bytes, plus room for a
// start that is not 16-byte aligned (copies start at the aligned address
// below and the data sits `shift` bytes in).
template <QuantType kType>
__host__ __device__ constexpr int MmaSlotBytes() {
  constexpr int b = StageTraits<kType>::kStageBytes;
  return b % 16 == 0 ? b : (b + 14 + 15) / 16 * 16;
}

// Dynamic shared memory of MmaMatMulKernel for xcols staged columns.
template <QuantType kType, int kWarps, int kStages>
__host__ __device__ constexpr int MmaSmemBytes(int xcols) {
  return kStages * (kWarps * 16 * MmaSlotBytes<kType>() + xcols * (256 + 16) * 2) +
         (StageTraits<kType>::kHeaderK4 || StageTraits<kType>::kMaxScale == 0
              ? 0
              : kWarps * 16 * (256 / StageTraits<kType>::kGroup + 1) * 16);
}

// Small-n configurations are capped at 128 registers per thread (16 warps
// per SM): without the cap the unrolled stage keeps every load in flight in
// registers and fewer CTAs fit.
template <QuantType kType, typename Act, int kNT, int kWarps, int kStages>
__global__ void __launch_bounds__(kWarps * 32, kNT <= 2 ? 16 / kWarps : 1)
    MmaMatMulKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, const Act* __restrict__ x,
                    int64_t n, float* __restrict__ y, int xcols) {
  using ST = StageTraits<kType>;
  using Ops = detail::MmaOps<Act>;
  constexpr bool kIsF16 = std::is_same<Act, __half>::value;
  // Folding: the group scale multiplies the codes inside the f16/bf16
  // conversion (exact while |sc * u| fits the format's integers: 2048 for
  // f16, 256 for bf16), so one MMA chain runs over the whole super-block and
  // d is applied once. Otherwise each group's product is scaled in f32.
  constexpr bool kFold = ST::kMaxScale > 0 && ST::kMaxScale * ST::kMaxCode <= (kIsF16 ? 2048 : 256);
  // The m term (a min, or Q3_K's offset when folded) runs as a second MMA
  // whose A operand is m_j broadcast over the group: it sums x per group.
  constexpr bool kUseM = ST::kMinKind == 1 || (ST::kMinKind == 2 && kFold);
  constexpr int kGroups = 256 / ST::kGroup;
  constexpr int kRowsCta = kWarps * 16;
  constexpr int kSlot = MmaSlotBytes<kType>();
  constexpr int kPieces = kSlot / 16;
  constexpr int kCols = kNT * 8;
  // Elements per staged column: 544 bytes, so the 8 columns a warp reads at
  // once start 8 banks apart and a 64-bit fragment load takes 2 wavefronts.
  constexpr int kXStride = 256 + 16;
  constexpr int kWStage = kRowsCta * kSlot;
  // Only the xcols = min(n, kCols) columns that exist are staged (n = 1
  // needs one): less shared memory, more CTAs per SM.
  const int stage_smem = kWStage + xcols * kXStride * 2;
  constexpr int kTableStride = kGroups + 1;  // entries per row; the pad avoids bank conflicts
  constexpr int kThreads = kWarps * 32;
  constexpr int kWIters = (kRowsCta * kPieces + kThreads - 1) / kThreads;
  constexpr int kXIters = (kCols * 32 + kThreads - 1) / kThreads;
  constexpr bool kShifted = ST::kStageBytes % 16 != 0;
  // Q2_K/Q3_K/Q6_K: per-stage table of group factors, computed once per row
  // and group by the warp (Q4_K/Q5_K unpack their header in registers;
  // Q8_0/Q4_0 read the block scale directly).
  constexpr bool kUseTable = !ST::kHeaderK4 && ST::kMaxScale != 0;
  extern __shared__ __align__(16) uint8_t smem[];
  // After the pipeline stages: per warp, a table of 16 rows x kGroups entries
  // (scale factors of the current stage), computed once per row and group.
  uint4* table = reinterpret_cast<uint4*>(smem + kStages * stage_smem) + (threadIdx.x / 32) * 16 * kTableStride;

  const int tid = threadIdx.x;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsCta;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kCols;
  const int64_t nsb = cols / 256;
  const int64_t row_bytes = nsb * ST::kStageBytes;
  const uint8_t* w_end = w + rows * row_bytes;

  // Each thread copies the same pieces every stage: precompute their sources.
  const uint8_t* wsrc[kWIters];
  int wdst[kWIters];
#pragma unroll
  for (int it = 0; it < kWIters; ++it) {
    const int idx = tid + it * kThreads;
    const int r = idx / kPieces, p = idx % kPieces;
    wdst[it] = idx < kRowsCta * kPieces ? r * kSlot + 16 * p : -1;
    wsrc[it] = row0 + r < rows ? w + (row0 + r) * row_bytes + 16 * p : nullptr;
  }
  const Act* xsrc[kXIters];
  int xdst[kXIters];
#pragma unroll
  for (int it = 0; it < kXIters; ++it) {
    const int idx = tid + it * kThreads;
    const int c = idx / 32, p = idx % 32;
    xdst[it] = c < xcols ? kWStage + (c * kXStride + 8 * p) * 2 : -1;
    xsrc[it] = col0 + c < n ? x + (col0 + c) * cols + 8 * p : nullptr;
  }
  auto load_stage = [&](int64_t sb, int slot) {
    uint8_t* ws = smem + slot * stage_smem;
#pragma unroll
    for (int it = 0; it < kWIters; ++it) {
      if (wdst[it] < 0) continue;
      const uint8_t* src = w;
      int bytes = 0;
      if (wsrc[it] != nullptr) {
        if (kShifted) {
          // The copy starts at the 16-byte boundary at or below the stage's
          // first byte; the tensor's last piece may be short.
          const uint8_t* piece = reinterpret_cast<const uint8_t*>(
              reinterpret_cast<uintptr_t>(wsrc[it] + sb * ST::kStageBytes) & ~static_cast<uintptr_t>(15));
          const int64_t left = w_end - piece;
          bytes = left >= 16 ? 16 : (left > 0 ? static_cast<int>(left) : 0);
          if (bytes > 0 && bytes < 16) {
            // The tensor's last piece: a 16-byte cp.async from it touches the
            // bytes past the tensor's end, even with src-size < 16 (memcheck
            // faults it on an exact-size buffer), so it goes through registers.
            detail::CopyShortPiece(ws + wdst[it], piece, bytes);
            continue;
          }
          if (bytes > 0) src = piece;
        } else {  // rows and stages start on 16-byte boundaries
          src = wsrc[it] + sb * ST::kStageBytes;
          bytes = 16;
        }
      }
      detail::CpAsync16(ws + wdst[it], src, bytes);
    }
#pragma unroll
    for (int it = 0; it < kXIters; ++it) {
      if (xdst[it] < 0) continue;
      detail::CpAsync16(ws + xdst[it], xsrc[it] != nullptr ? xsrc[it] + sb * 256 : x, xsrc[it] != nullptr ? 16 : 0);
    }
  };

  for (int s = 0; s < kStages - 1; ++s) {
    if (s < nsb) load_stage(s, s);
    detail::CpAsyncCommit();
  }

  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  const int64_t gr0 = row0 + r0, gr1 = row0 + r1;
  // Row shifts (bytes mod 16 of each row's start) of this thread's rows and
  // of the rows whose table entries this lane computes.
  const int shift0 = kShifted ? static_cast<int>((gr0 * row_bytes) & 15) : 0;
  const int shift1 = kShifted ? static_cast<int>((gr1 * row_bytes) & 15) : 0;
  int tshift[16 * kGroups / 32];
#pragma unroll
  for (int k = 0; k < 16 * kGroups / 32; ++k) {
    tshift[k] = kShifted ? static_cast<int>(((row0 + warp * 16 + (lane + 32 * k) / kGroups) * row_bytes) & 15) : 0;
  }
  // For small n, two accumulator chains (even and odd k-steps) halve the
  // MMA dependency chain per stage; wide tiles have independent MMAs anyway.
  constexpr int kChains = kNT <= 2 ? 2 : 1;
  float acc[kNT][4], P[kChains][kNT][4], M[kChains][kNT][4];
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      acc[nt][i] = 0.0f;
#pragma unroll
      for (int c = 0; c < kChains; ++c) P[c][nt][i] = M[c][nt][i] = 0.0f;
    }
  }

  for (int64_t sb = 0; sb < nsb; ++sb) {
    detail::CpAsyncWait<kStages - 2>();
    __syncthreads();
    {
      const int64_t next = sb + kStages - 1;
      if (next < nsb) load_stage(next, static_cast<int>(next % kStages));
      detail::CpAsyncCommit();
    }
    const uint8_t* ws = smem + static_cast<int>(sb % kStages) * stage_smem;
    const Act* xs = reinterpret_cast<const Act*>(ws + kWStage);
    // Where a row starts inside its slot (row shift + stage shift, mod 16).
    const int stage_shift = static_cast<int>((sb * ST::kStageBytes) & 15);
    auto row_data = [&](int r, int row_shift) {
      return ws + r * kSlot + (kShifted ? (row_shift + stage_shift) & 15 : 0);
    };

    // Scale table: lane handles group (lane % kGroups) of rows lane / kGroups
    // + k * (32 / kGroups).
#pragma unroll
    for (int k = 0; k < (kUseTable ? 16 * kGroups / 32 : 0); ++k) {
      const int i = lane + 32 * k;
      const int r = i / kGroups, j = i % kGroups;
      const uint8_t* sd = row_data(warp * 16 + r, tshift[k]);
      uint4 e = make_uint4(0, 0, 0, 0);
      int sc = 0, m = 0;
      ST::GroupInts(sd, j, &sc, &m);
      if (kFold) {
        e.x = Ops::IntPair(sc);
        e.y = Ops::IntPair(-Ops::kMagicBase * sc);
      } else {
        float a, b;
        ST::Factors(sd, j, &a, &b);
        e.x = __float_as_uint(a);
      }
      e.z = kUseM ? Ops::IntPair(m) : 0u;
      table[r * kTableStride + j] = e;
    }
    __syncwarp();

    const uint8_t* s0 = row_data(r0, shift0);
    const uint8_t* s1 = row_data(r1, shift1);
    // Q4_K/Q5_K: each thread unpacks its two rows' 16-byte headers itself
    // (byte-parallel), instead of going through the table.
    uint32_t hsc[2][2] = {}, hm[2][2] = {};
    float hd[2] = {}, hdmin[2] = {};
    if (ST::kHeaderK4) {
      const uint4 h0 = *reinterpret_cast<const uint4*>(s0), h1 = *reinterpret_cast<const uint4*>(s1);
      UnpackScaleMinK4x8(h0.y, h0.z, h0.w, hsc[0], hm[0]);
      UnpackScaleMinK4x8(h1.y, h1.z, h1.w, hsc[1], hm[1]);
      hd[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h0.x & 0xFFFF)));
      hdmin[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h0.x >> 16)));
      hd[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h1.x & 0xFFFF)));
      hdmin[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h1.x >> 16)));
    }
    // Entry of (row r0 or r1, group j): x = (sc, sc) or the f32 factor a,
    // y = -base * (sc, sc), z = (m, m).
    auto entry = [&](int which, int j) {
      if (ST::kHeaderK4) {
        uint4 e;
        const uint32_t sc2 = Ops::BytePair(hsc[which][j / 4], j % 4);
        if (kFold) {
          e.x = sc2;
          e.y = Ops::Mul(sc2, Ops::kMinusBase2);
        } else {
          const float scf = __uint_as_float(0x4B000000u | ((hsc[which][j / 4] >> (8 * (j % 4))) & 0xFFu)) - 8388608.0f;
          e.x = __float_as_uint(__fmul_rn(hd[which], scf));
          e.y = 0;
        }
        e.z = Ops::BytePair(hm[which][j / 4], j % 4);
        e.w = 0;
        return e;
      }
      if (!kUseTable) {  // Q8_0, Q4_0: the block's f16 scale is the factor
        float a, b;
        ST::Factors(which ? s1 : s0, j, &a, &b);
        return make_uint4(__float_as_uint(a), 0u, 0u, 0u);
      }
      return table[((which ? g + 8 : g)) * kTableStride + j];
    };
    const Act* xb = xs + g * kXStride;
    // 16-group types unroll by 4 only: fully unrolled, their loads hoist
    // into registers and spill.
#pragma unroll(kGroups == 8 ? 8 : 4)
    for (int j = 0; j < kGroups; ++j) {
      const uint4 e0 = entry(0, j), e1 = entry(1, j);
      float Pj[kNT][4];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) Pj[nt][0] = Pj[nt][1] = Pj[nt][2] = Pj[nt][3] = 0.0f;
#pragma unroll
      for (int s = 0; s < ST::kGroup / 16; ++s) {
        // The 16 k-slots of this MMA are a permutation of 16 elements of
        // group j; thread t supplies 4 consecutive ones, the same 4 for A
        // (weights) and B (activations), so the dot product is unchanged.
        const int e = j * ST::kGroup + 16 * s + 4 * t;
        uint32_t a[4];
        if (kFold) {
          Ops::ConvertScaled(ST::Codes(s0, e), e0.x, e0.y, &a[0], &a[2]);
          Ops::ConvertScaled(ST::Codes(s1, e), e1.x, e1.y, &a[1], &a[3]);
        } else {
          Ops::template Convert<ST::kOffset, ST::kMaxCode>(ST::Codes(s0, e), &a[0], &a[2]);
          Ops::template Convert<ST::kOffset, ST::kMaxCode>(ST::Codes(s1, e), &a[1], &a[3]);
        }
        const uint32_t am[4] = {e0.z, e1.z, e0.z, e1.z};
        const int chain = (j * (ST::kGroup / 16) + s) % kChains;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          // Columns past the staged ones read nothing (their outputs are
          // not stored).
          uint2 b = make_uint2(0, 0);
          if (nt * 8 + g < xcols) b = *reinterpret_cast<const uint2*>(xb + nt * 8 * kXStride + e);
          Ops::Mma(kFold ? P[chain][nt] : Pj[nt], a, b.x, b.y);
          if (kUseM) Ops::Mma(M[chain][nt], am, b.x, b.y);
        }
      }
      if (!kFold) {
        const float a0 = __uint_as_float(e0.x), a1 = __uint_as_float(e1.x);
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          acc[nt][0] += a0 * Pj[nt][0];
          acc[nt][1] += a0 * Pj[nt][1];
          acc[nt][2] += a1 * Pj[nt][2];
          acc[nt][3] += a1 * Pj[nt][3];
        }
      }
    }
    // Super-block factors: d for the folded products, -F for the m term.
    if (kFold || kUseM) {
      const float d0 = !kFold ? 0.0f : ST::kHeaderK4 ? hd[0] : ST::SuperD(s0);
      const float d1 = !kFold ? 0.0f : ST::kHeaderK4 ? hd[1] : ST::SuperD(s1);
      const float f0 = !kUseM ? 0.0f : ST::kHeaderK4 ? -hdmin[0] : ST::SuperF(s0);
      const float f1 = !kUseM ? 0.0f : ST::kHeaderK4 ? -hdmin[1] : ST::SuperF(s1);
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float d = i < 2 ? d0 : d1, f = i < 2 ? f0 : f1;
          float p = P[0][nt][i], m = M[0][nt][i];
          if (kChains == 2) {
            p += P[kChains - 1][nt][i];
            m += M[kChains - 1][nt][i];
          }
          if (kFold) acc[nt][i] += d * p;
          if (kUseM) acc[nt][i] += f * m;
#pragma unroll
          for (int c = 0; c < kChains; ++c) P[c][nt][i] = M[c][nt][i] = 0.0f;
        }
      }
    }
  }
  detail::CpAsyncWait<0>();

#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    const int64_t c = col0 + nt * 8 + 2 * t;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t gr = i < 2 ? gr0 : gr1;
      const int64_t gc = c + (i & 1);
      if (gr < rows && gc < n) y[gc * rows + gr] = acc[nt][i];
    }
  }
}

// Launches MmaMatMulKernel (header-only use from a .cu file; the library's
// MatMul wraps this). Preconditions as for MatMul with a tensor-core kernel:
// cols % 256 == 0, w and x 16-byte aligned. Returns the launch error.
template <QuantType kType, typename Act, int kNT, int kWarps, int kStages>
cudaError_t LaunchMmaMatMul(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                            cudaStream_t stream) {
  const int xcols = static_cast<int>(n < kNT * 8 ? n : kNT * 8);
  const int smem = MmaSmemBytes<kType, kWarps, kStages>(xcols);
  auto kernel = MmaMatMulKernel<kType, Act, kNT, kWarps, kStages>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>((rows + kWarps * 16 - 1) / (kWarps * 16)),
                  static_cast<unsigned>((n + kNT * 8 - 1) / (kNT * 8)));
  kernel<<<grid, kWarps * 32, smem, stream>>>(w, rows, cols, x, n, y, xcols);
  return cudaGetLastError();
}

// One warp per row; columns in chunks of 8 accumulators. Fixed order, so
// the result does not depend on the launch shape.
template <QuantType kType, typename Act>
__global__ void SimpleMatMulKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols,
                                   const Act* __restrict__ x, int64_t n, float* __restrict__ y) {
  using D = ExactDecoder<kType>;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int64_t row_bytes = cols / D::kElems * D::kBytes;
  const uint8_t* wr = w + row * row_bytes;
  for (int64_t c0 = 0; c0 < n; c0 += 8) {
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t oct = lane; oct < cols / 8; oct += 32) {
      const int64_t e = oct * 8;
      float v[8];
      D::Decode8(wr + e / D::kElems * D::kBytes, static_cast<int>(e % D::kElems), v);
#pragma unroll
      for (int cc = 0; cc < 8; ++cc) {
        if (c0 + cc < n) {
          const Act* xc = x + (c0 + cc) * cols + e;
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[cc] += v[i] * detail::ActToFloat(xc[i]);
        }
      }
    }
#pragma unroll
    for (int cc = 0; cc < 8; ++cc) {
      float s = acc[cc];
      for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
      if (lane == 0 && c0 + cc < n) y[(c0 + cc) * rows + row] = s;
    }
  }
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_MATMUL_CUH_
