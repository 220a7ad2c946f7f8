// blockquant_cuda.h: argument checks, kernel choice and launches.
#include "blockquant_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "blockquant/format/type_traits.h"
#include "bq_dequantize.cuh"
#include "bq_planar.cuh"
#include "bq_quantize.cuh"
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace {

constexpr int kInvalidArgument = 1, kUnsupportedType = 2, kShape = 3, kDevice = 8;

Status Fail(int code, const std::string& message) { return Status{code, message}; }

Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status{};
  return Fail(kDevice, std::string(what) + ": " + cudaGetErrorString(err));
}

// Elements and bytes per block of the types with CUDA kernels; 0 otherwise.
void BlockShape(QuantType type, int64_t* elems, int64_t* bytes) {
  *elems = 0;
  *bytes = 0;
  switch (type) {
    case QuantType::kQ4_0: *elems = 32; *bytes = 18; return;
    case QuantType::kQ8_0: *elems = 32; *bytes = 34; return;
    case QuantType::kQ2_K: *elems = 256; *bytes = 84; return;
    case QuantType::kQ3_K: *elems = 256; *bytes = 110; return;
    case QuantType::kQ4_K: *elems = 256; *bytes = 144; return;
    case QuantType::kQ5_K: *elems = 256; *bytes = 176; return;
    case QuantType::kQ6_K: *elems = 256; *bytes = 210; return;
    default: return;
  }
}

std::string TypeLabel(QuantType type) { return "type id " + std::to_string(static_cast<uint32_t>(type)); }

bool Aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

template <QuantType kType>
bool GemvQ8FitsLayout(bool planar, const void* w, int64_t cols, const void* x, int64_t n, int64_t smem) {
  return planar ? GemvQ8Fits<kType, true>(w, cols, x, n, smem) : GemvQ8Fits<kType, false>(w, cols, x, n, smem);
}

// Whether kGemvQ8 can run: f16/bf16 x, alignment, and the int8 copy of one
// pass's columns of x (up to 4; more run in passes) fits the current
// device's shared memory per block. planar: w is in the planar layout.
bool GemvFits(QuantType type, const void* w, int64_t cols, QuantType act_type, const void* x, int64_t n,
              bool planar = false) {
  if (act_type != QuantType::kF16 && act_type != QuantType::kBF16) return false;
  if (n < 1) return false;
  n = std::min<int64_t>(n, gemv::kGemvMaxColumns);
  int dev = 0, smem = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();  // clear, so the error does not surface at the next call
    return false;
  }
  switch (type) {
    case QuantType::kQ4_0: return GemvQ8FitsLayout<QuantType::kQ4_0>(planar, w, cols, x, n, smem);
    case QuantType::kQ8_0: return GemvQ8FitsLayout<QuantType::kQ8_0>(planar, w, cols, x, n, smem);
    case QuantType::kQ2_K: return GemvQ8FitsLayout<QuantType::kQ2_K>(planar, w, cols, x, n, smem);
    case QuantType::kQ3_K: return GemvQ8FitsLayout<QuantType::kQ3_K>(planar, w, cols, x, n, smem);
    case QuantType::kQ4_K: return GemvQ8FitsLayout<QuantType::kQ4_K>(planar, w, cols, x, n, smem);
    case QuantType::kQ5_K: return GemvQ8FitsLayout<QuantType::kQ5_K>(planar, w, cols, x, n, smem);
    case QuantType::kQ6_K: return GemvQ8FitsLayout<QuantType::kQ6_K>(planar, w, cols, x, n, smem);
    default: return false;
  }
}

Status CheckMatrix(QuantType type, const void* src, int64_t rows, int64_t cols, const char* what) {
  int64_t elems, bytes;
  BlockShape(type, &elems, &bytes);
  if (elems == 0) return Fail(kUnsupportedType, std::string(what) + ": no CUDA kernel for " + TypeLabel(type));
  if (src == nullptr) return Fail(kInvalidArgument, std::string(what) + ": null weights pointer");
  if (rows <= 0 || cols <= 0) {
    return Fail(kShape, std::string(what) + ": shape must be positive, got " + std::to_string(rows) + " x " +
                            std::to_string(cols));
  }
  if (cols % elems != 0) {
    return Fail(kShape, std::string(what) + ": row length " + std::to_string(cols) +
                            " is not a multiple of the block (" + std::to_string(elems) + ")");
  }
  if (!Aligned(src, 2)) return Fail(kInvalidArgument, std::string(what) + ": weights must be 2-byte aligned");
  if (rows > (int64_t{1} << 31) * 8) return Fail(kShape, std::string(what) + ": too many rows");
  return Status{};
}

template <QuantType kType, typename Out>
cudaError_t LaunchDequantOut(const uint8_t* w, int64_t rows, int64_t cols, void* dst, cudaStream_t stream) {
  const int64_t total = rows * (cols / 8);
  const int64_t blocks64 = (total + 255) / 256;
  const unsigned blocks = static_cast<unsigned>(blocks64 < (int64_t{1} << 20) ? blocks64 : (int64_t{1} << 20));
  Out* y = static_cast<Out*>(dst);
  if (Aligned(dst, 16)) {
    DequantizeKernel<kType, Out, true><<<blocks, 256, 0, stream>>>(w, rows, cols, y);
  } else {
    DequantizeKernel<kType, Out, false><<<blocks, 256, 0, stream>>>(w, rows, cols, y);
  }
  return cudaGetLastError();
}

