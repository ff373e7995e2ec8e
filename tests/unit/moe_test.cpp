// MoE layer and routers (include/dsv4/layers/moe.hpp, routers.hpp) against the reference's recorded
// FFN intermediates of tiny_a / tiny_b (golden reference README "Intermediates"): fed with
// `prefill.layers.L.ffn.in` and the token ids, every block (hash- and score-routed, and the MTP
// block) must reproduce `ffn.out` and the routing (`ffn.gate.indices` as sets, `ffn.gate.weights`).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dsv4/core/numerics.hpp>
#include <dsv4/layers/moe.hpp>
#include <dsv4/layers/routers.hpp>
#include <dsv4/model/load_layers.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "reference_data.hpp"

namespace {

using dsv4::test::compare;
using dsv4::test::ErrorStats;
using dsv4::test::ErrorSummary;
using dsv4::test::read_i32;
using dsv4::test::reference_case;
using dsv4::test::ReferenceCase;

using HashMoe = dsv4::Moe<dsv4::HashRouter<>>;
using ScoreMoe = dsv4::Moe<dsv4::TopKRouter<>>;

/// Test parameters: which numerics, which recorded run, the tolerances and why.
struct Fp32Run {
  using numerics = dsv4::ReferenceFp32Numerics;
  static constexpr const char* stem = "fp32";
  // Same operations in fp32; only the summation order of the dot products differs (measured
  // 1.8e-7 of the largest output).
  static constexpr double out_max_rel = 2e-6;
  static constexpr double weight_abs = 1e-5;
};
struct Bf16Run {
  using numerics = dsv4::ReferenceNumerics;
  static constexpr const char* stem = "bf16";
  // Measured bit-exact (same operations, same ascending fp32 summation as the reference's CPU
  // bf16 linear). Allowed: two bf16 ulps of the largest output, for a summation-order flip.
  static constexpr double out_max_rel = 8e-3;
  static constexpr double weight_abs = 1e-5;  // the gate is fp32 in both runs
};

/// Routing of one block compared with the recording: sets of experts equal per token, weights
/// matched by expert id. Returns the max weight error.
double check_routing(const dsv4::Routing& rt, const std::vector<std::int32_t>& want_idx,
                     const std::vector<float>& want_w) {
  REQUIRE(want_idx.size() == rt.tokens * rt.k);
  double max_err = 0;
  std::size_t set_mismatch = 0;
  for (std::size_t t = 0; t < rt.tokens; ++t) {
    for (std::size_t j = 0; j < rt.k; ++j) {
      const std::int32_t e = want_idx[t * rt.k + j];
      const auto* begin = rt.experts.data() + t * rt.k;
      const auto* it = std::find(begin, begin + rt.k, e);
      if (it == begin + rt.k) {
        ++set_mismatch;
        continue;
      }
      const double d = std::fabs(rt.weights[t * rt.k + static_cast<std::size_t>(it - begin)] -
                                 want_w[t * rt.k + j]);
      max_err = std::max(max_err, d);
    }
  }
  CHECK(set_mismatch == 0);
  return max_err;
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
  const auto tokens = read_i32(*golden, "tokens");
  const auto mtp_tokens = read_i32(*golden, "mtp.tokens");

  ErrorSummary out_err;
  double w_err = 0;
  for (const std::string& block : rc.blocks()) {
    CAPTURE(block);
    const std::string p = ReferenceCase::intermediate_prefix(block);
    const bool is_mtp = block.rfind("mtp.", 0) == 0;
    const auto& tok = is_mtp ? mtp_tokens : tokens;
    const auto x = inter->to_float(p + "ffn.in");
    const auto want = inter->to_float(p + "ffn.out");
    std::vector<float> got(x.size());
    dsv4::Routing rt;
    if (rc.cfg.is_hash_layer(rc.layer_id(block))) {
      const auto moe = dsv4::load_moe<dsv4::HashRouter<>>(rc.weights, block + ".ffn", rc.cfg);
      moe.template forward<N>(x, tok, got, &rt);
    } else {
      const auto moe = dsv4::load_moe<dsv4::TopKRouter<>>(rc.weights, block + ".ffn", rc.cfg);
      moe.template forward<N>(x, tok, got, &rt);
    }
    w_err = std::max(w_err, check_routing(rt, read_i32(*inter, p + "ffn.gate.indices"),
                                          inter->to_float(p + "ffn.gate.weights")));
    const ErrorStats s = compare(got, want);
    INFO("ffn.out max abs ", s.max_abs, ", max rel ", s.max_rel, ", rel-L2 ", s.rel_l2);
    CHECK(s.max_rel <= Run::out_max_rel);
    out_err.add(s);
  }
  MESSAGE(fmt::format("{} {}: ffn.out of every block: {}; gate weights max abs {:.3g}", name,
                      Run::stem, out_err.worst.str(), w_err));
  CHECK(w_err <= Run::weight_abs);
}

}  // namespace

