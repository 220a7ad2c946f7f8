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
// dx and per super-block by d; the mins' term takes each group's sum of x
// codes times dx (made once per CTA) times dmin * m. So the result is the
// exact product of the dequantized weights with the dequantized x, up to f32
// accumulation:
//   |y - W x| <= sum_k |w_k| * dx(k) / 2  (+ f32 rounding).
// The tensor-core kernels (bq_matmul.cuh) keep x exact; pick them when that
// bound is too loose.
//
// Requirements: cols % 256 == 0; weights 16-byte aligned for Q4_K/Q5_K and
// the planar layout (bq_planar.cuh), else 4-byte aligned; x 16-byte aligned,
// f16 or bf16; GemvSmemBytes(n, cols) (about 1.6 * n * cols bytes) of shared
// memory.
#ifndef BLOCKQUANT_CUDA_BQ_GEMV_CUH_
#define BLOCKQUANT_CUDA_BQ_GEMV_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "bq_decode.cuh"
#include "bq_planar.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace gemv {

// Exact int -> float for |v| < 2^22 on the full-rate pipes (the hardware
// conversion runs at a quarter of the rate): 1.5 * 2^23 + v, then subtract.
__device__ __forceinline__ float SmallIntToFloat(int v) {
  return __int_as_float(0x4B400000 + v) - 12582912.0f;
}

// dp4a of unsigned bytes a with signed bytes b: codes masked in place (up to
// 0xC0) against x codes.
__device__ __forceinline__ int Dp4aUS(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

__device__ __forceinline__ uint4 Load16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint32_t Load4(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned int*>(p));
}
__device__ __forceinline__ uint32_t Load2(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned short*>(p));
}

// kWords little-endian words of a field that starts 2-byte aligned in a
// buffer that starts 4-byte aligned, in two steps so that the loads can be
// issued long before the words are needed: FetchEven loads aligned words
// (w) and the aligned word that holds the field's last two bytes (tail);
// AlignEven shifts them into place with one byte permute each (sel: 0x3210
// when the field is 4-byte aligned, 0x5432 when it is not). Branch-free:
// lanes of one warp see both alignments.
template <int kWords>
struct EvenWords {
  uint32_t w[kWords];
  uint32_t tail;
  unsigned sel;
};
__device__ __forceinline__ uint32_t LowBits2(const uint8_t* p) {
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) & 2u;
}
// A field anywhere: the tail is a 16-bit load of its last two bytes (zero
// when it is 4-byte aligned), so nothing past the field is read.
template <int kWords>
__device__ __forceinline__ EvenWords<kWords> FetchEven(const uint8_t* p) {
  const uint32_t lo = LowBits2(p);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{3});
  EvenWords<kWords> r;
  r.sel = 0x3210u + 0x1111u * lo;
#pragma unroll
  for (int k = 0; k < kWords; ++k) r.w[k] = Load4(base + 4 * k);
  r.tail = lo ? Load2(p + 4 * kWords - 2) : 0u;
  return r;
}
// Fields of one unit whose offsets are multiples of 4 share its alignment:
// EvenUnit holds what they share, so each field costs only its loads.
struct EvenUnit {
  const uint8_t* base;  // the unit's start rounded down to 4 bytes
  const uint8_t* tail;  // base, or base + 4 when the unit is not 4-byte aligned
  unsigned sel;
};
__device__ __forceinline__ EvenUnit MakeEvenUnit(const uint8_t* u) {
  const uint32_t lo = LowBits2(u);
  return {u - lo, u + lo, 0x3210u + 0x1111u * lo};
}
// The field at unit offset off (a multiple of 4). The tail is a whole word:
// w[kWords - 1] again when the unit is 4-byte aligned, else the word after
// it, whose last two bytes follow the field. Only for fields followed by at
// least two more bytes of the unit.
template <int kWords>
__device__ __forceinline__ EvenWords<kWords> FetchEven(const EvenUnit& e, int off) {
  EvenWords<kWords> r;
  r.sel = e.sel;
#pragma unroll
  for (int k = 0; k < kWords; ++k) r.w[k] = Load4(e.base + off + 4 * k);
  r.tail = Load4(e.tail + off + 4 * (kWords - 1));
  return r;
}
template <int kWords>
__device__ __forceinline__ void AlignEven(const EvenWords<kWords>& r, uint32_t* out) {
#pragma unroll
  for (int k = 0; k < kWords; ++k) out[k] = __byte_perm(r.w[k], k + 1 < kWords ? r.w[k + 1] : r.tail, r.sel);
}
// A field that starts kWords * 4-byte aligned (the planar layout), as the
// EvenWords AlignEven takes: one wide load, and a selector that leaves the
// words as they are (the byte permutes fold away).
template <int kWords>
__device__ __forceinline__ EvenWords<kWords> FetchAligned(const uint8_t* p) {
  static_assert(kWords == 2 || kWords == 4, "one 8- or 16-byte load");
  EvenWords<kWords> r;
  r.sel = 0x3210u;
  if constexpr (kWords == 4) {
    const uint4 v = Load16(p);
    r.w[0] = v.x;
    r.w[1] = v.y;
    r.w[2] = v.z;
    r.w[3] = v.w;
  } else {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    r.w[0] = v.x;
    r.w[1] = v.y;
  }
  r.tail = r.w[kWords - 1];
  return r;
}
// Bytes c, 2 + c, 4 + c, 6 + c of the 8 bytes lo, hi (c = 0 or 1): the
// scales of a Q2_K/Q3_K lane, groups 2s + c of its half, s = 0..3.
__device__ __forceinline__ uint32_t LaneScaleBytes(uint32_t lo, uint32_t hi, int c) {
  return __byte_perm(lo, hi, c ? 0x7531u : 0x6420u);
}
// Byte s of v, zero-extended: one byte permute.
template <int s>
__device__ __forceinline__ int ByteU(uint32_t v) {
  return static_cast<int>(__byte_perm(v, 0, 0x4440u + s));
}

