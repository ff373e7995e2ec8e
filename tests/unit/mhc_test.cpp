// Hyper-connections (include/dsv4/layers/mhc.hpp) against the reference's recorded intermediates
// of tiny_a / tiny_b (golden reference README "Intermediates"). For every block (and the MTP
// block), from the recorded block input X and the recorded sub-layer outputs:
//   hc_pre(X)                      -> hc_attn.{mixes, pre, post, comb, y}
//   X1 = hc_post(attn.out, X)      -> hc_pre(X1) -> hc_ffn.{mixes, pre, post, comb, y}
//   X2 = hc_post(ffn.out, X1)      -> the next block's input (prefill.hidden_out after the last)
// and the final head: hc_head + norm + head on prefill.hidden_out -> prefill.logits_all (and the
// MTP block's own hc_head/norm on its output -> mtp.prefill.logits_all).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <dsv4/core/numerics.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/io/tensor_load.hpp>
#include <dsv4/layers/mhc.hpp>
#include <dsv4/model/load_layers.hpp>
#include <dsv4/ops/norm.hpp>
#include <dsv4/ops/sinkhorn.hpp>
#include <span>
#include <string>
#include <vector>

#include "reference_data.hpp"

namespace {

using dsv4::test::compare;
using dsv4::test::ErrorStats;
using dsv4::test::ErrorSummary;
using dsv4::test::reference_case;
using dsv4::test::ReferenceCase;

struct Fp32Run {
  using numerics = dsv4::ReferenceFp32Numerics;
  static constexpr const char* stem = "fp32";
  // fp32 mixing; the reference's fp32 GEMM sums in another order. Coefficients (mixes, pre, post,
  // comb) relative to their largest value; states relative to their largest value.
  static constexpr double coef_max_rel = 1e-5;
  static constexpr double state_max_rel = 1e-5;
  static constexpr double logits_max_abs = 1e-4;
};
struct Bf16Run {
  using numerics = dsv4::ReferenceNumerics;
  static constexpr const char* stem = "bf16";
  // The coefficients are fp32 in both runs; y and the states are bf16: a one-ulp flip (2^-8
  // relative) where the fp32 sum lands near a rounding boundary.
  static constexpr double coef_max_rel = 1e-5;
  static constexpr double state_max_rel = 8e-3;
  static constexpr double logits_max_abs = 2e-2;
};

/// Compares every field of a Mix and the sub-layer input with the recording `<p>hc_<site>.*`.
template <class Run>
void check_site(const dsv4::io::SafetensorsFile& inter, const std::string& key,
                const dsv4::HyperConnection<4>::Mix& mix, const std::vector<float>& u,
                ErrorSummary& coef, ErrorSummary& state) {
  for (const char* field : {"mixes", "pre", "post", "comb"}) {
    CAPTURE(std::string(field));
    const auto& got = std::string(field) == "mixes"  ? mix.mixes
                      : std::string(field) == "pre"  ? mix.pre
                      : std::string(field) == "post" ? mix.post
                                                     : mix.comb;
    const ErrorStats s = compare(got, inter.to_float(key + "." + field));
    INFO(s.str());
    CHECK(s.max_rel <= Run::coef_max_rel);
    coef.add(s);
  }
  const ErrorStats s = compare(u, inter.to_float(key + ".y"));
  INFO("y: ", s.str());
  CHECK(s.max_rel <= Run::state_max_rel);
  state.add(s);
}

template <class Run>
void check_case(const std::string& name) {
  using N = typename Run::numerics;
  const ReferenceCase& rc = reference_case(name);
  const auto* inter = rc.file(std::string("intermediates_") + Run::stem);
  if (inter == nullptr) {
    MESSAGE(fmt::format("{}: no {} intermediates in the repository, skipped", name, Run::stem));
    return;
  }
  const auto* golden = rc.file(std::string("golden_") + Run::stem);
  REQUIRE(golden != nullptr);
  const auto d = static_cast<std::size_t>(rc.cfg.dim);
  ErrorSummary coef;
  ErrorSummary state;
  ErrorSummary next;
  for (const std::string& block : rc.blocks()) {
    CAPTURE(block);
    const std::string p = ReferenceCase::intermediate_prefix(block);
    const bool is_mtp = block.rfind("mtp.", 0) == 0;
    const auto hc_attn = dsv4::load_hyper_connection(rc.weights, block + ".hc_attn", rc.cfg);
    const auto hc_ffn = dsv4::load_hyper_connection(rc.weights, block + ".hc_ffn", rc.cfg);

    std::vector<float> x = inter->to_float(p + "in");  // [T, 4, d]
    const std::size_t t = x.size() / (4 * d);
    std::vector<float> u(t * d);
    dsv4::HyperConnection<4>::Mix mix;
    hc_attn.pre<N>(x, u, mix);
    check_site<Run>(*inter, p + "hc_attn", mix, u, coef, state);
    hc_attn.post<N>(inter->to_float(p + "attn.out"), x, mix, x);  // in place

    hc_ffn.pre<N>(x, u, mix);
    check_site<Run>(*inter, p + "hc_ffn", mix, u, coef, state);
    hc_ffn.post<N>(inter->to_float(p + "ffn.out"), x, mix, x);

    std::vector<float> want;
    if (is_mtp) {
      want = inter->to_float(p + "out");
    } else {
      const int l = rc.layer_id(block);
      want = l + 1 < rc.cfg.n_layers
                 ? inter->to_float("prefill.layers." + std::to_string(l + 1) + ".in")
                 : golden->to_float("prefill.hidden_out");
    }
    const ErrorStats s = compare(x, want);
    INFO("block output: ", s.str());
    CHECK(s.max_rel <= Run::state_max_rel);
    next.add(s);
  }
  MESSAGE(fmt::format("{} {}: hc coefficients {}", name, Run::stem, coef.worst.str()));
  MESSAGE(fmt::format("{} {}: hc_pre outputs {}", name, Run::stem, state.worst.str()));
  MESSAGE(fmt::format("{} {}: block outputs (hc_post) {}", name, Run::stem, next.worst.str()));

  // Final heads: trunk (hc_head, norm) and MTP block (mtp.0.hc_head, mtp.0.norm); shared head.
  const auto v = static_cast<std::size_t>(rc.cfg.vocab_size);
  const auto head =
      dsv4::io::load_linear<dsv4::DenseLinear<dsv4::bf16>>(rc.weights, "head.weight", v, d);
  struct HeadCase {
    std::string prefix, state_key, logits_key;
    const dsv4::io::SafetensorsFile* state_file = nullptr;
  };
  const HeadCase heads[] = {
      {"", "prefill.hidden_out", "prefill.logits_all", golden},
      {"mtp.0.", "mtp_prefill.mtp.0.out", "mtp.prefill.logits_all", inter},
  };
  for (const HeadCase& hc : heads) {
    CAPTURE(hc.logits_key);
    const auto hc_head =
        dsv4::load_hyper_connection_head(rc.weights, hc.prefix + "hc_head", rc.cfg);
    const dsv4::RmsNorm norm{dsv4::io::load_float(rc.weights, hc.prefix + "norm.weight", {d}),
                             static_cast<float>(rc.cfg.norm_eps)};
    const auto x = hc.state_file->to_float(hc.state_key);
    const std::size_t t = x.size() / (4 * d);
    std::vector<float> y(t * d);
    hc_head.template collapse<N>(x, y);
    norm.forward<N>(y, y);
    std::vector<float> logits(t * v);
    head.forward<dsv4::Numerics<dsv4::Fp32Act, N::simulate_quant>>(
        dsv4::ConstView2<float>(y.data(), t, d), dsv4::View2<float>(logits.data(), t, v));
    const ErrorStats s = compare(logits, golden->to_float(hc.logits_key));
    MESSAGE(fmt::format("{} {}: {} from the recorded state: {}", name, Run::stem, hc.logits_key,
                        s.str()));
    CHECK(s.max_abs <= Run::logits_max_abs);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("hyper-connections reproduce the reference of every block", Run, Fp32Run,
                   Bf16Run) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    check_case<Run>(name);
  }
}

TEST_CASE("plain residual: x + f(norm(x)) with one stream") {
  constexpr std::size_t d = 3;
  const dsv4::PlainResidual r(d);
  const dsv4::RmsNorm norm{{1.0f, 2.0f, 0.5f}, 1e-6f};
  const auto e = dsv4::expand_streams(std::vector<float>{1, -2, 3, 0.5f, 0.5f, 1}, d, 1);
  std::vector<float> x(e.begin(), e.end());
  const std::vector<float> x0 = x;
  dsv4::residual_step<dsv4::PlainFp32Numerics>(r, norm, x,
                                               [](std::span<const float> u, std::span<float> a) {
                                                 for (std::size_t i = 0; i < u.size(); ++i)
                                                   a[i] = 2 * u[i];
                                               });
  std::vector<float> n(x0.size());
  norm.forward<dsv4::PlainFp32Numerics>(x0, n);
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(x[i] == x0[i] + 2 * n[i]);
  std::vector<float> y(x.size());
  dsv4::PlainHead(d).collapse<dsv4::PlainFp32Numerics>(x, y);
  CHECK(y == x);
}

TEST_CASE("hyper-connection: expanded identical streams and the residual_step wrapper") {
  const ReferenceCase& rc = reference_case("tiny_a");
  const auto d = static_cast<std::size_t>(rc.cfg.dim);
  const auto hc = dsv4::load_hyper_connection(rc.weights, "layers.0.hc_attn", rc.cfg);
  std::vector<float> e(2 * d);
  for (std::size_t i = 0; i < e.size(); ++i) e[i] = std::sin(0.3f * static_cast<float>(i));
  auto x = dsv4::expand_streams(e, d, 4);
  REQUIRE(x.size() == 8 * d);
  for (std::size_t s = 0; s < 4; ++s) CHECK(x[(4 + s) * d + 5] == e[d + 5]);
  // With a zero sub-layer the step only mixes the streams: X' = comb^T X.
  const dsv4::RmsNorm norm{std::vector<float>(d, 1.0f), 1e-6f};
  dsv4::HyperConnection<4>::Mix mix;
  const auto x0 = x;
  dsv4::residual_step<dsv4::ReferenceFp32Numerics>(
      hc, norm, x,
      [](std::span<const float>, std::span<float> a) { std::fill(a.begin(), a.end(), 0.f); }, &mix);
  REQUIRE(mix.tokens == 2);
  for (std::size_t j = 0; j < 4; ++j) {
    float want = 0;
    for (std::size_t i = 0; i < 4; ++i) want += mix.comb[16 + i * 4 + j] * x0[(4 + i) * d + 7];
    CHECK(x[(4 + j) * d + 7] == doctest::Approx(want).epsilon(1e-6));
  }
  // comb is doubly stochastic (up to the Sinkhorn tolerance).
  for (std::size_t j = 0; j < 4; ++j) {
    float col = 0;
    for (std::size_t i = 0; i < 4; ++i) col += mix.comb[i * 4 + j];
    CHECK(col == doctest::Approx(1.0).epsilon(1e-4));
  }
}

TEST_CASE("hyper-connections reject bad shapes and configs") {
  const ReferenceCase& rc = reference_case("tiny_a");
  const auto d = static_cast<std::size_t>(rc.cfg.dim);
  const auto hc = dsv4::load_hyper_connection(rc.weights, "layers.0.hc_attn", rc.cfg);
  // fn is the checkpoint's F32 tensor viewed in place (float32 products, no copy)
  CHECK(hc.fn().format_id() == dsv4::FormatId::f32);
  CHECK(hc.fn().semantics_name() == "dequant-dot");
  CHECK_FALSE(hc.fn().owns_bytes());
  dsv4::HyperConnection<4>::Mix mix;
  std::vector<float> x(4 * d + 1);
  std::vector<float> u(d);
  CHECK_THROWS_AS(hc.pre<dsv4::ReferenceNumerics>(x, u, mix), dsv4::ShapeError);
  x.resize(4 * d);
  CHECK_NOTHROW(hc.pre<dsv4::ReferenceNumerics>(x, u, mix));
  std::vector<float> out(4 * d);
  std::vector<float> f(d + 1);
  CHECK_THROWS_AS(hc.post<dsv4::ReferenceNumerics>(f, x, mix, out), dsv4::ShapeError);
  const std::vector<float> one = {1.0f};
  CHECK_THROWS_AS(
      dsv4::HyperConnection<4>(std::span<const float>(one), {}, {}, d, 1e-6f, 1e-6f, 20),
      dsv4::ShapeError);
  CHECK_THROWS_AS(dsv4::HyperConnectionHead<4>(dsv4::AnyLinear(), {}, {}, d, 1e-6f, 1e-6f),
                  dsv4::ShapeError);
  {  // fn in a stored format: the mixes with the partner's dots (the normalised row quantized)
    const std::size_t mw = dsv4::HyperConnection<4>::mix_width;
    const auto fn = dsv4::io::load_float(rc.weights, "layers.0.hc_attn_fn", {mw, 4 * d});
    const auto base = dsv4::io::load_float(rc.weights, "layers.0.hc_attn_base", {mw});
    const auto scale = dsv4::io::load_float(rc.weights, "layers.0.hc_attn_scale", {3});
    const dsv4::AnyLinear lin =
        dsv4::Linear<dsv4::F32>::quantize(dsv4::ConstView2<float>(fn.data(), mw, 4 * d));
    dsv4::HyperConnection<4> only(lin, base, scale, d, static_cast<float>(rc.cfg.norm_eps),
                                  static_cast<float>(rc.cfg.hc_eps), rc.cfg.hc_sinkhorn_iters);
    std::vector<float> z(4 * d);
    for (std::size_t i = 0; i < z.size(); ++i) z[i] = std::sin(0.37f * static_cast<float>(i));
    dsv4::HyperConnection<4>::Mix m1, m2;
    std::vector<float> u1(d), u2(d);
    hc.pre<dsv4::ReferenceFp32Numerics>(z, u1, m1);
    only.pre<dsv4::ReferenceFp32Numerics>(z, u2, m2);
    REQUIRE(m2.pre.size() == m1.pre.size());
    for (std::size_t i = 0; i < m1.pre.size(); ++i) CHECK(m2.pre[i] == doctest::Approx(m1.pre[i]));
    CHECK_THROWS_AS(dsv4::HyperConnection<4>(lin, base, scale, d + 1, 1e-6f, 1e-6f, 20),
                    dsv4::ShapeError);
  }
  dsv4::ModelConfig wrong = rc.cfg;
  wrong.hc_mult = 2;
  CHECK_THROWS_AS(dsv4::load_hyper_connection(rc.weights, "layers.0.hc_attn", wrong),
                  dsv4::ConfigError);
  CHECK_THROWS_WITH_AS(dsv4::load_hyper_connection(rc.weights, "layers.9.hc_attn", rc.cfg),
                       doctest::Contains("tensor 'layers.9.hc_attn_fn' is missing"),
                       dsv4::FormatError);
  wrong = rc.cfg;
  wrong.dim = 32;
  CHECK_THROWS_WITH_AS(dsv4::load_hyper_connection(rc.weights, "layers.0.hc_attn", wrong),
                       doctest::Contains("expected shape [24, 128], found [24, 256]"),
                       dsv4::FormatError);
}

// llama.cpp's numerics (ggml_order): the split and Sinkhorn of its DSV4_HC_COMB kernel, the FMA
// sums of DSV4_HC_PRE and DSV4_HC_POST, against llama.cpp's own nodes of layer 0 in the tiny Q8_0
// model's prefill (tests/data/llamacpp/ops/hc_layer0.*, 12 positions; pre and post are separate
// graph nodes there, rounded as the reference's formula).
TEST_CASE(
    "mHC under llama.cpp's order: its DSV4_HC_COMB, DSV4_HC_PRE and DSV4_HC_POST bit for bit") {
  namespace d = dsv4;
  const auto rd = [](const char* what) {
    return d::test::read_raw<float>(std::string("llamacpp/ops/hc_layer0.") + what + ".f32");
  };
  const auto mixes = rd("mixes"), scale = rd("scale"), base = rd("base");
  const auto pre_want = rd("pre"), post_want = rd("post"), comb_want = rd("comb");
  const auto x = rd("x"), pre_out = rd("pre_out"), f = rd("f"), post_out = rd("post_out");
  constexpr std::size_t kT = 12, kDim = 256;
  REQUIRE(mixes.size() == kT * 24);
  REQUIRE(scale.size() == 3);
  const auto same = [](const float* a, const float* b, std::size_t n) {
    return std::memcmp(a, b, n * sizeof(float)) == 0;
  };
  int comb_same = 0, comb_ref_same = 0, pre_same = 0, post_same = 0;
  d::HyperConnection<4>::Mix mix;
  mix.tokens = kT;
  mix.pre.resize(kT * 4);
  mix.post.resize(kT * 4);
  mix.comb.resize(kT * 16);
  for (std::size_t t = 0; t < kT; ++t) {
    float pre[4], post[4], comb[16], comb_ref[16];
    d::ops::hc_split_sinkhorn<4, true>(mixes.data() + 24 * t, scale.data(), base.data(), 20, 1e-6f,
                                       pre, post, comb);
    d::ops::hc_split_sinkhorn<4>(mixes.data() + 24 * t, scale.data(), base.data(), 20, 1e-6f, pre,
                                 post, comb_ref);
    comb_same += same(comb, comb_want.data() + 16 * t, 16);
    comb_ref_same += same(comb_ref, comb_want.data() + 16 * t, 16);
    pre_same += same(pre, pre_want.data() + 4 * t, 4);
    post_same += same(post, post_want.data() + 4 * t, 4);
    std::copy_n(pre_want.data() + 4 * t, 4, mix.pre.data() + 4 * t);
    std::copy_n(post_want.data() + 4 * t, 4, mix.post.data() + 4 * t);
    std::copy_n(comb_want.data() + 16 * t, 16, mix.comb.data() + 16 * t);
  }
  CHECK(comb_same == kT);
  CHECK(comb_ref_same < static_cast<int>(kT));  // the reference's Sinkhorn rounds otherwise
  CHECK(pre_same == kT);
  CHECK(post_same == kT);
  // DSV4_HC_PRE: Σ_i pre_i·x_i as an FMA chain
  std::vector<float> u(kT * kDim);
  for (std::size_t t = 0; t < kT; ++t) {
    d::detail::hc_weighted_sum<d::PlainFp32Numerics, true>(
        std::span<const float>(pre_want.data() + 4 * t, 4),
        std::span<const float>(x.data() + 4 * kDim * t, 4 * kDim), kDim,
        std::span<float>(u.data() + kDim * t, kDim));
  }
  CHECK(same(u.data(), pre_out.data(), u.size()));
  // DSV4_HC_POST: post_j·f, then FMAs of comb_ij·x_i
  const d::HyperConnection<4> hc(
      d::f32_linear(std::vector<float>(24 * 4 * kDim, 0.0f), 24, 4 * kDim),
      std::vector<float>(base), std::vector<float>(scale), kDim, 1e-6f, 1e-6f, 20);
  std::vector<float> out(kT * 4 * kDim), out_ref(kT * 4 * kDim);
  hc.post<d::PlainFp32Numerics>(f, x, mix, out);
  hc.post<d::ReferenceFp32Numerics>(f, x, mix, out_ref);
  CHECK(same(out.data(), post_out.data(), out.size()));
  CHECK(!same(out_ref.data(), post_out.data(), out.size()));
}
