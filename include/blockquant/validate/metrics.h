// Error metrics between an original tensor and its dequantized version,
// accumulated in one pass over row chunks. Double accumulators and a fixed
// merge order (per-chunk partials merged by chunk index) make the figures
// the same for any thread count.
#ifndef BLOCKQUANT_VALIDATE_METRICS_H_
#define BLOCKQUANT_VALIDATE_METRICS_H_

#include <cmath>
#include <cstdint>
#include <limits>

namespace blockquant {
inline namespace v0 {

struct TensorMetrics {
  double rel_rmse = 0.0;     // RMSE(x - y) / RMS(x); 0 when both are all zero
  double max_abs_err = 0.0;  // max |x - y|
  int64_t max_err_index = -1;
  double snr_db = 0.0;       // 10 log10(sum x^2 / sum (x - y)^2); +inf when exact
  double cosine = 1.0;       // x . y / (|x| |y|); 1 when both are zero
  double weighted_rel_rmse = -1.0;  // with per-column importance; -1 when none was given
  int64_t n = 0;
};

class MetricsAccumulator {
 public:
  // Adds n values; index_base numbers them for max_err_index; w (nullable)
  // holds one importance weight per column of a row of `cols` values.
  void Add(const float* x, const float* y, int64_t n, int64_t index_base = 0, const float* w = nullptr,
           int64_t cols = 1) {
    for (int64_t i = 0; i < n; ++i) {
      const double a = x[i], b = y[i], d = a - b;
      sxx_ += a * a;
      syy_ += b * b;
      sxy_ += a * b;
      see_ += d * d;
      if (w != nullptr) {
        const double wi = w[(index_base + i) % cols];
        wxx_ += wi * a * a;
        wee_ += wi * d * d;
        weighted_ = true;
      }
      if (!(std::fabs(d) <= max_abs_)) {  // NaN also lands here and sticks
        if (!std::isnan(max_abs_)) {
          max_abs_ = std::fabs(d);
          max_index_ = index_base + i;
        }
      }
    }
    n_ += n;
  }

  void Merge(const MetricsAccumulator& o) {
    sxx_ += o.sxx_;
    syy_ += o.syy_;
    sxy_ += o.sxy_;
    see_ += o.see_;
    wxx_ += o.wxx_;
    wee_ += o.wee_;
    weighted_ = weighted_ || o.weighted_;
    if (!(o.max_abs_ <= max_abs_) && !std::isnan(max_abs_)) {
      max_abs_ = o.max_abs_;
      max_index_ = o.max_index_;
    }
    n_ += o.n_;
  }

  TensorMetrics Result() const {
    TensorMetrics m;
    m.n = n_;
    m.max_abs_err = max_abs_;
    m.max_err_index = max_index_;
    const double inf = std::numeric_limits<double>::infinity();
    m.rel_rmse = sxx_ > 0 ? std::sqrt(see_ / sxx_) : (see_ > 0 ? inf : 0.0);
    m.snr_db = see_ > 0 ? 10.0 * std::log10(sxx_ / see_) : inf;
    m.cosine = (sxx_ > 0 && syy_ > 0) ? sxy_ / std::sqrt(sxx_ * syy_) : (sxx_ == syy_ ? 1.0 : 0.0);
    if (weighted_) m.weighted_rel_rmse = wxx_ > 0 ? std::sqrt(wee_ / wxx_) : 0.0;
    if (std::isnan(max_abs_)) {  // NaN never passes silently
      m.rel_rmse = m.max_abs_err = std::numeric_limits<double>::quiet_NaN();
      m.cosine = std::numeric_limits<double>::quiet_NaN();
    }
    return m;
  }

 private:
  double sxx_ = 0, syy_ = 0, sxy_ = 0, see_ = 0, wxx_ = 0, wee_ = 0, max_abs_ = 0;
  int64_t max_index_ = -1, n_ = 0;
  bool weighted_ = false;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_VALIDATE_METRICS_H_
