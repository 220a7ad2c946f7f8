// Public error type. Every check on caller input raises this through
// BLOCKQUANT_THROW with a code and a message naming what was wrong
// (the file, tensor, row or offset where one is known).
#ifndef BLOCKQUANT_ERROR_H_
#define BLOCKQUANT_ERROR_H_

#include <stdexcept>
#include <string>

#include "blockquant/config.h"

namespace blockquant {
inline namespace v0 {

// Stable ids: bindings and tools map them to exit codes and exception types.
enum class ErrorCode : int {
  kInvalidArgument = 1,  // a bad parameter: null pointer, negative size, unknown option
  kUnsupportedType = 2,  // a type id or name blockquant does not handle for this operation
  kShape = 3,            // row length not a multiple of the block, mismatched shapes
  kNonFinite = 4,        // NaN or Inf in weights that are about to be quantized
  kIo = 5,               // open/read/write/rename/fsync failed
  kFormat = 6,           // a file is malformed: bad magic, truncated, offsets out of range
  kLimit = 7,            // a size or count exceeds what is allowed (overflow, caps)
  kDevice = 8,           // GPU missing, out of memory, or a launch failed
  kValidation = 9,       // acceptance thresholds not met (NO-GO)
};

inline const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kUnsupportedType: return "unsupported_type";
    case ErrorCode::kShape: return "shape";
    case ErrorCode::kNonFinite: return "non_finite";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kFormat: return "format";
    case ErrorCode::kLimit: return "limit";
    case ErrorCode::kDevice: return "device";
    case ErrorCode::kValidation: return "validation";
  }
  return "unknown";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(ErrorCodeName(code)) + ": " + message),
        code_(code),
        message_(message) {}
  ErrorCode code() const noexcept { return code_; }
  // The message without the "code: " prefix that what() carries, for
  // callers that add context and rethrow.
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_ERROR_H_