// a / 127 and 127 / b rounded to nearest as IEEE division (div.rn) rounds
// them, without its range check and the call to a slow path behind it: that
// branch made every chunk of the x prologue wait for the one before. The
// quotient a * (1/127) is corrected once by its exact residual (Markstein);
// 127 / b is the fast path that div.rn takes (an approximate reciprocal, one
// Newton step, the same correction), with b scaled by 2^(-/+)64 into the
// range where that path is exact, and the result scaled back (exactly: it
// stays normal). The device tests compare both with div.rn for every finite
// a >= 0 and every b >= 2^-121.
__device__ __forceinline__ float DivBy127(float a) {
  constexpr float kInv127 = 1.0f / 127.0f;
  const float q = __fmul_rn(a, kInv127);
  return __fmaf_rn(__fmaf_rn(-127.0f, q, a), kInv127, q);
}
__device__ __forceinline__ float Div127By(float b) {
  const float s = b < 0x1p-64f ? 0x1p64f : (b >= 0x1p64f ? 0x1p-64f : 1.0f);
  const float bs = __fmul_rn(b, s);
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(bs));
  y = __fmaf_rn(y, __fmaf_rn(-bs, y, 1.0f), y);
  const float q = __fmul_rn(127.0f, y);
  return __fmul_rn(__fmaf_rn(__fmaf_rn(-bs, q, 127.0f), y, q), s);
}

// A 32-block's scale max / 127, and the inverse 127 / max that rounds it
// (0 below 2^-121, where it would overflow), as div.rn gives them;
// kBranchFree: through DivBy127 and Div127By.
template <bool kBranchFree>
__device__ __forceinline__ float ScaleOf(float amax) {
  if constexpr (kBranchFree) return DivBy127(amax);
  return amax / 127.0f;
}
template <bool kBranchFree>
__device__ __forceinline__ float InverseScaleOf(float amax) {
  if constexpr (kBranchFree) {
    const float r = Div127By(fmaxf(amax, 0x1p-121f));  // computed either way: a select, not a branch
    return amax >= 0x1p-121f ? r : 0.0f;
  }
  return amax >= 0x1p-121f ? 127.0f / amax : 0.0f;
}
// The f32 bits of f * inv + 1.5 * 2^23: the low byte is the code rint(f *
// inv) (ties to even, as cvt.rni), and count of them sum to the codes' sum
// plus count * kRintBias. Two roundings, as x * inv then cvt.rni: no fused
// multiply-add.
constexpr uint32_t kRintBias = 0x4B400000u;  // the bits of 1.5 * 2^23
__device__ __forceinline__ uint32_t RintBits(float f, float inv) {
  return __float_as_uint(__fadd_rn(__fmul_rn(f, inv), 12582912.0f));
}
// The low bytes of four RintBits, in order, as one word of codes.
__device__ __forceinline__ uint32_t PackLowBytes(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return __byte_perm(__byte_perm(a, b, 0x0040u), __byte_perm(c, d, 0x0040u), 0x5410u);
}

// Rounds one 32-block of x that 4 consecutive lanes hold, 8 values each
// (f): returns the block's scale dx = max|x| / 127, and the lane's codes
// rint(x / dx) in [-127, 127], 4 to a word, and their sum. fmaxf drops NaN,
// so a poison term (the sum of f * 0) makes dx NaN when the block holds a
// NaN or Inf: it then reaches every output of the column.
// Every CTA of gemv_q8 rounds all of x before it reads a weight, so this is
// on each call's critical path: each code is RintBits' low byte, t + 1.5 *
// 2^23 (t = x * 127 / max|x|, |t| <= 127 + rounding) rounded to an integer,
// ties to even, as cvt.rni does, in one full-rate add instead of a
// quarter-rate conversion; the bytes pack with byte permutes. Blocks with
// max|x| < 2^-121 (bf16 only) round to zero codes: 127 / max|x| would
// overflow there. kBranchFree: as in ScaleOf (the same values; see
// GemvQ8Kernel for which kernels take which).
template <bool kBranchFree = true>
__device__ __forceinline__ float RoundBlockOf32(const float* f, uint32_t* packed, int* qsum) {
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
  const float d = ScaleOf<kBranchFree>(amax) + poison;
  const float inv = InverseScaleOf<kBranchFree>(amax);
  uint32_t bits[8];
  uint32_t sum = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    bits[i] = RintBits(f[i], inv);
    sum += bits[i];
  }
  *qsum = static_cast<int>(sum - 8u * kRintBias);
  packed[0] = PackLowBytes(bits[0], bits[1], bits[2], bits[3]);
  packed[1] = PackLowBytes(bits[4], bits[5], bits[6], bits[7]);
  return d;
}

__device__ __forceinline__ float HalfBits(uint32_t bits16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16 & 0xFFFFu)));
}

// What one lane holds of one 256-element unit (a super-block, or 8 legacy
// blocks) when kLanes lanes share it: 256 / kLanes codes, 4 to a word, as
// kSegs segments of contiguous elements inside one 32-block of x, each with
// integer factors. Element value:
//   D * sc * (u - kOffset)          (kMinKind 0: kOffset 0; 2: kOffset > 0)
//   D * sc * u - F * m_g             (kMinKind 1, m_g the element's group min)
// The mins' term, F * sum_g m_g * (sum of x over group g), is not summed per
// segment: each lane takes the (256 / kLanes) / kGroupElems whole groups of
// its type's kGroupElems elements that start at group g0, against group sums
// of x made once per CTA.
template <int kSegs, int kLanes = 8>
struct LanePart {
  uint32_t q[64 / kLanes];
  int xoff[kSegs];  // element offset of each segment inside the unit
  int sc[kSegs];
  int mg[16 / kLanes], g0;  // kMinKind 1: the lane's groups' mins, its first group
  float D, F;
};

// Per type: kLanes, the lanes that share a unit (8, or 4 where a lane's
// scales, loads and conversions then serve twice the weights); Raw, the
// lane's bytes of one unit as loaded; Fetch(unit, j) issues the loads of
// lane j (0..kLanes - 1); Decode(raw, j, part) turns them into a Part.
// kSegmentDot: the type's SegmentDot(part, s, x codes) gives segment s's
// exact integer product, from code words of its own layout in part.q;
// otherwise part.q holds one code per byte and the kernel sums their dp4a.
// The kernel issues a whole batch's Fetches before it decodes any of them.
// (Fetching the next batch while using this one was slower on an H200: the
// extra live registers and loop logic cost more than the overlap.)
// kTailBatches: a row's last units (fewer than a batch) are fetched in
// batches of 4, 2, 1 rather than one at a time. H200, n = 1, 4096 x 14336
// (14 units per lane group): Q4_K 15.4 -> 14.6 us, Q5_K 18.2 -> 17.0, Q2_K
// 14.3 -> 13.4, Q4_0 16.3 -> 15.9 (8 lanes per unit); Q3_K (4 lanes) 15.9 ->
// 15.4, and 41.3 -> 39.6 at 28672 x 8192. Q6_K gained 2-3% there but lost
// 3-5% at 28672 x 8192, where no row has a tail (the extra code changed its
// main loop's schedule), and Q8_0 gained nothing.
template <QuantType kType>
struct Lane;

