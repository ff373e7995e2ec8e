// Prefill speed of the whole model on the reference backend and on cpu::Backend.
// Usage: bench_backend_speed MODEL.gguf [tokens=400] [threads=2] [reps=3]
// The GGUF's stored weights run as zero-copy AnyLinear views with fp32 activations (llama.cpp's
// numerics); prints the best of `reps` prefills on each backend and their ratio.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <dsv4/cpu/backend.hpp>
#include <dsv4/io/gguf.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/model.hpp>
#include <exception>
#include <memory>
#include <vector>

namespace {

template <class B>
double best_prefill(const dsv4::io::GgufModel& src, B backend, const std::vector<std::int32_t>& t,
                    int reps) {
  using M =
      dsv4::Model<B,
                  dsv4::WithLinear<dsv4::AnyLinear, dsv4::WithNumerics<dsv4::PlainFp32Numerics>>>;
  const M model = M::load(src, src.config(), std::move(backend));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto st = model.new_state();
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = model.prefill(t, st, false);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
    if (out.logits.empty()) std::abort();
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_backend_speed MODEL.gguf [tokens=400] [threads=2] [reps=3]\n");
    return 2;
  }
  const std::size_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 400;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  const dsv4::io::GgufModel src(std::make_shared<const dsv4::io::GgufFile>(argv[1]));
  const auto vocab = static_cast<std::size_t>(src.config().vocab_size);
  std::vector<std::int32_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::int32_t>((i * 7919 + 1) % vocab);
  const double ref = best_prefill(src, dsv4::ReferenceBackend{}, tokens, reps);
  const double cpu = best_prefill(src, dsv4::cpu::Backend(threads), tokens, reps);
  fmt::print(
      "{} tokens, best of {}: reference {:.3f} s ({:.0f} tok/s), cpu ({} threads, {}) "
      "{:.3f} s ({:.0f} tok/s), speed-up {:.2f}x\n",
      n, reps, ref, static_cast<double>(n) / ref, threads, dsv4::cpu::simd_target_name(), cpu,
      static_cast<double>(n) / cpu, ref / cpu);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_backend_speed: {}\n", e.what());
  return 1;
}
