// Shared by the fuzz targets: the readers take paths (they mmap), so each
// input goes to a per-process scratch file first.
#ifndef BLOCKQUANT_TESTS_FUZZ_FUZZ_UTIL_H_
#define BLOCKQUANT_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace fuzz {

inline std::string ScratchPath(const char* name, const char* ext) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/bq_fuzz_" + std::to_string(getpid()) + "_" + name + ext;
}

// Writes data to path (replacing it); aborts on I/O failure, which is the
// harness's fault, not the reader's.
inline void WriteFile(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

// Keeps the values a target read from being optimised away, so every byte
// the reader says is there really is read (and checked by ASan).
inline void Consume(uint64_t value) {
  static volatile uint64_t sink;
  sink = sink + value;
}

}  // namespace fuzz

#endif  // BLOCKQUANT_TESTS_FUZZ_FUZZ_UTIL_H_
