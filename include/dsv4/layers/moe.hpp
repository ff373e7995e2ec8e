// Mixture of experts: a router policy, routed SwiGLU experts and an optional shared expert.
//
// Spec: spec/architecture.md §7.2-7.3 and §12 items 24, 25, 30. Reference: `Expert` and `MoE` in
// inference/model.py (current revision: the shared expert's SwiGLU is clamped too).
// Numerics (where the reference holds bf16 tensors, N::round):
//   g = N(w1(x)), v = N(w3(x))                 linear outputs, widened to fp32
//   v = clamp(v, -L, L), g = min(g, L)         L = swiglu_limit, only when L > 0
//   h = N( silu(g) · v · wt )                  fp32; wt = routing weight (routed experts only),
//                                               applied before w2
//   out_e = N(w2(h))
//   y = Σ_e out_e (fp32, experts in ascending id) + shared(x), then one N rounding.
// Under numerics with ggml_order (PlainFp32Numerics; core/numerics.hpp) the order is
// llama.cpp's graph's instead: h = silu(g) · v, out_e = N(w2(h)) · wt (the backend's mul_rows),
// y = Σ_slots out_e in the router's slot order + shared(x).
// The linear type is a policy (any LinearOp): DenseLinear<bf16> for the reference's bf16 path, a
// quantized format for FP8/FP4 checkpoints. Routed and shared experts may use different types.
// The expert GEMMs, the SwiGLU and the gate run on the backend (the reference backend when none is
// given). Every token's result depends on its own row only, so tokens of several sequences can
// share one call (Model::forward_batch).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/layers/routers.hpp"

namespace dsv4 {

/// One SwiGLU expert: w1 (gate) and w3 (up) [inter, dim], w2 (down) [dim, inter].
template <LinearOp L = DenseLinear<bf16>>
class Expert {
 public:
  using linear_type = L;

  Expert() = default;
  /// swiglu_limit <= 0 disables the clamp.
  Expert(L w1, L w2, L w3, float swiglu_limit)
      : w1_(std::move(w1)), w2_(std::move(w2)), w3_(std::move(w3)), limit_(swiglu_limit) {
    DSV4_CHECK(w1_.in_features() == w3_.in_features() && w1_.out_features() == w3_.out_features() &&
                   w2_.in_features() == w1_.out_features() &&
                   w2_.out_features() == w1_.in_features(),
               ShapeError,
               "Expert: w1 [{}, {}], w3 [{}, {}] and w2 [{}, {}] do not form a SwiGLU "
               "(expected w1 = w3 = [inter, dim], w2 = [dim, inter])",
               w1_.out_features(), w1_.in_features(), w3_.out_features(), w3_.in_features(),
               w2_.out_features(), w2_.in_features());
  }

  std::size_t dim() const noexcept { return w1_.in_features(); }
  std::size_t inter_dim() const noexcept { return w1_.out_features(); }
  float swiglu_limit() const noexcept { return limit_; }
  const L& w1() const noexcept { return w1_; }
  const L& w2() const noexcept { return w2_; }
  const L& w3() const noexcept { return w3_; }

  /// x: [n, dim]; weights: [n] routing weights or empty (shared expert); out: [n, dim].
  template <NumericsPolicy N, Backend B>
  void forward(const B& b, ConstView2<float> x, std::span<const float> weights,
               View2<float> out) const {
    const std::size_t n = x.rows;
    const std::size_t inter = inter_dim();
    DSV4_CHECK(weights.empty() || weights.size() == n, ShapeError,
               "Expert: {} routing weights for {} rows", weights.size(), n);
    auto g = b.template alloc<float>(n * inter);  // [n, inter]
    auto v = b.template alloc<float>(n * inter);  // [n, inter]
    b.template linear<N>(w1_, x, View2<float>(g.data(), n, inter));
    b.template linear<N>(w3_, x, View2<float>(v.data(), n, inter));
    constexpr bool after = ggml_order<N>();  // the weight scales w2's output (numerics.hpp)
    b.template swiglu<N>(View2<float>(g.data(), n, inter), ConstView2<float>(v.data(), n, inter),
                         after ? std::span<const float>{} : weights, limit_);
    b.template linear<N>(w2_, ConstView2<float>(g.data(), n, inter), out);
    if constexpr (after) {
      if (!weights.empty()) b.template mul_rows<N>(out, weights);
    }
  }
  /// As above on the reference backend.
  template <NumericsPolicy N>
  void forward(ConstView2<float> x, std::span<const float> weights, View2<float> out) const {
    forward<N>(ReferenceBackend{}, x, weights, out);
  }

