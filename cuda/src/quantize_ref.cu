// Launches the reference-running quantizer kernels (bq_quantize.cuh for the
// legacy types, bq_quantize_coop.cuh for the K-quants). Compiled with
// -fmad=false (cuda/CMakeLists.txt): the reference rounds every product, and
// so must its GPU copy.
#include <cuda_runtime.h>

#include "bq_quantize.cuh"
#include "bq_quantize_coop.cuh"
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {

namespace {
template <QuantType kType>
cudaError_t Launch(const float* x, int64_t rows, int64_t cols, const float* importance, uint8_t* out,
                   cudaStream_t stream) {
  // A thread per 32-value block (Q4_0..Q5_1), its working set in registers
  // and local memory; 64-thread CTAs.
  constexpr int kThreads = 64;
  const int64_t blocks = rows * (cols / RefQuantizer<kType>::kBlockElems);
  const int64_t ctas64 = (blocks + kThreads - 1) / kThreads;
  const unsigned ctas = static_cast<unsigned>(ctas64 < (int64_t{1} << 20) ? ctas64 : (int64_t{1} << 20));
  QuantizeRefKernel<kType><<<ctas, kThreads, 0, stream>>>(x, rows, cols, importance, out);
  return cudaGetLastError();
}

// K-quants: a lane per group (bq_quantize_coop.cuh).
template <QuantType kType>
cudaError_t LaunchCoop(const float* x, int64_t rows, int64_t cols, const float* importance, uint8_t* out,
                       cudaStream_t stream) {
  constexpr int kPerCta = coop::kThreads / (kQK_K / coop::KQuant<kType>::kGroup);
  const int64_t ctas64 = (rows * (cols / kQK_K) + kPerCta - 1) / kPerCta;
  const unsigned ctas = static_cast<unsigned>(ctas64 < (int64_t{1} << 20) ? ctas64 : (int64_t{1} << 20));
  coop::QuantizeKQuantKernel<kType><<<ctas, coop::kThreads, 0, stream>>>(x, rows, cols, importance, out);
  return cudaGetLastError();
}
}  // namespace

cudaError_t LaunchQuantizeRef(QuantType type, const float* x, int64_t rows, int64_t cols, const float* importance,
                              uint8_t* out, cudaStream_t stream) {
  switch (type) {
    case QuantType::kQ2_K: return LaunchCoop<QuantType::kQ2_K>(x, rows, cols, importance, out, stream);
    case QuantType::kQ3_K: return LaunchCoop<QuantType::kQ3_K>(x, rows, cols, importance, out, stream);
    case QuantType::kQ4_K: return LaunchCoop<QuantType::kQ4_K>(x, rows, cols, importance, out, stream);
    case QuantType::kQ5_K: return LaunchCoop<QuantType::kQ5_K>(x, rows, cols, importance, out, stream);
    case QuantType::kQ6_K: return LaunchCoop<QuantType::kQ6_K>(x, rows, cols, importance, out, stream);
    case QuantType::kQ4_0: return Launch<QuantType::kQ4_0>(x, rows, cols, importance, out, stream);
    case QuantType::kQ4_1: return Launch<QuantType::kQ4_1>(x, rows, cols, importance, out, stream);
    case QuantType::kQ5_0: return Launch<QuantType::kQ5_0>(x, rows, cols, importance, out, stream);
    case QuantType::kQ5_1: return Launch<QuantType::kQ5_1>(x, rows, cols, importance, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
