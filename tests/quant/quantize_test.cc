// Reference quantizers: error bounds per type, adversarial blocks,
// importance weights, determinism across thread counts, bad input.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"
#include "random_util.h"

namespace bq = blockquant;
using bq::QuantType;

namespace {

struct TypeBound {
  QuantType type;
  double max_rel_rmse;  // ggml's importance-search figure on N(0,1)
  double min_rel_rmse;  // a floor: a quantizer this good on N(0,1) is broken
};

// ggml (commit d99724f2) on N(0,1), from the foundation issue; blockquant
// must be at or below these. Q8_0 is ggml's own rounding, so its figure
// (0.00535 there) differs only by sampling on this smaller tensor.
const TypeBound kBounds[] = {
    {QuantType::kQ2_K, 0.2679, 0.20}, {QuantType::kQ3_K, 0.1445, 0.10}, {QuantType::kQ4_K, 0.0707, 0.05},
    {QuantType::kQ5_K, 0.0354, 0.025}, {QuantType::kQ6_K, 0.0173, 0.012}, {QuantType::kQ8_0, 0.0054, 0.004},
    {QuantType::kQ4_0, 0.0816, 0.06}, {QuantType::kQ4_1, 0.075, 0.05},  {QuantType::kQ5_0, 0.043, 0.03},
    {QuantType::kQ5_1, 0.037, 0.025},
};

struct RoundTrip {
  std::vector<uint8_t> bytes;
  std::vector<float> out;
};

RoundTrip Quantize(QuantType type, const std::vector<float>& x, int64_t rows, int64_t cols,
                   const float* importance = nullptr, const bq::ParallelFor& pf = bq::SerialFor()) {
  RoundTrip r;
  r.bytes.resize(static_cast<size_t>(rows * bq::RowBytes(type, cols)));
  r.out.resize(x.size());
  bq::QuantizeTensor(type, QuantType::kF32, x.data(), rows, cols, r.bytes.data(), importance, pf);
  bq::DequantizeTensor(type, r.bytes.data(), rows, cols, r.out.data());
  return r;
}

double RelRmse(const std::vector<float>& x, const std::vector<float>& y, const float* w = nullptr,
               int64_t cols = 1) {
  double se = 0, ss = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double wi = w ? w[static_cast<int64_t>(i) % cols] : 1.0;
    se += wi * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ss += wi * double(x[i]) * x[i];
  }
  return std::sqrt(se / ss);
}

