// Read-only memory maps and a bounds-checked little-endian reader over them.
// Every read past the end raises kFormat naming the file and byte offset, so
// parsers never touch memory outside the file whatever a header claims.
#ifndef BLOCKQUANT_IO_MAPPED_FILE_H_
#define BLOCKQUANT_IO_MAPPED_FILE_H_

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "blockquant/error.h"

namespace blockquant {
inline namespace v0 {

// A whole file mapped read-only (POSIX). Move-only; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) BLOCKQUANT_THROW(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      const std::string why = S_ISDIR(st.st_mode) ? "is a directory" : std::strerror(errno);
      ::close(fd);
      BLOCKQUANT_THROW(ErrorCode::kIo, "cannot read '" + path + "': " + why);
    }
    size_ = static_cast<uint64_t>(st.st_size);
    device_ = static_cast<uint64_t>(st.st_dev);
    inode_ = static_cast<uint64_t>(st.st_ino);
    mtime_ns_ = MtimeNs(st);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        BLOCKQUANT_THROW(ErrorCode::kIo, "cannot map '" + path + "': " + std::strerror(err));
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() { Reset(); }
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      Reset();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      device_ = o.device_;
      inode_ = o.inode_;
      mtime_ns_ = o.mtime_ns_;
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }

  // Drops the pages of [offset, offset + n) from this process's resident set
  // once they are no longer needed (streaming passes keep RSS at O(chunk));
  // the data stay readable and are paged in again on access.
  void Release(uint64_t offset, uint64_t n) const {
    if (data_ == nullptr || n == 0 || offset >= size_) return;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t begin = (offset + page - 1) / page * page;  // whole pages only
    const uint64_t end = std::min(offset + n, size_) / page * page;
    if (end > begin) ::madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
  }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Identity of the file, to refuse writing over the input.
  uint64_t device() const { return device_; }
  uint64_t inode() const { return inode_; }

  // Whether the file we mapped was rewritten in place since it was opened
  // (same inode, another size or modification time): its pages may then mix
  // old and new bytes, so results read from it cannot be trusted. A file
  // replaced by rename is not "modified": the mapping keeps the old inode.
  // (Shrinking a mapped file makes reads past the new end raise SIGBUS; that
  // cannot be turned into an error, see docs/robustness.md.)
  bool ModifiedSinceOpen() const {
    struct stat st;
    if (path_.empty() || ::stat(path_.c_str(), &st) != 0) return false;
    return static_cast<uint64_t>(st.st_dev) == device_ && static_cast<uint64_t>(st.st_ino) == inode_ &&
           (static_cast<uint64_t>(st.st_size) != size_ || MtimeNs(st) != mtime_ns_);
  }

 private:
  static int64_t MtimeNs(const struct stat& st) {
#ifdef __APPLE__
    const struct timespec& t = st.st_mtimespec;
#else
    const struct timespec& t = st.st_mtim;
#endif
    return static_cast<int64_t>(t.tv_sec) * 1000000000 + static_cast<int64_t>(t.tv_nsec);
  }
  void Reset() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0, device_ = 0, inode_ = 0;
  int64_t mtime_ns_ = 0;
};

// Sequential little-endian reads within [0, size); name labels errors. When
// size is a cap below the file's size, cap_note says which limit it is, and
// a read past it is a kLimit error naming that limit instead of a truncation.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, std::string name, std::string cap_note = {})
      : data_(data), size_(size), name_(std::move(name)), cap_note_(std::move(cap_note)) {}

  uint64_t offset() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& name() const { return name_; }
  bool capped() const { return !cap_note_.empty(); }

  [[noreturn]] void Fail(const std::string& what) const {
    BLOCKQUANT_THROW(ErrorCode::kFormat, name_ + " at byte " + std::to_string(pos_) + ": " + what);
  }
  void Need(uint64_t n, const char* what) const {
    if (n > remaining() && !cap_note_.empty()) {
      BLOCKQUANT_THROW(ErrorCode::kLimit, name_ + " at byte " + std::to_string(pos_) + ": " + what + " needs " +
                                              std::to_string(n) + " bytes, past " + cap_note_);
    }
    if (n > remaining()) {
      Fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " remain");
    }
  }
  template <typename T>
  T Read(const char* what) {
    Need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // the formats are little-endian, as is every target we build for
    pos_ += sizeof(T);
    return v;
  }
  const uint8_t* Bytes(uint64_t n, const char* what) {
    Need(n, what);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  void Seek(uint64_t pos) {
    if (pos > size_) Fail("seek past the end to " + std::to_string(pos));
    pos_ = pos;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  std::string name_, cap_note_;
  uint64_t pos_ = 0;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_IO_MAPPED_FILE_H_