TEST_CASE_TEMPLATE("MoE reproduces the reference FFN of every block", Run, Fp32Run, Bf16Run) {
  for (const std::string name : {"tiny_a", "tiny_b"}) {
    CAPTURE(name);
    check_case<Run>(name);
  }
}

// ---- routers on synthetic data -----------------------------------------------------------------

namespace {

/// A gate whose raw logits for the one-hot input row i are row i of `logits` ([E, E]).
dsv4::AnyLinear gate_from_logits(const std::vector<float>& logits, std::size_t e) {
  std::vector<float> w(e * e);
  for (std::size_t o = 0; o < e; ++o) {
    for (std::size_t i = 0; i < e; ++i) w[o * e + i] = logits[i * e + o];
  }
  return dsv4::f32_linear(w, e, e);
}

std::vector<float> one_hot_rows(std::size_t e) {
  std::vector<float> x(e * e, 0.0f);
  for (std::size_t i = 0; i < e; ++i) x[i * e + i] = 1.0f;
  return x;
}

}  // namespace

TEST_CASE_TEMPLATE("TopKRouter: selection on biased scores, weights from unbiased scores", S,
                   dsv4::SqrtSoftplus, dsv4::Softmax, dsv4::Sigmoid) {
  constexpr std::size_t e = 6;
  constexpr std::size_t k = 2;
  std::vector<float> logits(e * e);
  for (std::size_t i = 0; i < e * e; ++i) logits[i] = std::sin(0.7f * static_cast<float>(i)) * 3;
  logits[0] = 25.0f;  // softplus threshold branch
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 100.0f};  // expert 5 always wins
  const dsv4::TopKRouter<S> r(gate_from_logits(logits, e), bias, k, 1.5f);
  const auto x = one_hot_rows(e);
  const dsv4::Routing rt = dsv4::route(r, x, {});
  REQUIRE(rt.tokens == e);
  for (std::size_t t = 0; t < e; ++t) {
    CAPTURE(t);
    std::vector<float> s(logits.begin() + static_cast<std::ptrdiff_t>(t * e),
                         logits.begin() + static_cast<std::ptrdiff_t>((t + 1) * e));
    S::apply(s);
    CHECK(rt.experts[t * k] == 5);
    // The second pick is the best unbiased score among experts 0..4.
    const auto best = std::max_element(s.begin(), s.begin() + 5) - s.begin();
    CHECK(rt.experts[t * k + 1] == best);
    const float w5 = s[5];
    const float wb = s[static_cast<std::size_t>(best)];
    const float sum = S::renormalise ? w5 + wb : 1.0f;
    CHECK(rt.weights[t * k] == doctest::Approx(w5 / sum * 1.5f).epsilon(1e-6));
    CHECK(rt.weights[t * k + 1] == doctest::Approx(wb / sum * 1.5f).epsilon(1e-6));
  }
}

