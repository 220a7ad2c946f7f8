// Relative output error of a quantized linear layer on activations X:
// ||X W^T - X Wq^T|| / ||X W^T|| (Frobenius norms), the figure that decides
// whether a calibrated quantizer helped. Measure it on held-out activations,
// not the calibration set the quantizer saw.
#ifndef BLOCKQUANT_CALIB_LAYER_ERROR_H_
#define BLOCKQUANT_CALIB_LAYER_ERROR_H_

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/parallel.h"

namespace blockquant {
inline namespace v0 {
namespace calib {

// The two squared norms, for callers that pool several weights.
struct LayerErrorSums {
  double diff_sq = 0.0;  // ||X W^T - X Wq^T||^2
  double ref_sq = 0.0;   // ||X W^T||^2
  // 0 when both are zero, +inf when only the difference is not.
  double Relative() const {
    if (ref_sq == 0.0) return diff_sq == 0.0 ? 0.0 : INFINITY;
    return std::sqrt(diff_sq / ref_sq);
  }
};

// w and w_hat: rows x cols (row-major f32, w_hat e.g. the dequantized
// blocks); x: samples x cols. Output rows are split into fixed panels over
// parallel_for and the panel sums added in order, so the figure does not
// depend on the thread count.
inline LayerErrorSums LayerOutputErrorSums(const float* w, const float* w_hat, int64_t rows, int64_t cols,
                                           const float* x, int64_t samples,
                                           const ParallelFor& parallel_for = SerialFor()) {
  if (rows <= 0 || cols <= 0 || samples <= 0) {
    BLOCKQUANT_THROW(ErrorCode::kShape, "layer error needs positive shapes");
  }
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const Mat> X(x, samples, cols), W(w, rows, cols), Wq(w_hat, rows, cols);
  constexpr int64_t kPanel = 256;
  const int64_t panels = (rows + kPanel - 1) / kPanel;
  std::vector<double> ref_sq(static_cast<size_t>(panels)), diff_sq(static_cast<size_t>(panels));
  parallel_for(static_cast<size_t>(panels), [&](size_t begin, size_t end) {
    Mat y, d;
    for (size_t p = begin; p < end; ++p) {
      const int64_t r0 = static_cast<int64_t>(p) * kPanel, nr = std::min(kPanel, rows - r0);
      y.noalias() = X * W.middleRows(r0, nr).transpose();
      d.noalias() = X * (W.middleRows(r0, nr) - Wq.middleRows(r0, nr)).transpose();
      ref_sq[p] = y.cast<double>().squaredNorm();
      diff_sq[p] = d.cast<double>().squaredNorm();
    }
  });
  LayerErrorSums sums;
  for (int64_t p = 0; p < panels; ++p) {
    sums.ref_sq += ref_sq[static_cast<size_t>(p)];
    sums.diff_sq += diff_sq[static_cast<size_t>(p)];
  }
  return sums;
}

// The relative error ||X W^T - X Wq^T|| / ||X W^T||.
inline double LayerOutputError(const float* w, const float* w_hat, int64_t rows, int64_t cols, const float* x,
                               int64_t samples, const ParallelFor& parallel_for = SerialFor()) {
  return LayerOutputErrorSums(w, w_hat, rows, cols, x, samples, parallel_for).Relative();
}

}  // namespace calib
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CALIB_LAYER_ERROR_H_