template <QuantType kType>
cudaError_t LaunchDequant(const uint8_t* w, int64_t rows, int64_t cols, QuantType out, void* dst,
                          cudaStream_t stream) {
  switch (out) {
    case QuantType::kF16: return LaunchDequantOut<kType, __half>(w, rows, cols, dst, stream);
    case QuantType::kBF16: return LaunchDequantOut<kType, __nv_bfloat16>(w, rows, cols, dst, stream);
    default: return LaunchDequantOut<kType, float>(w, rows, cols, dst, stream);
  }
}

// Up to this n kAuto runs gemv_q8 (in passes of up to 4 columns beyond 4)
// where it does not run mma_q8 (from n = 3, below). Q4_K and Q5_K: to n = 2,
// then wgmma. Q8_0 and Q4_0: to n = 3, then mma8 (H200, Q4_K 28672 x 8192:
// gemv_q8 37.2 us at n = 1, 44.6 at n = 2, 55.5 at n = 3, 70.8 at n = 4; mma8
// 72-78 us from n = 2 on). Q2_K, Q3_K and Q6_K have no wgmma kernel and their
// mma8/mma16 are slow (H200, 28672 x 8192, one run, Q2_K / Q3_K / Q6_K: n = 5
// gemv_q8 91.8 / 114.0 / 163.8 us, mma8 140.8 / 353.4 / 259.9; n = 8 132.3 /
// 149.3 / 219.2 against 135.9 / 326.4 / 260.7; n = 12 197.6 / 223.5 / 327.3 against mma16
// 190.1 / 397.7 / 270.1), so gemv_q8 takes Q2_K and Q6_K to n = 8 and Q3_K
// to n = 16 (298.4 against 398.0).
int64_t GemvMaxN(QuantType type) {
  switch (type) {
    case QuantType::kQ2_K:
    case QuantType::kQ6_K: return 8;
    case QuantType::kQ3_K: return 16;
    default: return 3;
  }
}
// The types of bq_mma_q8_g16.cuh's mma_q8 (16-value groups), and the
// workspace mma_q8 needs for a type (n <= 16; these types to n = 64).
bool G16Type(QuantType type) {
  return type == QuantType::kQ2_K || type == QuantType::kQ3_K || type == QuantType::kQ6_K ||
         type == QuantType::kQ8_0 || type == QuantType::kQ4_0;
}
int64_t MmaQ8Bytes(QuantType type, int64_t n, int64_t cols) {
  return G16Type(type) ? MmaQ8G16WorkspaceBytes(n, cols) : MmaQ8WorkspaceBytes(n, cols);
}

// mma_q8 from n = 3 where it runs (H200, 28672 x 8192, us). Q4_K: 46.4-46.9
// for n = 3..8 and 59.2 at n = 16; gemv_q8 44.7 at n = 2, where mma_q8 takes
// 46.0, and 55.5 at n = 3; Q5_K 52.9 against gemv_q8's 63.8 at n = 3. The
// types of bq_mma_q8_g16.cuh, Q2_K / Q3_K / Q6_K / Q8_0 / Q4_0, mma_q8 /
// gemv_q8 at n = 3: 41.5 / 53.2 / 64.3 / 70.7 / 46.4 against 52.3 / 61.2 /
// 89.8 / 73.4 / 55.1. At n = 2 mma_q8 loses for Q2_K and Q3_K (41.3, 53.2
// against 39.2, 52.0) and wins for Q6_K (64.3 against 73.1), which keeps
// gemv_q8 there all the same so that planar Q6_K (59.4) is read in place.
// Beyond n = 16 the wide form of the 16-group mma_q8 runs to n = 64 (H200,
// n = 32 / 64, us; 28672 x 8192: Q2_K 100.9 / 202.7, Q3_K 111.8 / 183.7,
// Q6_K 106.8 / 181.6, Q8_0 92.9 / 153.2, against mma32 / mma64 203.5 /
// 298.5, 388.1 / 490.7, 371.6 / 458.9, 138.1 / 213.3; 4096 x 14336, Q2_K /
// Q3_K / Q6_K: 29.6 to 30.5 / 51.8 to 54.7 against 143.2 to 273.1 / 258.3
// to 426.7).
constexpr int64_t kMmaQ8MinN = 3;
// From this many rows Q2_K's and Q3_K's wgmma (x exact; Q3_K's without
// scratch) take n = 17..64 (Q2_K: 33..64) from the wide mma_q8 (H200, 28672
// x 8192, n = 24 / 32 / 64, us: Q3_K 97.2 / 97.3 / 112.3 against 110.6 /
// 110.6 / 184.8; Q2_K 101.9 / 101.2 / 132.7 against 101.9 / 101.7 / 213.8).
// Q2_K's wide mma_q8 with 2 x 2 warps (launch.cuh's LaunchMmaQ8G16WideFor)
// beat wgmma to n = 32 (93.4 / 94.0 against 100.8 / 100.1, 2026-12-04; 94.0
// / 94.0 with the proxy fence);
// Q3_K's did not (104.6 / 105.9 against 98.8 / 98.5). On 4096 x 14336 they
// lose (Q3_K 43.0 / 42.8 / 61.5 with the K split against 30.2 / 30.4 /
// 54.0; Q2_K 54.1 / 51.8 / 71.5 against 31.8 / 30.6 / 54.5).
constexpr int64_t kWgmmaTallRows = 16384;
int64_t WgmmaTallMinN(QuantType type) { return type == QuantType::kQ2_K ? 33 : 17; }
// From which n kAuto takes Q4_K's and Q5_K's f16-weights wgmma, which rounds
// the weights to f16 as dequantizing for cuBLAS does, over the exact one
// (from n = 17, where mma_q8's int8 x ends: the f16 weights add about 8x
// less error than int8 x). H200, us, f16 weights against exact, n = 17 /
// 32 / 64 / 128: 28672 x 8192 78.8 / 79.2 / 91.9 / 122.3 against 88.2 /
// 88.1 / 111.2 / 144.0; 4096 x 14336 27.4 / 27.3 / 46.5 / 46.6 against 43.5
// / 43.6 / 55.8 / 56.2 (docs/cuda.md). Q6_K, Q8_0 and Q4_0 take it from n =
// 33 over the wide mma_q8 (x rounded to int8) and mma64 past 64: H200, us,
// n = 32 / 64 / 128 / 512 on 4096 x 14336, f16 weights against those: Q6_K
// 53.6 / 53.9 / 54.7 / 115.1 against 30.6 / 52.2 / 400.6 / 798.8; Q8_0 43.6
// / 44.0 / 47.4 / 105.7 against 30.7 / 48.8 / 190.4 / 386.2; Q4_0 43.1 /
// 43.1 / 43.7 / 95.9 against 31.4 / 49.2 / 185.8 / 376.9 (at n = 64 on
// 28672 x 8192: 109.1 / 92.1 / 84.2 against 180.9 / 153.9 / 155.3).
// Returns 0 where the type has no f16-weights wgmma.
int64_t WgmmaF16WMinN(QuantType type) {
  switch (type) {
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: return 17;
    case QuantType::kQ6_K:
    case QuantType::kQ8_0:
    case QuantType::kQ4_0: return 33;
    default: return 0;
  }
}

