// Prints relative RMSE and single-thread quantize speed for every weight type
// (1024 x 4096 by default):
// - N(0,1) data, without importance and with uniform importance (all ones);
// - N(0,1) under a weighted metric sum w (x - y)^2 / sum w x^2, with random
//   positive per-column weights and every 16th column weight 0, quantized
//   without and with those weights as importance (importance must help);
// - heavy-tailed data: Student-t(3), each row scaled by 2^U(-4,4), column 7
//   multiplied by 50 (an outlier column), no importance.
// Usage: bq-error-table [rows] [cols]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "blockquant/blockquant.h"

namespace bq = blockquant;

namespace {

double RelRmse(const std::vector<float>& x, const std::vector<float>& y, const float* w, int64_t cols) {
  double se = 0, ss = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double wi = w ? w[static_cast<int64_t>(i) % cols] : 1.0;
    se += wi * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ss += wi * double(x[i]) * x[i];
  }
  return std::sqrt(se / ss);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  std::vector<float> x(static_cast<size_t>(rows * cols)), heavy(x.size());
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  std::student_t_distribution<float> student(3.0f);
  std::uniform_real_distribution<float> uni(-4.0f, 4.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = std::exp2(uni(rng));
    for (int64_t c = 0; c < cols; ++c) {
      heavy[static_cast<size_t>(r * cols + c)] = student(rng) * row_scale * (c == 7 ? 50.0f : 1.0f);
    }
  }
  const std::vector<float> ones(static_cast<size_t>(cols), 1.0f);
  std::vector<float> weights(static_cast<size_t>(cols));
  std::uniform_real_distribution<float> wdist(0.0f, 1.0f);
  for (int64_t c = 0; c < cols; ++c) {
    const float u = wdist(rng);
    weights[static_cast<size_t>(c)] = c % 16 == 5 ? 0.0f : 0.05f + u * u * 4.0f;
  }

  const bq::QuantType types[] = {bq::QuantType::kQ2_K, bq::QuantType::kQ3_K, bq::QuantType::kQ4_K,
                                 bq::QuantType::kQ5_K, bq::QuantType::kQ6_K, bq::QuantType::kQ8_0,
                                 bq::QuantType::kQ4_0, bq::QuantType::kQ4_1, bq::QuantType::kQ5_0,
                                 bq::QuantType::kQ5_1};
  std::printf(
      "| type | rel RMSE | uniform importance | weighted metric, no importance | weighted metric, "
      "importance | heavy-tailed | quantize MB/s of f32, 1 thread |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (bq::QuantType type : types) {
    const int64_t row_bytes = bq::RowBytes(type, cols);
    std::vector<uint8_t> q(static_cast<size_t>(rows * row_bytes));
    std::vector<float> y(x.size());
    double err[5] = {0, 0, 0, 0, 0}, mbps = 0;
    for (int run = 0; run < 5; ++run) {
      const std::vector<float>& src = run == 4 ? heavy : x;
      const float* importance = run == 1 ? ones.data() : (run == 3 ? weights.data() : nullptr);
      const auto t0 = std::chrono::steady_clock::now();
      bq::QuantizeTensor(type, bq::QuantType::kF32, src.data(), rows, cols, q.data(), importance);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (run == 0) mbps = static_cast<double>(x.size()) * 4 / s / 1e6;
      bq::DequantizeTensor(type, q.data(), rows, cols, y.data());
      err[run] = RelRmse(src, y, run == 2 || run == 3 ? weights.data() : nullptr, cols);
    }
    std::printf("| %s | %.5f | %.5f | %.5f | %.5f | %.5f | %.0f |\n", bq::TypeName(type), err[0], err[1], err[2],
                err[3], err[4], mbps);
  }
  return 0;
}
