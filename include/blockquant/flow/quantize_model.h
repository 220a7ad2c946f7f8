// The one-pass flow: read (mmap) -> plan -> quantize -> metrics -> write ->
// report and manifest. Tensors stream through in row chunks, so memory stays
// O(chunk) beyond the mapped input: quantized rows go straight to the
// writer, and metrics come from the buffers already in hand.
#ifndef BLOCKQUANT_FLOW_QUANTIZE_MODEL_H_
#define BLOCKQUANT_FLOW_QUANTIZE_MODEL_H_

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "blockquant/detail/json_writer.h"
#include "blockquant/error.h"
#include "blockquant/export/sha256.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/io/atomic_file.h"
#include "blockquant/flow/model_source.h"
#include "blockquant/io/gguf_reader.h"
#include "blockquant/io/gguf_writer.h"
#include "blockquant/io/imatrix.h"
#include "blockquant/parallel.h"
#include "blockquant/policy/budget.h"
#include "blockquant/policy/plan.h"
#include "blockquant/policy/rule_file.h"
#include "blockquant/quant/quantize.h"
#include "blockquant/validate/metrics.h"
#include "blockquant/version.h"

namespace blockquant {
inline namespace v0 {

// Acceptance thresholds: the largest relative RMSE each output type may show
// on a tensor, and the smallest cosine. The defaults are about twice
// blockquant's error on N(0,1) data: heavy-tailed weights measured 1.3x
// (Q4_K) to 1.9x (Q6_K) on the demo model, so a GO means "as expected" and
// a NO-GO points at a tensor worth a look. Q8_0's step is its block's
// max / 127, so outliers raise its error most: 2.3x on the demo model's
// blk.0.attn_output, hence about 3x there.
class Thresholds {
 public:
  Thresholds() {
    const std::pair<QuantType, double> defaults[] = {
        {QuantType::kQ2_K, 0.50}, {QuantType::kQ3_K, 0.28}, {QuantType::kQ4_K, 0.14}, {QuantType::kQ5_K, 0.07},
        {QuantType::kQ6_K, 0.035}, {QuantType::kQ8_0, 0.016}, {QuantType::kQ4_0, 0.16}, {QuantType::kQ4_1, 0.14},
        {QuantType::kQ5_0, 0.08}, {QuantType::kQ5_1, 0.07},   {QuantType::kF16, 0.001}, {QuantType::kBF16, 0.005},
        {QuantType::kF32, 0.0}};
    for (const auto& d : defaults) max_rel_rmse_[d.first] = d.second;
    max_layer_error_ = max_rel_rmse_;
  }

  // "rel_rmse.Q4_K=0.08", "rel_rmse=0.1" (every type), "cosine.min=0.99",
  // "layer_error.Q4_K=0.1", "layer_error=0.1" (tensors with held-out
  // activations; their limits start at the rel_rmse defaults).
  void Apply(const std::string& setting) {
    const size_t eq = setting.find('=');
    if (eq == std::string::npos) Bad(setting, "expected KEY=VALUE");
    const std::string key = setting.substr(0, eq), value = setting.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(v >= 0.0)) Bad(setting, "the value must be a number >= 0");
    if (key == "cosine.min") {
      if (v > 1.0) Bad(setting, "cosine.min must be <= 1");
      min_cosine_ = v;
    } else if (key == "rel_rmse") {
      for (auto& kv : max_rel_rmse_) kv.second = v;
    } else if (key.rfind("rel_rmse.", 0) == 0) {
      max_rel_rmse_[ParseQuantType(key.substr(9))] = v;
    } else if (key == "layer_error") {
      for (auto& kv : max_layer_error_) kv.second = v;
    } else if (key.rfind("layer_error.", 0) == 0) {
      max_layer_error_[ParseQuantType(key.substr(12))] = v;
    } else {
      Bad(setting, "unknown key (use rel_rmse, rel_rmse.TYPE, layer_error, layer_error.TYPE or cosine.min)");
    }
  }

  // Empty when the tensor passes, else why not. A tensor whose held-out
  // layer-output error was measured is judged by that error instead of its
  // rel RMSE: error-compensating methods (GPTQ) trade weight error for output
  // error and would fail a weight-space limit they were built to exceed.
  std::string Check(QuantType type, const TensorMetrics& m,
                    double layer_error = std::numeric_limits<double>::quiet_NaN()) const {
    char buf[160];
    const bool by_layer = std::isfinite(layer_error);
    const double value = by_layer ? layer_error : m.rel_rmse;
    const double limit = Limit(by_layer ? max_layer_error_ : max_rel_rmse_, type);
    if (!(value <= limit)) {
      std::snprintf(buf, sizeof(buf), "%s %.4g > %.4g allowed for %s", by_layer ? "layer-output error" : "rel RMSE",
                    value, limit, TypeName(type));
      return buf;
    }
    if (!(m.cosine >= min_cosine_)) {
      std::snprintf(buf, sizeof(buf), "cosine %.6f < %.6f", m.cosine, min_cosine_);
      return buf;
    }
    return "";
  }
  double MaxRelRmse(QuantType type) const { return Limit(max_rel_rmse_, type); }
  double min_cosine() const { return min_cosine_; }

 private:
  static double Limit(const std::map<QuantType, double>& limits, QuantType type) {
    const auto it = limits.find(type);
    return it == limits.end() ? 0.0 : it->second;
  }
  [[noreturn]] static void Bad(const std::string& setting, const std::string& why) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "acceptance setting '" + setting + "': " + why);
  }
  std::map<QuantType, double> max_rel_rmse_, max_layer_error_;
  double min_cosine_ = 0.9;
};

