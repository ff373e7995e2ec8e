// Where a sequence's long-lived buffers live (KV caches, compressor states, index keys).
//
// A host backend keeps them in page-aligned host memory (`host_memory()`). A backend whose memory
// the host cannot touch (a GPU, or the tests' device-shaped backend) hands the model its own
// `DeviceMemory` (`Backend::state_memory()`), and every buffer of a state is then allocated,
// filled and copied through it: the model never writes a cache itself, the backend's ops do.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

namespace dsv4 {

/// Allocation, fill and copy of a backend's memory (a GPU's cudaMalloc / cudaMemset /
/// cudaMemcpy). Blocks are at least 4,096-byte aligned.
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual float* allocate(std::size_t n) = 0;                          ///< n floats, unset
  virtual void deallocate(float* p, std::size_t n) noexcept = 0;       ///< a block of allocate(n)
  virtual void fill(float* p, std::size_t n, float value) = 0;         ///< p[0, n) = value
  virtual void copy(float* dst, const float* src, std::size_t n) = 0;  ///< within this memory
};

/// Page-aligned host memory (the host backends' DeviceMemory). Rows of a power-of-two byte size up
/// to 4 KiB then never straddle a page or a cache line: with std::vector's 16-byte alignment every
/// 64-byte load of a 512-byte index key crossed two lines and every eighth row two pages (the
/// indexer's q·key dots over 8,192 keys from memory took 0.71 ms, page-aligned 0.59 ms).
class HostMemory final : public DeviceMemory {
 public:
  float* allocate(std::size_t n) override {
    if (n > static_cast<std::size_t>(-1) / sizeof(float)) throw std::bad_array_new_length();
    return static_cast<float*>(
        ::operator new (std::max<std::size_t>(n, 1) * sizeof(float), std::align_val_t{4096}));
  }
  void deallocate(float* p, std::size_t) noexcept override {
    ::operator delete (p, std::align_val_t{4096});
  }
  void fill(float* p, std::size_t n, float value) override { std::fill_n(p, n, value); }
  void copy(float* dst, const float* src, std::size_t n) override {
    if (n != 0) std::memcpy(dst, src, n * sizeof(float));
  }
};

/// The process's host memory.
inline DeviceMemory& host_memory() noexcept {
  static HostMemory memory;
  return memory;
}

/// n floats in a DeviceMemory, owned: filled with a value on creation, copied through the memory
/// (a copy lives in the same memory). The host may dereference data() only when the memory is
/// host memory.
class StateBuffer {
 public:
  StateBuffer() = default;
  StateBuffer(std::size_t n, float value, DeviceMemory* memory = nullptr)
      : mem_(memory != nullptr ? memory : &host_memory()), n_(n) {
    if (n_ == 0) return;
    p_ = mem_->allocate(n_);
    try {
      mem_->fill(p_, n_, value);
    } catch (...) {
      mem_->deallocate(p_, n_);
      throw;
    }
  }
  StateBuffer(const StateBuffer& o) : mem_(o.mem_), n_(o.n_) {
    if (n_ == 0) return;
    p_ = mem_->allocate(n_);
    try {
      mem_->copy(p_, o.p_, n_);
    } catch (...) {
      mem_->deallocate(p_, n_);
      throw;
    }
  }
  StateBuffer(StateBuffer&& o) noexcept
      : mem_(o.mem_), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  StateBuffer& operator=(StateBuffer o) noexcept {
    std::swap(mem_, o.mem_);
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~StateBuffer() {
    if (p_ != nullptr) mem_->deallocate(p_, n_);
  }

  float* data() noexcept { return p_; }
  const float* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  DeviceMemory* memory() const noexcept { return mem_; }
  /// Every value set to `value`, through the memory.
  void fill(float value) {
    if (n_ != 0) mem_->fill(p_, n_, value);
  }

 private:
  DeviceMemory* mem_ = &host_memory();
  float* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace dsv4
