// Dynamic-dispatch unit for activation quantization: Highway's per-target tables only; the
// kernels live in include/blockquant/cpu/kernels-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "activations.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "blockquant/cpu/kernels-inl.h"

#if HWY_ONCE
#include "blockquant/cpu/kernels.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
HWY_EXPORT(QuantizeRowQ8K);
HWY_EXPORT(QuantizeRowQ80);
namespace cpu {

void QuantizeActivationsQ8K(const float* x, BlockQ8_K* y, int64_t n) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(QuantizeRowQ8K)(x, y, n);
}
void QuantizeActivationsQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(QuantizeRowQ80)(x, y, n);
}
}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
#endif  // HWY_ONCE
