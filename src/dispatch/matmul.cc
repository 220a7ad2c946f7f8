// Dynamic-dispatch unit for matvec/matmul: Highway's per-target tables only; the
// kernels live in include/blockquant/cpu/kernels-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "blockquant/cpu/kernels-inl.h"

#if HWY_ONCE
#include "blockquant/cpu/kernels.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
HWY_EXPORT(MatMul);
namespace cpu {

void MatMul(QuantType type, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n,
            float* y, Activations act, const ParallelFor& pf) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(MatMul)(type, w, rows, cols, x, n, y, act == Activations::kQ8, pf);
}
}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
#endif  // HWY_ONCE