// Q4_K: 8 lanes read 16 code bytes each (both nibbles used: elements l of
// groups 2c and 2c+1), header broadcast.
template <>
struct Lane<QuantType::kQ4_K> {
  static constexpr int kLanes = 8;
  using Part = LanePart<2, kLanes>;
  static constexpr int kUnitBytes = 144, kSegs = 2, kMinKind = 1, kOffset = 0, kWeightAlign = 16, kHalfShift = 32;
  static constexpr bool kTailBatches = true;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 32;  // lane j: group j's min
  struct Raw {
    uint4 h, qs;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) { return {Load16(u), Load16(u + 16 + 16 * j)}; }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    Finish(r.h, r.qs, make_uint4(0, 0, 0, 0), j, 0, p);
  }
  // Shared with Q5_K: qh holds the fifth bits (bit 2c / 2c+1 of each byte).
  __device__ static void Finish(uint4 h, uint4 qs, uint4 qh, int j, int fifth, Part* p) {
    const int c = j / 2, l0 = 16 * (j % 2);
    uint32_t scw[2], mw[2];
    UnpackScaleMinK4x8(h.y, h.z, h.w, scw, mw);
    const int g0 = 2 * c, g1 = 2 * c + 1;
    // Selects, not scw[c / 2]: a runtime index would put the arrays in local memory.
    const uint32_t sw = c < 2 ? scw[0] : scw[1];
    p->sc[0] = (sw >> (8 * (g0 % 4))) & 0xFF;
    p->sc[1] = (sw >> (8 * (g1 % 4))) & 0xFF;
    p->mg[0] = ((j < 4 ? mw[0] : mw[1]) >> (8 * (j % 4))) & 0xFF;
    p->g0 = j;
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
  static constexpr int kLanes = 8;
  using Part = LanePart<2, kLanes>;
  static constexpr int kUnitBytes = 176, kSegs = 2, kMinKind = 1, kOffset = 0, kWeightAlign = 16, kHalfShift = 32;
  static constexpr bool kTailBatches = true;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 32;
  struct Raw {
    uint4 h, qh, qs;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    return {Load16(u), Load16(u + 16 + 16 * (j % 2)), Load16(u + 48 + 16 * j)};
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    Lane<QuantType::kQ4_K>::Finish(r.h, r.qs, r.qh, j, 1, p);
  }
};

// Q6_K: 8 lanes per unit; lane j takes bytes l0 .. l0 + 7 (l0 = 8 * (j % 4))
// of half h = j / 4, each of whose bit fields is one segment of 8. (Q2_K's
// and Q3_K's layout of 4 lanes was not faster here: 28672 x 8192 60.4 vs
// 59.2 us, 4096 x 14336 22.5 vs 21.5.)
template <>
struct Lane<QuantType::kQ6_K> {
  static constexpr int kLanes = 8;
  using Part = LanePart<4, kLanes>;
  static constexpr int kUnitBytes = 210, kSegs = 4, kMinKind = 2, kOffset = 32, kWeightAlign = 4, kHalfShift = 32;
  static constexpr bool kTailBatches = false;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 0;  // no mins' term
  struct Raw {
    EvenWords<2> qa, qb, qh, sc;
    uint32_t d;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    const int h = j / 4, l0 = 8 * (j % 4);
    const EvenUnit e = MakeEvenUnit(u);
    return {FetchEven<2>(e, 64 * h + l0), FetchEven<2>(e, 64 * h + 32 + l0), FetchEven<2>(e, 128 + 32 * h + l0),
            FetchEven<2>(e, 192 + 8 * h), Load2(u + 208)};
  }
  // Planar layout (bq_planar.cuh): lane j's ql bytes are codes 16j ..
  // 16j + 15, its qh bytes codes 128 + 8j .. + 7.
  __device__ static Raw FetchPlanar(const uint8_t* code, const uint8_t* scale, const uint8_t* d, int j) {
    const EvenWords<4> ab = FetchAligned<4>(code + 16 * j);
    Raw r;
    r.qa = {{ab.w[0], ab.w[1]}, ab.w[1], ab.sel};
    r.qb = {{ab.w[2], ab.w[3]}, ab.w[3], ab.sel};
    r.qh = FetchAligned<2>(code + 128 + 8 * j);
    r.sc = FetchAligned<2>(scale + 8 * (j / 4));
    r.d = Load2(d);
    return r;
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    const int l0 = 8 * (j % 4), h = j / 4;
    uint32_t qa[2], qb[2], qh[2], sc[2];
    AlignEven(r.qa, qa);
    AlignEven(r.qb, qb);
    AlignEven(r.qh, qh);
    AlignEven(r.sc, sc);
    p->D = p->F = HalfBits(r.d);
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
      p->xoff[s] = 128 * h + 32 * s + l0;
    }
  }
};

