// Calibrated quantization: block grids against the reference quantizer's
// bytes, GPTQ against a slow per-column loop (the original OBQ update with
// an explicit inverse, in double), its error against plain and imatrix
// rounding on held-out activations, determinism, and bad input.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <doctest/doctest.h>

#include "blockquant/calib/block_grid.h"
#include "blockquant/calib/gptq.h"
#include "blockquant/calib/layer_error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"
#include "random_util.h"

namespace bq = blockquant;
namespace calib = blockquant::calib;
using bq::QuantType;

namespace {

const QuantType kGridTypes[] = {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ5_K,
                                QuantType::kQ6_K, QuantType::kQ8_0, QuantType::kQ4_0};

// Activations shaped like a transformer's: columns mixed (correlated),
// heavy-tailed rows, and a few outlier channels 20-60x the rest. The mixing
// is the layer's (fixed); `seed` draws the samples, so two seeds give a
// calibration set and a held-out set from one distribution.
std::vector<float> Activations(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(12345);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::student_t_distribution<float> td(3.0f);
  const int64_t k = 32;  // latent factors
  std::vector<float> mix(static_cast<size_t>(k * cols));
  for (auto& m : mix) m = nd(rng);
  std::vector<float> chan(static_cast<size_t>(cols), 1.0f);
  for (int64_t j = 0; j < cols; j += 61) chan[static_cast<size_t>(j)] = 20.0f + static_cast<float>(j % 41);
  std::vector<float> x(static_cast<size_t>(n * cols));
  std::mt19937 rows_rng(seed * 7919u + 1u);
  for (int64_t r = 0; r < n; ++r) {
    float z[32];
    for (auto& v : z) v = td(rows_rng);
    for (int64_t j = 0; j < cols; ++j) {
      float s = 0.3f * nd(rows_rng);
      for (int64_t f = 0; f < k; ++f) s += z[f] * mix[static_cast<size_t>(f * cols + j)] * 0.2f;
      x[static_cast<size_t>(r * cols + j)] = s * chan[static_cast<size_t>(j)];
    }
  }
  return x;
}

std::vector<float> Dequantize(QuantType type, const std::vector<uint8_t>& q, int64_t rows, int64_t cols) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  bq::DequantizeTensor(type, q.data(), rows, cols, w.data());
  return w;
}

// The original sequential update (OBQ): for column i, e = (w_i - q_i) /
// Hinv_ii and w_j -= e Hinv_ij for later j; then column i leaves Hinv by
// Gaussian elimination. All rows at once, in double, scales chosen at each
// 256-column batch start exactly as QuantizeGptq does.
std::vector<uint8_t> SlowGptq(QuantType type, const std::vector<float>& w, int64_t rows, int64_t cols,
                              const calib::Hessian& h, double damp) {
  Eigen::MatrixXd H = h.Dense().cast<double>();
  double mean = H.diagonal().mean();
  for (int64_t i = 0; i < cols; ++i) {
    if (H(i, i) == 0.0) H(i, i) = mean;
  }
  H.diagonal().array() += damp * mean;
  Eigen::MatrixXd Hinv = H.inverse();
  Eigen::MatrixXd W = Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>>(w.data(), rows, cols)
                          .cast<double>();
  const std::vector<float> importance = h.Importance();
  const int64_t row_bytes = bq::RowBytes(type, cols), block = bq::Traits(type).block_elems;
  const int64_t block_bytes = bq::Traits(type).block_bytes;
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  std::vector<int> levels(static_cast<size_t>(rows * cols));
  std::vector<calib::BlockGrid> grids(static_cast<size_t>(rows * (cols / block)));
  const calib::LevelRange range(type);
  const int qmin = range.min, qmax = range.max;
  for (int64_t i = 0; i < cols; ++i) {
    if (i % 256 == 0) {
      const int64_t n = std::min<int64_t>(256, cols - i);
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> seg(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) seg[static_cast<size_t>(k)] = static_cast<float>(W(r, i + k));
        uint8_t* dst = out.data() + r * row_bytes + i / block * block_bytes;
        bq::QuantizeRowReference(type, seg.data(), dst, n, importance.data() + i);
        for (int64_t b = 0; b < n / block; ++b) {
          calib::ReadBlockGrid(type, dst + b * block_bytes, &grids[static_cast<size_t>(r * (cols / block) + i / block + b)]);
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const calib::BlockGrid& g = grids[static_cast<size_t>(r * (cols / block) + i / block)];
      const int k = static_cast<int>(i % block);
      const float x = static_cast<float>(W(r, i));
      const float q = calib::RoundToGrid(x, g.step[k], g.offset[k], static_cast<float>(qmin), static_cast<float>(qmax));
      levels[static_cast<size_t>(r * cols + i)] = static_cast<int>(q);
      const double e = (W(r, i) - static_cast<double>(g.step[k] * q - g.offset[k])) / Hinv(i, i);
      for (int64_t j = i + 1; j < cols; ++j) W(r, j) -= e * Hinv(i, j);
    }
    const Eigen::VectorXd col = Hinv.col(i), row = Hinv.row(i).transpose();
    Hinv -= col * row.transpose() / Hinv(i, i);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / block; ++b) {
      calib::WriteBlockLevels(type, levels.data() + r * cols + b * block, out.data() + r * row_bytes + b * block_bytes);
    }
  }
  return out;
}

