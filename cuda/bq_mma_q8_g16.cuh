// Small batches (n = 1..64) of the 16-value-group K-quants (Q2_K, Q3_K,
// Q6_K) and of Q8_0 and Q4_0 (taken as 16-value groups, 8 blocks to a unit of
// 256 values) on int8 tensor cores, x rounded to int8 per 32 values as in
// gemv_q8 (bq_gemv.cuh): the `mma_q8` kernel for these types, and for
// n > 16 its wide form (MmaQ8G16WideKernel below, which says how it
// differs).
//
// Why: they have no wgmma kernel, and their f16 tensor-core kernels
// (bq_matmul.cuh) turn every code into an f16 times its scale, which holds
// them near 10-50% of the copy bound at any n; gemv_q8 pays a dp4a per 4
// weights and column, so its time grows with n. Here each 16-value group is
// one mma.sync.m16n8k16 (s8 x s8, s32 sums) per 8 columns of x, whatever n is.
//
// Layout of the work: a unit is 256 values of a row (a super-block, or 8
// Q8_0 or Q4_0 blocks). A CTA takes 16 rows; its warps take every kWarps-th
// unit of them and add their sums in shared memory in a fixed order
// (deterministic). Lane (g, t) holds rows g and g + 8 and, in group G, the
// values 4t..4t+3 (the MMA's k order is the group's own).
//
// Weights, two ways (the same arithmetic, the same bits):
// - kTma (sm_90, 16-byte aligned rows): each warp has a ring of kStages
//   stages in shared memory, one unit of its 16 rows each, which TMA fills
//   (lane 0 refills a stage as soon as the warp has read it). A TMA box
//   starts 16-byte aligned (the hardware faults otherwise), so it starts at
//   the unit's offset rounded down to 16 and is wide enough for the unit
//   after up to 14 bytes of its predecessor (G16Type::kBox), with a row
//   stride in shared memory that puts the 8 rows a lane column reads in
//   distinct banks. Blocks that start 2 mod 4 (Q3_K's and Q6_K's odd ones),
//   and Q8_0's and Q4_0's fields that do, are read as shifted pairs of
//   aligned words.
// - direct: each lane loads its words straight from the GGUF blocks (2-byte
//   aligned: two 16-bit loads where a word is not 4-byte aligned).
//
// Numerics: each group's integer product times its scale, summed over the
// two groups of one 32-value block of x, is an exact integer below 2^24
// (Q6_K: 2 * 128 * 16 * 32 * 127), so exact in f32 before x's scale and d
// (Q8_0, Q4_0: the block's d) multiply it. Q2_K's mins' term,
// dmin * sum_g m_g * xg_g, takes three bf16 MMAs per super-block: the mins
// are exact in bf16, and each group sum of x (xg = dx * the sum of its
// codes) is split into three bf16 parts (24 bits).
// As in gemv_q8: |y - W x| <= sum_k |w_k| * dx(k) / 2 (+ f32 rounding); a
// NaN or Inf in x makes its column NaN.
//
// Requirements: cols % 256 == 0; weights 2-byte aligned; x 16-byte aligned,
// f16 or bf16; a workspace of MmaQ8G16WorkspaceBytes(n, cols) bytes, 16-byte
// aligned; a GPU of compute capability 8 or newer; for n > 16 the TMA path's
// (an sm_90 GPU, 16-byte aligned weights and rows) (MmaQ8G16Fits).
#ifndef BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_
#define BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bq_gemv.cuh"
#include "bq_mma_q8.cuh"
#include "bq_wgmma.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace mmaq8g16 {

// Tiles of 8 columns for n: as in bq_mma_q8.cuh to n = 16, then 4 or 8
// for the wide kernel (n <= 32, n <= 64).
__host__ __device__ constexpr int ColumnTiles(int64_t n) { return n <= 16 ? mmaq8::ColumnTiles(n) : n <= 32 ? 4 : 8; }
// The most columns one launch takes.
constexpr int64_t kMaxN = 64;

// The workspace, per 256-value unit s and tile nt of 8 columns, with
// lane = 4 * col + t (col 0..7 of the tile):
//   codes [s][nt][k 0..3][lane] 16 bytes: x's codes 4t..4t+3 of groups
//         4k..4k+3 of column col, one word per group (the lane's B
//         registers for those groups);
//   dx    [s][nt][t][blk 0..7][2] f32: the scales of columns 2t and 2t + 1
//         (the columns of the lane's accumulators);
//   sums  [s][nt][lane] 32 bytes: xg of groups (2t, 2t + 1) and (2t + 8,
//         2t + 9) of column col as bf16 pairs, hi parts, then mid, then lo,
//         then 8 bytes of padding: the B registers of the mins' MMAs (read
//         by Q2_K only).
// Columns n .. 8 * tiles - 1 are zeros.
__host__ __device__ constexpr int64_t CodeBytes(int tiles, int64_t cols) { return int64_t{8} * tiles * cols; }
__host__ __device__ constexpr int64_t ScaleBytes(int tiles, int64_t cols) { return int64_t{1} * tiles * cols; }
__host__ __device__ constexpr int64_t SumBytes(int tiles, int64_t cols) { return int64_t{4} * tiles * cols; }

// x -> the workspace. One thread per 8 values (half a group), 4 consecutive
// threads per 32-block; columns past n become zeros.
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
  qsum += __shfl_xor_sync(0xFFFFFFFFu, qsum, 1);  // the group's 16 codes
  const int64_t s = e / 256;
  const int r = static_cast<int>(e % 256), group = r / 16, t0 = (r % 16) / 4;
  const int tile = static_cast<int>(col / 8), cg = static_cast<int>(col % 8);
  const int64_t unit = s * kTiles + tile;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t at = ((unit * 4 + group / 4) * 32 + 4 * cg + t0 + i) * 16 + 4 * (group % 4);
    *reinterpret_cast<uint32_t*>(ws + at) = packed[i];
  }
  if (t0 == 0) {
    if (r % 32 == 0) {
      float* dx = reinterpret_cast<float*>(ws + CodeBytes(kTiles, cols));
      dx[(unit * 4 + cg / 2) * 16 + 2 * (group / 2) + cg % 2] = d;
    }
    // Group G sits with lane t = (G % 8) / 2, in its pair G / 8, half G % 2.
    __nv_bfloat16* sums = reinterpret_cast<__nv_bfloat16*>(ws + CodeBytes(kTiles, cols) + ScaleBytes(kTiles, cols)) +
                          (unit * 32 + 4 * cg + (group % 8) / 2) * 16 + 2 * (group / 8) + group % 2;
    detail::SplitBf16x3(d * static_cast<float>(qsum), sums, sums + 4, sums + 8);
  }
}

