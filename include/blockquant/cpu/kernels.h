// CPU kernels behind dynamic dispatch: plain pointer entry points, no vector
// types. Link blockquant::dispatch (built when Highway is found). Each call
// runs the best Highway target this CPU supports, or the one forced with
// ForceCpuTarget / the environment variable BLOCKQUANT_CPU_TARGET (read once,
// at the first call into any of these functions). docs/kernels.md has the
// details, accuracy bounds and the one piece of global state (Highway's chosen
// target).
//
// Header-only use with static dispatch: include blockquant/cpu/kernels-inl.h
// from your own .cc and call blockquant::HWY_NAMESPACE::<Kernel> instead.
#ifndef BLOCKQUANT_CPU_KERNELS_H_
#define BLOCKQUANT_CPU_KERNELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "blockquant/format/blocks.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/parallel.h"

namespace blockquant {
inline namespace v0 {
namespace cpu {

// Dequantizes one row of n elements (n a multiple of the block size) to f32,
// f16 or bf16 bits. Bit-exact with DequantizeRowReference (then F32ToF16 /
// F32ToBF16), NaN and Inf included, on every target.
void DequantizeRow(QuantType type, const void* src, float* dst, int64_t n);
void DequantizeRowF16(QuantType type, const void* src, uint16_t* dst, int64_t n);
void DequantizeRowBF16(QuantType type, const void* src, uint16_t* dst, int64_t n);

// Weight quantization of one row of n finite f32 values: the same bytes as
// QuantizeRowReference (quant/quantize.h) on every target, with or without
// importance (null or n weights >= 0). Pass it to QuantizeTensor to quantize
// whole tensors with it.
void QuantizeRow(QuantType type, const float* src, void* dst, int64_t n, const float* importance = nullptr);

// Activation quantization, byte-identical with ref::QuantizeRowQ8_K / Q8_0.
void QuantizeActivationsQ8K(const float* x, BlockQ8_K* y, int64_t n);
void QuantizeActivationsQ8_0(const float* x, BlockQ8_0* y, int64_t n);

// dot(weight row, activation row) over n elements. VecDot: act_row holds the
// weight type's q8 partner (Q8_K for K-quants, Q8_0 for the legacy types; f32
// for F32/F16/BF16 weights). VecDotF32: f32 activations.
float VecDot(QuantType type, const void* w_row, const void* act_row, int64_t n);
float VecDotF32(QuantType type, const void* w_row, const float* x, int64_t n);

enum class Activations { kQ8, kF32 };

// y[n][rows] = x[n][cols] * W^T, W row-major [rows][cols] of `type`.
// kQ8 quantizes each x row to the q8 partner first (as llama.cpp does).
// Parallel over output rows through pf; results do not depend on pf.
void MatMul(QuantType type, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n,
            float* y, Activations act = Activations::kQ8, const ParallelFor& pf = SerialFor());

struct CpuTargetInfo {
  std::vector<std::string> compiled;   // targets with code in this build
  std::vector<std::string> supported;  // compiled and runnable on this CPU
  std::string chosen;                  // the one calls use now
};
CpuTargetInfo CpuTargets();

// Forces a target by Highway name ("AVX3_DL", "AVX2", "SSE4", "EMU128", ...);
// "" or "best" restores the automatic choice. Throws kInvalidArgument for a
// target that is not compiled in or not supported here. Process-wide.
void ForceCpuTarget(const std::string& name);

}  // namespace cpu
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CPU_KERNELS_H_
