// Error-compensating (GPTQ-style) quantization into plain GGUF blocks.
//
// A linear layer's output error for a weight error E is ||X E^T||, which is
// sum over rows of e H e^T with H = X^T X over calibration activations X.
// Columns are quantized in order; the rounding error of column i is pushed
// onto the columns not yet quantized through row i of U, the upper Cholesky
// factor of H^-1 (Frantar et al., "GPTQ", 2022), so later columns absorb it.
//
// K-quant structure: a block's scales (d, dmin and the 6-bit group scales)
// cover 256 columns and are chosen before any of them is rounded. We process
// columns in batches of 256 (one super-block column): at a batch's start the
// ordinary quantizer chooses each row's scales from the weights as the
// earlier batches' errors have left them (weighted by diag(H), the imatrix),
// then the batch's columns are rounded one by one onto that fixed grid
// (block_grid.h) with compensation inside the batch, and the batch's error
// reaches the later columns in one matrix product. Choosing the scales per
// batch rather than once up front lets them follow the compensated weights;
// with act_order (columns by decreasing diag(H)) a batch spans many blocks,
// so scales are then chosen once from the original weights ("static groups").
//
// Rows are independent given U, so rows are split into fixed chunks over
// parallel_for: the bytes do not depend on the thread count.
#ifndef BLOCKQUANT_CALIB_GPTQ_H_
#define BLOCKQUANT_CALIB_GPTQ_H_

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "blockquant/calib/block_grid.h"
#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/quantize.h"