__device__ __forceinline__ void MmaS8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // MmaQ8G16Fits keeps the launcher from getting here
#else
  asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %7, %7, %7};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(b), "r"(0));
#endif
}

// c += A (16 x 16 bf16: rows g, g + 8; k 2t, 2t + 1 in a0/a1, 2t + 8, 2t + 9
// in a2/a3) * B (k 2t, 2t + 1 in b0; 2t + 8, 2t + 9 in b1).
__device__ __forceinline__ void MmaBf16K16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                           uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// Four codes u (one per byte, u < 128) -> u - kOffset as s8, kOffset a power
// of two up to 64: u + (128 - kOffset) stays below 256 in each byte, and its
// top bit flipped is the two's complement of u - kOffset.
template <uint32_t kOffset>
__device__ __forceinline__ uint32_t Centre(uint32_t u) {
  return (u + 0x01010101u * (128 - kOffset)) ^ 0x80808080u;
}

// Word loaders: from the shared-memory stage (4-byte aligned fields) or from
// the GGUF blocks in global memory (2-byte aligned).
// operator(): a word at a 4-byte aligned offset from the block's start;
// Off2: a word at an offset of 2 mod 4 (the legacy types' fields); Half: 2
// bytes (a block's last field, where 4 would read past its end).
__device__ __forceinline__ uint32_t SmemAligned(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint32_t SmemShifted(const uint8_t* p) {  // p 2 mod 4
  return __funnelshift_r(SmemAligned(p - 2), SmemAligned(p + 2), 16);
}
struct SmemWord {
  __device__ uint32_t operator()(const uint8_t* p) const { return SmemAligned(p); }
  __device__ uint32_t Off2(const uint8_t* p) const { return SmemShifted(p); }
  __device__ uint32_t Half(const uint8_t* p) const { return *reinterpret_cast<const uint16_t*>(p); }
};
// A stage's block that starts 2 mod 4: each word from the two aligned words
// around it.
struct SmemWordShifted {
  __device__ uint32_t operator()(const uint8_t* p) const { return SmemShifted(p); }
  __device__ uint32_t Off2(const uint8_t* p) const { return SmemAligned(p); }
  __device__ uint32_t Half(const uint8_t* p) const { return *reinterpret_cast<const uint16_t*>(p); }
};
struct GlobalWord {
  __device__ uint32_t operator()(const uint8_t* p) const {
    if ((reinterpret_cast<uintptr_t>(p) & 3) == 0) return gemv::Load4(p);
    return gemv::Load2(p) | (gemv::Load2(p + 2) << 16);
  }
  __device__ uint32_t Off2(const uint8_t* p) const { return (*this)(p); }
  __device__ uint32_t Half(const uint8_t* p) const { return gemv::Load2(p); }
};

// Per type: the block's bytes, the TMA box's width (a multiple of 16 that
// holds the block after the most bytes its aligned start can add, and whose
// word count is an odd multiple of 4, so that the 8 rows of a lane column
// land in distinct banks), and what one lane reads of one row's block (its words for values 4t..4t+3 of every group) and makes of it.
// Group G = 8h + 2q + lh covers values 128h + 32q + 16lh .. + 15: bit field q
// of the bytes at 16lh + 4t of half h.
template <QuantType kType>
struct G16Type;

template <>
struct G16Type<QuantType::kQ6_K> {
  static constexpr int kBytes = 210, kBox = 240;  // ql[128], qh[64], scales[16], d (starts 0..14 in)
  static constexpr bool kMins = false, kBlockScale = false;
  struct Row {
    uint32_t ql[2][2][2], qh[2][2], sc[4], d;  // ql [h][lh][q & 1], qh [h][lh]
  };
  template <class Load>
  __device__ static Row Read(const uint8_t* b, int t, Load load) {
    Row r;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int lh = 0; lh < 2; ++lh) {
        r.qh[h][lh] = load(b + 128 + 32 * h + 16 * lh + 4 * t);
#pragma unroll
        for (int qo = 0; qo < 2; ++qo) r.ql[h][lh][qo] = load(b + 64 * h + 32 * qo + 16 * lh + 4 * t);
      }
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) r.sc[k] = load(b + 192 + 4 * k);
    r.d = load.Half(b + 208);
    return r;
  }
  __device__ static uint32_t Codes(const Row& r, int G) {
    const int h = G / 8, q = (G % 8) / 2, lh = G % 2;
    const uint32_t lo = (r.ql[h][lh][q & 1] >> (4 * (q >> 1))) & 0x0F0F0F0Fu;
    const uint32_t hi = ((r.qh[h][lh] >> (2 * q)) & 0x03030303u) << 4;
    return Centre<32>(lo | hi);
  }
  __device__ static int Scale(const Row& r, int G) { return static_cast<int8_t>(r.sc[G / 4] >> (8 * (G % 4))); }
  __device__ static float UnitD(const Row& r) { return gemv::HalfBits(r.d); }
  // 2 * 128 * 16 * 32 * 127 reaches 2^24: the conversion unit.
  __device__ static float ToFloat(int v) { return __int2float_rn(v); }
};

