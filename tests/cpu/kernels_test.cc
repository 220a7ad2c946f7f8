// CPU kernels on every target this machine can run (each compiled target is
// forced in turn): dequantization bit-exact with the reference (random block
// bytes, NaN/Inf scales included), Q8_K/Q8_0 activation bytes identical, dot
// products within stated bounds of an f64 reference, matmul with odd row
// counts and n not a multiple of the tile.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "blockquant/cpu/kernels.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/q8.h"
#include "blockquant/quant/quantize.h"

namespace bq = blockquant;
using bq::QuantType;

namespace {

const QuantType kAllTypes[] = {QuantType::kF32,  QuantType::kF16,  QuantType::kBF16, QuantType::kQ4_0,
                               QuantType::kQ4_1, QuantType::kQ5_0, QuantType::kQ5_1, QuantType::kQ8_0,
                               QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                               QuantType::kQ6_K};

std::vector<std::string> Targets() { return bq::cpu::CpuTargets().supported; }

struct TargetGuard {
  explicit TargetGuard(const std::string& t) { bq::cpu::ForceCpuTarget(t); }
  ~TargetGuard() { bq::cpu::ForceCpuTarget(""); }
};

// Random bytes for a row; f16 scales drawn from a sane range unless wild.
std::vector<uint8_t> RandomRow(QuantType type, int64_t n, std::mt19937& rng, bool wild) {
  std::vector<uint8_t> row(static_cast<size_t>(bq::RowBytes(type, n)));
  for (auto& b : row) b = static_cast<uint8_t>(rng());
  if (wild) return row;
  // Realistic rows: quantize random floats with the reference quantizer.
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  bq::QuantizeRowReference(type, x.data(), row.data(), n);
  return row;
}

// Identical bits, except where two NaNs meet (Q4_1/Q5_1 with NaN d and NaN m:
// d * q + m): IEEE 754 leaves open which payload survives, and the scalar
// reference's answer depends on the operand order its compiler picks. There
// both must be NaN (NaN positions always match) with any payload.
bool SameBits(float a, float b) { return bq::FloatBits(a) == bq::FloatBits(b) || (std::isnan(a) && std::isnan(b)); }
bool SameHalf(uint16_t a, uint16_t b, bool bf16) {
  if (a == b) return true;
  const float fa = bf16 ? bq::BF16ToF32(a) : bq::F16ToF32(a), fb = bf16 ? bq::BF16ToF32(b) : bq::F16ToF32(b);
  return std::isnan(fa) && std::isnan(fb);
}

}  // namespace

TEST_CASE("targets: listed, chosen, forcing works") {
  const auto info = bq::cpu::CpuTargets();
  CHECK(!info.compiled.empty());
  CHECK(!info.supported.empty());
  MESSAGE("chosen target: " << info.chosen);
  for (const auto& t : info.supported) {
    TargetGuard g(t);
    CHECK(bq::cpu::CpuTargets().chosen == t);
  }
  CHECK_THROWS(bq::cpu::ForceCpuTarget("NO_SUCH_TARGET"));
}

TEST_CASE("dequantize: bit-exact with the reference on every target, random bytes incl. NaN/Inf") {
  std::mt19937 rng(1234);
  for (const auto& target : Targets()) {
    TargetGuard g(target);
    for (QuantType type : kAllTypes) {
      for (int trial = 0; trial < 24; ++trial) {
        const bool wild = trial > 0;  // trial 0: quantized floats; then random block bytes
        const int64_t n = 1024 + 256;
        const auto row = RandomRow(type, n, rng, wild);
        std::vector<float> want(n), got(n);
        std::vector<uint16_t> got16(n), gotb16(n);
        bq::DequantizeRowReference(type, row.data(), want.data(), n);
        bq::cpu::DequantizeRow(type, row.data(), got.data(), n);
        bq::cpu::DequantizeRowF16(type, row.data(), got16.data(), n);
        bq::cpu::DequantizeRowBF16(type, row.data(), gotb16.data(), n);
        int bad = 0, bad16 = 0, badb = 0;
        for (int64_t i = 0; i < n; ++i) {
          bad += !SameBits(want[i], got[i]);
          const uint16_t w16 = type == QuantType::kF16 ? reinterpret_cast<const uint16_t*>(row.data())[i]
                                                        : bq::F32ToF16(want[i]);
          const uint16_t wb = type == QuantType::kBF16 ? reinterpret_cast<const uint16_t*>(row.data())[i]
                                                        : bq::F32ToBF16(want[i]);
          bad16 += !SameHalf(w16, got16[i], false);
          badb += !SameHalf(wb, gotb16[i], true);
        }
        const std::string what = target + " " + bq::TypeName(type) + (wild ? " random bytes" : " quantized");
        INFO(what);
        CHECK(bad == 0);
        CHECK(bad16 == 0);
        CHECK(badb == 0);
      }
    }
  }
}

