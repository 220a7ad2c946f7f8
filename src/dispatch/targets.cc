// Target listing and forcing. The only global state is Highway's own chosen
// target (hwy::GetChosenTarget, shared by every HWY_DYNAMIC_DISPATCH table in
// the process); forcing goes through hwy::SetSupportedTargetsForTest, which
// limits the "supported" mask and re-chooses.
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include "blockquant/cpu/kernels.h"
#include "blockquant/error.h"
#include "hwy/targets.h"
#include "target_init.h"

namespace blockquant {
inline namespace v0 {
namespace {

int64_t FindTarget(const std::string& name) {
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(t)) return t;
  }
  return 0;
}

void ForceTarget(const std::string& name) {
  if (name.empty() || name == "best") {
    hwy::SetSupportedTargetsForTest(0);
    return;
  }
  hwy::SetSupportedTargetsForTest(0);  // list against the real CPU
  const int64_t t = FindTarget(name);
  if (t == 0) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                     "CPU target '" + name + "' is not compiled in or not supported on this CPU");
  }
  hwy::SetSupportedTargetsForTest(t);
}

}  // namespace

namespace internal {
void EnsureCpuTargetInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("BLOCKQUANT_CPU_TARGET");
    if (env != nullptr && env[0] != '\0') ForceTarget(env);
  });
}
}  // namespace internal

namespace cpu {

CpuTargetInfo CpuTargets() {
  internal::EnsureCpuTargetInit();
  CpuTargetInfo info;
  // Unsigned: the loop walks through bit 63, where a signed shift is undefined
  // (UBSan caught it).
  const uint64_t compiled = static_cast<uint64_t>(HWY_TARGETS);
  for (uint64_t bit = 1; bit != 0 && bit <= compiled; bit <<= 1) {
    if (bit & compiled) info.compiled.emplace_back(hwy::TargetName(static_cast<int64_t>(bit)));
  }
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) info.supported.emplace_back(hwy::TargetName(t));
  // Chosen = the best target in the current supported mask (lowest bit on x86).
  const int64_t chosen_mask = hwy::SupportedTargets() & HWY_TARGETS;
  info.chosen = chosen_mask ? hwy::TargetName(chosen_mask & -chosen_mask) : "none";
  return info;
}

void ForceCpuTarget(const std::string& name) {
  internal::EnsureCpuTargetInit();
  ForceTarget(name);
}

}  // namespace cpu
}  // namespace v0
}  // namespace blockquant
