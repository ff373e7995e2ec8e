// A caller-sized oneTBB arena (STYLE.md §1.7): the application owns the thread count, the library
// never touches tbb::global_control.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

namespace dsv4::cpu {

class Threads {
 public:
  /// `n` worker threads; 0 means as many as the machine has. Every thread joins the arena once
  /// here (waiting up to 200 ms for all that can run at once), so that the per-thread state oneTBB
  /// allocates on a thread's first task exists before the first model call, whatever the
  /// scheduling.
  explicit Threads(int n = 0) : arena_(n > 0 ? n : tbb::task_arena::automatic) {
    // (no more than the process lets run at once: an arena larger than the machine never fills)
    const int want =
        std::min<int>(arena_.max_concurrency(), static_cast<int>(tbb::global_control::active_value(
                                                    tbb::global_control::max_allowed_parallelism)));
    std::atomic<int> arrived{0};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    arena_.execute([&] {
      tbb::parallel_for(
          0, want,
          [&](int) {
            arrived.fetch_add(1);
            while (arrived.load() < want && std::chrono::steady_clock::now() < deadline)
              std::this_thread::yield();
          },
          tbb::static_partitioner{});
    });
  }

  int size() const { return arena_.max_concurrency(); }

  /// Calls fn(begin, end) on disjoint ranges covering [0, n), each at least `grain` long. Each
  /// output element is written by one thread, so results do not depend on the thread count.
  template <class Fn>
  void for_range(std::size_t n, std::size_t grain, Fn&& fn) {
    arena_.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, n, grain > 0 ? grain : 1),
          [&](const tbb::blocked_range<std::size_t>& r) { fn(r.begin(), r.end()); },
          tbb::static_partitioner{});
    });
  }

  /// Calls fn(i) for every i < n as independent tasks (dynamically balanced).
  template <class Fn>
  void for_each(std::size_t n, Fn&& fn) {
    arena_.execute([&] { tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) { fn(i); }); });
  }

 private:
  tbb::task_arena arena_;
};

}  // namespace dsv4::cpu
