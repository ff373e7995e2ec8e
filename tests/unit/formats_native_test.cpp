// Native DeepSeek-V4 formats FP8_B128, FP4_G32 and their activation partner FP8_ACT128: the
// release's quantisation rule, dequantisation, the dots against ops/gemm_native.hpp, and the
// weights of the tiny_fp8 reference checkpoint.
//
// Spec: spec/formats.md §9.1, §9.3-9.6. Data: tests/data/reference/kernels.safetensors (act_quant
// codes and scales) and tests/data/reference/tiny_fp8/linear_weights.safetensors (a few FP8/FP4
// weights of the tiny_fp8 checkpoint in runtime and release layout; see tests/data/README.md).
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/ops/gemm_native.hpp"
#include "dsv4/ops/quant.hpp"
#include "test_data.hpp"

namespace {

namespace d = dsv4;
using d::bf16;
using d::fp4_e2m1;
using d::fp8_e4m3;
using d::ue8m0;
using d::io::SafetensorsFile;

const SafetensorsFile& kernels() {
  static const SafetensorsFile f(d::test::data_path("reference/kernels.safetensors"));
  return f;
}

const SafetensorsFile& tiny() {
  static const SafetensorsFile f(
      d::test::data_path("reference/tiny_fp8/linear_weights.safetensors"));
  return f;
}

std::size_t dim(const SafetensorsFile& f, const std::string& name, std::size_t i) {
  return static_cast<std::size_t>(f.info(name).shape.at(i));
}

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

/// The scale rule written from the spec (formats.md §9.5 step 2), independently of the format
/// code: v = fp32(amax · fp32(1/qmax)), k = biased exponent − 127 + (mantissa ≠ 0).
std::uint8_t spec_scale_bits(float amax, float qmax) {
  const float v = amax * (1.0f / qmax);
  if (v == 0.f) return 0;
  const std::uint32_t x = bits(v);
  const int k = static_cast<int>(x >> 23) - 127 + ((x & 0x7fffffu) != 0 ? 1 : 0);
  return static_cast<std::uint8_t>(k + 127);
}

std::vector<float> random_normal(std::size_t n, unsigned seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("FP8_ACT128: quantize is act_quant (kernel data, codes and scales bit for bit)") {
  const auto x = kernels().to_float("act_quant.in");
  const auto want_q = kernels().to_float("act_quant.block128_ue8m0.q");
  const auto want_s = kernels().to_float("act_quant.block128_ue8m0.scale");
  const std::size_t rows = dim(kernels(), "act_quant.in", 0);
  const std::size_t cols = dim(kernels(), "act_quant.in", 1);
  REQUIRE(cols % 128 == 0);
  std::size_t bad_codes = 0, bad_scales = 0;
  std::vector<float> back(128);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t b = 0; b < cols / 128; ++b) {
      d::Fp8Act128::block_type blk{};
      d::Fp8Act128::quantize(x.data() + r * cols + b * 128, blk);
      if (blk.scale.to_float() != want_s[r * (cols / 128) + b]) ++bad_scales;
      for (std::size_t j = 0; j < 128; ++j) {
        if (bits(blk.qs[j].to_float()) != bits(want_q[r * cols + b * 128 + j])) ++bad_codes;
      }
      d::Fp8Act128::dequantize(blk, back.data());
      for (std::size_t j = 0; j < 128; ++j) {
        REQUIRE(back[j] == blk.qs[j].to_float() * blk.scale.to_float());
      }
    }
  }
  CHECK(bad_codes == 0);
  CHECK(bad_scales == 0);
}