TEST_CASE("score functions follow PyTorch") {
  std::vector<float> a = {-30.0f, 0.0f, 20.0f, 20.5f};
  dsv4::SqrtSoftplus::apply(a);
  CHECK(a[0] == doctest::Approx(std::sqrt(std::log1p(std::exp(-30.0)))));
  CHECK(a[1] == doctest::Approx(std::sqrt(std::log(2.0))));
  CHECK(a[2] == doctest::Approx(std::sqrt(std::log1p(std::exp(20.0)))));
  CHECK(a[3] == std::sqrt(20.5f));  // above the threshold softplus is the identity
  std::vector<float> b = {1.0f, 2.0f, 3.0f};
  dsv4::Softmax::apply(b);
  CHECK(b[0] + b[1] + b[2] == doctest::Approx(1.0));
  CHECK(b[2] / b[1] == doctest::Approx(std::exp(1.0)));
}

TEST_CASE("HashRouter: experts from the table, weights from the gate") {
  constexpr std::size_t e = 4;
  std::vector<float> logits(e * e);
  for (std::size_t i = 0; i < e * e; ++i) logits[i] = 0.1f * static_cast<float>(i);
  const std::vector<std::int32_t> table = {3, 1, 0, 2, 2, 3, 1, 0};  // vocab 4, k 2
  const dsv4::HashRouter<> r(gate_from_logits(logits, e), table, 4, 2, 2.5f);
  const auto x = one_hot_rows(e);
  const std::vector<std::int32_t> tokens = {2, 0, 3, 1};
  const dsv4::Routing rt = dsv4::route(r, x, tokens);
  for (std::size_t t = 0; t < e; ++t) {
    CAPTURE(t);
    std::vector<float> s(logits.begin() + static_cast<std::ptrdiff_t>(t * e),
                         logits.begin() + static_cast<std::ptrdiff_t>((t + 1) * e));
    dsv4::SqrtSoftplus::apply(s);
    const auto row = static_cast<std::size_t>(tokens[t]) * 2;
    CHECK(rt.experts[t * 2] == table[row]);
    CHECK(rt.experts[t * 2 + 1] == table[row + 1]);
    const float a = s[static_cast<std::size_t>(table[row])];
    const float b = s[static_cast<std::size_t>(table[row + 1])];
    CHECK(rt.weights[t * 2] + rt.weights[t * 2 + 1] == doctest::Approx(2.5));
    CHECK(rt.weights[t * 2] == doctest::Approx(a / (a + b) * 2.5f));
  }
}

TEST_CASE("MoE without a shared expert equals the sum of its routed experts") {
  constexpr std::size_t d = 4;
  constexpr std::size_t inter = 3;
  auto lin = [](std::size_t out, std::size_t in, float seed) {
    std::vector<dsv4::bf16> w(out * in);
    for (std::size_t i = 0; i < w.size(); ++i) {
      w[i] = dsv4::bf16(std::cos(seed + 0.37f * static_cast<float>(i)));
    }
    return dsv4::DenseLinear<dsv4::bf16>(w, out, in);
  };
  std::vector<dsv4::Expert<>> experts;
  for (int e = 0; e < 3; ++e) {
    const auto s = static_cast<float>(e);
    experts.emplace_back(lin(inter, d, s), lin(d, inter, s + 1), lin(inter, d, s + 2), 0.0f);
  }
  std::vector<float> gate(3 * d);
  for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = std::sin(static_cast<float>(i));
  const dsv4::Moe<dsv4::TopKRouter<dsv4::Sigmoid>> moe(
      dsv4::TopKRouter<dsv4::Sigmoid>(dsv4::f32_linear(gate, 3, d), {}, 1, 1.0f),
      std::move(experts), {});
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.25f, 1.0f, 1.0f, -0.5f, 0.0f};
  std::vector<float> out(x.size());
  dsv4::Routing rt;
  moe.forward<dsv4::PlainFp32Numerics>(x, {}, out, &rt);
  for (std::size_t t = 0; t < 2; ++t) {
    CHECK(rt.weights[t] == doctest::Approx(1.0));  // top-1 renormalised
    std::vector<float> want(d);
    moe.expert(static_cast<std::size_t>(rt.experts[t]))
        .forward<dsv4::PlainFp32Numerics>(dsv4::ConstView2<float>(x.data() + t * d, 1, d),
                                          std::vector<float>{rt.weights[t]},
                                          dsv4::View2<float>(want.data(), 1, d));
    for (std::size_t c = 0; c < d; ++c) CHECK(out[t * d + c] == want[c]);
  }
}