struct FlowProgress {
  size_t index = 0, count = 0;  // tensor index (0-based) and total
  std::string name;
  int64_t done_bytes = 0, total_bytes = 0;  // source bytes processed so far / overall
  double seconds = 0.0;
};

// The progress line the CLI and bq-quantize print on a terminal:
// "[i/n] name  MB/s  ETA", rewritten in place, with a newline after the last.
inline void PrintProgress(const FlowProgress& p, std::FILE* out = stderr) {
  const double mbps = p.seconds > 0 ? static_cast<double>(p.done_bytes) / p.seconds / 1e6 : 0.0;
  const double eta = mbps > 0 ? static_cast<double>(p.total_bytes - p.done_bytes) / 1e6 / mbps : 0.0;
  std::fprintf(out, "\r[%zu/%zu] %-32.32s %7.1f MB/s  ETA %5.1f s", p.index + 1, p.count, p.name.c_str(), mbps, eta);
  if (p.index + 1 == p.count) std::fprintf(out, "\n");
}

// Whole-tensor hook for calibration-aware methods (docs/calibration.md).
// Tensors it claims are decoded whole to f32 and handed to `quantize`, which
// may rewrite the values in place (AWQ multiplies a linear layer's columns by
// s and divides the norm before it by s; a claimed kept tensor is then
// re-encoded in its own type) and may write the quantized bytes itself
// (GPTQ), returning true; else the flow rounds the values as usual, with the
// imatrix if one covers the tensor. `layer_error` then sees the values and
// their dequantized result and returns the relative layer-output error on
// held-out activations, or NaN. Called on the flow's thread, one tensor at a
// time; an exception aborts the run with nothing written.
struct TensorHook {
  std::function<bool(const TensorPlan&)> claims;
  std::function<bool(const TensorPlan&, float* values, int64_t rows, int64_t cols, uint8_t* dst,
                     std::string* method)>
      quantize;
  std::function<double(const TensorPlan&, const float* values, const float* dequantized, int64_t rows,
                       int64_t cols)>
      layer_error;
};

struct QuantizeModelOptions {
  std::string input;            // a GGUF file (F32/F16/BF16 or already quantized tensors), or a
                                // *.safetensors checkpoint (F32/F16/BF16, HF names mapped)
  std::string output;           // the GGUF to write
  std::string policy = "Q4_K_M";  // a preset or hybrid name, or a JSON rule file (*.json)
  const Policy* policy_object = nullptr;  // overrides `policy` when set
  std::string imatrix;          // llama.cpp importance matrix (GGUF or legacy .dat); optional
  int64_t target_bytes = -1;    // size budget for all tensor data, or
  double target_bpw = -1.0;     // bits/weight budget: per-tensor types are then chosen to fit
                                // and minimise the total squared error (policy/budget.h)
  int threads = 0;              // 0 = hardware concurrency
  RowQuantizer quantize_row = nullptr;  // null: the scalar reference; cpu::QuantizeRow
                                        // (blockquant::dispatch) writes the same bytes faster
  std::vector<std::string> accept;  // threshold overrides, KEY=VALUE
  bool dry_run = false;         // plan only: nothing is written
  std::function<void(const FlowProgress&)> progress;
  TensorHook tensor_hook;       // optional: calibration-aware quantization
};

struct TensorResult {
  TensorPlan plan;
  TensorMetrics metrics;
  bool measured = false;  // false for tensors copied unchanged
  std::string failure;    // empty when the tensor passes
  double seconds = 0.0;
  std::string method;     // set by a TensorHook: "gptq", "awq", ...
  double layer_error = std::numeric_limits<double>::quiet_NaN();  // held-out output error, if measured
};

