// Activation scratch memory that is allocated once and then reused.
//
// `ScratchBuffer<T>` is what a layer or backend op holds its per-call activations in: a
// zero-filled, fixed-size contiguous array of a trivial type (the part of std::vector's interface
// the ops use), whose memory comes from a process-wide pool of idle blocks and goes back there
// when the buffer ends. Blocks come in power-of-two sizes, so once a model has run a shape (a
// decoded token after the first of a sequence, a prefill chunk of a size seen before) it runs it
// again without allocating: the pool holds the high-water mark of what was alive at once. Any
// thread may take and give back blocks (oneTBB tasks do); the pool is guarded by one mutex, held
// only to pop or push a pointer.
//
// `scratch_pool_bytes()` reports what the pool holds (idle and in use), `scratch_peak_bytes()` the
// most that buffers held at once (the workspace's high-water mark); `release_scratch()` gives the
// idle blocks back to the system (after a long prefill, say).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <span>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define DSV4_SCRATCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DSV4_SCRATCH_ASAN 1
#endif
#endif
#ifdef DSV4_SCRATCH_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace dsv4 {

namespace detail::scratch {

/// Under AddressSanitizer the bytes of a block past a buffer's size, and idle blocks, are
/// poisoned, so an overrun or a use after the buffer ended is reported as with the system
/// allocator.
inline void expose(const void* block, std::size_t used, std::size_t block_bytes) noexcept {
#ifdef DSV4_SCRATCH_ASAN
  ASAN_UNPOISON_MEMORY_REGION(block, used);
  ASAN_POISON_MEMORY_REGION(static_cast<const std::byte*>(block) + used, block_bytes - used);
#else
  (void)block;
  (void)used;
  (void)block_bytes;
#endif
}

class Pool {
 public:
  static Pool& instance() {
    static Pool* const pool = new Pool;  // never destroyed: buffers may outlive static objects
    return *pool;
  }

  /// A block of at least `bytes` bytes (64-byte aligned) and its size class.
  std::byte* take(std::size_t bytes, unsigned& cls) {
    cls = size_class(bytes);
    const std::size_t size = block_bytes(cls);
    {
      const std::lock_guard lock(mutex_);
      auto& idle = idle_[cls];
      if (!idle.empty()) {
        std::byte* p = idle.back();
        idle.pop_back();
        note_taken(size);
        return p;
      }
    }
    // A small class comes in a batch of blocks, enough for every hardware thread to hold a few
    // at once: the blocks tiles take inside parallel regions, in whatever number the scheduling
    // happens to run at once, are then all there after a class's first use (a warm sequence
    // never allocates because threads overlapped differently than before).
    const std::size_t batch = batch_blocks(size);
    std::array<std::byte*, kMaxBatch> got{};
    std::size_t n = 0;
    try {
      for (; n < batch; ++n) got[n] = allocate(size);
      const std::lock_guard lock(mutex_);
      auto& idle = idle_[cls];
      count_[cls] += batch;
      idle.reserve(count_[cls]);  // give() then never grows the list
      for (std::size_t i = 1; i < batch; ++i) {
        expose(got[i], 0, size);  // idle: poisoned under AddressSanitizer
        idle.push_back(got[i]);
      }
      held_ += batch * size;
      note_taken(size);
      return got[0];
    } catch (...) {
      for (std::size_t i = 0; i < n; ++i) ::operator delete (got[i], std::align_val_t{64});
      if (n == batch) {
        const std::lock_guard lock(mutex_);
        count_[cls] -= batch;
      }
      throw;
    }
  }

  void give(std::byte* p, unsigned cls) noexcept {
    expose(p, 0, block_bytes(cls));
    const std::lock_guard lock(mutex_);
    in_use_ -= block_bytes(cls);
    try {
      idle_[cls].push_back(p);
      return;
    } catch (...) {  // no room to remember it: give it back to the system
      held_ -= block_bytes(cls);
      --count_[cls];
    }
    ::operator delete (p, std::align_val_t{64});
  }

  std::size_t held_bytes() {
    const std::lock_guard lock(mutex_);
    return held_;
  }

  std::size_t peak_in_use_bytes() {
    const std::lock_guard lock(mutex_);
    return peak_in_use_;
  }

  void release() noexcept {
    const std::lock_guard lock(mutex_);
    for (unsigned c = 0; c < kClasses; ++c) {
      for (std::byte* p : idle_[c]) ::operator delete (p, std::align_val_t{64});
      held_ -= idle_[c].size() * block_bytes(c);
      count_[c] -= idle_[c].size();
      idle_[c].clear();
      idle_[c].shrink_to_fit();
    }
  }

  static constexpr unsigned kMinShift = 6;  // 64-byte blocks at least
  static constexpr unsigned kClasses = 64 - kMinShift;

  static std::size_t block_bytes(unsigned cls) noexcept {
    return std::size_t{1} << (cls + kMinShift);
  }

 private:
  void note_taken(std::size_t size) noexcept {  // (mutex_ held)
    in_use_ += size;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
  }

  static constexpr std::size_t kMaxBatch = 64;
  static constexpr std::size_t kBatchBytes = std::size_t{1} << 20;  // at most this per batch

