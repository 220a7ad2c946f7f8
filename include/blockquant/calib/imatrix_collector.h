// Builds an importance matrix from activations as a model runs: per weight
// (by GGUF tensor name) the sum of x^2 per input column and the number of
// rows seen, in double so long runs lose nothing. ToImatrix() gives what
// io/imatrix.h saves in llama.cpp's GGUF or legacy .dat format.
#ifndef BLOCKQUANT_CALIB_IMATRIX_COLLECTOR_H_
#define BLOCKQUANT_CALIB_IMATRIX_COLLECTOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/io/imatrix.h"
#include "blockquant/quant/quantize.h"

namespace blockquant {
inline namespace v0 {
namespace calib {

class ImatrixCollector {
 public:
  // Adds rows x cols activations (row-major) entering weight `name`. The
  // width must match earlier calls for that name (kShape); NaN/Inf raise
  // kNonFinite and add nothing.
  void Add(const std::string& name, const float* x, int64_t rows, int64_t cols) {
    if (rows < 0 || cols <= 0) BLOCKQUANT_THROW(ErrorCode::kShape, "activations for '" + name + "' need cols > 0");
    RequireFinite(x, rows, cols, "the activation matrix for '" + name + "'");
    Sums& s = sums_[name];
    if (s.sum2.empty()) {
      s.sum2.assign(static_cast<size_t>(cols), 0.0);
    } else if (static_cast<int64_t>(s.sum2.size()) != cols) {
      BLOCKQUANT_THROW(ErrorCode::kShape, "activations for '" + name + "' have " + std::to_string(cols) +
                                              " columns; earlier ones had " + std::to_string(s.sum2.size()));
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * cols;
      for (int64_t j = 0; j < cols; ++j) s.sum2[static_cast<size_t>(j)] += static_cast<double>(row[j]) * row[j];
    }
    s.count += rows;
  }

  // Counts one calibration chunk (llama.cpp records how many it saw).
  void EndChunk() { ++chunks_; }

  bool empty() const { return sums_.empty(); }
  int64_t count(const std::string& name) const {
    const auto it = sums_.find(name);
    return it == sums_.end() ? 0 : it->second.count;
  }

  // Mean x^2 per column for `name` (empty when never seen).
  std::vector<float> Importance(const std::string& name) const {
    const auto it = sums_.find(name);
    if (it == sums_.end() || it->second.count == 0) return {};
    std::vector<float> w(it->second.sum2.size());
    for (size_t j = 0; j < w.size(); ++j) w[j] = static_cast<float>(it->second.sum2[j] / it->second.count);
    return w;
  }

  Imatrix ToImatrix(const std::string& dataset = "") const {
    Imatrix m;
    for (const auto& [name, s] : sums_) {
      ImatrixEntry e;
      e.cols = static_cast<int64_t>(s.sum2.size());
      e.sum2.assign(s.sum2.begin(), s.sum2.end());
      e.counts = {static_cast<float>(s.count)};
      m.entries.emplace(name, std::move(e));
    }
    if (!dataset.empty()) m.datasets.push_back(dataset);
    m.chunk_count = chunks_;
    return m;
  }

 private:
  struct Sums {
    std::vector<double> sum2;
    int64_t count = 0;
  };
  std::map<std::string, Sums> sums_;
  int64_t chunks_ = 0;
};

}  // namespace calib
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CALIB_IMATRIX_COLLECTOR_H_
