// QuantizeModel's TensorHook (flow/quantize_model.h): bytes a hook writes
// land in the file, values it rewrites are re-encoded (kept tensors too), its
// layer error reaches the report and decides the verdict, and a hook that
// throws leaves no output.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "blockquant/flow/quantize_model.h"
#include "blockquant/flow/synthetic_model.h"
#include "blockquant/io/gguf_reader.h"

namespace bq = blockquant;

namespace {

std::string TempPath(const std::string& name) {
  return "/tmp/bq_flow_test_" + std::to_string(::getpid()) + "_" + name;
}

const std::string& SmallModel() {
  static const std::string path = [] {
    bq::SyntheticModelConfig c;
    c.n_layer = 2;
    c.n_embd = 256;
    c.n_ff = 512;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_vocab = 300;
    const std::string p = TempPath("model.gguf");
    bq::WriteSyntheticModel(p, c);
    return p;
  }();
  return path;
}

std::vector<uint8_t> TensorBytes(const std::string& path, const std::string& name) {
  const bq::GgufFile f = bq::GgufFile::Open(path);
  for (const bq::GgufTensor& t : f.tensors()) {
    if (t.name == name) return std::vector<uint8_t>(t.data, t.data + t.n_bytes);
  }
  FAIL("no tensor " << name);
  return {};
}

const bq::TensorResult& Result(const bq::FlowReport& r, const std::string& name) {
  for (const bq::TensorResult& t : r.tensors) {
    if (t.plan.name == name) return t;
  }
  throw std::runtime_error("no result for " + name);
}

}  // namespace

TEST_CASE("a tensor hook's bytes, rewrites and layer errors reach the file and the report") {
  const std::string plain_out = TempPath("plain.gguf"), hooked_out = TempPath("hooked.gguf");
  bq::QuantizeModelOptions o;
  o.input = SmallModel();
  o.output = plain_out;
  o.threads = 2;
  const bq::FlowReport plain = bq::QuantizeModel(o);

  const std::string q = "blk.0.attn_q.weight", norm = "blk.0.attn_norm.weight", up = "blk.1.ffn_up.weight";
  std::vector<uint8_t> written;  // what the hook wrote for q
  o.output = hooked_out;
  o.tensor_hook.claims = [&](const bq::TensorPlan& p) { return p.name == q || p.name == norm || p.name == up; };
  o.tensor_hook.quantize = [&](const bq::TensorPlan& p, float* v, int64_t rows, int64_t cols, uint8_t* dst,
                               std::string* method) {
    if (p.name == norm) {  // a kept F32 tensor, rewritten: the flow re-encodes it
      for (int64_t i = 0; i < rows * cols; ++i) v[i] *= 0.5f;
      *method = "halved";
      return false;
    }
    if (p.name == up) return false;  // claimed but left to the flow: its usual bytes
    // Rounding weighted by a made-up importance: bytes the flow would not write.
    std::vector<float> importance(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) importance[static_cast<size_t>(j)] = 1.0f + static_cast<float>(j % 7) * 4.0f;
    bq::QuantizeTensor(p.type, bq::QuantType::kF32, v, rows, cols, dst, importance.data());
    written.assign(dst, dst + rows * bq::RowBytes(p.type, cols));
    *method = "weighted";
    return true;
  };
  o.tensor_hook.layer_error = [&](const bq::TensorPlan& p, const float*, const float*, int64_t, int64_t) {
    return p.name == q ? 0.0625 : std::nan("");
  };
  const bq::FlowReport hooked = bq::QuantizeModel(o);

  CHECK(TensorBytes(hooked_out, q) == written);
  CHECK(Result(hooked, q).method == "weighted");
  CHECK(Result(hooked, q).layer_error == 0.0625);
  CHECK(TensorBytes(hooked_out, q) != TensorBytes(plain_out, q));
  CHECK(Result(hooked, q).metrics.rel_rmse > Result(plain, q).metrics.rel_rmse);  // measured on the hook's bytes
  CHECK(TensorBytes(hooked_out, up) == TensorBytes(plain_out, up));
  CHECK(std::isnan(Result(hooked, up).layer_error));
  CHECK(Result(hooked, norm).method == "halved");
  const std::vector<uint8_t> n0 = TensorBytes(plain_out, norm), n1 = TensorBytes(hooked_out, norm);
  REQUIRE(n0.size() == n1.size());
  for (size_t i = 0; i < n0.size(); i += 4) {
    float a, b;
    std::memcpy(&a, &n0[i], 4);
    std::memcpy(&b, &n1[i], 4);
    CHECK(b == a * 0.5f);
  }
  CHECK(TensorBytes(hooked_out, "blk.1.attn_q.weight") == TensorBytes(plain_out, "blk.1.attn_q.weight"));
  const std::string json = hooked.ToJson();
  CHECK(json.find("\"method\": \"weighted\", \"layer_error\": 0.0625") != std::string::npos);
  CHECK(hooked.ToMarkdown().find("| weighted | 0.06250 | yes |") != std::string::npos);
  CHECK(plain.ToMarkdown().find("layer error") == std::string::npos);
  CHECK(hooked.go);

  // The layer error, not the weight error, decides a hooked tensor's pass.
  o.accept = {"layer_error=0.05"};
  const bq::FlowReport strict = bq::QuantizeModel(o);
  CHECK_FALSE(strict.go);
  REQUIRE(strict.failing.size() == 1);
  CHECK(strict.failing[0].find(q + ": layer-output error 0.0625") == 0);
  ::unlink(plain_out.c_str());
  ::unlink(hooked_out.c_str());
}

TEST_CASE("a hook that throws aborts the run with nothing written") {
  const std::string out = TempPath("throws.gguf");
  bq::QuantizeModelOptions o;
  o.input = SmallModel();
  o.output = out;
  o.tensor_hook.claims = [](const bq::TensorPlan& p) { return p.name == "blk.1.ffn_down.weight"; };
  o.tensor_hook.quantize = [](const bq::TensorPlan&, float*, int64_t, int64_t, uint8_t*, std::string*) -> bool {
    throw bq::Error(bq::ErrorCode::kShape, "activations do not match");
  };
  CHECK_THROWS_WITH_AS(bq::QuantizeModel(o), doctest::Contains("activations do not match"), bq::Error);
  CHECK(::access(out.c_str(), F_OK) != 0);
}