struct FlowReport {
  std::string input, output, policy;
  Plan plan;
  std::vector<TensorResult> tensors;
  bool go = true;
  std::vector<std::string> failing;
  double seconds = 0.0;
  int64_t output_file_bytes = 0;
  std::string output_sha256;
  bool dry_run = false;

  std::string ToJson() const {
    using detail::JsonNumber;
    using detail::JsonString;
    std::string j = "{\n  \"blockquant_version\": " + JsonString(kVersionString) + ",\n";
    j += "  \"input\": " + JsonString(input) + ",\n  \"output\": " + JsonString(output) + ",\n";
    j += "  \"policy\": " + JsonString(policy) + ",\n  \"dry_run\": " + (dry_run ? "true" : "false") + ",\n";
    j += "  \"verdict\": " + JsonString(go ? "GO" : "NO-GO") + ",\n  \"failing\": [";
    for (size_t i = 0; i < failing.size(); ++i) j += (i ? ", " : "") + JsonString(failing[i]);
    j += "],\n  \"totals\": {\"tensors\": " + std::to_string(tensors.size()) +
         ", \"parameters\": " + std::to_string(plan.n_elements) +
         ", \"source_bytes\": " + std::to_string(plan.source_bytes) +
         ", \"tensor_bytes\": " + std::to_string(plan.total_bytes) +
         ", \"file_bytes\": " + std::to_string(output_file_bytes) +
         ", \"bits_per_weight\": " + JsonNumber(plan.BitsPerWeight()) +
         ", \"compression_vs_source\": " + JsonNumber(plan.CompressionRatio()) +
         ", \"seconds\": " + JsonNumber(seconds) +
         ", \"params_per_second\": " + JsonNumber(seconds > 0 ? static_cast<double>(plan.n_elements) / seconds : 0.0) +
         ", \"sha256\": " + JsonString(output_sha256) + "},\n  \"tensors\": [\n";
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorResult& t = tensors[i];
      std::string shape = "[";
      for (size_t d = 0; d < t.plan.dims.size(); ++d) shape += (d ? ", " : "") + std::to_string(t.plan.dims[d]);
      shape += "]";
      j += "    {\"name\": " + JsonString(t.plan.name) + ", \"type\": " + JsonString(TypeName(t.plan.type)) +
           ", \"source_type\": " + JsonString(TypeName(t.plan.source_type)) + ", \"shape\": " + shape +
           ", \"bytes\": " + std::to_string(t.plan.bytes) + ", \"decided_by\": " + JsonString(t.plan.decided_by);
      if (t.measured) {
        j += ", \"rel_rmse\": " + JsonNumber(t.metrics.rel_rmse) + ", \"max_abs_err\": " +
             JsonNumber(t.metrics.max_abs_err) + ", \"snr_db\": " + JsonNumber(t.metrics.snr_db) +
             ", \"cosine\": " + JsonNumber(t.metrics.cosine);
      }
      if (!t.method.empty()) j += ", \"method\": " + JsonString(t.method);
      if (std::isfinite(t.layer_error)) j += ", \"layer_error\": " + JsonNumber(t.layer_error);
      j += ", \"pass\": " + std::string(t.failure.empty() ? "true" : "false");
      if (!t.failure.empty()) j += ", \"failure\": " + JsonString(t.failure);
      j += "}" + std::string(i + 1 < tensors.size() ? "," : "") + "\n";
    }
    return j + "  ]\n}\n";
  }

  std::string ToMarkdown() const {
    char buf[512];
    std::string m = "# blockquant report\n\n";
    std::snprintf(buf, sizeof(buf),
                  "**%s** — policy `%s`, %zu tensors, %.1f M parameters\n\n"
                  "| | |\n|---|---|\n| input | `%s` |\n| output | `%s` |\n| size | %.2f MB (source %.2f MB, %.2fx smaller) |\n"
                  "| bits/weight | %.4f |\n| time | %.2f s (%.1f M params/s) |\n",
                  go ? "GO" : "NO-GO", policy.c_str(), tensors.size(), static_cast<double>(plan.n_elements) / 1e6,
                  input.c_str(), output.c_str(), static_cast<double>(dry_run ? plan.total_bytes : output_file_bytes) / 1e6,
                  static_cast<double>(plan.source_bytes) / 1e6, plan.CompressionRatio(), plan.BitsPerWeight(), seconds,
                  seconds > 0 ? static_cast<double>(plan.n_elements) / seconds / 1e6 : 0.0);
    m += buf;
    if (!output_sha256.empty()) m += "| sha256 | `" + output_sha256 + "` |\n";
    if (!failing.empty()) {
      m += "\nFailing tensors:\n\n";
      for (const std::string& f : failing) m += "- " + f + "\n";
    }
    // Calibrated runs add the method and the held-out layer-output error.
    bool calibrated = false;
    for (const TensorResult& t : tensors) calibrated = calibrated || !t.method.empty() || std::isfinite(t.layer_error);
    m += calibrated ? "\n| tensor | type | shape | bytes | rel RMSE | max abs err | SNR dB | cosine | method | "
                      "layer error | pass |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
                    : "\n| tensor | type | shape | bytes | rel RMSE | max abs err | SNR dB | cosine | pass |\n"
                      "|---|---|---|---|---|---|---|---|---|\n";
    for (const TensorResult& t : tensors) {
      std::string shape;
      for (size_t d = 0; d < t.plan.dims.size(); ++d) shape += (d ? "x" : "") + std::to_string(t.plan.dims[d]);
      if (t.measured) {
        std::snprintf(buf, sizeof(buf), "| %s | %s | %s | %lld | %.5f | %.4g | %.2f | %.6f | ", t.plan.name.c_str(),
                      TypeName(t.plan.type), shape.c_str(), static_cast<long long>(t.plan.bytes), t.metrics.rel_rmse,
                      t.metrics.max_abs_err, t.metrics.snr_db, t.metrics.cosine);
      } else {
        std::snprintf(buf, sizeof(buf), "| %s | %s | %s | %lld | exact | 0 | inf | 1 | ", t.plan.name.c_str(),
                      TypeName(t.plan.type), shape.c_str(), static_cast<long long>(t.plan.bytes));
      }
      m += buf;
      if (calibrated) {
        std::snprintf(buf, sizeof(buf), std::isfinite(t.layer_error) ? "%s | %.5f | " : "%s | | ",
                      t.method.empty() ? "" : t.method.c_str(), t.layer_error);
        m += buf;
      }
      m += t.failure.empty() ? "yes |\n" : "**no** |\n";
    }
    return m;
  }
};

