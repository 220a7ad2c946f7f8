// Scalar reference quantizers for the 8-bit types: Q8_0 (weights and the
// activation partner of Q4_0/Q5_x/Q8_0) and Q8_K (activation partner of the
// K-quants).
#ifndef BLOCKQUANT_QUANT_Q8_H_
#define BLOCKQUANT_QUANT_Q8_H_

#include <cmath>
#include <cstdint>

#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"

namespace blockquant {
inline namespace v0 {
namespace ref {

// Q8_0 the way ggml and the gguf package do it, so the bytes are identical to
// theirs: d = max|x| / 127, q = round-half-away(x / d). Scaling by the exact d
// (not its f16 rounding) is ggml's choice; we keep it for byte compatibility.
// Importance weights cannot improve on this rounding (one scale per 32 values,
// already fit to the extreme), so the front end does not pass them. Two
// departures from ggml: d saturates at the f16 maximum instead of becoming Inf,
// and where 1/d overflows f32 (ggml's float -> int8 cast is then undefined)
// q is 0, the bytes x86 builds of ggml write there.
inline void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (std::isinf(id)) id = 0.0f;  // max|x| < ~4e-37: d stores as 0, so do the q (x86's bytes)
    y[b].d = F32ToF16Saturate(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

// Q8_K: d = max|x| / 127 in f32, q = round-to-nearest-even(x * 127 / max|x|),
// bsums filled. Ties to even so SIMD conversion instructions match exactly.
inline void QuantizeRowQ8_K(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float amax = 0.0f;
    for (int j = 0; j < kQK_K; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    if (amax == 0.0f) {
      y[b].d = 0.0f;
      for (int j = 0; j < kQK_K; ++j) y[b].qs[j] = 0;
      for (int g = 0; g < kQK_K / 16; ++g) y[b].bsums[g] = 0;
      continue;
    }
    const float id = 127.0f / amax;
    for (int j = 0; j < kQK_K; ++j) {
      const float v = std::nearbyint(x[j] * id);
      y[b].qs[j] = static_cast<int8_t>(std::fmin(127.0f, std::fmax(-127.0f, v)));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * g + l];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = amax / 127.0f;
  }
}

}  // namespace ref
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_QUANT_Q8_H_
