// Reference kernels (include/dsv4/ops/) against the official reference's kernel unit data
// (tests/data/reference/kernels.safetensors, golden/reference README "kernels.safetensors"):
// quantisers, rounding tables, Hadamard, hc_split_sinkhorn, sparse attention, FP8/FP4 GEMM.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <dsv4/core/tensor.hpp>
#include <dsv4/io/safetensors.hpp>
#include <dsv4/ops/gemm_native.hpp>
#include <dsv4/ops/hadamard.hpp>
#include <dsv4/ops/quant.hpp>
#include <dsv4/ops/sinkhorn.hpp>
#include <dsv4/ops/sparse_attention.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using dsv4::bf16;
using dsv4::fp4_e2m1;
using dsv4::fp8_e4m3;
using dsv4::io::SafetensorsFile;

const SafetensorsFile& kernels() {
  static const SafetensorsFile f(dsv4::test::data_path("reference/kernels.safetensors"));
  return f;
}

std::vector<float> get(const std::string& name) { return kernels().to_float(name); }

std::size_t dim(const std::string& name, std::size_t i) {
  return static_cast<std::size_t>(kernels().info(name).shape.at(i));
}

/// Number of positions whose fp32 bit patterns differ.
std::size_t bit_mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) ++bad;
  }
  return bad;
}

float max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  float m = 0.f;
  for (std::size_t i = 0; i < got.size(); ++i) m = std::fmax(m, std::fabs(got[i] - want[i]));
  return m;
}

/// Largest distance in bf16 units in the last place (both sides bf16 values).
int max_bf16_ulps(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  int m = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    auto key = [](float f) {
      const auto b = static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(f) >> 16);
      return (b & 0x8000) != 0 ? -(b & 0x7fff) : b;
    };
    m = std::max(m, std::abs(key(got[i]) - key(want[i])));
  }
  return m;
}

template <class T>
std::vector<T> as(const std::vector<float>& v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (float f : v) {
    if constexpr (std::is_same_v<T, bf16>) {
      out.push_back(bf16(f));
    } else {
      out.push_back(f);
    }
  }
  return out;
}

template <class T>
std::vector<float> widen(const std::vector<T>& v) {
  std::vector<float> out;
  out.reserve(v.size());
  for (const T& x : v) out.push_back(static_cast<float>(x));
  return out;
}

}  // namespace

TEST_CASE("kernels file: every input is bf16-representable (bf16 mode inputs are exact)") {
  for (const char* name : {"act_quant.in", "fp4_act_quant.in", "hadamard.in64", "hadamard.in128",
                           "sparse_attn.q", "sparse_attn.kv", "fp8_gemm.x"}) {
    const auto v = get(name);
    for (float f : v) REQUIRE(dsv4::round_bf16(f) == f);
  }
}

TEST_CASE("round.e4m3 / round.e2m1 tables: scalar RNE rounding") {
  const auto in8 = get("round.e4m3.in");
  const auto out8 = get("round.e4m3.out");
  std::vector<float> got8;
  for (float f : in8) got8.push_back(fp8_e4m3::from_float(f).to_float());
  CHECK(bit_mismatches(got8, out8) == 0);

  const auto in4 = get("round.e2m1.in");
  const auto out4 = get("round.e2m1.out");
  std::vector<float> got4;
  for (float f : in4) got4.push_back(fp4_e2m1::from_float(f).to_float());
  CHECK(bit_mismatches(got4, out4) == 0);
}

TEST_CASE_TEMPLATE("act_quant block 64 in place (KV FP8 simulation) is bit-exact", T, float, bf16) {
  auto x = as<T>(get("act_quant.in"));
  const std::size_t rows = dim("act_quant.in", 0), cols = dim("act_quant.in", 1);
  for (std::size_t r = 0; r < rows; ++r) dsv4::ops::act_quant_inplace(x.data() + r * cols, cols);
  CHECK(bit_mismatches(widen(x), get("act_quant.block64_ue8m0_inplace.out")) == 0);
}

