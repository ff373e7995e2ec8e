// Read-only memory-mapped file (POSIX mmap), RAII and move-only. The safetensors reader and the
// weight loaders view tensor bytes in place through it (spec/architecture.md §0: weights are read,
// never copied, at load time).
//
// A file of 2 MiB or more is mapped at a 2 MiB boundary and advised MADV_HUGEPAGE: where the
// kernel caches the file in huge folios (Linux with transparent huge pages and a file system with
// large folios, the file not already cached in small pages) its pages are then mapped as 2 MiB
// pages, one TLB entry each instead of 512: a decode reads every weight once per token, and with
// 4 KiB pages it misses the TLB once per 4 KiB of weights.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "dsv4/core/error.hpp"

namespace dsv4::io {

/// A whole file mapped read-only. An empty file maps to an empty span.
class MappedFile {
 public:
  MappedFile() = default;

  /// Maps `path`; throws dsv4::Error naming the file and the failing call on any error.
  explicit MappedFile(const std::filesystem::path& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      fail("fstat", e);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error("cannot map " + path_.string() + ": not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = map(fd);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        fail("mmap", e);
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  [[noreturn]] void fail(const char* call, int err = errno) const {
    throw Error("cannot map " + path_.string() + ": " + call + " failed: " + std::strerror(err));
  }
  static constexpr std::size_t kHuge = std::size_t{2} << 20;

  // The file at a 2 MiB boundary (reserve 2 MiB more address space than it needs, map the file
  // over the reservation's first boundary, release the rest), advised MADV_HUGEPAGE.
  void* map(int fd) const noexcept {
    if (size_ < kHuge) return ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    const std::size_t page = page_size > 0 ? static_cast<std::size_t>(page_size) : 4096;
    const std::size_t span = size_ + kHuge;
    void* r = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const auto base = reinterpret_cast<std::uintptr_t>(r);
    const std::uintptr_t at = (base + kHuge - 1) & ~static_cast<std::uintptr_t>(kHuge - 1);
    void* p = ::mmap(reinterpret_cast<void*>(at), size_, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::munmap(r, span);
      errno = e;
      return MAP_FAILED;
    }
    if (at > base) ::munmap(r, at - base);
    const std::uintptr_t end = at + (size_ + page - 1) / page * page;
    if (base + span > end) ::munmap(reinterpret_cast<void*>(end), base + span - end);
#ifdef MADV_HUGEPAGE
    ::madvise(p, size_, MADV_HUGEPAGE);  // advice: where the kernel does not take it, 4 KiB pages
#endif
    return p;
  }
  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace dsv4::io