bool MmaQ8Usable(QuantType type, const void* w, int64_t rows, int64_t cols, QuantType act_type, const void* x,
                 int64_t n) {
  if (act_type != QuantType::kF16 && act_type != QuantType::kBF16) return false;
  switch (type) {
    case QuantType::kQ4_K: return MmaQ8Fits<QuantType::kQ4_K>(w, rows, cols, x, n);
    case QuantType::kQ5_K: return MmaQ8Fits<QuantType::kQ5_K>(w, rows, cols, x, n);
    case QuantType::kQ2_K: return MmaQ8G16Fits<QuantType::kQ2_K>(w, rows, cols, x, n);
    case QuantType::kQ3_K: return MmaQ8G16Fits<QuantType::kQ3_K>(w, rows, cols, x, n);
    case QuantType::kQ6_K: return MmaQ8G16Fits<QuantType::kQ6_K>(w, rows, cols, x, n);
    case QuantType::kQ8_0: return MmaQ8G16Fits<QuantType::kQ8_0>(w, rows, cols, x, n);
    case QuantType::kQ4_0: return MmaQ8G16Fits<QuantType::kQ4_0>(w, rows, cols, x, n);
    default: return false;
  }
}

// Preconditions: MmaQ8Usable.
cudaError_t LaunchMmaQ8Typed(QuantType type, const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type,
                             const void* x, int64_t n, float* y, uint8_t* workspace, cudaStream_t s) {
  using detail::LaunchMmaQ8Act;
  switch (type) {
    case QuantType::kQ5_K: return LaunchMmaQ8Act<QuantType::kQ5_K>(w, rows, cols, act_type, x, n, y, workspace, s);
    case QuantType::kQ2_K: return LaunchMmaQ8Act<QuantType::kQ2_K>(w, rows, cols, act_type, x, n, y, workspace, s);
    case QuantType::kQ3_K: return LaunchMmaQ8Act<QuantType::kQ3_K>(w, rows, cols, act_type, x, n, y, workspace, s);
    case QuantType::kQ6_K: return LaunchMmaQ8Act<QuantType::kQ6_K>(w, rows, cols, act_type, x, n, y, workspace, s);
    case QuantType::kQ8_0: return LaunchMmaQ8Act<QuantType::kQ8_0>(w, rows, cols, act_type, x, n, y, workspace, s);
    case QuantType::kQ4_0: return LaunchMmaQ8Act<QuantType::kQ4_0>(w, rows, cols, act_type, x, n, y, workspace, s);
    default: return LaunchMmaQ8Act<QuantType::kQ4_K>(w, rows, cols, act_type, x, n, y, workspace, s);
  }
}

// The cols that kWgmma needs for a type, 0 if it takes none: rows of
// 16-byte multiples for TMA (Q2_K's 84-byte blocks: 4 to a row, Q3_K's 110:
// 8).
int64_t WgmmaColsMultiple(QuantType type) {
  switch (type) {
    case QuantType::kQ2_K: return 1024;
    case QuantType::kQ3_K: return 2048;
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: return 256;
    default: return 0;
  }
}

// What every wgmma kernel needs: F16 x, cols a multiple of `multiple` (0:
// the type has no such kernel), the tensor-core layout requirements, this
// build holds sm_90a code and the current GPU is sm_90.
bool WgmmaShapeFits(int64_t multiple, const void* weights, int64_t cols, QuantType act_type, const void* x) {
  if (multiple == 0 || act_type != QuantType::kF16) return false;
  if (cols % multiple != 0 || !Aligned(weights, 16) || !Aligned(x, 16)) return false;
#if defined(BLOCKQUANT_CUDA_HAS_SM90A)
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major == 9 && minor == 0;
#else
  return false;
#endif
}
// kWgmma runs here: Q2_K, Q3_K, Q4_K or Q5_K weights, cols a multiple of
// WgmmaColsMultiple.
bool WgmmaFits(QuantType type, const void* weights, int64_t cols, QuantType act_type, const void* x) {
  return WgmmaShapeFits(WgmmaColsMultiple(type), weights, cols, act_type, x);
}
// kWgmmaF16W runs here: as kWgmma, for Q4_K and Q5_K; Q6_K with rows of
// 16-byte multiples (its 210-byte blocks 8 to a row: cols % 2048 == 0),
// Q8_0 and Q4_0 (272 and 144 bytes per 256 values).
bool WgmmaF16WFits(QuantType type, const void* weights, int64_t cols, QuantType act_type, const void* x) {
  int64_t multiple = 0;
  switch (type) {
    case QuantType::kQ4_K:
    case QuantType::kQ5_K:
    case QuantType::kQ8_0:
    case QuantType::kQ4_0: multiple = 256; break;
    case QuantType::kQ6_K: multiple = 2048; break;
    default: break;
  }
  return WgmmaShapeFits(multiple, weights, cols, act_type, x);
}

}  // namespace

