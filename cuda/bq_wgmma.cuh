// Batched products of Q2_K/Q3_K/Q4_K/Q5_K weights (and, with the weights
// rounded to f16, Q6_K/Q8_0/Q4_0: see kF16W) with f16 activations on
// Hopper's warpgroup tensor cores (wgmma, sm_90a):
//   y[c][r] = sum_k W[r][k] * x[c][k]   (layouts as in bq_matmul.cuh).
//
// WgmmaMatMulKernel: a CTA computes kWGs * 64 rows x kBN columns. Per
// super-block (256 values of k) one thread has TMA copy the rows' blocks and
// the kBN columns of x into a ring of shared-memory stages (an mbarrier per
// stage); x lands in wgmma's 128-byte-swizzled layout, so wgmma reads it as
// its B operand straight from shared memory. Each warp decodes the A operand
// (16 rows x 16 k) in registers: codes times the group's 6-bit scale are
// exact integers below 2048, so they are exact in f16 and the scale costs one
// fused op per pair of weights (Q3_K: two, its codes times 6-bit signed
// scales within +-128; Q2_K: 2-bit codes times 4-bit scales). Steps are
// decoded a batch ahead of the wgmmas that consume them.
//
// Per super-block and row, y += d * P - dmin * sum_j m_j * xsum_j, where P is
// the wgmma chain of the super-block (f32 accumulation) and xsum_j the sum of
// x over group j (32 values; Q2_K: 16). A first kernel (WgmmaXSumsKernel)
// sums x per group once, in f32, into a workspace, split into three bf16
// parts (hi + mid + lo carry 24 bits); a bulk copy brings each super-block's
// share into shared memory, where the parts meet the integer mins in bf16
// mma.syncs (two per 8 columns; Q2_K's 16 groups: three). Q3_K has no
// mins: y += d * P alone, no first kernel. Weights are never rounded: as in
// MmaMatMulKernel, the only rounding is f32 accumulation (and the 24-bit
// split of xsum).
//
// Short matrices (too few row tiles for the SMs) split k over clusters of 2
// or 4 CTAs, which add their partial sums through distributed shared memory
// in a fixed order (WgmmaKSplit, LaunchWgmmaMatMul's k_split).
//
// Requirements: cols % 256 == 0 (so that rows are 16-byte multiples, Q2_K:
// cols % 1024 == 0, Q3_K and Q6_K: cols % 2048 == 0), 16-byte aligned weights and x,
// a workspace of WgmmaWorkspaceBytes(type, n, cols) bytes (Q2_K, Q4_K,
// Q5_K), an sm_90 GPU, a driver
// with cuTensorMapEncodeTiled, and code compiled for sm_90a (elsewhere the
// kernel traps; the library only picks it where it runs, see
// blockquant_cuda.h).
#ifndef BLOCKQUANT_CUDA_BQ_WGMMA_CUH_
#define BLOCKQUANT_CUDA_BQ_WGMMA_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bq_decode.cuh"
#include "bq_gemv.cuh"
#include "bq_matmul.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

// D (64 x N, f32) += A (64 x 16, f16, registers) * B (16 x N, f16, shared
// memory through desc); scale_d == 0 overwrites D instead. Generated for
// the tile widths WgmmaMatMulKernel uses.
template <int N>
struct Wgmma;

template <>
struct Wgmma<16> {
  __device__ static void Mma(float (&d)[8], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %12, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7"
        "}, {%8, %9, %10, %11}, %13, p, 1, 1, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(scale_d), "l"(desc));
  }
};

template <>
struct Wgmma<32> {
  __device__ static void Mma(float (&d)[16], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %20, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
        "}, {%16, %17, %18, %19}, %21, p, 1, 1, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(scale_d), "l"(desc));
  }
};

template <>
struct Wgmma<64> {
  __device__ static void Mma(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %37, p, 1, 1, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(scale_d), "l"(desc));
  }
};

template <>
struct Wgmma<128> {
  __device__ static void Mma(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %68, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %69, p, 1, 1, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(scale_d), "l"(desc));
  }
};

__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accesses of r across a wgmma fence or wait
// (and from reusing r's register while a wgmma still reads it).
template <int N>
__device__ __forceinline__ void PinRegs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
__device__ __forceinline__ void PinRegs(uint32_t (&r)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// Shared-memory descriptor of a K-major operand in wgmma's 128-byte swizzle:
// 8-row atoms of 8 x 128 bytes (1024-byte aligned), sbo = bytes between
// atoms along n; the start may sit 32 * u bytes into a row for the k16 step
// u of the atom's 64 values (the leading offset is unused).
__device__ __forceinline__ uint64_t SmemDescSw128(uint32_t addr, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (static_cast<uint64_t>(1) << 62);
}

// The m16n8k8 form of MmaOps<__nv_bfloat16>::Mma (A: rows g and g + 8).
__device__ __forceinline__ void MmaBf16K8(float* c, uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(b0));
}

// Two 6-bit mins (bytes 2q and 2q + 1 of w, q = 0 or 1) as a bf16 pair, the
// A operand of the mins' MMAs: 128 + m is exact in bf16 and a byte permute
// away from m's byte.
__device__ __forceinline__ uint32_t MinPairBf16(uint32_t w, int q) {
  const uint32_t biased = __byte_perm(w, 0x43434343u, q ? 0x4342u : 0x4140u);
  uint32_t r;
  asm("sub.rn.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(biased), "r"(0x43004300u));
  return r;
}

// v = hi + mid + lo in bf16 (24 bits of v's 24); a non-finite v stays in hi.
__device__ __forceinline__ void SplitBf16x3(float v, __nv_bfloat16* hi, __nv_bfloat16* mid, __nv_bfloat16* lo) {
  *hi = __float2bfloat16_rn(v);
  const float r1 = isfinite(v) ? v - __bfloat162float(*hi) : 0.0f;
  *mid = __float2bfloat16_rn(r1);
  *lo = __float2bfloat16_rn(r1 - __bfloat162float(*mid));
}
__device__ __forceinline__ uint32_t PackBf16(__nv_bfloat16 a, __nv_bfloat16 b) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(a)) | (static_cast<uint32_t>(__bfloat16_as_ushort(b)) << 16);
}

// Codes u0, u1 (bytes 0 and 1) -> (sc * u0, sc * u1) in f16: (1024 + u) * sc
// - 1024 * sc in one fused op, exact while sc * u < 2048 (see MmaOps).
__device__ __forceinline__ uint32_t ScaledPair(uint32_t codes, uint32_t sc2, uint32_t bias2) {
  const uint32_t l = __byte_perm(codes, 0x64646464u, 0x4140);
  uint32_t r;
  asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(l), "r"(sc2), "r"(bias2));
  return r;
}

