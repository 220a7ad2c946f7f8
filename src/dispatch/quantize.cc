// Dynamic-dispatch unit for the weight quantizers: Highway's per-target tables only; the
// kernels live in include/blockquant/cpu/quantize-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quantize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "blockquant/cpu/quantize-inl.h"

#if HWY_ONCE
#include "blockquant/cpu/kernels.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
HWY_EXPORT(QuantizeRowFast);
namespace cpu {

void QuantizeRow(QuantType type, const float* src, void* dst, int64_t n, const float* importance) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(QuantizeRowFast)(type, src, dst, n, importance);
}
}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
#endif  // HWY_ONCE