const char* MatMulKernelName(MatMulKernel kernel) {
  switch (kernel) {
    case MatMulKernel::kAuto: return "auto";
    case MatMulKernel::kSimple: return "simple";
    case MatMulKernel::kMma8: return "mma8";
    case MatMulKernel::kMma16: return "mma16";
    case MatMulKernel::kMma32: return "mma32";
    case MatMulKernel::kMma64: return "mma64";
    case MatMulKernel::kGemvQ8: return "gemv_q8";
    case MatMulKernel::kWgmma: return "wgmma";
    case MatMulKernel::kMmaQ8: return "mma_q8";
    case MatMulKernel::kWgmmaF16W: return "wgmma_f16w";
  }
  return "unknown";
}

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear it, so that it does not surface at the next call
    return 0;
  }
  return n;
}

bool MatMulSupported(QuantType type) {
  int64_t elems, bytes;
  BlockShape(type, &elems, &bytes);
  return elems != 0;
}

namespace {

// MatMul's and MatMulPlanar's argument checks (what: the caller's name).
Status CheckProduct(QuantType type, const void* weights, int64_t rows, int64_t cols, QuantType act_type,
                    const void* x, int64_t n, const float* y, const std::string& what) {
  Status st = CheckMatrix(type, weights, rows, cols, what.c_str());
  if (!st.ok()) return st;
  if (x == nullptr || y == nullptr) return Fail(kInvalidArgument, what + ": null activation or output pointer");
  if (n <= 0 || n > (int64_t{1} << 22)) return Fail(kShape, what + ": n must be in 1..2^22, got " + std::to_string(n));
  if (act_type != QuantType::kF16 && act_type != QuantType::kBF16 && act_type != QuantType::kF32) {
    return Fail(kUnsupportedType, what + ": activations must be F16, BF16 or F32, got " + TypeLabel(act_type));
  }
  if (!Aligned(x, act_type == QuantType::kF32 ? 4 : 2) || !Aligned(y, 4)) {
    return Fail(kInvalidArgument, what + ": activations or output misaligned for their element type");
  }
  return Status{};
}

// ChooseMatMulKernel; allow_scratch false when a scratch buffer could not be
// had (kMmaQ8 and kWgmma but Q3_K's need one).
MatMulKernel Choose(QuantType type, const void* weights, int64_t rows, int64_t cols, QuantType act_type,
                    const void* x, int64_t n, bool allow_scratch) {
  const bool wgmma_scratch_ok = allow_scratch || WgmmaWorkspaceBytes(type, n, cols) == 0;  // Q3_K's needs none
  const bool g16_tall =
      (type == QuantType::kQ2_K || type == QuantType::kQ3_K) && n >= WgmmaTallMinN(type) && rows >= kWgmmaTallRows;
  if (g16_tall && wgmma_scratch_ok && WgmmaFits(type, weights, cols, act_type, x)) return MatMulKernel::kWgmma;
  const int64_t f16w_min_n = WgmmaF16WMinN(type);
  if (f16w_min_n > 0 && n >= f16w_min_n && WgmmaF16WFits(type, weights, cols, act_type, x)) {
    return MatMulKernel::kWgmmaF16W;
  }
  const bool mma_q8 =
      allow_scratch && n >= kMmaQ8MinN && MmaQ8Usable(type, weights, rows, cols, act_type, x, n);
  if (mma_q8) return MatMulKernel::kMmaQ8;
  if (n <= GemvMaxN(type) && GemvFits(type, weights, cols, act_type, x, n)) return MatMulKernel::kGemvQ8;
  const bool mma_ok = cols % 256 == 0 && Aligned(weights, 16) && Aligned(x, 16) &&
                      (act_type == QuantType::kF16 || act_type == QuantType::kBF16);
  if (!mma_ok) return MatMulKernel::kSimple;
  if (wgmma_scratch_ok && n > GemvMaxN(type) && WgmmaFits(type, weights, cols, act_type, x)) {
    return MatMulKernel::kWgmma;
  }
  // Per CTA the weights are read once per 8 * kNT columns: wider tiles cut
  // weight traffic, narrower ones waste fewer MMA columns and keep more
  // CTAs per SM.
  if (n <= 8) return MatMulKernel::kMma8;
  if (n <= 16) return MatMulKernel::kMma16;
  if (n <= 32) return MatMulKernel::kMma32;
  return MatMulKernel::kMma64;
}

}  // namespace

MatMulKernel ChooseMatMulKernel(QuantType type, const void* weights, int64_t rows, int64_t cols,
                                QuantType act_type, const void* x, int64_t n) {
  return Choose(type, weights, rows, cols, act_type, x, n, true);
}

int64_t MatMulWorkspaceBytes(QuantType type, int64_t n, int64_t cols) {
  const bool wgmma_sums = WgmmaSumVecs(type) > 0;  // Q3_K's wgmma takes none
  if ((!wgmma_sums && !G16Type(type)) || n < 1 || cols <= 0 || cols % 256 != 0) return 0;
  const int64_t mma_q8 = n <= (G16Type(type) ? mmaq8g16::kMaxN : 16) ? MmaQ8Bytes(type, n, cols) : 0;
  return std::max(mma_q8, WgmmaWorkspaceBytes(type, n, cols));
}

