// Weight-quantizer benchmark: the SIMD quantizers (cpu::QuantizeRow) against
// the scalar reference, interleaved in one loop, f32 input of N(0,1) values
// with 1% outliers (x20). Throughput is MB/s of f32 input. Also prints the
// relative RMSE (identical for both: the bytes are the same, which is checked).
// One JSON object per type and thread count on stdout, then one per type for
// dequantization to f32 (1 thread, 262144 values = 1 MB of f32, in L2: the
// size ggml's test-quantize-perf uses), SIMD against the reference.
//
// Usage: bq_quantize_bench [--types Q4_K,Q6_K] [--rows 512] [--cols 4096]
//                          [--threads 1,2] [--reps 5] [--importance 0|1]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "blockquant/cpu/kernels.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/quantize.h"

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

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> types = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"};
  std::vector<std::string> threads = {"1", "2"};
  int64_t rows = 512, cols = 4096;
  int reps = 5;
  bool use_importance = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--types") types = Split(v);
    else if (k == "--threads") threads = Split(v);
    else if (k == "--rows") rows = std::stoll(v);
    else if (k == "--cols") cols = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--importance") use_importance = v == "1";
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols)), imp(static_cast<size_t>(cols));
  for (auto& v : x) v = ud(rng) < 0.01f ? 20.0f * nd(rng) : nd(rng);
  for (auto& v : imp) v = ud(rng) * ud(rng) * 4.0f;
  const float* importance = use_importance ? imp.data() : nullptr;
  // The reference is slow: it quantizes a slice of the rows, scaled to MB/s.
  const int64_t ref_rows = std::max<int64_t>(1, std::min<int64_t>(rows, 64));
  const std::string target = bq::cpu::CpuTargets().chosen;
  const double in_mb = static_cast<double>(rows * cols) * 4.0 / 1e6;
  const double ref_mb = static_cast<double>(ref_rows * cols) * 4.0 / 1e6;
  for (const auto& tname : types) {
    const QuantType type = bq::ParseQuantType(tname);
    const int64_t rb = bq::RowBytes(type, cols);
    std::vector<uint8_t> fast(static_cast<size_t>(rows * rb)), ref(static_cast<size_t>(ref_rows * rb));
    bool have_ref = false;  // the reference's bytes for the first ref_rows rows
    for (const auto& tstr : threads) {
      const size_t nt = std::stoul(tstr);
      bq::ThreadPool pool(nt);
      const bq::ParallelFor pf = nt == 1 ? bq::SerialFor() : pool.AsParallelFor();
      std::vector<double> t_fast, t_ref;
      for (int r = 0; r < reps; ++r) {
        double t0 = NowMs();
        bq::QuantizeTensor(type, QuantType::kF32, x.data(), rows, cols, fast.data(), importance, pf,
                           &bq::cpu::QuantizeRow);
        t_fast.push_back(NowMs() - t0);
        if (nt == 1 && r < 3) {
          t0 = NowMs();
          bq::QuantizeTensor(type, QuantType::kF32, x.data(), ref_rows, cols, ref.data(), importance);
          t_ref.push_back(NowMs() - t0);
        }
      }
      if (!t_ref.empty()) have_ref = true;
      if (!have_ref) {  // a thread list without 1: quantize the reference rows once here
        bq::QuantizeTensor(type, QuantType::kF32, x.data(), ref_rows, cols, ref.data(), importance);
        have_ref = true;
      }
      const bool same = std::memcmp(fast.data(), ref.data(), ref.size()) == 0;
      // Error of the fast bytes (the reference's are the same where compared).
      std::vector<float> y(static_cast<size_t>(cols));
      double se = 0.0, ss = 0.0;
      for (int64_t r = 0; r < rows; r += 8) {
        bq::DequantizeRowReference(type, fast.data() + r * rb, y.data(), cols);
        for (int64_t c = 0; c < cols; ++c) {
          const double d = double(x[static_cast<size_t>(r * cols + c)]) - y[static_cast<size_t>(c)];
          se += d * d;
          ss += double(x[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(r * cols + c)];
        }
      }
      const double fast_mbs = in_mb / (Median(t_fast) * 1e-3);
      std::printf("{\"type\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"threads\":%zu,\"target\":\"%s\","
                  "\"importance\":%s,\"fast_mbs\":%.1f,\"fast_lo_ms\":%.2f,\"fast_hi_ms\":%.2f,",
                  tname.c_str(), static_cast<long long>(rows), static_cast<long long>(cols), nt, target.c_str(),
                  use_importance ? "true" : "false", fast_mbs, *std::min_element(t_fast.begin(), t_fast.end()),
                  *std::max_element(t_fast.begin(), t_fast.end()));
      if (!t_ref.empty()) {
        const double ref_mbs = ref_mb / (Median(t_ref) * 1e-3);
        std::printf("\"ref_mbs\":%.1f,\"speedup\":%.2f,", ref_mbs, fast_mbs / ref_mbs);
      } else {
        std::printf("\"ref_mbs\":null,\"speedup\":null,");
      }
      std::printf("\"bytes_identical\":%s,\"rel_rmse\":%.5f}\n", same ? "true" : "false", std::sqrt(se / ss));
      std::fflush(stdout);
      if (!same) return 1;
    }
  }
  // Dequantization, 1 thread, in cache.
  const int64_t drows = std::min<int64_t>(rows, 262144 / cols > 0 ? 262144 / cols : 1);
  std::vector<float> out(static_cast<size_t>(drows * cols));
  for (const auto& tname : types) {
    const QuantType type = bq::ParseQuantType(tname);
    const int64_t rb = bq::RowBytes(type, cols);
    std::vector<uint8_t> q(static_cast<size_t>(drows * rb));
    bq::QuantizeTensor(type, QuantType::kF32, x.data(), drows, cols, q.data(), nullptr, bq::SerialFor(),
                       &bq::cpu::QuantizeRow);
    auto time_it = [&](bool fast) {
      std::vector<double> t;
      for (int r = 0; r < 3 * reps + 5; ++r) {
        const double t0 = NowMs();
        for (int64_t i = 0; i < drows; ++i) {
          if (fast) {
            bq::cpu::DequantizeRow(type, q.data() + i * rb, out.data() + i * cols, cols);
          } else {
            bq::DequantizeRowReference(type, q.data() + i * rb, out.data() + i * cols, cols);
          }
        }
        t.push_back(NowMs() - t0);
      }
      return Median(t);
    };
    time_it(true);
    const double tf = time_it(true), tr = time_it(false);
    const double values = static_cast<double>(drows * cols);
    std::printf("{\"op\":\"dequantize\",\"type\":\"%s\",\"values\":%.0f,\"target\":\"%s\",\"fast_ns_per_32\":%.2f,"
                "\"ref_ns_per_32\":%.2f,\"fast_f32_gbps\":%.2f,\"speedup\":%.2f}\n",
                tname.c_str(), values, target.c_str(), tf * 1e6 / (values / 32), tr * 1e6 / (values / 32),
                values * 4 / (tf * 1e-3) / 1e9, tr / tf);
    std::fflush(stdout);
  }
  return 0;
}