// The codes of group j = 2p + h at positions off, off + 1 (c0) and off + 8,
// off + 9 (c1) of the group, one code per byte (bytes 0 and 1): a thread's
// 4 A-operand values of one k16 step. Q4_K/Q5_K keep groups 2p and 2p + 1 in
// the low and high nibbles of the same bytes.
template <QuantType kType>
struct WgmmaCodes;
template <>
struct WgmmaCodes<QuantType::kQ4_K> {
  // Group 2p + 1's codes come back times 16 (the high nibbles left in
  // place, one mask instead of a shift and a mask); the caller scales by
  // sc / 16 for them.
  static constexpr bool kHighTimes16 = true;
  __device__ static void Get(const uint8_t* s, int p, int h, int off, uint32_t* c0, uint32_t* c1) {
    const uint32_t v0 = *reinterpret_cast<const uint16_t*>(s + 16 + 32 * p + off);
    const uint32_t v1 = *reinterpret_cast<const uint16_t*>(s + 16 + 32 * p + off + 8);
    const uint32_t mask = h ? 0xF0F0u : 0x0F0Fu;
    *c0 = v0 & mask;
    *c1 = v1 & mask;
  }
  // The codes themselves (high nibbles shifted down), for the f16-weights kernel.
  __device__ static void GetExact(const uint8_t* s, int p, int h, int off, uint32_t* c0, uint32_t* c1) {
    Get(s, p, h, off, c0, c1);
    *c0 >>= 4 * h;
    *c1 >>= 4 * h;
  }
};
template <>
struct WgmmaCodes<QuantType::kQ5_K> {
  static constexpr bool kHighTimes16 = false;
  __device__ static void Get(const uint8_t* s, int p, int h, int off, uint32_t* c0, uint32_t* c1) {
    const uint32_t v0 = *reinterpret_cast<const uint16_t*>(s + 48 + 32 * p + off);
    const uint32_t v1 = *reinterpret_cast<const uint16_t*>(s + 48 + 32 * p + off + 8);
    const uint32_t h0 = *reinterpret_cast<const uint16_t*>(s + 16 + off);
    const uint32_t h1 = *reinterpret_cast<const uint16_t*>(s + 16 + off + 8);
    const int j = 2 * p + h;
    *c0 = ((v0 >> (4 * h)) & 0x0F0Fu) | (((h0 >> j) & 0x0101u) << 4);
    *c1 = ((v1 >> (4 * h)) & 0x0F0Fu) | (((h1 >> j) & 0x0101u) << 4);
  }
  __device__ static void GetExact(const uint8_t* s, int p, int h, int off, uint32_t* c0, uint32_t* c1) {
    Get(s, p, h, off, c0, c1);
  }
};

// Two codes u (bytes 0 and 1) -> the f16 weights fl(u * s + b), s and b an
// f16 pair each (the group's fl(d * sc) and fl(-dmin * m)): u exact as
// (1024 + u) - 1024, then one fused op, rounded once. The f16-weights
// kernel's decode: three operations per pair.
__device__ __forceinline__ uint32_t RoundedPair(uint32_t codes, uint32_t s2, uint32_t b2) {
  const uint32_t l = __byte_perm(codes, 0x64646464u, 0x4140);
  uint32_t u, r;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(u) : "r"(l), "r"(0x64006400u));
  asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(u), "r"(s2), "r"(b2));
  return r;
}

// Q3_K's group scale S_g - 32 (S_g in byte j of w) as an f16 pair:
// 0x64SS is the f16 1024 + S, 0x6420 is 1056.
__device__ __forceinline__ uint32_t Q3ScalePair(uint32_t w, int j) {
  const uint32_t p = __byte_perm(w, 0x64646464u, 0x4040 + 0x0101 * j);
  uint32_t r;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(p), "r"(0x64206420u));
  return r;
}
// Two Q3_K codes (bytes 0 and 1 of qw, bit field q; their high bits, bit hb
// of the bytes of hw) times the group's scale sc2 in f16: u = low bits |
// high bit << 2 is 0..7, the code u - 4, and (u - 4) * (S - 32) an integer
// of at most 128 in magnitude, exact. (1024 + u) - 1028 is exact too; one
// fused op as for Q4_K would need 1028 * sc, which f16 does not hold.
__device__ __forceinline__ uint32_t Q3Pair(uint32_t qw, uint32_t hw, int q, int hb, uint32_t sc2) {
  const uint32_t u = ((qw >> (2 * q)) & 0x0303u) | (((hw >> hb) & 0x0101u) << 2);
  const uint32_t l = __byte_perm(u, 0x64646464u, 0x4140);
  uint32_t c, r;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(c) : "r"(l), "r"(0x64046404u));
  asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(c), "r"(sc2));
  return r;
}

// Two Q2_K codes (bytes 0 and 1 of qw, bit field q) times the group's scale
// sc2 (0..15, an f16 pair; bias2 = -1024 * sc2): at most 45, exact.
__device__ __forceinline__ uint32_t Q2Pair(uint32_t qw, int q, uint32_t sc2, uint32_t bias2) {
  return ScaledPair((qw >> (2 * q)) & 0x0303u, sc2, bias2);
}

// The f16-weights decode of the types without mins (Q6_K, Q8_0, Q4_0): two
// codes u (bytes 0 and 1, unsigned) -> fl((u - kOffset) * s), s an f16
// pair: u - kOffset is exact as (1024 + u) - (1024 + kOffset), then one
// rounding multiplication. Q8_0's signed codes come in with their sign bit
// flipped (u = q + 128).
template <int kOffset>
__device__ __forceinline__ uint32_t RoundedOffsetPair(uint32_t codes, uint32_t s2) {
  const uint32_t l = __byte_perm(codes, 0x64646464u, 0x4140);
  constexpr uint32_t kBias = 0x6400u + kOffset;  // f16 1024 + kOffset (kOffset < 1024)
  uint32_t u, r;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(u) : "r"(l), "r"(kBias | kBias << 16));
  asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(u), "r"(s2));
  return r;
}
// Byte j of w, a signed 8-bit scale (Q6_K), times the f16 pair d2 as an f16
// pair: fl(d * sc).
__device__ __forceinline__ uint32_t SignedByteTimes(uint32_t w, int j, uint32_t d2) {
  const uint32_t p = __byte_perm(w ^ 0x80808080u, 0x64646464u, 0x4040 + 0x0101 * j);  // 1024 + sc + 128
  uint32_t sc, r;
  asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(sc) : "r"(p), "r"(0x64806480u));
  asm("mul.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(sc), "r"(d2));
  return r;
}

// The 16-bit word at b + off (2-byte aligned; in shared memory here), zero-extended.
__device__ __forceinline__ uint32_t U16At(const uint8_t* b, int off) {
  return *reinterpret_cast<const uint16_t*>(b + off);
}

// mbarrier and TMA (cp.async.bulk.tensor) wrappers; addresses are shared
// window addresses.
__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void MbarExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Before a TMA write into shared memory that threads have read with
// ordinary loads (a ring stage being refilled): TMA writes through the
// async proxy, which the release/acquire of an mbarrier or a bar.sync does
// not order against those reads. The thread that issues the copy runs it
// after its wait (or barrier). Without it the wide mma_q8 read refilled data
// on an H200 (docs/cuda.md, "Wrong sums with two stages per K group").
__device__ __forceinline__ void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nBQ_WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra BQ_WAIT_%=;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void TmaLoad2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// Blocks that start off 16-byte boundaries (Q2_K's 84 and Q3_K's 110 bytes, the 16-group
// mma_q8's units): the weights' tensor map counts 16-bit elements
// (EncodeUnalignedBlocksMap), and a block's box starts at the 16-byte
// boundary at or below the block's byte offset in its row, at this column.
__device__ __forceinline__ int UnalignedBoxColumn(int64_t byte_offset) {
  return static_cast<int>((byte_offset & ~int64_t{15}) / 2);
}

