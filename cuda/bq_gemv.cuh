// GEMV / very small batches (n = 1..4) on GGUF-quantized weights with the
// activations quantized to int8 on the fly, products on dp4a:
//   y[c][r] = sum_k W[r][k] * x[c][k]   (layouts as in bq_matmul.cuh).
//
// Why a separate kernel: at n <= 4 a product reads every weight byte once and
// does almost no arithmetic per byte, so it can only be as fast as the weights
// stream in. The tensor-core kernel wastes 7/8 of each MMA at n = 1 and its
// issue rate, not memory, sets its pace (~60% of the copy bound for Q4_K,
// less for the 16-group types). Here each lane reads its own bytes of the
// weights straight into registers (no shared-memory staging) and spends about
// one instruction per weight.
//
// Numerics. Each CTA first quantizes x into shared memory: blocks of 32 values
// get dx = max|x| / 127 and codes xq = rint(x / dx) in [-127, 127], as llama.cpp
// does for its quantized-activation kernels. Weights stay exact: a lane's
// products are exact integer sums (dp4a), scaled once per 32-block of x by
// dx and per super-block by d (and dmin). So the result is the exact product
// of the dequantized weights with the dequantized x, up to f32 accumulation:
//   |y - W x| <= sum_k |w_k| * dx(k) / 2  (+ f32 rounding).
// The tensor-core kernels (bq_matmul.cuh) keep x exact; pick them when that
// bound is too loose.
//
// Requirements: cols % 256 == 0; weights 16-byte aligned for Q4_K/Q5_K, else
// 4-byte aligned; x 16-byte aligned, f16 or bf16; GemvSmemBytes(n, cols)
// (about 1.4 * n * cols bytes) of shared memory.
#ifndef BLOCKQUANT_CUDA_BQ_GEMV_CUH_
#define BLOCKQUANT_CUDA_BQ_GEMV_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "bq_decode.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace gemv {

// Exact int -> float for |v| < 2^22 on the full-rate pipes (the hardware
// conversion runs at a quarter of the rate): 1.5 * 2^23 + v, then subtract.
__device__ __forceinline__ float SmallIntToFloat(int v) {
  return __int_as_float(0x4B400000 + v) - 12582912.0f;
}

__device__ __forceinline__ uint4 Load16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint32_t Load4(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned int*>(p));
}

// kWords little-endian words of the bytes at p, for p 2-byte aligned in a
// buffer that starts 4-byte aligned. Reads only bytes of the aligned words
// that hold p[0 .. 4 * kWords), and the final two bytes as a 16-bit load,
// so nothing past the field is touched. Branch-free: lanes of one warp see
// both alignments (34-byte Q8_0 blocks alternate).
template <int kWords>
__device__ __forceinline__ void LoadWordsEven(const uint8_t* p, uint32_t* out) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const bool odd = (a & 2u) != 0;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(a & ~static_cast<uintptr_t>(3));
  const unsigned sel = odd ? 0x5432u : 0x3210u;
  uint32_t w[kWords];
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = Load4(base + 4 * k);
  const uint32_t tail = odd ? __ldg(reinterpret_cast<const unsigned short*>(p + 4 * kWords - 2)) : 0u;
#pragma unroll
  for (int k = 0; k < kWords; ++k) out[k] = __byte_perm(w[k], k + 1 < kWords ? w[k + 1] : tail, sel);
}

__device__ __forceinline__ float HalfBits(uint32_t bits16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16 & 0xFFFFu)));
}

// What one lane holds of one 256-element unit (a super-block, or 8 legacy
// blocks): 32 codes in 8 words, as kSegs segments of contiguous elements
// inside one 32-block of x, each with integer factors. Element value:
//   D * sc * (u - kOffset)          (kMinKind 0: kOffset 0; 2: kOffset > 0)
//   D * sc * u - F * m               (kMinKind 1)
template <int kSegs>
struct LanePart {
  uint32_t q[8];
  int xoff[kSegs];  // element offset of each segment inside the unit
  int sc[kSegs], m[kSegs];
  float D, F;
};

