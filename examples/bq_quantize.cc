// bq-quantize: the whole quantize -> validate -> export flow from C++.
//
//   bq-quantize IN.gguf OUT.gguf [--policy Q4_K_M] [--threads N] [--accept KEY=VALUE]... [--imatrix F]
//               [--dry-run] [--no-manifest]
//   bq-quantize --make-demo-model PATH     (writes the embedded ~125M-parameter F16 model)
//
// Writes OUT.gguf, OUT.report.json, OUT.report.md and OUT.manifest.json.
// Exit status: 0 GO, 1 NO-GO, 2 error.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "blockquant/flow/quantize_model.h"
#include "blockquant/flow/synthetic_model.h"
#if defined(BLOCKQUANT_HAS_DISPATCH)
#include "blockquant/cpu/kernels.h"
#endif

namespace bq = blockquant;

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: bq-quantize IN.gguf OUT.gguf [--policy P] [--threads N] [--accept KEY=VALUE]... [--imatrix F] "
               "[--dry-run] [--no-manifest]\n"
               "       bq-quantize --make-demo-model OUT.gguf\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "--make-demo-model") {
      bq::ThreadPool pool(std::thread::hardware_concurrency());
      const int64_t params = bq::WriteSyntheticModel(args[1], bq::SyntheticModelConfig{}, pool.AsParallelFor());
      std::printf("wrote %s (%.1f M parameters, F16)\n", args[1].c_str(), static_cast<double>(params) / 1e6);
      return 0;
    }
    bq::QuantizeModelOptions o;
#if defined(BLOCKQUANT_HAS_DISPATCH)
    o.quantize_row = &bq::cpu::QuantizeRow;  // the reference's bytes, SIMD speed
#endif
    bool manifest = true;
    std::vector<std::string> positional;
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) throw bq::Error(bq::ErrorCode::kInvalidArgument, a + " needs a value");
        return args[++i];
      };
      if (a == "--policy") o.policy = value();
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--accept") o.accept.push_back(value());
      else if (a == "--imatrix") o.imatrix = value();
      else if (a == "--dry-run") o.dry_run = true;
      else if (a == "--no-manifest") manifest = false;
      else if (a.rfind("--", 0) == 0) return Usage();
      else positional.push_back(a);
    }
    if (positional.size() != 2) return Usage();
    o.input = positional[0];
    o.output = positional[1];
    if (::isatty(2)) {
      o.progress = [](const bq::FlowProgress& p) { bq::PrintProgress(p); };
    }
    const bq::FlowReport r = bq::QuantizeModel(o);
    if (o.dry_run) {
      std::printf("%s", r.plan.ToText().c_str());
      return 0;
    }
    bq::ExportReport(r, manifest);
    std::printf("%s: %s, %.2f MB, %.4f bits/weight, %.1f s\nreport: %s.report.md\n", r.go ? "GO" : "NO-GO",
                o.output.c_str(), static_cast<double>(r.output_file_bytes) / 1e6, r.plan.BitsPerWeight(), r.seconds,
                o.output.c_str());
    for (const std::string& f : r.failing) std::printf("  failing: %s\n", f.c_str());
    return r.go ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bq-quantize: %s\n", e.what());
    return 2;
  }
}