// A plain (non-tensor) bulk copy: bytes, src and dst multiples of 16.
__device__ __forceinline__ void BulkLoad(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(src)), "r"(bytes), "r"(bar)
      : "memory");
}

// Thread block clusters: a barrier over the cluster's CTAs (release what
// each wrote to its shared memory, acquire the others'), and a load from
// another CTA's shared memory (addr: this CTA's address of the same
// variable, rank: that CTA's in the cluster).
__device__ __forceinline__ void ClusterSync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
__device__ __forceinline__ float LoadClusterShared(uint32_t addr, uint32_t rank) {
  uint32_t remote;
  float v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(addr), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(remote) : "memory");
  return v;
}

}  // namespace detail

// 16-byte vectors of x-sum fragments per lane, 8-column group and
// super-block: one for the 8 mins of Q4_K and Q5_K, two for Q2_K's 16
// (its groups are 16 values), none for Q3_K (no mins).
__host__ __device__ constexpr int WgmmaSumVecs(QuantType type) {
  return type == QuantType::kQ2_K ? 2 : type == QuantType::kQ4_K || type == QuantType::kQ5_K ? 1 : 0;
}

// What a stage holds of one row's super-block. Q4_K and Q5_K: the whole
// block (144 and 176 bytes, 16-byte multiples). Q2_K and Q3_K: the 84- or
// 110-byte block lies 0..12 or 0..14 bytes into a 112- or 144-byte TMA box
// that starts at the 16-byte boundary below it (rows must be 16-byte
// multiples: cols % 1024 or 2048 == 0). The boxes' sizes put the 8 rows that
// a lane column reads in distinct banks. Q3_K has no mins, so no x sums.
// Q6_K (f16 weights only): the 210-byte block lies 0..14 bytes into a
// 240-byte box. Q8_0 and Q4_0 (f16 weights only): a stage holds a row's 8
// blocks of 32 values (272 and 144 bytes). Boxes off 16-byte boundaries or
// past 256 bytes (Q8_0) take a tensor map of 16-bit elements (kHalfMap).
template <QuantType kType>
struct WgmmaBlock {
  static constexpr int kBytes = StageTraits<kType>::kStageBytes;
  static constexpr bool kUnaligned = kBytes % 16 != 0;
  static constexpr int kBox = kType == QuantType::kQ3_K   ? 144
                              : kType == QuantType::kQ2_K ? 112
                              : kType == QuantType::kQ6_K ? 240
                                                          : kBytes;
  static constexpr bool kHalfMap = kUnaligned || kBox > 256;
  static constexpr int kSumVecs = WgmmaSumVecs(kType);
  static constexpr bool kMins = kSumVecs > 0;
  static_assert(kMins == StageTraits<kType>::kHasMin, "a mins' term exactly for the types with mins");
};

// 8-column groups of x that WgmmaXSumsKernel covers: n rounded up to whole
// 128-column tiles (the widest tile a CTA takes), so that every CTA's slice
// of a super-block's fragments exists and is contiguous.
__host__ __device__ constexpr int64_t WgmmaSumGroups(int64_t n) { return (n + 127) / 128 * 16; }
// Workspace bytes of LaunchWgmmaMatMul for weights of `type`: WgmmaSumVecs
// 16-byte vectors per lane, 8-column group and super-block (Q3_K: none).
__host__ __device__ constexpr int64_t WgmmaWorkspaceBytes(QuantType type, int64_t n, int64_t cols) {
  return cols / 256 * WgmmaSumGroups(n) * 32 * 16 * WgmmaSumVecs(type);
}

// Group sums of x for WgmmaMatMulKernel's mins' term, once per product
// (each CTA used to make its columns' sums on the tensor cores, which took
// 18% of a 4096 x 14336, n = 512 product on an H200). kVecs = 1 (groups of
// 32 values): fragment frag[(sb * WgmmaSumGroups(n) + q) * 32 + lane] holds,
// for column c = 8q + lane / 4 and the groups 2t, 2t + 1 (t = lane % 4) of
// super-block sb, both sums (f32, in order) split into bf16 (hi, mid, lo)
// pairs: the B operands of the mins' bf16 MMAs. kVecs = 2 (Q2_K's groups of
// 16): two vectors per lane, (hi, hi', mid, mid') and (lo, lo', 0, 0), where
// the unprimed pair holds groups 2t, 2t + 1 and the primed one 2t + 8, 2t +
// 9 (k 0-7 and 8-15 of one m16n8k16 MMA). Columns from n on get zeros; a NaN
// or Inf in a group stays in its hi part.
template <typename Act, int kVecs>
__global__ void WgmmaXSumsKernel(const Act* __restrict__ x, int64_t n, int64_t cols, uint4* __restrict__ frag) {
  static_assert(kVecs == 1 || kVecs == 2, "groups of 32 or 16 values");
  constexpr int kSums = 2 * kVecs, kChunks = 8 / kSums;  // group sums per thread, 8-value chunks per group
  // The product kernel may start now: it reads the fragments only after
  // this grid has finished (its WaitForPreviousGrid).
  gemv::AllowNextGrid();
  // Thread i takes the groups of t of super-block sb of column c, t
  // fastest, then sb: a warp reads 4 KB of one column in one stretch.
  const int64_t nsb = cols / 256, groups = WgmmaSumGroups(n), total = nsb * groups * 32;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(i % 4);
    const int64_t sb = i / 4 % nsb, c = i / 4 / nsb;
    float sum[kSums] = {};
    if (c < n) {
      const uint4* p = reinterpret_cast<const uint4*>(x + c * cols + sb * 256);
#pragma unroll
      for (int h = 0; h < kSums; ++h) {
        // Group 2t + h (kVecs 1), or 2t + h % 2 + 8 * (h / 2) (kVecs 2).
        const int group = kVecs == 1 ? 2 * t + h : 2 * t + h % 2 + 8 * (h / 2);
#pragma unroll
        for (int k = 0; k < kChunks; ++k) {
          float f[8];
          gemv::ActToFloat8<Act>(__ldg(p + group * kChunks + k), f);
#pragma unroll
          for (int e = 0; e < 8; ++e) sum[h] += f[e];
        }
      }
    }
    __nv_bfloat16 hi[kSums], mid[kSums], lo[kSums];
#pragma unroll
    for (int h = 0; h < kSums; ++h) detail::SplitBf16x3(sum[h], &hi[h], &mid[h], &lo[h]);
    uint4* out = frag + ((sb * groups + c / 8) * 32 + (c % 8) * 4 + t) * kVecs;
    if constexpr (kVecs == 1) {
      out[0] = make_uint4(detail::PackBf16(hi[0], hi[1]), detail::PackBf16(mid[0], mid[1]),
                          detail::PackBf16(lo[0], lo[1]), 0u);
    } else {
      out[0] = make_uint4(detail::PackBf16(hi[0], hi[1]), detail::PackBf16(hi[2], hi[3]),
                          detail::PackBf16(mid[0], mid[1]), detail::PackBf16(mid[2], mid[3]));
      out[1] = make_uint4(detail::PackBf16(lo[0], lo[1]), detail::PackBf16(lo[2], lo[3]), 0u, 0u);
    }
  }
}

