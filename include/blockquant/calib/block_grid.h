// The grid of values one quantized block can hold once its scales are fixed:
// element i decodes to step[i] * q - offset[i] (the dequantizers' arithmetic) for an integer level q in
// [qmin, qmax]. The calibrated quantizers (gptq.h) choose a block's scales
// with the ordinary quantizer, then round each weight onto this grid on their
// own terms and write the levels back, leaving the scale bytes as they were.
// So their output is a plain GGUF block that any llama.cpp build decodes.
#ifndef BLOCKQUANT_CALIB_BLOCK_GRID_H_
#define BLOCKQUANT_CALIB_BLOCK_GRID_H_

#include <cmath>
#include <cstdint>
#include <string>

#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/quant/k_quants.h"

namespace blockquant {
inline namespace v0 {
namespace calib {

struct BlockGrid {
  int n = 0;  // elements in the block: 256 (K-quants) or 32 (Q8_0, Q4_0)
  int qmin = 0, qmax = 0;
  float step[kQK_K] = {};
  float offset[kQK_K] = {};

};

// The level of element with this step and offset nearest to x, clamped to
// [qmin, qmax]. Steps of Q3_K/Q6_K may be negative (their largest group
// scale is stored at the negative end); a zero step decodes every level to
// -offset, and level 0 is in every range.
inline float RoundToGrid(float x, float step, float offset, float qmin, float qmax) {
  if (step == 0.0f) return 0.0f;
  const float q = std::nearbyint((x + offset) / step);
  return q < qmin ? qmin : (q > qmax ? qmax : q);
}

// Types the calibrated quantizers write.
inline bool HasBlockGrid(QuantType type) {
  switch (type) {
    case QuantType::kQ2_K: case QuantType::kQ3_K: case QuantType::kQ4_K: case QuantType::kQ5_K:
    case QuantType::kQ6_K: case QuantType::kQ8_0: case QuantType::kQ4_0:
      return true;
    default:
      return false;
  }
}

inline void RequireBlockGrid(QuantType type) {
  if (!HasBlockGrid(type)) {
    BLOCKQUANT_THROW(ErrorCode::kUnsupportedType,
                     std::string("calibrated quantization writes Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0 or Q4_0, not ") +
                         TypeName(type));
  }
}

// The level range of a type's blocks.
struct LevelRange {
  int min = 0, max = 0;
  explicit LevelRange(QuantType type) {
    switch (type) {
      case QuantType::kQ2_K: min = 0, max = 3; return;
      case QuantType::kQ3_K: min = -4, max = 3; return;
      case QuantType::kQ4_K: min = 0, max = 15; return;
      case QuantType::kQ5_K: min = 0, max = 31; return;
      case QuantType::kQ6_K: min = -32, max = 31; return;
      case QuantType::kQ8_0: min = -128, max = 127; return;
      case QuantType::kQ4_0: min = -8, max = 7; return;
      default: RequireBlockGrid(type);
    }
  }
};

// Reads the grid of one block of `type` (scales as stored, levels ignored).
inline void ReadBlockGrid(QuantType type, const void* block, BlockGrid* g) {
  const LevelRange range(type);
  g->qmin = range.min, g->qmax = range.max;
  switch (type) {
    case QuantType::kQ2_K: {
      const auto* b = static_cast<const BlockQ2_K*>(block);
      const float d = F16ToF32(b->d), dmin = F16ToF32(b->dmin);
      g->n = kQK_K;
      for (int i = 0; i < kQK_K; ++i) {
        g->step[i] = d * static_cast<float>(b->scales[i / 16] & 0xF);
        g->offset[i] = dmin * static_cast<float>(b->scales[i / 16] >> 4);
      }
      return;
    }
    case QuantType::kQ3_K: {
      const auto* b = static_cast<const BlockQ3_K*>(block);
      const float d = F16ToF32(b->d);
      g->n = kQK_K;
      for (int i = 0; i < kQK_K; ++i) {
        g->step[i] = d * static_cast<float>(static_cast<int>(UnpackScaleQ3K(i / 16, b->scales)) - 32);
        g->offset[i] = 0.0f;
      }
      return;
    }
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      const auto* b4 = static_cast<const BlockQ4_K*>(block);
      const auto* b5 = static_cast<const BlockQ5_K*>(block);
      const bool q4 = type == QuantType::kQ4_K;
      const float d = F16ToF32(q4 ? b4->d : b5->d), dmin = F16ToF32(q4 ? b4->dmin : b5->dmin);
      g->n = kQK_K;
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        UnpackScaleMinK4(j, q4 ? b4->scales : b5->scales, &sc, &m);
        for (int l = 0; l < 32; ++l) {
          g->step[32 * j + l] = d * static_cast<float>(sc);
          g->offset[32 * j + l] = dmin * static_cast<float>(m);
        }
      }
      return;
    }
    case QuantType::kQ6_K: {
      const auto* b = static_cast<const BlockQ6_K*>(block);
      const float d = F16ToF32(b->d);
      g->n = kQK_K;
      for (int i = 0; i < kQK_K; ++i) {
        g->step[i] = d * static_cast<float>(b->scales[i / 16]);
        g->offset[i] = 0.0f;
      }
      return;
    }
    case QuantType::kQ8_0:
    case QuantType::kQ4_0: {
      const bool q8 = type == QuantType::kQ8_0;
      const float d = F16ToF32(q8 ? static_cast<const BlockQ8_0*>(block)->d : static_cast<const BlockQ4_0*>(block)->d);
      g->n = kQK;
      for (int i = 0; i < kQK; ++i) g->step[i] = d, g->offset[i] = 0.0f;
      return;
    }
    default:
      RequireBlockGrid(type);
  }
}

// Writes levels q[0, n) (each in the grid's range) into the level bits of
// a block of `type`, leaving its scale bytes as they are.
inline void WriteBlockLevels(QuantType type, const int* q, void* block) {
  uint8_t code[kQK_K];
  switch (type) {
    case QuantType::kQ2_K:
      for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(q[i]);
      ref::PackLow2(code, static_cast<BlockQ2_K*>(block)->qs);
      return;
    case QuantType::kQ3_K:
      for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(q[i] + 4);
      ref::PackLevelsQ3_K(code, static_cast<BlockQ3_K*>(block));
      return;
    case QuantType::kQ4_K:
      for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(q[i]);
      ref::PackNibblesK(code, static_cast<BlockQ4_K*>(block)->qs);
      return;
    case QuantType::kQ5_K:
      for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(q[i]);
      ref::PackLevelsQ5_K(code, static_cast<BlockQ5_K*>(block));
      return;
    case QuantType::kQ6_K:
      for (int i = 0; i < kQK_K; ++i) code[i] = static_cast<uint8_t>(q[i] + 32);
      ref::PackLevelsQ6_K(code, static_cast<BlockQ6_K*>(block));
      return;
    case QuantType::kQ8_0:
      for (int i = 0; i < kQK; ++i) static_cast<BlockQ8_0*>(block)->qs[i] = static_cast<int8_t>(q[i]);
      return;
    case QuantType::kQ4_0: {
      auto* b = static_cast<BlockQ4_0*>(block);
      for (int j = 0; j < kQK / 2; ++j) b->qs[j] = static_cast<uint8_t>((q[j] + 8) | ((q[j + kQK / 2] + 8) << 4));
      return;
    }
    default:
      RequireBlockGrid(type);
  }
}

}  // namespace calib
}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_CALIB_BLOCK_GRID_H_