std::vector<uint8_t> Quantize(QuantType type, const std::vector<float>& w, int64_t rows, int64_t cols,
                              const float* importance = nullptr) {
  std::vector<uint8_t> q(static_cast<size_t>(rows * bq::RowBytes(type, cols)));
  bq::QuantizeTensor(type, QuantType::kF32, w.data(), rows, cols, q.data(), importance);
  return q;
}

std::vector<uint8_t> Gptq(QuantType type, const std::vector<float>& w, int64_t rows, int64_t cols,
                          const calib::Hessian& h, const calib::GptqOptions& o = {}) {
  std::vector<uint8_t> q(static_cast<size_t>(rows * bq::RowBytes(type, cols)));
  calib::QuantizeGptq(type, w.data(), rows, cols, h, q.data(), o);
  return q;
}

}  // namespace

TEST_CASE("block grids: rounding a block's own decoded values gives back its bytes") {
  const int64_t cols = 1024;
  std::vector<float> x = Normal(static_cast<size_t>(cols), 11);
  for (int i = 0; i < 256; ++i) x[static_cast<size_t>(256 + i)] = 0.0f;          // an all-zero block
  for (int i = 0; i < 256; ++i) x[static_cast<size_t>(512 + i)] = 3.0f;          // a constant block
  for (int i = 0; i < 256; ++i) x[static_cast<size_t>(768 + i)] *= i % 16 ? 1e-3f : 1e3f;  // spikes
  for (QuantType type : kGridTypes) {
    const std::string name = bq::TypeName(type);
    CAPTURE(name);
    const std::vector<uint8_t> q = Quantize(type, x, 1, cols);
    const std::vector<float> y = Dequantize(type, q, 1, cols);
    const int64_t block = bq::Traits(type).block_elems, block_bytes = bq::Traits(type).block_bytes;
    const calib::LevelRange range(type);
    const int qmin = range.min, qmax = range.max;
    for (int64_t b = 0; b < cols / block; ++b) {
      const uint8_t* src = q.data() + b * block_bytes;
      calib::BlockGrid g;
      calib::ReadBlockGrid(type, src, &g);
      REQUIRE(g.n == block);
      int levels[256];
      for (int k = 0; k < block; ++k) {
        const float v = y[static_cast<size_t>(b * block + k)];
        levels[k] = static_cast<int>(calib::RoundToGrid(v, g.step[k], g.offset[k], static_cast<float>(qmin),
                                                        static_cast<float>(qmax)));
        CHECK(g.step[k] * static_cast<float>(levels[k]) - g.offset[k] == v);
      }
      std::vector<uint8_t> copy(src, src + block_bytes);
      calib::WriteBlockLevels(type, levels, copy.data());
      CHECK(std::memcmp(copy.data(), src, static_cast<size_t>(block_bytes)) == 0);
    }
  }
  CHECK_THROWS_AS(calib::RequireBlockGrid(QuantType::kQ4_1), bq::Error);
}