// Dynamic shared memory of WgmmaMatMulKernel: the stages, two buffers of
// x-sum fragments (types with mins), two mbarriers per stage (filled,
// released) and one per fragment buffer, and 1024 bytes to align the
// swizzled x tiles (dynamic shared memory does not promise that alignment).
template <QuantType kType, int kBN, int kWGs, int kStages, bool kF16W = false>
__host__ __device__ constexpr int WgmmaSmemBytes() {
  using Block = WgmmaBlock<kType>;
  constexpr int kVecs = kF16W ? 0 : Block::kSumVecs;  // the f16-weights kernel takes no x sums
  return kStages * (kBN * 512 + kWGs * 64 * Block::kBox) + 2 * (kBN / 8) * 32 * 16 * kVecs +
         (2 * kStages + 2) * 8 + 1024;
}

// A CTA: kWGs warpgroups (64 rows each). Thread 0 streams the stages with
// TMA into a ring of kStages slots, each slot refilled right after the
// barrier that shows every warp is done with it (kProducerWarp: below).
// xmap: x as a 2-D f16 tensor (cols x n, box 64 x kBN, 128-byte swizzle);
// wmap: the weights as 2-D bytes (row_bytes x rows, box WgmmaBlock::kBox x
// kWGs * 64; Q2_K and Q3_K in 16-bit elements). Out-of-range rows and
// columns arrive as zeros; their outputs are not stored. kBatch: k16 steps
// decoded ahead of their wgmmas (two batches of A registers alternate, so
// one decodes while the previous one runs). A grid of gridDim.z > 1 splits k: it must be launched as clusters
// of (1, 1, gridDim.z) CTAs, which take near-equal runs of super-blocks
// and add their sums through shared memory (below).
//
// kF16W (Q4_K, Q5_K): the weights rounded to f16 in registers instead,
// fl(u * fl(d * sc) + fl(-dmin * m)), as dequantizing to f16 for cuBLAS
// rounds them (at most about 2^-10 of |d sc u| + |dmin m| off). Then one
// wgmma chain accumulates every super-block into the outputs: no per-super-
// block product to scale, no mins' term, no x sums, no workspace. Weights
// beyond f16's range overflow.
//
// kF16W also takes Q6_K, Q8_0 and Q4_0 (kPlain: no mins), their weights
// rounded the same way: fl(fl(d * sc) * (u - 32)) (Q6_K, two roundings),
// fl(d * q) and fl(d * (u - 8)) (one, as dequantizing to f16 rounds them).
//
// kProducerWarp (kF16W only; the default there): an extra warp streams the
// stages instead of thread 0, and each slot has a second mbarrier that the
// consumer warps arrive at once their wgmmas are done with it. Then the
// warpgroups never wait for each other: while one drains its chain at the
// end of a super-block, the other's can keep the tensor cores busy. (Each
// still waits for its own chain there. A chain kept in flight across the
// super-blocks, x in a ring of its own, gave the same bits at the same
// speed on an H200: docs/cuda.md, "one chain across the super-blocks".)
template <QuantType kType, int kBN, int kWGs, int kStages, int kBatch, int kMinBlocks, bool kF16W = false,
          bool kProducerWarp = kF16W>
