// PLACEHOLDER (being written): Q4_0, Q4_1, Q5_0, Q5_1 reference quantizers.
#ifndef BLOCKQUANT_QUANT_LEGACY_H_
#define BLOCKQUANT_QUANT_LEGACY_H_
#include <cstdint>
#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
namespace blockquant {
inline namespace v0 {
namespace ref {
inline void QuantizeRowQ4_0(const float*, BlockQ4_0*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ4_1(const float*, BlockQ4_1*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ5_0(const float*, BlockQ5_0*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ5_1(const float*, BlockQ5_1*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
}  // namespace ref
}  // namespace v0
}  // namespace blockquant
#endif
