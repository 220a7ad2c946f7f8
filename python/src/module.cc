// blockquant._core: the numpy-facing kernels behind the blockquant package.
// Arrays must arrive C-contiguous with the right dtype (the Python layer
// checks and raises TypeError; this layer checks again and never copies).
// Every kernel runs with the GIL released on a ThreadPool owned by the call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blockquant/blockquant.h"
#include "row_quantizer.h"
#include "without_gil.h"

namespace py = pybind11;
namespace bq = blockquant;

namespace {

// Exception classes by error code, created once at import (module state, not
// library state).
struct ErrorClasses {
  py::object base;
  std::vector<std::pair<bq::ErrorCode, py::object>> by_code;
};
ErrorClasses* g_errors = nullptr;

py::object MakeErrorClass(py::module_& m, const char* name, py::handle bases, const char* doc) {
  const std::string qualified = std::string("blockquant._core.") + name;
  py::object cls = py::reinterpret_steal<py::object>(
      PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr));
  m.attr(name) = cls;
  return cls;
}

void RaiseError(const bq::Error& e) {
  py::object cls = g_errors->base;
  for (const auto& [code, c] : g_errors->by_code) {
    if (code == e.code()) cls = c;
  }
  py::object exc = cls(py::str(e.what()));
  exc.attr("code") = py::str(bq::ErrorCodeName(e.code()));
  PyErr_SetObject(cls.ptr(), exc.ptr());
}

bq::QuantType SourceType(const py::array& a, const std::string& source) {
  if (!source.empty()) {
    const bq::QuantType t = bq::ParseQuantType(source);
    if (t != bq::QuantType::kF32 && t != bq::QuantType::kF16 && t != bq::QuantType::kBF16) {
      throw py::type_error("source must be 'f32', 'f16' or 'bf16', got '" + source + "'");
    }
    if (a.itemsize() != static_cast<py::ssize_t>(bq::Traits(t).block_bytes)) {
      throw py::type_error("array itemsize " + std::to_string(a.itemsize()) + " does not match source " + source);
    }
    return t;
  }
  const py::dtype dt = a.dtype();
  if (dt.is(py::dtype::of<float>())) return bq::QuantType::kF32;
  if (dt.kind() == 'f' && dt.itemsize() == 2) return bq::QuantType::kF16;
  const std::string name = py::str(dt.attr("name"));
  if (name == "bfloat16") return bq::QuantType::kBF16;
  throw py::type_error("expected float32, float16 or bfloat16 data, got dtype " + name);
}

void RequireContiguous(const py::array& a, const char* what) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::type_error(std::string(what) + " must be C-contiguous (use np.ascontiguousarray)");
  }
}

template <typename T>
py::array_t<T> OwnedArray(std::unique_ptr<std::vector<T>> v, std::vector<py::ssize_t> shape) {
  auto* raw = v.release();
  py::capsule owner(raw, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, raw->data(), owner);
}

// rows x cols of `source` -> uint8 blocks of rows * RowBytes(type, cols).
py::array_t<uint8_t> Quantize(const py::array& data, int64_t rows, int64_t cols, const std::string& type_name,
                              const std::optional<py::array>& importance, int threads,
                              const std::string& source) {
  RequireContiguous(data, "array");
  const bq::QuantType src_type = SourceType(data, source);
  const bq::QuantType type = bq::ParseQuantType(type_name);
  if (!bq::Traits(type).storable) {
    throw bq::Error(bq::ErrorCode::kUnsupportedType,
                    std::string(bq::TypeName(type)) + " is an activation type; it cannot hold weights");
  }
  if (rows < 0 || cols <= 0 || data.size() != rows * cols) {
    throw bq::Error(bq::ErrorCode::kShape, "array of " + std::to_string(data.size()) +
                                              " elements is not " + std::to_string(rows) + " x " + std::to_string(cols));
  }
  const float* imp = nullptr;
  if (importance) {
    RequireContiguous(*importance, "importance");
    if (!importance->dtype().is(py::dtype::of<float>())) throw py::type_error("importance must be float32");
    if (importance->size() != cols) {
      throw bq::Error(bq::ErrorCode::kShape, "importance has " + std::to_string(importance->size()) +
                                                " weights, the row has " + std::to_string(cols) + " columns");
    }
    imp = static_cast<const float*>(importance->data());
  }
  const int64_t row_bytes = bq::RowBytes(type, cols);
  auto out = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(rows * row_bytes));
  const void* src = data.data();
  uint8_t* dst = out->data();
  RunWithoutGil([&] {
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    bq::QuantizeTensor(type, src_type, src, rows, cols, dst, imp, pool.AsParallelFor(), BindingRowQuantizer());
  });
  return OwnedArray(std::move(out), {static_cast<py::ssize_t>(rows * row_bytes)});
}