namespace flow_detail {

inline std::vector<TensorDesc> Describe(const ModelSource& in) {
  std::vector<TensorDesc> out;
  for (const GgufTensor& t : in.tensors()) out.push_back({t.name, t.dims, t.type});
  return out;
}

inline ModelFacts Facts(const ModelSource& in) {
  ModelFacts f;
  f.arch = in.GetString("general.architecture");
  const std::string a = f.arch.empty() ? "llama" : f.arch;
  f.n_layer = static_cast<int>(in.GetInt(a + ".block_count", -1));
  f.n_expert = static_cast<int>(in.GetInt(a + ".expert_count", -1));
  f.n_head = static_cast<int>(in.GetInt(a + ".attention.head_count", -1));
  f.n_head_kv = static_cast<int>(in.GetInt(a + ".attention.head_count_kv", -1));
  return f;
}

// The TensorHook path: the whole tensor in f32, the hook's rewrite and
// bytes (or the flow's rounding), metrics on what was written. A kept tensor
// the hook leaves unchanged is reported as exact, like any kept tensor.
template <typename WriteFn>
void QuantizeHooked(const TensorHook& hook, const GgufTensor& src, const Imatrix& imatrix, const ParallelFor& pf,
                    RowQuantizer quantize_row, const std::string& input, TensorResult* result, WriteFn write) {
  const TensorPlan& p = result->plan;
  const int64_t cols = src.row_length(), rows = src.rows();
  std::vector<float> values(static_cast<size_t>(rows * cols));
  DequantizeTensor(src.type, src.data, rows, cols, values.data(), pf);
  const std::vector<float> before = p.type == src.type ? values : std::vector<float>();
  std::vector<uint8_t> q(static_cast<size_t>(rows * RowBytes(p.type, cols)));
  try {
    const bool wrote = hook.quantize && hook.quantize(p, values.data(), rows, cols, q.data(), &result->method);
    if (!wrote) {
      std::vector<float> importance;
      const auto entry = imatrix.entries.find(p.name);
      if (entry != imatrix.entries.end() && p.type != src.type) {
        if (entry->second.n_mat() > 1) {
          BLOCKQUANT_THROW(ErrorCode::kShape, "a tensor hook takes 2-D tensors; imatrix entry '" + p.name +
                                                  "' has several matrices");
        }
        importance = imatrix.Importance(p.name, cols, 0);
      }
      QuantizeTensor(p.type, QuantType::kF32, values.data(), rows, cols, q.data(),
                     importance.empty() ? nullptr : importance.data(), pf, quantize_row);
    }
  } catch (const Error& e) {
    BLOCKQUANT_THROW(e.code(), "'" + input + "' tensor '" + p.name + "': " + e.message());
  }
  write(q.data(), static_cast<uint64_t>(q.size()));
  if (p.type == src.type && values == before) return;  // kept and unchanged: exact
  std::vector<float> deq(values.size());
  DequantizeTensor(p.type, q.data(), rows, cols, deq.data(), pf);
  MetricsAccumulator acc;
  acc.Add(values.data(), deq.data(), rows * cols, 0);
  result->metrics = acc.Result();
  result->measured = true;
  if (hook.layer_error) result->layer_error = hook.layer_error(p, values.data(), deq.data(), rows, cols);
}

inline void RefuseSameFile(const ModelSource& in, const std::string& output) {
  struct stat st;
  if (::stat(output.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_dev) == in.file().device() &&
      static_cast<uint64_t>(st.st_ino) == in.file().inode()) {
    BLOCKQUANT_THROW(ErrorCode::kInvalidArgument, "output '" + output + "' is the input file; choose another path");
  }
}

}  // namespace flow_detail

