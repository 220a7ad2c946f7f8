// Instantiates the Q4_0 matrix-product kernels (see launch.cuh).
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {
template cudaError_t LaunchMatMul<QuantType::kQ4_0>(const uint8_t*, int64_t, int64_t, QuantType, const void*,
                                                 int64_t, float*, cudaStream_t, MatMulKernel);
}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