// Q2_K and Q3_K: 4 lanes per unit; lane j takes bytes l0 .. l0 + 15
// (l0 = 16 * (j % 2)) of half h = j / 2, whose bit fields are 4 segments of
// 16, one group each: elements 128 h + 32 s + l0 .., group 8 h + 2 s + c
// (c = j % 2), s = 0..3. H200, n = 1, us, against 8 lanes of 8 bytes each
// (best setting of each): 28672 x 8192 Q3_K 49.6 -> 39.6 (with its offset
// folded), Q2_K 30.8 -> 27.1; 4096 x 14336 Q3_K 17.9 -> 15.4, Q2_K 13.4 ->
// 12.8.
template <>
struct Lane<QuantType::kQ2_K> {
  static constexpr int kLanes = 4;
  using Part = LanePart<4, kLanes>;
  static constexpr int kUnitBytes = 84, kSegs = 4, kMinKind = 1, kOffset = 0, kWeightAlign = 4, kHalfShift = 32;
  static constexpr bool kTailBatches = true;
  static constexpr int kGroupElems = 16;  // lane j: groups 4j .. 4j + 3
  static constexpr bool kSegmentDot = true;
  struct Raw {
    uint32_t qs[4], sc[2], dd;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    const uint8_t* q = u + 16 + 32 * (j / 2) + 16 * (j % 2);
    const uint8_t* sc = u + 8 * (j / 2);
    return {{Load4(q), Load4(q + 4), Load4(q + 8), Load4(q + 12)}, {Load4(sc), Load4(sc + 4)}, Load4(u + 80)};
  }
  // Planar layout (bq_planar.cuh): qs, scales and d, dmin in GGUF order.
  __device__ static Raw FetchPlanar(const uint8_t* code, const uint8_t* scale, const uint8_t* d, int j) {
    const uint4 q = Load16(code + 16 * j);
    const uint2 sc = __ldg(reinterpret_cast<const uint2*>(scale + 8 * (j / 2)));
    return {{q.x, q.y, q.z, q.w}, {sc.x, sc.y}, Load4(d)};
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    const int h = j / 2, c = j % 2;
    p->D = HalfBits(r.dd);
    p->F = HalfBits(r.dd >> 16);
#pragma unroll
    for (int k = 0; k < 4; ++k) p->q[k] = r.qs[k];  // all four segments' codes (SegmentDot)
#pragma unroll
    for (int s = 0; s < 4; ++s) p->xoff[s] = 128 * h + 32 * s + 16 * c;
    const uint32_t scb = LaneScaleBytes(r.sc[0], r.sc[1], c) & 0x0F0F0F0Fu;  // the scales' nibbles
    p->sc[0] = ByteU<0>(scb);
    p->sc[1] = ByteU<1>(scb);
    p->sc[2] = ByteU<2>(scb);
    p->sc[3] = ByteU<3>(scb);
    // Groups 4j .. 4j + 3 are the bytes of word c of this half's scales:
    // a select, not r.sc[c] (see Lane<kQ4_K>).
    const uint32_t mw = (c ? r.sc[1] : r.sc[0]) >> 4;
    p->mg[0] = mw & 0xF;
    p->mg[1] = (mw >> 8) & 0xF;
    p->mg[2] = (mw >> 16) & 0xF;
    p->mg[3] = (mw >> 24) & 0xF;
    p->g0 = 4 * j;
  }
  // Segment s is bits 2s, 2s + 1 of each code byte. Masked in place, not
  // shifted down, its dp4a sum is exactly 4^s times its product: one shift
  // of the sum instead of one per word (same bits). H200, n = 1, 28672 x
  // 8192: 26.8 -> 26.0 us, planar 25.2 -> 24.6. Q3_K the same way (its high
  // bit as a second masked dp4a) gained 1% planar, lost 1% on GGUF blocks
  // and 13% at n = 3 (54.3 -> 61.3 us), so it keeps its folded codes.
  __device__ static int SegmentDot(const Part& p, int s, const uint32_t* xv) {
    int a = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) a = Dp4aUS(p.q[k] & (0x03030303u << (2 * s)), xv[k], a);
    return a >> (2 * s);
  }
};

template <>
struct Lane<QuantType::kQ3_K> {
  static constexpr int kLanes = 4;
  using Part = LanePart<4, kLanes>;
  // The offset of 4 is folded into the codes (signed bytes u - 4), so no
  // sums of x against it.
  static constexpr int kUnitBytes = 110, kSegs = 4, kMinKind = 0, kOffset = 0, kWeightAlign = 4, kHalfShift = 32;
  static constexpr bool kTailBatches = true;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 0;  // no mins' term
  struct Raw {
    EvenWords<4> qs, hm;
    EvenWords<3> sb;
    uint32_t d;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    const int h = j / 2, l0 = 16 * (j % 2);
    const EvenUnit e = MakeEvenUnit(u);
    return {FetchEven<4>(e, 32 + 32 * h + l0), FetchEven<4>(e, l0), FetchEven<3>(e, 96), Load2(u + 108)};
  }
  // Planar layout (bq_planar.cuh): hmask and qs, scales and d in GGUF order.
  __device__ static Raw FetchPlanar(const uint8_t* code, const uint8_t* scale, const uint8_t* d, int j) {
    Raw r;
    r.qs = FetchAligned<4>(code + 32 + 16 * j);
    r.hm = FetchAligned<4>(code + 16 * (j % 2));
    r.sb.sel = 0x3210u;
#pragma unroll
    for (int k = 0; k < 3; ++k) r.sb.w[k] = Load4(scale + 4 * k);
    r.sb.tail = r.sb.w[2];
    r.d = Load2(d);
    return r;
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    const int h = j / 2, c = j % 2;
    uint32_t qs[4], hm[4], sb[3];
    AlignEven(r.qs, qs);
    AlignEven(r.hm, hm);
    AlignEven(r.sb, sb);
    p->D = p->F = HalfBits(r.d);
    // Code bit 2 of segment s is bit 4h + s of each hmask byte.
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t hb = hm[k] >> (4 * h);
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const uint32_t high = (s < 2 ? hb << (2 - s) : hb >> (s - 2)) & 0x04040404u;
        // u - 4 = low bits | (high bit ? 0 : 0xFC) as a signed byte; 4 * 0x3F
        // = 0xFC does not carry into the next byte.
        p->q[4 * s + k] = ((qs[k] >> (2 * s)) & 0x03030303u) | ((high ^ 0x04040404u) * 0x3Fu);
      }
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) p->xoff[s] = 128 * h + 32 * s + 16 * c;
    // The 6-bit scales S_g of groups g = 8h + 2s + c, s = 0..3 (FORMATS.md),
    // four at once: the low nibble is nibble h of byte 2s + c of sb[0..1];
    // the top two bits are bits 4h + 2 (s / 2) of byte (2s + c) % 4 of sb[2].
    const uint32_t low = (LaneScaleBytes(sb[0], sb[1], c) >> (4 * h)) & 0x0F0F0F0Fu;
    const uint32_t top = __byte_perm(sb[2], 0, c ? 0x3131u : 0x2020u) >> (4 * h);  // bytes c, 2 + c, c, 2 + c
    const uint32_t packed = low | (((top & 0x00000303u) | ((top >> 2) & 0x03030000u)) << 4);
    p->sc[0] = ByteU<0>(packed) - 32;
    p->sc[1] = ByteU<1>(packed) - 32;
    p->sc[2] = ByteU<2>(packed) - 32;
    p->sc[3] = ByteU<3>(packed) - 32;
  }
};

// Legacy blocks: lane j takes block j of the unit's eight.
template <>
struct Lane<QuantType::kQ8_0> {
  static constexpr int kLanes = 8;
  using Part = LanePart<1, kLanes>;
  static constexpr int kUnitBytes = 8 * 34, kSegs = 1, kMinKind = 0, kOffset = 0, kWeightAlign = 4, kHalfShift = 16;
  static constexpr bool kTailBatches = false;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 0;  // no mins' term
  struct Raw {
    uint32_t d;
    EvenWords<8> q;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    const uint8_t* b = u + 34 * j;
    return {Load2(b), FetchEven<8>(b + 2)};
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    p->D = p->F = HalfBits(r.d);
    AlignEven(r.q, p->q);
    p->sc[0] = 1;
    p->xoff[0] = 32 * j;
  }
};