__global__ void __launch_bounds__(kWGs * 128 + (kProducerWarp ? 32 : 0), kMinBlocks)
    WgmmaMatMulKernel(const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap wmap,
                      const uint4* __restrict__ xsums, int64_t rows, int64_t cols, int64_t n, float* __restrict__ y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using ST = StageTraits<kType>;
  using Block = WgmmaBlock<kType>;
  using detail::U16At;  // the blocks' 16-bit fields in the stages
  // kMins: a mins' term through x sums (not for the f16-weights kernel).
  constexpr bool kMins = Block::kMins && !kF16W, kQ2 = kType == QuantType::kQ2_K, kQ3 = kType == QuantType::kQ3_K;
  constexpr bool kQ6 = kType == QuantType::kQ6_K, kQ8 = kType == QuantType::kQ8_0, kQ40 = kType == QuantType::kQ4_0;
  constexpr bool kPlain = kQ6 || kQ8 || kQ40;  // no mins: f16 weights only
  constexpr int kVecs = kMins ? Block::kSumVecs : 0;
  static_assert(ST::kHeaderK4 || kQ2 || kQ3 || kPlain, "a K-quant or Q8_0 / Q4_0");
  static_assert(!kF16W || ST::kHeaderK4 || kPlain, "f16 weights: Q4_K, Q5_K, Q6_K, Q8_0 and Q4_0");
  static_assert(!kPlain || kF16W, "Q6_K, Q8_0 and Q4_0: f16 weights only");
  static_assert(16 % kBatch == 0 && kBN % 16 == 0, "tile shapes");
  // The other kernels release their x-sum buffers at the barrier per super-block.
  static_assert(!kProducerWarp || kF16W, "a producer warp: the f16-weights kernel");
  constexpr int kRowsCta = kWGs * 64;
  constexpr int kXBytes = kBN * 512;  // 256 f16 values per column
  constexpr int kWBytes = kRowsCta * Block::kBox;
  constexpr int kStage = kXBytes + kWBytes;  // a multiple of 1024
  constexpr int kNG = kBN / 8;               // 8-column groups
  constexpr int kAcc = kBN / 2;              // f32 accumulators per thread
  static_assert(kStage % 1024 == 0, "stages keep the x tiles 1024-byte aligned");
  extern __shared__ __align__(16) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - detail::SmemAddr(smem_raw) % 1024) % 1024);
  const uint4* xfrag = reinterpret_cast<const uint4*>(smem + kStages * kStage);  // [2][kNG][32][kVecs]
  const uint32_t full0 = detail::SmemAddr(xfrag + 2 * kNG * 32 * kVecs);  // one mbarrier per slot
  const uint32_t sums0 = full0 + 8 * kStages;                     // one per fragment buffer
  const uint32_t empty0 = sums0 + 16;  // kProducerWarp: one per slot, released by each consumer warp

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
  const bool consumer = !kProducerWarp || warp < kWGs * 4;  // all but the producer warp
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsCta;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kBN;
  const int64_t nsb = cols / 256;
  // This CTA's super-blocks: sb0 .. sb0 + cnt - 1 (all of them without a K split).
  const int kz = static_cast<int>(blockIdx.z), ksplit = static_cast<int>(gridDim.z);
  const int64_t sb0 = nsb * kz / ksplit, cnt = nsb * (kz + 1) / ksplit - sb0;

  // The i-th super-block of this CTA -> slot i % kStages.
  auto load_stage = [&](int64_t i) {
    const int slot = static_cast<int>(i % kStages);
    const int64_t sb = sb0 + i;
    const uint32_t full = full0 + 8 * slot, dst = detail::SmemAddr(smem + slot * kStage);
    detail::MbarExpectTx(full, kStage);
    for (int p = 0; p < 4; ++p) {
      detail::TmaLoad2d(dst + p * kNG * 1024, &xmap, static_cast<int>(sb * 256 + 64 * p), static_cast<int>(col0),
                        full);
    }
    if constexpr (Block::kHalfMap) {
      detail::TmaLoad2d(dst + kXBytes, &wmap, detail::UnalignedBoxColumn(sb * Block::kBytes), static_cast<int>(row0),
                        full);
    } else {
      detail::TmaLoad2d(dst + kXBytes, &wmap, static_cast<int>(sb * Block::kBytes), static_cast<int>(row0), full);
    }
  };
  // The i-th super-block's fragments of this CTA's columns -> buffer i & 1.
  auto load_sums = [&](int64_t i) {
    const uint32_t bar = sums0 + 8 * static_cast<uint32_t>(i & 1);
    detail::MbarExpectTx(bar, kNG * 512 * kVecs);
    detail::BulkLoad(detail::SmemAddr(xfrag + (i & 1) * kNG * 32 * kVecs),
                     xsums + ((sb0 + i) * WgmmaSumGroups(n) + col0 / 8) * 32 * kVecs, kNG * 512 * kVecs, bar);
  };
  if (tid == 0) {
    for (int i = 0; i < kStages + (kMins ? 2 : 0); ++i) detail::MbarInit(full0 + 8 * i, 1);
    if constexpr (kProducerWarp) {
      for (int i = 0; i < kStages; ++i) detail::MbarInit(empty0 + 8 * i, kWGs * 4);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    if constexpr (kMins) {
      // x and the weights are final already (WgmmaXSumsKernel, which this
      // grid may overlap, starts only after the work before it); the
      // fragments are not until that grid ends.
      for (int64_t i = 0; i < kStages && i < cnt; ++i) load_stage(i);
      gemv::WaitForPreviousGrid();
      for (int64_t i = 0; i < 2 && i < cnt; ++i) load_sums(i);
    } else {
      // No sums kernel: the grid before this one may still be writing x or
      // the weights.
      gemv::WaitForPreviousGrid();
      for (int64_t i = 0; i < kStages && i < cnt; ++i) load_stage(i);
    }
  }
  __syncthreads();

  const int rl0 = (warp / 4) * 64 + (warp % 4) * 16 + g;  // this thread's rows rl0 and rl0 + 8 of the tile
  float acc[kAcc], P[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = P[i] = 0.0f;
  // Factors of the previous super-block, applied in the next iteration.
  float d_prev[2] = {0.0f, 0.0f}, f_prev[2] = {0.0f, 0.0f};
  // The mins' A operand, rows g and g + 8: groups 2t, 2t + 1 (and Q2_K's
  // 2t + 8, 2t + 9 in m_prev[2], m_prev[3]).
  uint32_t m_prev[4] = {0u, 0u, 0u, 0u};

  // acc += d * P - dmin * (m . xsum) for the i-th super-block, whose sums
  // land in fragment buffer i & 1 (Q3_K: acc += d * P). The mins' MMAs add
  // hi, mid and lo of the sums: Q4_K and Q5_K hi and mid as k 0-7 and 8-15
  // of one MMA, lo in a k8 one; Q2_K's 16 groups one MMA per part.
  auto epilogue = [&](int64_t i) {
    if constexpr (kF16W) {
      static_cast<void>(i);  // the chain adds into acc itself
    } else if constexpr (!kMins) {
      static_cast<void>(i);
#pragma unroll
      for (int e = 0; e < kAcc; ++e) acc[e] = fmaf(d_prev[e % 4 / 2], P[e], acc[e]);  // rows g, g, g + 8, g + 8
    } else {
      const int buf = static_cast<int>(i & 1);
      detail::MbarWait(sums0 + 8 * buf, static_cast<uint32_t>(i >> 1) & 1);
#pragma unroll
      for (int j = 0; j < kNG; ++j) {
        // At most 4 tiles' loads in flight: unbounded, the compiler hoists
        // all of them and the wide tiles spill.
        if (j % 4 == 0) asm volatile("" ::: "memory");
        const uint4* e = xfrag + ((buf * kNG + j) * 32 + lane) * kVecs;
        float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const uint4 e0 = e[0];
        if constexpr (kQ2) {
          const uint4 e1 = e[1];
          detail::MmaOps<__nv_bfloat16>::Mma(m, m_prev, e0.x, e0.y);
          detail::MmaOps<__nv_bfloat16>::Mma(m, m_prev, e0.z, e0.w);
          detail::MmaOps<__nv_bfloat16>::Mma(m, m_prev, e1.x, e1.y);
        } else {
          const uint32_t ma[4] = {m_prev[0], m_prev[1], m_prev[0], m_prev[1]};  // k 0-7 and 8-15: the same mins
          detail::MmaOps<__nv_bfloat16>::Mma(m, ma, e0.x, e0.y);
          detail::MmaBf16K8(m, m_prev[0], m_prev[1], e0.z);
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          float a = fmaf(d_prev[k / 2], P[4 * j + k], acc[4 * j + k]);
          acc[4 * j + k] = fmaf(f_prev[k / 2], m[k], a);
        }
      }
    }
  };

  if (!consumer && lane == 0) {
    // Slot i % kStages takes super-block i once every consumer warp has
    // released super-block i - kStages from it.
    for (int64_t i = kStages; i < cnt; ++i) {
      detail::MbarWait(empty0 + 8 * static_cast<int>(i % kStages), static_cast<uint32_t>(i / kStages - 1) & 1);
      detail::FenceProxyAsync();
      load_stage(i);
    }
  }
  for (int64_t it = 0; it < (consumer ? cnt : 0); ++it) {
    const int64_t sb = sb0 + it;
    const int slot = static_cast<int>(it % kStages);
    detail::MbarWait(full0 + 8 * slot, static_cast<uint32_t>(it / kStages) & 1);
    if constexpr (!kProducerWarp) {
      // Every warp is done with the previous super-block: its slot can be
      // refilled; and with fragment buffer it & 1 (the one before that's).
      __syncthreads();
      if (tid == 0 && it > 0) detail::FenceProxyAsync();  // the copies below overwrite what was read
      if (tid == 0 && it > 0 && it - 1 + kStages < cnt) load_stage(it - 1 + kStages);
      if (kMins && tid == 0 && it >= 2) load_sums(it);
    }
    const uint8_t* st = smem + slot * kStage;
    const uint32_t xs_addr = detail::SmemAddr(st);
    const uint64_t desc0 = detail::SmemDescSw128(xs_addr, 1024);  // steps add their offset / 16
    if (it > 0) epilogue(it - 1);

    // This thread's two rows: scales, mins and super-block factors.
    const int skip = Block::kUnaligned ? static_cast<int>(sb * Block::kBytes % 16) : 0;  // where TMA put the block
    const uint8_t* s0 = st + kXBytes + rl0 * Block::kBox + skip;
    const uint8_t* s1 = s0 + 8 * Block::kBox;
    uint32_t hsc[2][2], hm[2][2];  // Q4_K, Q5_K: scales and mins, 4 to a word
    uint32_t df2[2][2];            // kF16W: (d, d) and (-dmin, -dmin) as f16 pairs
    uint32_t gsc[2][4];            // Q3_K: S_g; Q2_K: sc_g; Q6_K: its 16 signed scales; 4 to a word
    if constexpr (kPlain) {
      // Q6_K (2-byte aligned: 16-bit loads): scales at 192, d at 208. Q8_0
      // and Q4_0 take each 32-block's d at its first step.
      if constexpr (kQ6) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint8_t* b = r ? s1 : s0;
#pragma unroll
          for (int k = 0; k < 4; ++k) gsc[r][k] = U16At(b, 192 + 4 * k) | U16At(b, 194 + 4 * k) << 16;
          df2[r][0] = __byte_perm(U16At(b, 208), 0u, 0x1010);
        }
      }
    } else if constexpr (kQ3) {  // 2-byte aligned: 16-bit loads
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint8_t* b = r ? s1 : s0;
        UnpackScalesQ3Kx16(U16At(b, 96) | U16At(b, 98) << 16, U16At(b, 100) | U16At(b, 102) << 16,
                           U16At(b, 104) | U16At(b, 106) << 16, gsc[r]);
        d_prev[r] = __half2float(__ushort_as_half(static_cast<unsigned short>(U16At(b, 108))));
      }
    } else if constexpr (kQ2) {  // 4-byte aligned: byte j of the scales is sc_j | m_j << 4
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t* b = reinterpret_cast<const uint32_t*>(r ? s1 : s0);
#pragma unroll
        for (int k = 0; k < 4; ++k) gsc[r][k] = b[k] & 0x0F0F0F0Fu;
        // (m_2t, m_2t+1) and (m_2t+8, m_2t+9) as exact bf16 pairs.
        m_prev[r] = detail::MinPairBf16((b[t / 2] >> 4) & 0x0F0F0F0Fu, t % 2);
        m_prev[r + 2] = detail::MinPairBf16((b[2 + t / 2] >> 4) & 0x0F0F0F0Fu, t % 2);
        const uint32_t dd = b[20];  // d, dmin
        d_prev[r] = __half2float(__ushort_as_half(static_cast<unsigned short>(dd & 0xFFFF)));
        f_prev[r] = -__half2float(__ushort_as_half(static_cast<unsigned short>(dd >> 16)));
      }
    } else {
      const uint4 h0 = *reinterpret_cast<const uint4*>(s0), h1 = *reinterpret_cast<const uint4*>(s1);
      UnpackScaleMinK4x8(h0.y, h0.z, h0.w, hsc[0], hm[0]);
      UnpackScaleMinK4x8(h1.y, h1.z, h1.w, hsc[1], hm[1]);
      d_prev[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(h0.x & 0xFFFF)));
      f_prev[0] = -__half2float(__ushort_as_half(static_cast<unsigned short>(h0.x >> 16)));
      d_prev[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(h1.x & 0xFFFF)));
      f_prev[1] = -__half2float(__ushort_as_half(static_cast<unsigned short>(h1.x >> 16)));
      // (m_2t, m_2t+1) of each row as exact bf16: the A operand of the m term.