TEST_CASE("activations: Q8_K and Q8_0 bytes identical to the reference") {
  std::mt19937 rng(7);
  for (const auto& target : Targets()) {
    TargetGuard g(target);
    for (int trial = 0; trial < 4; ++trial) {
      const int64_t n = 2048;
      std::vector<float> x(n);
      std::normal_distribution<float> nd(0.0f, trial == 0 ? 1.0f : 10.0f);
      for (auto& v : x) v = nd(rng);
      // Exact ties (x * id = k + 0.5) exercise the two rounding rules.
      for (int64_t i = 0; i < 32; ++i) x[i] = static_cast<float>(i) - 15.5f;
      x[31] = 127.0f;
      for (int64_t i = 256; i < 288; ++i) x[i] = 0.0f;  // all-zero blocks
      std::vector<bq::BlockQ8_K> wk(n / 256), gk(n / 256);
      std::vector<bq::BlockQ8_0> w0(n / 32), g0(n / 32);
      bq::ref::QuantizeRowQ8_K(x.data(), wk.data(), n);
      bq::cpu::QuantizeActivationsQ8K(x.data(), gk.data(), n);
      bq::ref::QuantizeRowQ8_0(x.data(), w0.data(), n);
      bq::cpu::QuantizeActivationsQ8_0(x.data(), g0.data(), n);
      INFO(target);
      CHECK(std::memcmp(wk.data(), gk.data(), wk.size() * sizeof(bq::BlockQ8_K)) == 0);
      CHECK(std::memcmp(w0.data(), g0.data(), w0.size() * sizeof(bq::BlockQ8_0)) == 0);
    }
  }
}

