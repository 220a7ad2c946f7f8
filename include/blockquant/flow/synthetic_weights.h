// Deterministic synthetic weights with the statistics that make quantization
// hard in real checkpoints: per-row scale variation (log-normal), heavy tails
// (a Laplace component), and a few input columns 8-30x larger than the rest.
// Used for the embedded demo model, tests and benchmarks; every value is a
// pure function of (seed, tensor id, row), so any thread split gives the same
// tensor.
#ifndef BLOCKQUANT_FLOW_SYNTHETIC_WEIGHTS_H_
#define BLOCKQUANT_FLOW_SYNTHETIC_WEIGHTS_H_

#include <cmath>
#include <cstdint>
#include <vector>

namespace blockquant {
inline namespace v0 {

// splitmix64: small, fast, and good enough to seed per-row streams.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1): never 0, so log() is safe.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double Normal() {
    const double u = Uniform(), v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }

 private:
  uint64_t state_;
};

struct SyntheticWeightStats {
  float base_std = 0.02f;          // typical std of a transformer weight
  float row_scale_sigma = 0.35f;   // log-normal spread of per-row scales
  float tail_fraction = 0.02f;     // share of values drawn from the heavy tail
  float tail_scale = 3.0f;         // Laplace scale of the tail, in row stds
  float outlier_col_fraction = 0.004f;  // share of input columns that are large
  float outlier_col_gain = 12.0f;  // their typical gain (spread 8-30x)
};

// Per-column gains: 1 for most columns, a few large ones.
inline std::vector<float> SyntheticColumnGains(uint64_t seed, int64_t cols, const SyntheticWeightStats& s) {
  std::vector<float> gains(static_cast<size_t>(cols), 1.0f);
  SplitMix64 rng(seed ^ 0xC01C01C01ull);
  for (int64_t c = 0; c < cols; ++c) {
    if (rng.Uniform() < s.outlier_col_fraction) {
      gains[static_cast<size_t>(c)] = static_cast<float>(s.outlier_col_gain * std::exp(0.4 * rng.Normal()));
    }
  }
  return gains;
}

// Fills one row (cols values) of the tensor identified by tensor_seed.
inline void FillSyntheticRow(uint64_t tensor_seed, int64_t row, const std::vector<float>& col_gains,
                             const SyntheticWeightStats& s, float* out) {
  SplitMix64 rng(tensor_seed * 0x100000001B3ull + static_cast<uint64_t>(row));
  const double row_std = s.base_std * std::exp(s.row_scale_sigma * rng.Normal());
  const int64_t cols = static_cast<int64_t>(col_gains.size());
  for (int64_t c = 0; c < cols; ++c) {
    double v;
    if (rng.Uniform() < s.tail_fraction) {
      const double u = rng.Uniform();
      v = (u < 0.5 ? 1.0 : -1.0) * s.tail_scale * -std::log(1.0 - std::fabs(2.0 * u - 1.0) + 1e-300);
    } else {
      v = rng.Normal();
    }
    out[c] = static_cast<float>(v * row_std * col_gains[static_cast<size_t>(c)]);
  }
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FLOW_SYNTHETIC_WEIGHTS_H_
