// An output file that appears under its name only once it is complete: the bytes go to a
// temporary file in the same directory, which commit() flushes, syncs and renames over the
// target. Destroyed without commit() (an exception, a failed run), it removes the temporary
// file, so a failed writer never leaves a partial or truncated target behind. Used by
// `dsv4 quantize` (io/gguf_quantize.hpp) and any other writer of large files.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dsv4/core/error.hpp"

namespace dsv4::io {

/// A buffered, write-only file that replaces `target` atomically on commit().
class AtomicOutputFile {
 public:
  /// Creates the temporary file "<dir>/.<name>.tmp-XXXXXX" next to `target`. Throws Error
  /// naming the directory when it cannot (missing directory, no permission, ...).
  explicit AtomicOutputFile(std::filesystem::path target, std::size_t buffer_bytes = 4u << 20)
      : target_(std::move(target)) {
    require(!target_.filename().empty(), "the output path names a directory");
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    // built by appending: g++ 12 -O3 warns falsely (-Wrestrict) on "." + std::string
    std::string leaf(1, '.');
    leaf += target_.filename().string();
    leaf += ".tmp-XXXXXX";
    std::string tmpl = (dir / leaf).string();
    fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd_ < 0) fail("cannot create a temporary file in " + dir.string());
    temp_ = tmpl;
    // mkstemp makes the file 0600; give it the permissions of a normally created file
    ::fchmod(fd_, 0644);
    buffer_.reserve(buffer_bytes);
  }

  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  /// Removes the temporary file unless commit() succeeded.
  ~AtomicOutputFile() { discard(); }

  const std::filesystem::path& target() const noexcept { return target_; }
  /// Path of the temporary file (empty once committed or discarded).
  const std::string& temp_path() const noexcept { return temp_; }
  /// Bytes written so far.
  std::uint64_t size() const noexcept { return written_ + buffer_.size(); }

  /// Appends bytes (buffered). Throws Error on a failed write (disk full, ...).
  void write(std::span<const std::byte> data) {
    require(fd_ >= 0, "write after commit or discard");
    if (buffer_.size() + data.size() > buffer_.capacity()) flush();
    if (data.size() >= buffer_.capacity()) {
      write_all(data);
    } else {
      buffer_.insert(buffer_.end(), data.begin(), data.end());
    }
  }

  /// Flushes, syncs and closes the temporary file and renames it to the target (replacing an
  /// existing file). Throws Error when any step fails; the temporary file is then removed.
  void commit() {
    require(fd_ >= 0, "commit after commit or discard");
    flush();
    if (::fsync(fd_) != 0) fail("cannot sync " + temp_);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("cannot close " + temp_);
    if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
      fail("cannot rename " + temp_ + " to " + target_.string());
    }
    temp_.clear();
  }

  /// Closes and removes the temporary file (what the destructor does without commit()).
  void discard() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
    buffer_.clear();
  }

 private:
  // An output problem is a plain Error (I/O), not a FormatError of some input.
  static void require(bool ok, const char* what) {
    if (!ok) throw Error(std::string("output file: ") + what);
  }

  [[noreturn]] void fail(const std::string& what) {
    const int e = errno;
    const std::string msg =
        what + ": " + std::strerror(e) + " (output " + target_.string() + " not written)";
    discard();
    throw Error(msg);
  }

  void flush() {
    write_all(buffer_);
    buffer_.clear();
  }

  void write_all(std::span<const std::byte> data) {
    const std::byte* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      const ::ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("cannot write " + temp_);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
      written_ += static_cast<std::uint64_t>(n);
    }
  }

  std::filesystem::path target_;
  std::string temp_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
  std::uint64_t written_ = 0;
};

}  // namespace dsv4::io
