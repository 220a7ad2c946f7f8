// blockquant._cuda: the CUDA host API (cuda/blockquant_cuda.h) for callers
// that own device memory, such as bq.torch.QuantLinear. Pointers and the
// stream cross as integers (torch's data_ptr() and cuda_stream), so this
// module needs no framework headers and no DLPack. A separate module from
// _core: it links the CUDA runtime statically, and a machine without a GPU or
// driver still imports it and gets a clear DeviceError from the first call.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "blockquant/error.h"
#include "blockquant/format/type_traits.h"
#include "blockquant_cuda.h"

namespace py = pybind11;
namespace bq = blockquant;

namespace {

void* Ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

// Status -> the Python exception of the same blockquant error code (the
// classes live in _core, so `except bq.DeviceError` catches them).
void Raise(const bq::cuda::Status& s) {
  if (s.ok()) return;
  const char* cls = s.code == 1   ? "InvalidArgumentError"
                    : s.code == 2 ? "UnsupportedTypeError"
                    : s.code == 3 ? "ShapeError"
                                  : "DeviceError";
  py::object type = py::module_::import("blockquant._core").attr(cls);
  PyErr_SetString(type.ptr(), s.message.c_str());
  throw py::error_already_set();
}

// Runs f, which returns a Status, with the GIL released, then raises its
// error once the GIL is back.
template <typename F>
void CallWithoutGil(F&& f) {
  bq::cuda::Status s;
  {
    py::gil_scoped_release release;
    s = f();
  }
  Raise(s);
}

// A type name -> QuantType, with an unknown name raised here: bq::Error's
// translator belongs to _core, whose hidden symbols this module cannot match.
bq::QuantType Type(const std::string& name) {
  try {
    return bq::ParseQuantType(name);
  } catch (const bq::Error& e) {
    Raise(bq::cuda::Status{static_cast<int>(e.code()), e.message()});
  }
  return bq::QuantType::kF32;  // not reached
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "blockquant's CUDA kernels over raw device pointers (see cuda/blockquant_cuda.h)";
  m.def("device_count", &bq::cuda::DeviceCount, "CUDA devices visible to this process; 0 without driver or device.");
  m.def("supported", [](const std::string& type) { return bq::cuda::MatMulSupported(Type(type)); },
        py::arg("type"), "Whether the CUDA matmul and dequantize kernels take this type.");
  m.def(
      "matmul",
      [](const std::string& type, uintptr_t weights, int64_t rows, int64_t cols, const std::string& act_type,
         uintptr_t x, int64_t n, uintptr_t y, uintptr_t stream, uintptr_t workspace, int64_t workspace_bytes,
         bool planar) {
        const bq::QuantType t = Type(type), a = Type(act_type);
        float* out = static_cast<float*>(Ptr(y));
        CallWithoutGil([&] {
          return planar ? bq::cuda::MatMulPlanar(t, Ptr(weights), rows, cols, a, Ptr(x), n, out, Ptr(stream),
                                                 Ptr(workspace), workspace_bytes)
                        : bq::cuda::MatMul(t, Ptr(weights), rows, cols, a, Ptr(x), n, out, Ptr(stream),
                                           bq::cuda::MatMulKernel::kAuto, Ptr(workspace), workspace_bytes);
        });
      },
      py::arg("type"), py::arg("weights"), py::arg("rows"), py::arg("cols"), py::arg("act_type"), py::arg("x"),
      py::arg("n"), py::arg("y"), py::arg("stream"), py::arg("workspace") = 0, py::arg("workspace_bytes") = 0,
      py::arg("planar") = false,
      "y (n x rows, f32) = x (n x cols, act_type) @ W^T, W the rows x cols GGUF blocks (planar: in the planar "
      "layout, see repack); asynchronous on stream. workspace: scratch of workspace_bytes (see workspace_bytes() "
      "and planar_workspace_bytes()), or 0 for a stream-ordered allocation.");
  m.def(
      "planar_workspace_bytes",
      [](const std::string& type, int64_t rows, int64_t cols) {
        return bq::cuda::MatMulPlanarWorkspaceBytes(Type(type), rows, cols);
      },
      py::arg("type"), py::arg("rows"), py::arg("cols"), "The most scratch a planar matmul uses: the weights' size.");
  m.def(
      "planar_in_place",
      [](const std::string& type, uintptr_t weights, int64_t cols, const std::string& act_type, uintptr_t x,
         int64_t n) {
        return bq::cuda::MatMulPlanarInPlace(Type(type), Ptr(weights), cols, Type(act_type), Ptr(x), n);
      },
      py::arg("type"), py::arg("weights"), py::arg("cols"), py::arg("act_type"), py::arg("x"), py::arg("n"),
      "Whether a planar matmul on these arguments reads the planes in place (no workspace).");
  m.def(
      "planar_supported", [](const std::string& type) { return bq::cuda::PlanarSupported(Type(type)); },
      py::arg("type"), "Whether the planar layout covers this type (Q2_K, Q3_K, Q6_K).");
  m.def(
      "repack",
      [](const std::string& type, uintptr_t src, int64_t rows, int64_t cols, uintptr_t dst, uintptr_t stream,
         bool to_planar) {
        const bq::QuantType t = Type(type);
        CallWithoutGil([&] {
          return to_planar ? bq::cuda::ToPlanar(t, Ptr(src), rows, cols, Ptr(dst), Ptr(stream))
                           : bq::cuda::FromPlanar(t, Ptr(src), rows, cols, Ptr(dst), Ptr(stream));
        });
      },
      py::arg("type"), py::arg("src"), py::arg("rows"), py::arg("cols"), py::arg("dst"), py::arg("stream"),
      py::arg("to_planar"), "GGUF blocks -> the planar layout (to_planar) or back; asynchronous on stream.");
  m.def(
      "workspace_bytes",
      [](const std::string& type, int64_t n, int64_t cols) {
        return bq::cuda::MatMulWorkspaceBytes(Type(type), n, cols);
      },
      py::arg("type"), py::arg("n"), py::arg("cols"),
      "Scratch bytes matmul may use for weights of this type and n columns of x of length cols.");
  m.def(
      "dequantize",
      [](const std::string& type, uintptr_t src, int64_t rows, int64_t cols, const std::string& out_type,
         uintptr_t dst, uintptr_t stream) {
        const bq::QuantType t = Type(type), o = Type(out_type);
        CallWithoutGil([&] { return bq::cuda::Dequantize(t, Ptr(src), rows, cols, o, Ptr(dst), Ptr(stream)); });
      },
      py::arg("type"), py::arg("src"), py::arg("rows"), py::arg("cols"), py::arg("out_type"), py::arg("dst"),
      py::arg("stream"), "rows x cols blocks -> values of out_type (F32, F16, BF16); asynchronous on stream.");
  m.def(
      "quantize",
      [](const std::string& type, uintptr_t src, int64_t rows, int64_t cols, uintptr_t dst, uintptr_t stream,
         uintptr_t importance) {
        const bq::QuantType t = Type(type);
        CallWithoutGil([&] {
          return bq::cuda::Quantize(t, static_cast<const float*>(Ptr(src)), rows, cols, Ptr(dst), Ptr(stream),
                                    static_cast<const float*>(Ptr(importance)));
        });
      },
      py::arg("type"), py::arg("src"), py::arg("rows"), py::arg("cols"), py::arg("dst"), py::arg("stream"),
      py::arg("importance") = 0,
      "rows x cols f32 -> GGUF blocks with the CPU reference's bytes; importance: 0 or cols f32 weights; "
      "asynchronous on stream.");
  m.def(
      "find_non_finite",
      [](uintptr_t src, int64_t count, uintptr_t stream) {
        int64_t first = -1;
        CallWithoutGil(
            [&] { return bq::cuda::FindNonFinite(static_cast<const float*>(Ptr(src)), count, &first, Ptr(stream)); });
        return first;
      },
      py::arg("src"), py::arg("count"), py::arg("stream"),
      "Index of the first NaN/Inf among count f32 values, or -1; waits for the stream.");
  m.def(
      "gptq_round_batch",
      [](const std::string& type, uintptr_t w, int64_t rows, int64_t ld, int64_t c0, uintptr_t blocks, uintptr_t u,
         int64_t ldu, uintptr_t levels, uintptr_t err, uintptr_t stream) {
        const bq::QuantType t = Type(type);
        CallWithoutGil([&] {
          return bq::cuda::GptqRoundBatch(t, static_cast<float*>(Ptr(w)), rows, ld, c0, Ptr(blocks),
                                          static_cast<const float*>(Ptr(u)), ldu, static_cast<int8_t*>(Ptr(levels)),
                                          static_cast<float*>(Ptr(err)), Ptr(stream));
        });
      },
      py::arg("type"), py::arg("w"), py::arg("rows"), py::arg("ld"), py::arg("c0"), py::arg("blocks"), py::arg("u"),
      py::arg("ldu"), py::arg("levels"), py::arg("err"), py::arg("stream"),
      "GPTQ's rounding of one 256-column batch on the GPU (cuda::GptqRoundBatch); asynchronous on stream.");
  m.def(
      "write_block_levels",
      [](const std::string& type, uintptr_t levels, int64_t rows, int64_t cols, int64_t ld, uintptr_t blocks,
         uintptr_t stream) {
        const bq::QuantType t = Type(type);
        CallWithoutGil([&] {
          return bq::cuda::WriteBlockLevels(t, static_cast<const int8_t*>(Ptr(levels)), rows, cols, ld, Ptr(blocks),
                                            Ptr(stream));
        });
      },
      py::arg("type"), py::arg("levels"), py::arg("rows"), py::arg("cols"), py::arg("ld"), py::arg("blocks"),
      py::arg("stream"), "int8 levels into the level bits of blocks (cuda::WriteBlockLevels); asynchronous.");
}
