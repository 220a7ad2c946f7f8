// Shared by the dispatch units: applies BLOCKQUANT_CPU_TARGET once.
#ifndef BLOCKQUANT_SRC_DISPATCH_TARGET_INIT_H_
#define BLOCKQUANT_SRC_DISPATCH_TARGET_INIT_H_

namespace blockquant {
inline namespace v0 {
namespace internal {
// Reads BLOCKQUANT_CPU_TARGET on the first call (thread-safe) and forces that
// target; later calls do nothing.
void EnsureCpuTargetInit();
}  // namespace internal
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_SRC_DISPATCH_TARGET_INIT_H_
