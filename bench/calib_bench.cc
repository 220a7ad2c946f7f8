// Calibrated quantization bench: layer-output error on held-out activations
// of plain rounding, imatrix-weighted rounding, GPTQ-style compensation and
// AWQ-style scaling, for Q2_K/Q3_K/Q4_K on generated layers, and the time of
// GPTQ (Hessian + quantization) at the thread count given.
//
//   bq_calib_bench [--quick] [--noise S] [--threads N] [--json out.json] [--md out.md]
//
// Activations: 256 latent factors with a power-law spectrum and Student-t
// (heavy-tailed) samples, mixed into 4096 channels (per-channel std ~2.1),
// plus isotropic noise of std S (default 1: the less low-rank the
// activations, the less compensation can gain), with 1% of
// the channels 20-100x the median. Calibration (4096 rows) and held-out
// (512 rows) are disjoint draws from one distribution.
#include <Eigen/Core>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "blockquant/calib/awq.h"
#include "blockquant/calib/gptq.h"
#include "blockquant/calib/layer_error.h"
#include "blockquant/cpu/kernels.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"

namespace bq = blockquant;
namespace calib = blockquant::calib;
using bq::QuantType;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct ActivationModel {
  RowMat mix;               // factors x cols
  std::vector<float> chan;  // per-channel gain (outliers)
};

ActivationModel MakeModel(int64_t cols, uint32_t seed) {
  const int64_t k = 256;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ActivationModel m;
  m.mix.resize(k, cols);
  for (int64_t f = 0; f < k; ++f) {
    const float sigma = std::pow(static_cast<float>(f + 1), -0.8f);
    for (int64_t j = 0; j < cols; ++j) m.mix(f, j) = nd(rng) * sigma;
  }
  m.chan.assign(static_cast<size_t>(cols), 1.0f);
  std::uniform_real_distribution<float> gain(20.0f, 100.0f);
  std::uniform_int_distribution<int64_t> pick(0, cols - 1);
  for (int64_t i = 0; i < cols / 100; ++i) m.chan[static_cast<size_t>(pick(rng))] = gain(rng);
  return m;
}

std::vector<float> Sample(const ActivationModel& m, int64_t n, uint32_t seed, float noise) {
  const int64_t k = m.mix.rows(), cols = m.mix.cols();
  std::mt19937 rng(seed);
  std::student_t_distribution<float> td(4.0f);
  std::normal_distribution<float> nd(0.0f, noise);
  RowMat z(n, k);
  for (int64_t i = 0; i < n * k; ++i) z.data()[i] = td(rng);
  RowMat x = z * m.mix;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < cols; ++j) x(r, j) = (x(r, j) + nd(rng)) * m.chan[static_cast<size_t>(j)];
  }
  return std::vector<float>(x.data(), x.data() + n * cols);
}