template <QuantType kType>
struct Lane;

// Q4_K: 8 lanes read 16 code bytes each (both nibbles used: elements l of
// groups 2c and 2c+1), header broadcast.
template <>
struct Lane<QuantType::kQ4_K> {
  static constexpr int kUnitBytes = 144, kSegs = 2, kMinKind = 1, kOffset = 0, kWeightAlign = 16, kHalfShift = 32;
  static constexpr int kUnroll = 2;
  __device__ static void Load(const uint8_t* u, int j, LanePart<2>* p) {
    const uint4 h = Load16(u);
    const uint4 qs = Load16(u + 16 + 16 * j);
    Finish(h, qs, make_uint4(0, 0, 0, 0), j, 0, p);
  }
  // Shared with Q5_K: qh holds the fifth bits (bit 2c / 2c+1 of each byte).
  __device__ static void Finish(uint4 h, uint4 qs, uint4 qh, int j, int fifth, LanePart<2>* p) {
    const int c = j / 2, l0 = 16 * (j % 2);
    uint32_t scw[2], mw[2];
    UnpackScaleMinK4x8(h.y, h.z, h.w, scw, mw);
    const int g0 = 2 * c, g1 = 2 * c + 1;
    // Selects, not scw[c / 2]: a runtime index would put the arrays in local memory.
    const uint32_t sw = c < 2 ? scw[0] : scw[1], mwc = c < 2 ? mw[0] : mw[1];
    p->sc[0] = (sw >> (8 * (g0 % 4))) & 0xFF;
    p->m[0] = (mwc >> (8 * (g0 % 4))) & 0xFF;
    p->sc[1] = (sw >> (8 * (g1 % 4))) & 0xFF;
    p->m[1] = (mwc >> (8 * (g1 % 4))) & 0xFF;
    p->D = HalfBits(h.x);
    p->F = HalfBits(h.x >> 16);
    p->xoff[0] = 64 * c + l0;
    p->xoff[1] = 64 * c + 32 + l0;
    const uint32_t w[4] = {qs.x, qs.y, qs.z, qs.w};
    const uint32_t b[4] = {qh.x, qh.y, qh.z, qh.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      p->q[k] = (w[k] & 0x0F0F0F0Fu) | (fifth ? ((b[k] >> g0) & 0x01010101u) << 4 : 0u);
      p->q[4 + k] = ((w[k] >> 4) & 0x0F0F0F0Fu) | (fifth ? ((b[k] >> g1) & 0x01010101u) << 4 : 0u);
    }
  }
};

template <>
struct Lane<QuantType::kQ5_K> {
  static constexpr int kUnitBytes = 176, kSegs = 2, kMinKind = 1, kOffset = 0, kWeightAlign = 16, kHalfShift = 32;
  static constexpr int kUnroll = 2;
  __device__ static void Load(const uint8_t* u, int j, LanePart<2>* p) {
    const uint4 h = Load16(u);
    const uint4 qh = Load16(u + 16 + 16 * (j % 2));
    const uint4 qs = Load16(u + 48 + 16 * j);
    Lane<QuantType::kQ4_K>::Finish(h, qs, qh, j, 1, p);
  }
};

