// Read-bandwidth probe: the roofline of decode (the active weights are read once per token).
// Sums a buffer much larger than the last-level cache with 1..T threads, each thread its own
// contiguous slice (AVX2 loads where the CPU has them: read_probe.hpp), and prints the best of
// several passes in GB/s (1e9 bytes per second).
//
//   bench_bandwidth [MiB = 1024] [max threads = hardware threads] [passes = 5]
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "read_probe.hpp"

namespace {}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned max_threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : hw;
  const int passes = argc > 3 ? std::atoi(argv[3]) : 5;
  if (mib == 0 || max_threads == 0 || passes <= 0) {
    fmt::print(stderr, "usage: bench_bandwidth [MiB] [max threads] [passes]\n");
    return 2;
  }
  const std::size_t n = mib * (std::size_t{1} << 20) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> buf(n);
  for (std::size_t i = 0; i < n; ++i) buf[i] = i;  // touch every page

  fmt::print("| threads | buffer | read GB/s (best of {}) |\n|---:|---:|---:|\n", passes);
  std::uint64_t sink = 0;
  for (unsigned t = 1; t <= max_threads; ++t) {
    double best = 0.0;
    for (int pass = 0; pass < passes; ++pass) {
      std::vector<std::uint64_t> sums(t);
      std::vector<std::thread> pool;
      const auto t0 = std::chrono::steady_clock::now();
      for (unsigned k = 0; k < t; ++k) {
        const std::size_t a = n * k / t, b = n * (k + 1) / t;
        pool.emplace_back(
            [&, k, a, b] { sums[k] = dsv4::bench::sum_words(buf.data() + a, b - a); });
      }
      for (auto& th : pool) th.join();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto v : sums) sink += v;
      best = std::max(best, static_cast<double>(n * sizeof(std::uint64_t)) / s / 1e9);
    }
    fmt::print("| {} | {} MiB | {:.1f} |\n", t, mib, best);
  }
  return sink == 42 ? 1 : 0;  // keeps the sums alive
}