 private:
  L w1_;
  L w2_;
  L w3_;
  float limit_ = 0.0f;
};

/// The MoE layer: router R, routed experts of linear type L, an optional shared expert of linear
/// type LS. V4: `Moe<HashRouter<>>` in the first n_hash_layers blocks, `Moe<TopKRouter<>>` after.
template <Router R, LinearOp L = DenseLinear<bf16>, LinearOp LS = L>
class Moe {
 public:
  using router_type = R;
  using expert_type = Expert<L>;
  using shared_type = Expert<LS>;

  Moe() = default;
  Moe(R router, std::vector<Expert<L>> experts, std::optional<Expert<LS>> shared)
      : router_(std::move(router)), experts_(std::move(experts)), shared_(std::move(shared)) {
    DSV4_CHECK(experts_.size() == router_.n_experts(), ShapeError,
               "Moe: the router scores {} experts but {} are given", router_.n_experts(),
               experts_.size());
    for (std::size_t e = 0; e < experts_.size(); ++e) {
      DSV4_CHECK(experts_[e].dim() == router_.dim(), ShapeError,
                 "Moe: expert {} has dim {}, the router dim {}", e, experts_[e].dim(),
                 router_.dim());
    }
    DSV4_CHECK(!shared_ || shared_->dim() == router_.dim(), ShapeError,
               "Moe: the shared expert has dim {}, the router dim {}", shared_->dim(),
               router_.dim());
  }

  std::size_t dim() const noexcept { return router_.dim(); }
  std::size_t n_experts() const noexcept { return experts_.size(); }
  const R& router() const noexcept { return router_; }
  const Expert<L>& expert(std::size_t e) const { return experts_.at(e); }
  const std::optional<Expert<LS>>& shared_expert() const noexcept { return shared_; }

  /// x: [T, dim]; tokens: [T] ids (needed by hash routers, otherwise may be empty);
  /// out: [T, dim] (must not alias x). When `routing` is given it receives the decision. Runs as
  /// backend b's `moe` op when it has one.
  template <NumericsPolicy N, Backend B>
  void forward(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
               std::span<float> out, Routing* routing = nullptr) const {
    if constexpr (requires { b.template moe<N>(*this, x, tokens, out, routing); }) {
      b.template moe<N>(*this, x, tokens, out, routing);
    } else {
      forward_on_host<N>(b, x, tokens, out, routing);
    }
  }

