// Kernel benchmark of the CPU backend's linear layers, one weight format at a time:
//  * GEMV (one activation row, the decode case) in GB/s of weight bytes read, against the read
//    bandwidth of the same buffer size measured in the same run (the decode roofline);
//  * GEMM (512 activation rows, the prefill case) in GFLOP/s (2·rows·in·out per call), against
//    the fp32 FMA peak of the machine measured in the same run (kernels::fma_probe, a
//    register-only multiply-add loop on the backend's SIMD target; quantized GEMMs, whose integer
//    multiply-adds are not fp32 FMAs, can exceed it); where the packed tile GEMM ran (AVX-512
//    VNNI, kernels::b32_tile / kq_tile), also the same GEMM on the row kernels it replaces.
//
//   bench_kernels [weight MiB = 128] [threads = 1,2] [seconds per measurement = 0.5]
//                 [input width = 4096] [formats = all, comma-separated names]
//
// The input width (a multiple of 256) sets the weight rows' length: the model's rows are often
// short (1,024 or 256 values), where per-row costs show.
//
// Weights: rows quantized from seeded Gaussian values, repeated to fill the buffer (the values
// do not change the speed). Prints one markdown table.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <dsv4/cpu/backend.hpp>
#include <dsv4/cpu/kernels.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/formats/registry.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "read_probe.hpp"

namespace {

namespace d = dsv4;
using Clock = std::chrono::steady_clock;

std::vector<float> gaussian(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Calls fn() until `seconds` have passed (at least 3 times); returns the best seconds per call.
template <class Fn>
double best_time(double seconds, Fn&& fn) {
  fn();  // warm-up
  double best = 1e30;
  const auto start = Clock::now();
  int n = 0;
  while (n < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    ++n;
  }
  return best;
}

// Read bandwidth of a `bytes` buffer on `threads` threads, GB/s (best pass).
double read_bandwidth(std::size_t bytes, int threads, double seconds) {
  const std::size_t n = bytes / sizeof(std::uint64_t);
  std::vector<std::uint64_t> buf(n);
  for (std::size_t i = 0; i < n; ++i) buf[i] = i;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
  const double t = best_time(seconds, [&] {
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k) {
      pool.emplace_back([&, k] {
        const std::size_t a = n * static_cast<std::size_t>(k) / static_cast<std::size_t>(threads);
        const std::size_t b =
            n * static_cast<std::size_t>(k + 1) / static_cast<std::size_t>(threads);
        const std::uint64_t tot = dsv4::bench::sum_words(buf.data() + a, b - a);
        sums[static_cast<std::size_t>(k)] = tot;
      });
    }
    for (auto& th : pool) th.join();
  });
  std::uint64_t sink = 0;
  for (const auto s : sums) sink += s;
  if (sink == 42) fmt::print(stderr, " ");
  return static_cast<double>(n * sizeof(std::uint64_t)) / t / 1e9;
}

// fp32 FMA peak on `threads` threads, GFLOP/s: the backend's own SIMD target running
// independent multiply-add chains (kernels::fma_probe).
double fma_peak(int threads, double seconds) {
  constexpr std::size_t kIters = std::size_t{1} << 22;
  std::vector<double> flops(static_cast<std::size_t>(threads));
  const double t = best_time(seconds, [&] {
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k) {
      pool.emplace_back(
          [&, k] { flops[static_cast<std::size_t>(k)] = d::cpu::kernels::fma_probe(kIters); });
    }
    for (auto& th : pool) th.join();
  });
  double total = 0;
  for (const double f : flops) total += f;
  return total / t / 1e9;
}

struct Row {
  std::string format;
  double bytes_per_weight = 0;
  std::vector<double> gemv_gbs, gemm_gflops, gemm_rows_gflops;
};