#pragma unroll
      for (int r = 0; r < 2; ++r) m_prev[r] = detail::MinPairBf16(t / 2 ? hm[r][1] : hm[r][0], t % 2);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t x = r ? h1.x : h0.x;
        df2[r][0] = __byte_perm(x, 0u, 0x1010);
        df2[r][1] = __byte_perm(x, 0u, 0x3232) ^ 0x80008000u;
      }
    }

    // The wgmma chain: 16 k16 steps (step 4p + v: values 64p + 16v ..
    // + 15; Q4_K, Q5_K group 2p + v / 2, Q2_K, Q3_K group 4p + v) in batches of
    // kBatch, each batch decoded into registers while the previous one runs
    // on the tensor cores.
    uint32_t a[2][kBatch][4];
#pragma unroll
    for (int bt = 0; bt < 16 / kBatch; ++bt) {
      const int buf = bt % 2;
      if (bt >= 2) {
        detail::WgmmaWait<1>();  // batch bt - 2 has read a[buf]
#pragma unroll
        for (int i = 0; i < kBatch; ++i) detail::PinRegs(a[buf][i]);
      }
      uint32_t sc2[2], bias2[2];  // group factors, set at each group's first step
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int s = bt * kBatch + i, p = s / 4, v = s % 4, h = v / 2;
        const int off = 16 * (v % 2) + 2 * t;
        // Q2_K, Q3_K group s: values 32q + 16lh .. + 15 of half hh, bit
        // field q of qs[32hh + l] (Q3_K: high bit 4hh + q of hmask[l]).
        const int hh = s / 8, q = s % 8 / 2;
        if constexpr (kPlain) {
          // Values 16s + 2t, + 1 (a[r]) and 16s + 2t + 8, + 9 (a[r + 2]).
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint8_t* b = r ? s1 : s0;
            if constexpr (kQ6) {
              // Half hh, quarter q: codes l = 16 (s % 2) + 2t (+ 8) of ql[64hh
              // + 32 (q % 2) + l] (nibble q / 2) and qh[32hh + l] (bits 2q);
              // group s's scale.
              sc2[r] = detail::SignedByteTimes(gsc[r][s / 4], s % 4, df2[r][0]);
              const int l = 16 * (s % 2) + 2 * t, ql = 64 * hh + 32 * (q % 2) + l, qh = 128 + 32 * hh + l;
              auto codes = [&](int o) {
                return ((U16At(b, ql + o) >> (4 * (q / 2))) & 0x0F0Fu) |
                       (((U16At(b, qh + o) >> (2 * q)) & 0x0303u) << 4);
              };
              a[buf][i][r] = detail::RoundedOffsetPair<32>(codes(0), sc2[r]);
              a[buf][i][r + 2] = detail::RoundedOffsetPair<32>(codes(8), sc2[r]);
            } else {
              // Block s / 2 (Q8_0: d, 32 signed codes; Q4_0: d, 16 bytes
              // of two nibbles, values j and j + 16 in byte j), half s % 2.
              constexpr int kBlockBytes = kQ8 ? 34 : 18;
              const int blk = kBlockBytes * (s / 2);
              if (i == 0 || s % 2 == 0) sc2[r] = __byte_perm(U16At(b, blk), 0u, 0x1010);
              if constexpr (kQ8) {
                const int o = blk + 2 + 16 * (s % 2) + 2 * t;
                a[buf][i][r] = detail::RoundedOffsetPair<128>(U16At(b, o) ^ 0x8080u, sc2[r]);
                a[buf][i][r + 2] = detail::RoundedOffsetPair<128>(U16At(b, o + 8) ^ 0x8080u, sc2[r]);
              } else {
                const int o = blk + 2 + 2 * t, sh = 4 * (s % 2);
                a[buf][i][r] = detail::RoundedOffsetPair<8>((U16At(b, o) >> sh) & 0x0F0Fu, sc2[r]);
                a[buf][i][r + 2] = detail::RoundedOffsetPair<8>((U16At(b, o + 8) >> sh) & 0x0F0Fu, sc2[r]);
              }
            }
          }
        } else if constexpr (kQ3) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint8_t* b = r ? s1 : s0;
            const uint32_t sc = detail::Q3ScalePair(gsc[r][s / 4], s % 4);
            a[buf][i][r] = detail::Q3Pair(U16At(b, 32 + 32 * hh + off), U16At(b, off), q, 4 * hh + q, sc);
            a[buf][i][r + 2] =
                detail::Q3Pair(U16At(b, 32 + 32 * hh + off + 8), U16At(b, off + 8), q, 4 * hh + q, sc);
          }
        } else if constexpr (kQ2) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint8_t* b = r ? s1 : s0;
            const uint32_t sc = detail::MmaOps<__half>::BytePair(gsc[r][s / 4], s % 4);
            const uint32_t bias = detail::MmaOps<__half>::Mul(sc, detail::MmaOps<__half>::kMinusBase2);
            a[buf][i][r] = detail::Q2Pair(U16At(b, 16 + 32 * hh + off), q, sc, bias);
            a[buf][i][r + 2] = detail::Q2Pair(U16At(b, 16 + 32 * hh + off + 8), q, sc, bias);
          }
        } else {
          using Codes = detail::WgmmaCodes<kType>;
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            if constexpr (kF16W) {
              // Group 2p + h's fl(d * sc) and fl(-dmin * m), at its first step.
              if (i == 0 || v % 2 == 0) {
                sc2[r] = detail::MmaOps<__half>::Mul(
                    detail::MmaOps<__half>::BytePair(hsc[r][p / 2], 2 * (p % 2) + h), df2[r][0]);
                bias2[r] = detail::MmaOps<__half>::Mul(
                    detail::MmaOps<__half>::BytePair(hm[r][p / 2], 2 * (p % 2) + h), df2[r][1]);
              }
              uint32_t c0, c1;
              Codes::GetExact(r ? s1 : s0, p, h, off, &c0, &c1);
              a[buf][i][r] = detail::RoundedPair(c0, sc2[r], bias2[r]);
              a[buf][i][r + 2] = detail::RoundedPair(c1, sc2[r], bias2[r]);
            } else {
              if (i == 0 || v % 2 == 0) {
                sc2[r] = detail::MmaOps<__half>::BytePair(hsc[r][p / 2], 2 * (p % 2) + h);
                if (Codes::kHighTimes16 && h) {  // codes x 16: (1024 + 16u) * sc / 16 - 64 sc, still exact
                  sc2[r] = detail::MmaOps<__half>::Mul(sc2[r], 0x2C002C00u);  // x 1/16
                }
                bias2[r] = detail::MmaOps<__half>::Mul(sc2[r], detail::MmaOps<__half>::kMinusBase2);
              }
              uint32_t c0, c1;
              Codes::Get(r ? s1 : s0, p, h, off, &c0, &c1);
              a[buf][i][r] = detail::ScaledPair(c0, sc2[r], bias2[r]);      // row g (+8), k 2t, 2t + 1
              a[buf][i][r + 2] = detail::ScaledPair(c1, sc2[r], bias2[r]);  // row g (+8), k 2t + 8, 2t + 9
            }
          }
        }
      }
      detail::WgmmaFence();
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int s = bt * kBatch + i, p = s / 4, v = s % 4;
        const uint64_t desc = desc0 + static_cast<uint64_t>((p * kNG * 1024 + 32 * v) >> 4);
        if constexpr (kF16W) {
          detail::Wgmma<kBN>::Mma(acc, a[buf][i], desc, 1);
        } else {
          detail::Wgmma<kBN>::Mma(P, a[buf][i], desc, s > 0);
        }
      }
      detail::WgmmaCommit();
    }

    // The chain is done reading this slot's x before the next iteration's
    // barrier lets thread 0 refill it, or before this warp releases the slot
    // to the producer warp (and, but for kF16W, P is complete).
    detail::WgmmaWait<0>();
    if constexpr (kF16W) {
      detail::PinRegs(acc);
    } else {
      detail::PinRegs(P);
    }
