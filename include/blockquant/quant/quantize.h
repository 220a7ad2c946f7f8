// Quantization front ends by runtime type: one row, or a whole row-major
// tensor split over threads. These run the scalar reference quantizers; the
// CPU kernels (cpu/) provide byte-identical fast versions.
#ifndef BLOCKQUANT_QUANT_QUANTIZE_H_
#define BLOCKQUANT_QUANT_QUANTIZE_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/k_quants.h"
#include "blockquant/quant/legacy.h"
#include "blockquant/quant/q8.h"

namespace blockquant {
inline namespace v0 {

// Index of the first NaN/Inf in x[0, n), or -1.
inline int64_t FindNonFinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

// Throws kNonFinite naming `what` and the first NaN/Inf's row and column of
// a row-major rows x cols matrix.
inline void RequireFinite(const float* x, int64_t rows, int64_t cols, const std::string& what) {
  const int64_t bad = FindNonFinite(x, rows * cols);
  if (bad >= 0) {
    BLOCKQUANT_THROW(ErrorCode::kNonFinite, what + " holds NaN or Inf at row " + std::to_string(bad / cols) +
                                                ", column " + std::to_string(bad % cols));
  }
}

// Quantizes one row of n f32 values into RowBytes(type, n) bytes at dst.
// importance is null or n non-negative per-column weights (an imatrix row):
// the quantizer then minimises sum_i importance[i] * (x[i] - deq[i])^2.
// The caller guarantees finite x (QuantizeTensor checks); F32/F16/BF16
// targets are plain conversions.
inline void QuantizeRowReference(QuantType type, const float* src, void* dst, int64_t n,
                                 const float* importance = nullptr) {
  RowBytes(type, n);  // validates n
  switch (type) {
    case QuantType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case QuantType::kF16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToF16(src[i]);
      return;
    }
    case QuantType::kBF16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBF16(src[i]);
      return;
    }
    case QuantType::kQ4_0: return ref::QuantizeRowQ4_0(src, static_cast<BlockQ4_0*>(dst), n, importance);
    case QuantType::kQ4_1: return ref::QuantizeRowQ4_1(src, static_cast<BlockQ4_1*>(dst), n, importance);
    case QuantType::kQ5_0: return ref::QuantizeRowQ5_0(src, static_cast<BlockQ5_0*>(dst), n, importance);
    case QuantType::kQ5_1: return ref::QuantizeRowQ5_1(src, static_cast<BlockQ5_1*>(dst), n, importance);
    case QuantType::kQ8_0: return ref::QuantizeRowQ8_0(src, static_cast<BlockQ8_0*>(dst), n);
    case QuantType::kQ8_K: return ref::QuantizeRowQ8_K(src, static_cast<BlockQ8_K*>(dst), n);
    case QuantType::kQ2_K: return ref::QuantizeRowQ2_K(src, static_cast<BlockQ2_K*>(dst), n, importance);
    case QuantType::kQ3_K: return ref::QuantizeRowQ3_K(src, static_cast<BlockQ3_K*>(dst), n, importance);
    case QuantType::kQ4_K: return ref::QuantizeRowQ4_K(src, static_cast<BlockQ4_K*>(dst), n, importance);
    case QuantType::kQ5_K: return ref::QuantizeRowQ5_K(src, static_cast<BlockQ5_K*>(dst), n, importance);
    case QuantType::kQ6_K: return ref::QuantizeRowQ6_K(src, static_cast<BlockQ6_K*>(dst), n, importance);
  }
  BLOCKQUANT_THROW(ErrorCode::kUnsupportedType,
                   "cannot quantize to type id " + std::to_string(static_cast<uint32_t>(type)));
}

// A row quantizer with QuantizeRowReference's contract and bytes.
// cpu::QuantizeRow (cpu/kernels.h, link blockquant::dispatch) is the fast one.
using RowQuantizer = void (*)(QuantType type, const float* src, void* dst, int64_t n, const float* importance);

// Element type of a tensor handed to QuantizeTensor: F32, F16 or BF16.
inline void ConvertRowToF32(QuantType src_type, const void* src, float* dst, int64_t n) {
  if (src_type != QuantType::kF32 && src_type != QuantType::kF16 && src_type != QuantType::kBF16) {
    BLOCKQUANT_THROW(ErrorCode::kUnsupportedType,
                     std::string("source must be F32, F16 or BF16, got ") + TypeName(src_type));
  }
  DequantizeRowReference(src_type, src, dst, n);
}

