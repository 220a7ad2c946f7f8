// The quantize -> validate -> export flow for Python: thin wrappers over
// include/blockquant/flow/. Reports cross as JSON text (parsed in Python) so
// the C++ tool, the CLI and notebooks see exactly the same fields.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "blockquant/flow/quantize_model.h"
#include "blockquant/flow/synthetic_model.h"
#include "blockquant/io/imatrix.h"
#include "row_quantizer.h"

namespace py = pybind11;
namespace bq = blockquant;

namespace {

py::object ToPython(const bq::GgufValue& v, size_t max_array) {
  switch (v.type) {
    case bq::GgufType::kString: return py::str(v.s);
    case bq::GgufType::kBool: return py::bool_(v.u != 0);
    case bq::GgufType::kF32:
    case bq::GgufType::kF64: return py::float_(v.f);
    case bq::GgufType::kArray: {
      py::list items;
      for (size_t i = 0; i < v.array.size() && i < max_array; ++i) items.append(ToPython(v.array[i], max_array));
      if (v.array.size() > max_array) {
        py::dict d;
        d["type"] = std::string("array of ") + bq::GgufTypeName(v.elem_type);
        d["count"] = v.array.size();
        d["first"] = items;
        return d;  // a py::object copy is a reference count
      }
      return items;
    }
    default: return v.IsSigned() ? py::object(py::int_(v.i)) : py::object(py::int_(v.u));
  }
}

py::dict Inspect(const std::string& path, size_t max_array) {
  const bq::GgufFile f = bq::GgufFile::Open(path);
  py::dict out;
  out["path"] = path;
  out["version"] = f.version();
  out["alignment"] = f.alignment();
  out["file_bytes"] = f.file().size();
  py::dict meta;
  for (const bq::GgufKV& kv : f.metadata()) meta[py::str(kv.first)] = ToPython(kv.second, max_array);
  out["metadata"] = meta;
  py::list tensors;
  for (const bq::GgufTensor& t : f.tensors()) {
    py::dict d;
    d["name"] = t.name;
    d["type"] = bq::TypeName(t.type);
    d["shape"] = t.dims;
    d["offset"] = t.offset;
    d["bytes"] = t.n_bytes;
    d["elements"] = t.n_elements;
    tensors.append(d);
  }
  out["tensors"] = tensors;
  return out;
}

// One tensor of a GGUF or safetensors model as f32 (rows, row_length): what a
// calibration hook reads ahead (AWQ needs q/k/v before it meets their norm).
py::array_t<float> ReadTensor(const std::string& path, const std::string& name, int threads) {
  const bq::ModelSource in = bq::ModelSource::Open(path);
  for (const bq::GgufTensor& t : in.tensors()) {
    if (t.name != name) continue;
    py::array_t<float> out({static_cast<py::ssize_t>(t.rows()), static_cast<py::ssize_t>(t.row_length())});
    float* dst = out.mutable_data();
    py::gil_scoped_release release;
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    bq::DequantizeTensor(t.type, t.data, t.rows(), t.row_length(), dst, pool.AsParallelFor());
    return out;
  }
  throw bq::Error(bq::ErrorCode::kInvalidArgument, "'" + path + "' has no tensor '" + name + "'");
}

// A read-only or writable numpy view of memory the flow owns, valid during one
// hook call only (the hook must copy what it keeps).
template <typename T>
py::array_t<T> View(T* p, int64_t rows, int64_t cols, bool writable) {
  py::array_t<T> a({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)}, p, py::none());
  if (!writable) py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

py::dict PlanDict(const bq::TensorPlan& p) {
  py::dict d;
  d["name"] = p.name;
  d["type"] = bq::TypeName(p.type);
  d["source_type"] = bq::TypeName(p.source_type);
  d["shape"] = p.dims;
  d["layer"] = p.layer;
  d["keep"] = p.keep;
  return d;
}

// hook: a Python object with claims(plan) -> bool, quantize(plan, values, dst)
// -> method name or None (values f32 (rows, cols), writable; dst uint8 (rows,
// row_bytes) to fill when the method writes bytes itself, else return a name
// starting with "=" to let the flow round the rewritten values), and
// layer_error(plan, values, dequantized) -> float or None.
// The lambdas hold a borrowed handle: the caller's argument keeps the object
// alive for the run, and copies of them need no reference counting (they are
// made and dropped while the GIL is released).
bq::TensorHook MakeHook(py::handle hook) {
  bq::TensorHook h;
  h.claims = [hook](const bq::TensorPlan& p) {
    py::gil_scoped_acquire gil;
    return hook.attr("claims")(PlanDict(p)).cast<bool>();
  };
  h.quantize = [hook](const bq::TensorPlan& p, float* values, int64_t rows, int64_t cols, uint8_t* dst,
                      std::string* method) {
    py::gil_scoped_acquire gil;
    const int64_t row_bytes = bq::RowBytes(p.type, cols);
    py::object r = hook.attr("quantize")(PlanDict(p), View(values, rows, cols, true), View(dst, rows, row_bytes, true));
    if (r.is_none()) return false;
    *method = r.cast<std::string>();
    if (!method->empty() && (*method)[0] == '=') {
      method->erase(0, 1);
      return false;
    }
    return true;
  };
  h.layer_error = [hook](const bq::TensorPlan& p, const float* values, const float* deq, int64_t rows, int64_t cols) {
    py::gil_scoped_acquire gil;
    py::object r = hook.attr("layer_error")(PlanDict(p), View(const_cast<float*>(values), rows, cols, false),
                                           View(const_cast<float*>(deq), rows, cols, false));
    return r.is_none() ? std::numeric_limits<double>::quiet_NaN() : r.cast<double>();
  };
  return h;
}

struct FlowOutput {
  std::string report_json, report_markdown, plan_text;
  std::vector<std::string> files;
  bool go = true;
};

FlowOutput QuantizeModel(const std::string& input, const std::string& output, const std::string& policy,
                         int threads, const std::vector<std::string>& accept, bool dry_run, bool write_reports,
                         bool manifest, bool progress, int64_t target_bytes, double target_bpw,
                         const std::string& imatrix, py::object on_tensor, py::object tensor_hook) {
  FlowOutput out;
  bq::TensorHook hook;
  if (!tensor_hook.is_none()) hook = MakeHook(tensor_hook);
  py::gil_scoped_release release;
  bq::QuantizeModelOptions o;
  o.input = input;
  o.output = output;
  o.policy = policy;
  o.threads = threads;
  o.quantize_row = BindingRowQuantizer();
  o.accept = accept;
  o.dry_run = dry_run;
  o.target_bytes = target_bytes;
  o.target_bpw = target_bpw;
  o.imatrix = imatrix;
  o.tensor_hook = std::move(hook);
  if (!on_tensor.is_none()) {
    // Called on this thread after each tensor; an exception it raises
    // aborts the run like any other error (nothing is written).
    o.progress = [&on_tensor](const bq::FlowProgress& p) {
      py::gil_scoped_acquire gil;
      py::dict d;
      d["index"] = p.index;
      d["count"] = p.count;
      d["name"] = p.name;
      d["done_bytes"] = p.done_bytes;
      d["total_bytes"] = p.total_bytes;
      d["seconds"] = p.seconds;
      on_tensor(d);
    };
  } else if (progress) {
    o.progress = [](const bq::FlowProgress& p) { bq::PrintProgress(p); };
  }
  const bq::FlowReport r = bq::QuantizeModel(o);
  out.report_json = r.ToJson();
  out.report_markdown = r.ToMarkdown();
  out.plan_text = r.plan.ToText();
  out.go = r.go;
  if (!dry_run) {
    out.files.push_back(output);
    if (write_reports) {
      for (const std::string& p : bq::ExportReport(r, manifest)) out.files.push_back(p);
    }
  }
  return out;
}

}  // namespace