template <>
struct G16Type<QuantType::kQ3_K> {
  static constexpr int kBytes = 110, kBox = 144;  // hmask[32], qs[64], scales[12], d (starts 0..14 in)
  static constexpr bool kMins = false, kBlockScale = false;
  struct Row {
    uint32_t hm[2], qs[2][2], sc[4], d;  // hm [lh], qs [h][lh], sc: S_g - 32 as s8, 4 to a word
  };
  template <class Load>
  __device__ static Row Read(const uint8_t* b, int t, Load load) {
    Row r;
#pragma unroll
    for (int lh = 0; lh < 2; ++lh) {
      r.hm[lh] = load(b + 16 * lh + 4 * t);
#pragma unroll
      for (int h = 0; h < 2; ++h) r.qs[h][lh] = load(b + 32 + 32 * h + 16 * lh + 4 * t);
    }
    UnpackScalesQ3Kx16(load(b + 96), load(b + 100), load(b + 104), r.sc);
#pragma unroll
    for (int k = 0; k < 4; ++k) r.sc[k] = Centre<32>(r.sc[k]);
    r.d = load.Half(b + 108);
    return r;
  }
  __device__ static uint32_t Codes(const Row& r, int G) {
    const int h = G / 8, q = (G % 8) / 2, lh = G % 2;
    const uint32_t lo = (r.qs[h][lh] >> (2 * q)) & 0x03030303u;
    const uint32_t hi = ((r.hm[lh] >> (4 * h + q)) & 0x01010101u) << 2;
    return Centre<4>(lo | hi);
  }
  __device__ static int Scale(const Row& r, int G) { return static_cast<int8_t>(r.sc[G / 4] >> (8 * (G % 4))); }
  __device__ static float UnitD(const Row& r) { return gemv::HalfBits(r.d); }
  // 2 * 32 * 16 * 4 * 127 < 2^22.
  __device__ static float ToFloat(int v) { return gemv::SmallIntToFloat(v); }
};

template <>
struct G16Type<QuantType::kQ2_K> {
  static constexpr int kBytes = 84, kBox = 112;  // scales[16], qs[64], d, dmin (starts 0..12 in)
  static constexpr bool kMins = true, kBlockScale = false;
  struct Row {
    uint32_t sc[4], qs[2][2], d;  // qs [h][lh]; d: d | dmin << 16
  };
  template <class Load>
  __device__ static Row Read(const uint8_t* b, int t, Load load) {
    Row r;
#pragma unroll
    for (int k = 0; k < 4; ++k) r.sc[k] = load(b + 4 * k);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int lh = 0; lh < 2; ++lh) r.qs[h][lh] = load(b + 16 + 32 * h + 16 * lh + 4 * t);
    }
    r.d = load(b + 80);
    return r;
  }
  __device__ static uint32_t Codes(const Row& r, int G) {
    const int h = G / 8, q = (G % 8) / 2, lh = G % 2;
    return (r.qs[h][lh] >> (2 * q)) & 0x03030303u;
  }
  __device__ static int Scale(const Row& r, int G) { return (r.sc[G / 4] >> (8 * (G % 4))) & 0xF; }
  __device__ static float UnitD(const Row& r) { return gemv::HalfBits(r.d); }
  // 2 * 15 * 16 * 3 * 127 < 2^22.
  __device__ static float ToFloat(int v) { return gemv::SmallIntToFloat(v); }
  // The mins of groups 2t, 2t + 1 (pair 0) or 2t + 8, 2t + 9 (pair 1) as a
  // bf16 pair: the A registers of the mins' MMAs (selects, not a runtime
  // index into sc, which would put it in local memory).
  __device__ static uint32_t MinPair(const Row& r, int t, int pair) {
    const uint32_t w = pair ? (t < 2 ? r.sc[2] : r.sc[3]) : (t < 2 ? r.sc[0] : r.sc[1]);
    return detail::MinPairBf16((w >> 4) & 0x0F0F0F0Fu, t % 2);
  }
};

// Q8_0 and Q4_0: a unit of 8 blocks (256 values, a multiple of 16 bytes) in
// place of a super-block; group G is half G % 2 of block G / 2, scaled by
// that block's d (kBlockScale) instead of an integer scale and a super-block
// d. Their fields start 2 mod 4 in every other block. What the two share:
template <int kBlockBytes>
struct BlockScaledG16 {
  static constexpr int kBytes = 8 * kBlockBytes, kBox = 8 * kBlockBytes;  // 8 x (d, qs)
  static constexpr bool kMins = false, kBlockScale = true;
  // Lane t's word of 16-byte half `half` of block b's qs.
  template <class Load>
  __device__ static uint32_t QsWord(const uint8_t* u, int b, int half, int t, Load load) {
    const int at = kBlockBytes * b + 2;
    const uint8_t* p = u + at + 16 * half + 4 * t;
    return at % 4 == 0 ? load(p) : load.Off2(p);
  }
  // Block b's d bits into d[b / 2], two to a word.
  template <class Load>
  __device__ static void ReadD(const uint8_t* u, int b, Load load, uint32_t (&d)[4]) {
    const uint32_t v = load.Half(u + kBlockBytes * b);
    d[b / 2] = b % 2 ? d[b / 2] | (v << 16) : v;
  }
  template <class Row>
  __device__ static int Scale(const Row&, int) { return 1; }
  template <class Row>
  __device__ static float BlockD(const Row& r, int b) { return gemv::HalfBits(r.d[b / 2] >> (16 * (b % 2))); }
  template <class Row>
  __device__ static float UnitD(const Row&) { return 1.0f; }  // the blocks' d came with BlockD
  // Q8_0: 2 * 16 * 127 * 127 < 2^22; Q4_0: 2 * 16 * 8 * 127.
  __device__ static float ToFloat(int v) { return gemv::SmallIntToFloat(v); }
};

template <>
struct G16Type<QuantType::kQ8_0> : BlockScaledG16<34> {
  struct Row {
    uint32_t q[16], d[4];  // q: the lane's word of each group; d: the blocks' d bits, two to a word
  };
  template <class Load>
  __device__ static Row Read(const uint8_t* u, int t, Load load) {
    Row r;
#pragma unroll
    for (int b = 0; b < 8; ++b) {
#pragma unroll
      for (int h = 0; h < 2; ++h) r.q[2 * b + h] = QsWord(u, b, h, t, load);
      ReadD(u, b, load, r.d);
    }
    return r;
  }
  __device__ static uint32_t Codes(const Row& r, int G) { return r.q[G]; }
};

