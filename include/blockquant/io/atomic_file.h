// Writing a file so that its final path only ever holds a complete file:
// data go to "<path>.tmp.<pid>" beside it, then fsync, rename over the path,
// and fsync the directory. Destroying an uncommitted AtomicFile removes the
// temporary file and leaves the path untouched.
#ifndef BLOCKQUANT_IO_ATOMIC_FILE_H_
#define BLOCKQUANT_IO_ATOMIC_FILE_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "blockquant/error.h"

namespace blockquant {
inline namespace v0 {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    tmp_path_ = path_ + ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      BLOCKQUANT_THROW(ErrorCode::kIo, "cannot create '" + tmp_path_ + "' (for '" + path_ + "'): " +
                                           std::strerror(errno));
    }
  }
  ~AtomicFile() { Abandon(); }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t bytes_written() const { return written_; }

  void Write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t k = ::write(fd_, p, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        const std::string why = k < 0 ? std::strerror(errno) : "no space written";
        Abandon();
        BLOCKQUANT_THROW(ErrorCode::kIo, "writing '" + path_ + "' failed after " + std::to_string(written_) +
                                             " bytes: " + why);
      }
      p += k;
      n -= static_cast<size_t>(k);
      written_ += static_cast<uint64_t>(k);
    }
  }
  void WriteZeros(size_t n) {
    static const char kZeros[64] = {};
    while (n > 0) {
      const size_t k = n < sizeof(kZeros) ? n : sizeof(kZeros);
      Write(kZeros, k);
      n -= k;
    }
  }

  // fsync, rename over the final path, fsync the directory.
  void Commit() {
    if (fd_ < 0) BLOCKQUANT_THROW(ErrorCode::kIo, "'" + path_ + "' was already committed or abandoned");
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      const std::string why = std::strerror(errno);
      fd_ = -1;
      ::unlink(tmp_path_.c_str());
      BLOCKQUANT_THROW(ErrorCode::kIo, "flushing '" + path_ + "' failed: " + why);
    }
    fd_ = -1;
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp_path_.c_str());
      BLOCKQUANT_THROW(ErrorCode::kIo, "renaming onto '" + path_ + "' failed: " + why);
    }
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: the rename itself already happened
      ::close(dfd);
    }
  }

  // Closes and removes the temporary file; the final path is untouched.
  void Abandon() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      ::unlink(tmp_path_.c_str());
    }
  }

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_ATOMIC_FILE_H_