Status MatMul(QuantType type, const void* weights, int64_t rows, int64_t cols, QuantType act_type, const void* x,
              int64_t n, float* y, void* stream, MatMulKernel kernel, void* workspace, int64_t workspace_bytes) {
  Status st = CheckProduct(type, weights, rows, cols, act_type, x, n, y, "MatMul");
  if (!st.ok()) return st;
  const bool automatic = kernel == MatMulKernel::kAuto;
  if (automatic) kernel = Choose(type, weights, rows, cols, act_type, x, n, true);
  const uint8_t* w = static_cast<const uint8_t*>(weights);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (kernel == MatMulKernel::kMmaQ8 || kernel == MatMulKernel::kWgmma) {
    // Kernels with scratch: mma_q8 rounds x into it, wgmma sums x's groups
    // into it. Choose checked kAuto's requirements.
    const bool q8 = kernel == MatMulKernel::kMmaQ8;
    if (!automatic && q8 && !MmaQ8Usable(type, weights, rows, cols, act_type, x, n)) {
      return Fail(kInvalidArgument,
                  "MatMul: kernel mma_q8 needs Q2_K..Q6_K, Q8_0 or Q4_0 weights, F16/BF16 x 16-byte aligned, "
                  "cols % 256 == 0, and for Q4_K/Q5_K n <= 16, 16-byte aligned weights, fewer than 2^31 rows and an "
                  "sm_90 GPU; for the others n <= 16 and an sm_80 or newer GPU, or n <= 64, an sm_90 GPU, 16-byte "
                  "aligned weights and rows; with code for it");
    }
    if (!automatic && !q8 && !WgmmaFits(type, weights, cols, act_type, x)) {
      return Fail(kInvalidArgument,
                  "MatMul: kernel wgmma needs Q2_K, Q3_K, Q4_K or Q5_K weights, F16 x, cols % 256 == 0 (Q2_K: "
                  "cols % 1024 == 0, Q3_K: cols % 2048 == 0), 16-byte aligned weights and x, an sm_90 GPU and a "
                  "build for sm_90a");
    }
    const int64_t need = q8 ? MmaQ8Bytes(type, n, cols) : WgmmaWorkspaceBytes(type, n, cols);
    const char* what = q8 ? "MatMul launch (mma_q8)" : "MatMul launch (wgmma)";
    auto launch = [&](void* scratch) {
      if (q8) return LaunchMmaQ8Typed(type, w, rows, cols, act_type, x, n, y, static_cast<uint8_t*>(scratch), s);
      const __half* xh = static_cast<const __half*>(x);
      switch (type) {
        case QuantType::kQ2_K: return detail::LaunchWgmma<QuantType::kQ2_K>(w, rows, cols, xh, n, y, scratch, s);
        case QuantType::kQ3_K: return detail::LaunchWgmma<QuantType::kQ3_K>(w, rows, cols, xh, n, y, scratch, s);
        case QuantType::kQ5_K: return detail::LaunchWgmma<QuantType::kQ5_K>(w, rows, cols, xh, n, y, scratch, s);
        default: return detail::LaunchWgmma<QuantType::kQ4_K>(w, rows, cols, xh, n, y, scratch, s);
      }
    };
    if (need == 0) return FromCuda(launch(nullptr), what);  // Q3_K's wgmma: no scratch
    if (workspace != nullptr) {
      if (workspace_bytes < need || !Aligned(workspace, 16)) {
        return Fail(kInvalidArgument, "MatMul: the workspace must be 16-byte aligned and hold at least " +
                                          std::to_string(need) + " bytes, got " + std::to_string(workspace_bytes));
      }
      return FromCuda(launch(workspace), what);
    }
    // No workspace given: a stream-ordered allocation.
    void* ws = nullptr;
    cudaError_t err = cudaMallocAsync(&ws, static_cast<size_t>(need), s);
    if (err == cudaSuccess) {
      err = launch(ws);
      const cudaError_t free_err = cudaFreeAsync(ws, s);
      return FromCuda(err != cudaSuccess ? err : free_err, what);
    }
    cudaGetLastError();  // clear the failed allocation
    if (!automatic) return FromCuda(err, q8 ? "MatMul: mma_q8's scratch buffer" : "MatMul: wgmma's scratch buffer");
    kernel = Choose(type, weights, rows, cols, act_type, x, n, false);  // out of memory: the next best kernel
  }
  if (kernel == MatMulKernel::kWgmmaF16W) {
    if (!automatic && !WgmmaF16WFits(type, weights, cols, act_type, x)) {  // Choose checked kAuto's
      return Fail(kInvalidArgument,
                  "MatMul: kernel wgmma_f16w needs Q4_K, Q5_K, Q6_K, Q8_0 or Q4_0 weights, F16 x, cols % 256 == 0 "
                  "(Q6_K: % 2048), 16-byte aligned weights and x, an sm_90 GPU and a build for sm_90a");
    }
    const __half* xh = static_cast<const __half*>(x);
    cudaError_t err;
    switch (type) {
      case QuantType::kQ5_K: err = detail::LaunchWgmmaF16W<QuantType::kQ5_K>(w, rows, cols, xh, n, y, s); break;
      case QuantType::kQ6_K: err = detail::LaunchWgmmaF16W<QuantType::kQ6_K>(w, rows, cols, xh, n, y, s); break;
      case QuantType::kQ8_0: err = detail::LaunchWgmmaF16W<QuantType::kQ8_0>(w, rows, cols, xh, n, y, s); break;
      case QuantType::kQ4_0: err = detail::LaunchWgmmaF16W<QuantType::kQ4_0>(w, rows, cols, xh, n, y, s); break;
      default: err = detail::LaunchWgmmaF16W<QuantType::kQ4_K>(w, rows, cols, xh, n, y, s); break;
    }
    return FromCuda(err, "MatMul launch (wgmma_f16w)");
  }
  if (kernel == MatMulKernel::kGemvQ8) {
    if (!GemvFits(type, weights, cols, act_type, x, n)) {
      return Fail(kInvalidArgument,
                  "MatMul: kernel gemv_q8 needs cols % 256 == 0, F16/BF16 x 16-byte aligned, weights 16-byte "
                  "(Q4_K/Q5_K) or 4-byte aligned, and about min(n, 4) * cols * 1.6 bytes of shared memory");
    }
  } else if (kernel != MatMulKernel::kSimple) {
    if (cols % 256 != 0 || !Aligned(weights, 16) || !Aligned(x, 16) || act_type == QuantType::kF32) {
      return Fail(kInvalidArgument, std::string("MatMul: kernel ") + MatMulKernelName(kernel) +
                                        " needs cols % 256 == 0, 16-byte aligned weights and x, F16/BF16 x");
    }
    if (kernel != MatMulKernel::kMma8 && kernel != MatMulKernel::kMma16 && kernel != MatMulKernel::kMma32 &&
        kernel != MatMulKernel::kMma64) {
      return Fail(kInvalidArgument, "MatMul: unknown kernel id " + std::to_string(static_cast<int>(kernel)));
    }
  }
  cudaError_t err = cudaSuccess;
  switch (type) {
    case QuantType::kQ4_0: err = detail::LaunchMatMul<QuantType::kQ4_0>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ8_0: err = detail::LaunchMatMul<QuantType::kQ8_0>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ2_K: err = detail::LaunchMatMul<QuantType::kQ2_K>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ3_K: err = detail::LaunchMatMul<QuantType::kQ3_K>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ4_K: err = detail::LaunchMatMul<QuantType::kQ4_K>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ5_K: err = detail::LaunchMatMul<QuantType::kQ5_K>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    case QuantType::kQ6_K: err = detail::LaunchMatMul<QuantType::kQ6_K>(w, rows, cols, act_type, x, n, y, s, kernel); break;
    default: return Fail(kUnsupportedType, "MatMul: no CUDA kernel for " + TypeLabel(type));
  }
  return FromCuda(err, "MatMul launch");
}