template <>
struct G16Type<QuantType::kQ4_0> : BlockScaledG16<18> {
  struct Row {
    uint32_t q[8], d[4];  // q: the lane's word of each block (low nibbles: group 2b, high: 2b + 1)
  };
  template <class Load>
  __device__ static Row Read(const uint8_t* u, int t, Load load) {
    Row r;
#pragma unroll
    for (int b = 0; b < 8; ++b) {
      r.q[b] = QsWord(u, b, 0, t, load);
      ReadD(u, b, load, r.d);
    }
    return r;
  }
  __device__ static uint32_t Codes(const Row& r, int G) {
    return Centre<8>((r.q[G / 2] >> (4 * (G % 2))) & 0x0F0F0F0Fu);
  }
};

// Rows g and g + 8 of a stage (rows kBox bytes apart from `rows16`, the
// unit `skip` bytes into each, as TMA placed it), as lane (g, t) reads them.
template <QuantType kType>
__device__ __forceinline__ void ReadStageRows(const uint8_t* rows16, int skip, int g, int t,
                                              typename G16Type<kType>::Row (&r)[2]) {
  using T = G16Type<kType>;
  const uint8_t* st = rows16 + skip;
  if (skip & 2) {
    r[0] = T::Read(st + g * T::kBox, t, SmemWordShifted());
    r[1] = T::Read(st + (g + 8) * T::kBox, t, SmemWordShifted());
  } else {
    r[0] = T::Read(st + g * T::kBox, t, SmemWord());
    r[1] = T::Read(st + (g + 8) * T::kBox, t, SmemWord());
  }
}

// x's part of one unit (kTiles of its tiles), as one lane reads it.
template <int kTiles, bool kMins>
struct XUnit {
  uint4 codes[kTiles][4];
  float4 dx[kTiles][4];
  uint4 sums[kTiles][kMins ? 2 : 1];
};
template <bool kGlobal, typename V>
__device__ __forceinline__ V LoadX(const V* p) {
  if constexpr (kGlobal) {
    return __ldg(p);
  } else {
    return *p;
  }
}
// Tiles tile0 .. tile0 + kTiles - 1 (of all units, counted from `codes`,
// `dx` and `sums`: the workspace's three parts, or a shared-memory copy of
// one unit's) from global memory (kGlobal) or shared memory.
template <int kTiles, bool kMins, bool kGlobal>
__device__ __forceinline__ XUnit<kTiles, kMins> FetchX(const uint8_t* codes, const uint8_t* dx, const uint8_t* sums,
                                                       int64_t tile0, int lane) {
  XUnit<kTiles, kMins> u;
  const float* dxs = reinterpret_cast<const float*>(dx);
  const uint4* sum4 = reinterpret_cast<const uint4*>(sums);
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const int64_t unit = tile0 + nt;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      u.codes[nt][k] = LoadX<kGlobal>(reinterpret_cast<const uint4*>(codes + ((unit * 4 + k) * 32 + lane) * 16));
      u.dx[nt][k] = LoadX<kGlobal>(reinterpret_cast<const float4*>(dxs + (unit * 4 + lane % 4) * 16) + k);
    }
    if constexpr (kMins) {
      u.sums[nt][0] = LoadX<kGlobal>(sum4 + (unit * 32 + lane) * 2);
      u.sums[nt][1] = LoadX<kGlobal>(sum4 + (unit * 32 + lane) * 2 + 1);
    }
  }
  return u;
}

__device__ __forceinline__ uint32_t Word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
__device__ __forceinline__ float Lane(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Adds one unit of rows g and g + 8 (r[0], r[1]) times x to tot
// (accumulator layout of mma.m16n8: rows g, g, g + 8, g + 8; columns 2t,
// 2t + 1, 2t, 2t + 1 of each tile).
template <QuantType kType, int kTiles>
__device__ __forceinline__ void Consume(const typename G16Type<kType>::Row (&r)[2],
                                        const XUnit<kTiles, G16Type<kType>::kMins>& xu, int t,
                                        float (&tot)[kTiles][4]) {
  using T = G16Type<kType>;
  float acc[kTiles][4];
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
  for (int blk = 0; blk < 8; ++blk) {  // x's 32-value blocks: groups 2 blk and 2 blk + 1
    int isum[kTiles][4];
#pragma unroll
    for (int gg = 0; gg < 2; ++gg) {
      const int G = 2 * blk + gg;
      const uint32_t a0 = T::Codes(r[0], G), a1 = T::Codes(r[1], G);
      const int s0 = T::Scale(r[0], G), s1 = T::Scale(r[1], G);
#pragma unroll
      for (int nt = 0; nt < kTiles; ++nt) {
        int p[4];
        MmaS8(p, a0, a1, Word(xu.codes[nt][G / 4], G % 4));
        if (gg == 0) {
          isum[nt][0] = s0 * p[0], isum[nt][1] = s0 * p[1], isum[nt][2] = s1 * p[2], isum[nt][3] = s1 * p[3];
        } else {
          isum[nt][0] += s0 * p[0], isum[nt][1] += s0 * p[1], isum[nt][2] += s1 * p[2], isum[nt][3] += s1 * p[3];
        }
      }
    }
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {  // columns 2t and 2t + 1 of the tile
      const float dx0 = Lane(xu.dx[nt][blk / 2], 2 * (blk % 2)), dx1 = Lane(xu.dx[nt][blk / 2], 2 * (blk % 2) + 1);
      if constexpr (T::kBlockScale) {  // the rows' block blk has its own d
        const float b0 = T::BlockD(r[0], blk), b1 = T::BlockD(r[1], blk);
        acc[nt][0] = fmaf(dx0 * b0, T::ToFloat(isum[nt][0]), acc[nt][0]);
        acc[nt][1] = fmaf(dx1 * b0, T::ToFloat(isum[nt][1]), acc[nt][1]);
        acc[nt][2] = fmaf(dx0 * b1, T::ToFloat(isum[nt][2]), acc[nt][2]);
        acc[nt][3] = fmaf(dx1 * b1, T::ToFloat(isum[nt][3]), acc[nt][3]);
      } else {
        acc[nt][0] = fmaf(dx0, T::ToFloat(isum[nt][0]), acc[nt][0]);
        acc[nt][1] = fmaf(dx1, T::ToFloat(isum[nt][1]), acc[nt][1]);
        acc[nt][2] = fmaf(dx0, T::ToFloat(isum[nt][2]), acc[nt][2]);
        acc[nt][3] = fmaf(dx1, T::ToFloat(isum[nt][3]), acc[nt][3]);
      }
    }
  }
  const float d0 = T::UnitD(r[0]), d1 = T::UnitD(r[1]);
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    tot[nt][0] = fmaf(d0, acc[nt][0], tot[nt][0]);
    tot[nt][1] = fmaf(d0, acc[nt][1], tot[nt][1]);
    tot[nt][2] = fmaf(d1, acc[nt][2], tot[nt][2]);
    tot[nt][3] = fmaf(d1, acc[nt][3], tot[nt][3]);
  }
  if constexpr (T::kMins) {
    const uint32_t m00 = T::MinPair(r[0], t, 0), m10 = T::MinPair(r[1], t, 0);
    const uint32_t m01 = T::MinPair(r[0], t, 1), m11 = T::MinPair(r[1], t, 1);
    const float dm0 = gemv::HalfBits(r[0].d >> 16), dm1 = gemv::HalfBits(r[1].d >> 16);
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {
      float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const uint4 s0 = xu.sums[nt][0], s1 = xu.sums[nt][1];
      MmaBf16K16(m, m00, m10, m01, m11, s0.x, s0.y);  // hi parts
      MmaBf16K16(m, m00, m10, m01, m11, s0.z, s0.w);  // mid
      MmaBf16K16(m, m00, m10, m01, m11, s1.x, s1.y);  // lo
      tot[nt][0] = fmaf(-dm0, m[0], tot[nt][0]);
      tot[nt][1] = fmaf(-dm0, m[1], tot[nt][1]);
      tot[nt][2] = fmaf(-dm1, m[2], tot[nt][2]);
      tot[nt][3] = fmaf(-dm1, m[3], tot[nt][3]);
    }
  }
}

}  // namespace mmaq8g16

