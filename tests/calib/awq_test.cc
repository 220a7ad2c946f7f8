// AWQ-style scaling: folding into the norm leaves the float model's outputs
// unchanged, the search never does worse than no scaling and helps when a
// few channels carry outliers, bad input.
#include <cmath>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/calib/awq.h"
#include "blockquant/calib/layer_error.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"
#include "random_util.h"

namespace bq = blockquant;
namespace calib = blockquant::calib;
using bq::QuantType;

namespace {

// y = W (rmsnorm(x) * g) for every row of x.
std::vector<double> NormThenLinear(const std::vector<float>& x, int64_t n, int64_t cols, const std::vector<float>& g,
                                   const std::vector<float>& w, int64_t rows) {
  std::vector<double> y(static_cast<size_t>(n * rows));
  std::vector<float> h(static_cast<size_t>(cols));
  for (int64_t r = 0; r < n; ++r) {
    double ms = 0.0;
    for (int64_t j = 0; j < cols; ++j) ms += static_cast<double>(x[static_cast<size_t>(r * cols + j)]) * x[static_cast<size_t>(r * cols + j)];
    const float inv = static_cast<float>(1.0 / std::sqrt(ms / static_cast<double>(cols) + 1e-6));
    for (int64_t j = 0; j < cols; ++j) h[static_cast<size_t>(j)] = x[static_cast<size_t>(r * cols + j)] * inv * g[static_cast<size_t>(j)];
    for (int64_t o = 0; o < rows; ++o) {
      double s = 0.0;
      for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(w[static_cast<size_t>(o * cols + j)]) * h[static_cast<size_t>(j)];
      y[static_cast<size_t>(r * rows + o)] = s;
    }
  }
  return y;
}

// Activations with every 37th channel 30x the rest.
std::vector<float> OutlierActivations(int64_t n, int64_t cols, uint32_t seed) {
  std::vector<float> x = Normal(static_cast<size_t>(n * cols), seed);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < cols; j += 37) x[static_cast<size_t>(r * cols + j)] *= 30.0f;
  }
  return x;
}

}  // namespace

TEST_CASE("AWQ: folding the scales into the norm leaves the float outputs unchanged") {
  const int64_t n = 16, cols = 512, rows = 64;
  const std::vector<float> x = OutlierActivations(n, cols, 1);
  std::vector<float> g = Normal(static_cast<size_t>(cols), 2, 0.3f);
  for (auto& v : g) v += 1.0f;
  std::vector<float> w = Normal(static_cast<size_t>(rows * cols), 3);
  const std::vector<double> before = NormThenLinear(x, n, cols, g, w, rows);
  std::vector<double> mean_abs(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < cols; ++j) mean_abs[static_cast<size_t>(j)] += std::fabs(x[static_cast<size_t>(r * cols + j)]) / n;
  }
  const std::vector<float> s = calib::AwqScales(mean_abs, 0.5);
  double log_sum = 0.0;
  for (float v : s) log_sum += std::log(v);
  CHECK(std::fabs(log_sum / cols) < 1e-5);  // geometric mean 1
  calib::ScaleColumns(w.data(), rows, cols, s.data());
  calib::FoldIntoNorm(g.data(), s.data(), cols);
  const std::vector<double> after = NormThenLinear(x, n, cols, g, w, rows);
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < before.size(); ++i) num += (after[i] - before[i]) * (after[i] - before[i]), den += before[i] * before[i];
  CHECK(std::sqrt(num / den) < 1e-5);
}

TEST_CASE("AWQ: the search never loses to no scaling and helps outlier channels") {
  const int64_t n = 512, cols = 1024, rows_q = 64, rows_k = 32;
  const std::vector<float> calib_x = OutlierActivations(n, cols, 4), held = OutlierActivations(256, cols, 5);
  const std::vector<float> wq = Normal(static_cast<size_t>(rows_q * cols), 6), wk = Normal(static_cast<size_t>(rows_k * cols), 7);
  for (QuantType type : {QuantType::kQ3_K, QuantType::kQ4_K}) {
    const calib::AwqResult r = calib::SearchAwqScales(type, {{wq.data(), rows_q}, {wk.data(), rows_k}}, cols,
                                                      calib_x.data(), n);
    CHECK(r.error <= r.error_unscaled);
    CHECK(r.alpha > 0.0);
    if (type == QuantType::kQ3_K) CHECK(r.error < 0.9 * r.error_unscaled);  // Q4_K gains ~3% here
    REQUIRE(r.scales.size() == static_cast<size_t>(cols));
    for (float v : r.scales) REQUIRE((std::isfinite(v) && v > 0.0f));
    // Held out: the scaled, quantized, unscaled q weight beats plain imatrix rounding.
    std::vector<float> imp(static_cast<size_t>(cols), 0.0f), imp_s(static_cast<size_t>(cols));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < cols; ++j) imp[static_cast<size_t>(j)] += calib_x[static_cast<size_t>(i * cols + j)] * calib_x[static_cast<size_t>(i * cols + j)] / n;
    }
    for (int64_t j = 0; j < cols; ++j) imp_s[static_cast<size_t>(j)] = imp[static_cast<size_t>(j)] / (r.scales[static_cast<size_t>(j)] * r.scales[static_cast<size_t>(j)]);
    std::vector<uint8_t> q(static_cast<size_t>(rows_q * bq::RowBytes(type, cols)));
    std::vector<float> deq(wq.size());
    bq::QuantizeTensor(type, QuantType::kF32, wq.data(), rows_q, cols, q.data(), imp.data());
    bq::DequantizeTensor(type, q.data(), rows_q, cols, deq.data());
    const double plain = calib::LayerOutputError(wq.data(), deq.data(), rows_q, cols, held.data(), 256);
    std::vector<float> scaled = wq;
    calib::ScaleColumns(scaled.data(), rows_q, cols, r.scales.data());
    bq::QuantizeTensor(type, QuantType::kF32, scaled.data(), rows_q, cols, q.data(), imp_s.data());
    bq::DequantizeTensor(type, q.data(), rows_q, cols, deq.data());
    for (int64_t o = 0; o < rows_q; ++o) {
      for (int64_t j = 0; j < cols; ++j) deq[static_cast<size_t>(o * cols + j)] /= r.scales[static_cast<size_t>(j)];
    }
    const double awq = calib::LayerOutputError(wq.data(), deq.data(), rows_q, cols, held.data(), 256);
    MESSAGE("alpha ", r.alpha, " held-out imatrix ", plain, " awq ", awq);
    CHECK(awq < plain);
  }
}

TEST_CASE("AWQ: bad input") {
  const int64_t cols = 256;
  std::vector<float> x = Normal(static_cast<size_t>(8 * cols), 1), w = Normal(static_cast<size_t>(4 * cols), 2);
  CHECK_THROWS_AS(calib::SearchAwqScales(QuantType::kQ4_K, {}, cols, x.data(), 8), bq::Error);
  calib::AwqOptions o;
  o.grid = 0;
  CHECK_THROWS_AS(calib::SearchAwqScales(QuantType::kQ4_K, {{w.data(), 4}}, cols, x.data(), 8, o), bq::Error);
  x[5] = NAN;
  CHECK_THROWS_WITH_AS(calib::SearchAwqScales(QuantType::kQ4_K, {{w.data(), 4}}, cols, x.data(), 8),
                       doctest::Contains("row 0, column 5"), bq::Error);
}
