// How to unit-test your own kernel against the reference backend across weight formats, with
// doctest's TEST_CASE_TEMPLATE: one test body, instantiated for every format in the list.
//
// The kernel under test, `my_linear`, computes y = x·Wᵀ for a weight stored in a block format F by
// dequantizing each block (F::dequantize) and accumulating in double. The reference is the
// library's Linear<F, DequantDot> run through ReferenceBackend::linear, which dequantizes and
// accumulates in float: the two must agree to float rounding, whatever the format.
//
//   example_kernel_test            (doctest options work: -s, -tc="*Q4_K*", ...)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <dsv4/backend/reference.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/formats/registry.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

/// The kernel under test: y [rows, out] = x [rows, in] · Wᵀ, W as blocks of F, row-major.
template <class F>
void my_linear(const std::vector<typename F::block_type>& w, std::size_t out, std::size_t in,
               const std::vector<float>& x, std::size_t rows, std::vector<float>& y) {
  const std::size_t nb = in / F::block_elems;
  std::vector<float> row(in);
  for (std::size_t o = 0; o < out; ++o) {
    for (std::size_t b = 0; b < nb; ++b)
      F::dequantize(w[o * nb + b], row.data() + b * F::block_elems);
    for (std::size_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (std::size_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * in + i]) * row[i];
      y[r * out + o] = static_cast<float>(acc);
    }
  }
}

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace

TEST_CASE_TEMPLATE("my_linear agrees with the reference backend", F, dsv4::F16, dsv4::Q8_0,
                   dsv4::Q4_0, dsv4::Q5_1, dsv4::Q4_K, dsv4::Q6_K) {
  constexpr std::size_t rows = 3, out = 16, in = 512;  // in: a multiple of every block size
  const auto w = random_values(out * in, 1);
  const auto x = random_values(rows * in, 2);

  // The weight in format F, quantized by the library (ggml's reference quantizers).
  using Lin = dsv4::Linear<F, dsv4::DequantDot>;
  const Lin lin = Lin::quantize(dsv4::ConstView2<float>(w.data(), out, in));
  std::vector<typename F::block_type> blocks(out * (in / F::block_elems));
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    F::quantize(w.data() + k * F::block_elems, blocks[k]);
  }

  std::vector<float> want(rows * out), got(rows * out);
  const dsv4::ReferenceBackend backend;
  backend.linear<dsv4::PlainFp32Numerics>(lin, dsv4::ConstView2<float>(x.data(), rows, in),
                                          dsv4::View2<float>(want.data(), rows, out));
  my_linear<F>(blocks, out, in, x, rows, got);

  double worst = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
  }
  MESSAGE(std::string(F::name), ": largest difference ", worst);
  // Float against double accumulation of 512 products of size ~1: measured up to 5.3e-5 (F16).
  CHECK(worst < 1e-4);
}