// The 16-group types: lane j takes bytes l0 .. l0 + 7 (l0 = 8 * (j % 4)) of
// half h = j / 4; each bit field of those bytes is one segment of 8.
template <>
struct Lane<QuantType::kQ6_K> {
  static constexpr int kUnitBytes = 210, kSegs = 4, kMinKind = 2, kOffset = 32, kWeightAlign = 4, kHalfShift = 32;
  static constexpr int kUnroll = 2;
  __device__ static void Load(const uint8_t* u, int j, LanePart<4>* p) {
    const int h = j / 4, l0 = 8 * (j % 4);
    uint32_t qa[2], qb[2], qh[2], sc[2];
    LoadWordsEven<2>(u + 64 * h + l0, qa);
    LoadWordsEven<2>(u + 64 * h + 32 + l0, qb);
    LoadWordsEven<2>(u + 128 + 32 * h + l0, qh);
    LoadWordsEven<2>(u + 192 + 8 * h, sc);
    p->D = p->F = HalfBits(__ldg(reinterpret_cast<const unsigned short*>(u + 208)));
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      p->q[0 + k] = (qa[k] & 0x0F0F0F0Fu) | ((qh[k] & 0x03030303u) << 4);
      p->q[2 + k] = (qb[k] & 0x0F0F0F0Fu) | (((qh[k] >> 2) & 0x03030303u) << 4);
      p->q[4 + k] = ((qa[k] >> 4) & 0x0F0F0F0Fu) | (((qh[k] >> 4) & 0x03030303u) << 4);
      p->q[6 + k] = ((qb[k] >> 4) & 0x0F0F0F0Fu) | (((qh[k] >> 6) & 0x03030303u) << 4);
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int i = 2 * s + l0 / 16;  // group 8h + i
      p->sc[s] = static_cast<int8_t>((sc[i / 4] >> (8 * (i % 4))) & 0xFF);
      p->m[s] = 0;
      p->xoff[s] = 128 * h + 32 * s + l0;
    }
  }
};

template <>
struct Lane<QuantType::kQ2_K> {
  static constexpr int kUnitBytes = 84, kSegs = 4, kMinKind = 1, kOffset = 0, kWeightAlign = 4, kHalfShift = 32;
  static constexpr int kUnroll = 4;  // 10.5 bytes a lane: H100 36.8 vs 40.6 us with 2
  __device__ static void Load(const uint8_t* u, int j, LanePart<4>* p) {
    const int h = j / 4, l0 = 8 * (j % 4);
    const uint32_t qs[2] = {Load4(u + 16 + 32 * h + l0), Load4(u + 20 + 32 * h + l0)};
    const uint32_t sc[2] = {Load4(u + 8 * h), Load4(u + 8 * h + 4)};
    const uint32_t dd = Load4(u + 80);
    p->D = HalfBits(dd);
    p->F = HalfBits(dd >> 16);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      p->q[2 * s] = (qs[0] >> (2 * s)) & 0x03030303u;
      p->q[2 * s + 1] = (qs[1] >> (2 * s)) & 0x03030303u;
      const int i = 2 * s + l0 / 16;
      const int b = (sc[i / 4] >> (8 * (i % 4))) & 0xFF;
      p->sc[s] = b & 0xF;
      p->m[s] = b >> 4;
      p->xoff[s] = 128 * h + 32 * s + l0;
    }
  }
};

template <>
struct Lane<QuantType::kQ3_K> {
  static constexpr int kUnitBytes = 110, kSegs = 4, kMinKind = 2, kOffset = 4, kWeightAlign = 4, kHalfShift = 32;
  static constexpr int kUnroll = 2;
  __device__ static void Load(const uint8_t* u, int j, LanePart<4>* p) {
    const int h = j / 4, l0 = 8 * (j % 4);
    uint32_t qs[2], hm[2], sb[3];
    LoadWordsEven<2>(u + 32 + 32 * h + l0, qs);
    LoadWordsEven<2>(u + l0, hm);
    LoadWordsEven<3>(u + 96, sb);
    p->D = p->F = HalfBits(__ldg(reinterpret_cast<const unsigned short*>(u + 108)));
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int bit = 4 * h + s;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        p->q[2 * s + k] = ((qs[k] >> (2 * s)) & 0x03030303u) | (((hm[k] >> bit) & 0x01010101u) << 2);
      }
      // 6-bit scale S_g of group g = 8h + 2s + l0/16 (FORMATS.md), from
      // registers: low nibble from byte g or g - 8, top bits from byte 8 + g % 4.
      const int g = 8 * h + 2 * s + l0 / 16;
      const int lo_byte = g < 8 ? g : g - 8;
      const uint32_t lw = lo_byte < 4 ? sb[0] : sb[1];
      const int low = ((lw >> (8 * (lo_byte % 4))) >> (g < 8 ? 0 : 4)) & 0xF;
      const int high = (sb[2] >> (8 * (g % 4) + 2 * (g / 4))) & 3;
      p->sc[s] = (low | (high << 4)) - 32;
      p->m[s] = 0;
      p->xoff[s] = 128 * h + 32 * s + l0;
    }
  }
};