// Bounds (docs/kernels.md):
//  q8 path: exact integer block sums, f32 scaling and accumulation; against
//   the f64 dot of the dequantized weights and dequantized q8 activations,
//   |err| <= 1e-6 * n * sum|w_i a_i| + 1e-30 (f32 rounding, ~n/8 terms summed
//   per lane, per-block products rounded once or twice).
//  f32 path: against the f64 dot of dequantized weights and x,
//   |err| <= 1e-6 * n * sum|w_i x_i| / 8 ... we use the same form as above.
//  Either path against the true f32 activations additionally allows the
//   activation rounding: sum over blocks of sum|w| * d_a / 2.
TEST_CASE("dot products and matmul: within stated bounds on every target") {
  std::mt19937 rng(99);
  const int64_t rows = 7, cols = 512 + 256;
  for (const auto& target : Targets()) {
    TargetGuard g(target);
    for (QuantType type : kAllTypes) {
      std::vector<uint8_t> w;
      for (int64_t r = 0; r < rows; ++r) {
        const auto row = RandomRow(type, cols, rng, false);
        w.insert(w.end(), row.begin(), row.end());
      }
      const int64_t rb = bq::RowBytes(type, cols);
      for (int64_t n : {1, 3, 5, 11}) {
        std::vector<float> x(n * cols);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (auto& v : x) v = nd(rng);
        for (bool q8 : {true, false}) {
          std::vector<float> y(n * rows, -1.0f);
          bq::cpu::MatMul(type, w.data(), rows, cols, x.data(), n, y.data(),
                          q8 ? bq::cpu::Activations::kQ8 : bq::cpu::Activations::kF32,
                          bq::SerialFor());
          const bool quant = bq::Traits(type).is_quantized && q8;
          const QuantType partner = bq::Traits(type).vec_dot_type;
          for (int64_t j = 0; j < n; ++j) {
            std::vector<float> a(cols);
            std::vector<uint8_t> qa;
            if (quant) {
              qa.resize(static_cast<size_t>(bq::RowBytes(partner, cols)));
              if (partner == QuantType::kQ8_K) {
                bq::ref::QuantizeRowQ8_K(x.data() + j * cols, reinterpret_cast<bq::BlockQ8_K*>(qa.data()), cols);
              } else {
                bq::ref::QuantizeRowQ8_0(x.data() + j * cols, reinterpret_cast<bq::BlockQ8_0*>(qa.data()), cols);
              }
              bq::DequantizeRowReference(partner, qa.data(), a.data(), cols);
            } else {
              std::memcpy(a.data(), x.data() + j * cols, cols * 4);
            }
            for (int64_t r = 0; r < rows; ++r) {
              std::vector<float> wf(cols);
              bq::DequantizeRowReference(type, w.data() + r * rb, wf.data(), cols);
              double ref = 0.0, mag = 0.0;
              for (int64_t k = 0; k < cols; ++k) {
                ref += static_cast<double>(wf[k]) * a[k];
                mag += std::fabs(static_cast<double>(wf[k]) * a[k]);
              }
              const double bound = 1e-6 * static_cast<double>(cols) * mag / 8.0 + 1e-30;
              const double got = y[j * rows + r];
              INFO(target << " " << bq::TypeName(type) << " q8=" << q8 << " n=" << n << " j=" << j
                          << " r=" << r << " got=" << got << " ref=" << ref << " bound=" << bound);
              CHECK(std::fabs(got - ref) <= bound);
              if (j == 0 && r == 0) {
                const float v = quant ? bq::cpu::VecDot(type, w.data(), qa.data(), cols)
                                      : bq::cpu::VecDotF32(type, w.data(), x.data(), cols);
                CHECK(std::fabs(v - ref) <= bound);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("matmul: results independent of the ParallelFor") {
  std::mt19937 rng(5);
  const int64_t rows = 37, cols = 512, n = 6;
  std::vector<uint8_t> w;
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = RandomRow(QuantType::kQ4_K, cols, rng, false);
    w.insert(w.end(), row.begin(), row.end());
  }
  std::vector<float> x(n * cols);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  std::vector<float> y1(n * rows), y2(n * rows);
  bq::cpu::MatMul(QuantType::kQ4_K, w.data(), rows, cols, x.data(), n, y1.data());
  bq::ThreadPool pool(3);
  bq::cpu::MatMul(QuantType::kQ4_K, w.data(), rows, cols, x.data(), n, y2.data(), bq::cpu::Activations::kQ8,
                  pool.AsParallelFor());
  CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0);
  CHECK_THROWS(bq::cpu::MatMul(QuantType::kQ4_K, w.data(), rows, 100, x.data(), n, y1.data()));
}

TEST_CASE("q8 dot products: random level and scale bytes, extreme activations") {
  // Every bit pattern of levels, high bits and packed scales (Q6_K scales of
  // -128, Q3_K's 6-bit scales, all-ones nibbles), with f16 scales kept
  // finite; activations with a zero block, a block at the +-127 ends and
  // outliers. Against the f64 dot of what the reference dequantizes.
  std::mt19937 rng(4242);
  const int64_t cols = 1024;
  for (const auto& target : Targets()) {
    TargetGuard g(target);
    for (QuantType type : kAllTypes) {
      if (!bq::Traits(type).is_quantized) continue;
      const QuantType partner = bq::Traits(type).vec_dot_type;
      for (int trial = 0; trial < 4; ++trial) {
        std::vector<uint8_t> w;
        std::vector<float> wf(cols);
        for (int attempt = 0; attempt < 1000; ++attempt) {
          w = RandomRow(type, cols, rng, true);
          bq::DequantizeRowReference(type, w.data(), wf.data(), cols);
          bool ok = true;
          for (float v : wf) ok = ok && std::isfinite(v) && std::fabs(v) < 1e6f;
          if (ok) break;
        }
        std::vector<float> x(cols);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (int64_t k = 0; k < cols; ++k) x[k] = nd(rng) * (k % 97 == 0 ? 50.0f : 1.0f);
        for (int64_t k = 0; k < 256; ++k) x[k] = 0.0f;                     // zero block
        for (int64_t k = 256; k < 512; ++k) x[k] = k % 2 ? 3.0f : -3.0f;  // +-127 everywhere
        std::vector<uint8_t> qa(static_cast<size_t>(bq::RowBytes(partner, cols)));
        std::vector<float> a(cols);
        if (partner == QuantType::kQ8_K) {
          bq::ref::QuantizeRowQ8_K(x.data(), reinterpret_cast<bq::BlockQ8_K*>(qa.data()), cols);
        } else {
          bq::ref::QuantizeRowQ8_0(x.data(), reinterpret_cast<bq::BlockQ8_0*>(qa.data()), cols);
        }
        bq::DequantizeRowReference(partner, qa.data(), a.data(), cols);
        double ref = 0.0, mag = 0.0;
        for (int64_t k = 0; k < cols; ++k) {
          ref += static_cast<double>(wf[k]) * a[k];
          mag += std::fabs(static_cast<double>(wf[k]) * a[k]);
        }
        const double bound = 1e-6 * static_cast<double>(cols) * mag / 8.0 + 1e-30;
        const double got = bq::cpu::VecDot(type, w.data(), qa.data(), cols);
        INFO(target << " " << std::string(bq::TypeName(type)) << " trial " << trial << " got=" << got
                    << " ref=" << ref << " bound=" << bound);
        CHECK(std::fabs(got - ref) <= bound);
      }
    }
  }
}
