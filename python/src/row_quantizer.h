// The row quantizer the bindings use: the dispatched SIMD one when the
// extension was built with the CPU kernels (same bytes), else the reference.
#ifndef BLOCKQUANT_PYTHON_ROW_QUANTIZER_H_
#define BLOCKQUANT_PYTHON_ROW_QUANTIZER_H_

#include "blockquant/quant/quantize.h"
#if defined(BLOCKQUANT_HAS_DISPATCH)
#include "blockquant/cpu/kernels.h"
#endif

inline blockquant::RowQuantizer BindingRowQuantizer() {
#if defined(BLOCKQUANT_HAS_DISPATCH)
  return &blockquant::cpu::QuantizeRow;
#else
  return nullptr;
#endif
}

#endif  // BLOCKQUANT_PYTHON_ROW_QUANTIZER_H_
