// Umbrella header: everything a runtime needs to quantize and dequantize
// GGUF-compatible blocks. Include the folder headers directly for less.
#ifndef BLOCKQUANT_BLOCKQUANT_H_
#define BLOCKQUANT_BLOCKQUANT_H_

#include "blockquant/config.h"
#include "blockquant/error.h"
#include "blockquant/format/blocks.h"
#include "blockquant/format/fp16.h"
#include "blockquant/format/quant_type.h"
#include "blockquant/format/type_traits.h"
#include "blockquant/parallel.h"
#include "blockquant/quant/dequantize.h"
#include "blockquant/quant/quantize.h"
#include "blockquant/version.h"

#endif  // BLOCKQUANT_BLOCKQUANT_H_