template <class F>
Row measure(std::size_t mib, const std::vector<int>& threads, double seconds, std::size_t in) {
  using L = d::Linear<F, d::PartnerDot>;
  constexpr std::size_t seed_rows = 128;  // a whole band of FP8_B128's 128x128 scale tiles
  // bytes of a row as stored (planar formats: codes plus scales; FP8_B128's per 128 rows)
  std::size_t row_bytes = in / F::block_elems * sizeof(typename F::block_type);
  if constexpr (L::planar) {
    row_bytes = F::codes_per_row(in) * sizeof(typename L::code_type) +
                F::scale_cols(in) * sizeof(typename L::scale_type) / F::block_rows;
  }
  const std::size_t out = std::max<std::size_t>(
      seed_rows, mib * (std::size_t{1} << 20) / row_bytes / seed_rows * seed_rows);
  const auto seed =
      L::quantize(d::ConstView2<float>(gaussian(seed_rows * in, 1).data(), seed_rows, in));
  // the GEMM: 512 rows against the first 1024 output rows (the weight stays in cache)
  constexpr std::size_t gemm_rows = 512, gemm_out = 1024;
  const auto [w, wg] = [&] {
    if constexpr (L::planar) {
      std::vector<typename L::code_type> codes;
      std::vector<typename L::scale_type> scales;
      for (std::size_t r = 0; r < out; r += seed_rows) {
        codes.insert(codes.end(), seed.codes().begin(), seed.codes().end());
        scales.insert(scales.end(), seed.scales().begin(), seed.scales().end());
      }
      L big(std::move(codes), std::move(scales), out, in);
      L first =
          L::view(big.codes().first(gemm_out * F::codes_per_row(in)),
                  big.scales().first(F::scale_rows(gemm_out) * F::scale_cols(in)), gemm_out, in);
      return std::pair{std::move(big), std::move(first)};
    } else {
      std::vector<typename F::block_type> blocks;
      blocks.reserve(out * (in / F::block_elems));
      for (std::size_t r = 0; r < out; r += seed_rows)
        blocks.insert(blocks.end(), seed.blocks().begin(), seed.blocks().end());
      L big(std::move(blocks), out, in);
      L first = L::view(big.blocks().first(gemm_out * (in / F::block_elems)), gemm_out, in);
      return std::pair{std::move(big), std::move(first)};
    }
  }();
  const auto x1 = gaussian(in, 2);
  const auto xg = gaussian(gemm_rows * in, 3);
  std::vector<float> y1(out), yg(gemm_rows * gemm_out);
  Row row;
  row.format = std::string(F::name);
  row.bytes_per_weight = static_cast<double>(row_bytes) / in;
  for (const int t : threads) {
    const d::cpu::Backend b(t);
    const double tv = best_time(seconds, [&] {
      b.linear<d::PlainFp32Numerics>(w, d::ConstView2<float>(x1.data(), 1, in),
                                     d::View2<float>(y1.data(), 1, out));
    });
    row.gemv_gbs.push_back(static_cast<double>(out * row_bytes) / tv / 1e9);
    const double tg = best_time(seconds, [&] {
      b.linear<d::PlainFp32Numerics>(wg, d::ConstView2<float>(xg.data(), gemm_rows, in),
                                     d::View2<float>(yg.data(), gemm_rows, gemm_out));
    });
    row.gemm_gflops.push_back(2.0 * gemm_rows * in * gemm_out / tg / 1e9);
    // the same GEMM on the row kernels, where the packed tile kernels ran
    double rows_gflops = 0;
    if (d::cpu::kernels::packed_gemm_active()) {
      d::cpu::kernels::allow_packed_gemm(false);
      const double tr = best_time(seconds, [&] {
        b.linear<d::PlainFp32Numerics>(wg, d::ConstView2<float>(xg.data(), gemm_rows, in),
                                       d::View2<float>(yg.data(), gemm_rows, gemm_out));
      });
      d::cpu::kernels::allow_packed_gemm(true);
      rows_gflops = 2.0 * gemm_rows * in * gemm_out / tr / 1e9;
    }
    row.gemm_rows_gflops.push_back(rows_gflops);
  }
  return row;
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::atoi(item.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 128;
  const std::vector<int> threads = parse_threads(argc > 2 ? argv[2] : "1,2");
  const double seconds = argc > 3 ? std::atof(argv[3]) : 0.5;
  const std::size_t in = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 4096;
  std::vector<std::string> wanted;
  if (argc > 5) {
    std::stringstream ss(argv[5]);
    std::string item;
    while (std::getline(ss, item, ',')) wanted.push_back(item);
  }
  if (mib == 0 || threads.empty() || in == 0 || in % 256 != 0 ||
      std::any_of(threads.begin(), threads.end(), [](int t) { return t <= 0; }) || !(seconds > 0)) {
    fmt::print(
        stderr,
        "usage: bench_kernels [weight MiB] [threads, comma-separated] [seconds] [input width, "
        "a multiple of 256] [formats, comma-separated]\n");
    return 2;
  }
  fmt::print(stderr, "SIMD target: {}\n", d::cpu::simd_target_name());
  std::vector<double> bw, peak;
  for (const int t : threads) {
    bw.push_back(read_bandwidth(mib << 20, t, seconds));
    peak.push_back(fma_peak(t, seconds));
  }
  // every format, in the table's order
  const auto each_format = [](auto&& fn) {
    fn.template operator()<d::F32>();
    fn.template operator()<d::BF16>();
    fn.template operator()<d::F16>();
    fn.template operator()<d::Q8_0>();
    fn.template operator()<d::Q4_0>();
    fn.template operator()<d::Q4_1>();
    fn.template operator()<d::Q5_0>();
    fn.template operator()<d::Q5_1>();
    fn.template operator()<d::IQ4_NL>();
    fn.template operator()<d::IQ4_XS>();
    fn.template operator()<d::MXFP4>();
    fn.template operator()<d::Q2_K>();
    fn.template operator()<d::Q3_K>();
    fn.template operator()<d::Q4_K>();
    fn.template operator()<d::Q5_K>();
    fn.template operator()<d::Q6_K>();
    fn.template operator()<d::Fp8B128>();
    fn.template operator()<d::Fp4G32>();
  };
  std::vector<std::string> known;
  each_format([&]<class F>() { known.emplace_back(F::name); });
  for (const auto& name : wanted) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      fmt::print(stderr, "bench_kernels: no weight format named '{}'\n", name);
      return 2;
    }
  }
  std::vector<Row> rows;
  each_format([&]<class F>() {
    const std::string name{F::name};
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), name) != wanted.end())
      rows.push_back(measure<F>(mib, threads, seconds, in));
  });
  for (std::size_t i = 0; i < threads.size(); ++i) {
    fmt::print("\n{} thread(s): read bandwidth {:.1f} GB/s, fp32 FMA peak {:.0f} GFLOP/s\n\n",
               threads[i], bw[i], peak[i]);
    fmt::print(
        "| format | bytes/weight | GEMV GB/s | % of bandwidth | GEMM GFLOP/s | % of FMA peak | "
        "GEMM on the row kernels |\n");
    fmt::print("|---|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& r : rows) {
      const std::string rows_col =
          r.gemm_rows_gflops[i] > 0 ? fmt::format("{:.1f}", r.gemm_rows_gflops[i]) : "";
      fmt::print("| {} | {:.4f} | {:.1f} | {:.0f} % | {:.1f} | {:.0f} % | {} |\n", r.format,
                 r.bytes_per_weight, r.gemv_gbs[i], 100.0 * r.gemv_gbs[i] / bw[i], r.gemm_gflops[i],
                 100.0 * r.gemm_gflops[i] / peak[i], rows_col);
    }
  }
  return 0;
}
