// A caller-sized oneTBB arena (STYLE.md §1.7): the application owns the thread count, the library
// never touches tbb::global_control.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <cstddef>

namespace dsv4::cpu {

class Threads {
 public:
  /// `n` worker threads; 0 means as many as the machine has.
  explicit Threads(int n = 0) : arena_(n > 0 ? n : tbb::task_arena::automatic) {}

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