namespace blockquant {
inline namespace v0 {
namespace calib {

using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Sum of x^T x over calibration activations (rows of in_features values),
// accumulated batch by batch. Also the source of an imatrix row.
class Hessian {
 public:
  explicit Hessian(int64_t cols) : cols_(cols) {
    if (cols <= 0) BLOCKQUANT_THROW(ErrorCode::kShape, "Hessian needs a positive column count");
    sum_ = Eigen::MatrixXf::Zero(cols, cols);
  }

  // Adds rows x cols activations (row-major). Column panels of 64 are split
  // over parallel_for; each panel's sums run in a fixed order, so the result
  // does not depend on the thread count. Throws kNonFinite on NaN/Inf.
  void Add(const float* x, int64_t rows, const ParallelFor& parallel_for = SerialFor()) {
    if (rows < 0) BLOCKQUANT_THROW(ErrorCode::kShape, "negative activation row count");
    if (rows == 0) return;
    RequireFinite(x, rows, cols_, "the calibration activation matrix");
    const Eigen::Map<const RowMajorMatrixXf> X(x, rows, cols_);
    const int64_t panels = (cols_ + kPanel - 1) / kPanel;
    parallel_for(static_cast<size_t>(panels), [&](size_t begin, size_t end) {
      for (size_t p = begin; p < end; ++p) {
        const int64_t j0 = static_cast<int64_t>(p) * kPanel, nj = std::min(kPanel, cols_ - j0);
        // The lower triangle: rows j0.. of panel j0; the upper is mirrored in Dense().
        sum_.block(j0, j0, cols_ - j0, nj).noalias() +=
            X.middleCols(j0, cols_ - j0).transpose() * X.middleCols(j0, nj);
      }
    });
    samples_ += rows;
  }

  int64_t cols() const { return cols_; }
  int64_t samples() const { return samples_; }

  // X^T X as a full symmetric matrix.
  Eigen::MatrixXf Dense() const {
    Eigen::MatrixXf h = sum_.triangularView<Eigen::Lower>();
    h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
    return h;
  }

  // Mean x^2 per column: what an imatrix holds, and the quantizers' weights.
  std::vector<float> Importance() const {
    std::vector<float> w(static_cast<size_t>(cols_), 1.0f);
    if (samples_ == 0) return w;
    for (int64_t j = 0; j < cols_; ++j) w[static_cast<size_t>(j)] = sum_(j, j) / static_cast<float>(samples_);
    return w;
  }

 private:
  static constexpr int64_t kPanel = 64;
  int64_t cols_ = 0, samples_ = 0;
  Eigen::MatrixXf sum_;  // lower triangle kept
};

struct GptqOptions {
  // Added to H's diagonal as a fraction of its mean diagonal, so H is
  // positive definite when calibration has fewer rows than columns or dead
  // columns. Doubled (up to 8 times) if the Cholesky factorisation still fails.
  double damp = 0.01;
  // Quantize columns in order of decreasing diag(H) (scales then chosen up front).
  bool act_order = false;
  // Chooses each block's scales; the scalar reference when null. The fast
  // cpu::QuantizeRow gives the same bytes.
  RowQuantizer quantize_row = nullptr;
  ParallelFor parallel_for = SerialFor();
};

namespace gptq_detail {

inline constexpr int64_t kBatch = 256;     // columns per compensation batch (one K-quant super-block)
inline constexpr int64_t kRowChunk = 32;   // rows per task: fixed, so bytes do not depend on threads

// In-place inverse of a lower-triangular matrix (upper part zero), by halves:
// [A 0; B C]^-1 = [A^-1 0; -C^-1 B A^-1  C^-1]. A third of the work of
// solving against the identity, in triangular matrix products.
inline void InvertLowerInPlace(Eigen::Ref<Eigen::MatrixXf> l) {
  const Eigen::Index n = l.rows();
  if (n <= 128) {
    Eigen::MatrixXf inv = Eigen::MatrixXf::Identity(n, n);
    l.triangularView<Eigen::Lower>().solveInPlace(inv);
    l = inv;
    return;
  }
  const Eigen::Index h = n / 2;
  InvertLowerInPlace(l.topLeftCorner(h, h));
  InvertLowerInPlace(l.bottomRightCorner(n - h, n - h));
  const Eigen::MatrixXf t = l.bottomLeftCorner(n - h, h) * l.topLeftCorner(h, h).triangularView<Eigen::Lower>();
  l.bottomLeftCorner(n - h, h).noalias() = -(l.bottomRightCorner(n - h, n - h).triangularView<Eigen::Lower>() * t);
}

// U with H^-1 = U^T U (U upper), from H reversed: if P H P = L L^T (P the
// reversal), then U = P L^-1 P.
inline RowMajorMatrixXf InverseCholeskyUpper(Eigen::MatrixXf h, double damp) {
  const int64_t n = h.rows();
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h(i, i);
  mean_diag /= static_cast<double>(n);
  if (!(mean_diag > 0.0)) mean_diag = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    if (h(i, i) == 0.0f) h(i, i) = static_cast<float>(mean_diag);  // a column calibration never saw
  }
  double added = 0.0;
  for (int attempt = 0; attempt < 8; ++attempt, damp = damp > 0.0 ? damp * 2.0 : 1e-4) {
    const double target = damp * mean_diag;
    for (int64_t i = 0; i < n; ++i) h(i, i) += static_cast<float>(target - added);
    added = target;
    Eigen::LLT<Eigen::MatrixXf> llt(h.reverse());
    if (llt.info() != Eigen::Success) continue;
    Eigen::MatrixXf linv = llt.matrixL();
    InvertLowerInPlace(linv);
    RowMajorMatrixXf u = linv.reverse();
    if (u.allFinite()) return u;
  }
  BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                   "the calibration Hessian is not positive definite even with damping " + std::to_string(damp) +
                       "; check the activations");
}

}  // namespace gptq_detail

// Quantizes row-major w (rows x cols f32) into dst (rows * RowBytes(type,
// cols) bytes) with error compensation through h, which must have cols
// columns and at least one sample. Blocks are standard GGUF blocks of type.
inline void QuantizeGptq(QuantType type, const float* w, int64_t rows, int64_t cols, const Hessian& h, void* dst,
                         const GptqOptions& options = {}) {
  using namespace gptq_detail;
  RequireBlockGrid(type);
  if (rows <= 0 || cols <= 0) BLOCKQUANT_THROW(ErrorCode::kShape, "GPTQ needs a positive shape");
  if (h.cols() != cols) {
    BLOCKQUANT_THROW(ErrorCode::kShape, "the Hessian has " + std::to_string(h.cols()) +
                                            " columns; the weight has " + std::to_string(cols));
  }
  if (h.samples() == 0) BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "the Hessian has no calibration samples");
  const int64_t block = Traits(type).block_elems;
  if (cols % block != 0) {
    BLOCKQUANT_THROW(ErrorCode::kShape, std::string(TypeName(type)) + " needs rows that are a multiple of " +
                                            std::to_string(block) + " values, got " + std::to_string(cols));
  }
  RequireFinite(w, rows, cols, "the weight");
  const RowQuantizer quantize_row = options.quantize_row ? options.quantize_row : QuantizeRowReference;
  const std::vector<float> importance = h.Importance();
  const LevelRange range(type);
  const float qmin = static_cast<float>(range.min), qmax = static_cast<float>(range.max);

