// Activation-aware scaling (AWQ-style, Lin et al. 2023): input channels that
// carry large activations matter more, so their weight columns are scaled up
// by s_c before quantization (finer relative steps) and the activations are
// divided by s_c. In a llama-shaped model the division folds into the RMS
// norm before the layer (attn_norm for q/k/v, ffn_norm for gate/up: every
// layer reading that norm's output must share one s), so the exported GGUF
// is a plain model whose layers hold quant(W diag(s)) and whose norm weights
// are g / s. Where no norm precedes the input (attn_output, ffn_down), see
// docs/calibration.md.
//
// s_c = (mean |x_c|)^alpha, normalised to a geometric mean of 1; alpha is
// searched on a grid by the layer-output error on the calibration rows.
#ifndef BLOCKQUANT_CALIB_AWQ_H_
#define BLOCKQUANT_CALIB_AWQ_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "blockquant/calib/layer_error.h"
#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/quantize.h"

namespace blockquant {
inline namespace v0 {
namespace calib {

// One weight reading the shared input: row-major rows x cols.
struct AwqWeight {
  const float* data = nullptr;
  int64_t rows = 0;
};

struct AwqOptions {
  int grid = 20;                     // alpha in {0, 1/grid, ..., 1}
  int64_t max_search_samples = 256;  // calibration rows used to score each alpha
  RowQuantizer quantize_row = nullptr;
  ParallelFor parallel_for = SerialFor();
};

struct AwqResult {
  std::vector<float> scales;  // s_c per input column (all 1 when alpha = 0 wins)
  double alpha = 0.0;
  double error = 0.0;          // the summed-weights layer-output error at alpha
  double error_unscaled = 0.0; // the same at alpha = 0 (plain imatrix rounding)
};

// w * diag(s), in place (row-major rows x cols).
inline void ScaleColumns(float* w, int64_t rows, int64_t cols, const float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) w[r * cols + j] *= s[j];
  }
}

// Folds 1/s into the norm weight that produces the layer's input (g_c / s_c),
// the other half of ScaleColumns: W diag(s) applied to x * g / s is W (x * g).
inline void FoldIntoNorm(float* norm_weight, const float* s, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) norm_weight[j] /= s[j];
}

// The per-channel scales for alpha from mean |x_c|.
inline std::vector<float> AwqScales(const std::vector<double>& mean_abs, double alpha) {
  const size_t cols = mean_abs.size();
  std::vector<double> s(cols);
  double log_sum = 0.0;
  for (size_t j = 0; j < cols; ++j) {
    s[j] = std::pow(std::max(mean_abs[j], 1e-8), alpha);
    log_sum += std::log(s[j]);
  }
  const double norm = std::exp(log_sum / static_cast<double>(cols));
  std::vector<float> out(cols);
  for (size_t j = 0; j < cols; ++j) out[j] = static_cast<float>(s[j] / norm);
  return out;
}

// Searches alpha for weights sharing input x (samples x cols). Each
// candidate quantizes W diag(s) to `type`, weighting rounding by the scaled
// activations' mean x^2 (so AWQ adds to imatrix weighting, not replaces it),
// and scores sum_k ||X W_k^T - X (deq_k diag(1/s))^T||^2 / sum_k ||X W_k^T||^2.
inline AwqResult SearchAwqScales(QuantType type, const std::vector<AwqWeight>& weights, int64_t cols, const float* x,
                                 int64_t samples, const AwqOptions& options = {}) {
  if (weights.empty() || cols <= 0 || samples <= 0 || options.grid < 1) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "AWQ needs weights, calibration rows and a grid >= 1");
  }
  RequireFinite(x, samples, cols, "the calibration activation matrix");
  std::vector<double> mean_abs(static_cast<size_t>(cols), 0.0), mean_sq(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < samples; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      const double v = x[r * cols + j];
      mean_abs[static_cast<size_t>(j)] += std::fabs(v) / static_cast<double>(samples);
      mean_sq[static_cast<size_t>(j)] += v * v / static_cast<double>(samples);
    }
  }
  // Score on an evenly spaced subset of the rows.
  const int64_t n = std::min(samples, options.max_search_samples);
  std::vector<float> xs(static_cast<size_t>(n * cols));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i * samples / n;
    std::copy(x + r * cols, x + (r + 1) * cols, xs.begin() + i * cols);
  }
  AwqResult best;
  std::vector<float> scaled, deq, importance(static_cast<size_t>(cols));
  std::vector<uint8_t> q;
  for (int g = 0; g <= options.grid; ++g) {
    const double alpha = static_cast<double>(g) / options.grid;
    std::vector<float> s = AwqScales(mean_abs, alpha);
    for (int64_t j = 0; j < cols; ++j) {
      const double sj = s[static_cast<size_t>(j)];
      importance[static_cast<size_t>(j)] = static_cast<float>(mean_sq[static_cast<size_t>(j)] / (sj * sj));
    }
    LayerErrorSums sums;
    for (const AwqWeight& wk : weights) {
      const int64_t rows = wk.rows;
      scaled.assign(wk.data, wk.data + rows * cols);
      ScaleColumns(scaled.data(), rows, cols, s.data());
      q.resize(static_cast<size_t>(rows * RowBytes(type, cols)));
      QuantizeTensor(type, QuantType::kF32, scaled.data(), rows, cols, q.data(), importance.data(),
                     options.parallel_for, options.quantize_row);
      deq.resize(static_cast<size_t>(rows * cols));
      DequantizeTensor(type, q.data(), rows, cols, deq.data(), options.parallel_for);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j) deq[static_cast<size_t>(r * cols + j)] /= s[static_cast<size_t>(j)];
      }
      const LayerErrorSums e = LayerOutputErrorSums(wk.data, deq.data(), rows, cols, xs.data(), n, options.parallel_for);
      sums.diff_sq += e.diff_sq;
      sums.ref_sq += e.ref_sq;
    }
    const double err = sums.Relative();
    if (g == 0) best.error_unscaled = err;
    if (g == 0 || err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.scales = std::move(s);
    }
  }
  return best;
}

}  // namespace calib
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CALIB_AWQ_H_