// Workspace of LaunchMmaQ8G16: x's codes, their scales and group sums.
__host__ __device__ constexpr int64_t MmaQ8G16WorkspaceBytes(int64_t n, int64_t cols) {
  return mmaq8g16::CodeBytes(mmaq8g16::ColumnTiles(n), cols) + mmaq8g16::ScaleBytes(mmaq8g16::ColumnTiles(n), cols) +
         mmaq8g16::SumBytes(mmaq8g16::ColumnTiles(n), cols);
}

// Shared memory of the kernel below: kTma's rings and barriers, then the
// warps' partial sums.
template <QuantType kType, int kTiles, int kWarps, int kStages, bool kTma>
__host__ __device__ constexpr int MmaQ8G16SmemBytes() {
  return (kTma ? kWarps * kStages * (16 * mmaq8g16::G16Type<kType>::kBox + 8) + 128 : 0) + kWarps * 32 * kTiles * 16;
}

// kTiles column tiles of 8 (n <= 8 * kTiles); see the top of this file.
// wmap: the weights as rows x (cols / 256 * kBytes) bytes in 16-bit
// elements, a box of 16 rows x kBox bytes (kTma only); w: the weights
// (direct only).
template <QuantType kType, int kTiles, int kWarps, int kStages, bool kTma, int kMinBlocks>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    MmaQ8G16Kernel(const __grid_constant__ CUtensorMap wmap, const uint8_t* __restrict__ w, int64_t rows,
                   int64_t cols, const uint8_t* __restrict__ ws, int64_t n, float* __restrict__ y) {
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900 || (!kTma && __CUDA_ARCH__ >= 800))
  using T = mmaq8g16::G16Type<kType>;
  constexpr int kStageBytes = 16 * T::kBox;  // a multiple of 128
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((128 - detail::SmemAddr(smem_raw) % 128) % 128);
  float* partial = reinterpret_cast<float*>(smem + (kTma ? kWarps * kStages * (kStageBytes + 8) : 0));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t units = cols / 256;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * 16 + g, r1 = r0 + 8;
  const int count = units > warp ? static_cast<int>((units - warp + kWarps - 1) / kWarps) : 0;  // this warp's units
  uint8_t* ring = smem + warp * kStages * kStageBytes;
  const uint32_t bar0 = detail::SmemAddr(smem + kWarps * kStages * kStageBytes) + 8 * kStages * warp;
  auto refill = [&](int i, int stage) {  // the warp's i-th unit
    const uint32_t bar = bar0 + 8 * stage;
    detail::MbarExpectTx(bar, kStageBytes);
    detail::TmaLoad2d(detail::SmemAddr(ring + stage * kStageBytes), &wmap,
                      detail::UnalignedBoxColumn((warp + int64_t{i} * kWarps) * T::kBytes),
                      static_cast<int>(blockIdx.x) * 16, bar);
  };
  if constexpr (kTma) {
    if (lane == 0) {
      for (int i = 0; i < kStages; ++i) detail::MbarInit(bar0 + 8 * i, 1);
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
      // The weights may be read before the wait below: the x kernel, which
      // this one depends on, let it start only after every earlier kernel
      // in the stream had finished. x's codes are read after the wait.
      for (int i = 0; i < kStages && i < count; ++i) refill(i, i);
    }
    __syncwarp();
  }
  gemv::WaitForPreviousGrid();
  // Rows past the end read the last row (direct) or zeros (TMA); their sums
  // are never written.
  const uint8_t* w0 = w + (r0 < rows ? r0 : rows - 1) * units * T::kBytes;
  const uint8_t* w1 = w + (r1 < rows ? r1 : rows - 1) * units * T::kBytes;
  float tot[kTiles][4];
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) tot[nt][0] = tot[nt][1] = tot[nt][2] = tot[nt][3] = 0.0f;
  int stage = 0;
  uint32_t phase = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t unit = warp + int64_t{i} * kWarps;
    // x first: MbarWait's memory clobber keeps loads from moving above it.
    const auto xu = mmaq8g16::FetchX<kTiles, T::kMins, true>(ws, ws + mmaq8g16::CodeBytes(kTiles, cols),
                                                              ws + mmaq8g16::CodeBytes(kTiles, cols) +
                                                                  mmaq8g16::ScaleBytes(kTiles, cols),
                                                              unit * kTiles, lane);
    typename T::Row r[2];
    if constexpr (kTma) {
      detail::MbarWait(bar0 + 8 * stage, phase);
      const int skip = static_cast<int>(unit * T::kBytes) & 15;  // the unit's start in the box
      mmaq8g16::ReadStageRows<kType>(ring + stage * kStageBytes, skip, g, t, r);
      __syncwarp();  // every lane has read the stage
      if (lane == 0 && i + kStages < count) {
        detail::FenceProxyAsync();
        refill(i + kStages, stage);
      }
      if (++stage == kStages) stage = 0, phase ^= 1;
    } else {
      r[0] = T::Read(w0 + unit * T::kBytes, t, mmaq8g16::GlobalWord());
      r[1] = T::Read(w1 + unit * T::kBytes, t, mmaq8g16::GlobalWord());
    }
    mmaq8g16::Consume<kType, kTiles>(r, xu, t, tot);
  }
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[(warp * 32 + lane) * kTiles * 4 + nt * 4 + i] = tot[nt][i];
  }
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float v = partial[lane * kTiles * 4 + nt * 4 + i];
      for (int k = 1; k < kWarps; ++k) v += partial[(k * 32 + lane) * kTiles * 4 + nt * 4 + i];
      const int64_t row = i < 2 ? r0 : r1, col = 8 * nt + 2 * t + i % 2;
      if (row < rows && col < n) y[col * rows + row] = v;
    }
  }