TEST_CASE_TEMPLATE("act_quant block 128 (GEMM input): codes and scales are bit-exact", T, float,
                   bf16) {
  const auto x = as<T>(get("act_quant.in"));
  const std::size_t rows = dim("act_quant.in", 0), cols = dim("act_quant.in", 1);
  for (auto [fmt, key] : {std::pair{dsv4::ops::ScaleFmt::ue8m0, "act_quant.block128_ue8m0"},
                          std::pair{dsv4::ops::ScaleFmt::noround, "act_quant.block128_noround"}}) {
    CAPTURE(key);
    std::vector<fp8_e4m3> q(rows * cols);
    std::vector<float> s(rows * cols / 128);
    dsv4::ops::act_quant(x.data(), rows, cols, 128, fmt, q.data(), s.data());
    CHECK(bit_mismatches(widen(q), get(std::string(key) + ".q")) == 0);
    CHECK(bit_mismatches(s, get(std::string(key) + ".scale")) == 0);
    if (fmt == dsv4::ops::ScaleFmt::ue8m0) {
      for (float v : s) CHECK(dsv4::ue8m0::ceil_pow2(v).to_float() == v);  // exact powers of two
    }
  }
  std::vector<fp8_e4m3> q(cols);
  std::vector<float> s(2);
  CHECK_THROWS_AS(dsv4::ops::act_quant(x.data(), 1, cols - 1, 128, dsv4::ops::ScaleFmt::ue8m0,
                                       q.data(), s.data()),
                  dsv4::ShapeError);
}

TEST_CASE_TEMPLATE("fp4_act_quant block 32 in place (indexer FP4 simulation) is bit-exact", T,
                   float, bf16) {
  auto x = as<T>(get("fp4_act_quant.in"));
  dsv4::ops::fp4_act_quant_inplace(x.data(), x.size());
  CHECK(bit_mismatches(widen(x), get("fp4_act_quant.block32_inplace.out")) == 0);
}

TEST_CASE_TEMPLATE("Hadamard 64 and 128 (rotate_activation) are bit-exact in bf16", T, float,
                   bf16) {
  for (int n : {64, 128}) {
    CAPTURE(n);
    const std::string tag = std::to_string(n);
    const auto x = as<T>(get("hadamard.in" + tag));
    std::vector<bf16> y(x.size());
    dsv4::ops::rotate_activation(x.data(), y.data(), x.size() / n, static_cast<std::size_t>(n));
    CHECK(bit_mismatches(widen(y), get("hadamard.out" + tag + "_bf16")) == 0);
  }
  std::vector<float> z(48);
  CHECK_THROWS_AS(dsv4::ops::rotate_activation(z.data(), z.data(), 1, 48), dsv4::ShapeError);
}