TEST_CASE("MoE and routers reject bad input with clear errors") {
  const ReferenceCase& rc = reference_case("tiny_a");
  const auto d = static_cast<std::size_t>(rc.cfg.dim);
  const auto moe = dsv4::load_moe<dsv4::HashRouter<>>(rc.weights, "layers.0.ffn", rc.cfg);
  std::vector<float> x(2 * d, 0.1f);
  std::vector<float> out(2 * d);
  const std::vector<std::int32_t> tok = {1, 2};
  // Hash routing needs one token id per row, inside the vocabulary.
  CHECK_THROWS_AS(moe.forward<dsv4::ReferenceNumerics>(x, {}, out), dsv4::ShapeError);
  CHECK_THROWS_AS(moe.forward<dsv4::ReferenceNumerics>(x, std::vector<std::int32_t>{1, 512}, out),
                  dsv4::InputError);
  CHECK_THROWS_AS(moe.forward<dsv4::ReferenceNumerics>(x, std::vector<std::int32_t>{-1, 0}, out),
                  dsv4::InputError);
  // Shapes.
  std::vector<float> bad_x(2 * d + 1);
  CHECK_THROWS_AS(moe.forward<dsv4::ReferenceNumerics>(bad_x, tok, out), dsv4::ShapeError);
  std::vector<float> short_out(d);
  CHECK_THROWS_AS(moe.forward<dsv4::ReferenceNumerics>(x, tok, short_out), dsv4::ShapeError);
  // Tables with an expert id out of range or a repeated expert.
  const dsv4::AnyLinear g = dsv4::f32_linear(std::vector<float>(8, 0.0f), 4, 2);
  CHECK_THROWS_WITH_AS(dsv4::HashRouter<>(g, {0, 1, 2, 4}, 2, 2, 1.0f),
                       "HashRouter: tid2eid[1][1] = 4 is not an expert id in [0, 4)",
                       dsv4::ConfigError);
  CHECK_THROWS_AS(dsv4::HashRouter<>(g, {0, 1, -1, 2}, 2, 2, 1.0f), dsv4::ConfigError);
  CHECK_THROWS_WITH_AS(dsv4::HashRouter<>(g, {0, 1, 3, 3}, 2, 2, 1.0f),
                       "HashRouter: tid2eid row 1 names expert 3 twice", dsv4::ConfigError);
  CHECK_THROWS_AS(dsv4::HashRouter<>(g, {0, 1, 3}, 2, 2, 1.0f), dsv4::ShapeError);
  CHECK_THROWS_AS(dsv4::TopKRouter<>(g, {}, 5, 1.0f), dsv4::ConfigError);
  CHECK_THROWS_AS(dsv4::TopKRouter<>(g, {1.0f}, 2, 1.0f), dsv4::ShapeError);
  // Experts that do not fit together or the router.
  const dsv4::DenseLinear<dsv4::bf16> a(std::vector<dsv4::bf16>(6), 3, 2);
  const dsv4::DenseLinear<dsv4::bf16> b(std::vector<dsv4::bf16>(6), 2, 3);
  CHECK_THROWS_AS(dsv4::Expert<>(a, a, a, 0.0f), dsv4::ShapeError);
  CHECK_NOTHROW(dsv4::Expert<>(a, b, a, 0.0f));
  CHECK_THROWS_AS((dsv4::Moe<dsv4::TopKRouter<>>(dsv4::TopKRouter<>(g, {}, 1, 1.0f),
                                                 {dsv4::Expert<>(a, b, a, 0.0f)}, {})),
                  dsv4::ShapeError);
  // Loading: a missing tensor, a wrong shape, a score function the router was not built for.
  CHECK_THROWS_AS(dsv4::load_moe<dsv4::TopKRouter<>>(rc.weights, "layers.0.ffn", rc.cfg),
                  dsv4::FormatError);  // hash layer: no gate.bias
  dsv4::ModelConfig wrong = rc.cfg;
  wrong.moe_inter_dim += 1;
  CHECK_THROWS_AS(dsv4::load_moe<dsv4::HashRouter<>>(rc.weights, "layers.0.ffn", wrong),
                  dsv4::FormatError);
  wrong = rc.cfg;
  wrong.score_func = "sigmoid";
  CHECK_THROWS_AS(dsv4::load_moe<dsv4::HashRouter<>>(rc.weights, "layers.0.ffn", wrong),
                  dsv4::ConfigError);
  wrong = rc.cfg;
  wrong.n_activated_experts = 3;  // tid2eid is [vocab, 2]
  CHECK_THROWS_AS(dsv4::load_moe<dsv4::HashRouter<>>(rc.weights, "layers.0.ffn", wrong),
                  dsv4::FormatError);
}