// The budget solver's error model: squared error of storing the tensor as
// `type`, measured on up to 32 evenly spaced rows and scaled to all rows;
// importance-weighted (quantized and measured) when an imatrix covers it.
inline BudgetErrorFn SampledErrorFn(const ModelSource& in, const Imatrix& imatrix, const ParallelFor& pf,
                                    RowQuantizer quantize_row = nullptr) {
  auto cache = std::make_shared<std::map<std::pair<std::string, uint32_t>, double>>();
  return [&in, &imatrix, pf, quantize_row, cache](const TensorPlan& p, QuantType type) {
    const auto key = std::make_pair(p.name, static_cast<uint32_t>(type));
    const auto hit = cache->find(key);
    if (hit != cache->end()) return hit->second;
    const GgufTensor* t = in.FindTensor(p.name);
    const int64_t cols = t->row_length(), rows = t->rows();
    const int64_t sample = std::min<int64_t>(rows, 32);
    const auto entry = imatrix.entries.find(p.name);
    const int64_t n_mat = entry == imatrix.entries.end() ? 0 : std::max<int64_t>(1, entry->second.n_mat());
    std::vector<float> x(static_cast<size_t>(cols)), y(x.size()), w;
    std::vector<uint8_t> q(static_cast<size_t>(RowBytes(type, cols)));
    double se = 0.0;
    for (int64_t k = 0; k < sample; ++k) {
      const int64_t r = k * rows / sample;
      DequantizeRowReference(t->type, t->data + r * RowBytes(t->type, cols), x.data(), cols);
      if (n_mat > 0) w = imatrix.Importance(p.name, cols, n_mat > 1 ? r / (rows / n_mat) : 0);
      QuantizeTensor(type, QuantType::kF32, x.data(), 1, cols, q.data(), n_mat > 0 ? w.data() : nullptr, pf,
                     quantize_row);
      DequantizeRowReference(type, q.data(), y.data(), cols);
      for (int64_t j = 0; j < cols; ++j) {
        const double d = double(x[static_cast<size_t>(j)]) - y[static_cast<size_t>(j)];
        se += (n_mat > 0 ? w[static_cast<size_t>(j)] : 1.0) * d * d;
      }
    }
    const double err = se * static_cast<double>(rows) / static_cast<double>(sample);
    (*cache)[key] = err;
    return err;
  };
}

// Plans the model only (what --dry-run shows).
inline Plan PlanModel(const std::string& input, const Policy& policy) {
  const ModelSource in = ModelSource::Open(input);
  return MakePlan(flow_detail::Describe(in), policy, flow_detail::Facts(in));
}

