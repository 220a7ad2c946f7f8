// CPU kernel benchmark: matvec/matmul y[n][rows] = x[n][cols] * W^T for each
// type, shape, n, thread count and cache state, with the f32 and bf16
// baselines and the scalar reference timed in the same loop (interleaved, one
// sample of each per round), so ratios come from the same conditions.
// Prints one JSON object per configuration on stdout; run_cpu_bench.py turns
// them into JSON, Markdown and a PNG.
//
// Usage: bq_cpu_bench [--types Q4_K,Q8_0] [--shapes 4096x4096,14336x4096]
//                     [--n 1,8] [--threads 1,2] [--cache hot,cold]
//                     [--reps 7] [--ref-max-ms 3000]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "blockquant/cpu/kernels.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/q8.h"

namespace bq = blockquant;
using bq::QuantType;

namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Weight buffers: one copy when hot; enough copies to exceed L3 (rotated
// round-robin) when cold.
struct Weights {
  std::vector<std::vector<uint8_t>> copies;
  size_t next = 0;
  const uint8_t* Next() {
    const uint8_t* p = copies[next].data();
    next = (next + 1) % copies.size();
    return p;
  }
};

Weights MakeWeights(QuantType type, int64_t rows, int64_t cols, bool cold, std::mt19937& rng) {
  const int64_t rb = bq::RowBytes(type, cols);
  const size_t bytes = static_cast<size_t>(rb * rows);
  std::vector<uint8_t> w(bytes);
  // Realistic blocks: N(0, 0.02) weights quantized by our quantizer. (Random
  // bytes would give random f16 scales, some subnormal, and denormal float
  // arithmetic in the dot path that real weights never cause.)
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = nd(rng);
    bq::cpu::QuantizeRow(type, row.data(), w.data() + r * rb, cols);
  }
  Weights out;
  const size_t kL3Plus = size_t{96} << 20;
  const size_t copies = cold ? std::max<size_t>(1, (kL3Plus + bytes - 1) / bytes) : 1;
  for (size_t c = 0; c < copies; ++c) out.copies.push_back(w);
  return out;
}

// Scalar reference matmul: ref dequantization of each row, then a plain dot.
void ReferenceMatMul(QuantType type, const uint8_t* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                     float* y) {
  std::vector<float> row(cols);
  const int64_t rb = bq::RowBytes(type, cols);
  for (int64_t r = 0; r < rows; ++r) {
    bq::DequantizeRowReference(type, w + r * rb, row.data(), cols);
    for (int64_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < cols; ++k) s += row[k] * x[j * cols + k];
      y[j * rows + r] = s;
    }
  }
}

