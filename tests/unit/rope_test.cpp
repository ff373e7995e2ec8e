// Partial RoPE with YaRN (ops/rope.hpp): the frequency tables of spec/architecture.md §3.4
// (sample values given there), the per-layer choice of base and YaRN, the layout (last rope dims,
// adjacent pairs), the inverse rotation, rounding, and bad positions / shapes.
// The golden-data check of RoPE inside the attention is in attention_test.cpp.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/core/presets.hpp>
#include <dsv4/ops/rope.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

namespace d = dsv4;

d::RopeParams yarn_params() {
  d::RopeParams p;
  p.rope_dim = 64;
  p.max_seq_len = 4096;
  p.base = 160000.0;
  p.original_seq_len = 65536;
  p.factor = 16.0;
  p.beta_fast = 32.0;
  p.beta_slow = 1.0;
  return p;
}

void check_close(float got, double want, double rel) {
  CAPTURE(got);
  CAPTURE(want);
  CHECK(std::fabs(got - want) <= rel * std::fabs(want));
}

TEST_CASE("rope: YaRN frequencies of compressed layers (base 160000, ramp 15..25)") {
  const auto w = d::rope_frequencies(yarn_params());
  REQUIRE(w.size() == 32);
  CHECK(w[0] == 1.0f);
  // Spec §3.4 sample values (fp32, ±1 ulp); the last digit printed there is rounded.
  check_close(w[1], 0.687656, 2e-6);
  check_close(w[14], 5.28686e-3, 2e-6);
  check_close(w[15], 3.63554e-3, 2e-6);
  check_close(w[16], 2.26562e-3, 3e-6);
  check_close(w[20], 2.96978e-4, 2e-6);
  check_close(w[24], 1.95312e-5, 3e-6);
  check_close(w[25], 5.37231e-6, 2e-6);
  check_close(w[31], 5.68053e-7, 2e-6);
  // Below the ramp the frequencies are unscaled, above it divided by the factor.
  for (int i = 0; i <= 15; ++i) {
    CAPTURE(i);
    check_close(w[static_cast<std::size_t>(i)], std::pow(160000.0, -2.0 * i / 64.0), 1e-6);
  }
  for (int i = 25; i < 32; ++i) {
    CAPTURE(i);
    check_close(w[static_cast<std::size_t>(i)], std::pow(160000.0, -2.0 * i / 64.0) / 16.0, 1e-6);
  }
}

TEST_CASE("rope: plain frequencies of sliding-window layers (base 10000, no YaRN)") {
  d::RopeParams p;
  p.rope_dim = 64;
  p.base = 10000.0;
  const auto w = d::rope_frequencies(p);
  check_close(w[1], 0.749894, 2e-6);
  check_close(w[16], 0.01, 1e-6);
  check_close(w[31], 1.33352e-4, 2e-6);
}

TEST_CASE("rope: the layer's table depends on its compress ratio") {
  d::ModelConfig cfg = d::presets::v4_flash();
  cfg.max_seq_len = 256;
  const d::Rope swa = d::Rope::for_layer(cfg, 0);
  const d::Rope csa = d::Rope::for_layer(cfg, 4);
  const d::Rope hca = d::Rope::for_layer(cfg, 128);
  CHECK(swa.params().base == cfg.rope_theta);
  CHECK(swa.params().original_seq_len == 0);
  CHECK(csa.params().base == cfg.compress_rope_theta);
  CHECK(csa.params().original_seq_len == cfg.original_seq_len);
  CHECK(hca.params().base == cfg.compress_rope_theta);
  CHECK(swa.max_seq_len() == 256);
  const auto a = csa.frequencies();
  const auto b = hca.frequencies();
  CHECK(std::vector<float>(a.begin(), a.end()) == std::vector<float>(b.begin(), b.end()));
  check_close(swa.frequencies()[16], 0.01, 1e-6);
}

