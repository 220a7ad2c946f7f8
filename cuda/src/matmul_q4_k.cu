// Instantiates the Q4_K matrix-product kernels (see launch.cuh).
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {
template cudaError_t LaunchMatMul<QuantType::kQ4_K>(const uint8_t*, int64_t, int64_t, QuantType, const void*,
                                                 int64_t, float*, cudaStream_t, MatMulKernel);
}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
