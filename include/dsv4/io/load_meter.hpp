// Progress of a model load: a tensor source (GgufModel, Checkpoint) with a meter counts the bytes
// of each tensor the first time the model being built asks for it, and reports the running total
// against the bytes of all its tensors. Tensors a backend maps rather than copies count when their
// view is made, so the count runs ahead of the disk reads on a cold file; the copies and
// conversions, which take the time of a load, are counted as they start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <utility>

namespace dsv4::io {

class LoadMeter {
 public:
  /// done and total bytes; called under the meter's lock (calls never overlap).
  using Callback = std::function<void(std::uint64_t done, std::uint64_t total)>;

  LoadMeter(std::uint64_t total, Callback cb) : total_(total), cb_(std::move(cb)) {}

  /// The tensor identified by `key` (a stable address of the source's entry) is read: its bytes
  /// count the first time.
  void read(const void* key, std::uint64_t bytes) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!seen_.insert(key).second) return;
    done_ += bytes;
    if (cb_) cb_(done_, total_);
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const void*> seen_;
  std::uint64_t done_ = 0;
  std::uint64_t total_;
  Callback cb_;
};

}  // namespace dsv4::io
