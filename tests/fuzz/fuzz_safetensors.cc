// safetensors reader: header JSON, dtypes, shapes and offsets from a stranger.
#include <cstdint>

#include "blockquant/io/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::ScratchPath("st", ".safetensors");
  fuzz::WriteFile(path, data, size);
  try {
    const blockquant::SafetensorsFile f = blockquant::SafetensorsFile::Open(path, 1 << 20);
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) {
      sum += static_cast<uint64_t>(t.n_bytes) + blockquant::HfToGgufName(t.name).size();
      if (t.n_bytes > 0) sum += t.data[0] + t.data[t.n_bytes - 1];
    }
    fuzz::Consume(sum);
    return 0;
  } catch (const blockquant::Error&) {
    return 0;
  }
}
