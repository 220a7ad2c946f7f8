// Writing a file so that its final path only ever holds a complete file.
// On Linux the data go to an unnamed file (O_TMPFILE) in the target's
// directory, so a process killed mid-write leaves nothing behind; Commit()
// fsyncs it and links it at the path, or, when a file is there to replace,
// links it as "<path>.tmp.<pid>" and renames that over the path (a kill in
// the microseconds between the two leaves that name); then it fsyncs the
// directory. Where O_TMPFILE is unsupported (other systems,
// some filesystems) the data go to "<path>.tmp.<pid>" from the start, which a
// SIGKILL can leave behind (never at the final path). Destroying an
// uncommitted AtomicFile removes its temporary file; the path is untouched.
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
#ifdef O_TMPFILE
    fd_ = ::open(Directory().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    unnamed_ = fd_ >= 0;
    // ENOENT/ENOTDIR/EACCES/EROFS: the directory itself is the problem; let
    // the named open below report it with the path the user gave.
#endif
    if (fd_ < 0) fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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

  // fsync, link at (or rename over) the final path, fsync the directory.
  void Commit() {
    if (fd_ < 0) BLOCKQUANT_THROW(ErrorCode::kIo, "'" + path_ + "' was already committed or abandoned");
    if (::fsync(fd_) != 0) {
      const std::string why = std::strerror(errno);
      Abandon();
      BLOCKQUANT_THROW(ErrorCode::kIo, "flushing '" + path_ + "' failed: " + why);
    }
    // The name the data have now: the final path once linked there directly.
    const std::string* named = &tmp_path_;
    if (unnamed_) {
      const std::string self = "/proc/self/fd/" + std::to_string(fd_);
      // No file at the path yet: link the finished file there directly, so
      // no name but the final one ever exists. Replacing a file (linkat
      // cannot replace): name it beside the target, then rename over the
      // target; a kill between the two leaves that name.
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        named = &path_;
      } else {
        ::unlink(tmp_path_.c_str());  // a leftover of an earlier killed run with our pid
        if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp_path_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
          const std::string why = std::strerror(errno);
          Abandon();
          BLOCKQUANT_THROW(ErrorCode::kIo, "naming the new '" + path_ + "' failed: " + why);
        }
      }
    }
    const int close_result = ::close(fd_);
    fd_ = -1;
    if (close_result != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(named->c_str());
      BLOCKQUANT_THROW(ErrorCode::kIo, "flushing '" + path_ + "' failed: " + why);
    }
    if (named != &path_ && ::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp_path_.c_str());
      BLOCKQUANT_THROW(ErrorCode::kIo, "renaming onto '" + path_ + "' failed: " + why);
    }
    const int dfd = ::open(Directory().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: the link or rename itself already happened
      ::close(dfd);
    }
  }

  // Closes and removes the temporary file; the final path is untouched.
  void Abandon() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      if (!unnamed_) ::unlink(tmp_path_.c_str());
    }
  }

  // Whether the data go to an unnamed file (nothing is left if killed).
  bool unnamed() const { return unnamed_; }

 private:
  std::string Directory() const {
    const size_t slash = path_.rfind('/');
    return slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  }

  std::string path_, tmp_path_;
  bool unnamed_ = false;
  int fd_ = -1;
  uint64_t written_ = 0;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_ATOMIC_FILE_H_