TEST_CASE_TEMPLATE("MoE order: the reference's (weight before w2, expert order) or llama.cpp's", N,
                   dsv4::ReferenceFp32Numerics, dsv4::PlainFp32Numerics) {
  // 4 experts, top-2 on biased scores with the bias making the slot order differ from the
  // expert order (slot 0 = expert 3); a shared expert.
  constexpr std::size_t d = 5, inter = 3, e = 4, k = 2, t = 3;
  auto lin = [](std::size_t out, std::size_t in, float seed) {
    std::vector<float> w(out * in);
    for (std::size_t i = 0; i < w.size(); ++i)
      w[i] = std::cos(seed + 0.61f * static_cast<float>(i));
    return dsv4::DenseLinear<float>(w, out, in);
  };
  std::vector<dsv4::Expert<dsv4::DenseLinear<float>>> experts;
  for (std::size_t j = 0; j < e; ++j) {
    const auto s = static_cast<float>(3 * j);
    experts.emplace_back(lin(inter, d, s), lin(d, inter, s + 1), lin(inter, d, s + 2), 7.0f);
  }
  std::optional<dsv4::Expert<dsv4::DenseLinear<float>>> shared;
  shared.emplace(lin(inter, d, 20), lin(d, inter, 21), lin(inter, d, 22), 7.0f);
  std::vector<float> gate(e * d);
  for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = std::sin(1.3f * static_cast<float>(i));
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, 50.0f};
  using M = dsv4::Moe<dsv4::TopKRouter<dsv4::SqrtSoftplus>, dsv4::DenseLinear<float>>;
  const M moe(dsv4::TopKRouter<dsv4::SqrtSoftplus>(dsv4::f32_linear(gate, e, d), bias, k, 1.5f),
              std::move(experts), std::move(shared));
  std::vector<float> x(t * d);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.9f * static_cast<float>(i) + 0.2f);
  std::vector<float> out(x.size());
  dsv4::Routing rt;
  moe.forward<N>(x, {}, out, &rt);
  constexpr bool ggml = dsv4::ggml_order<N>();
  for (std::size_t r = 0; r < t; ++r) {
    CAPTURE(r);
    REQUIRE(rt.experts[r * k] == 3);
    const dsv4::ConstView2<float> xr(x.data() + r * d, 1, d);
    std::vector<float> want(d, 0.0f), y(d);
    std::vector<std::size_t> order = {0, 1};                                 // slots
    if (!ggml && rt.experts[r * k + 1] < rt.experts[r * k]) order = {1, 0};  // ascending expert
    for (const std::size_t s : order) {
      const float w = rt.weights[r * k + s];
      const auto& ex = moe.expert(static_cast<std::size_t>(rt.experts[r * k + s]));
      if (ggml) {
        ex.forward<N>(xr, {}, dsv4::View2<float>(y.data(), 1, d));
        for (float& v : y) v = v * w;
      } else {
        ex.forward<N>(xr, std::vector<float>{w}, dsv4::View2<float>(y.data(), 1, d));
      }
      for (std::size_t c = 0; c < d; ++c) want[c] += y[c];
    }
    moe.shared_expert()->forward<N>(xr, {}, dsv4::View2<float>(y.data(), 1, d));
    for (std::size_t c = 0; c < d; ++c) CHECK(out[r * d + c] == want[c] + y[c]);
  }
}