// Imatrix files from and to Python: {name: (sum2 float32 [n_mat * cols],
// counts float32 [1 or n_mat], cols)} plus datasets and chunk figures.
py::dict LoadImatrixPy(const std::string& path) {
  bq::Imatrix m;
  {
    py::gil_scoped_release release;
    m = bq::LoadImatrix(path);
  }
  py::dict entries;
  for (const auto& [name, e] : m.entries) {
    entries[py::str(name)] = py::make_tuple(py::array_t<float>(static_cast<py::ssize_t>(e.sum2.size()), e.sum2.data()),
                                            py::array_t<float>(static_cast<py::ssize_t>(e.counts.size()), e.counts.data()),
                                            e.cols);
  }
  py::dict out;
  out["entries"] = entries;
  out["datasets"] = m.datasets;
  out["chunk_count"] = m.chunk_count;
  out["chunk_size"] = m.chunk_size;
  return out;
}

void SaveImatrixPy(const std::string& path, const py::dict& entries, const std::vector<std::string>& datasets,
                   int64_t chunk_count, int64_t chunk_size, const std::string& format) {
  if (format != "gguf" && format != "dat") {
    throw bq::Error(bq::ErrorCode::kInvalidArgument, "imatrix format must be 'gguf' or 'dat', got '" + format + "'");
  }
  bq::Imatrix m;
  m.datasets = datasets;
  m.chunk_count = chunk_count;
  m.chunk_size = chunk_size;
  for (const auto& kv : entries) {
    const auto t = kv.second.cast<py::tuple>();
    const auto sum2 = t[0].cast<py::array_t<float, py::array::c_style | py::array::forcecast>>();
    const auto counts = t[1].cast<py::array_t<float, py::array::c_style | py::array::forcecast>>();
    bq::ImatrixEntry e;
    e.cols = t[2].cast<int64_t>();
    e.sum2.assign(sum2.data(), sum2.data() + sum2.size());
    e.counts.assign(counts.data(), counts.data() + counts.size());
    m.entries.emplace(kv.first.cast<std::string>(), std::move(e));
  }
  py::gil_scoped_release release;
  if (format == "gguf") {
    bq::SaveImatrixGguf(m, path);
  } else {
    bq::SaveImatrixDat(m, path);
  }
}