TEST_CASE("hc_split_sinkhorn: pre/post/comb from the 24 mixes") {
  const auto mixes = get("hc_split_sinkhorn.mixes");
  const auto scale = get("hc_split_sinkhorn.hc_scale");
  const auto base = get("hc_split_sinkhorn.hc_base");
  const std::size_t n = dim("hc_split_sinkhorn.mixes", 0);
  std::vector<float> pre(n * 4), post(n * 4), comb(n * 16);
  for (std::size_t t = 0; t < n; ++t) {
    dsv4::ops::hc_split_sinkhorn<4>(mixes.data() + t * 24, scale.data(), base.data(), 20, 1e-6f,
                                    pre.data() + t * 4, post.data() + t * 4, comb.data() + t * 16);
  }
  const float e_pre = max_abs_diff(pre, get("hc_split_sinkhorn.pre"));
  const float e_post = max_abs_diff(post, get("hc_split_sinkhorn.post"));
  const float e_comb = max_abs_diff(comb, get("hc_split_sinkhorn.comb"));
  MESSAGE("sinkhorn max abs error: pre "
          << e_pre << ", post " << e_post << ", comb " << e_comb << "; bit mismatches comb "
          << bit_mismatches(comb, get("hc_split_sinkhorn.comb")) << "/" << comb.size());
  CHECK(e_pre <= 2e-7f);
  CHECK(e_post <= 2e-7f);
  CHECK(e_comb <= 2e-7f);
  // comb is (nearly) doubly stochastic: columns sum to ~1 after the final column pass.
  for (std::size_t t = 0; t < n; ++t) {
    for (int b = 0; b < 4; ++b) {
      float s = 0.f;
      for (int a = 0; a < 4; ++a) s += comb[t * 16 + a * 4 + b];
      CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
}

TEST_CASE("sparse_attn: bf16 mode (P rounded to bf16) and fp32 mode") {
  const auto q = get("sparse_attn.q");
  const auto kv = get("sparse_attn.kv");
  const auto sink = get("sparse_attn.attn_sink");
  const auto idx = kernels().span<std::int32_t>("sparse_attn.topk_idxs");
  const float scale = get("sparse_attn.softmax_scale").at(0);
  const std::size_t s = dim("sparse_attn.q", 0), h = dim("sparse_attn.q", 1),
                    d = dim("sparse_attn.q", 2), n = dim("sparse_attn.kv", 0),
                    k = dim("sparse_attn.topk_idxs", 1);
  std::size_t masked = 0;
  for (auto i : idx) masked += i < 0 ? 1 : 0;
  REQUIRE(masked >= 64);  // the data holds a fully masked chunk

  std::vector<float> o16(q.size()), o32(q.size());
  dsv4::ops::sparse_attention<dsv4::ops::Bf16Act>(q.data(), kv.data(), sink.data(), idx.data(), s,
                                                  h, d, n, k, scale, o16.data());
  dsv4::ops::sparse_attention<dsv4::ops::F32Act>(q.data(), kv.data(), sink.data(), idx.data(), s, h,
                                                 d, n, k, scale, o32.data());
  const auto want16 = get("sparse_attn.o_bf16");
  const auto want32 = get("sparse_attn.o_fp32");
  const std::size_t bad16 = bit_mismatches(o16, want16);
  const std::size_t bad32 = bit_mismatches(o32, want32);
  const float e32 = max_abs_diff(o32, want32);
  MESSAGE("sparse_attn bf16: " << bad16 << "/" << o16.size() << " differ, max "
                               << max_bf16_ulps(o16, want16) << " bf16 ulp; fp32: " << bad32
                               << " differ, max abs " << e32);
  CHECK(bad16 == 0);
  CHECK(e32 <= 2e-7f);  // measured 8.9e-8: fp32 summation order of the reference's torch ops

  // bf16 storage gives the same result as bf16-valued floats.
  const auto qb = as<bf16>(q);
  const auto kvb = as<bf16>(kv);
  std::vector<bf16> ob(q.size());
  dsv4::ops::sparse_attention<dsv4::ops::Bf16Act>(qb.data(), kvb.data(), sink.data(), idx.data(), s,
                                                  h, d, n, k, scale, ob.data());
  CHECK(bit_mismatches(widen(ob), o16) == 0);

  std::vector<std::int32_t> bad_idx(idx.begin(), idx.end());
  bad_idx[3] = static_cast<std::int32_t>(n);
  CHECK_THROWS_AS(
      dsv4::ops::sparse_attention<dsv4::ops::F32Act>(
          q.data(), kv.data(), sink.data(), bad_idx.data(), s, h, d, n, k, scale, o32.data()),
      dsv4::InputError);
}

namespace {
struct GemmInput {
  std::size_t m = 0, k = 0;
  std::vector<fp8_e4m3> xq;
  std::vector<float> xs;
};

GemmInput gemm_input() {
  GemmInput g;
  const auto x = as<bf16>(get("fp8_gemm.x"));
  g.m = dim("fp8_gemm.x", 0);
  g.k = dim("fp8_gemm.x", 1);
  g.xq.resize(g.m * g.k);
  g.xs.resize(g.m * g.k / 128);
  dsv4::ops::act_quant(x.data(), g.m, g.k, 128, dsv4::ops::ScaleFmt::ue8m0, g.xq.data(),
                       g.xs.data());
  return g;
}
}  // namespace

TEST_CASE("fp8_gemm: act_quant input and per-128-block scaled sums, one bf16 rounding") {
  const GemmInput g = gemm_input();
  CHECK(bit_mismatches(widen(g.xq), get("fp8_gemm.x_q")) == 0);
  CHECK(bit_mismatches(g.xs, get("fp8_gemm.x_scale")) == 0);

  const auto wv = get("fp8_gemm.w_q");
  const std::size_t n = dim("fp8_gemm.w_q", 0);
  std::vector<fp8_e4m3> w;
  for (float f : wv) {
    w.push_back(fp8_e4m3::from_float(f));
    REQUIRE(w.back().to_float() == f);
  }
  // Weight scales as the checkpoint stores them (ue8m0); the file holds their fp32 values.
  std::vector<dsv4::ue8m0> ws;
  for (float f : get("fp8_gemm.w_scale")) {
    ws.push_back(dsv4::ue8m0::ceil_pow2(f));
    REQUIRE(ws.back().to_float() == f);
  }
  std::vector<bf16> c(g.m * n);
  dsv4::ops::fp8_gemm(dsv4::ConstView2<fp8_e4m3>(g.xq.data(), g.m, g.k),
                      dsv4::ConstView2<float>(g.xs.data(), g.m, g.k / 128),
                      dsv4::ConstView2<fp8_e4m3>(w.data(), n, g.k),
                      dsv4::ConstView2<dsv4::ue8m0>(ws.data(), (n + 127) / 128, g.k / 128),
                      dsv4::View2<bf16>(c.data(), g.m, n));
  const auto want = get("fp8_gemm.out_bf16");
  MESSAGE("fp8_gemm: " << bit_mismatches(widen(c), want) << "/" << c.size() << " differ, max "
                       << max_bf16_ulps(widen(c), want) << " bf16 ulp");
  CHECK(max_bf16_ulps(widen(c), want) <= 1);
  CHECK(bit_mismatches(widen(c), want) == 0);

  CHECK_THROWS_AS(dsv4::ops::fp8_gemm(dsv4::ConstView2<fp8_e4m3>(g.xq.data(), g.m, g.k),
                                      dsv4::ConstView2<float>(g.xs.data(), g.m, g.k / 128),
                                      dsv4::ConstView2<fp8_e4m3>(w.data(), n, g.k),
                                      dsv4::ConstView2<dsv4::ue8m0>(ws.data(), 1, g.k / 128),
                                      dsv4::View2<bf16>(c.data(), g.m, n)),
                  dsv4::ShapeError);
}

TEST_CASE("fp4_gemm: packed E2M1 weights, per-32 scales, one bf16 rounding") {
  const GemmInput g = gemm_input();
  const auto wv = get("fp4_gemm.w_q");
  const std::size_t n = dim("fp4_gemm.w_q", 0);
  REQUIRE(dim("fp4_gemm.w_q", 1) == g.k);
  // Pack the codes two per byte, element 2i in the low nibble (the checkpoint's layout).
  std::vector<std::uint8_t> packed(n * g.k / 2, 0);
  for (std::size_t i = 0; i < wv.size(); ++i) {
    const fp4_e2m1 code = fp4_e2m1::from_float(wv[i]);
    REQUIRE(code.to_float() == wv[i]);
    packed[i / 2] |= static_cast<std::uint8_t>(i % 2 == 0 ? code.bits : code.bits << 4);
  }
  const auto ws = get("fp4_gemm.w_scale");
  std::vector<bf16> c(g.m * n);
  dsv4::ops::fp4_gemm(dsv4::ConstView2<fp8_e4m3>(g.xq.data(), g.m, g.k),
                      dsv4::ConstView2<float>(g.xs.data(), g.m, g.k / 128),
                      dsv4::ConstView2<std::uint8_t>(packed.data(), n, g.k / 2),
                      dsv4::ConstView2<float>(ws.data(), n, g.k / 32),
                      dsv4::View2<bf16>(c.data(), g.m, n));
  const auto want = get("fp4_gemm.out_bf16");
  MESSAGE("fp4_gemm: " << bit_mismatches(widen(c), want) << "/" << c.size() << " differ, max "
                       << max_bf16_ulps(widen(c), want) << " bf16 ulp");
  CHECK(max_bf16_ulps(widen(c), want) <= 1);
  CHECK(bit_mismatches(widen(c), want) == 0);
}