TEST_CASE("Hessian: X^T X in panels, any thread count, bad input") {
  const int64_t n = 97, cols = 200;
  const std::vector<float> x = Normal(static_cast<size_t>(n * cols), 3);
  calib::Hessian a(cols), b(cols);
  a.Add(x.data(), n);
  bq::ThreadPool pool(3);
  b.Add(x.data(), 50, [&](size_t m, const bq::RangeBody& body) { pool.Run(m, body); });
  b.Add(x.data() + 50 * cols, n - 50, [&](size_t m, const bq::RangeBody& body) { pool.Run(m, body); });
  const Eigen::MatrixXf ha = a.Dense(), hb = b.Dense();
  Eigen::MatrixXd direct = Eigen::MatrixXd::Zero(cols, cols);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        direct(i, j) += static_cast<double>(x[static_cast<size_t>(r * cols + i)]) * x[static_cast<size_t>(r * cols + j)];
      }
    }
  }
  CHECK((ha.cast<double>() - direct).cwiseAbs().maxCoeff() < 1e-3 * direct.cwiseAbs().maxCoeff());
  CHECK((hb.cast<double>() - direct).cwiseAbs().maxCoeff() < 1e-3 * direct.cwiseAbs().maxCoeff());
  CHECK(ha.isApprox(ha.transpose(), 0.0f));
  CHECK(a.samples() == n);
  CHECK(a.Importance()[5] == doctest::Approx(direct(5, 5) / n).epsilon(1e-5));

  std::vector<float> bad = x;
  bad[static_cast<size_t>(7 * cols + 3)] = NAN;
  calib::Hessian c(cols);
  CHECK_THROWS_WITH_AS(c.Add(bad.data(), n), doctest::Contains("row 7, column 3"), bq::Error);
  CHECK(c.samples() == 0);
  CHECK_THROWS_AS(calib::Hessian(0), bq::Error);
}

TEST_CASE("GPTQ matches the slow per-column loop on a 256 x 512 layer") {
  const int64_t rows = 256, cols = 512, n = 2048;
  const std::vector<float> w = Normal(static_cast<size_t>(rows * cols), 5);
  const std::vector<float> x = Activations(n, cols, 21);
  calib::Hessian h(cols);
  h.Add(x.data(), n);
  for (QuantType type : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K, QuantType::kQ6_K, QuantType::kQ8_0}) {
    const std::string name = bq::TypeName(type);
    CAPTURE(name);
    const std::vector<uint8_t> fast = Gptq(type, w, rows, cols, h);
    const std::vector<uint8_t> slow = SlowGptq(type, w, rows, cols, h, 0.01);
    // The two orders of float/double arithmetic may flip a level that sits
    // on a rounding boundary, and that flip then shifts later columns; the
    // dequantized weights must agree almost everywhere, the errors closely.
    const std::vector<float> wf = Dequantize(type, fast, rows, cols), ws = Dequantize(type, slow, rows, cols);
    int64_t same = 0;
    for (size_t i = 0; i < wf.size(); ++i) same += wf[i] == ws[i];
    CHECK(static_cast<double>(same) / static_cast<double>(wf.size()) > 0.99);
    const double ef = calib::LayerOutputError(w.data(), wf.data(), rows, cols, x.data(), n);
    const double es = calib::LayerOutputError(w.data(), ws.data(), rows, cols, x.data(), n);
    CHECK(ef == doctest::Approx(es).epsilon(0.02));
  }
}

TEST_CASE("GPTQ lowers held-out layer-output error below plain and imatrix rounding") {
  const int64_t rows = 128, cols = 1024, n = 2048;
  const std::vector<float> w = Normal(static_cast<size_t>(rows * cols), 8);
  const std::vector<float> calib_x = Activations(n, cols, 31), held_out = Activations(512, cols, 32);
  calib::Hessian h(cols);
  h.Add(calib_x.data(), n);
  const std::vector<float> importance = h.Importance();
  for (QuantType type : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K}) {
    const std::string name = bq::TypeName(type);
    CAPTURE(name);
    auto err = [&](const std::vector<uint8_t>& q) {
      const std::vector<float> wq = Dequantize(type, q, rows, cols);
      return calib::LayerOutputError(w.data(), wq.data(), rows, cols, held_out.data(), 512);
    };
    const double rtn = err(Quantize(type, w, rows, cols));
    const double imat = err(Quantize(type, w, rows, cols, importance.data()));
    const double gptq = err(Gptq(type, w, rows, cols, h));
    calib::GptqOptions act;
    act.act_order = true;
    const double gptq_act = err(Gptq(type, w, rows, cols, h, act));
    MESSAGE(name, " rtn ", rtn, " imatrix ", imat, " gptq ", gptq, " gptq act_order ", gptq_act);
    CHECK(imat < rtn);
    CHECK(gptq < 0.75 * rtn);
    CHECK(gptq < 0.9 * imat);
    CHECK(gptq_act < 0.9 * imat);
  }
}