bool PlanarSupported(QuantType type) {
  return type == QuantType::kQ2_K || type == QuantType::kQ3_K || type == QuantType::kQ6_K;
}

int64_t MatMulPlanarWorkspaceBytes(QuantType type, int64_t rows, int64_t cols) {
  int64_t elems, bytes;
  BlockShape(type, &elems, &bytes);
  if (!PlanarSupported(type) || rows <= 0 || cols <= 0 || cols % elems != 0) return 0;
  return rows * (cols / elems) * bytes;
}

namespace {

// ToPlanar's, FromPlanar's and MatMulPlanar's type check (what: the caller's name).
Status CheckPlanarType(QuantType type, const std::string& what) {
  if (PlanarSupported(type)) return Status{};
  return Fail(kUnsupportedType, what + ": the planar layout covers Q2_K, Q3_K and Q6_K, got " + TypeLabel(type));
}

template <QuantType kType>
cudaError_t LaunchRepack(const uint8_t* src, uint8_t* dst, int64_t blocks, bool to_planar, cudaStream_t stream) {
  const int64_t grid64 = (blocks + 7) / 8;  // a warp per block, 8 to a CTA
  const unsigned grid = static_cast<unsigned>(grid64 < (int64_t{1} << 16) ? grid64 : (int64_t{1} << 16));
  if (to_planar) {
    PlanarRepackKernel<kType, true><<<grid, 256, 0, stream>>>(src, dst, blocks);
  } else {
    PlanarRepackKernel<kType, false><<<grid, 256, 0, stream>>>(src, dst, blocks);
  }
  return cudaGetLastError();
}

// ToPlanar (to_planar) and FromPlanar.
Status Repack(QuantType type, const void* src, int64_t rows, int64_t cols, void* dst, void* stream, bool to_planar) {
  const std::string what = to_planar ? "ToPlanar" : "FromPlanar";
  Status st = CheckPlanarType(type, what);
  if (!st.ok()) return st;
  st = CheckMatrix(type, src, rows, cols, what.c_str());
  if (!st.ok()) return st;
  if (dst == nullptr || !Aligned(dst, 2)) return Fail(kInvalidArgument, what + ": output null or not 2-byte aligned");
  const int64_t bytes = MatMulPlanarWorkspaceBytes(type, rows, cols);
  const uintptr_t a = reinterpret_cast<uintptr_t>(src), b = reinterpret_cast<uintptr_t>(dst);
  if (a < b + static_cast<uintptr_t>(bytes) && b < a + static_cast<uintptr_t>(bytes)) {
    return Fail(kInvalidArgument, what + ": input and output overlap");
  }
  const uint8_t* in = static_cast<const uint8_t*>(src);
  uint8_t* out = static_cast<uint8_t*>(dst);
  const int64_t blocks = rows * (cols / 256);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaSuccess;
  switch (type) {
    case QuantType::kQ2_K: err = LaunchRepack<QuantType::kQ2_K>(in, out, blocks, to_planar, s); break;
    case QuantType::kQ3_K: err = LaunchRepack<QuantType::kQ3_K>(in, out, blocks, to_planar, s); break;
    default: err = LaunchRepack<QuantType::kQ6_K>(in, out, blocks, to_planar, s); break;
  }
  return FromCuda(err, (what + " launch").c_str());
}

cudaError_t LaunchGemvPlanarTyped(QuantType type, const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type,
                                  const void* x, int64_t n, float* y, cudaStream_t s) {
  switch (type) {
    case QuantType::kQ2_K: return detail::LaunchGemvPlanar<QuantType::kQ2_K>(w, rows, cols, act_type, x, n, y, s);
    case QuantType::kQ3_K: return detail::LaunchGemvPlanar<QuantType::kQ3_K>(w, rows, cols, act_type, x, n, y, s);
    default: return detail::LaunchGemvPlanar<QuantType::kQ6_K>(w, rows, cols, act_type, x, n, y, s);
  }
}

}  // namespace