// Runs the flow. Throws blockquant::Error on bad input or I/O failure, with
// nothing left at the output path. A NO-GO verdict is in the report (the
// file is still written: the caller decides, e.g. the CLI exits non-zero).
inline FlowReport QuantizeModel(const QuantizeModelOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const ModelSource in = ModelSource::Open(o.input);
  if (!o.dry_run) flow_detail::RefuseSameFile(in, o.output);
  const Policy policy = o.policy_object ? *o.policy_object : ResolvePolicy(o.policy);
  const Imatrix imatrix = o.imatrix.empty() ? Imatrix{} : LoadImatrix(o.imatrix);
  ModelFacts facts = flow_detail::Facts(in);
  facts.has_imatrix = !o.imatrix.empty();
  Thresholds thresholds;
  for (const std::string& s : o.accept) thresholds.Apply(s);

  FlowReport report;
  report.input = o.input;
  report.output = o.output;
  report.dry_run = o.dry_run;
  const size_t n_threads = o.threads > 0 ? static_cast<size_t>(o.threads)
                                         : std::max<size_t>(1, std::thread::hardware_concurrency());
  ThreadPool pool(n_threads);
  const ParallelFor pf = pool.AsParallelFor();
  if (o.target_bytes >= 0 || o.target_bpw >= 0.0) {
    BudgetOptions b;
    b.target_bytes = o.target_bytes;
    b.target_bpw = o.target_bpw;
    report.plan =
        SolveBudget(flow_detail::Describe(in), policy, facts, b, SampledErrorFn(in, imatrix, pf, o.quantize_row)).plan;
  } else {
    report.plan = MakePlan(flow_detail::Describe(in), policy, facts);
  }
  report.policy = report.plan.policy;
  const Plan& plan = report.plan;
  for (const TensorPlan& p : plan.tensors) {
    report.tensors.emplace_back();
    report.tensors.back().plan = p;
  }
  if (o.dry_run) {
    report.seconds = elapsed();
    return report;
  }

  GgufWriter w(o.output);
  for (const GgufKV& kv : in.metadata()) w.Set(kv.first, kv.second);
  w.Set("general.file_type", GgufValue::U32(plan.file_type));
  w.Set("general.quantization_version", GgufValue::U32(2));
  w.Set("quantize.policy", GgufValue::String(plan.policy));
  w.Set("quantize.tool", GgufValue::String(std::string("blockquant ") + kVersionString));
  if (!o.imatrix.empty()) {  // the keys llama-quantize writes
    w.Set("quantize.imatrix.file", GgufValue::String(o.imatrix));
    if (!imatrix.datasets.empty()) w.Set("quantize.imatrix.dataset", GgufValue::String(imatrix.datasets.back()));
    w.Set("quantize.imatrix.entries_count", GgufValue::I32(static_cast<int32_t>(imatrix.entries.size())));
    w.Set("quantize.imatrix.chunks_count", GgufValue::I32(static_cast<int32_t>(imatrix.chunk_count)));
  }
  for (const TensorPlan& p : plan.tensors) w.AddTensor(p.name, p.type, p.dims);
  w.Begin();

  FlowProgress progress;
  progress.count = plan.tensors.size();
  progress.total_bytes = plan.source_bytes;

  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const auto ts = std::chrono::steady_clock::now();
    const GgufTensor& src = in.tensors()[i];
    TensorResult& result = report.tensors[i];
    const TensorPlan& p = result.plan;
    if (o.tensor_hook.claims && o.tensor_hook.claims(p)) {
      flow_detail::QuantizeHooked(o.tensor_hook, src, imatrix, pf, o.quantize_row, o.input, &result,
                                  [&](const uint8_t* q, uint64_t n) { w.Write(i, q, n); });
    } else if (p.type == src.type) {  // kept as is: copy the bytes
      w.Write(i, src.data, static_cast<uint64_t>(src.n_bytes));
    } else {
      const int64_t cols = src.row_length(), rows = src.rows();
      const int64_t src_row_bytes = RowBytes(src.type, cols), dst_row_bytes = RowBytes(p.type, cols);
      const bool float_source =
          src.type == QuantType::kF32 || src.type == QuantType::kF16 || src.type == QuantType::kBF16;
      // About 4 MiB of f32 per chunk: enough rows to keep every thread busy.
      const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / cols);
      std::vector<float> orig(static_cast<size_t>(std::min(chunk, rows) * cols)), deq(orig.size());
      std::vector<uint8_t> q(static_cast<size_t>(std::min(chunk, rows) * dst_row_bytes));
      MetricsAccumulator acc;
      // With an imatrix, each matrix (expert) of a 3-D tensor has its own
      // importance row, so chunks never cross a matrix boundary.
      const bool weighted = imatrix.entries.count(p.name) > 0;
      const int64_t n_mat = weighted ? std::max<int64_t>(1, imatrix.entries.at(p.name).n_mat()) : 1;
      if (rows % n_mat != 0) {
        BLOCKQUANT_THROW(ErrorCode::kShape, "imatrix entry '" + p.name + "' has " + std::to_string(n_mat) +
                                                " matrices; the tensor's " + std::to_string(rows) + " rows do not split");
      }
      const int64_t rows_per_mat = rows / n_mat;
      std::vector<float> importance;
      int64_t importance_mat = -1;
      for (int64_t r0 = 0, nr = 0; r0 < rows; r0 += nr) {
        nr = std::min(chunk, rows - r0);
        if (weighted) {
          const int64_t mat = r0 / rows_per_mat;
          nr = std::min(nr, (mat + 1) * rows_per_mat - r0);
          if (mat != importance_mat) {
            importance = imatrix.Importance(p.name, cols, n_mat > 1 ? mat : 0);
            importance_mat = mat;
          }
        }
        const float* imp = weighted ? importance.data() : nullptr;
        const uint8_t* in_rows = src.data + r0 * src_row_bytes;
        DequantizeTensor(src.type, in_rows, nr, cols, orig.data(), pf);
        try {
          if (float_source) {
            QuantizeTensor(p.type, src.type, in_rows, nr, cols, q.data(), imp, pf, o.quantize_row);
          } else {  // re-quantizing an already quantized tensor: from its decoded values
            QuantizeTensor(p.type, QuantType::kF32, orig.data(), nr, cols, q.data(), imp, pf, o.quantize_row);
          }
        } catch (const Error& e) {
          BLOCKQUANT_THROW(e.code(), "'" + o.input + "' tensor '" + p.name + "' (rows from " + std::to_string(r0) +
                                         "): " + e.message());
        }
        w.Write(i, q.data(), static_cast<uint64_t>(nr * dst_row_bytes));
        DequantizeTensor(p.type, q.data(), nr, cols, deq.data(), pf);
        acc.Add(orig.data(), deq.data(), nr * cols, r0 * cols);
      }
      result.metrics = acc.Result();
      result.measured = true;
    }
    if (result.measured) {
      result.failure = thresholds.Check(p.type, result.metrics, result.layer_error);
      if (!result.failure.empty()) {
        report.go = false;
        report.failing.push_back(p.name + ": " + result.failure);
      }
    }
    in.file().Release(static_cast<uint64_t>(src.data - in.file().data()), static_cast<uint64_t>(src.n_bytes));
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    progress.index = i;
    progress.name = p.name;
    progress.done_bytes += p.source_bytes;
    progress.seconds = elapsed();
    if (o.progress) o.progress(progress);
  }
  if (in.file().ModifiedSinceOpen()) {
    BLOCKQUANT_THROW(ErrorCode::kIo, "'" + o.input + "' was modified while it was read; nothing was written");
  }
  // A manifest left by an earlier run must not describe the new file (a kill
  // between this commit and ExportReport would leave the pair inconsistent).
  ::unlink((o.output + ".manifest.json").c_str());
  w.Commit();
  report.output_sha256 = Sha256File(o.output);
  struct stat st;
  if (::stat(o.output.c_str(), &st) == 0) report.output_file_bytes = static_cast<int64_t>(st.st_size);
  report.seconds = elapsed();
  return report;
}