struct Stats {
  double median, lo, hi;
};
Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> types = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                    "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
  std::vector<std::string> shapes = {"4096x4096", "14336x4096", "4096x14336"};
  std::vector<std::string> ns = {"1", "8", "32", "128"};
  std::vector<std::string> threads = {"1", "2"};
  std::vector<std::string> caches = {"hot", "cold"};
  int reps = 7;
  double ref_max_ms = 3000.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--types") types = Split(v);
    else if (k == "--shapes") shapes = Split(v);
    else if (k == "--n") ns = Split(v);
    else if (k == "--threads") threads = Split(v);
    else if (k == "--cache") caches = Split(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--ref-max-ms") ref_max_ms = std::stod(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::mt19937 rng(42);
  const std::string target = bq::cpu::CpuTargets().chosen;
  for (const auto& shape : shapes) {
    const int64_t rows = std::stoll(shape.substr(0, shape.find('x')));
    const int64_t cols = std::stoll(shape.substr(shape.find('x') + 1));
    for (const auto& cache : caches) {
      const bool cold = cache == "cold";
      // Baselines built once per shape/cache.
      Weights wf32 = MakeWeights(QuantType::kF32, rows, cols, cold, rng);
      Weights wbf16 = MakeWeights(QuantType::kBF16, rows, cols, cold, rng);
      for (const auto& tname : types) {
        const QuantType type = bq::ParseQuantType(tname);
        Weights w = MakeWeights(type, rows, cols, cold, rng);
        for (const auto& nstr : ns) {
          const int64_t n = std::stoll(nstr);
          std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
          std::normal_distribution<float> nd(0.0f, 1.0f);
          for (auto& v : x) v = nd(rng);
          for (const auto& tstr : threads) {
            const size_t nt = std::stoul(tstr);
            bq::ThreadPool pool(nt);
            const bq::ParallelFor pf = nt == 1 ? bq::SerialFor() : pool.AsParallelFor();
            auto run = [&](QuantType t, Weights& ww, bq::cpu::Activations act) {
              const double t0 = NowMs();
              bq::cpu::MatMul(t, ww.Next(), rows, cols, x.data(), n, y.data(), act, pf);
              return NowMs() - t0;
            };
            // Warm-up (page faults, pool start).
            run(type, w, bq::cpu::Activations::kQ8);
            run(QuantType::kF32, wf32, bq::cpu::Activations::kF32);
            run(QuantType::kBF16, wbf16, bq::cpu::Activations::kF32);
            // Scalar reference: single thread, only where it finishes in time.
            const double ref_est_ms = static_cast<double>(rows) * cols * n * 1.0e-6 * 1.5;
            const bool do_ref = nt == 1 && ref_est_ms < ref_max_ms;
            std::vector<double> t_q8, t_f32act, t_f32, t_bf16, t_ref;
            for (int r = 0; r < reps; ++r) {
              t_q8.push_back(run(type, w, bq::cpu::Activations::kQ8));
              t_f32act.push_back(run(type, w, bq::cpu::Activations::kF32));
              t_f32.push_back(run(QuantType::kF32, wf32, bq::cpu::Activations::kF32));
              t_bf16.push_back(run(QuantType::kBF16, wbf16, bq::cpu::Activations::kF32));
              if (do_ref && r < 3) {
                const double t0 = NowMs();
                ReferenceMatMul(type, w.Next(), rows, cols, x.data(), n, y.data());
                t_ref.push_back(NowMs() - t0);
              }
            }
            const Stats q8 = Summarize(t_q8), fa = Summarize(t_f32act), f32 = Summarize(t_f32),
                        b16 = Summarize(t_bf16);
            const double wbytes = static_cast<double>(bq::RowBytes(type, cols)) * rows;
            std::printf(
                "{\"type\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"n\":%lld,\"threads\":%zu,\"cache\":\"%s\","
                "\"target\":\"%s\",\"reps\":%d,"
                "\"q8_ms\":%.4f,\"q8_lo\":%.4f,\"q8_hi\":%.4f,"
                "\"f32act_ms\":%.4f,\"f32act_lo\":%.4f,\"f32act_hi\":%.4f,"
                "\"f32_ms\":%.4f,\"f32_lo\":%.4f,\"f32_hi\":%.4f,"
                "\"bf16_ms\":%.4f,\"bf16_lo\":%.4f,\"bf16_hi\":%.4f,",
                tname.c_str(), static_cast<long long>(rows), static_cast<long long>(cols),
                static_cast<long long>(n), nt, cache.c_str(), target.c_str(), reps, q8.median, q8.lo, q8.hi,
                fa.median, fa.lo, fa.hi, f32.median, f32.lo, f32.hi, b16.median, b16.lo, b16.hi);
            if (!t_ref.empty()) {
              const Stats rf = Summarize(t_ref);
              std::printf("\"ref_ms\":%.4f,\"ref_lo\":%.4f,\"ref_hi\":%.4f,", rf.median, rf.lo, rf.hi);
            } else {
              std::printf("\"ref_ms\":null,");
            }
            std::printf("\"weight_gbps\":%.3f}\n", wbytes / (q8.median * 1e-3) / 1e9);
            std::fflush(stdout);
          }
        }
      }
    }
  }
  return 0;
}