#else
  __trap();  // MmaQ8G16Fits and MmaQ8G16TmaFits keep the launcher from getting here
#endif
}

// Shared memory of one stage of the wide kernel below: its kRowWarps * 16
// rows of one unit (TMA boxes, as in the rings above), then x's unit: codes,
// dx and (Q2_K) sums of kTiles tiles, copied as they lie in the workspace.
template <QuantType kType, int kTiles, int kRowWarps>
__host__ __device__ constexpr int MmaQ8G16WideStageBytes() {
  return kRowWarps * 16 * mmaq8g16::G16Type<kType>::kBox + kTiles * (2048 + 256) +
         (mmaq8g16::G16Type<kType>::kMins ? kTiles * 1024 : 0);
}
template <QuantType kType, int kTiles, int kRowWarps, int kStages>
__host__ __device__ constexpr int MmaQ8G16WideSmemBytes() {
  return kStages * (MmaQ8G16WideStageBytes<kType, kTiles, kRowWarps>() + 16) + 128;
}

// n = 17..64 (kTiles 4 or 8), sm_90 and the TMA path only. The kernel above
// reads x per warp and 16 rows, which costs more than the weights past
// n = 16; here a CTA takes kRowWarps * 16 rows, and its warps share each
// unit of x: one producer warp fills kStages stages in unit order, each of
// one unit of the CTA's rows (one TMA box) and that unit of x (three bulk
// copies). kKSplit groups of kRowWarps consumer warps take every
// kKSplit-th unit (short matrices have too few CTAs to keep every SM busy
// otherwise), each warp 16 rows, 2 tiles of x at a time (as the kernel
// above with kTiles = 2), and every consumer lane releases the stage on an
// mbarrier. The groups' sums are added in shared memory in group order
// (deterministic).
template <QuantType kType, int kTiles, int kRowWarps, int kKSplit, int kStages, int kMinBlocks>
__global__ void __launch_bounds__((kRowWarps * kKSplit + 1) * 32, kMinBlocks)
    MmaQ8G16WideKernel(const __grid_constant__ CUtensorMap wmap, int64_t rows, int64_t cols,
                       const uint8_t* __restrict__ ws, int64_t n, float* __restrict__ y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using T = mmaq8g16::G16Type<kType>;
  static_assert(kTiles % 2 == 0, "x is consumed 2 tiles at a time");
  // Every stage belongs to one K group (unit s goes to stage s % kStages and
  // group s % kKSplit): in a stage shared by two groups a group can reach its
  // wait for the stage's phase j while phase j - 1 (another group's unit) is
  // still loading; the parity wait then passes at once, reads the old unit
  // and miscounts the stage's release (2 x 4 warps with 6 stages hung on an
  // H200).
  static_assert(kStages % kKSplit == 0, "the stages a multiple of the K groups");
  constexpr int kConsumers = kRowWarps * kKSplit;
  constexpr int kWBytes = kRowWarps * 16 * T::kBox;  // a multiple of 256: keeps x 16-byte aligned
  constexpr int kCodes = kTiles * 2048, kDx = kTiles * 256, kSums = T::kMins ? kTiles * 1024 : 0;
  constexpr int kStage = MmaQ8G16WideStageBytes<kType, kTiles, kRowWarps>();
  static_assert(kStage % 128 == 0, "TMA destinations 128-byte aligned");
  static_assert(kKSplit == 1 || kConsumers * 32 * kTiles * 16 <= kStages * kStage, "the groups' sums fit the stages");
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((128 - detail::SmemAddr(smem_raw) % 128) % 128);
  const uint32_t full0 = detail::SmemAddr(smem + kStages * kStage), empty0 = full0 + 8 * kStages;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t units = cols / 256;
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      detail::MbarInit(full0 + 8 * i, 1);
      detail::MbarInit(empty0 + 8 * i, kRowWarps * 32);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (warp == kConsumers) {  // the producer
    if (lane == 0) {
      const int64_t x_unit = int64_t{kTiles} * 256;  // x's values of one unit: its 8-column tiles times 256
      const uint8_t* dx = ws + mmaq8g16::CodeBytes(kTiles, cols);
      const uint8_t* sums = dx + mmaq8g16::ScaleBytes(kTiles, cols);
      for (int64_t s = 0; s < units; ++s) {
        const int stage = static_cast<int>(s % kStages);
        if (s >= kStages) {
          detail::MbarWait(empty0 + 8 * stage, static_cast<uint32_t>(s / kStages - 1) & 1);
          detail::FenceProxyAsync();
        }
        const uint32_t full = full0 + 8 * stage, dst = detail::SmemAddr(smem + stage * kStage);
        detail::MbarExpectTx(full, kCodes + kDx + kSums + kWBytes);
        // The weights are final before this grid starts (see the kernel
        // above); x's codes only once the x kernel has ended.
        detail::TmaLoad2d(dst, &wmap, detail::UnalignedBoxColumn(s * T::kBytes),
                          static_cast<int>(blockIdx.x) * kRowWarps * 16, full);
        if (s == 0) gemv::WaitForPreviousGrid();
        detail::BulkLoad(dst + kWBytes, ws + s * x_unit * 8, kCodes, full);
        detail::BulkLoad(dst + kWBytes + kCodes, dx + s * x_unit, kDx, full);
        if constexpr (T::kMins) detail::BulkLoad(dst + kWBytes + kCodes + kDx, sums + s * x_unit * 4, kSums, full);
      }
    }
    return;
  }
  const int g = lane / 4, t = lane % 4, rw = warp % kRowWarps, group = warp / kRowWarps;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRowWarps * 16 + rw * 16 + g, r1 = r0 + 8;
  float tot[kTiles / 2][2][4];
#pragma unroll
  for (int c = 0; c < kTiles / 2; ++c) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) tot[c][nt][0] = tot[c][nt][1] = tot[c][nt][2] = tot[c][nt][3] = 0.0f;
  }
  for (int64_t s = group; s < units; s += kKSplit) {
    const int stage = static_cast<int>(s % kStages);
    detail::MbarWait(full0 + 8 * stage, static_cast<uint32_t>(s / kStages) & 1);
    const uint8_t* st = smem + stage * kStage;
    const int skip = static_cast<int>(s * T::kBytes) & 15;  // the unit's start in the box
    typename T::Row r[2];
    mmaq8g16::ReadStageRows<kType>(st + rw * 16 * T::kBox, skip, g, t, r);
    const uint8_t* xs = st + kWBytes;
#pragma unroll
    for (int c = 0; c < kTiles / 2; ++c) {
      // One pair of tiles' loads at a time: unbounded, the compiler hoists
      // all of them.
      asm volatile("" ::: "memory");
      const auto xu = mmaq8g16::FetchX<2, T::kMins, false>(xs, xs + kCodes, xs + kCodes + kDx, 2 * c, lane);
      mmaq8g16::Consume<kType, 2>(r, xu, t, tot[c]);
    }
    // This lane is done with the stage (the producer waits for the stages
    // it refills only).
    if (s + kStages < units) detail::MbarArrive(empty0 + 8 * stage);
  }
  float* partial = reinterpret_cast<float*>(smem);  // [warp][lane][kTiles * 4], once every stage is read
  if constexpr (kKSplit > 1) {
    asm volatile("bar.sync 1, %0;\n" ::"r"(kConsumers * 32) : "memory");
#pragma unroll
    for (int c = 0; c < kTiles / 2; ++c) {
#pragma unroll
      for (int i = 0; i < 8; ++i) partial[(warp * 32 + lane) * kTiles * 4 + c * 8 + i] = tot[c][i / 4][i % 4];
    }
    asm volatile("bar.sync 1, %0;\n" ::"r"(kConsumers * 32) : "memory");
    if (group != 0) return;
  }
