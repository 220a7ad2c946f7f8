// Block structs, byte for byte as GGUF/ggml store them (shared/FORMATS.md).
// Field names follow ggml's so readers can cross-check. f16 fields hold the raw
// IEEE binary16 bits. The layout never depends on SIMD width. All structs are
// trivially copyable and have alignment 1 or 2, so arrays of them tile a row
// with no padding; a row of n elements is n / kBlockElems consecutive blocks.
#ifndef BLOCKQUANT_FORMAT_BLOCKS_H_
#define BLOCKQUANT_FORMAT_BLOCKS_H_

#include <cstdint>
#include <type_traits>

#include "blockquant/config.h"

namespace blockquant {
inline namespace v0 {

inline constexpr int kQK = 32;    // elements per legacy block
inline constexpr int kQK_K = 256; // elements per K-quant super-block
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales/mins of Q3_K/Q4_K/Q5_K

// Q4_0: 4.5 bits/weight. value = d * (nibble - 8). Element i (0..15) is the
// low nibble of qs[i], element i + 16 the high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};

// Q4_1: 5.0 bits/weight. value = d * nibble + m; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};

// Q5_0: 5.5 bits/weight. value = d * (q - 16), q = nibble | (bit j of qh as
// little-endian u32) << 4, nibbles as Q4_0.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// Q5_1: 6.0 bits/weight. value = d * q + m; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// Q8_0: 8.5 bits/weight. value = d * qs[i].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// Q8_K: activations only. value = d * qs[i] (d is f32); bsums[g] is the sum
// of qs[16g .. 16g+15], so min terms of Q2_K/Q4_K/Q5_K dots need no pass over qs.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

// Q2_K: 2.625 bits/weight, 16 groups of 16. value = d * (scales[g] & 15) * q
// - dmin * (scales[g] >> 4), q in 0..3. qs: two halves of 128 elements, byte
// qs[32h + l] holds element 128h + 32j + l at bit shift 2j.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};

// Q3_K: 3.4375 bits/weight, 16 groups of 16. value = d * (S_g - 32) * (c - 4)
// with the 3-bit code c = low2 (Q2_K's qs layout) + 4 * (hmask[l] bit k for
// element 32k + l). Sixteen 6-bit S_g packed in 12 bytes (see FORMATS.md).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleBytes];
  uint16_t d;
};

// Q4_K: 4.5 bits/weight, 8 groups of 32. value = d * sc_j * q - dmin * m_j,
// q in 0..15, sc/m 6-bit. qs: chunk c of 64 elements, byte qs[32c + l] holds
// element 64c + l (low nibble) and 64c + 32 + l (high nibble).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};

// Q5_K: 5.5 bits/weight. As Q4_K with a fifth bit: element 64c + l takes bit
// 2c of qh[l], element 64c + 32 + l bit 2c + 1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

// Q6_K: 6.5625 bits/weight, 16 groups of 16. value = d * scales[g] * (q - 32),
// q 6-bit: low 4 bits in ql, high 2 in qh (layout in FORMATS.md).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

#define BLOCKQUANT_CHECK_BLOCK(T, bytes)                                    \
  static_assert(sizeof(T) == (bytes), #T " must be " #bytes " bytes");      \
  static_assert(std::is_trivially_copyable<T>::value, #T " must be POD-like"); \
  static_assert(std::is_standard_layout<T>::value, #T " must be standard layout")
BLOCKQUANT_CHECK_BLOCK(BlockQ4_0, 18);
BLOCKQUANT_CHECK_BLOCK(BlockQ4_1, 20);
BLOCKQUANT_CHECK_BLOCK(BlockQ5_0, 22);
BLOCKQUANT_CHECK_BLOCK(BlockQ5_1, 24);
BLOCKQUANT_CHECK_BLOCK(BlockQ8_0, 34);
BLOCKQUANT_CHECK_BLOCK(BlockQ8_K, 292);
BLOCKQUANT_CHECK_BLOCK(BlockQ2_K, 84);
BLOCKQUANT_CHECK_BLOCK(BlockQ3_K, 110);
BLOCKQUANT_CHECK_BLOCK(BlockQ4_K, 144);
BLOCKQUANT_CHECK_BLOCK(BlockQ5_K, 176);
BLOCKQUANT_CHECK_BLOCK(BlockQ6_K, 210);
#undef BLOCKQUANT_CHECK_BLOCK

// The 6-bit scale/min of group j (0..7) of Q4_K/Q5_K, unpacked from 12 bytes.
BLOCKQUANT_HOST_DEVICE inline void UnpackScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Inverse of UnpackScaleMinK4 for all 8 groups; sc and m must be < 64.
BLOCKQUANT_HOST_DEVICE inline void PackScaleMinK4(const uint8_t* sc, const uint8_t* m, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

// The 6-bit scale index S_g (0..63) of group g (0..15) of Q3_K.
BLOCKQUANT_HOST_DEVICE inline uint8_t UnpackScaleQ3K(int g, const uint8_t* s) {
  const int low = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
  const int high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
  return static_cast<uint8_t>(low | (high << 4));
}

// Inverse of UnpackScaleQ3K for all 16 groups; S must be < 64.
BLOCKQUANT_HOST_DEVICE inline void PackScalesQ3K(const uint8_t* S, uint8_t* s) {
  for (int i = 0; i < kKScaleBytes; ++i) s[i] = 0;
  for (int g = 0; g < 16; ++g) {
    const uint8_t low = S[g] & 0xF;
    if (g < 8) {
      s[g] |= low;
    } else {
      s[g - 8] |= static_cast<uint8_t>(low << 4);
    }
    s[8 + g % 4] |= static_cast<uint8_t>(((S[g] >> 4) & 3) << (2 * (g / 4)));
  }
}

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_FORMAT_BLOCKS_H_
