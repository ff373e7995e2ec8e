// CUDA backend: the native-format linear kernels (FP8_B128 and FP4_G32 weights, FP8_ACT128
// activations) give the formats' own dots bit for bit. Skips (exit 77) only when the machine has
// no GPU or no CUDA driver.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dsv4/core/tensor.hpp>
#include <dsv4/cuda/backend.hpp>
#include <dsv4/formats/native.hpp>
#include <random>
#include <vector>

#include "cuda_main.hpp"

namespace d = dsv4;

namespace {

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  // some tiny values, so that subnormal E4M3 codes occur
  for (std::size_t i = 0; i < n; i += 11) v[i] *= 1e-4f;
  return v;
}

std::vector<d::Fp8Act128::block_type> quantize_rows(const std::vector<float>& x, std::size_t rows,
                                                    std::size_t in) {
  std::vector<d::Fp8Act128::block_type> xq(rows * (in / 128));
  for (std::size_t i = 0; i < xq.size(); ++i) d::Fp8Act128::quantize(x.data() + 128 * i, xq[i]);
  return xq;
}

template <class F>
std::vector<float> host_dots(const typename F::code_type* codes, const d::ue8m0* scales,
                             std::size_t out, std::size_t in,
                             const std::vector<d::Fp8Act128::block_type>& xq, std::size_t rows) {
  const std::size_t nb = in / F::block_elems;
  std::vector<typename F::block_type> row(nb);
  std::vector<float> y(rows * out);
  for (std::size_t o = 0; o < out; ++o) {
    for (std::size_t b = 0; b < nb; ++b) {
      F::load_block(codes + o * F::codes_per_row(in) + b * F::block_codes,
                    scales + (o / F::block_rows) * F::scale_cols(in) + b, row[b]);
    }
    for (std::size_t r = 0; r < rows; ++r)
      y[r * out + o] = F::dot(row.data(), xq.data() + r * (in / 128), nb);
  }
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// 200 outputs (two bands of FP8_B128's 128-row scale tiles, the second partial), 5 activation
// blocks, 3 rows
constexpr std::size_t kOut = 200, kIn = 128 * 5, kRows = 3;

}  // namespace

TEST_CASE("FP8_B128 linear on the device: Fp8B128::dot bit for bit") {
  const auto w = random_values(kOut * kIn, 1, 1.0f);
  std::vector<d::fp8_e4m3> codes(kOut * kIn);
  std::vector<d::ue8m0> scales(d::Fp8B128::scale_rows(kOut) * d::Fp8B128::scale_cols(kIn));
  d::Fp8B128::quantize_matrix(d::ConstView2<float>(w.data(), kOut, kIn), codes.data(),
                              scales.data());
  const auto xq = quantize_rows(random_values(kRows * kIn, 2, 3.0f), kRows, kIn);
  const auto want = host_dots<d::Fp8B128>(codes.data(), scales.data(), kOut, kIn, xq, kRows);
  std::vector<float> got(kRows * kOut);
  d::cuda::fp8_b128_linear(codes.data(), scales.data(), kOut, kIn, xq.data(), kRows, got.data());
  CHECK(same_bits(got, want));
}

TEST_CASE("FP4_G32 linear on the device: Fp4G32::dot bit for bit") {
  const auto w = random_values(kOut * kIn, 3, 1.0f);
  std::vector<std::uint8_t> codes(kOut * kIn / 2);
  std::vector<d::ue8m0> scales(kOut * kIn / 32);
  d::Fp4G32::quantize_matrix(d::ConstView2<float>(w.data(), kOut, kIn), codes.data(),
                             scales.data());
  const auto xq = quantize_rows(random_values(kRows * kIn, 4, 3.0f), kRows, kIn);
  const auto want = host_dots<d::Fp4G32>(codes.data(), scales.data(), kOut, kIn, xq, kRows);
  std::vector<float> got(kRows * kOut);
  d::cuda::fp4_g32_linear(codes.data(), scales.data(), kOut, kIn, xq.data(), kRows, got.data());
  CHECK(same_bits(got, want));
}

TEST_CASE("native linear on the device: an input width that is not whole activation blocks") {
  std::vector<d::fp8_e4m3> codes(4 * 100);
  std::vector<d::ue8m0> scales(1);
  std::vector<d::Fp8Act128::block_type> xq(1);
  std::vector<float> y(4);
  CHECK_THROWS_AS(
      d::cuda::fp8_b128_linear(codes.data(), scales.data(), 4, 100, xq.data(), 1, y.data()),
      d::ShapeError);
}

int main(int argc, char** argv) { return dsv4::test::run_cuda_tests(argc, argv); }