TEST_CASE("GPTQ: same bytes for any thread count; adversarial weights and activations") {
  const int64_t rows = 77, cols = 768, n = 300;  // rows not a multiple of the chunk, fewer samples than columns
  std::vector<float> w = Normal(static_cast<size_t>(rows * cols), 9);
  for (int64_t j = 0; j < cols; ++j) w[static_cast<size_t>(3 * cols + j)] = 0.0f;      // an all-zero row
  for (int64_t j = 0; j < cols; ++j) w[static_cast<size_t>(4 * cols + j)] = -2.5f;     // a constant row
  for (int64_t j = 0; j < cols; ++j) w[static_cast<size_t>(5 * cols + j)] *= 1e4f;     // huge
  for (int64_t j = 0; j < cols; ++j) w[static_cast<size_t>(6 * cols + j)] *= 1e-20f;   // tiny
  std::vector<float> x = Activations(n, cols, 41);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 256; j < 300; ++j) x[static_cast<size_t>(r * cols + j)] = 0.0f;   // dead input channels
  }
  calib::Hessian h(cols);
  h.Add(x.data(), n);
  for (QuantType type : kGridTypes) {
    const std::string name = bq::TypeName(type);
    CAPTURE(name);
    const std::vector<uint8_t> serial = Gptq(type, w, rows, cols, h);
    bq::ThreadPool pool(3);
    calib::GptqOptions o;
    o.parallel_for = [&](size_t m, const bq::RangeBody& body) { pool.Run(m, body); };
    CHECK(Gptq(type, w, rows, cols, h, o) == serial);
    const std::vector<float> wq = Dequantize(type, serial, rows, cols);
    bool finite = true;
    for (float v : wq) finite = finite && std::isfinite(v);
    CHECK(finite);
    for (int64_t j = 0; j < cols; ++j) REQUIRE(wq[static_cast<size_t>(3 * cols + j)] == 0.0f);
    const double e = calib::LayerOutputError(w.data(), wq.data(), rows, cols, x.data(), n);
    CHECK(e < 0.7);  // Q2_K is the coarsest; every type must still track the layer
  }
}

TEST_CASE("GPTQ: bad input is refused before anything is written") {
  const int64_t rows = 4, cols = 256;
  std::vector<float> w = Normal(static_cast<size_t>(rows * cols), 1);
  const std::vector<float> x = Normal(static_cast<size_t>(64 * cols), 2);
  calib::Hessian h(cols), empty(cols), narrow(128);
  h.Add(x.data(), 64);
  std::vector<uint8_t> q(static_cast<size_t>(rows * bq::RowBytes(QuantType::kQ4_K, cols)), 0xAB);
  const std::vector<uint8_t> untouched = q;
  CHECK_THROWS_WITH_AS(calib::QuantizeGptq(QuantType::kQ4_1, w.data(), rows, cols, h, q.data()),
                       doctest::Contains("Q4_1"), bq::Error);
  CHECK_THROWS_WITH_AS(calib::QuantizeGptq(QuantType::kQ4_K, w.data(), rows, cols, narrow, q.data()),
                       doctest::Contains("128 columns"), bq::Error);
  CHECK_THROWS_WITH_AS(calib::QuantizeGptq(QuantType::kQ4_K, w.data(), rows, cols, empty, q.data()),
                       doctest::Contains("no calibration samples"), bq::Error);
  CHECK_THROWS_AS(calib::QuantizeGptq(QuantType::kQ4_K, w.data(), rows, 128, narrow, q.data()), bq::Error);
  w[static_cast<size_t>(2 * cols + 9)] = INFINITY;
  CHECK_THROWS_WITH_AS(calib::QuantizeGptq(QuantType::kQ4_K, w.data(), rows, cols, h, q.data()),
                       doctest::Contains("row 2, column 9"), bq::Error);
  CHECK(q == untouched);
}

TEST_CASE("layer output error: zero, exact and known cases") {
  const int64_t rows = 3, cols = 4, n = 2;
  const std::vector<float> w = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  const std::vector<float> x = {1, 2, 3, 4, -1, 0, 2, 0};
  CHECK(calib::LayerOutputError(w.data(), w.data(), rows, cols, x.data(), n) == 0.0);
  std::vector<float> half = w;
  for (auto& v : half) v *= 0.5f;
  CHECK(calib::LayerOutputError(w.data(), half.data(), rows, cols, x.data(), n) == doctest::Approx(0.5));
  const std::vector<float> zero(w.size(), 0.0f);
  CHECK(calib::LayerOutputError(zero.data(), zero.data(), rows, cols, x.data(), n) == 0.0);
  CHECK(std::isinf(calib::LayerOutputError(zero.data(), w.data(), rows, cols, x.data(), n)));
  CHECK_THROWS_AS(calib::LayerOutputError(w.data(), w.data(), 0, cols, x.data(), n), bq::Error);
}