TEST_CASE("FP8_B128 block: scale 2^ceil(log2(amax/448)), codes rounded to nearest even") {
  d::Fp8B128::block_type b{};
  std::vector<float> x(128, 0.f);

  SUBCASE("amax exactly 448: scale 1, 448 is code 0x7E, ties go to the even mantissa") {
    x[0] = 448.f;
    x[1] = -448.f;
    x[2] = 17.f;            // between 16 (mantissa 0) and 18 (mantissa 1): 16
    x[3] = 19.f;            // between 18 and 20 (mantissa 2): 20
    x[4] = 0x1p-10f;        // half the subnormal quantum 2^-9: ties to 0
    x[5] = 3.f * 0x1p-10f;  // 1.5 quanta: ties to 2 quanta
    d::Fp8B128::quantize(x.data(), b);
    CHECK(b.scale.bits == 127);
    CHECK(b.qs[0].bits == 0x7E);
    CHECK(b.qs[1].bits == 0xFE);
    CHECK(b.qs[2].to_float() == 16.f);
    CHECK(b.qs[3].to_float() == 20.f);
    CHECK(b.qs[4].to_float() == 0.f);
    CHECK(b.qs[5].to_float() == 2.f * 0x1p-9f);
  }
  SUBCASE("amax just above 448·2^k rounds the scale up to 2^(k+1)") {
    x[7] = std::nextafter(448.f * 4.f, 1e9f);
    d::Fp8B128::quantize(x.data(), b);
    CHECK(b.scale.to_float() == 8.f);
    CHECK(b.qs[7].to_float() == 224.f);
  }
  SUBCASE("amax 1: scale 2^-8 (1/448 lies in (2^-9, 2^-8])") {
    x[3] = -1.f;
    x[4] = 0.3f;
    d::Fp8B128::quantize(x.data(), b);
    CHECK(b.scale.to_float() == 0x1p-8f);
    CHECK(b.qs[3].to_float() == -256.f);
    CHECK(b.qs[4].to_float() == fp8_e4m3::from_float(0.3f * 256.f).to_float());
  }
  SUBCASE("an all-zero block: the smallest scale and zero codes") {
    d::Fp8B128::quantize(x.data(), b);
    CHECK(b.scale.bits == 0);
    for (const auto& q : b.qs) CHECK(q.to_float() == 0.f);
  }
  SUBCASE("random blocks: the spec's scale, |x - deq| within half a grid step") {
    std::vector<float> back(128);
    for (unsigned seed = 0; seed < 64; ++seed) {
      const float sigma = std::ldexp(1.f, static_cast<int>(seed % 40) - 20);
      x = random_normal(128, seed, sigma);
      d::Fp8B128::quantize(x.data(), b);
      float amax = 0.f;
      for (float v : x) amax = std::fmax(amax, std::fabs(v));
      REQUIRE(b.scale.bits == spec_scale_bits(amax, 448.f));
      d::Fp8B128::dequantize(b, back.data());
      const float s = b.scale.to_float();
      for (std::size_t j = 0; j < 128; ++j) {
        // E4M3: 3 mantissa bits (half step 2^-4 relative), subnormal quantum 2^-9·s.
        const float tol = std::fmax(std::fabs(x[j]) * 0x1p-4f, 0x1p-10f * s);
        REQUIRE(std::fabs(back[j] - x[j]) <= tol);
        REQUIRE(back[j] == b.qs[j].to_float() * s);
      }
    }
  }
}

