// MoE routers as policies: a score function (sqrt-softplus, softmax, sigmoid) and a selection rule
// (top-k over the scores plus an optional selection bias, or a fixed token-id -> experts table).
//
// Spec: spec/architecture.md §7.1 and §12 item 23. Reference: `Gate` in inference/model.py.
// Numerics: the whole gate is an fp32 island in the reference (fp32 GEMM of the activation with
// the widened gate weight, fp32 scores and weights), whatever the activation precision, so the
// routers take no numerics policy. The gate GEMM and the top-k run on a backend when route() is
// given one (the reference backend otherwise); the score functions are applied in place.
//   scores  s = score_fn(x · Wᵀ)                                    [T, E]
//   experts   top-k of (s + bias) (score routers) or tid2eid[token] (hash routers)
//   weights w = s[experts], divided by their sum unless score_fn is softmax, times route_scale
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"

namespace dsv4 {

// ---- score functions ---------------------------------------------------------------------------

/// V4's gate activation: sqrt(softplus(a)), softplus with PyTorch's threshold (a > 20 -> a).
struct SqrtSoftplus {
  static constexpr const char* name = "sqrtsoftplus";
  /// Whether the selected weights are divided by their sum (every function except softmax).
  static constexpr bool renormalise = true;
  static void apply(std::span<float> a) noexcept {
    for (float& v : a) v = std::sqrt(v > 20.0f ? v : std::log1p(std::exp(v)));
  }
};

/// Softmax over all experts (DeepSeek-V2 style); weights are not renormalised.
struct Softmax {
  static constexpr const char* name = "softmax";
  static constexpr bool renormalise = false;
  static void apply(std::span<float> a) noexcept {
    if (a.empty()) return;
    const float mx = *std::max_element(a.begin(), a.end());
    float sum = 0.0f;
    for (float& v : a) {
      v = std::exp(v - mx);
      sum += v;
    }
    for (float& v : a) v = v / sum;
  }
};

/// Logistic sigmoid per expert (DeepSeek-V3 style).
struct Sigmoid {
  static constexpr const char* name = "sigmoid";
  static constexpr bool renormalise = true;
  static void apply(std::span<float> a) noexcept {
    for (float& v : a) v = 1.0f / (1.0f + std::exp(-v));
  }
};

/// A gate activation applied in place to one token's E raw gate values.
template <class S>
concept ScoreFunction = requires(std::span<float> a) {
  { S::name } -> std::convertible_to<const char*>;
  { S::renormalise } -> std::convertible_to<bool>;
  S::apply(a);
};

// ---- the router concept ------------------------------------------------------------------------

/// What a router provides: sizes, whether it reads token ids, and
/// `route(x [T, dim], tokens [T], weights [T, k], experts [T, k])`. A router may also offer
/// `route(backend, x, tokens, weights, experts)` (`BackendRouter`), which the MoE then uses.
template <class R>
concept Router = requires(const R& r, std::span<const float> x, std::span<const std::int32_t> tok,
                          std::span<float> w, std::span<std::int32_t> e) {
  { r.dim() } -> std::convertible_to<std::size_t>;
  { r.n_experts() } -> std::convertible_to<std::size_t>;
  { r.top_k() } -> std::convertible_to<std::size_t>;
  { R::needs_tokens } -> std::convertible_to<bool>;
  r.route(x, tok, w, e);
};

/// Router R can run its gate on backend B.
template <class R, class B>
concept BackendRouter = Router<R> && Backend<B> &&
    requires(const R& r, const B& b, std::span<const float> x, std::span<const std::int32_t> tok,
             std::span<float> w, std::span<std::int32_t> e) {
  r.route(b, x, tok, w, e);
};

/// The routing decision of a call, kept for inspection: [tokens, k] expert ids and weights.
struct Routing {
  std::size_t tokens = 0;
  std::size_t k = 0;
  ScratchBuffer<std::int32_t> experts;  // [tokens, k]
  ScratchBuffer<float> weights;         // [tokens, k]
};

namespace detail {

/// The shared part of every gate: weight [E, dim], score function, k, route_scale.
template <ScoreFunction S>
class GateCore {
 public:
  GateCore() = default;
  GateCore(AnyLinear weight, std::size_t top_k, float route_scale)
      : w_(std::move(weight)), k_(top_k), route_scale_(route_scale) {
    DSV4_CHECK(w_.out_features() > 0 && w_.in_features() > 0, ShapeError,
               "router: empty gate weight [{}, {}]", w_.out_features(), w_.in_features());
    DSV4_CHECK(k_ >= 1 && k_ <= w_.out_features(), ConfigError,
               "router: top_k = {} must be in [1, n_experts = {}]", k_, w_.out_features());
  }

  std::size_t dim() const noexcept { return w_.in_features(); }
  std::size_t n_experts() const noexcept { return w_.out_features(); }
  std::size_t top_k() const noexcept { return k_; }
  float route_scale() const noexcept { return route_scale_; }
  const AnyLinear& weight() const noexcept { return w_; }