Status ToPlanar(QuantType type, const void* blocks, int64_t rows, int64_t cols, void* planar, void* stream) {
  return Repack(type, blocks, rows, cols, planar, stream, true);
}

Status FromPlanar(QuantType type, const void* planar, int64_t rows, int64_t cols, void* blocks, void* stream) {
  return Repack(type, planar, rows, cols, blocks, stream, false);
}

bool MatMulPlanarInPlace(QuantType type, const void* planar, int64_t cols, QuantType act_type, const void* x,
                         int64_t n) {
  // Exactly where kAuto runs gemv_q8 on the blocks, so that the bits are the same.
  return PlanarSupported(type) && Choose(type, planar, 1, cols, act_type, x, n, true) == MatMulKernel::kGemvQ8 &&
         GemvFits(type, planar, cols, act_type, x, n, true);
}

Status MatMulPlanar(QuantType type, const void* planar, int64_t rows, int64_t cols, QuantType act_type,
                    const void* x, int64_t n, float* y, void* stream, void* workspace, int64_t workspace_bytes) {
  Status st = CheckPlanarType(type, "MatMulPlanar");
  if (!st.ok()) return st;
  st = CheckProduct(type, planar, rows, cols, act_type, x, n, y, "MatMulPlanar");
  if (!st.ok()) return st;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (MatMulPlanarInPlace(type, planar, cols, act_type, x, n)) {
    return FromCuda(LaunchGemvPlanarTyped(type, static_cast<const uint8_t*>(planar), rows, cols, act_type, x, n, y, s),
                    "MatMulPlanar launch (gemv_q8)");
  }
  // The blocks back into scratch, then MatMul on them.
  const int64_t need = MatMulPlanarWorkspaceBytes(type, rows, cols);
  auto run = [&](void* blocks) {
    Status r = FromPlanar(type, planar, rows, cols, blocks, stream);
    return r.ok() ? MatMul(type, blocks, rows, cols, act_type, x, n, y, stream) : r;
  };
  if (workspace != nullptr) {
    if (workspace_bytes < need || !Aligned(workspace, 16)) {
      return Fail(kInvalidArgument, "MatMulPlanar: the workspace must be 16-byte aligned and hold at least " +
                                        std::to_string(need) + " bytes, got " + std::to_string(workspace_bytes));
    }
    return run(workspace);
  }
  void* scratch = nullptr;
  cudaError_t err = cudaMallocAsync(&scratch, static_cast<size_t>(need), s);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return FromCuda(err, "MatMulPlanar: scratch for the restored blocks");
  }
  Status r = run(scratch);
  err = cudaFreeAsync(scratch, s);
  if (r.ok() && err != cudaSuccess) return FromCuda(err, "MatMulPlanar: freeing its scratch");
  return r;
}

Status Dequantize(QuantType type, const void* src, int64_t rows, int64_t cols, QuantType out_type, void* dst,
                  void* stream) {
  Status st = CheckMatrix(type, src, rows, cols, "Dequantize");
  if (!st.ok()) return st;
  if (dst == nullptr) return Fail(kInvalidArgument, "Dequantize: null output pointer");
  if (out_type != QuantType::kF32 && out_type != QuantType::kF16 && out_type != QuantType::kBF16) {
    return Fail(kUnsupportedType, "Dequantize: output must be F32, F16 or BF16, got " + TypeLabel(out_type));
  }
  if (!Aligned(dst, out_type == QuantType::kF32 ? 4 : 2)) {
    return Fail(kInvalidArgument, "Dequantize: output misaligned for its element type");
  }
  const uint8_t* w = static_cast<const uint8_t*>(src);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaSuccess;
  switch (type) {
    case QuantType::kQ4_0: err = LaunchDequant<QuantType::kQ4_0>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ8_0: err = LaunchDequant<QuantType::kQ8_0>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ2_K: err = LaunchDequant<QuantType::kQ2_K>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ3_K: err = LaunchDequant<QuantType::kQ3_K>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ4_K: err = LaunchDequant<QuantType::kQ4_K>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ5_K: err = LaunchDequant<QuantType::kQ5_K>(w, rows, cols, out_type, dst, s); break;
    case QuantType::kQ6_K: err = LaunchDequant<QuantType::kQ6_K>(w, rows, cols, out_type, dst, s); break;
    default: return Fail(kUnsupportedType, "Dequantize: no CUDA kernel for " + TypeLabel(type));
  }
  return FromCuda(err, "Dequantize launch");
}

