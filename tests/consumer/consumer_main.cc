// A downstream program: quantizes a row to Q8_0 and decodes it again through
// the installed (or add_subdirectory'd) blockquant::blockquant target.
#include <blockquant/blockquant.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  namespace bq = blockquant;
  std::vector<float> x(64), y(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.1f * static_cast<float>(i));
  std::vector<unsigned char> q(static_cast<size_t>(bq::RowBytes(bq::QuantType::kQ8_0, 64)));
  bq::QuantizeTensor(bq::QuantType::kQ8_0, bq::QuantType::kF32, x.data(), 1, 64, q.data());
  bq::DequantizeTensor(bq::QuantType::kQ8_0, q.data(), 1, 64, y.data());
  double max_err = 0;
  for (int i = 0; i < 64; ++i) max_err = std::fmax(max_err, std::fabs(x[i] - y[i]));
  std::printf("blockquant %s consumer: Q8_0 max error %.6f\n", bq::kVersionString, max_err);
  return max_err < 0.01 ? 0 : 1;
}
