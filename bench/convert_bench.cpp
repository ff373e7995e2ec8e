// Throughput of the CPU backend's conversions and dot product against the scalar code.
// Usage: bench_convert [elements]   (default 16M, i.e. well beyond the caches)
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <dsv4/cpu/backend.hpp>
#include <vector>

namespace {
template <class Fn>
double seconds_per_call(Fn&& fn) {
  fn();  // warm-up
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::chrono::duration<double> dt{};
  do {
    fn();
    ++reps;
    dt = std::chrono::steady_clock::now() - t0;
  } while (dt.count() < 0.5);
  return dt.count() / reps;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (std::size_t{1} << 24);
  std::vector<dsv4::bf16> h(n, dsv4::bf16(1.5f));
  std::vector<float> f(n, 0.25f), g(n, 2.0f);
  float sink = 0;
  const double simd = seconds_per_call([&] { dsv4::cpu::bf16_to_f32(h.data(), f.data(), n); });
  const double scalar = seconds_per_call([&] {
    for (std::size_t i = 0; i < n; ++i) f[i] = h[i].to_float();
  });
  const double dot = seconds_per_call([&] { sink += dsv4::cpu::dot(f.data(), g.data(), n); });
  const auto gbps = [&](double s, double bytes) { return bytes / s / 1e9; };
  fmt::print("SIMD target: {}\n", dsv4::cpu::simd_target_name());
  fmt::print("bf16->f32  SIMD {:.2f} GB/s   scalar {:.2f} GB/s\n", gbps(simd, 6.0 * n),
             gbps(scalar, 6.0 * n));
  fmt::print("dot f32    SIMD {:.2f} GB/s   ({:.2f} GFLOP/s)\n", gbps(dot, 8.0 * n),
             2.0 * n / dot / 1e9);
  return sink == 12345.0f ? 1 : 0;
}
