// An output file that appears under its name only once it is complete: the bytes go to a
// temporary file in the same directory, which commit() flushes, syncs and renames over the
// target. Destroyed without commit() (an exception, a failed run), it removes the temporary
// file, so a failed writer never leaves a partial or truncated target behind. Used by
// `dsv4 quantize` (io/gguf_quantize.hpp) and any other writer of large files.
//
// The temporary file's name carries the writer's process id, ".<name>.tmp-<pid>-XXXXXX": the next
// writer of the same target removes those whose process is gone (a run killed by SIGKILL or a
// power cut), so that a killed run leaves nothing behind for long. check_output_path() refuses,
// before any work, an output that would destroy an input or cannot be written.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dsv4/core/error.hpp"

namespace dsv4::io {

namespace detail::output {

/// Whether `p` (normalised, absolute) is `dir` or lies below it.
inline bool is_within(const std::filesystem::path& p, const std::filesystem::path& dir) {
  auto pi = p.begin();
  for (auto di = dir.begin(); di != dir.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

inline std::filesystem::path resolved(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::path r = std::filesystem::weakly_canonical(std::filesystem::absolute(p), ec);
  return ec ? std::filesystem::absolute(p).lexically_normal() : r;
}

/// The process id in a temporary file name ".<name>.tmp-<pid>-XXXXXX", 0 for the older form
/// ".<name>.tmp-XXXXXX" (no id), -1 when `file` is not a temporary file of `name`.
inline long temp_owner(std::string_view file, std::string_view name) {
  // built by appending: g++ 12 -O3 warns falsely (-Wrestrict) on "." + std::string
  std::string prefix(1, '.');
  prefix += name;
  prefix += ".tmp-";
  if (file.size() <= prefix.size() || file.substr(0, prefix.size()) != prefix) return -1;
  const std::string_view rest = file.substr(prefix.size());
  if (rest.size() == 6 && rest.find('-') == std::string_view::npos) return 0;
  const auto dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 10 || rest.size() != dash + 7)
    return -1;
  long pid = 0;
  for (const char ch : rest.substr(0, dash)) {
    if (ch < '0' || ch > '9') return -1;
    pid = pid * 10 + (ch - '0');
  }
  return pid;
}

}  // namespace detail::output

/// Removes the temporary files a killed writer of `target` left in its directory (those whose
/// process no longer runs, and those of the older name form without a process id). Returns how
/// many were removed. Errors (an unreadable directory) are ignored: the write reports them.
inline int remove_stale_temp_files(const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  const std::string name = target.filename().string();
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    const long pid = detail::output::temp_owner(file, name);
    if (pid < 0) continue;
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    if (::unlink(it->path().c_str()) == 0) ++removed;
  }
  return removed;
}

/// Checks, before any work, that writing `output` can succeed and destroys no input: it is not
/// a directory, not one of `inputs` (the same file by std::filesystem::equivalent, whatever the
/// spelling or link), does not lie inside an input that is a directory, and its directory exists
/// and is writable. Throws InputError naming the path.
inline void check_output_path(const std::filesystem::path& output,
                              const std::vector<std::filesystem::path>& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (output.empty()) throw InputError("output: no path given");
  if (fs::is_directory(output, ec))
    throw InputError(output.string() + ": the output is a directory (expected a file name)");
  const fs::path out = detail::output::resolved(output);
  for (const fs::path& in : inputs) {
    if (fs::exists(output, ec) && fs::exists(in, ec) && fs::equivalent(output, in, ec)) {
      throw InputError(output.string() + ": the output is the input " + in.string() +
                       " (writing it would destroy the input; choose another output name)");
    }
    if (fs::is_directory(in, ec) && detail::output::is_within(out, detail::output::resolved(in))) {
      throw InputError(output.string() + ": the output lies inside the input directory " +
                       in.string() + " (writing it could overwrite the input; write elsewhere)");
    }
  }
  fs::path dir = output.parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    throw InputError(output.string() + ": the output directory " + dir.string() +
                     " does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw InputError(output.string() + ": cannot write in the output directory " + dir.string() +
                     ": " + std::strerror(errno));
  }
}

/// A buffered, write-only file that replaces `target` atomically on commit().
class AtomicOutputFile {
 public:
  /// Creates the temporary file "<dir>/.<name>.tmp-<pid>-XXXXXX" next to `target`, after removing
  /// the stale ones of earlier killed runs (remove_stale_temp_files). Throws Error naming the
  /// directory when it cannot (missing directory, no permission, ...).
  explicit AtomicOutputFile(std::filesystem::path target, std::size_t buffer_bytes = 4u << 20)
      : target_(std::move(target)) {
    require(!target_.filename().empty(), "the output path names a directory");
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    // built by appending: g++ 12 -O3 warns falsely (-Wrestrict) on "." + std::string
    remove_stale_temp_files(target_);
    std::string leaf(1, '.');
    leaf += target_.filename().string();
    leaf += ".tmp-";
    leaf += std::to_string(::getpid());
    leaf += "-XXXXXX";
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

  /// Flushes, syncs and closes the temporary file and frees the buffer, leaving the rename to
  /// commit() (a writer of several files seals each when it is complete and renames them all at
  /// the end). Throws Error when any step fails; the temporary file is then removed.
  void seal() {
    if (sealed_) return;
    require(fd_ >= 0, "seal after commit or discard");
    flush();
    if (::fsync(fd_) != 0) fail("cannot sync " + temp_);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("cannot close " + temp_);
    std::vector<std::byte>().swap(buffer_);
    sealed_ = true;
  }

  /// Seals the temporary file and renames it to the target (replacing an existing file).
  /// Throws Error when any step fails; the temporary file is then removed.
  void commit() {
    require(fd_ >= 0 || (sealed_ && !temp_.empty()), "commit after commit or discard");
    seal();
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
  bool sealed_ = false;
};

}  // namespace dsv4::io