#pragma unroll
  for (int c = 0; c < kTiles / 2; ++c) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float v = tot[c][nt][i];
        if constexpr (kKSplit > 1) {
          for (int k = 1; k < kKSplit; ++k) {
            v += partial[((k * kRowWarps + rw) * 32 + lane) * kTiles * 4 + c * 8 + nt * 4 + i];
          }
        }
        const int64_t row = i < 2 ? r0 : r1, col = 8 * (2 * c + nt) + 2 * t + i % 2;
        if (row < rows && col < n) y[col * rows + row] = v;
      }
    }
  }
#else
  __trap();  // MmaQ8G16Fits keeps the launcher from getting here
#endif
}

// Whether it takes the TMA path: an sm_90 GPU with code for it, 16-byte
// aligned weights and rows (cols / 256 * kBytes a multiple of 16), fewer
// than 2^31 rows and row bytes.
template <QuantType kType>
__host__ bool MmaQ8G16TmaFits(const void* w, int64_t rows, int64_t cols) {
  const int64_t row_bytes = cols / 256 * mmaq8g16::G16Type<kType>::kBytes;
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0 || row_bytes % 16 != 0 || rows >= (int64_t{1} << 31) ||
      row_bytes >= (int64_t{1} << 31)) {
    return false;
  }
  return gemv::KernelRuns(MmaQ8G16Kernel<kType, 1, 8, 2, true, 2>, 9);
}

// Whether LaunchMmaQ8G16<kType> can run these arguments on the current
// device (see the requirements above).
template <QuantType kType>
__host__ bool MmaQ8G16Fits(const void* w, int64_t rows, int64_t cols, const void* x, int64_t n) {
  const uintptr_t wa = reinterpret_cast<uintptr_t>(w), xa = reinterpret_cast<uintptr_t>(x);
  if (n < 1 || n > mmaq8g16::kMaxN || rows < 1 || cols % 256 != 0 || wa % 2 != 0 || xa % 16 != 0) return false;
  if (n > 16) return MmaQ8G16TmaFits<kType>(w, rows, cols);  // the wide kernel
  return gemv::KernelRuns(MmaQ8G16Kernel<kType, 1, 8, 2, false, 2>, 8);
}

namespace mmaq8g16 {
// x -> the workspace for kTiles column tiles.
template <typename Act>
cudaError_t LaunchQuantizeX(int tiles, const Act* x, int64_t n, int64_t cols, uint8_t* workspace,
                            cudaStream_t stream) {
  const int64_t chunks = int64_t{8} * tiles * cols / 8;
  const unsigned blocks = static_cast<unsigned>((chunks + 255) / 256);
  switch (tiles) {
    case 1: QuantizeXKernel<Act, 1><<<blocks, 256, 0, stream>>>(x, n, cols, workspace); break;
    case 2: QuantizeXKernel<Act, 2><<<blocks, 256, 0, stream>>>(x, n, cols, workspace); break;
    case 4: QuantizeXKernel<Act, 4><<<blocks, 256, 0, stream>>>(x, n, cols, workspace); break;
    default: QuantizeXKernel<Act, 8><<<blocks, 256, 0, stream>>>(x, n, cols, workspace); break;
  }
  return cudaGetLastError();
}
// The weights' tensor map: rows x (cols / 256 * kBytes) bytes, a box of
// box_rows rows x kBox bytes (EncodeUnalignedBlocksMap: units start off
// 16-byte boundaries, and Q8_0's is 272 bytes).
template <QuantType kType>
cudaError_t WeightMap(CUtensorMap* map, const uint8_t* w, int64_t rows, int64_t cols, int box_rows) {
  const uint64_t row_bytes = static_cast<uint64_t>(cols / 256) * G16Type<kType>::kBytes;
  return EncodeUnalignedBlocksMap(map, w, rows, row_bytes, G16Type<kType>::kBox, box_rows);
}
}  // namespace mmaq8g16