template <>
struct Lane<QuantType::kQ4_0> {
  static constexpr int kLanes = 8;
  using Part = LanePart<1, kLanes>;
  static constexpr int kUnitBytes = 8 * 18, kSegs = 1, kMinKind = 2, kOffset = 8, kWeightAlign = 4, kHalfShift = 16;
  static constexpr bool kTailBatches = true;
  static constexpr bool kSegmentDot = false;
  static constexpr int kGroupElems = 0;  // no mins' term
  struct Raw {
    uint32_t d;
    EvenWords<4> q;
  };
  __device__ static Raw Fetch(const uint8_t* u, int j) {
    const uint8_t* b = u + 18 * j;
    return {Load2(b), FetchEven<4>(b + 2)};
  }
  __device__ static void Decode(const Raw& r, int j, Part* p) {
    p->D = p->F = HalfBits(r.d);
    uint32_t w[4];
    AlignEven(r.q, w);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      p->q[k] = w[k] & 0x0F0F0F0Fu;
      p->q[4 + k] = (w[k] >> 4) & 0x0F0F0F0Fu;
    }
    p->sc[0] = 1;
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

// RoundBlockOf32's rounding for a 32-block that one thread holds whole (raw:
// its 32 values of x as loaded): no shuffles, one pair of divisions per
// block instead of one per 8 values, the same dx, codes and code sums
// (qsum: codes 0-15 and 16-31).
template <typename Act>
__device__ __forceinline__ float RoundWholeBlock(const uint4 (&raw)[4], uint32_t (&packed)[8], int (&qsum)[2]) {
  float f[32];
#pragma unroll
  for (int k = 0; k < 4; ++k) ActToFloat8<Act>(raw[k], f + 8 * k);
  float m[4] = {0.0f, 0.0f, 0.0f, 0.0f}, p[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // 4 chains, not one 32 long
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    m[i % 4] = fmaxf(m[i % 4], fabsf(f[i]));
    p[i % 4] += f[i] * 0.0f;
  }
  const float amax = fmaxf(fmaxf(m[0], m[1]), fmaxf(m[2], m[3]));
  const float d = ScaleOf<true>(amax) + ((p[0] + p[1]) + (p[2] + p[3]));
  const float inv = InverseScaleOf<true>(amax);
  uint32_t bits[32];
  uint32_t sum[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    bits[i] = RintBits(f[i], inv);
    sum[i / 16] += bits[i];
  }
  qsum[0] = static_cast<int>(sum[0] - 16u * kRintBias);
  qsum[1] = static_cast<int>(sum[1] - 16u * kRintBias);
#pragma unroll
  for (int w = 0; w < 8; ++w) packed[w] = PackLowBytes(bits[4 * w], bits[4 * w + 1], bits[4 * w + 2], bits[4 * w + 3]);
  return d;
}

// The mma_q8 kernels' x rounding: thread idx's 8 values of n columns of
// cols values (idx over columns padded to whole 8-column tiles; zeros past
// n), rounded per 32-block as RoundBlockOf32 does (every lane of the warp
// must call it). *col, *e: the values' column and first index in it.
template <typename Act>
__device__ __forceinline__ float RoundXChunk(const Act* __restrict__ x, int64_t n, int64_t cols, int64_t idx,
                                             int64_t* col, int64_t* e, uint32_t* packed, int* qsum) {
  *col = idx / (cols / 8);
  *e = 8 * (idx % (cols / 8));
  const uint4 raw = *col < n ? __ldg(reinterpret_cast<const uint4*>(x + *col * cols + *e)) : make_uint4(0, 0, 0, 0);
  float f[8];
  ActToFloat8<Act>(raw, f);
  return RoundBlockOf32(f, packed, qsum);
}

// x codes in shared memory: each 256-element unit takes kXUnitStride bytes,
// its second half kHalfShift bytes further in. Lanes read 8/16-byte pieces at
// offsets fixed by the weight layout, and in one request the four lane
// groups read four consecutive units at the same offsets: a stride of 64 mod
// 128 bytes and the per-type half shift put those pieces in distinct banks
// (unpadded, up to 8 lanes hit one bank). With 4 lanes per unit, eight
// groups read eight units; their 16-byte pieces are served 8 lanes (two
// units) at a time, and those land in distinct banks too.
constexpr int kXUnitStride = 320;
__host__ __device__ constexpr int XPhys(int e, int half_shift) { return e + (e >= 128 ? half_shift : 0); }

// Programmatic dependent launch (sm_90): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start before the
// previous kernel in its stream has finished; WaitForPreviousGrid holds it
// until that kernel's writes are visible. Both are no-ops otherwise.
__device__ __forceinline__ void WaitForPreviousGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void AllowNextGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// A launch configuration for cudaLaunchKernelEx; with `dependent` set, the
// kernel is a programmatic dependent of the previous kernel in `stream`
// (sm_90: it may start before that kernel ends, and must call
// WaitForPreviousGrid before reading what that kernel wrote). `attr` must
// outlive the launch call.
inline cudaLaunchConfig_t LaunchConfig(unsigned grid, unsigned block, size_t smem, cudaStream_t stream,
                                       bool dependent, cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(block);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr->val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = dependent ? 1 : 0;
  return config;
}

// Whether this binary has code for `kernel` and the current GPU runs it:
// compute capability major >= min_major, and PTX of that version (a build
// without it has an empty kernel). A failed query clears its error, so that
// it does not surface at the next call.
template <class Kernel>
__host__ bool KernelRuns(Kernel kernel, int min_major) {
  int dev = 0, major = 0;
  cudaFuncAttributes attr;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major >= min_major && attr.ptxVersion >= 10 * min_major;
}

// n = 1 on tall matrices: a third CTA per SM (registers capped at 80) hides
// more of the weights' latency once every warp has many rows to stream; on
// shorter ones the third CTA's extra x prologue and the tighter registers
// cost more than that. H200, f16 x, u4, 2 against 3 CTAs per SM: 28672 x
// 8192 Q4_K 37.3 vs 34.7 us, Q5_K 45.2 vs 43.7, Q2_K 34.0 vs 32.2, Q8_0 63.3
// vs 61.9; 16384 x 4096 Q4_K 14.2 vs 13.7; 14336 x 4096 even; 8192 x 8192
// Q4_K 13.8 vs 14.2; 4096 x 14336 15.5 vs 16.5. Q3_K (4 lanes per unit)
// 41.0 vs 39.6; Q6_K only with 8 units in flight (below). Q4_0 gains
// nothing (28672 x 8192 36.8 both, 16384 x 4096 14.0 both) and keeps 2.
template <QuantType kType>
__host__ __device__ constexpr bool TallGemvPaysOff() {
  return kType != QuantType::kQ4_0;
}
constexpr int64_t kTallGemvRows = 16384;
// The tall launch's CTA: 8 warps, 3 CTAs per SM (24 warps), except planar
// Q3_K: 12 warps, 2 CTAs per SM (24 warps, the same 80 registers; two x
// prologues per SM instead of three, and kWholeBlocks rounding). H200,
// scratch driver, every output the library's bits, six alternating rounds,
// medians, us: planar Q3_K 28672 x 8192 32.22 -> 31.58 and 33.02 -> 32.43
// (two machines), 16384 x 4096 12.86 -> 12.50, 20480 x 14336 42.73 -> 40.95;
// the whole bench, 32.1 -> 31.8 (the old setting as a variant row). 12 x 2
// lost or tied for the other types (28672 x 8192: planar Q2_K 23.50 -> 23.95,
// Q4_K 34.02 -> 34.16, Q3_K 39.94 -> 42.02, Q5_K 43.85 -> 44.45, Q2_K 25.49
// -> 25.69, Q8_0 62.56 -> 62.78); one CTA of 24 warps (one x prologue per SM)
// lost for every type (planar Q2_K 25.46, Q4_K 35.51, Q8_0 63.74 against
// 61.04), and 6 x 4 or 4 x 6 for planar Q3_K and Q2_K.
constexpr int kTallGemvWarpsPerSm = 24;
template <QuantType kType>
__host__ __device__ constexpr int TallGemvWarps(bool planar) {
  return planar && kType == QuantType::kQ3_K ? 12 : 8;
}
// CTAs per SM: whatever fills the SM's 24 warps with CTAs of that size.
template <QuantType kType>
__host__ __device__ constexpr int TallGemvMinBlocks(bool planar) {
  return kTallGemvWarpsPerSm / TallGemvWarps<kType>(planar);
}
// Units in flight per lane (LaunchGemvQ8's default: tall false), H200, us.
// 8-lane types, 28672 x 8192, 4 against 2: Q4_K n = 1 37.2 vs 38.5, n = 2
// 44.6 vs 51.6, n = 3 55.1 vs 59.8; Q6_K n = 1 58.2 vs 63.6; Q5_K n = 2 57.0
// vs 59.9; Q8_0 equal. At n = 4 the registers would not hold 4.
// 4-lane types load twice the bytes per unit and lane, so they take 2: n =
// 2, 3 u2 even with u4 or up to 3% faster (Q3_K n = 3 61.4 vs 62.9; u4
// spills there); n = 1, 4096 x 14336, Q3_K 15.4 vs 16.6, Q2_K 12.8 both.
// The tall launch (n = 1) takes 4, Q6_K 8: 28672 x 8192, Q2_K u4 27.1, u2
// 28.4, u8 27.1; Q3_K u4 39.6, u2 40.6; Q6_K u8 56.0-56.8, u4 58.5-59.5
// (u4 with 2 CTAs: 58.1-58.7).
// Planar Q3_K (n = 1) takes twice that: 28672 x 8192 u8 32.4 us, u4 34.4;
// 4096 x 14336 (2 CTAs) u4 14.3, u2 14.7. Planar Q2_K and Q6_K were best at
// their GGUF settings.
template <QuantType kType>
__host__ __device__ constexpr int GemvUnroll(int n, bool tall, bool planar = false) {
  if (planar && kType == QuantType::kQ3_K && n == 1) return tall ? 8 : 4;
  if (n == 1 && tall) return kType == QuantType::kQ6_K ? 8 : 4;
  if (Lane<kType>::kLanes == 4) return 2;
  return n <= 3 ? 4 : 2;
}

// Columns of x one GemvQ8Kernel launch takes (its accumulators live in
// registers); the host API runs more in passes of up to this many.
constexpr int kGemvMaxColumns = 4;

// Shared memory of GemvQ8Kernel: n * cols / 256 padded units of codes, then
// n * cols / 32 scales, then up to n * cols / 16 group sums of x.
__host__ __device__ constexpr int64_t GemvSmemBytes(int64_t n, int64_t cols) {
  return n * (cols / 256) * kXUnitStride + n * cols / 8 + n * cols / 4;
}

}  // namespace gemv