TEST_CASE("FP8_B128 quantize_matrix: one scale per 128x128 tile, partial edge tiles") {
  constexpr std::size_t n = 200, k = 300;  // tiles: 2 x 3, the last row/column partial
  auto w = random_normal(n * k, 7);
  // give every tile a different magnitude so that a wrong tile assignment shows
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < k; ++c)
      w[r * k + c] *= std::ldexp(1.f, static_cast<int>(3 * (r / 128) + c / 128) - 4);
  }
  std::vector<fp8_e4m3> codes(n * k);
  std::vector<ue8m0> scales(d::Fp8B128::scale_rows(n) * d::Fp8B128::scale_cols(k));
  REQUIRE(scales.size() == 6);
  d::Fp8B128::quantize_matrix(d::ConstView2<float>(w.data(), n, k), codes.data(), scales.data());
  for (std::size_t rb = 0; rb < 2; ++rb) {
    for (std::size_t cb = 0; cb < 3; ++cb) {
      float amax = 0.f;
      for (std::size_t r = rb * 128; r < std::min(n, rb * 128 + 128); ++r) {
        for (std::size_t c = cb * 128; c < std::min(k, cb * 128 + 128); ++c) {
          amax = std::fmax(amax, std::fabs(w[r * k + c]));
        }
      }
      CAPTURE(rb);
      CAPTURE(cb);
      CHECK(scales[rb * 3 + cb].bits == spec_scale_bits(amax, 448.f));
    }
  }
  std::vector<float> back(n * k);
  d::Fp8B128::dequantize_matrix(codes.data(), scales.data(), d::View2<float>(back.data(), n, k));
  std::size_t bad = 0;
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t c = 0; c < k; ++c) {
      const float s = scales[(r / 128) * 3 + c / 128].to_float();
      if (codes[r * k + c].bits != fp8_e4m3::from_float(w[r * k + c] / s).bits) ++bad;
      if (back[r * k + c] != codes[r * k + c].to_float() * s) ++bad;
    }
  }
  CHECK(bad == 0);
  // A full block assembled from the two tensors dequantises to the same values.
  d::Fp8B128::block_type blk{};
  d::Fp8B128::load_block(codes.data() + 130 * k + 128, scales.data() + 1 * 3 + 1, blk);
  std::vector<float> seg(128);
  d::Fp8B128::dequantize(blk, seg.data());
  CHECK(std::memcmp(seg.data(), back.data() + 130 * k + 128, 128 * sizeof(float)) == 0);
  // A single row is the 1x128-tile case of quantize.
  std::vector<fp8_e4m3> c1(128);
  ue8m0 s1{};
  d::Fp8B128::quantize_matrix(d::ConstView2<float>(w.data(), 1, 128), c1.data(), &s1);
  d::Fp8B128::quantize(w.data(), blk);
  CHECK(s1.bits == blk.scale.bits);
  CHECK(std::memcmp(c1.data(), blk.qs, 128) == 0);
}

