// CPU backend conversions and dot product against the scalar reference, on every SIMD target,
// with sizes from empty through several vectors plus ragged tails.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <dsv4/cpu/backend.hpp>
#include <limits>
#include <random>
#include <vector>

#include "cpu/simd_targets.hpp"

namespace {
constexpr std::size_t kSizes[] = {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257};
}

TEST_CASE("bf16_to_f32 is exact for every code on every SIMD target") {
  std::vector<dsv4::bf16> in(65536 + 5);
  for (std::size_t c = 0; c < in.size(); ++c) {
    in[c] = dsv4::bf16::from_bits(static_cast<std::uint16_t>(c));
  }
  dsv4::test::for_each_simd_target([&] {
    std::vector<float> out(in.size());
    dsv4::cpu::bf16_to_f32(in.data(), out.data(), in.size());
    int bad = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      bad += std::bit_cast<std::uint32_t>(out[i]) != std::bit_cast<std::uint32_t>(in[i].to_float());
    }
    CHECK(bad == 0);
  });
}

TEST_CASE("f32_to_bf16 rounds like bf16(float) on every SIMD target") {
  // every fp32 exponent, mantissas near the rounding ties, NaNs and infinities
  std::vector<float> in;
  for (std::uint32_t hi = 0; hi < 65536; hi += 3) {
    for (std::uint32_t lo : {0x0000u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) {
      in.push_back(std::bit_cast<float>(hi << 16 | lo));
    }
  }
  in.push_back(std::numeric_limits<float>::infinity());
  in.push_back(std::numeric_limits<float>::quiet_NaN());
  dsv4::test::for_each_simd_target([&] {
    for (std::size_t n : {in.size(), std::size_t{5}, std::size_t{0}}) {
      std::vector<dsv4::bf16> out(n);
      dsv4::cpu::f32_to_bf16(in.data(), out.data(), n);
      int bad = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const dsv4::bf16 want(in[i]);
        const bool both_nan = std::isnan(want.to_float()) && std::isnan(out[i].to_float());
        bad += !(both_nan || out[i].bits == want.bits);
      }
      CHECK(bad == 0);
    }
  });
}

TEST_CASE("dot agrees with a double-precision dot on every SIMD target and size") {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  dsv4::test::for_each_simd_target([&] {
    for (std::size_t n : kSizes) {
      CAPTURE(n);
      std::vector<float> a(n), b(n);
      for (auto& v : a) v = dist(rng);
      for (auto& v : b) v = dist(rng);
      double want = 0, mag = 0;
      for (std::size_t i = 0; i < n; ++i) {
        want += static_cast<double>(a[i]) * b[i];
        mag += std::abs(static_cast<double>(a[i]) * b[i]);
      }
      // fp32 accumulation in another order: error bounded by ~n·eps·Σ|a·b|
      const double budget = static_cast<double>(n + 1) * 6e-8 * mag + 1e-30;
      CHECK(std::abs(dsv4::cpu::dot(a.data(), b.data(), n) - want) <= budget);
    }
  });
}

TEST_CASE("Threads::for_range covers the range exactly once") {
  dsv4::cpu::Threads threads(2);
  CHECK(threads.size() >= 1);
  std::vector<int> hits(1001, 0);
  threads.for_range(hits.size(), 16, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) ++hits[i];
  });
  for (int h : hits) CHECK(h == 1);
}