bool AllFinite(const std::vector<float>& v) {
  for (float f : v) {
    if (!std::isfinite(f)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("every type's error on N(0,1) is within ggml's figure and above a sanity floor") {
  const int64_t rows = 64, cols = 4096;
  const auto x = Normal(static_cast<size_t>(rows * cols), 7);
  for (const TypeBound& b : kBounds) {
    CAPTURE(std::string(bq::TypeName(b.type)));
    const auto r = Quantize(b.type, x, rows, cols);
    const double e = RelRmse(x, r.out);
    CHECK(e <= b.max_rel_rmse);
    CHECK(e >= b.min_rel_rmse);
  }
}

TEST_CASE("adversarial blocks stay finite and sensible") {
  const int64_t cols = 512;
  for (const TypeBound& b : kBounds) {
    CAPTURE(std::string(bq::TypeName(b.type)));
    SUBCASE("all zero decodes to exact zeros") {
      const std::vector<float> x(cols, 0.0f);
      const auto r = Quantize(b.type, x, 1, cols);
      for (float v : r.out) CHECK(v == 0.0f);
    }
    SUBCASE("constant blocks, positive and negative") {
      for (float c : {0.37f, -2.5f, 1000.0f}) {
        const std::vector<float> x(cols, c);
        const auto r = Quantize(b.type, x, 1, cols);
        REQUIRE(AllFinite(r.out));
        CHECK(RelRmse(x, r.out) < 0.02);
      }
    }
    SUBCASE("one huge outlier") {
      auto x = Normal(cols, 11);
      x[100] = 1e4f;
      const auto r = Quantize(b.type, x, 1, cols);
      REQUIRE(AllFinite(r.out));
      CHECK(std::fabs(r.out[100] - 1e4f) < 1e4f * 0.2f);
    }
    SUBCASE("tiny, huge and subnormal magnitudes") {
      for (float scale : {1e-30f, 1e-3f, 1e30f}) {
        const auto x = Normal(cols, 13, scale);
        const auto r = Quantize(b.type, x, 1, cols);
        REQUIRE(AllFinite(r.out));
      }
      std::vector<float> sub(cols);
      for (int64_t i = 0; i < cols; ++i) sub[i] = (i % 2 ? 1 : -1) * std::numeric_limits<float>::denorm_min() * float(i);
      const auto r = Quantize(b.type, sub, 1, cols);
      REQUIRE(AllFinite(r.out));
      for (float v : r.out) CHECK(std::fabs(v) < 1e-6f);
    }
    SUBCASE("alternating signs") {
      std::vector<float> x(cols);
      for (int64_t i = 0; i < cols; ++i) x[i] = (i % 2 ? 1.0f : -1.0f) * (1.0f + 0.01f * float(i % 7));
      const auto r = Quantize(b.type, x, 1, cols);
      REQUIRE(AllFinite(r.out));
      CHECK(RelRmse(x, r.out) < 2 * b.max_rel_rmse + 0.05);
    }
  }
}

TEST_CASE("values beyond the f16 range saturate instead of producing Inf scales") {
  const int64_t cols = 256;
  const auto x = Normal(cols, 17, 1e30f);
  for (const TypeBound& b : kBounds) {
    CAPTURE(std::string(bq::TypeName(b.type)));
    const auto r = Quantize(b.type, x, 1, cols);
    CHECK(AllFinite(r.out));
  }
}

TEST_CASE("importance weights lower the weighted error and tolerate zero columns") {
  const int64_t rows = 32, cols = 1024;
  const auto x = Normal(static_cast<size_t>(rows * cols), 21);
  std::mt19937 rng(5);
  std::exponential_distribution<float> expo(1.0f);
  std::vector<float> w(cols);
  for (int64_t i = 0; i < cols; ++i) w[i] = (i % 37 == 0) ? 0.0f : expo(rng) * expo(rng) * 4.0f;
  for (int i = 0; i < 256; ++i) w[static_cast<size_t>(512 + i)] = 0.0f;  // a whole zero-weight super-block
  for (const TypeBound& b : kBounds) {
    if (b.type == QuantType::kQ8_0) continue;  // Q8_0 ignores weights by design
    CAPTURE(std::string(bq::TypeName(b.type)));
    const auto plain = Quantize(b.type, x, rows, cols);
    const auto weighted = Quantize(b.type, x, rows, cols, w.data());
    REQUIRE(AllFinite(weighted.out));
    CHECK(RelRmse(x, weighted.out, w.data(), cols) < RelRmse(x, plain.out, w.data(), cols));
    // The zero-weight super-block falls back to plain rounding, not garbage.
    std::vector<float> xs(x.begin() + 512, x.begin() + 768), ys(weighted.out.begin() + 512, weighted.out.begin() + 768);
    CHECK(RelRmse(xs, ys) < 1.5 * b.max_rel_rmse);
  }
}

TEST_CASE("uniform importance gives the same bytes as no importance") {
  const int64_t rows = 4, cols = 512;
  const auto x = Normal(static_cast<size_t>(rows * cols), 23);
  const std::vector<float> ones(cols, 1.0f);
  for (const TypeBound& b : kBounds) {
    CAPTURE(std::string(bq::TypeName(b.type)));
    CHECK(Quantize(b.type, x, rows, cols).bytes == Quantize(b.type, x, rows, cols, ones.data()).bytes);
  }
}

TEST_CASE("bytes do not depend on the thread count") {
  const int64_t rows = 37, cols = 768;
  const auto x = Normal(static_cast<size_t>(rows * cols), 29);
  bq::ThreadPool pool(3);
  for (const TypeBound& b : kBounds) {
    CAPTURE(std::string(bq::TypeName(b.type)));
    CHECK(Quantize(b.type, x, rows, cols).bytes == Quantize(b.type, x, rows, cols, nullptr, pool.AsParallelFor()).bytes);
  }
}

TEST_CASE("f16 and bf16 sources quantize like their f32 values") {
  const int64_t rows = 3, cols = 256;
  const auto x = Normal(static_cast<size_t>(rows * cols), 31);
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    h[i] = bq::F32ToF16(x[i]);
    back[i] = bq::F16ToF32(h[i]);
  }
  std::vector<uint8_t> a(static_cast<size_t>(rows * bq::RowBytes(QuantType::kQ4_K, cols))), b(a.size());
  bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF16, h.data(), rows, cols, a.data());
  bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF32, back.data(), rows, cols, b.data());
  CHECK(a == b);
}