py::array_t<float> Dequantize(const py::array& data, int64_t rows, int64_t cols, const std::string& type_name,
                              int threads) {
  RequireContiguous(data, "data");
  if (data.itemsize() != 1) throw py::type_error("data must be a uint8 array of block bytes");
  const bq::QuantType type = bq::ParseQuantType(type_name);
  const int64_t row_bytes = bq::RowBytes(type, cols);
  if (rows < 0 || data.size() != rows * row_bytes) {
    throw bq::Error(bq::ErrorCode::kShape, std::to_string(data.size()) + " bytes do not hold " + std::to_string(rows) +
                                              " rows of " + std::to_string(cols) + " " + bq::TypeName(type) +
                                              " values (" + std::to_string(rows * row_bytes) + " bytes)");
  }
  auto out = std::make_unique<std::vector<float>>(static_cast<size_t>(rows * cols));
  const void* src = data.data();
  float* dst = out->data();
  RunWithoutGil([&] {
    bq::ThreadPool pool(static_cast<size_t>(threads > 0 ? threads : 1));
    bq::DequantizeTensor(type, src, rows, cols, dst, pool.AsParallelFor());
  });
  return OwnedArray(std::move(out), {static_cast<py::ssize_t>(rows * cols)});
}

py::list Types() {
  py::list out;
  for (const bq::TypeTraits& t : bq::kTypeTraits) {
    py::dict d;
    d["name"] = t.name;
    d["id"] = static_cast<uint32_t>(t.type);
    d["block_elems"] = t.block_elems;
    d["block_bytes"] = t.block_bytes;
    d["bits_per_weight"] = t.BitsPerWeight();
    d["quantized"] = t.is_quantized;
    d["storable"] = t.storable;
    out.append(d);
  }
  return out;
}

}  // namespace

void RegisterFlow(py::module_& m);  // flow_bindings.cc
#if defined(BLOCKQUANT_HAS_DISPATCH)
void RegisterKernels(py::module_& m);  // kernel_bindings.cc
#endif
#if defined(BLOCKQUANT_HAS_CALIB)
void RegisterCalib(py::module_& m);  // calib_bindings.cc
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "blockquant native kernels (use the blockquant package, not this module)";
  static ErrorClasses errors;
  g_errors = &errors;
  errors.base = MakeErrorClass(m, "Error", PyExc_RuntimeError, "Base class of every blockquant error.");
  auto sub = [&](bq::ErrorCode code, const char* name, PyObject* also, const char* doc) {
    py::tuple bases = also ? py::tuple(py::make_tuple(errors.base, py::handle(also)))
                           : py::tuple(py::make_tuple(errors.base));
    errors.by_code.emplace_back(code, MakeErrorClass(m, name, bases, doc));
  };
  sub(bq::ErrorCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError, "A bad parameter.");
  sub(bq::ErrorCode::kUnsupportedType, "UnsupportedTypeError", PyExc_ValueError, "A type not handled here.");
  sub(bq::ErrorCode::kShape, "ShapeError", PyExc_ValueError, "A shape the type's block does not divide, or a mismatch.");
  sub(bq::ErrorCode::kNonFinite, "NonFiniteError", PyExc_ValueError, "NaN or Inf in weights to quantize.");
  sub(bq::ErrorCode::kIo, "IoError", PyExc_OSError, "A file could not be read or written.");
  sub(bq::ErrorCode::kFormat, "FormatError", PyExc_ValueError, "A malformed file.");
  sub(bq::ErrorCode::kLimit, "LimitError", PyExc_ValueError, "A size or count over a limit.");
  sub(bq::ErrorCode::kDevice, "DeviceError", nullptr, "GPU missing, out of memory, or a failed launch.");
  sub(bq::ErrorCode::kValidation, "ValidationError", nullptr, "Acceptance thresholds not met (NO-GO).");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const bq::Error& e) {
      RaiseError(e);
    }
  });

  m.attr("__version__") = bq::kVersionString;
  m.def("types", &Types, "Traits of every type blockquant knows.");
  m.def("row_bytes", [](const std::string& type, int64_t n) { return bq::RowBytes(bq::ParseQuantType(type), n); },
        py::arg("type"), py::arg("n"));
  m.def("canonical_type_name", [](const std::string& type) { return std::string(bq::TypeName(bq::ParseQuantType(type))); },
        py::arg("type"));
  m.def("quantize", &Quantize, py::arg("data"), py::arg("rows"), py::arg("cols"), py::arg("type"),
        py::arg("importance") = py::none(), py::arg("threads") = 1, py::arg("source") = "",
        "Quantize a C-contiguous rows x cols array into GGUF block bytes (uint8).");
  m.def("dequantize", &Dequantize, py::arg("data"), py::arg("rows"), py::arg("cols"), py::arg("type"),
        py::arg("threads") = 1, "Decode block bytes into a flat float32 array of rows * cols values.");
  RegisterFlow(m);
#if defined(BLOCKQUANT_HAS_DISPATCH)
  RegisterKernels(m);
#else
  m.attr("has_kernels") = false;
#endif
#if defined(BLOCKQUANT_HAS_CALIB)
  RegisterCalib(m);
#else
  m.attr("has_calib") = false;
#endif
}