// kWarps warps per CTA; each warp takes whole rows (grid-stride), its lanes in
// groups of Lane<kType>::kLanes, one 256-element unit per group at a time,
// kUnroll units loaded before any is used (bytes in flight); kMinBlocks CTAs
// per SM caps the registers. kPlanar: w is in the planar layout
// (bq_planar.cuh; Q2_K, Q3_K, Q6_K), else GGUF blocks.
template <QuantType kType, typename Act, int kN, int kWarps, int kUnroll, int kMinBlocks, bool kPlanar = false>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks)
    GemvQ8Kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, const Act* __restrict__ x,
                 float* __restrict__ y) {
  using L = gemv::Lane<kType>;
  constexpr int kSegs = L::kSegs;
  constexpr int kStep = 32 / L::kLanes;  // units a warp takes at once, one per lane group
  constexpr int kSegElems = 256 / L::kLanes / kSegs;
  constexpr int kGroupElems = L::kGroupElems > 0 ? L::kGroupElems : 32;
  constexpr int kLaneGroups = 256 / L::kLanes / kGroupElems;  // 256 / kGroupElems groups over kLanes lanes
  extern __shared__ __align__(16) uint8_t smem[];
  const int64_t units = cols / 256;
  const int64_t xcol_bytes = units * gemv::kXUnitStride;  // one column of x codes
  int8_t* xq = reinterpret_cast<int8_t*>(smem);
  float* dx = reinterpret_cast<float*>(smem + kN * xcol_bytes);
  float* xg = dx + kN * cols / 32;  // kMinKind 1: dx * (sum of codes) per group

  // 0. A no-op unless launched as a programmatic dependent of the previous
  // kernel (LaunchGemvQ8): then this CTA may have started while that kernel
  // still ran, and x (and the weights) are read only after this.
  gemv::WaitForPreviousGrid();

  // 1. x -> int8 codes per 32-block, stored where the rows' lanes read
  // them. Every CTA runs this before it reads any weight, so its length is
  // paid on every call (docs/cuda.md, "What the x prologue costs", has the
  // measurements behind these choices):
  // - kWholeBlocks: each thread rounds whole 32-blocks (RoundWholeBlock: no
  //   shuffles, one pair of branch-free divisions per block). H200, 28672 x
  //   8192, us, against the chunks below: n = 2..4 2-6% faster (Q5_K n = 3
  //   64.0-64.3 -> 60.3-60.5, Q2_K n = 2 39.0-39.2 -> 37.3-37.5), n = 1 on
  //   4096 x 14336 5-8% (Q4_K 13.2-13.4 -> 12.5-12.7, planar Q2_K 10.9-11.0
  //   -> 10.1-10.2). With 3 CTAs per SM (the tall launch, registers capped
  //   at 80) it lost for Q5_K (42.1-42.3 -> 43.4-43.6), Q3_K (+2.5%) and
  //   planar Q2_K and Q6_K (+1%); Q4_K gained 0.3% (34.5-34.6 -> 34.4-34.5).
  //   Planar Q3_K's tall launch (2 CTAs of 12 warps, TallGemvWarps) takes
  //   it, as measured.
  // - otherwise 4 consecutive threads share a block, 8 values each, with
  //   kFastRounding the whole batch of chunks rounded before any is stored.
  // Q8_0, Q4_0 and Q6_K's GGUF-block kernel lost 1-1.5% with faster
  // prologues (their main loops compiled differently, as with other changes
  // here) and keep one chunk at a time with div.rn.
  constexpr bool kFastRounding =
      kType != QuantType::kQ8_0 && kType != QuantType::kQ4_0 && (kPlanar || kType != QuantType::kQ6_K);
  constexpr bool kWholeBlocks = kFastRounding && (kMinBlocks < 3 || kType == QuantType::kQ4_K);
  // Where the codes of chunk i (8 values) go: its column c and element e,
  // in 32-bit arithmetic (x's codes fit in shared memory) and with no
  // division for one column, instead of a 64-bit division per chunk. H200,
  // n = 1, us: 28672 x 8192 Q4_K 35.3-35.4 -> 34.7-34.9, Q2_K 26.1-26.5 ->
  // 25.5-25.9; 4096 x 14336 Q4_K 14.9 -> 14.0. Q3_K's and Q6_K's GGUF-block
  // kernels keep the 64-bit form: with the new one their tall launch ran 3%
  // slower (0.9-2.2 us; not profiled: their main loops are sensitive to how
  // the code around them compiles).
  constexpr bool kNarrow = kPlanar || (kType != QuantType::kQ3_K && kType != QuantType::kQ6_K);
  using Index = std::conditional_t<kNarrow, unsigned, int64_t>;
  // per_col (cols / 8, chunks per column) comes from each loop, computed
  // where that loop had it before this was shared: computed in here, it
  // moved Q3_K's index arithmetic in the PTX.
  auto codes_at = [&](Index i, Index per_col) {
    const Index c = kNarrow && kN == 1 ? 0 : i / per_col, e = 8 * (kNarrow && kN == 1 ? i : i % per_col);
    return xq + c * xcol_bytes + (e / 256) * gemv::kXUnitStride +
           gemv::XPhys(static_cast<int>(e % 256), L::kHalfShift);
  };
  if constexpr (kWholeBlocks) {
    const Index per_col = static_cast<Index>(cols / 8);
    const int64_t blocks = kN * cols / 32;
    for (int64_t blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
      uint4 raw[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) raw[k] = __ldg(reinterpret_cast<const uint4*>(x) + 4 * blk + k);
      uint32_t packed[8];
      int qsum[2];
      const float d = gemv::RoundWholeBlock<Act>(raw, packed, qsum);
      const Index b = static_cast<Index>(blk);
      // 32 bytes, on one side of the unit's half shift: two 16-byte stores.
      uint4* dst = reinterpret_cast<uint4*>(codes_at(4 * b, per_col));
      dst[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
      dst[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
      dx[b] = d;
      if (L::kMinKind == 1 && kGroupElems == 32) xg[b] = d * (qsum[0] + qsum[1]);
      if (L::kMinKind == 1 && kGroupElems == 16) {
        xg[2 * b] = d * qsum[0];
        xg[2 * b + 1] = d * qsum[1];
      }
    }
  } else {
    // Each thread loads kXBatch chunks before using any (latency, not
    // bytes, sets this step's length).
    constexpr int kXBatch = 4;
    const int64_t chunks = kN * cols / 8;
    for (int64_t base = 0; base < chunks; base += kXBatch * blockDim.x) {
      uint4 raw[kXBatch];
#pragma unroll
      for (int b = 0; b < kXBatch; ++b) {
        const int64_t idx = base + b * blockDim.x + threadIdx.x;
        raw[b] = idx < chunks ? __ldg(reinterpret_cast<const uint4*>(x) + idx) : make_uint4(0, 0, 0, 0);
      }
      // kFastRounding: the whole batch is rounded before any of it is
      // stored, with branch-free divisions, so that the chunks' roundings
      // overlap (the stores' conditions are branches, as are div.rn's range
      // checks); otherwise one chunk at a time. H200, n = 1, 28672 x 8192,
      // us: Q5_K 44.1-45.0 -> 42.0-42.5, Q2_K 25.4-25.6 -> 25.0-25.1.
      float d[kXBatch];
      uint32_t packed[kXBatch][2];
      int qsum[kXBatch];
      auto round = [&](int b) {
        float f[8];
        gemv::ActToFloat8<Act>(raw[b], f);
        d[b] = gemv::RoundBlockOf32<kFastRounding>(f, packed[b], &qsum[b]);
        if (L::kMinKind == 1) {
          qsum[b] += __shfl_xor_sync(0xFFFFFFFFu, qsum[b], 1);
          if (kGroupElems == 32) qsum[b] += __shfl_xor_sync(0xFFFFFFFFu, qsum[b], 2);
        }
      };
      auto store = [&](int b) {
        const int64_t idx = base + b * blockDim.x + threadIdx.x;
        if (idx < chunks) {
          const Index i = static_cast<Index>(idx), per_col = static_cast<Index>(cols / 8);
          *reinterpret_cast<uint2*>(codes_at(i, per_col)) = make_uint2(packed[b][0], packed[b][1]);
          if (i % 4 == 0) dx[i / 4] = d[b];
          if (L::kMinKind == 1 && i % (kGroupElems / 8) == 0) xg[i / (kGroupElems / 8)] = d[b] * qsum[b];
        }
      };
#pragma unroll
      for (int b = 0; b < kXBatch; ++b) {
        round(b);
        if (!kFastRounding) store(b);
      }
      if (kFastRounding) {
#pragma unroll
        for (int b = 0; b < kXBatch; ++b) store(b);
      }
    }
  }
  __syncthreads();
  // A dependent kernel may launch from here on: its CTAs take SM slots as
  // these end, and its WaitForPreviousGrid still waits for this whole grid.
  gemv::AllowNextGrid();

  // 2. Rows.
  const int lane = threadIdx.x % 32, grp = lane / L::kLanes, j = lane % L::kLanes;
  const int64_t row_bytes = units * L::kUnitBytes;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows; row += warps) {
    const uint8_t* wr = w + row * row_bytes;
    auto fetch = [&](int64_t unit) {
      if constexpr (kPlanar) {
        using P = Planar<kType>;
        const int64_t b = row * units + unit, all = rows * units;
        return L::FetchPlanar(w + b * P::kCodeBytes, w + all * P::kCodeBytes + b * P::kScaleBytes,
                              w + all * (P::kCodeBytes + P::kScaleBytes) + b * P::kDBytes, j);
      } else {
        return L::Fetch(wr + unit * L::kUnitBytes, j);
      }
    };
    float tot[kN];
#pragma unroll
    for (int c = 0; c < kN; ++c) tot[c] = 0.0f;
    auto consume = [&](const typename L::Part& p, int64_t unit) {
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
        float acc_d = 0.0f;
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
          int sum = 0;
          if constexpr (L::kSegmentDot) {
            sum = L::SegmentDot(p, s, xv);
          } else {
            int xsum = 0;
#pragma unroll
            for (int k = 0; k < kSegElems / 4; ++k) {
              sum = __dp4a(static_cast<int>(p.q[s * (kSegElems / 4) + k]), static_cast<int>(xv[k]), sum);
              if (L::kMinKind == 2) xsum = __dp4a(0x01010101, static_cast<int>(xv[k]), xsum);
            }
            if (L::kMinKind == 2) sum -= L::kOffset * xsum;
          }
          acc_d = fmaf(dseg[s], gemv::SmallIntToFloat(p.sc[s] * sum), acc_d);
        }
        tot[c] = fmaf(p.D, acc_d, tot[c]);
        if constexpr (L::kMinKind == 1) {
          const float* g = xg + (c * cols + unit * 256) / kGroupElems + p.g0;
          float acc_m = 0.0f;
          if constexpr (kLaneGroups == 4) {
            const float4 v = *reinterpret_cast<const float4*>(g);
            acc_m = fmaf(gemv::SmallIntToFloat(p.mg[1]), v.y, gemv::SmallIntToFloat(p.mg[0]) * v.x);
            acc_m = fmaf(gemv::SmallIntToFloat(p.mg[2]), v.z, acc_m);
            acc_m = fmaf(gemv::SmallIntToFloat(p.mg[3]), v.w, acc_m);
          } else if constexpr (kLaneGroups == 2) {
            const float2 v = *reinterpret_cast<const float2*>(g);
            acc_m = fmaf(gemv::SmallIntToFloat(p.mg[1]), v.y, gemv::SmallIntToFloat(p.mg[0]) * v.x);
          } else {
            acc_m = gemv::SmallIntToFloat(p.mg[0]) * g[0];
          }
          tot[c] = fmaf(-p.F, acc_m, tot[c]);
        }
      }
    };
    // kU units of this lane group from `unit` on: every load issued before
    // any unit is used.
    auto batch = [&](auto count, int64_t unit) {
      constexpr int kU = decltype(count)::value;
      typename L::Raw raw[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) raw[u] = fetch(unit + kStep * u);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        typename L::Part part;
        L::Decode(raw[u], j, &part);
        consume(part, unit + kStep * u);
      }
    };
    int64_t unit = grp;
    for (; unit + kStep * (kUnroll - 1) < units; unit += kStep * kUnroll) {
      batch(std::integral_constant<int, kUnroll>(), unit);
    }
    if constexpr (L::kTailBatches) {
      // The rest (under kUnroll units) in batches of 4, 2, 1: 14 units per
      // group take 4 + 4 + 4 + 2, four round trips, not 4 + 4 + 4 + 1 + 1.
      if constexpr (kUnroll > 4) {
        if (unit + 3 * kStep < units) {
          batch(std::integral_constant<int, 4>(), unit);
          unit += 4 * kStep;
        }
      }
      if constexpr (kUnroll > 2) {
        if (unit + kStep < units) {
          batch(std::integral_constant<int, 2>(), unit);
          unit += 2 * kStep;
        }
      }
      if (kUnroll > 1 && unit < units) batch(std::integral_constant<int, 1>(), unit);
    } else {
      for (; unit < units; unit += kStep) batch(std::integral_constant<int, 1>(), unit);
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
// Planar weights must be 16-byte aligned.
template <QuantType kType, bool kPlanar = false>
__host__ bool GemvQ8Fits(const void* w, int64_t cols, const void* x, int64_t n, int64_t max_smem) {
  const uintptr_t wa = reinterpret_cast<uintptr_t>(w), xa = reinterpret_cast<uintptr_t>(x);
  if (kPlanar && (!Planar<kType>::kSupported || wa % 16 != 0)) return false;
  return n >= 1 && n <= gemv::kGemvMaxColumns && cols % 256 == 0 && wa % gemv::Lane<kType>::kWeightAlign == 0 &&
         xa % 16 == 0 && gemv::GemvSmemBytes(n, cols) <= max_smem;
}

// Launches GemvQ8Kernel with one CTA per resident slot (rows are
// grid-strided). Preconditions: GemvQ8Fits<kType, kPlanar>. Returns the launch error.
// On sm_90 and newer, `overlap_previous` launches it as a programmatic
// dependent of the previous kernel in `stream`: its CTAs can start as that
// kernel's CTAs end, and read x and the weights only once that kernel has
// finished, so it is correct whatever that kernel wrote (docs/cuda.md has
// what it saves).
template <QuantType kType, typename Act, int kN, int kWarps = 8, int kUnroll = gemv::GemvUnroll<kType>(kN, false),
          int kMinBlocks = 2, bool kPlanar = false>
cudaError_t LaunchGemvQ8(const uint8_t* w, int64_t rows, int64_t cols, const Act* x, float* y,
                         cudaStream_t stream, bool overlap_previous = true) {
  auto kernel = GemvQ8Kernel<kType, Act, kN, kWarps, kUnroll, kMinBlocks, kPlanar>;
  const int smem = static_cast<int>(gemv::GemvSmemBytes(kN, cols));
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  int dev = 0, sms = 0, per_sm = 0, major = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, smem)) != cudaSuccess) {
    return err;
  }
  const int64_t needed = (rows + kWarps - 1) / kWarps;
  const int64_t slots = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config =
      gemv::LaunchConfig(static_cast<unsigned>(needed < slots ? needed : slots), kWarps * 32,
                         static_cast<size_t>(smem), stream, overlap_previous && major >= 9, &attr);
  return cudaLaunchKernelEx(&config, kernel, w, rows, cols, x, y);
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_GEMV_CUH_
