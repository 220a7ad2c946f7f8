// Helpers shared by the CUDA test and benchmark programs: deterministic
// random blocks for every type, checked CUDA calls, device buffers.
#ifndef BLOCKQUANT_TESTS_CUDA_TEST_UTIL_H_
#define BLOCKQUANT_TESTS_CUDA_TEST_UTIL_H_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"

namespace bqtest {

using blockquant::QuantType;

#define BQ_CUDA_CHECK(call)                                                                    \
  do {                                                                                         \
    const cudaError_t bq_err_ = (call);                                                        \
    if (bq_err_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "FATAL %s:%d %s: %s\n", __FILE__, __LINE__, #call,                   \
                   cudaGetErrorString(bq_err_));                                               \
      std::exit(2);                                                                            \
    }                                                                                          \
  } while (0)

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    s += 0x9E3779B97F4A7C15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
  float Symmetric() { return 2.0f * Uniform() - 1.0f; }
};

struct TypeInfo {
  QuantType type;
  const char* name;
  int elems, bytes;
  int f16_fields[2];  // byte offsets of the f16 scale fields in a block (-1: none)
};

inline const std::vector<TypeInfo>& CudaTypes() {
  static const std::vector<TypeInfo> kTypes = {
      {QuantType::kQ4_K, "Q4_K", 256, 144, {0, 2}},   {QuantType::kQ8_0, "Q8_0", 32, 34, {0, -1}},
      {QuantType::kQ6_K, "Q6_K", 256, 210, {208, -1}}, {QuantType::kQ2_K, "Q2_K", 256, 84, {80, 82}},
      {QuantType::kQ3_K, "Q3_K", 256, 110, {108, -1}}, {QuantType::kQ5_K, "Q5_K", 256, 176, {0, 2}},
      {QuantType::kQ4_0, "Q4_0", 32, 18, {0, -1}},
  };
  return kTypes;
}

// Block modes: kRealistic = random codes, scale fields in a typical range;
// kRaw = every byte random (NaN/Inf/huge scales included); kExtreme = scale
// fields near the f16 maximum or subnormal.
enum class BlockMode { kRealistic, kRaw, kExtreme };

inline std::vector<uint8_t> MakeBlocks(const TypeInfo& t, int64_t rows, int64_t cols, BlockMode mode, uint64_t seed) {
  const int64_t nblocks = rows * (cols / t.elems);
  std::vector<uint8_t> buf(static_cast<size_t>(nblocks * t.bytes));
  Rng rng(seed);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const uint64_t v = rng.Next();
    std::memcpy(&buf[i], &v, 8);
  }
  for (size_t i = buf.size() / 8 * 8; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(rng.Next());
  if (mode == BlockMode::kRaw) return buf;
  for (int64_t b = 0; b < nblocks; ++b) {
    for (int f = 0; f < 2; ++f) {
      if (t.f16_fields[f] < 0) continue;
      float v;
      if (mode == BlockMode::kRealistic) {
        v = std::ldexp(0.5f + 0.5f * rng.Uniform(), -10 + static_cast<int>(rng.Next() % 5));
      } else {
        const uint64_t r = rng.Next() % 4;
        v = r == 0 ? 65504.0f : (r == 1 ? 6.0e-8f : (r == 2 ? 3.0e-5f : 1000.0f));
      }
      const uint16_t h = blockquant::F32ToF16(v);
      std::memcpy(&buf[static_cast<size_t>(b * t.bytes + t.f16_fields[f])], &h, 2);
    }
  }
  return buf;
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n, size_t extra_bytes = 0) : count(n) {
    BQ_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T) + extra_bytes + 16));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace bqtest

#endif  // BLOCKQUANT_TESTS_CUDA_TEST_UTIL_H_