// Writes text to path atomically.
inline void WriteTextFile(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.Write(text.data(), text.size());
  f.Commit();
}

// manifest.json: each file with size and SHA-256, the model's totals.
inline std::string ManifestJson(const FlowReport& r, const std::string& model_name,
                                const std::vector<std::string>& extra_files = {}) {
  using detail::JsonNumber;
  using detail::JsonString;
  std::string j = "{\n  \"model\": " + JsonString(model_name) + ",\n  \"created_by\": " +
                  JsonString(std::string("blockquant ") + kVersionString) + ",\n  \"policy\": " +
                  JsonString(r.policy) + ",\n  \"verdict\": " + JsonString(r.go ? "GO" : "NO-GO") +
                  ",\n  \"files\": [\n";
  std::vector<std::string> files = {r.output};
  files.insert(files.end(), extra_files.begin(), extra_files.end());
  for (size_t i = 0; i < files.size(); ++i) {
    struct stat st;
    if (::stat(files[i].c_str(), &st) != 0) BLOCKQUANT_THROW(ErrorCode::kIo, "cannot stat '" + files[i] + "'");
    const std::string sha = (i == 0 && !r.output_sha256.empty()) ? r.output_sha256 : Sha256File(files[i]);
    const size_t slash = files[i].rfind('/');
    j += "    {\"path\": " + JsonString(slash == std::string::npos ? files[i] : files[i].substr(slash + 1)) +
         ", \"size\": " + std::to_string(static_cast<long long>(st.st_size)) + ", \"sha256\": " + JsonString(sha) +
         "}" + (i + 1 < files.size() ? "," : "") + "\n";
  }
  j += "  ],\n  \"tensor_count\": " + std::to_string(r.tensors.size()) + ",\n  \"parameters\": " +
       std::to_string(r.plan.n_elements) + ",\n  \"bits_per_weight\": " + JsonNumber(r.plan.BitsPerWeight()) +
       ",\n  \"source_bytes\": " + std::to_string(r.plan.source_bytes) + ",\n  \"compression_vs_source\": " +
       JsonNumber(r.plan.CompressionRatio()) + ",\n  \"tensors\": [\n";
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const TensorPlan& p = r.tensors[i].plan;
    std::string shape = "[";
    for (size_t d = 0; d < p.dims.size(); ++d) shape += (d ? ", " : "") + std::to_string(p.dims[d]);
    j += "    {\"name\": " + JsonString(p.name) + ", \"type\": " + JsonString(TypeName(p.type)) +
         ", \"shape\": " + shape + "], \"bytes\": " + std::to_string(p.bytes) + "}" +
         (i + 1 < r.tensors.size() ? "," : "") + "\n";
  }
  return j + "  ]\n}\n";
}

