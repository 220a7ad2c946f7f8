// Header-only use: kernels-inl.h included once, with static dispatch (the
// target this file is compiled for), no dispatch library involved.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "blockquant/cpu/kernels-inl.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"

namespace bq = blockquant;

TEST_CASE("static dispatch: header-only dequantize and matvec match the reference") {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = 3, cols = 512;
  std::vector<float> w(rows * cols), x(cols);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  const bq::QuantType type = bq::QuantType::kQ4_K;
  const int64_t rb = bq::RowBytes(type, cols);
  std::vector<uint8_t> q(rows * rb);
  for (int64_t r = 0; r < rows; ++r) bq::QuantizeRowReference(type, w.data() + r * cols, q.data() + r * rb, cols);
  std::vector<float> want(cols), got(cols);
  bq::DequantizeRowReference(type, q.data(), want.data(), cols);
  bq::HWY_NAMESPACE::DequantizeRowF32(type, q.data(), got.data(), cols);
  CHECK(std::memcmp(want.data(), got.data(), cols * 4) == 0);
  std::vector<float> y(rows);
  bq::HWY_NAMESPACE::MatMul(type, q.data(), rows, cols, x.data(), 1, y.data(), false, bq::SerialFor());
  double ref = 0.0, mag = 0.0;
  for (int64_t k = 0; k < cols; ++k) {
    ref += static_cast<double>(want[k]) * x[k];
    mag += std::fabs(static_cast<double>(want[k]) * x[k]);
  }
  CHECK(std::fabs(y[0] - ref) <= 1e-6 * cols / 8.0 * mag);
  const std::string target = hwy::TargetName(HWY_STATIC_TARGET);
  MESSAGE("static target: " << target);
}
