// The SIMD weight quantizers against the scalar reference, on every target
// this machine runs: identical bytes for every type, with and without
// importance, on random rows and on the adversarial blocks the reference is
// tested with (all zero, constant, one spike, huge and tiny magnitudes,
// subnormals, exact rounding ties, sparse importance).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "blockquant/cpu/kernels.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/quantize.h"

namespace bq = blockquant;
using bq::QuantType;

namespace {

const QuantType kTypes[] = {QuantType::kF32,  QuantType::kF16,  QuantType::kBF16, QuantType::kQ4_0,
                            QuantType::kQ4_1, QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kQ8_0,
                            QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                            QuantType::kQ6_K};

struct TargetGuard {
  explicit TargetGuard(const std::string& t) { bq::cpu::ForceCpuTarget(t); }
  ~TargetGuard() { bq::cpu::ForceCpuTarget(""); }
};

// A row of 11 super-blocks (2816 values): random first, then one kind of
// adversarial content per 256-value block, so every type sees each kind.
std::vector<float> AdversarialRow(std::mt19937& rng, float scale) {
  const int64_t n = 11 * 256;
  std::vector<float> x(static_cast<size_t>(n));
  std::normal_distribution<float> nd(0.0f, scale);
  for (auto& v : x) v = nd(rng);
  float* b = x.data();
  for (int i = 256; i < 512; ++i) b[i] = 0.0f;                      // all zero
  for (int i = 512; i < 768; ++i) b[i] = 0.37f * scale;             // constant
  for (int i = 768; i < 1024; ++i) b[i] = i == 900 ? 50.0f : 0.0f;  // one spike
  for (int i = 1024; i < 1280; ++i) b[i] = nd(rng) * 1e4f;          // huge (f16 range)
  for (int i = 1280; i < 1536; ++i) b[i] = nd(rng) * 1e-30f;        // far below f16
  for (int i = 1536; i < 1792; ++i) b[i] = nd(rng) * 1e-39f;        // subnormal f32
  for (int i = 1792; i < 2048; ++i) b[i] = static_cast<float>(i % 16) - 7.5f;  // exact ties
  for (int i = 2048; i < 2304; ++i) b[i] = (i % 32 < 16) ? -1.0f : 1.0f;      // two values
  for (int i = 2304; i < 2560; ++i) b[i] = i % 2 ? 3e4f : -3e4f;    // near the f16 limit
  for (int i = 2560; i < 2816; ++i) b[i] = i % 37 == 0 ? nd(rng) * 100.0f : nd(rng);  // outliers
  return x;
}

std::vector<float> Importance(std::mt19937& rng, int64_t n, int kind) {
  std::vector<float> w(static_cast<size_t>(n), 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 4.0f);
  for (int64_t i = 0; i < n; ++i) {
    if (kind == 1) w[static_cast<size_t>(i)] = ud(rng);
    if (kind == 2) w[static_cast<size_t>(i)] = (i / 16) % 3 == 0 ? 0.0f : ud(rng);  // zero groups
    if (kind == 3) w[static_cast<size_t>(i)] = i % 7 == 0 ? 1e6f : 1e-6f;           // skewed
  }
  return w;
}

}  // namespace

TEST_CASE("fast quantizers: bytes identical to the reference on every target") {
  std::mt19937 rng(2024);
  for (const auto& target : bq::cpu::CpuTargets().supported) {
    TargetGuard g(target);
    for (int trial = 0; trial < 3; ++trial) {
      const std::vector<float> x = AdversarialRow(rng, trial == 2 ? 1e-3f : 1.0f);
      const int64_t n = static_cast<int64_t>(x.size());
      for (int imp_kind = 0; imp_kind < 4; ++imp_kind) {
        const std::vector<float> w = Importance(rng, n, imp_kind);
        const float* imp = imp_kind == 0 ? nullptr : w.data();
        for (QuantType type : kTypes) {
          const size_t bytes = static_cast<size_t>(bq::RowBytes(type, n));
          std::vector<uint8_t> want(bytes), got(bytes, 0xAB);
          bq::QuantizeRowReference(type, x.data(), want.data(), n, imp);
          bq::cpu::QuantizeRow(type, x.data(), got.data(), n, imp);
          size_t first = bytes;
          for (size_t i = 0; i < bytes && first == bytes; ++i) {
            if (want[i] != got[i]) first = i;
          }
          INFO(target << " " << std::string(bq::TypeName(type)) << " trial " << trial << " importance kind " << imp_kind
                      << " first differing byte " << first << " (block " << first / bq::Traits(type).block_bytes
                      << ")");
          CHECK(first == bytes);
        }
      }
    }
  }
}

TEST_CASE("fast quantizers: odd block counts (partial lane batches) and tensors") {
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& target : bq::cpu::CpuTargets().supported) {
    TargetGuard g(target);
    // 32-value types with 1..9 blocks: lanes partly filled.
    for (int64_t blocks = 1; blocks <= 9; ++blocks) {
      const int64_t n = blocks * 32;
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = nd(rng);
      for (QuantType type : {QuantType::kQ4_0, QuantType::kQ4_1, QuantType::kQ5_0, QuantType::kQ5_1}) {
        std::vector<uint8_t> want(static_cast<size_t>(bq::RowBytes(type, n))), got(want.size());
        bq::QuantizeRowReference(type, x.data(), want.data(), n);
        bq::cpu::QuantizeRow(type, x.data(), got.data(), n, nullptr);
        INFO(target << " " << std::string(bq::TypeName(type)) << " blocks " << blocks);
        CHECK(want == got);
      }
    }
    // A whole tensor through QuantizeTensor with the fast row quantizer and
    // two threads: same bytes as the reference tensor.
    const int64_t rows = 7, cols = 512;
    std::vector<float> t(static_cast<size_t>(rows * cols));
    for (auto& v : t) v = nd(rng);
    bq::ThreadPool pool(2);
    for (QuantType type : {QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ6_K}) {
      const size_t bytes = static_cast<size_t>(rows * bq::RowBytes(type, cols));
      std::vector<uint8_t> want(bytes), got(bytes);
      bq::QuantizeTensor(type, QuantType::kF32, t.data(), rows, cols, want.data());
      bq::QuantizeTensor(type, QuantType::kF32, t.data(), rows, cols, got.data(), nullptr, pool.AsParallelFor(),
                         &bq::cpu::QuantizeRow);
      INFO(target << " " << bq::TypeName(type));
      CHECK(want == got);
    }
  }
}
