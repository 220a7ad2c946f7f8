// Prints relative RMSE and single-thread quantize speed for every weight type
// on N(0,1) data (1024 x 4096 by default), with and without uniform
// importance weights. Usage: bq-error-table [rows] [cols]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "blockquant/blockquant.h"

namespace bq = blockquant;

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  const std::vector<float> ones(static_cast<size_t>(cols), 1.0f);

  const bq::QuantType types[] = {bq::QuantType::kQ2_K, bq::QuantType::kQ3_K, bq::QuantType::kQ4_K,
                                 bq::QuantType::kQ5_K, bq::QuantType::kQ6_K, bq::QuantType::kQ8_0,
                                 bq::QuantType::kQ4_0, bq::QuantType::kQ4_1, bq::QuantType::kQ5_0,
                                 bq::QuantType::kQ5_1};
  std::printf("| type | rel RMSE | rel RMSE (uniform importance) | quantize MB/s of f32, 1 thread |\n");
  std::printf("|---|---|---|---|\n");
  for (bq::QuantType type : types) {
    const int64_t row_bytes = bq::RowBytes(type, cols);
    std::vector<uint8_t> q(static_cast<size_t>(rows * row_bytes));
    std::vector<float> y(x.size());
    double err[2] = {0, 0}, mbps = 0;
    for (int with_importance = 0; with_importance < 2; ++with_importance) {
      const auto t0 = std::chrono::steady_clock::now();
      bq::QuantizeTensor(type, bq::QuantType::kF32, x.data(), rows, cols, q.data(),
                         with_importance ? ones.data() : nullptr);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!with_importance) mbps = static_cast<double>(x.size()) * 4 / s / 1e6;
      bq::DequantizeTensor(type, q.data(), rows, cols, y.data());
      double se = 0, ss = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        se += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
        ss += double(x[i]) * x[i];
      }
      err[with_importance] = std::sqrt(se / ss);
    }
    std::printf("| %s | %.5f | %.5f | %.0f |\n", bq::TypeName(type), err[0], err[1], mbps);
  }
  return 0;
}