  /// forward() as host code around backend b's ops (what a host backend runs): the router, the
  /// (token, weight) pairs grouped by expert, one expert call per expert's rows, the sum.
  template <NumericsPolicy N, Backend B>
  void forward_on_host(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
                       std::span<float> out, Routing* routing = nullptr) const {
    const std::size_t d = dim();
    DSV4_CHECK(x.size() % d == 0 && out.size() == x.size(), ShapeError,
               "Moe of dim {}: input of {} values, output of {}", d, x.size(), out.size());
    DSV4_CHECK(tokens.empty() || tokens.size() == x.size() / d, ShapeError,
               "Moe: {} token ids for {} input rows", tokens.size(), x.size() / d);
    Routing local;
    Routing& rt = routing != nullptr ? *routing : local;
    rt = route(b, router_, x, tokens);
    const std::size_t t = rt.tokens;
    const std::size_t k = rt.k;

    // the (token, weight) pairs grouped by expert, tokens ascending within an expert (a
    // counting sort): expert e's pairs are [first[e], first[e + 1])
    const std::size_t n_e = experts_.size();
    ScratchBuffer<std::size_t> first(n_e + 1);
    for (std::size_t i = 0; i < t * k; ++i) {
      const auto e = static_cast<std::size_t>(rt.experts[i]);
      DSV4_CHECK(e < n_e, InputError, "Moe: token {} routed to expert {} of {}", i / k,
                 rt.experts[i], n_e);
      ++first[e + 1];
    }
    for (std::size_t e = 0; e < n_e; ++e) first[e + 1] += first[e];
    ScratchBuffer<std::size_t> rows(t * k);  // token of each pair
    ScratchBuffer<float> wts(t * k);         // routing weight of each pair
    // llama.cpp's order: the place of pair i (token i / k, slot i % k) in the grouped order
    ScratchBuffer<std::size_t> slot(ggml_order<N>() ? t * k : 0);
    {
      ScratchBuffer<std::size_t> next(std::span<const std::size_t>(first.data(), n_e));
      for (std::size_t i = 0; i < t * k; ++i) {
        const auto e = static_cast<std::size_t>(rt.experts[i]);
        rows[next[e]] = i / k;
        if constexpr (ggml_order<N>()) slot[i] = next[e];
        wts[next[e]++] = rt.weights[i];
      }
    }
    ScratchBuffer<std::size_t> active(n_e);  // experts with tokens, in expert order
    std::size_t n_active = 0;
    for (std::size_t e = 0; e < n_e; ++e)
      if (first[e + 1] > first[e]) active[n_active++] = e;
    // outputs: the pairs' rows [t·k, dim] in the grouped order, then the shared expert's [T, dim]
    const std::size_t tasks = n_active + (shared_ ? 1 : 0);
    ScratchBuffer<float> ye((t * k + (shared_ ? t : 0)) * d);
    auto run = [&](std::size_t i, const auto& be) {
      if (i == n_active && shared_) {
        shared_->template forward<N>(be, ConstView2<float>(x.data(), t, d), {},
                                     View2<float>(ye.data() + t * k * d, t, d));
        return;
      }
      const std::size_t e = active[i];
      const std::size_t p0 = first[e], n = first[e + 1] - p0;
      ScratchBuffer<float> xe(n * d);
      for (std::size_t r = 0; r < n; ++r)
        std::copy_n(x.data() + rows[p0 + r] * d, d, xe.data() + r * d);
      experts_[e].template forward<N>(be, ConstView2<float>(xe.data(), n, d),
                                      std::span<const float>(wts.data() + p0, n),
                                      View2<float>(ye.data() + p0 * d, n, d));
    };
    if constexpr (requires { b.parallel_tasks(tasks, run); }) {
      b.parallel_tasks(tasks, run);  // the experts as independent tasks (same values)
    } else {
      for (std::size_t i = 0; i < tasks; ++i) run(i, b);
    }
    // sum in expert order (the reference's order) or in the router's slot order (llama.cpp's),
    // then the shared expert
    ScratchBuffer<float> y(t * d);  // [T, dim] fp32 accumulator
    for (std::size_t q = 0; q < t * k; ++q) {
      const std::size_t p = ggml_order<N>() ? slot[q] : q;
      float* yr = y.data() + rows[p] * d;
      const float* src = ye.data() + p * d;
      for (std::size_t c = 0; c < d; ++c) yr[c] += src[c];
    }
    if (shared_) {
      const float* src = ye.data() + t * k * d;
      for (std::size_t i = 0; i < t * d; ++i) y[i] += src[i];
    }
    for (std::size_t i = 0; i < t * d; ++i) out[i] = N::round(y[i]);
  }
  /// As above on the reference backend.
  template <NumericsPolicy N>
  void forward(std::span<const float> x, std::span<const std::int32_t> tokens, std::span<float> out,
               Routing* routing = nullptr) const {
    forward<N>(ReferenceBackend{}, x, tokens, out, routing);
  }

 private:
  R router_;
  std::vector<Expert<L>> experts_;
  std::optional<Expert<LS>> shared_;
};

}  // namespace dsv4