// The policy's plan for a tensor list that is not in a file (a PyTorch
// model's weights under their GGUF names): the same MakePlan the flow runs.
// tensors: (name, GGUF dims, source type); facts: arch, n_layer, n_head,
// n_head_kv, n_expert (missing = inferred from the names).
py::dict PlanTensors(const std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>>& tensors,
                     const std::string& policy, const py::dict& facts, bool has_imatrix) {
  std::vector<bq::TensorDesc> descs;
  descs.reserve(tensors.size());
  for (const auto& t : tensors) {
    descs.push_back({std::get<0>(t), std::get<1>(t), bq::ParseQuantType(std::get<2>(t))});
  }
  bq::ModelFacts f;
  if (facts.contains("arch")) f.arch = facts["arch"].cast<std::string>();
  if (facts.contains("n_layer")) f.n_layer = facts["n_layer"].cast<int>();
  if (facts.contains("n_head")) f.n_head = facts["n_head"].cast<int>();
  if (facts.contains("n_head_kv")) f.n_head_kv = facts["n_head_kv"].cast<int>();
  if (facts.contains("n_expert")) f.n_expert = facts["n_expert"].cast<int>();
  f.has_imatrix = has_imatrix;
  const bq::Plan plan = bq::MakePlan(descs, bq::ResolvePolicy(policy), f);
  py::list rows;
  for (const bq::TensorPlan& t : plan.tensors) {
    py::dict d;
    d["name"] = t.name;
    d["role"] = bq::RoleName(t.role);
    d["layer"] = t.layer;
    d["type"] = bq::TypeName(t.type);
    d["requested_type"] = bq::TypeName(t.requested_type);
    d["keep"] = t.keep;
    d["fallback"] = t.fallback;
    d["decided_by"] = t.decided_by;
    d["bytes"] = t.bytes;
    d["source_bytes"] = t.source_bytes;
    rows.append(d);
  }
  py::dict out;
  out["policy"] = plan.policy;
  out["tensors"] = rows;
  out["notes"] = plan.facts.notes;
  out["total_bytes"] = plan.total_bytes;
  out["source_bytes"] = plan.source_bytes;
  out["n_elements"] = plan.n_elements;
  out["text"] = plan.ToText();
  return out;
}

void RegisterFlow(py::module_& m) {
  py::class_<FlowOutput>(m, "FlowOutput")
      .def_readonly("report_json", &FlowOutput::report_json)
      .def_readonly("report_markdown", &FlowOutput::report_markdown)
      .def_readonly("plan_text", &FlowOutput::plan_text)
      .def_readonly("files", &FlowOutput::files)
      .def_readonly("go", &FlowOutput::go);
  m.def("quantize_model", &QuantizeModel, py::arg("input"), py::arg("output"), py::arg("policy"), py::arg("threads"),
        py::arg("accept"), py::arg("dry_run"), py::arg("write_reports"), py::arg("manifest"), py::arg("progress"),
        py::arg("target_bytes") = -1, py::arg("target_bpw") = -1.0, py::arg("imatrix") = "",
        py::arg("on_tensor") = py::none(), py::arg("tensor_hook") = py::none());
  m.def("read_tensor", &ReadTensor, py::arg("path"), py::arg("name"), py::arg("threads") = 1);
  m.def("plan_tensors", &PlanTensors, py::arg("tensors"), py::arg("policy"), py::arg("facts"),
        py::arg("has_imatrix") = false);
  m.def("load_imatrix", &LoadImatrixPy, py::arg("path"));
  m.def("save_imatrix", &SaveImatrixPy, py::arg("path"), py::arg("entries"), py::arg("datasets"),
        py::arg("chunk_count"), py::arg("chunk_size"), py::arg("format"));
  m.def("inspect", &Inspect, py::arg("path"), py::arg("max_array") = 16);
  m.def("compare_models", [](const std::string& a, const std::string& b, const std::vector<std::string>& accept,
                             int threads) {
          std::string json, md;
          {
            py::gil_scoped_release release;
            const bq::FlowReport r = bq::CompareModels(a, b, accept, threads);
            json = r.ToJson();
            md = r.ToMarkdown();
          }
          return py::make_tuple(json, md);
        },
        py::arg("original"), py::arg("quantized"), py::arg("accept"), py::arg("threads"));
  m.def("make_demo_model", [](const std::string& path, int n_layer, int n_embd, int n_ff, int n_vocab, int threads) {
          py::gil_scoped_release release;
          bq::SyntheticModelConfig c;
          c.n_layer = n_layer;
          c.n_embd = n_embd;
          c.n_ff = n_ff;
          c.n_vocab = n_vocab;
          if (n_layer != 12 || n_embd != 768) c.name = "blockquant-synthetic-small";
          bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
          return bq::WriteSyntheticModel(path, c, pool.AsParallelFor());
        },
        py::arg("path"), py::arg("n_layer") = 12, py::arg("n_embd") = 768, py::arg("n_ff") = 2048,
        py::arg("n_vocab") = 32000, py::arg("threads") = 1);
}
