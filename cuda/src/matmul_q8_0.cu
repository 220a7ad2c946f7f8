// Instantiates the Q8_0 matrix-product kernels (see launch.cuh), mma_q8 and the f16-weights wgmma included.
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {
template cudaError_t LaunchMatMul<QuantType::kQ8_0>(const uint8_t*, int64_t, int64_t, QuantType, const void*,
                                                 int64_t, float*, cudaStream_t, MatMulKernel);
template cudaError_t LaunchMmaQ8Act<QuantType::kQ8_0>(const uint8_t*, int64_t, int64_t, QuantType, const void*,
                                                      int64_t, float*, uint8_t*, cudaStream_t);
template cudaError_t LaunchWgmmaF16W<QuantType::kQ8_0>(const uint8_t*, int64_t, int64_t, const __half*, int64_t,
                                                       float*, cudaStream_t);
}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
