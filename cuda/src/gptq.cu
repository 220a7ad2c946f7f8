// Launches bq_gptq.cuh's kernels. Compiled with -fmad=false (cuda/CMakeLists.txt):
// the rounding and compensation use the CPU version's unfused arithmetic.
#include <cuda_runtime.h>

#include "bq_gptq.cuh"
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

namespace {
template <QuantType kType>
cudaError_t RoundBatch(float* w, int64_t rows, int64_t ld, int64_t c0, const uint8_t* blocks, const float* u,
                       int64_t ldu, int8_t* levels, float* err, cudaStream_t stream) {
  constexpr int kWarps = 4;
  const int64_t ctas = (rows + kWarps - 1) / kWarps;
  if (ctas > 0x7fffffff) return cudaErrorInvalidValue;
  gptq::RoundBatchKernel<kType><<<static_cast<unsigned>(ctas), 32 * kWarps, 0, stream>>>(w, rows, ld, c0, blocks, u,
                                                                                         ldu, levels, err);
  return cudaGetLastError();
}

template <QuantType kType>
cudaError_t WriteLevels(const int8_t* levels, int64_t rows, int64_t cols, int64_t ld, uint8_t* blocks,
                        cudaStream_t stream) {
  const int64_t n = rows * (cols / kQK_K), ctas64 = (n + 127) / 128;
  const unsigned ctas = static_cast<unsigned>(ctas64 < (int64_t{1} << 20) ? ctas64 : (int64_t{1} << 20));
  gptq::WriteLevelsKernel<kType><<<ctas, 128, 0, stream>>>(levels, rows, cols, ld, blocks);
  return cudaGetLastError();
}
}  // namespace

cudaError_t LaunchGptqRoundBatch(QuantType type, float* w, int64_t rows, int64_t ld, int64_t c0,
                                 const uint8_t* blocks, const float* u, int64_t ldu, int8_t* levels, float* err,
                                 cudaStream_t stream) {
  switch (type) {
    case QuantType::kQ2_K: return RoundBatch<QuantType::kQ2_K>(w, rows, ld, c0, blocks, u, ldu, levels, err, stream);
    case QuantType::kQ3_K: return RoundBatch<QuantType::kQ3_K>(w, rows, ld, c0, blocks, u, ldu, levels, err, stream);
    case QuantType::kQ4_K: return RoundBatch<QuantType::kQ4_K>(w, rows, ld, c0, blocks, u, ldu, levels, err, stream);
    case QuantType::kQ5_K: return RoundBatch<QuantType::kQ5_K>(w, rows, ld, c0, blocks, u, ldu, levels, err, stream);
    case QuantType::kQ6_K: return RoundBatch<QuantType::kQ6_K>(w, rows, ld, c0, blocks, u, ldu, levels, err, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t LaunchWriteLevels(QuantType type, const int8_t* levels, int64_t rows, int64_t cols, int64_t ld,
                              uint8_t* blocks, cudaStream_t stream) {
  switch (type) {
    case QuantType::kQ2_K: return WriteLevels<QuantType::kQ2_K>(levels, rows, cols, ld, blocks, stream);
    case QuantType::kQ3_K: return WriteLevels<QuantType::kQ3_K>(levels, rows, cols, ld, blocks, stream);
    case QuantType::kQ4_K: return WriteLevels<QuantType::kQ4_K>(levels, rows, cols, ld, blocks, stream);
    case QuantType::kQ5_K: return WriteLevels<QuantType::kQ5_K>(levels, rows, cols, ld, blocks, stream);
    case QuantType::kQ6_K: return WriteLevels<QuantType::kQ6_K>(levels, rows, cols, ld, blocks, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
