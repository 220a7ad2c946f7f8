// What the GPU ran at while a measurement ran: SM clock, power, energy and
// the driver's clock-event (throttle) reasons, sampled by a thread through
// NVML.
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
    energy_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetTotalEnergyConsumption"));
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
    energy_mj_ = 0;
    if (energy_ == nullptr || energy_(dev_, &energy_start_) != 0) energy_start_ = ~0ull;
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
    unsigned long long end = 0;
    if (energy_start_ != ~0ull && energy_(dev_, &end) == 0) energy_mj_ = end - energy_start_;
  }
  // "SM 1980 MHz (1755-1980), 512 W max of 700, 41 mJ per call, reasons
  // 0x4" over the last span. Power is NVML's reading (the driver averages
  // it); energy per call is the span's energy over `calls` (idle gaps
  // included; left out for calls = 0). Reasons are NVML's clock-event bits:
  // 0x1 GPU idle, 0x4 SW power cap, 0x20 SW thermal, 0x40 HW thermal, 0x80
  // HW power brake.
  std::string Summary(int64_t calls = 0) const {
    if (!ok_) return "no NVML";
    if (samples_ == 0) return "no samples";
    char s[160], e[48] = "";
    if (calls > 0 && energy_mj_ > 0) {
      std::snprintf(e, sizeof(e), ", %.1f mJ per call", static_cast<double>(energy_mj_) / static_cast<double>(calls));
    }
    std::snprintf(s, sizeof(s), "SM %u MHz (%u-%u), %u W max of %u%s, reasons 0x%llx",
                  static_cast<unsigned>(clk_sum_ / samples_), clk_min_, clk_max_, pow_max_ / 1000, limit_mw_ / 1000,
                  e, reason_bits_);
    return s;
  }

 private:
  void* lib_ = nullptr;
  void* dev_ = nullptr;
  bool ok_ = false, running_ = false;
  int (*clock_)(void*, int, unsigned*) = nullptr;
  int (*power_)(void*, unsigned*) = nullptr;
  int (*reasons_)(void*, unsigned long long*) = nullptr;
  int (*energy_)(void*, unsigned long long*) = nullptr;
  int (*shutdown_)() = nullptr;
  unsigned limit_mw_ = 0;
  unsigned long long energy_start_ = 0, energy_mj_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // Written by the sampling thread, read after Stop() has joined it.
  uint64_t samples_ = 0, clk_sum_ = 0;
  unsigned clk_min_ = 0, clk_max_ = 0, pow_max_ = 0;
  unsigned long long reason_bits_ = 0;
};

}  // namespace bqbench

#endif  // BLOCKQUANT_BENCH_CUDA_GPU_STATE_H_
