// A downstream program: quantizes a row to Q8_0 and decodes it again through
// the installed (or add_subdirectory'd) blockquant::blockquant target, and,
// where the installed package has them, the SIMD kernels (blockquant::dispatch).
#include <blockquant/blockquant.h>
#if defined(CONSUMER_HAS_DISPATCH)
#include <blockquant/cpu/kernels.h>
#endif

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
#if defined(CONSUMER_HAS_DISPATCH)
  // The SIMD quantizer writes the reference's bytes.
  std::vector<unsigned char> q4(static_cast<size_t>(bq::RowBytes(bq::QuantType::kQ4_K, 256)));
  std::vector<unsigned char> q4ref(q4.size());
  std::vector<float> z(256);
  for (int i = 0; i < 256; ++i) z[i] = std::cos(0.37f * static_cast<float>(i));
  bq::cpu::QuantizeRow(bq::QuantType::kQ4_K, z.data(), q4.data(), 256);
  bq::QuantizeRowReference(bq::QuantType::kQ4_K, z.data(), q4ref.data(), 256);
  std::printf("dispatch: chosen CPU target %s, Q4_K bytes %s\n", bq::cpu::CpuTargets().chosen.c_str(),
              q4 == q4ref ? "identical" : "DIFFERENT");
  if (q4 != q4ref) return 1;
#endif
  return max_err < 0.01 ? 0 : 1;
}
