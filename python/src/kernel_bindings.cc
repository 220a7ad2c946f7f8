// bq.matmul and bq.cpu_targets over the dynamic-dispatch CPU kernels
// (include/blockquant/cpu/kernels.h). Built only when Highway was found
// (BLOCKQUANT_HAS_DISPATCH); otherwise the Python layer says so.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "blockquant/blockquant.h"
#include "blockquant/cpu/kernels.h"

namespace py = pybind11;
namespace bq = blockquant;

void RegisterKernels(py::module_& m) {
  m.attr("has_kernels") = true;
  m.def("cpu_targets", [] {
    const bq::cpu::CpuTargetInfo t = bq::cpu::CpuTargets();
    py::dict d;
    d["compiled"] = t.compiled;
    d["supported"] = t.supported;
    d["chosen"] = t.chosen;
    return d;
  });
  m.def("force_cpu_target", &bq::cpu::ForceCpuTarget, py::arg("name"));
  // w: uint8 blocks of rows x cols `type`; x: float32 n x cols (C-contiguous).
  m.def("matmul", [](const py::array& w, int64_t rows, int64_t cols, const std::string& type_name,
                     const py::array_t<float, py::array::c_style>& x, int64_t n, bool q8_activations, int threads) {
          const bq::QuantType type = bq::ParseQuantType(type_name);
          if (!(w.flags() & py::array::c_style) || w.itemsize() != 1) {
            throw py::type_error("weights must be C-contiguous uint8 block bytes");
          }
          if (w.size() != rows * bq::RowBytes(type, cols) || x.size() != n * cols) {
            throw bq::Error(bq::ErrorCode::kShape, "matmul: weights hold " + std::to_string(w.size()) +
                                                       " bytes and activations " + std::to_string(x.size()) +
                                                       " values, not " + std::to_string(rows) + " x " +
                                                       std::to_string(cols) + " / " + std::to_string(n) + " x " +
                                                       std::to_string(cols));
          }
          auto out = std::make_unique<std::vector<float>>(static_cast<size_t>(n * rows));
          const void* wp = w.data();
          const float* xp = x.data();
          float* yp = out->data();
          bool failed = false;
          bq::ErrorCode code{};
          std::string message;
          {
            py::gil_scoped_release release;
            try {
              bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
              bq::cpu::MatMul(type, wp, rows, cols, xp, n, yp,
                              q8_activations ? bq::cpu::Activations::kQ8 : bq::cpu::Activations::kF32,
                              pool.AsParallelFor());
            } catch (const bq::Error& e) {
              failed = true;
              code = e.code();
              message = e.message();
            }
          }
          if (failed) throw bq::Error(code, message);
          auto* raw = out.release();
          py::capsule owner(raw, [](void* p) { delete static_cast<std::vector<float>*>(p); });
          return py::array_t<float>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(rows)}, raw->data(), owner);
        },
        py::arg("w"), py::arg("rows"), py::arg("cols"), py::arg("type"), py::arg("x"), py::arg("n"),
        py::arg("q8_activations"), py::arg("threads"));
}