struct Row {
  std::string shape, type, method;
  double error = 0.0, seconds = 0.0;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  float noise = 1.0f;
  size_t threads = 2;
  std::string json_path, md_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--noise" && i + 1 < argc) noise = std::stof(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::stoul(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--md" && i + 1 < argc) md_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bq_calib_bench [--quick] [--noise S] [--threads N] [--json F] [--md F]\n");
      return 2;
    }
  }
  bq::ThreadPool pool(threads);
  const bq::ParallelFor pf = [&](size_t n, const bq::RangeBody& body) { pool.Run(n, body); };
  const bq::RowQuantizer fast_row = bq::cpu::QuantizeRow;

  const int64_t cols = 4096, n_calib = quick ? 1024 : 4096, n_held = 512;
  std::vector<int64_t> out_rows = quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{4096, 14336};
  const ActivationModel model = MakeModel(cols, 1);
  const std::vector<float> xc = Sample(model, n_calib, 2, noise), xh = Sample(model, n_held, 3, noise);
  std::vector<Row> rows_out;

  for (int64_t rows : out_rows) {
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    std::mt19937 rng(static_cast<uint32_t>(rows));
    std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (auto& v : w) v = nd(rng);

    auto t0 = std::chrono::steady_clock::now();
    calib::Hessian h(cols);
    h.Add(xc.data(), n_calib, pf);
    const double hessian_s = Seconds(t0);
    const std::vector<float> importance = h.Importance();

    std::vector<uint8_t> q;
    std::vector<float> deq(w.size());
    auto held_error = [&](QuantType type, const std::vector<uint8_t>& bytes, const float* col_scale) {
      bq::DequantizeTensor(type, bytes.data(), rows, cols, deq.data(), pf);
      if (col_scale) {
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < cols; ++j) deq[static_cast<size_t>(r * cols + j)] /= col_scale[j];
        }
      }
      return calib::LayerOutputError(w.data(), deq.data(), rows, cols, xh.data(), n_held, pf);
    };
    for (QuantType type : {QuantType::kQ2_K, QuantType::kQ3_K, QuantType::kQ4_K}) {
      const std::string tn = bq::TypeName(type);
      q.assign(static_cast<size_t>(rows * bq::RowBytes(type, cols)), 0);
      auto add = [&](const std::string& method, double err, double s) {
        rows_out.push_back({shape, tn, method, err, s});
        std::printf("%-11s %-5s %-8s held-out error %.5f  %.2f s\n", shape.c_str(), tn.c_str(), method.c_str(), err, s);
        std::fflush(stdout);
      };
      t0 = std::chrono::steady_clock::now();
      bq::QuantizeTensor(type, QuantType::kF32, w.data(), rows, cols, q.data(), nullptr, pf, fast_row);
      add("rtn", held_error(type, q, nullptr), Seconds(t0));
      t0 = std::chrono::steady_clock::now();
      bq::QuantizeTensor(type, QuantType::kF32, w.data(), rows, cols, q.data(), importance.data(), pf, fast_row);
      add("imatrix", held_error(type, q, nullptr), Seconds(t0));
      calib::GptqOptions go;
      go.quantize_row = fast_row;
      go.parallel_for = pf;
      t0 = std::chrono::steady_clock::now();
      calib::QuantizeGptq(type, w.data(), rows, cols, h, q.data(), go);
      const double gptq_s = Seconds(t0) + hessian_s;
      add("gptq", held_error(type, q, nullptr), gptq_s);
      // AWQ: the searched scales, then imatrix rounding of W diag(s) with
      // the scaled activations' importance (what the search scored).
      calib::AwqOptions ao;
      ao.quantize_row = fast_row;
      ao.parallel_for = pf;
      ao.grid = 10;
      t0 = std::chrono::steady_clock::now();
      const calib::AwqResult awq = calib::SearchAwqScales(type, {{w.data(), rows}}, cols, xc.data(), n_calib, ao);
      std::vector<float> scaled = w, imp_s(importance);
      calib::ScaleColumns(scaled.data(), rows, cols, awq.scales.data());
      for (int64_t j = 0; j < cols; ++j) {
        imp_s[static_cast<size_t>(j)] /= awq.scales[static_cast<size_t>(j)] * awq.scales[static_cast<size_t>(j)];
      }
      bq::QuantizeTensor(type, QuantType::kF32, scaled.data(), rows, cols, q.data(), imp_s.data(), pf, fast_row);
      add("awq", held_error(type, q, awq.scales.data()), Seconds(t0));
      std::printf("  (awq alpha %.2f)\n", awq.alpha);
    }
  }

  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << "[\n";
    for (size_t i = 0; i < rows_out.size(); ++i) {
      const Row& r = rows_out[i];
      f << "  {\"shape\": \"" << r.shape << "\", \"type\": \"" << r.type << "\", \"method\": \"" << r.method
        << "\", \"heldout_error\": " << r.error << ", \"seconds\": " << r.seconds << ", \"threads\": " << threads
        << "}" << (i + 1 < rows_out.size() ? "," : "") << "\n";
    }
    f << "]\n";
  }
  if (!md_path.empty()) {
    std::ofstream f(md_path);
    f << "| shape (out x in) | type | rtn | imatrix | gptq | awq | gptq vs rtn | gptq vs imatrix | gptq time (s, "
      << threads << " threads) |\n|---|---|---|---|---|---|---|---|---|\n";
    for (size_t i = 0; i + 3 < rows_out.size() + 0; i += 4) {
      const Row &r = rows_out[i], &im = rows_out[i + 1], &g = rows_out[i + 2], &a = rows_out[i + 3];
      char line[512];
      std::snprintf(line, sizeof line, "| %s | %s | %.4f | %.4f | %.4f | %.4f | %+.0f%% | %+.0f%% | %.1f |\n",
                    r.shape.c_str(), r.type.c_str(), r.error, im.error, g.error, a.error,
                    100.0 * (g.error / r.error - 1.0), 100.0 * (g.error / im.error - 1.0), g.seconds);
      f << line;
    }
  }
  return 0;
}