TEST_CASE("bad input is rejected with the right code") {
  std::vector<float> x(512, 1.0f);
  std::vector<uint8_t> out(4096);
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const bq::Error& e) {
      return e.code();
    }
    return static_cast<bq::ErrorCode>(0);
  };
  x[300] = std::numeric_limits<float>::quiet_NaN();
  CHECK(code_of([&] { bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF32, x.data(), 2, 256, out.data()); }) ==
        bq::ErrorCode::kNonFinite);
  try {
    bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF32, x.data(), 2, 256, out.data());
  } catch (const bq::Error& e) {
    CHECK(std::string(e.what()).find("row 1, column 44") != std::string::npos);
  }
  x[300] = std::numeric_limits<float>::infinity();
  CHECK(code_of([&] { bq::QuantizeTensor(QuantType::kQ8_0, QuantType::kF32, x.data(), 1, 512, out.data()); }) ==
        bq::ErrorCode::kNonFinite);
  x[300] = 1.0f;
  CHECK(code_of([&] { bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF32, x.data(), 1, 320, out.data()); }) ==
        bq::ErrorCode::kShape);
  CHECK(code_of([&] { bq::QuantizeTensor(QuantType::kQ4_0, QuantType::kF32, x.data(), 1, 48, out.data()); }) ==
        bq::ErrorCode::kShape);
  CHECK(code_of([&] { bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kQ8_0, x.data(), 1, 256, out.data()); }) ==
        bq::ErrorCode::kUnsupportedType);
  std::vector<float> bad_w(256, 1.0f);
  bad_w[3] = -1.0f;
  CHECK(code_of([&] {
          bq::QuantizeTensor(QuantType::kQ4_K, QuantType::kF32, x.data(), 1, 256, out.data(), bad_w.data());
        }) == bq::ErrorCode::kInvalidArgument);
}

TEST_CASE("a golden Q4_0 block: values k * 0.5 for k = -8..7 round-trip exactly") {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[static_cast<size_t>(i)] = 0.5f * static_cast<float>(i % 16 - 8);
  bq::BlockQ4_0 b;
  bq::ref::QuantizeRowQ4_0(x.data(), &b, 32, nullptr);
  std::vector<float> y(32);
  bq::ref::DequantizeRowQ4_0(&b, y.data(), 32);
  CHECK(y == x);
  // The scale maps -4 to q = 0 (the longer negative end): d = 0.5.
  CHECK(b.d == 0x3800);
  CHECK(b.qs[0] == 0x00);  // elements 0 and 16 are both -4 -> nibble 0
  CHECK(b.qs[15] == 0xFF); // elements 15 and 31 are both 3.5 -> nibble 15
}

TEST_CASE("unaligned buffers: quantize and dequantize copy misaligned rows, same results") {
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = 3, cols = 256;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (auto& v : x) v = nd(rng);
  for (bq::QuantType type : {bq::QuantType::kQ4_K, bq::QuantType::kQ2_K, bq::QuantType::kQ8_0, bq::QuantType::kF16}) {
    const size_t bytes = static_cast<size_t>(rows * bq::RowBytes(type, cols));
    std::vector<uint8_t> q(bytes), shifted(bytes + 1);
    bq::QuantizeTensor(type, bq::QuantType::kF32, x.data(), rows, cols, q.data());
    std::memcpy(shifted.data() + 1, q.data(), bytes);  // the same blocks at an odd address
    std::vector<float> a(x.size()), b(x.size());
    bq::DequantizeTensor(type, q.data(), rows, cols, a.data());
    bq::DequantizeTensor(type, shifted.data() + 1, rows, cols, b.data());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    // An f32 source at an odd address quantizes to the same bytes.
    std::vector<uint8_t> src(x.size() * 4 + 1), q2(bytes);
    std::memcpy(src.data() + 1, x.data(), x.size() * 4);
    bq::QuantizeTensor(type, bq::QuantType::kF32, src.data() + 1, rows, cols, q2.data());
    CHECK(q == q2);
  }
}
