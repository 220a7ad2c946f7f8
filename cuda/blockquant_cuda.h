// Host launch API for blockquant's CUDA kernels. No CUDA types appear here:
// device pointers are void* / float*, a stream is a cudaStream_t passed as
// void* (nullptr = the legacy default stream), sizes are int64_t, and every
// call returns a Status instead of throwing. Link blockquant::cuda.
//
// Layouts (all row-major, device memory):
//   weights: rows x cols elements of a block type, i.e. rows * RowBytes(cols)
//            bytes exactly as in a GGUF tensor (cols = GGUF dims[0]);
//   x:       n x cols activations (f16, bf16 or f32);
//   y:       n x rows f32, y[c * rows + r] = sum_k W[r][k] * x[c][k].
// Calls are asynchronous on the stream; errors in argument checks and
// launches are reported, faults inside a kernel surface at the next
// synchronizing call.
#ifndef BLOCKQUANT_CUDA_BLOCKQUANT_CUDA_H_
#define BLOCKQUANT_CUDA_BLOCKQUANT_CUDA_H_

#include <cstdint>
#include <string>

#include "blockquant/format/quant_type.h"

namespace blockquant {
inline namespace v0 {
namespace cuda {

// code is 0 on success, else a blockquant::ErrorCode value
// (1 invalid_argument, 2 unsupported_type, 3 shape, 8 device).
struct Status {
  int code = 0;
  std::string message;
  bool ok() const { return code == 0; }
};

// Matrix-product kernels. kAuto picks by n (see ChooseMatMulKernel); the
// others force a kernel, for benchmarks and tests.
enum class MatMulKernel : int {
  kAuto = 0,
  kSimple = 1,  // one warp per row, exact f32 decode, CUDA cores; any shape
  kMma8 = 2,    // tensor cores, 8 activation columns per CTA (n <= 8)
  kMma16 = 3,   // 16 columns per CTA
  kMma32 = 4,   // 32 columns per CTA
  kMma64 = 5,   // 64 columns per CTA, 128 rows per CTA (batched GEMM)
  kGemvQ8 = 6,  // x quantized to int8 per 32 values on the fly, dp4a; up to 4
                // columns per pass, more in passes that each read all the
                // weights; adds at most sum_k |w_k| * max|x_block| / 254 of error
  kWgmma = 7,   // Hopper warpgroup MMA (bq_wgmma.cuh): Q4_K/Q5_K, Q2_K
                // with cols % 1024 == 0 and Q3_K with cols % 2048 == 0, with
                // F16 x, on an sm_90 GPU with a build for sm_90a; same
                // exactness as kMma*; all but Q3_K need a scratch buffer for
                // x's group sums (see MatMul)
  kMmaQ8 = 8,   // x rounded to int8 as in kGemvQ8, int8 tensor cores:
                // Q4_K/Q5_K for n <= 16 on an sm_90 GPU (bq_mma_q8.cuh);
                // Q2_K/Q3_K/Q6_K/Q8_0/Q4_0 for n <= 16 on sm_80 or newer, and
                // n <= 64 on sm_90 with 16-byte aligned weights and rows
                // (bq_mma_q8_g16.cuh); needs a scratch buffer of about
                // 11 * cols (n <= 8) or 22 * cols bytes (the others: 13 * cols
                // per 8 columns, n rounded up to 8, 16, 32 or 64; see MatMul)
  kWgmmaF16W = 9,  // kWgmma with the weights rounded to f16 in registers, as
                   // dequantizing to f16 for cuBLAS rounds them (each off by
                   // at most about 2^-10 of |d sc u| + |dmin m|; beyond f16's
                   // range they overflow), x exact: one wgmma chain, no x sums,
                   // no scratch; Q4_K/Q5_K, same requirements as kWgmma;
                   // also Q8_0/Q4_0 (one rounding, as dequantizing does) and
                   // Q6_K (two: fl(fl(d * sc) * q), cols % 2048 == 0)
};

const char* MatMulKernelName(MatMulKernel kernel);

// CUDA devices visible to this process; 0 when there is no driver or device.
int DeviceCount();

// Types with CUDA kernels: Q4_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool MatMulSupported(QuantType type);

// The kernel kAuto runs for these arguments, the fastest measured (an H200,
// docs/cuda.md): kGemvQ8 for n <= 2 and kMmaQ8 for n = 3..16 where it
// runs, to n = 64 for Q2_K/Q3_K/Q6_K/Q8_0/Q4_0 where its wide form runs
// (but kWgmma for Q2_K and Q3_K with F16 x from 16384 rows on, and
// kWgmmaF16W for Q6_K/Q8_0/Q4_0 with F16 x from n = 33; else kGemvQ8 to
// n = 3 for Q8_0 and Q4_0, to n = 8 for Q2_K and Q6_K, to n = 16 for
// Q3_K); then kWgmma where it runs (kWgmmaF16W for Q4_K, Q5_K, Q6_K, Q8_0
// and Q4_0 with F16 x), else the mma kernels above, and kSimple when their
// requirements fail (cols % 256, 16-byte aligned weights and x, f16 or
// bf16 activations).
// kGemvQ8 and kMmaQ8 round x to int8 (error bound in bq_gemv.cuh) and
// kWgmmaF16W the weights to f16; force kWgmma or kMma8..64 to keep both
// exact.
MatMulKernel ChooseMatMulKernel(QuantType type, const void* weights, int64_t rows, int64_t cols,
                                QuantType act_type, const void* x, int64_t n);

// y = x W^T (see the layout above). act_type: kF16 or kBF16 (kF32 with the
// simple kernel only). y must not overlap the inputs.
// workspace: scratch device memory for kMmaQ8 (which rounds x into it) and
// kWgmma on Q2_K/Q4_K/Q5_K (x's group sums), at least MatMulWorkspaceBytes(type, n, cols)
// bytes, 16-byte aligned, untouched by others until the call's work on the
// stream is done. Without it, those kernels take a stream-ordered allocation
// per call (cudaMallocAsync), which cost 3-9 us per call on an H200; if that
// fails, kAuto picks a kernel without scratch and a forced one returns the
// error.
Status MatMul(QuantType type, const void* weights, int64_t rows, int64_t cols, QuantType act_type,
              const void* x, int64_t n, float* y, void* stream = nullptr,
              MatMulKernel kernel = MatMulKernel::kAuto, void* workspace = nullptr, int64_t workspace_bytes = 0);

// The scratch bytes MatMul may use for weights of `type` and n columns of x
// of length cols (0 when no kernel for them needs any).
int64_t MatMulWorkspaceBytes(QuantType type, int64_t n, int64_t cols);

// The planar weight layout (optional; Q2_K, Q3_K and Q6_K): the same bytes
// as the GGUF blocks, regrouped into three planes (codes, scale bytes, f16
// d) so that gemv_q8 reads each lane's bytes with wide aligned loads.
// bq_planar.cuh has the layout; docs/cuda.md what it saves (H200, n = 1,
// 28672 x 8192: Q6_K 56.5 -> 49.3 us, Q3_K 39.2 -> 32.4, Q2_K 27.2 -> 25.3).
// Same size as the blocks: rows * cols / 256 blocks.
bool PlanarSupported(QuantType type);
// rows x cols GGUF blocks -> the planar layout, and back. The buffers must
// not overlap.
Status ToPlanar(QuantType type, const void* blocks, int64_t rows, int64_t cols, void* planar,
                void* stream = nullptr);
Status FromPlanar(QuantType type, const void* planar, int64_t rows, int64_t cols, void* blocks,
                  void* stream = nullptr);
// MatMul (kAuto) on planar weights, with the same results as on the blocks.
// Where kAuto runs gemv_q8 on the blocks (MatMulPlanarInPlace; here also
// 16-byte aligned planes), it reads the planes in place. Otherwise the call first
// restores the blocks into the workspace (at least
// MatMulPlanarWorkspaceBytes, 16-byte aligned; without one, a stream-ordered
// allocation) and runs MatMul (kAuto) on them, one extra pass over the
// weights.
Status MatMulPlanar(QuantType type, const void* planar, int64_t rows, int64_t cols, QuantType act_type,
                    const void* x, int64_t n, float* y, void* stream = nullptr, void* workspace = nullptr,
                    int64_t workspace_bytes = 0);
// Whether MatMulPlanar on these arguments reads the planes in place (and
// needs no workspace).
bool MatMulPlanarInPlace(QuantType type, const void* planar, int64_t cols, QuantType act_type, const void* x,
                         int64_t n);
// The size of the weights: the most MatMulPlanar's workspace needs.
int64_t MatMulPlanarWorkspaceBytes(QuantType type, int64_t rows, int64_t cols);
// rows x cols blocks -> rows x cols values of out_type (kF32, kF16, kBF16).
// f32 output is bit-identical to ref::DequantizeRowXxx.
Status Dequantize(QuantType type, const void* src, int64_t rows, int64_t cols, QuantType out_type, void* dst,
                  void* stream = nullptr);

// rows x cols f32 -> blocks of type, byte-identical to the CPU reference
// (QuantizeRowReference / cpu::QuantizeRow). Every block type: Q2_K..Q6_K,
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. importance: null or cols weights >= 0 in
// device memory, one per column (an imatrix row; ignored for Q8_0, as on the
// CPU). Inputs must be finite: this call does not check (FindNonFinite does).
Status Quantize(QuantType type, const float* src, int64_t rows, int64_t cols, void* dst,
                void* stream = nullptr, const float* importance = nullptr);

// The check Quantize leaves out: *first_bad = the lowest index i < count with
// src[i] NaN or Inf, or -1 when all are finite. Synchronous (it waits for the
// stream, since the answer is needed on the host) and reads src once, a small
// cost beside quantizing it.
Status FindNonFinite(const float* src, int64_t count, int64_t* first_bad, void* stream = nullptr);

// The GPU half of GPTQ-style quantization (calib/gptq.h has the algorithm;
// bq.calib.quantize(..., device="cuda") drives it with PyTorch for H, its
// inverse Cholesky factor U and the updates). K-quants: Q2_K..Q6_K.
//
// GptqRoundBatch: for the 256 columns [c0, c0 + 256) of the working weights
// w (rows x ld f32, row-major), whose blocks (one per row, rows x block bytes)
// hold the scales the quantizer chose from these weights: rounds each column
// in order onto its block's grid, writes its level into levels (int8, rows x
// ld) and e = rounding error / U[c][c] into err (rows x 256 f32), and takes
// e * U[c][j] off the batch's later columns j in w. The caller then applies
// the batch to the later columns: w[:, c0+256:] -= err * U[c0:c0+256, c0+256:].
// u: the cols x cols upper factor (H^-1 = U^T U), row-major with stride ldu.
Status GptqRoundBatch(QuantType type, float* w, int64_t rows, int64_t ld, int64_t c0, const void* blocks,
                      const float* u, int64_t ldu, int8_t* levels, float* err, void* stream = nullptr);

// Writes levels (int8, rows x cols, row stride ld) into the level bits of the
// rows x cols blocks of type at blocks, leaving their scale bytes as they are.
Status WriteBlockLevels(QuantType type, const int8_t* levels, int64_t rows, int64_t cols, int64_t ld,
                        void* blocks, void* stream = nullptr);

}  // namespace cuda
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CUDA_BLOCKQUANT_CUDA_H_