  /// Checks a route() call's shapes; returns the token count T.
  std::size_t check(const char* what, std::span<const float> x, std::span<float> weights,
                    std::span<std::int32_t> experts) const {
    const std::size_t d = dim();
    DSV4_CHECK(x.size() % d == 0, ShapeError,
               "{}: input of {} values is not a whole number of rows of dim {}", what, x.size(), d);
    const std::size_t t = x.size() / d;
    DSV4_CHECK(weights.size() == t * k_ && experts.size() == t * k_, ShapeError,
               "{}: {} tokens with top_k {} need weights and experts of {} values, got {} and {}",
               what, t, k_, t * k_, weights.size(), experts.size());
    return t;
  }

  /// Unbiased scores of every token: [T, E], fp32 (the gate GEMM on backend b).
  template <Backend B>
  ScratchBuffer<float> scores(const B& b, std::span<const float> x, std::size_t t) const {
    const std::size_t e = n_experts();
    ScratchBuffer<float> s(t * e);
    backend_linear<PlainFp32Numerics>(b, w_, ConstView2<float>(x.data(), t, dim()),
                                      View2<float>(s.data(), t, e));
    for (std::size_t r = 0; r < t; ++r) S::apply(std::span<float>(s).subspan(r * e, e));
    return s;
  }

  /// Weights of one token from its unbiased scores and chosen experts.
  void weigh(std::span<const float> s, std::span<const std::int32_t> idx,
             std::span<float> w) const noexcept {
    for (std::size_t j = 0; j < idx.size(); ++j) w[j] = s[static_cast<std::size_t>(idx[j])];
    if constexpr (S::renormalise) {
      float sum = 0.0f;
      for (float v : w) sum += v;
      for (float& v : w) v = v / sum;  // no epsilon, as the reference
    }
    for (float& v : w) v = v * route_scale_;
  }

 private:
  AnyLinear w_;  // [E, dim], float32 products of the stored weight
  std::size_t k_ = 0;
  float route_scale_ = 1.0f;
};

}  // namespace detail

// ---- score-based top-k routing -----------------------------------------------------------------

/// Top-k over `score_fn(x · Wᵀ) + bias` (the bias only steers the selection; an empty bias means
/// none). V4 uses `TopKRouter<SqrtSoftplus>` with a bias in every non-hash layer and the MTP block.
template <ScoreFunction S = SqrtSoftplus>
class TopKRouter {
 public:
  using score_function = S;
  static constexpr bool needs_tokens = false;

  TopKRouter() = default;
  /// gate: [E, dim]; bias: [E] or empty; 1 <= top_k <= E.
  TopKRouter(AnyLinear gate, std::vector<float> bias, std::size_t top_k, float route_scale)
      : core_(std::move(gate), top_k, route_scale), bias_(std::move(bias)) {
    DSV4_CHECK(bias_.empty() || bias_.size() == core_.n_experts(), ShapeError,
               "TopKRouter: selection bias of {} values for {} experts", bias_.size(),
               core_.n_experts());
  }

  std::size_t dim() const noexcept { return core_.dim(); }
  std::size_t n_experts() const noexcept { return core_.n_experts(); }
  std::size_t top_k() const noexcept { return core_.top_k(); }
  /// The gate weight [E, dim] in its stored format.
  const AnyLinear& weight() const noexcept { return core_.weight(); }
  std::span<const float> bias() const noexcept { return bias_; }

  /// x: [T, dim]; tokens: ignored (may be empty); weights, experts: [T, k] (descending biased
  /// score order). The gate GEMM and the top-k run on backend b.
  template <Backend B>
  void route(const B& b, std::span<const float> x, std::span<const std::int32_t> /*tokens*/,
             std::span<float> weights, std::span<std::int32_t> experts) const {
    const std::size_t t = core_.check("TopKRouter", x, weights, experts);
    const std::size_t e = n_experts();
    const std::size_t k = top_k();
    const ScratchBuffer<float> s = core_.scores(b, x, t);
    ScratchBuffer<float> biased(e);
    for (std::size_t r = 0; r < t; ++r) {
      const std::span<const float> sr = std::span<const float>(s).subspan(r * e, e);
      for (std::size_t i = 0; i < e; ++i) biased[i] = bias_.empty() ? sr[i] : sr[i] + bias_[i];
      const auto idx = experts.subspan(r * k, k);
      b.top_k(biased, idx);
      core_.weigh(sr, idx, weights.subspan(r * k, k));
    }
  }
  /// As above on the reference backend.
  void route(std::span<const float> x, std::span<const std::int32_t> tokens,
             std::span<float> weights, std::span<std::int32_t> experts) const {
    route(ReferenceBackend{}, x, tokens, weights, experts);
  }