// The wide kernel for 16 < n <= 64: rounds x into `workspace`
// (MmaQ8G16WorkspaceBytes(n, cols) bytes) and runs the product, a
// programmatic dependent of the x kernel. Preconditions: MmaQ8G16Fits and
// MmaQ8G16TmaFits<kType>. The defaults (4 consumer warps, 64 rows per CTA,
// no K split, 3 stages) were the fastest on an H200 for 28672 rows at n =
// 64; MatMul picks by type, rows and n (launch.cuh's LaunchMmaQ8G16WideFor).
// With a K split the stages are a multiple of the groups (the kernel asserts it).
template <QuantType kType, typename Act, int kRowWarps = 4, int kKSplit = 1, int kStages = 3, int kMinBlocks = 1>
cudaError_t LaunchMmaQ8G16Wide(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                               uint8_t* workspace, cudaStream_t stream) {
  const int tiles = mmaq8g16::ColumnTiles(n);
  if (tiles < 4) return cudaErrorInvalidValue;
  cudaError_t err = mmaq8g16::LaunchQuantizeX(tiles, x, n, cols, workspace, stream);
  if (err != cudaSuccess) return err;
  CUtensorMap wmap = {};
  if ((err = mmaq8g16::WeightMap<kType>(&wmap, w, rows, cols, kRowWarps * 16)) != cudaSuccess) return err;
  using Kernel = void (*)(CUtensorMap, int64_t, int64_t, const uint8_t*, int64_t, float*);
  Kernel kernel = MmaQ8G16WideKernel<kType, 8, kRowWarps, kKSplit, kStages, kMinBlocks>;
  int smem = MmaQ8G16WideSmemBytes<kType, 8, kRowWarps, kStages>();
  if (tiles == 4) {
    kernel = MmaQ8G16WideKernel<kType, 4, kRowWarps, kKSplit, kStages, kMinBlocks>;
    smem = MmaQ8G16WideSmemBytes<kType, 4, kRowWarps, kStages>();
  }
  if ((err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) != cudaSuccess) {
    return err;
  }
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config =
      gemv::LaunchConfig(static_cast<unsigned>((rows + kRowWarps * 16 - 1) / (kRowWarps * 16)),
                         (kRowWarps * kKSplit + 1) * 32, static_cast<size_t>(smem), stream, true, &attr);
  return cudaLaunchKernelEx(&config, kernel, wmap, rows, cols, static_cast<const uint8_t*>(workspace), n, y);
}

// Rounds x into `workspace` (MmaQ8G16WorkspaceBytes(n, cols) bytes) and runs
// the product: two kernels in `stream`, the second a programmatic dependent
// of the first. Preconditions: MmaQ8G16Fits<kType>. n > 16 takes
// LaunchMmaQ8G16Wide's defaults; to 16, this kernel, where kTma: use the
// TMA path where MmaQ8G16TmaFits (false: always the direct one). The
// defaults (8 warps per 16 rows, 2 stages, 2 CTAs per SM) were the fastest
// on an H200 for 4096 rows; from 16384 rows the library takes 4 warps, 2
// stages and 4 CTAs per SM (docs/cuda.md).
template <QuantType kType, typename Act, int kWarps = 8, int kStages = 2, int kMinBlocks = 2, bool kTma = true>
cudaError_t LaunchMmaQ8G16(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, int64_t n, float* y,
                           uint8_t* workspace, cudaStream_t stream) {
  if (n > 16) return LaunchMmaQ8G16Wide<kType, Act>(w, rows, cols, x, n, y, workspace, stream);
  const int tiles = mmaq8g16::ColumnTiles(n);
  cudaError_t err = mmaq8g16::LaunchQuantizeX(tiles, x, n, cols, workspace, stream);
  if (err != cudaSuccess) return err;
  const bool tma = kTma && MmaQ8G16TmaFits<kType>(w, rows, cols);
  CUtensorMap wmap = {};
  if (tma && (err = mmaq8g16::WeightMap<kType>(&wmap, w, rows, cols, 16)) != cudaSuccess) return err;
  using Kernel = void (*)(CUtensorMap, const uint8_t*, int64_t, int64_t, const uint8_t*, int64_t, float*);
  Kernel kernel = MmaQ8G16Kernel<kType, 1, kWarps, kStages, false, kMinBlocks>;
  int smem = MmaQ8G16SmemBytes<kType, 1, kWarps, kStages, false>();
  if (tiles == 1 && tma) {
    kernel = MmaQ8G16Kernel<kType, 1, kWarps, kStages, true, kMinBlocks>;
    smem = MmaQ8G16SmemBytes<kType, 1, kWarps, kStages, true>();
  } else if (tiles == 2 && tma) {
    kernel = MmaQ8G16Kernel<kType, 2, kWarps, kStages, true, kMinBlocks>;
    smem = MmaQ8G16SmemBytes<kType, 2, kWarps, kStages, true>();
  } else if (tiles == 2) {
    kernel = MmaQ8G16Kernel<kType, 2, kWarps, kStages, false, kMinBlocks>;
    smem = MmaQ8G16SmemBytes<kType, 2, kWarps, kStages, false>();
  }
  if ((err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) != cudaSuccess) {
    return err;
  }
  // A programmatic dependent of the x kernel on sm_90 (the TMA path's GPUs);
  // the direct path may run on sm_80, which lacks it.
  int dev = 0, major = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess ||
      (err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess) {
    return err;
  }
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = gemv::LaunchConfig(static_cast<unsigned>((rows + 15) / 16), kWarps * 32,
                                                       static_cast<size_t>(smem), stream, major >= 9, &attr);
  return cudaLaunchKernelEx(&config, kernel, wmap, w, rows, cols, static_cast<const uint8_t*>(workspace), n, y);
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_MMA_Q8_G16_CUH_
