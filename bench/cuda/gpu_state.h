// What the GPU ran at while a measurement ran: SM clock, power and the
// driver's clock-event (throttle) reasons, sampled by a thread through NVML.
// Not energy: on an H200 NVML's energy counter advanced in steps far coarser
// than a 20 ms round (0 for most rounds, 1-4 kW worth for others).
// NVML is opened at run time (libnvidia-ml.so.1 comes with the driver), so
// the bench builds where it is absent (CI) and says so where it cannot load.
#ifndef BLOCKQUANT_BENCH_CUDA_GPU_STATE_H_
#define BLOCKQUANT_BENCH_CUDA_GPU_STATE_H_

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace bqbench {

// Samples GPU 0 every ~2 ms between Start() and Stop(); Summary() describes
// the last such span. Not usable (Summary says why) without NVML.
class GpuStateSampler {
 public:
  GpuStateSampler() {
    lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib_ == nullptr) return;
    auto sym = [&](const char* name) { return dlsym(lib_, name); };
    auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
    auto handle = reinterpret_cast<int (*)(unsigned, void**)>(sym("nvmlDeviceGetHandleByIndex_v2"));
    clock_ = reinterpret_cast<int (*)(void*, int, unsigned*)>(sym("nvmlDeviceGetClockInfo"));
    power_ = reinterpret_cast<int (*)(void*, unsigned*)>(sym("nvmlDeviceGetPowerUsage"));
    reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetCurrentClocksThrottleReasons"));
    auto limit = reinterpret_cast<int (*)(void*, unsigned*)>(sym("nvmlDeviceGetEnforcedPowerLimit"));
    shutdown_ = reinterpret_cast<int (*)()>(sym("nvmlShutdown"));
    // 0 is NVML_SUCCESS.
    ok_ = init != nullptr && handle != nullptr && clock_ != nullptr && power_ != nullptr && reasons_ != nullptr &&
          shutdown_ != nullptr && init() == 0;
    if (ok_ && handle(0, &dev_) != 0) {
      shutdown_();
      ok_ = false;
    }
    if (ok_ && (limit == nullptr || limit(dev_, &limit_mw_) != 0)) limit_mw_ = 0;
  }
  ~GpuStateSampler() {
    Stop();
    if (ok_) shutdown_();
    if (lib_ != nullptr) dlclose(lib_);
  }
  GpuStateSampler(const GpuStateSampler&) = delete;
  GpuStateSampler& operator=(const GpuStateSampler&) = delete;

  void Start() {
    if (!ok_ || running_) return;
    samples_ = 0;
    clk_min_ = ~0u;
    clk_max_ = 0;
    clk_sum_ = 0;
    pow_max_ = 0;
    reason_bits_ = 0;
    stop_ = false;
    running_ = true;
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        unsigned mhz = 0, mw = 0;
        unsigned long long bits = 0;
        // NVML_CLOCK_SM is 1.
        if (clock_(dev_, 1, &mhz) == 0 && power_(dev_, &mw) == 0 && reasons_(dev_, &bits) == 0) {
          ++samples_;
          clk_min_ = std::min(clk_min_, mhz);
          clk_max_ = std::max(clk_max_, mhz);
          clk_sum_ += mhz;
          pow_max_ = std::max(pow_max_, mw);
          reason_bits_ |= bits;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  void Stop() {
    if (!running_) return;
    stop_ = true;
    thread_.join();
    running_ = false;
  }
  // "SM 1920 MHz (1830-1980), 234 W max of 700, reasons 0x4" over the last
  // span: the mean, least and most SM clock sampled, the most power read
  // (NVML's reading, which the driver averages over a longer window than a
  // round: it lags), the enforced power limit, and NVML's clock-event bits
  // seen: 0x1 GPU idle, 0x4 SW power cap, 0x20 SW thermal, 0x40 HW thermal,
  // 0x80 HW power brake.
  std::string Summary() const {
    if (!ok_) return "no NVML";
    if (samples_ == 0) return "no samples";
    char s[128];
    std::snprintf(s, sizeof(s), "SM %u MHz (%u-%u), %u W max of %u, reasons 0x%llx",
                  static_cast<unsigned>(clk_sum_ / samples_), clk_min_, clk_max_, pow_max_ / 1000, limit_mw_ / 1000,
                  reason_bits_);
    return s;
  }

 private:
  void* lib_ = nullptr;
  void* dev_ = nullptr;
  bool ok_ = false, running_ = false;
  int (*clock_)(void*, int, unsigned*) = nullptr;
  int (*power_)(void*, unsigned*) = nullptr;
  int (*reasons_)(void*, unsigned long long*) = nullptr;
  int (*shutdown_)() = nullptr;
  unsigned limit_mw_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // Written by the sampling thread, read after Stop() has joined it.
  uint64_t samples_ = 0, clk_sum_ = 0;
  unsigned clk_min_ = 0, clk_max_ = 0, pow_max_ = 0;
  unsigned long long reason_bits_ = 0;
};

}  // namespace bqbench

#endif  // BLOCKQUANT_BENCH_CUDA_GPU_STATE_H_