Status Quantize(QuantType type, const float* src, int64_t rows, int64_t cols, void* dst, void* stream,
                const float* importance) {
  const bool supported = type == QuantType::kQ8_0 || type == QuantType::kQ2_K || type == QuantType::kQ3_K ||
                         type == QuantType::kQ4_K || type == QuantType::kQ5_K || type == QuantType::kQ6_K ||
                         type == QuantType::kQ4_0 || type == QuantType::kQ4_1 || type == QuantType::kQ5_0 ||
                         type == QuantType::kQ5_1;
  if (!supported) return Fail(kUnsupportedType, "Quantize: no GPU quantizer for " + TypeLabel(type));
  if (src == nullptr || dst == nullptr) return Fail(kInvalidArgument, "Quantize: null pointer");
  const int64_t elems = Traits(type).block_elems;
  if (rows <= 0 || cols <= 0 || cols % elems != 0) {
    return Fail(kShape, "Quantize: shape must be positive with cols % " + std::to_string(elems) + " == 0, got " +
                            std::to_string(rows) + " x " + std::to_string(cols));
  }
  if (!Aligned(src, 4) || !Aligned(dst, 2) || !Aligned(importance, 4)) {
    return Fail(kInvalidArgument, "Quantize: misaligned pointer");
  }
  if (type != QuantType::kQ8_0) {
    return FromCuda(detail::LaunchQuantizeRef(type, src, rows, cols, importance, static_cast<uint8_t*>(dst),
                                              static_cast<cudaStream_t>(stream)),
                    "Quantize launch");
  }
  const int64_t blocks = rows * (cols / 32);
  const int64_t ctas64 = (blocks + 7) / 8;
  const unsigned ctas = static_cast<unsigned>(ctas64 < (int64_t{1} << 20) ? ctas64 : (int64_t{1} << 20));
  QuantizeQ8_0Kernel<float><<<ctas, 256, 0, static_cast<cudaStream_t>(stream)>>>(src, blocks,
                                                                                 static_cast<uint8_t*>(dst));
  return FromCuda(cudaGetLastError(), "Quantize launch");
}

namespace {
bool GptqType(QuantType type) {
  return type == QuantType::kQ2_K || type == QuantType::kQ3_K || type == QuantType::kQ4_K ||
         type == QuantType::kQ5_K || type == QuantType::kQ6_K;
}
}  // namespace

Status GptqRoundBatch(QuantType type, float* w, int64_t rows, int64_t ld, int64_t c0, const void* blocks,
                      const float* u, int64_t ldu, int8_t* levels, float* err, void* stream) {
  if (!GptqType(type)) return Fail(kUnsupportedType, "GptqRoundBatch: Q2_K..Q6_K only, got " + TypeLabel(type));
  if (!w || !blocks || !u || !levels || !err) return Fail(kInvalidArgument, "GptqRoundBatch: null pointer");
  if (rows <= 0 || c0 < 0 || c0 % 256 != 0 || ld < c0 + 256 || ldu < c0 + 256) {
    return Fail(kShape, "GptqRoundBatch: need rows > 0, c0 a multiple of 256 and c0 + 256 <= ld, ldu");
  }
  if (!Aligned(w, 4) || !Aligned(u, 4) || !Aligned(err, 4) || !Aligned(blocks, 2)) {
    return Fail(kInvalidArgument, "GptqRoundBatch: misaligned pointer");
  }
  return FromCuda(detail::LaunchGptqRoundBatch(type, w, rows, ld, c0, static_cast<const uint8_t*>(blocks), u, ldu,
                                               levels, err, static_cast<cudaStream_t>(stream)),
                  "GptqRoundBatch launch");
}

Status WriteBlockLevels(QuantType type, const int8_t* levels, int64_t rows, int64_t cols, int64_t ld, void* blocks,
                        void* stream) {
  if (!GptqType(type)) return Fail(kUnsupportedType, "WriteBlockLevels: Q2_K..Q6_K only, got " + TypeLabel(type));
  if (!levels || !blocks) return Fail(kInvalidArgument, "WriteBlockLevels: null pointer");
  if (rows <= 0 || cols <= 0 || cols % 256 != 0 || ld < cols) {
    return Fail(kShape, "WriteBlockLevels: need rows > 0, cols a multiple of 256 and ld >= cols");
  }
  if (!Aligned(blocks, 2)) return Fail(kInvalidArgument, "WriteBlockLevels: misaligned blocks");
  return FromCuda(detail::LaunchWriteLevels(type, levels, rows, cols, ld, static_cast<uint8_t*>(blocks),
                                            static_cast<cudaStream_t>(stream)),
                  "WriteBlockLevels launch");
}

__global__ void FindNonFiniteKernel(const float* src, int64_t count, unsigned long long* first) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    // Bit test rather than isfinite(), which fast-math flags could fold away.
    if ((__float_as_uint(src[i]) & 0x7f800000u) == 0x7f800000u) {
      atomicMin(first, static_cast<unsigned long long>(i));
      return;  // later indices of this thread are larger
    }
  }
}

Status FindNonFinite(const float* src, int64_t count, int64_t* first_bad, void* stream) {
  if (first_bad == nullptr || (src == nullptr && count > 0) || count < 0) {
    return Fail(kInvalidArgument, "FindNonFinite: null pointer or negative count");
  }
  *first_bad = -1;
  if (count == 0) return Status{};
  if (!Aligned(src, 4)) return Fail(kInvalidArgument, "FindNonFinite: misaligned pointer");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  unsigned long long* d_first = nullptr;
  Status st = FromCuda(cudaMalloc(&d_first, sizeof(*d_first)), "FindNonFinite alloc");
  if (!st.ok()) return st;
  unsigned long long first = ~0ull;
  cudaError_t err = cudaMemcpyAsync(d_first, &first, sizeof(first), cudaMemcpyHostToDevice, s);
  if (err == cudaSuccess) {
    const int64_t ctas = (count + 255) / 256;
    FindNonFiniteKernel<<<static_cast<unsigned>(ctas < 4096 ? ctas : 4096), 256, 0, s>>>(src, count, d_first);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpyAsync(&first, d_first, sizeof(first), cudaMemcpyDeviceToHost, s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  cudaFree(d_first);
  if (err != cudaSuccess) return FromCuda(err, "FindNonFinite");
  if (first != ~0ull) *first_bad = static_cast<int64_t>(first);
  return Status{};
}

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
