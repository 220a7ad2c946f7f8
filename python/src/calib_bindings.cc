// blockquant._core calibration entry points (calib/): GPTQ-style
// quantization, layer-output error and the AWQ scale search. Arrays arrive
// C-contiguous float32 (the Python layer converts); the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "blockquant/calib/awq.h"
#include "blockquant/calib/gptq.h"
#include "blockquant/calib/layer_error.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "row_quantizer.h"
#include "without_gil.h"

namespace py = pybind11;
namespace bq = blockquant;
namespace calib = blockquant::calib;

namespace {

using F32Array = py::array_t<float, py::array::c_style>;

// rows x cols of a 2-D float32 array.
void Shape2(const F32Array& a, const char* what, int64_t* rows, int64_t* cols) {
  if (a.ndim() != 2) throw bq::Error(bq::ErrorCode::kShape, std::string(what) + " must be 2-D");
  *rows = a.shape(0);
  *cols = a.shape(1);
}

py::array_t<uint8_t> Gptq(const F32Array& w, const std::string& type_name, const F32Array& x, double damp,
                          bool act_order, int threads) {
  int64_t rows, cols, n, xcols;
  Shape2(w, "weight", &rows, &cols);
  Shape2(x, "calib", &n, &xcols);
  if (xcols != cols) {
    throw bq::Error(bq::ErrorCode::kShape, "calibration activations have " + std::to_string(xcols) +
                                              " columns; the weight has " + std::to_string(cols));
  }
  const bq::QuantType type = bq::ParseQuantType(type_name);
  calib::RequireBlockGrid(type);
  auto out = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(rows * bq::RowBytes(type, cols)));
  const float* wp = w.data();
  const float* xp = x.data();
  RunWithoutGil([&] {
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    calib::Hessian h(cols);
    h.Add(xp, n, pool.AsParallelFor());
    calib::GptqOptions o;
    o.damp = damp;
    o.act_order = act_order;
    o.quantize_row = BindingRowQuantizer();
    o.parallel_for = pool.AsParallelFor();
    calib::QuantizeGptq(type, wp, rows, cols, h, out->data(), o);
  });
  auto* raw = out.release();
  py::capsule owner(raw, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(raw->size())}, raw->data(), owner);
}

double LayerError(const F32Array& w, const F32Array& w_hat, const F32Array& x, int threads) {
  int64_t rows, cols, r2, c2, n, xcols;
  Shape2(w, "weight", &rows, &cols);
  Shape2(w_hat, "quantized weight", &r2, &c2);
  Shape2(x, "activations", &n, &xcols);
  if (r2 != rows || c2 != cols || xcols != cols) {
    throw bq::Error(bq::ErrorCode::kShape, "weight, quantized weight and activations do not agree in shape");
  }
  double e = 0.0;
  const float *wp = w.data(), *qp = w_hat.data(), *xp = x.data();
  RunWithoutGil([&] {
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    e = calib::LayerOutputError(wp, qp, rows, cols, xp, n, pool.AsParallelFor());
  });
  return e;
}

py::dict Awq(const std::string& type_name, const std::vector<F32Array>& weights, const F32Array& x, int grid,
             int64_t max_search_samples, int threads) {
  int64_t n, cols;
  Shape2(x, "calib", &n, &cols);
  std::vector<calib::AwqWeight> ws;
  for (const F32Array& w : weights) {
    int64_t r, c;
    Shape2(w, "weight", &r, &c);
    if (c != cols) {
      throw bq::Error(bq::ErrorCode::kShape, "a weight has " + std::to_string(c) + " columns; the activations have " +
                                                std::to_string(cols));
    }
    ws.push_back({w.data(), r});
  }
  const bq::QuantType type = bq::ParseQuantType(type_name);
  calib::AwqResult r;
  const float* xp = x.data();
  RunWithoutGil([&] {
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    calib::AwqOptions o;
    o.grid = grid;
    o.max_search_samples = max_search_samples;
    o.quantize_row = BindingRowQuantizer();
    o.parallel_for = pool.AsParallelFor();
    r = calib::SearchAwqScales(type, ws, cols, xp, n, o);
  });
  py::dict d;
  d["scales"] = py::array_t<float>(static_cast<py::ssize_t>(r.scales.size()), r.scales.data());
  d["alpha"] = r.alpha;
  d["error"] = r.error;
  d["error_unscaled"] = r.error_unscaled;
  return d;
}

}  // namespace

void RegisterCalib(py::module_& m) {
  m.attr("has_calib") = true;
  m.def("gptq_quantize", &Gptq, py::arg("weight"), py::arg("type"), py::arg("calib"), py::arg("damp"),
        py::arg("act_order"), py::arg("threads"));
  m.def("layer_error", &LayerError, py::arg("weight"), py::arg("weight_hat"), py::arg("x"), py::arg("threads"));
  m.def("awq_search", &Awq, py::arg("type"), py::arg("weights"), py::arg("calib"), py::arg("grid"),
        py::arg("max_search_samples"), py::arg("threads"));
}
