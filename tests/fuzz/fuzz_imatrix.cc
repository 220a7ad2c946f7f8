// Both llama.cpp importance-matrix formats: the first byte picks the reader
// (GGUF or the legacy .dat), the rest is the file.
#include <cstdint>

#include "blockquant/io/imatrix.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string gguf_path = fuzz::ScratchPath("imatrix", ".gguf");
  static const std::string dat_path = fuzz::ScratchPath("imatrix", ".dat");
  const bool gguf = (data[0] & 1) != 0;
  const std::string& path = gguf ? gguf_path : dat_path;
  fuzz::WriteFile(path, data + 1, size - 1);
  try {
    const blockquant::Imatrix m = gguf ? blockquant::LoadImatrixGguf(path) : blockquant::LoadImatrixDat(path);
    uint64_t sum = 0;
    for (const auto& e : m.entries) {
      if (e.second.cols > 0 && e.second.cols < 4096) {
        sum += m.Importance(e.first, e.second.cols, e.second.n_mat() - 1).size();
      }
    }
    fuzz::Consume(sum);
    return 0;
  } catch (const blockquant::Error&) {
    return 0;
  }
}