#pragma unroll
    for (int b = 0; b < 2; ++b) {
#pragma unroll
      for (int i = 0; i < kBatch; ++i) detail::PinRegs(a[b][i]);
    }
    if (kProducerWarp && lane == 0) detail::MbarArrive(empty0 + 8 * slot);
  }
  __syncthreads();
  if (cnt > 0) epilogue(cnt - 1);

  // With a K split, CTA kz of the cluster stores accumulators [e0, e1) of
  // each thread, each the sum of every CTA's, added in rank order (the same
  // bits whichever CTA adds them). The partial sums go through the stages'
  // shared memory, which no copy or wgmma uses any more.
  int e0 = 0, e1 = kAcc;
  if (ksplit > 1) {
    constexpr int kThreads = kWGs * 128;
    static_assert(kAcc * kThreads * 4 <= kStages * kStage, "the partial sums fit the stages");
    float* part = reinterpret_cast<float*>(smem);  // [kAcc][kThreads]
    if (consumer) {
#pragma unroll
      for (int i = 0; i < kAcc; ++i) part[i * kThreads + tid] = acc[i];
    }
    detail::ClusterSync();
    e0 = kz * (kAcc / ksplit);
    e1 = e0 + kAcc / ksplit;
#pragma unroll
    for (int i = 0; i < kAcc; ++i) {
      if (!consumer || i < e0 || i >= e1) continue;
      const uint32_t addr = detail::SmemAddr(part + i * kThreads + tid);
      float sum = detail::LoadClusterShared(addr, 0);
      for (int c = 1; c < ksplit; ++c) sum += detail::LoadClusterShared(addr, static_cast<uint32_t>(c));
      acc[i] = sum;
    }
    detail::ClusterSync();  // no CTA exits while another reads its shared memory
  }

#pragma unroll
  for (int i = 0; i < kNG; ++i) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t r = row0 + rl0 + 8 * (k / 2);
      const int64_t c = col0 + 8 * i + 2 * t + (k % 2);
      if (consumer && 4 * i + k >= e0 && 4 * i + k < e1 && r < rows && c < n) y[c * rows + r] = acc[4 * i + k];
    }
  }
#else
  __trap();
#endif
}