// Legacy blocks: lane j takes block j of the unit's eight.
template <>
struct Lane<QuantType::kQ8_0> {
  static constexpr int kUnitBytes = 8 * 34, kSegs = 1, kMinKind = 0, kOffset = 0, kWeightAlign = 4, kHalfShift = 16;
  static constexpr int kUnroll = 4;  // 34 bytes a lane: more units in flight pay (H100: 89.9 vs 92.3 us)
  __device__ static void Load(const uint8_t* u, int j, LanePart<1>* p) {
    const uint8_t* b = u + 34 * j;
    p->D = p->F = HalfBits(__ldg(reinterpret_cast<const unsigned short*>(b)));
    LoadWordsEven<8>(b + 2, p->q);
    p->sc[0] = 1;
    p->m[0] = 0;
    p->xoff[0] = 32 * j;
  }
};

template <>
struct Lane<QuantType::kQ4_0> {
  static constexpr int kUnitBytes = 8 * 18, kSegs = 1, kMinKind = 2, kOffset = 8, kWeightAlign = 4, kHalfShift = 16;
  static constexpr int kUnroll = 2;
  __device__ static void Load(const uint8_t* u, int j, LanePart<1>* p) {
    const uint8_t* b = u + 18 * j;
    p->D = p->F = HalfBits(__ldg(reinterpret_cast<const unsigned short*>(b)));
    uint32_t w[4];
    LoadWordsEven<4>(b + 2, w);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      p->q[k] = w[k] & 0x0F0F0F0Fu;
      p->q[4 + k] = (w[k] >> 4) & 0x0F0F0F0Fu;
    }
    p->sc[0] = 1;
    p->m[0] = 0;
    p->xoff[0] = 32 * j;
  }
};

template <typename Act>
__device__ __forceinline__ void ActToFloat8(uint4 v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (std::is_same<Act, __half>::value) {
      f[2 * k] = HalfBits(w[k]);
      f[2 * k + 1] = HalfBits(w[k] >> 16);
    } else {  // bf16: the top half of an f32
      f[2 * k] = __uint_as_float(w[k] << 16);
      f[2 * k + 1] = __uint_as_float(w[k] & 0xFFFF0000u);
    }
  }
}

// x codes in shared memory: each 256-element unit takes kXUnitStride bytes,
// its second half kHalfShift bytes further in. Lanes read 8/16-byte pieces at
// offsets fixed by the weight layout, and in one request the four lane
// groups read four consecutive units at the same offsets: a stride of 64 mod
// 128 bytes and the per-type half shift put those pieces in distinct banks
// (unpadded, up to 8 lanes hit one bank).
constexpr int kXUnitStride = 320;
__host__ __device__ constexpr int XPhys(int e, int half_shift) { return e + (e >= 128 ? half_shift : 0); }

// Shared memory of GemvQ8Kernel: n * cols / 256 padded units of codes, then
// n * cols / 32 scales.
__host__ __device__ constexpr int64_t GemvSmemBytes(int64_t n, int64_t cols) {
  return n * (cols / 256) * kXUnitStride + n * cols / 8;
}

}  // namespace gemv

