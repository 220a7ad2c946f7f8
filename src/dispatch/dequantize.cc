// Dynamic-dispatch unit for row dequantization: Highway's per-target tables only; the
// kernels live in include/blockquant/cpu/kernels-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dequantize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "blockquant/cpu/kernels-inl.h"

#if HWY_ONCE
#include "blockquant/cpu/kernels.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
HWY_EXPORT(DequantizeRowF32);
HWY_EXPORT(DequantizeRowHalf);
namespace cpu {

void DequantizeRow(QuantType type, const void* src, float* dst, int64_t n) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(DequantizeRowF32)(type, src, dst, n);
}
void DequantizeRowF16(QuantType type, const void* src, uint16_t* dst, int64_t n) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(DequantizeRowHalf)(type, src, dst, n, false);
}
void DequantizeRowBF16(QuantType type, const void* src, uint16_t* dst, int64_t n) {
  internal::EnsureCpuTargetInit();
  HWY_DYNAMIC_DISPATCH(DequantizeRowHalf)(type, src, dst, n, true);
}
}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
#endif  // HWY_ONCE