TEST_CASE("FP4_G32 block: scale 2^ceil(log2(amax/6)), E2M1 ties to even, checkpoint nibbles") {
  d::Fp4G32::block_type b{};
  std::vector<float> x(32, 0.f);
  SUBCASE("amax 6: scale 1; the spec's tie table; element 2k in the low nibble") {
    const float in[] = {6.f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.f, -5.f, -0.75f, 4.f, -6.f};
    const float want[] = {6.f, 0.f, 1.f, 1.f, 2.f, 2.f, 4.f, 4.f, -4.f, -1.f, 4.f, -6.f};
    std::copy(std::begin(in), std::end(in), x.begin());
    d::Fp4G32::quantize(x.data(), b);
    CHECK(b.scale.bits == 127);
    std::vector<float> back(32);
    d::Fp4G32::dequantize(b, back.data());
    for (std::size_t j = 0; j < std::size(want); ++j) {
      CAPTURE(j);
      CHECK(back[j] == want[j]);
    }
    CHECK((b.qs[0] & 0x0F) == fp4_e2m1::from_float(6.f).bits);  // element 0
    CHECK((b.qs[0] >> 4) == fp4_e2m1::from_float(0.f).bits);    // element 1 (0.25 → 0)
    CHECK((b.qs[5] >> 4) == fp4_e2m1::from_float(-6.f).bits);   // element 11
  }
  SUBCASE("amax just above 6·2^k: scale 2^(k+1)") {
    x[31] = std::nextafter(6.f * 0.125f, 1.f);
    d::Fp4G32::quantize(x.data(), b);
    CHECK(b.scale.to_float() == 0.25f);
    CHECK(fp4_e2m1::from_bits(static_cast<std::uint8_t>(b.qs[15] >> 4)).to_float() == 3.f);
  }
  SUBCASE("random blocks: the spec's scale, values on the grid") {
    std::vector<float> back(32);
    for (unsigned seed = 0; seed < 64; ++seed) {
      x = random_normal(32, 100 + seed, std::ldexp(1.f, static_cast<int>(seed % 30) - 15));
      d::Fp4G32::quantize(x.data(), b);
      float amax = 0.f;
      for (float v : x) amax = std::fmax(amax, std::fabs(v));
      REQUIRE(b.scale.bits == spec_scale_bits(amax, 6.f));
      d::Fp4G32::dequantize(b, back.data());
      for (std::size_t j = 0; j < 32; ++j) {
        REQUIRE(back[j] ==
                fp4_e2m1::from_float(x[j] / b.scale.to_float()).to_float() * b.scale.to_float());
      }
    }
  }
  SUBCASE("quantize_matrix packs rows as the checkpoint does; K not a multiple of 32 is refused") {
    const auto w = random_normal(3 * 64, 5);
    std::vector<std::uint8_t> codes(3 * 32);
    std::vector<ue8m0> scales(3 * 2);
    d::Fp4G32::quantize_matrix(d::ConstView2<float>(w.data(), 3, 64), codes.data(), scales.data());
    std::vector<float> back(3 * 64);
    d::Fp4G32::dequantize_matrix(codes.data(), scales.data(), d::View2<float>(back.data(), 3, 64));
    for (std::size_t r = 0; r < 3; ++r) {
      for (std::size_t g = 0; g < 2; ++g) {
        d::Fp4G32::quantize(w.data() + r * 64 + 32 * g, b);
        CHECK(scales[r * 2 + g].bits == b.scale.bits);
        CHECK(std::memcmp(codes.data() + r * 32 + 16 * g, b.qs, 16) == 0);
        std::vector<float> seg(32);
        d::Fp4G32::dequantize(b, seg.data());
        CHECK(std::memcmp(seg.data(), back.data() + r * 64 + 32 * g, 32 * sizeof(float)) == 0);
      }
    }
    CHECK_THROWS_AS(d::Fp4G32::quantize_matrix(d::ConstView2<float>(w.data(), 1, 48), codes.data(),
                                               scales.data()),
                    d::ShapeError);
  }
}