  // perm[i]: the original column quantized i-th.
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  Eigen::MatrixXf hd = h.Dense();
  if (options.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return hd(a, a) > hd(b, b); });
    Eigen::MatrixXf permuted(cols, cols);
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) permuted(i, j) = hd(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
    }
    hd.swap(permuted);
  }
  const RowMajorMatrixXf u = InverseCholeskyUpper(std::move(hd), options.damp);

  const int64_t row_bytes = RowBytes(type, cols), block_bytes = Traits(type).block_bytes;
  auto* out = static_cast<uint8_t*>(dst);
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  options.parallel_for(static_cast<size_t>(chunks), [&](size_t begin, size_t end) {
    RowMajorMatrixXf wc, err;
    std::vector<float> step, offset;
    std::vector<int> levels;
    BlockGrid grid;
    for (size_t c = begin; c < end; ++c) {
      const int64_t r0 = static_cast<int64_t>(c) * kRowChunk, nr = std::min(kRowChunk, rows - r0);
      // Working copy, columns in quantization order.
      wc.resize(nr, cols);
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t i = 0; i < cols; ++i) wc(r, i) = w[(r0 + r) * cols + perm[static_cast<size_t>(i)]];
      }
      step.assign(static_cast<size_t>(nr * cols), 0.0f);
      offset.assign(static_cast<size_t>(nr * cols), 0.0f);
      levels.assign(static_cast<size_t>(nr * cols), 0);
      // Scales of the blocks of row r covering original columns [c0, c0 + n),
      // chosen from x (n values in original order), into dst and the grids.
      auto choose_scales = [&](int64_t r, int64_t c0, int64_t n, const float* x) {
        uint8_t* row_out = out + (r0 + r) * row_bytes;
        quantize_row(type, x, row_out + c0 / block * block_bytes, n, importance.data() + c0);
        for (int64_t b = c0 / block; b < (c0 + n) / block; ++b) {
          ReadBlockGrid(type, row_out + b * block_bytes, &grid);
          for (int64_t k = 0; k < block; ++k) {
            step[static_cast<size_t>(r * cols + b * block + k)] = grid.step[k];
            offset[static_cast<size_t>(r * cols + b * block + k)] = grid.offset[k];
          }
        }
      };
      if (options.act_order) {
        for (int64_t r = 0; r < nr; ++r) choose_scales(r, 0, cols, w + (r0 + r) * cols);
      }
      for (int64_t i1 = 0; i1 < cols; i1 += kBatch) {
        const int64_t nb = std::min(kBatch, cols - i1), i2 = i1 + nb;
        if (!options.act_order) {
          for (int64_t r = 0; r < nr; ++r) choose_scales(r, i1, nb, &wc(r, i1));
        }
        err.resize(nr, nb);
        for (int64_t i = i1; i < i2; ++i) {
          const int64_t orig = perm[static_cast<size_t>(i)];
          const float* u_i = &u(i, 0);
          for (int64_t r = 0; r < nr; ++r) {
            const size_t e = static_cast<size_t>(r * cols + orig);
            const float x = wc(r, i);
            const float q = RoundToGrid(x, step[e], offset[e], qmin, qmax);
            levels[e] = static_cast<int>(q);
            const float e_i = (x - (step[e] * q - offset[e])) / u_i[i];
            err(r, i - i1) = e_i;
            float* row = &wc(r, 0);
            for (int64_t j = i + 1; j < i2; ++j) row[j] -= e_i * u_i[j];
          }
        }
        if (i2 < cols) {
          wc.rightCols(cols - i2).noalias() -= err * u.block(i1, i2, nb, cols - i2);
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        uint8_t* row_out = out + (r0 + r) * row_bytes;
        for (int64_t b = 0; b < cols / block; ++b) {
          WriteBlockLevels(type, levels.data() + r * cols + b * block, row_out + b * block_bytes);
        }
      }
    }
  });
}

}  // namespace calib
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CALIB_GPTQ_H_
