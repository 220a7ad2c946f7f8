// Instantiates the Q4_K matrix-product kernels (see launch.cuh), mma_q8 included.
#include "launch.cuh"

namespace blockquant {
inline namespace v0 {
namespace cuda {
namespace detail {
template cudaError_t LaunchMatMul<QuantType::kQ4_K>(const uint8_t*, int64_t, int64_t, QuantType, const void*,
                                                 int64_t, float*, cudaStream_t, MatMulKernel);

cudaError_t LaunchMmaQ8Q4K(const uint8_t* w, int64_t rows, int64_t cols, QuantType act_type, const void* x,
                           int64_t n, float* y, uint8_t* workspace, cudaStream_t stream) {
  if (act_type == QuantType::kBF16) {
    return LaunchMmaQ8(w, rows, cols, static_cast<const __nv_bfloat16*>(x), n, y, workspace, stream);
  }
  return LaunchMmaQ8(w, rows, cols, static_cast<const __half*>(x), n, y, workspace, stream);
}
}  // namespace detail
}  // namespace cuda
}  // namespace v0
}  // namespace blockquant