  static std::byte* allocate(std::size_t size) {
    return static_cast<std::byte*>(::operator new (size, std::align_val_t{64}));
  }

  /// Blocks allocated at once for a class of `size` bytes: 4 per hardware thread (at most
  /// kMaxBatch and kBatchBytes in all), one for the large classes.
  static std::size_t batch_blocks(std::size_t size) noexcept {
    static const std::size_t per_class =
        std::min<std::size_t>(kMaxBatch, 4 * std::max(1u, std::thread::hardware_concurrency()));
    return std::clamp<std::size_t>(kBatchBytes / size, 1, per_class);
  }

  static unsigned size_class(std::size_t bytes) noexcept {
    const std::size_t b = std::max<std::size_t>(bytes, std::size_t{1} << kMinShift);
    return static_cast<unsigned>(std::bit_width(b - 1)) - kMinShift;
  }
  std::mutex mutex_;
  std::array<std::vector<std::byte*>, kClasses> idle_;
  std::array<std::size_t, kClasses> count_{};  ///< blocks of each class, idle or in use
  std::size_t held_ = 0;
  std::size_t in_use_ = 0;       ///< bytes of the blocks buffers hold now
  std::size_t peak_in_use_ = 0;  ///< the most they held at once
};

}  // namespace detail::scratch

/// Bytes the scratch pool holds (blocks idle or in use).
inline std::size_t scratch_pool_bytes() { return detail::scratch::Pool::instance().held_bytes(); }

/// The most bytes of blocks that buffers held at once since the process started: the
/// workspace's high-water mark (blocks are powers of two).
inline std::size_t scratch_peak_bytes() {
  return detail::scratch::Pool::instance().peak_in_use_bytes();
}

/// Gives the scratch pool's idle blocks back to the system; the next calls allocate again.
inline void release_scratch() noexcept { detail::scratch::Pool::instance().release(); }

/// A zero-filled array of n values of a trivial type T in pooled memory (see the file comment).
template <class T>
class ScratchBuffer {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "ScratchBuffer holds trivial values only");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = const T*;

  ScratchBuffer() noexcept = default;
  /// n zero-filled values.
  explicit ScratchBuffer(std::size_t n) { assign(n, T{}); }
  ScratchBuffer(std::size_t n, const T& value) { assign(n, value); }
  /// A copy of the values of `src`.
  explicit ScratchBuffer(std::span<const T> src) {
    reserve_exact(src.size());
    size_ = src.size();
    expose_size();
    if (size_ != 0) std::memcpy(static_cast<void*>(data_), src.data(), size_ * sizeof(T));
  }
  ScratchBuffer(const ScratchBuffer& o) : ScratchBuffer(std::span<const T>(o.data(), o.size())) {}
  ScratchBuffer(ScratchBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)),
        cls_(o.cls_) {}
  ScratchBuffer& operator=(const ScratchBuffer& o) {
    if (this != &o) {
      reserve_exact(o.size_);
      size_ = o.size_;
      expose_size();
      if (size_ != 0) std::memcpy(static_cast<void*>(data_), o.data_, size_ * sizeof(T));
    }
    return *this;
  }
  ScratchBuffer& operator=(ScratchBuffer&& o) noexcept {
    if (this != &o) {
      free();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
      cls_ = o.cls_;
    }
    return *this;
  }
  ~ScratchBuffer() { free(); }

  /// n copies of value (the block is kept when it is large enough).
  void assign(std::size_t n, const T& value) {
    reserve_exact(n);
    size_ = n;
    expose_size();
    std::fill_n(data_, n, value);
  }
  /// n values: the first min(n, size()) kept, the rest zero-filled.
  void resize(std::size_t n) {
    if (n > capacity_) {
      ScratchBuffer grown(n);
      if (size_ != 0) std::memcpy(static_cast<void*>(grown.data_), data_, size_ * sizeof(T));
      *this = std::move(grown);
      return;
    }
    const std::size_t old = size_;
    size_ = n;
    expose_size();
    if (n > old) std::fill(data_ + old, data_ + n, T{});
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }

 private:
  void expose_size() noexcept {
    if (data_ != nullptr)
      detail::scratch::expose(data_, size_ * sizeof(T), detail::scratch::Pool::block_bytes(cls_));
  }
  void reserve_exact(std::size_t n) {
    if (n <= capacity_) return;
    // as std::vector's length_error: a size whose bytes do not fit the pool's classes
    if (n > (std::size_t{1} << 62) / sizeof(T)) throw std::length_error("ScratchBuffer: too large");
    free();
    unsigned cls = 0;
    data_ = reinterpret_cast<T*>(detail::scratch::Pool::instance().take(n * sizeof(T), cls));
    capacity_ = detail::scratch::Pool::block_bytes(cls) / sizeof(T);
    cls_ = cls;
  }
  void free() noexcept {
    if (data_ != nullptr)
      detail::scratch::Pool::instance().give(reinterpret_cast<std::byte*>(data_), cls_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  unsigned cls_ = 0;
};

}  // namespace dsv4
