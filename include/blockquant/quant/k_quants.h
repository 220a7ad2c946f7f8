// PLACEHOLDER (being written): Q2_K..Q6_K reference quantizers.
#ifndef BLOCKQUANT_QUANT_K_QUANTS_H_
#define BLOCKQUANT_QUANT_K_QUANTS_H_
#include <cstdint>
#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
namespace blockquant {
inline namespace v0 {
namespace ref {
inline void QuantizeRowQ2_K(const float*, BlockQ2_K*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ3_K(const float*, BlockQ3_K*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ4_K(const float*, BlockQ4_K*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ5_K(const float*, BlockQ5_K*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
inline void QuantizeRowQ6_K(const float*, BlockQ6_K*, int64_t, const float*) { BLOCKQUANT_THROW(ErrorCode::kUnsupportedType, "todo"); }
}  // namespace ref
}  // namespace v0
}  // namespace blockquant
#endif