// Quantizes a row-major rows x cols tensor of src_type (F32/F16/BF16) into
// dst, which must hold rows * RowBytes(type, cols) bytes. Rows are split over
// parallel_for; the bytes do not depend on the split. NaN/Inf anywhere raises
// kNonFinite, and an F16 target with values past 65504 raises kLimit, naming
// the first bad row and column; dst is then incomplete and the call throws.
// quantize_row does the rows (the scalar reference unless given).
inline void QuantizeTensor(QuantType type, QuantType src_type, const void* src, int64_t rows,
                           int64_t cols, void* dst, const float* importance = nullptr,
                           const ParallelFor& parallel_for = SerialFor(),
                           RowQuantizer quantize_row = nullptr) {
  if (quantize_row == nullptr) quantize_row = QuantizeRowReference;
  if (rows < 0 || cols <= 0) {
    BLOCKQUANT_THROW(ErrorCode::kShape, "tensor shape must be positive, got " + std::to_string(rows) +
                                            " x " + std::to_string(cols));
  }
  if (!Traits(type).storable && type != QuantType::kQ8_K) {
    BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, std::string("cannot quantize to ") + TypeName(type));
  }
  const int64_t row_bytes = RowBytes(type, cols);
  const int64_t src_row_bytes = RowBytes(src_type, cols);
  if (importance != nullptr) {
    for (int64_t i = 0; i < cols; ++i) {
      if (!(importance[i] >= 0.0f) || !std::isfinite(importance[i])) {
        BLOCKQUANT_THROW(ErrorCode::kInvalidArgument,
                         "importance weights must be finite and >= 0; column " + std::to_string(i) +
                             " is " + std::to_string(importance[i]));
      }
    }
  }
  // The lowest bad row wins, so the error names the same place whatever the
  // thread split. kind 1: NaN/Inf; kind 2: finite but past the F16 range.
  std::mutex bad_mu;
  int64_t bad_row = rows, bad_col = 0;
  int bad_kind = 0;
  parallel_for(static_cast<size_t>(rows), [&](size_t begin, size_t end) {
    std::vector<float> buf(src_type == QuantType::kF32 ? 0 : static_cast<size_t>(cols));
    std::vector<float> aligned;  // a copy of rows that do not start 4-byte aligned
    for (size_t r = begin; r < end; ++r) {
      const char* in = static_cast<const char*>(src) + static_cast<int64_t>(r) * src_row_bytes;
      if (reinterpret_cast<uintptr_t>(in) % alignof(float) != 0) {
        aligned.resize(static_cast<size_t>(src_row_bytes + 3) / 4);
        std::memcpy(aligned.data(), in, static_cast<size_t>(src_row_bytes));
        in = reinterpret_cast<const char*>(aligned.data());
      }
      const float* row = reinterpret_cast<const float*>(in);
      if (src_type != QuantType::kF32) {
        ConvertRowToF32(src_type, in, buf.data(), cols);
        row = buf.data();
      }
      int kind = 1;
      int64_t bad = FindNonFinite(row, cols);
      if (bad < 0 && type == QuantType::kF16) {
        kind = 2;
        for (int64_t i = 0; i < cols && bad < 0; ++i) {
          if (std::fabs(row[i]) >= 65520.0f) bad = i;  // rounds to Inf in f16
        }
      }
      if (bad >= 0) {
        std::lock_guard<std::mutex> lock(bad_mu);
        if (static_cast<int64_t>(r) < bad_row) {
          bad_row = static_cast<int64_t>(r);
          bad_col = bad;
          bad_kind = kind;
        }
        return;
      }
      quantize_row(type, row, static_cast<char*>(dst) + static_cast<int64_t>(r) * row_bytes, cols, importance);
    }
  });
  if (bad_kind == 1) {
    BLOCKQUANT_THROW(ErrorCode::kNonFinite, "non-finite value at row " + std::to_string(bad_row) +
                                                ", column " + std::to_string(bad_col));
  }
  if (bad_kind == 2) {
    BLOCKQUANT_THROW(ErrorCode::kLimit, "value at row " + std::to_string(bad_row) + ", column " +
                                            std::to_string(bad_col) + " is beyond the F16 range (65504)");
  }
}

// Dequantizes a row-major rows x cols tensor of any type into f32. src may
// have any alignment: rows that do not start on a 4-byte boundary (a byte
// buffer at an odd offset) are copied before decoding.
inline void DequantizeTensor(QuantType type, const void* src, int64_t rows, int64_t cols, float* dst,
                             const ParallelFor& parallel_for = SerialFor()) {
  if (rows < 0 || cols <= 0) {
    BLOCKQUANT_THROW(ErrorCode::kShape, "tensor shape must be positive, got " + std::to_string(rows) +
                                            " x " + std::to_string(cols));
  }
  const int64_t row_bytes = RowBytes(type, cols);
  parallel_for(static_cast<size_t>(rows), [&](size_t begin, size_t end) {
    std::vector<float> aligned;
    for (size_t r = begin; r < end; ++r) {
      const char* in = static_cast<const char*>(src) + static_cast<int64_t>(r) * row_bytes;
      if (reinterpret_cast<uintptr_t>(in) % alignof(float) != 0) {
        aligned.resize(static_cast<size_t>(row_bytes + 3) / 4);
        std::memcpy(aligned.data(), in, static_cast<size_t>(row_bytes));
        in = reinterpret_cast<const char*>(aligned.data());
      }
      DequantizeRowReference(type, in, dst + static_cast<int64_t>(r) * cols, cols);
    }
  });
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_QUANTIZE_H_