// Writes OUT.report.json, OUT.report.md and (unless disabled) OUT.manifest.json
// next to the output; returns their paths in that order.
inline std::vector<std::string> ExportReport(const FlowReport& r, bool manifest = true) {
  std::vector<std::string> paths = {r.output + ".report.json", r.output + ".report.md"};
  WriteTextFile(paths[0], r.ToJson());
  WriteTextFile(paths[1], r.ToMarkdown());
  if (manifest) {
    paths.push_back(r.output + ".manifest.json");
    const GgufFile out = GgufFile::Open(r.output);
    WriteTextFile(paths[2], ManifestJson(r, out.GetString("general.name", "model")));
  }
  return paths;
}

// `blockquant validate ORIG QUANT`: metrics of every tensor QUANT shares with
// ORIG (same name and shape), both decoded to f32, in the report format.
inline FlowReport CompareModels(const std::string& original, const std::string& quantized,
                                const std::vector<std::string>& accept = {}, int threads = 0) {
  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile a = GgufFile::Open(original), b = GgufFile::Open(quantized);
  Thresholds thresholds;
  for (const std::string& s : accept) thresholds.Apply(s);
  ThreadPool pool(threads > 0 ? static_cast<size_t>(threads) : std::max<size_t>(1, std::thread::hardware_concurrency()));
  FlowReport r;
  r.input = original;
  r.output = quantized;
  r.policy = b.GetString("quantize.policy", "unknown");
  for (const GgufTensor& tb : b.tensors()) {
    const GgufTensor* ta = a.FindTensor(tb.name);
    TensorResult res;
    res.plan.name = tb.name;
    res.plan.dims = tb.dims;
    res.plan.type = tb.type;
    res.plan.bytes = tb.n_bytes;
    res.plan.n_elements = tb.n_elements;
    if (ta == nullptr || ta->dims != tb.dims) {
      res.failure = ta == nullptr ? "not in the original" : "shape differs from the original";
      r.go = false;
      r.failing.push_back(tb.name + ": " + res.failure);
      r.tensors.push_back(res);
      continue;
    }
    res.plan.source_type = ta->type;
    res.plan.source_bytes = ta->n_bytes;
    const int64_t cols = tb.row_length(), rows = tb.rows();
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / cols);
    std::vector<float> x(static_cast<size_t>(std::min(chunk, rows) * cols)), y(x.size());
    MetricsAccumulator acc;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      DequantizeTensor(ta->type, ta->data + r0 * RowBytes(ta->type, cols), nr, cols, x.data(), pool.AsParallelFor());
      DequantizeTensor(tb.type, tb.data + r0 * RowBytes(tb.type, cols), nr, cols, y.data(), pool.AsParallelFor());
      acc.Add(x.data(), y.data(), nr * cols, r0 * cols);
    }
    res.metrics = acc.Result();
    res.measured = true;
    res.failure = thresholds.Check(tb.type, res.metrics);
    if (!res.failure.empty()) {
      r.go = false;
      r.failing.push_back(tb.name + ": " + res.failure);
    }
    r.plan.n_elements += tb.n_elements;
    r.plan.source_bytes += ta->n_bytes;
    r.plan.total_bytes += tb.n_bytes;
    r.tensors.push_back(res);
  }
  struct stat st;
  if (::stat(quantized.c_str(), &st) == 0) r.output_file_bytes = static_cast<int64_t>(st.st_size);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FLOW_QUANTIZE_MODEL_H_
