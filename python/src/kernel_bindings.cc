// bq.matmul and bq.cpu_targets over the dynamic-dispatch CPU kernels
// (include/blockquant/cpu/kernels.h). Built only when Highway was found
// (BLOCKQUANT_HAS_DISPATCH); otherwise the Python layer says so.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blockquant/blockquant.h"
#include "blockquant/cpu/kernels.h"

namespace py = pybind11;
namespace bq = blockquant;

namespace {

// bq.matmul's worker threads, kept between calls: starting them per call
// cost about 1 ms on a 2-core VM, more than a 2048 x 2048 Q4_K matvec, and
// bq.torch calls matmul once per layer. One caller at a time uses it; a
// concurrent caller, or a forked child (whose copy has no live workers),
// makes its own pool. Never destroyed: joining at interpreter exit could
// stall, and the process is ending anyway.
class SharedPool {
 public:
  // Runs fn(ParallelFor) on the shared pool, or on a private one if busy.
  template <typename Fn>
  static void With(size_t threads, Fn&& fn) {
    SharedPool& self = Instance();
    std::unique_lock<std::mutex> lock(self.mu_, std::try_to_lock);
    if (!lock.owns_lock() || self.owner_ != getpid()) {
      bq::ThreadPool own(threads);
      fn(own.AsParallelFor());
      return;
    }
    if (!self.pool_ || self.pool_->NumThreads() != threads) {
      self.pool_.reset();
      self.pool_ = std::make_unique<bq::ThreadPool>(threads);
    }
    fn(self.pool_->AsParallelFor());
  }

 private:
  static SharedPool& Instance() {
    static SharedPool* instance = new SharedPool;  // intentionally leaked (see above)
    return *instance;
  }
  std::mutex mu_;
  std::unique_ptr<bq::ThreadPool> pool_;
  const pid_t owner_ = getpid();
};

}  // namespace

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
              SharedPool::With(static_cast<size_t>(threads > 0 ? threads : 1), [&](const bq::ParallelFor& pf) {
                bq::cpu::MatMul(type, wp, rows, cols, xp, n, yp,
                                q8_activations ? bq::cpu::Activations::kQ8 : bq::cpu::Activations::kF32, pf);
              });
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