TEST_CASE("FP8_B128 / FP4_G32 dot: one output of ops::fp8_gemm / ops::fp4_gemm, bit for bit") {
  constexpr std::size_t m = 4, n = 9, k = 512;
  const auto x = random_normal(m * k, 11);
  const auto w = random_normal(n * k, 12, 0.05f);
  // activation, as blocks and as the gemm's planar input
  std::vector<d::Fp8Act128::block_type> xa(m * k / 128);
  std::vector<fp8_e4m3> xq(m * k);
  std::vector<float> xs(m * k / 128);
  for (std::size_t i = 0; i < xa.size(); ++i) {
    d::Fp8Act128::quantize(x.data() + i * 128, xa[i]);
    std::memcpy(xq.data() + i * 128, xa[i].qs, 128);
    xs[i] = xa[i].scale.to_float();
  }
  SUBCASE("FP8") {
    std::vector<fp8_e4m3> codes(n * k);
    std::vector<ue8m0> scales(1 * 4);
    d::Fp8B128::quantize_matrix(d::ConstView2<float>(w.data(), n, k), codes.data(), scales.data());
    std::vector<bf16> c(m * n);
    d::ops::fp8_gemm(d::ConstView2<fp8_e4m3>(xq.data(), m, k),
                     d::ConstView2<float>(xs.data(), m, 4),
                     d::ConstView2<fp8_e4m3>(codes.data(), n, k),
                     d::ConstView2<ue8m0>(scales.data(), 1, 4), d::View2<bf16>(c.data(), m, n));
    for (std::size_t o = 0; o < n; ++o) {
      std::vector<d::Fp8B128::block_type> row(4);
      for (std::size_t b = 0; b < 4; ++b) {
        d::Fp8B128::load_block(codes.data() + o * k + 128 * b, scales.data() + b, row[b]);
      }
      for (std::size_t r = 0; r < m; ++r) {
        CHECK(bf16(d::Fp8B128::dot(row.data(), xa.data() + r * 4, 4)).bits == c[r * n + o].bits);
      }
    }
  }
  SUBCASE("FP4") {
    std::vector<std::uint8_t> codes(n * k / 2);
    std::vector<ue8m0> scales(n * k / 32);
    d::Fp4G32::quantize_matrix(d::ConstView2<float>(w.data(), n, k), codes.data(), scales.data());
    std::vector<bf16> c(m * n);
    d::ops::fp4_gemm(
        d::ConstView2<fp8_e4m3>(xq.data(), m, k), d::ConstView2<float>(xs.data(), m, 4),
        d::ConstView2<std::uint8_t>(codes.data(), n, k / 2),
        d::ConstView2<ue8m0>(scales.data(), n, k / 32), d::View2<bf16>(c.data(), m, n));
    for (std::size_t o = 0; o < n; ++o) {
      std::vector<d::Fp4G32::block_type> row(k / 32);
      for (std::size_t g = 0; g < k / 32; ++g) {
        d::Fp4G32::load_block(codes.data() + o * k / 2 + 16 * g, scales.data() + o * k / 32 + g,
                              row[g]);
      }
      for (std::size_t r = 0; r < m; ++r) {
        CHECK(bf16(d::Fp4G32::dot(row.data(), xa.data() + r * 4, k / 32)).bits ==
              c[r * n + o].bits);
      }
    }
  }
}

TEST_CASE("tiny_fp8: the release's FP8 wo_a dequantises to the BF16 wo_a the reference runs") {
  // convert.py turns the release's FP8 wo_a into bf16 (q·s per 128x128 tile, exact); the
  // runtime weights file holds that bf16 tensor.
  const auto& f = tiny();
  const std::size_t n = dim(f, "hf.layers.0.attn.wo_a.weight", 0);
  const std::size_t k = dim(f, "hf.layers.0.attn.wo_a.weight", 1);
  REQUIRE(f.info("layers.0.attn.wo_a.weight").dtype == d::DType::BF16);
  const auto codes = f.span<fp8_e4m3>("hf.layers.0.attn.wo_a.weight");
  const auto scales = f.span<ue8m0>("hf.layers.0.attn.wo_a.scale");
  REQUIRE(scales.size() == d::Fp8B128::scale_rows(n) * d::Fp8B128::scale_cols(k));
  std::vector<float> back(n * k);
  d::Fp8B128::dequantize_matrix(codes.data(), scales.data(), d::View2<float>(back.data(), n, k));
  const auto want = f.to_float("layers.0.attn.wo_a.weight");
  std::size_t bad = 0;
  for (std::size_t i = 0; i < back.size(); ++i) bad += bits(back[i]) != bits(want[i]) ? 1 : 0;
  MESSAGE("wo_a [" << n << ", " << k << "]: " << bad << " values differ from the bf16 tensor");
  CHECK(bad == 0);
}