 private:
  detail::GateCore<S> core_;
  std::vector<float> bias_;
};

// ---- hash routing ------------------------------------------------------------------------------

/// Experts fixed per token id by a table `tid2eid` [vocab, k]; the weights still come from the
/// gate's scores of those experts (spec §12 item 23). V4's first n_hash_layers blocks.
template <ScoreFunction S = SqrtSoftplus>
class HashRouter {
 public:
  using score_function = S;
  static constexpr bool needs_tokens = true;

  HashRouter() = default;
  /// gate: [E, dim]; tid2eid: [vocab, top_k] row-major, every id in [0, E), no id repeated within
  /// a row (the reference's indexed accumulation would drop a repeated expert's contribution).
  HashRouter(AnyLinear gate, std::vector<std::int32_t> tid2eid, std::size_t vocab,
             std::size_t top_k, float route_scale)
      : core_(std::move(gate), top_k, route_scale), table_(std::move(tid2eid)), vocab_(vocab) {
    DSV4_CHECK(table_.size() == vocab_ * top_k, ShapeError,
               "HashRouter: tid2eid of {} values, expected [vocab {}, top_k {}]", table_.size(),
               vocab_, top_k);
    const auto e = static_cast<std::int64_t>(core_.n_experts());
    for (std::size_t v = 0; v < vocab_; ++v) {
      for (std::size_t j = 0; j < top_k; ++j) {
        const std::int32_t id = table_[v * top_k + j];
        DSV4_CHECK(id >= 0 && id < e, ConfigError,
                   "HashRouter: tid2eid[{}][{}] = {} is not an expert id in [0, {})", v, j, id, e);
        for (std::size_t i = 0; i < j; ++i) {
          DSV4_CHECK(table_[v * top_k + i] != id, ConfigError,
                     "HashRouter: tid2eid row {} names expert {} twice", v, id);
        }
      }
    }
  }

  std::size_t dim() const noexcept { return core_.dim(); }
  std::size_t n_experts() const noexcept { return core_.n_experts(); }
  std::size_t top_k() const noexcept { return core_.top_k(); }
  std::size_t vocab_size() const noexcept { return vocab_; }
  /// The gate weight [E, dim] in its stored format.
  const AnyLinear& weight() const noexcept { return core_.weight(); }
  std::span<const std::int32_t> table() const noexcept { return table_; }

  /// x: [T, dim]; tokens: [T] ids in [0, vocab); weights, experts: [T, k] (table order). The gate
  /// GEMM runs on backend b.
  template <Backend B>
  void route(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
             std::span<float> weights, std::span<std::int32_t> experts) const {
    const std::size_t t = core_.check("HashRouter", x, weights, experts);
    DSV4_CHECK(tokens.size() == t, ShapeError,
               "HashRouter: {} token ids for {} input rows (hash routing needs the token ids)",
               tokens.size(), t);
    for (std::size_t r = 0; r < t; ++r) {
      DSV4_CHECK(tokens[r] >= 0 && static_cast<std::size_t>(tokens[r]) < vocab_, InputError,
                 "HashRouter: token id {} at row {} is outside the vocabulary [0, {})", tokens[r],
                 r, vocab_);
    }
    const std::size_t e = n_experts();
    const std::size_t k = top_k();
    const ScratchBuffer<float> s = core_.scores(b, x, t);
    for (std::size_t r = 0; r < t; ++r) {
      const auto idx = experts.subspan(r * k, k);
      const auto row = static_cast<std::size_t>(tokens[r]) * k;
      for (std::size_t j = 0; j < k; ++j) idx[j] = table_[row + j];
      core_.weigh(std::span<const float>(s).subspan(r * e, e), idx, weights.subspan(r * k, k));
    }
  }
  /// As above on the reference backend.
  void route(std::span<const float> x, std::span<const std::int32_t> tokens,
             std::span<float> weights, std::span<std::int32_t> experts) const {
    route(ReferenceBackend{}, x, tokens, weights, experts);
  }

 private:
  detail::GateCore<S> core_;
  std::vector<std::int32_t> table_;
  std::size_t vocab_ = 0;
};

/// Runs `r` (on backend b when the router supports one) and returns its decision as a Routing.
template <Backend B, Router R>
Routing route(const B& b, const R& r, std::span<const float> x,
              std::span<const std::int32_t> tokens) {
  Routing out;
  out.k = r.top_k();
  out.tokens = r.dim() == 0 ? 0 : x.size() / r.dim();
  out.experts.resize(out.tokens * out.k);
  out.weights.resize(out.tokens * out.k);
  if constexpr (BackendRouter<R, B>) {
    r.route(b, x, tokens, out.weights, out.experts);
  } else {
    r.route(x, tokens, out.weights, out.experts);
  }
  return out;
}

/// As above on the reference backend.
template <Router R>
Routing route(const R& r, std::span<const float> x, std::span<const std::int32_t> tokens) {
  return route(ReferenceBackend{}, r, x, tokens);
}

}  // namespace dsv4
