// Dynamic-dispatch unit for dot products: Highway's per-target tables only; the
// kernels live in include/blockquant/cpu/kernels-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dot.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "blockquant/cpu/kernels-inl.h"

#if HWY_ONCE
#include "blockquant/cpu/kernels.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
HWY_EXPORT(VecDotQ8);
HWY_EXPORT(VecDotF32);
namespace cpu {

float VecDot(QuantType type, const void* w_row, const void* act_row, int64_t n) {
  internal::EnsureCpuTargetInit();
  return HWY_DYNAMIC_DISPATCH(VecDotQ8)(type, w_row, act_row, n);
}
float VecDotF32(QuantType type, const void* w_row, const float* x, int64_t n) {
  internal::EnsureCpuTargetInit();
  return HWY_DYNAMIC_DISPATCH(VecDotF32)(type, w_row, x, n);
}
}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
#endif  // HWY_ONCE