namespace {

/// Outcome of quantising dequantised weights again, per scale block (tile or group).
struct Requant {
  std::size_t blocks = 0;        // scale blocks
  std::size_t same = 0;          // identical scale and codes
  std::size_t halved = 0;        // scale one step lower, same values (largest code 224 resp. 3)
  std::size_t unexplained = 0;   // anything else
  float lowest_max_code = 1e9f;  // over blocks: the smallest largest |code|
};

/// Compares the stored codes/scales with re-quantised ones: values must agree everywhere; a
/// block whose bytes differ must be one whose largest |code| is `edge_code` and whose new scale is
/// half the old one.
template <class Code>
Requant compare_requant(const std::vector<float>& deq, const std::vector<float>& deq2,
                        std::size_t n_blocks, auto block_of, auto code_value, const Code* codes,
                        const Code* codes2, std::size_t n_codes, const ue8m0* s1, const ue8m0* s2,
                        float edge_code) {
  Requant r;
  r.blocks = n_blocks;
  REQUIRE(deq.size() == deq2.size());
  for (std::size_t i = 0; i < deq.size(); ++i) REQUIRE(bits(deq[i]) == bits(deq2[i]));
  std::vector<char> differs(n_blocks, 0);
  std::vector<float> max_code(n_blocks, 0.f);
  for (std::size_t i = 0; i < n_codes; ++i) {
    const std::size_t blk = block_of(i);
    if (std::memcmp(codes + i, codes2 + i, sizeof(Code)) != 0) differs[blk] = 1;
    max_code[blk] = std::fmax(max_code[blk], code_value(codes[i]));
  }
  for (std::size_t b = 0; b < n_blocks; ++b) {
    r.lowest_max_code = std::fmin(r.lowest_max_code, max_code[b]);
    if (s1[b].bits != s2[b].bits) differs[b] = 1;
    if (!differs[b]) {
      ++r.same;
    } else if (s2[b].bits + 1 == s1[b].bits && max_code[b] == edge_code) {
      ++r.halved;
    } else {
      ++r.unexplained;
    }
  }
  return r;
}

}  // namespace