// kWarps warps per CTA; each warp takes whole rows (grid-stride), its lanes in
// 4 groups of 8, one 256-element unit per group at a time, kUnroll units
// loaded before any is used (bytes in flight); kMinBlocks CTAs per SM caps
// the registers.
template <QuantType kType, typename Act, int kN, int kWarps, int kUnroll, int kMinBlocks>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    GemvQ8Kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, const Act* __restrict__ x,
                 float* __restrict__ y) {
  using L = gemv::Lane<kType>;
  constexpr int kSegs = L::kSegs;
  constexpr int kSegElems = 32 / kSegs;
  extern __shared__ __align__(16) uint8_t smem[];
  const int64_t units = cols / 256;
  const int64_t xcol_bytes = units * gemv::kXUnitStride;  // one column of x codes
  int8_t* xq = reinterpret_cast<int8_t*>(smem);
  float* dx = reinterpret_cast<float*>(smem + kN * xcol_bytes);

  // 1. x -> int8 codes per 32-block; 4 consecutive threads share a block.
  {
    const int64_t chunks = kN * cols / 8;
    for (int64_t base = 0; base < chunks; base += blockDim.x) {
      const int64_t idx = base + threadIdx.x;
      const bool valid = idx < chunks;
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (valid) gemv::ActToFloat8<Act>(__ldg(reinterpret_cast<const uint4*>(x) + idx), f);
      // fmaxf drops NaN; `poison` (sum of f * 0) turns the block's scale
      // into NaN when any value is NaN or Inf, so it reaches every output.
      float amax = 0.0f, poison = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        amax = fmaxf(amax, fabsf(f[i]));
        poison += f[i] * 0.0f;
      }
      amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 1));
      amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 2));
      poison += __shfl_xor_sync(0xFFFFFFFFu, poison, 1);
      poison += __shfl_xor_sync(0xFFFFFFFFu, poison, 2);
      const float d = amax / 127.0f + poison;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      uint32_t packed[2] = {0, 0};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int q = __float2int_rn(f[i] * inv);
        packed[i / 4] |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * (i % 4));
      }
      if (valid) {
        const int64_t c = idx / (cols / 8), e = 8 * (idx % (cols / 8));
        int8_t* dst = xq + c * xcol_bytes + (e / 256) * gemv::kXUnitStride + gemv::XPhys(static_cast<int>(e % 256), L::kHalfShift);
        *reinterpret_cast<uint2*>(dst) = make_uint2(packed[0], packed[1]);
        if (idx % 4 == 0) dx[idx / 4] = d;
      }
    }
    __syncthreads();
  }

  // 2. Rows.
  const int lane = threadIdx.x % 32, grp = lane / 8, j = lane % 8;
  const int64_t row_bytes = units * L::kUnitBytes;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows; row += warps) {
    const uint8_t* wr = w + row * row_bytes;
    float tot[kN];
#pragma unroll
    for (int c = 0; c < kN; ++c) tot[c] = 0.0f;
    auto consume = [&](const gemv::LanePart<kSegs>& p, int64_t unit) {
#pragma unroll
      for (int c = 0; c < kN; ++c) {
        const int8_t* xu = xq + c * xcol_bytes + unit * gemv::kXUnitStride;
        const float* du = dx + (c * cols + unit * 256) / 32;
        // The segments' x-block scales in one load: they are consecutive
        // (blocks xoff[0] / 32 + s, checked by the lane layouts' tests).
        float dseg[kSegs];
        if constexpr (kSegs == 4) {
          const float4 v = *reinterpret_cast<const float4*>(du + p.xoff[0] / 32);
          dseg[0] = v.x;
          dseg[1] = v.y;
          dseg[2] = v.z;
          dseg[3] = v.w;
        } else if constexpr (kSegs == 2) {
          const float2 v = *reinterpret_cast<const float2*>(du + p.xoff[0] / 32);
          dseg[0] = v.x;
          dseg[1] = v.y;
        } else {
          dseg[0] = du[p.xoff[0] / 32];
        }
        float acc_d = 0.0f, acc_f = 0.0f;
#pragma unroll
        for (int s = 0; s < kSegs; ++s) {
          uint32_t xv[kSegElems / 4];
          const int8_t* xs = xu + gemv::XPhys(p.xoff[s], L::kHalfShift);
          if constexpr (kSegElems == 8) {
            const uint2 v = *reinterpret_cast<const uint2*>(xs);
            xv[0] = v.x;
            xv[1] = v.y;
          } else {
#pragma unroll
            for (int k = 0; k < kSegElems / 16; ++k) {
              const uint4 v = *reinterpret_cast<const uint4*>(xs + 16 * k);
              xv[4 * k] = v.x;
              xv[4 * k + 1] = v.y;
              xv[4 * k + 2] = v.z;
              xv[4 * k + 3] = v.w;
            }
          }
          int sum = 0, xsum = 0;
#pragma unroll
          for (int k = 0; k < kSegElems / 4; ++k) {
            sum = __dp4a(static_cast<int>(p.q[s * (kSegElems / 4) + k]), static_cast<int>(xv[k]), sum);
            if (L::kMinKind != 0) xsum = __dp4a(0x01010101, static_cast<int>(xv[k]), xsum);
          }
          const float d = dseg[s];
          if (L::kMinKind == 2) sum -= L::kOffset * xsum;
          acc_d = fmaf(d, gemv::SmallIntToFloat(p.sc[s] * sum), acc_d);
          if (L::kMinKind == 1) acc_f = fmaf(d, gemv::SmallIntToFloat(p.m[s] * xsum), acc_f);
        }
        tot[c] = fmaf(p.D, acc_d, tot[c]);
        if (L::kMinKind == 1) tot[c] = fmaf(-p.F, acc_f, tot[c]);
      }
    };
    int64_t unit = grp;
    for (; unit + 4 * (kUnroll - 1) < units; unit += 4 * kUnroll) {
      gemv::LanePart<kSegs> part[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) L::Load(wr + (unit + 4 * u) * L::kUnitBytes, j, &part[u]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) consume(part[u], unit + 4 * u);
    }
    for (; unit < units; unit += 4) {
      gemv::LanePart<kSegs> part;
      L::Load(wr + unit * L::kUnitBytes, j, &part);
      consume(part, unit);
    }
#pragma unroll
    for (int c = 0; c < kN; ++c) {
      float s = tot[c];
#pragma unroll
      for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
      if (lane == 0) y[c * rows + row] = s;
    }
  }
}