TEST_CASE("rope: only the last rope dims rotate, as adjacent (re, im) pairs") {
  d::RopeParams p;
  p.rope_dim = 4;
  p.max_seq_len = 16;
  p.base = 10000.0;
  const d::Rope rope(p);
  // Two vectors of 6 values: dims 0-1 untouched, pairs (2,3) and (4,5) rotated.
  std::vector<float> x = {7.0f, -3.0f, 1.0f, 0.0f, 0.5f, 2.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  const std::vector<float> x0 = x;
  const std::int64_t pos = 5;
  rope.apply<d::ReferenceFp32Numerics>(x.data(), 2, 6, pos);  // the reference's rotation
  const float w1 = rope.frequencies()[1];
  for (std::size_t v = 0; v < 2; ++v) {
    const float* a = x0.data() + v * 6;
    const float* r = x.data() + v * 6;
    CHECK(r[0] == a[0]);
    CHECK(r[1] == a[1]);
    const float c0 = std::cos(5.0f), s0 = std::sin(5.0f);  // ω0 = 1
    CHECK(r[2] == a[2] * c0 - a[3] * s0);
    CHECK(r[3] == a[2] * s0 + a[3] * c0);
    const float c1 = std::cos(5.0f * w1), s1 = std::sin(5.0f * w1);
    CHECK(r[4] == a[4] * c1 - a[5] * s1);
    CHECK(r[5] == a[4] * s1 + a[5] * c1);
  }
}

TEST_CASE("rope: the inverse rotation undoes the forward one, position 0 is the identity") {
  const d::Rope rope(yarn_params());
  std::vector<float> x(2 * 96);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3;
  const std::vector<float> x0 = x;
  for (std::int64_t pos : {0, 1, 17, 4095}) {
    CAPTURE(pos);
    x = x0;
    rope.apply<d::PlainFp32Numerics>(x.data(), 2, 96, pos);
    if (pos == 0) CHECK(x == x0);
    rope.apply<d::PlainFp32Numerics>(x.data(), 2, 96, pos, d::RopeDirection::inverse);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(x[i] - x0[i]) <= 2e-6f);
  }
}

TEST_CASE("rope: the bf16 numerics round every rotated value to bf16") {
  const d::Rope rope(yarn_params());
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = d::round_bf16(0.1f * static_cast<float>(i));
  rope.apply<d::ReferenceNumerics>(x.data(), 1, 64, 33);
  for (float v : x) CHECK(v == d::round_bf16(v));
}

TEST_CASE("rope: positions outside the table and short vectors are errors") {
  d::RopeParams p = yarn_params();
  p.max_seq_len = 128;
  const d::Rope rope(p);
  std::vector<float> x(64);
  CHECK_NOTHROW(rope.apply<d::PlainFp32Numerics>(x.data(), 1, 64, 127));
  CHECK_THROWS_AS(rope.apply<d::PlainFp32Numerics>(x.data(), 1, 64, 128), d::InputError);
  CHECK_THROWS_AS(rope.apply<d::PlainFp32Numerics>(x.data(), 1, 64, -1), d::InputError);
  CHECK_THROWS_AS(rope.apply<d::PlainFp32Numerics>(x.data(), 1, 32, 3), d::ShapeError);
  CHECK_THROWS_AS(rope.check_positions(100, 29), d::InputError);
  CHECK_NOTHROW(rope.check_positions(100, 28));
  d::RopeParams odd = p;
  odd.rope_dim = 63;
  CHECK_THROWS_AS(d::Rope{odd}, d::ConfigError);
}

}  // namespace

// llama.cpp's numerics (ggml_order): the angles ggml's rope computes (cumulative θ, YaRN ramp as
// one FMA, the magnitude times llama.cpp's attention factor) and its FMA rotation, against
// llama.cpp's own ROPE / ROPE_BACK nodes of the tiny model's prefill (tests/data/llamacpp/ops:
// layer 0 sliding-window, base 10000; layer 1 compressed, base 160000 with YaRN; 12 positions, 4
// heads of 256 values, the last 64 rotated).
TEST_CASE("rope: under llama.cpp's order, llama.cpp's ROPE and ROPE_BACK bit for bit") {
  const auto pos = d::test::read_raw<std::int32_t>("llamacpp/ops/rope_positions.i32");
  for (const int layer : {0, 1}) {
    for (const bool back : {false, true}) {
      CAPTURE(layer);
      CAPTURE(back);
      d::RopeParams p = yarn_params();
      if (layer == 0) {
        p.base = 10000.0;
        p.original_seq_len = 0;
      }
      const d::Rope rope(p);
      const std::string stem = std::string("llamacpp/ops/rope_") + (back ? "back" : "q") +
                               "_layer" + std::to_string(layer);
      auto x = d::test::read_raw<float>(stem + ".in.f32");
      const auto want = d::test::read_raw<float>(stem + ".out.f32");
      REQUIRE(x.size() == pos.size() * 4 * 256);
      REQUIRE(want.size() == x.size());
      auto plain = x;
      for (std::size_t t = 0; t < pos.size(); ++t) {
        const auto dir = back ? d::RopeDirection::inverse : d::RopeDirection::forward;
        rope.apply<d::PlainFp32Numerics>(x.data() + t * 1024, 4, 256, pos[t], dir);
        rope.apply<d::ReferenceFp32Numerics>(plain.data() + t * 1024, 4, 256, pos[t], dir);
      }
      int differ = 0;
      int plain_differ = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        differ += std::bit_cast<std::uint32_t>(x[i]) != std::bit_cast<std::uint32_t>(want[i]);
        plain_differ +=
            std::bit_cast<std::uint32_t>(plain[i]) != std::bit_cast<std::uint32_t>(want[i]);
      }
      CHECK(differ == 0);
      CHECK(plain_differ > 0);  // the reference's angles and rotation are not ggml's
    }
  }
}
