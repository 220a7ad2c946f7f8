// GGUF reader: any bytes must give a GgufFile whose every field can be read,
// or a blockquant::Error; no crash, no out-of-bounds read, no huge allocation.
#include <cstdint>

#include "blockquant/io/gguf_reader.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::ScratchPath("gguf", ".gguf");
  fuzz::WriteFile(path, data, size);
  try {
    blockquant::GgufReadOptions options;
    options.max_metadata_bytes = 1 << 20;
    const blockquant::GgufFile f = blockquant::GgufFile::Open(path, options);
    uint64_t sum = f.version() + f.alignment() + f.metadata().size();
    for (const auto& t : f.tensors()) {
      sum += static_cast<uint64_t>(t.n_bytes) + t.name.size();
      if (t.n_bytes > 0) sum += t.data[0] + t.data[t.n_bytes - 1];  // the bytes must be inside the map
    }
    for (const auto& kv : f.metadata()) sum += kv.first.size();
    fuzz::Consume(sum);
    return 0;
  } catch (const blockquant::Error&) {
    return 0;
  }
}