TEST_CASE("tiny_fp8: FP8/FP4 weights are bf16-exact and re-quantise to the same values") {
  // The goldens were made by quantising bf16 master weights with the release's rule (golden
  // README, "tiny_fp8"); the masters are not stored, so the rule is checked on its own output:
  // quantising the dequantised weights must give the same values, and the same bytes except in
  // blocks whose largest code is 224 (FP8) resp. 3 (FP4), where amax/qmax is exactly half the old
  // scale, so the rule picks that half scale with doubled codes (the same values). Such blocks
  // are counted; any other difference fails. The signature of the ceil rule is checked too:
  // the scale is the smallest power of two ≥ amax/qmax, so every block's largest |code| lies in
  // [qmax/2, qmax] (a nearest or floor rounding of the scale would leave blocks below qmax/2 or
  // saturate many at qmax).
  const auto& f = tiny();
  for (const char* name : {"layers.0.attn.wkv", "layers.0.attn.wq_b", "hf.layers.0.attn.wo_a"}) {
    CAPTURE(name);
    const std::string w = std::string(name) + ".weight";
    const std::size_t n = dim(f, w, 0), k = dim(f, w, 1);
    const auto codes = f.span<fp8_e4m3>(w);
    const auto scales = f.span<ue8m0>(std::string(name) + ".scale");
    std::vector<float> back(n * k), back2(n * k);
    d::Fp8B128::dequantize_matrix(codes.data(), scales.data(), d::View2<float>(back.data(), n, k));
    for (float v : back) REQUIRE(d::round_bf16(v) == v);
    std::vector<fp8_e4m3> codes2(n * k);
    std::vector<ue8m0> scales2(scales.size());
    d::Fp8B128::quantize_matrix(d::ConstView2<float>(back.data(), n, k), codes2.data(),
                                scales2.data());
    d::Fp8B128::dequantize_matrix(codes2.data(), scales2.data(),
                                  d::View2<float>(back2.data(), n, k));
    const std::size_t sc = d::Fp8B128::scale_cols(k);
    const auto r = compare_requant(
        back, back2, scales.size(),
        [&](std::size_t i) { return (i / k / 128) * sc + (i % k) / 128; },
        [](fp8_e4m3 c) { return std::fabs(c.to_float()); }, codes.data(), codes2.data(), n * k,
        scales.data(), scales2.data(), 224.f);
    MESSAGE(std::string(name) << ": " << r.same << "/" << r.blocks << " tiles identical, "
                              << r.halved << " with the half scale");
    CHECK(r.unexplained == 0);
    CHECK(r.lowest_max_code >= 224.f);
  }
  std::size_t groups = 0, same = 0, halved = 0;
  for (const char* name :
       {"layers.0.ffn.experts.0.w1", "layers.0.ffn.experts.0.w2", "layers.0.ffn.experts.0.w3"}) {
    CAPTURE(name);
    const std::string w = std::string(name) + ".weight";
    REQUIRE(f.info(w).dtype == d::DType::F4);
    const std::size_t n = dim(f, w, 0), k = dim(f, w, 1);  // logical shape
    const auto bytes = f.bytes(w);
    REQUIRE(bytes.size() == n * k / 2);
    std::vector<std::uint8_t> codes(bytes.size());
    std::memcpy(codes.data(), bytes.data(), bytes.size());
    const auto scales = f.span<ue8m0>(std::string(name) + ".scale");
    std::vector<float> back(n * k), back2(n * k);
    d::Fp4G32::dequantize_matrix(codes.data(), scales.data(), d::View2<float>(back.data(), n, k));
    // safetensors' own F4 decoding (codes only) times the per-32 scales gives the same values
    const auto plain = f.to_float(w);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < back.size(); ++i) {
      bad += bits(back[i]) != bits(plain[i] * scales[i / 32].to_float()) ? 1 : 0;
      REQUIRE(d::round_bf16(back[i]) == back[i]);
    }
    CHECK(bad == 0);
    std::vector<std::uint8_t> codes2(codes.size());
    std::vector<ue8m0> scales2(scales.size());
    d::Fp4G32::quantize_matrix(d::ConstView2<float>(back.data(), n, k), codes2.data(),
                               scales2.data());
    d::Fp4G32::dequantize_matrix(codes2.data(), scales2.data(),
                                 d::View2<float>(back2.data(), n, k));
    // a byte holds two codes of the same group: the block of byte i is i / 16
    const auto r = compare_requant(
        back, back2, scales.size(), [](std::size_t i) { return i / 16; },
        [](std::uint8_t c) {
          return std::fmax(
              std::fabs(fp4_e2m1::from_bits(c & 0x0F).to_float()),
              std::fabs(fp4_e2m1::from_bits(static_cast<std::uint8_t>(c >> 4)).to_float()));
        },
        codes.data(), codes2.data(), codes.size(), scales.data(), scales2.data(), 3.f);
    CHECK(r.unexplained == 0);
    CHECK(r.lowest_max_code >= 3.f);
    groups += r.blocks;
    same += r.same;
    halved += r.halved;
  }
  MESSAGE("expert 0 w1/w2/w3 (FP4): " << same << "/" << groups << " groups identical, " << halved
                                      << " with the half scale");
  // The release stores the experts as I8 [out, in/2]: the same bytes as the runtime F4 tensor.
  const auto f4 = f.bytes("layers.0.ffn.experts.0.w1.weight");
  const auto i8 = f.bytes("hf.layers.0.ffn.experts.0.w1.weight");
  REQUIRE(f4.size() == i8.size());
  CHECK(std::memcmp(f4.data(), i8.data(), f4.size()) == 0);
}

TEST_CASE("registry: the native formats by id") {
  CHECK(d::format_info(d::FormatId::fp8_b128).name == "FP8_B128");
  CHECK(d::format_info(d::FormatId::fp8_b128).block_bytes == 129);
  CHECK(d::format_info(d::FormatId::fp4_g32).block_elems == 32);
  CHECK(d::format_info(d::FormatId::fp4_g32).block_bytes == 17);
  CHECK(d::format_info(d::FormatId::fp8_act128).block_elems == 128);
  static_assert(d::type_list_contains_v<d::AllFormats, d::Fp8B128>);
  static_assert(d::type_list_contains_v<d::AllFormats, d::Fp4G32>);
  static_assert(!d::PlanarFormat<d::Q4_K> && !d::PlanarFormat<d::MXFP4>);
}