// Whether GemvQ8Kernel can run these arguments (type, alignment, shape).
template <QuantType kType>
__host__ bool GemvQ8Fits(const void* w, int64_t cols, const void* x, int64_t n, int64_t max_smem) {
  const uintptr_t wa = reinterpret_cast<uintptr_t>(w), xa = reinterpret_cast<uintptr_t>(x);
  return n >= 1 && n <= 4 && cols % 256 == 0 && wa % gemv::Lane<kType>::kWeightAlign == 0 && xa % 16 == 0 &&
         gemv::GemvSmemBytes(n, cols) <= max_smem;
}

// Launches GemvQ8Kernel with one CTA per resident slot (rows are
// grid-strided). Preconditions: GemvQ8Fits. Returns the launch error.
template <QuantType kType, typename Act, int kN, int kWarps = 8, int kUnroll = gemv::Lane<kType>::kUnroll,
          int kMinBlocks = 2>
cudaError_t LaunchGemvQ8(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, float* y,
                         cudaStream_t stream) {
  auto kernel = GemvQ8Kernel<kType, Act, kN, kWarps, kUnroll, kMinBlocks>;
  const int smem = static_cast<int>(gemv::GemvSmemBytes(kN, cols));
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  int dev = 0, sms = 0, per_sm = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, smem)) != cudaSuccess) {
    return err;
  }
  const int64_t needed = (rows + kWarps - 1) / kWarps;
  const int64_t slots = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
  const unsigned grid = static_cast<unsigned>(needed < slots ? needed : slots);
  kernel<<<grid, kWarps * 32, smem, stream>>>(w, rows, cols, x, y);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_GEMV_CUH_