// Builds the kernel's tensor maps through the driver's cuTensorMapEncodeTiled
// (looked up at run time: no link against libcuda).
inline cudaError_t EncodeTensorMap2d(CUtensorMap* map, CUtensorMapDataType type, const void* base, uint64_t inner,
                                     uint64_t outer, uint64_t stride_bytes, uint32_t box_inner, uint32_t box_outer,
                                     CUtensorMapSwizzle swizzle) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      fn = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {inner, outer};
  const cuuint64_t strides[1] = {stride_bytes};
  const cuuint32_t box[2] = {box_inner, box_outer};
  const cuuint32_t estrides[2] = {1, 1};
  const CUresult r = encode(map, type, 2, const_cast<void*>(base), dims, strides, box, estrides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

// The tensor map for blocks that start off 16-byte boundaries (see
// detail::UnalignedBoxColumn): rows x row_bytes (a multiple of 16) in 16-bit
// elements, since a box may span at most 256 elements and boxes here reach
// 272 bytes; a box of box_rows rows x box_bytes.
inline cudaError_t EncodeUnalignedBlocksMap(CUtensorMap* map, const void* w, int64_t rows, uint64_t row_bytes,
                                            int box_bytes, int box_rows) {
  return EncodeTensorMap2d(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, w, row_bytes / 2, static_cast<uint64_t>(rows),
                           row_bytes, static_cast<uint32_t>(box_bytes / 2), static_cast<uint32_t>(box_rows),
                           CU_TENSOR_MAP_SWIZZLE_NONE);
}

// The K split for a grid of `tiles` CTAs (row tiles x column tiles) on a
// GPU with `slots` resident CTAs of the kernel (SMs x CTAs per SM): doubled
// from 1 while the doubled grid still fits in the slots and the GPU holds
// all of its clusters at once (clusters(k): how many clusters of k CTAs it
// holds), up to 4 and to the super-blocks, so that short matrices (4096
// rows: 32 or 64 row tiles) fill the GPU in one wave. (Clusters of 4 large
// CTAs need 4 free SMs in one GPC each: fewer of them fit than slots / 4.)
template <class Clusters>
int WgmmaKSplit(int64_t tiles, int64_t slots, int64_t cols, Clusters clusters) {
  int k_split = 1;
  while (k_split < 4 && tiles * k_split * 2 <= slots && k_split * 2 <= cols / 256 && tiles <= clusters(k_split * 2)) {
    k_split *= 2;
  }
  return k_split;
}

// How many clusters of k_split CTAs (threads and smem bytes of dynamic
// shared memory each) of `kernel` the current GPU holds at once; 0 where it
// cannot say.
template <class Kernel>
int MaxActiveClusters(Kernel kernel, int threads, int smem, int k_split) {
  cudaLaunchConfig_t config = {};
  cudaLaunchAttribute attr;
  config.gridDim = dim3(1, 1, static_cast<unsigned>(k_split));
  config.blockDim = dim3(static_cast<unsigned>(threads));
  config.dynamicSmemBytes = static_cast<size_t>(smem);
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = 1;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = static_cast<unsigned>(k_split);
  config.attrs = &attr;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    cudaGetLastError();  // clear it
    return 0;
  }
  return clusters;
}

// LaunchWgmmaMatMul's k_split that has it pick the split: WgmmaKSplit on
// the current GPU (no split where it cannot be queried).
constexpr int kWgmmaKSplitAuto = 0;

// The current GPU's SM count; 0 (and the error cleared) where it cannot be
// queried.
inline int CurrentSmCount() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();  // clear it
    return 0;
  }
  return sms;
}

// Q2_K, Q4_K, Q5_K: launches WgmmaXSumsKernel into `workspace`
// (WgmmaWorkspaceBytes(kType, n, cols) bytes, 16-byte aligned), then
// WgmmaMatMulKernel as its programmatic dependent (Q2_K's rows must be
// 16-byte multiples: cols % 1024 == 0). Q3_K, and kF16W (Q4_K, Q5_K with
// the weights rounded to f16; see the kernel): the product alone (no
// workspace; Q3_K: cols % 2048 == 0), as a programmatic dependent of
// whatever ran before it. k_split (1, 2 or 4, at most cols / 256; or
// kWgmmaKSplitAuto, see WgmmaKSplit) CTAs per tile each take a run of
// super-blocks, as one cluster. kProducerWarp: see the kernel (kF16W
// only). Header-only use from a .cu file compiled for sm_90a;
// preconditions as for the tensor-core kernels of bq_matmul.cuh.
template <QuantType kType, int kBN, int kWGs, int kStages, int kBatch, int kMinBlocks, bool kF16W = false,
          bool kProducerWarp = kF16W>
cudaError_t LaunchWgmmaMatMul(const uint8_t* w, int64_t rows, int64_t cols, const __half* x, int64_t n, float* y,
                              void* workspace, cudaStream_t stream, int k_split = 1) {
  if (k_split != kWgmmaKSplitAuto && ((k_split != 1 && k_split != 2 && k_split != 4) || k_split > cols / 256)) {
    return cudaErrorInvalidValue;
  }
  static_assert(128 % kBN == 0, "a CTA's columns lie inside one 128-column tile of the x sums");
  using Block = WgmmaBlock<kType>;
  const uint64_t row_bytes = static_cast<uint64_t>(cols / 256) * Block::kBytes;
  CUtensorMap xmap, wmap;
  cudaError_t err = EncodeTensorMap2d(&xmap, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, x, cols, n, cols * 2, 64, kBN,
                                      CU_TENSOR_MAP_SWIZZLE_128B);
  if (err == cudaSuccess && Block::kHalfMap) {
    err = EncodeUnalignedBlocksMap(&wmap, w, rows, row_bytes, Block::kBox, kWGs * 64);
  } else if (err == cudaSuccess) {
    err = EncodeTensorMap2d(&wmap, CU_TENSOR_MAP_DATA_TYPE_UINT8, w, row_bytes, rows, row_bytes, Block::kBox,
                            kWGs * 64, CU_TENSOR_MAP_SWIZZLE_NONE);
  }
  if (err != cudaSuccess) return err;
  constexpr int smem = WgmmaSmemBytes<kType, kBN, kWGs, kStages, kF16W>();
  constexpr int kThreads = kWGs * 128 + (kProducerWarp ? 32 : 0);
  auto kernel = WgmmaMatMulKernel<kType, kBN, kWGs, kStages, kBatch, kMinBlocks, kF16W, kProducerWarp>;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  if (k_split == kWgmmaKSplitAuto) {
    const int64_t tiles = (rows + kWGs * 64 - 1) / (kWGs * 64) * ((n + kBN - 1) / kBN);
    k_split = WgmmaKSplit(tiles, int64_t{CurrentSmCount()} * kMinBlocks, cols,
                          [&](int k) { return MaxActiveClusters(kernel, kThreads, smem, k); });
  }
  uint4* sums = static_cast<uint4*>(workspace);
  if constexpr (Block::kMins && !kF16W) {
    const int64_t sum_threads = cols / 256 * WgmmaSumGroups(n) * 32;
    const int64_t sum_blocks = (sum_threads + 255) / 256;
    WgmmaXSumsKernel<__half, Block::kSumVecs>
        <<<static_cast<unsigned>(sum_blocks < 4096 ? sum_blocks : 4096), 256, 0, stream>>>(x, n, cols, sums);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  cudaLaunchAttribute attr[2];
  cudaLaunchConfig_t config = gemv::LaunchConfig(1, kThreads, smem, stream, true, &attr[0]);
  config.gridDim = dim3(static_cast<unsigned>((rows + kWGs * 64 - 1) / (kWGs * 64)),
                        static_cast<unsigned>((n + kBN - 1) / kBN), static_cast<unsigned>(k_split));
  if (k_split > 1) {
    attr[1].id = cudaLaunchAttributeClusterDimension;
    attr[1].val.clusterDim.x = 1;
    attr[1].val.clusterDim.y = 1;
    attr[1].val.clusterDim.z = static_cast<unsigned>(k_split);
    config.numAttrs = 2;
  }
  return cudaLaunchKernelEx(&config, kernel, xmap, wmap, static_cast<const uint4*>(sums), rows, cols, n, y);
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BQ_WGMMA_CUH_
