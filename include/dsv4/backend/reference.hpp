// The reference backend: scalar, single-threaded, written to be obviously correct. It defines
// the semantics of every Backend op bit for bit (summation orders included) and is the oracle
// that every other backend is tested against. Spec sections per op below; the numerics policy N
// marks where the official reference holds bf16 tensors (core/numerics.hpp).
//
// Linear layers run their own scalar kernels (Linear::forward, DenseLinear::forward); the other
// ops are implemented here or forward to the reference kernels of ops/ and layers/ (RMSNorm,
// RoPE, sparse attention), so there is one implementation of each.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/ops/norm.hpp"
#include "dsv4/ops/rope.hpp"
#include "dsv4/ops/sparse_attention.hpp"

namespace dsv4::ref {

/// The reference backend. Stateless: copies are interchangeable and a default-constructed one is
/// what the layers use when no backend is passed.
struct Backend {
  static constexpr std::string_view name = "reference";

  template <class T>
  using buffer = ScratchBuffer<T>;  // pooled: no allocation once a shape has run

  /// n zero-initialised values.
  template <class T>
  buffer<T> alloc(std::size_t n) const {
    return buffer<T>(n);
  }

  /// y [rows, out] = x [rows, in] · Wᵀ with the weight type's own scalar kernel (accumulation
  /// order and activation quantisation as documented in formats/linear.hpp).
  template <NumericsPolicy N, LinearOp L>
  void linear(const L& w, ConstView2<float> x, View2<float> y) const {
    w.template forward<N>(x, y);
  }

  /// RMSNorm of every row (spec §2.1): x, y [rows, d] with d = weight.size() (y may alias x);
  /// statistics in fp32, y = N(w · x · rsqrt(mean(x²) + eps)).
  template <NumericsPolicy N>
  void rms_norm(std::span<const float> x, std::span<const float> weight, float eps,
                std::span<float> y) const {
    const std::size_t d = weight.size();
    DSV4_CHECK(d > 0 && x.size() % d == 0 && y.size() == x.size(), ShapeError,
               "rms_norm of dim {}: input of {} values, output of {}", d, x.size(), y.size());
    for (std::size_t r = 0; r < x.size() / d; ++r)
      rms_norm_row<N>(x.subspan(r * d, d), weight, eps, y.subspan(r * d, d));
  }

  /// The weightless per-head query normalisation (spec §3.2 step 4) of each d-value vector of x
  /// ([rows, d], in place), in the activation precision as the reference's own run computes it:
  /// s = N(Σ N(v²)) (fp32 accumulation, the sum rounded), ms = N(s / d), g = N(1 / sqrt(N(ms +
  /// eps))), v = N(v · g). PyTorch's bf16 mean rounds twice (the sum to bf16, then the quotient),
  /// which matters when d is not a power of two. Under ggml_order<N>(): ggml's rms_norm
  /// (rms_scale).
  template <NumericsPolicy N>
  void head_rms_norm(std::span<float> x, std::size_t d, float eps) const {
    DSV4_CHECK(d > 0 && x.size() % d == 0, ShapeError,
               "head_rms_norm: {} values are not whole vectors of {}", x.size(), d);
    for (std::size_t r = 0; r < x.size() / d; ++r) {
      float* v = x.data() + r * d;
      if constexpr (ggml_order<N>()) {  // ggml's rms_norm: double statistics, v · scale
        const float g = rms_scale<true>(v, d, eps);
        for (std::size_t j = 0; j < d; ++j) v[j] = N::round(v[j] * g);
        continue;
      }
      float sum = 0.0f;
      for (std::size_t j = 0; j < d; ++j) sum += N::round(v[j] * v[j]);
      // PyTorch 1.x rounds a bf16 sum before dividing; PyTorch 2 divides the float32 sum
      constexpr bool two_roundings = [] {
        if constexpr (requires { N::act::round_sum_before_mean; })
          return N::act::round_sum_before_mean;
        else
          return false;
      }();
      const float ms = two_roundings ? N::round(N::round(sum) / static_cast<float>(d))
                                     : N::round(sum / static_cast<float>(d));
      const float g = N::round(1.0f / std::sqrt(N::round(ms + eps)));
      for (std::size_t j = 0; j < d; ++j) v[j] = N::round(v[j] * g);
    }
  }

  /// Partial RoPE (spec §3.4): rotates the last rope_dim values of n_vec vectors of vec_len values
  /// at x, all at position pos (Rope::apply).
  template <NumericsPolicy N>
  void rope(const Rope& table, float* x, std::size_t n_vec, std::size_t vec_len, std::int64_t pos,
            RopeDirection dir) const {
    table.template apply<N>(x, n_vec, vec_len, pos, dir);
  }

  /// Clamped SwiGLU (spec §7.2), in place on the gate: g, v [n, inter] (w1 and w3 outputs);
  /// row_weights [n] (routing weights) or empty (shared expert); limit <= 0 disables the clamp.
  /// g = N(silu(min(g, L)) · clamp(v, -L, L) · w), the product in fp32.
  template <NumericsPolicy N>
  void swiglu(View2<float> g, ConstView2<float> v, std::span<const float> row_weights,
              float limit) const {
    DSV4_CHECK(v.rows == g.rows && v.cols == g.cols &&
                   (row_weights.empty() || row_weights.size() == g.rows),
               ShapeError, "swiglu: gate [{}, {}], up [{}, {}], {} row weights", g.rows, g.cols,
               v.rows, v.cols, row_weights.size());
    for (std::size_t r = 0; r < g.rows; ++r) {
      for (std::size_t i = 0; i < g.cols; ++i) {
        float gi = g(r, i);
        float vi = v(r, i);
        if (limit > 0.0f) {
          vi = std::fmin(std::fmax(vi, -limit), limit);
          gi = std::fmin(gi, limit);  // the gate is clamped from above only
        }
        float h = gi / (1.0f + std::exp(-gi)) * vi;  // silu(g) · v
        if (!row_weights.empty()) h = row_weights[r] * h;
        g(r, i) = N::round(h);
      }
    }
  }

  /// Rows scaled in place: y(r, c) = N(y(r, c) · w[r]) for w [y.rows] (routed experts' outputs
  /// times their routing weights, in the MoE order of llama.cpp: Numerics::ggml_order).
  template <NumericsPolicy N>
  void mul_rows(View2<float> y, std::span<const float> w) const {
    DSV4_CHECK(w.size() == y.rows, ShapeError, "mul_rows: {} weights for {} rows", w.size(),
               y.rows);
    for (std::size_t r = 0; r < y.rows; ++r) {
      for (std::size_t c = 0; c < y.cols; ++c) y(r, c) = N::round(y(r, c) * w[r]);
    }
  }

  /// Sparse attention with sinks (spec §3.6): ops::sparse_attention in the activation mode of N
  /// (bf16: P rounded before P·V and the output rounded). Throws InputError for an index outside
  /// [-1, kv_rows).
  template <NumericsPolicy N>
  void sparse_attention(const SparseAttentionArgs& a) const {
    using Act =
        std::conditional_t<std::is_same_v<typename N::act, Fp32Act>, ops::F32Act, ops::Bf16Act>;
    ops::sparse_attention<Act>(a.q, a.kv, a.sink, a.idx, a.tokens, a.heads, a.head_dim, a.kv_rows,
                               a.width, a.scale, a.out);
  }

  /// The compressor's pooling (spec §5.3): a softmax over m members taken separately for each of
  /// the d channels, y_f = Σ_k kv_k,f · (e_k,f / Σ_j e_j,f) with e = exp(score − max), fp32,
  /// members in order. kv, score: m pointers to d values each.
  void softmax_pool(const float* const* kv, const float* const* score, std::size_t m, std::size_t d,
                    float* y) const noexcept {
    for (std::size_t f = 0; f < d; ++f) {
      float mx = -std::numeric_limits<float>::infinity();
      for (std::size_t k = 0; k < m; ++k) mx = std::fmax(mx, score[k][f]);
      float sum = 0.0f;
      for (std::size_t k = 0; k < m; ++k) sum += std::exp(score[k][f] - mx);
      float acc = 0.0f;
      for (std::size_t k = 0; k < m; ++k) acc += kv[k][f] * (std::exp(score[k][f] - mx) / sum);
      y[f] = acc;
    }
  }

  /// Lightning-indexer scores (spec §6.4): q [T, Hi·Di] index queries, keys [≥ n, Di],
  /// head_weights [T, Hi], visible [T] (row t scores entries j < visible[t]), scores [T, n]:
  /// scores[t][j] = N(Σ_h N(relu(N(q_th · key_j)) · w_th)) for visible j, −∞ for the others.
  template <NumericsPolicy N>
  void index_scores(ConstView2<float> q, ConstView2<float> keys, ConstView2<float> head_weights,
                    std::span<const std::size_t> visible, View2<float> scores) const {
    const std::size_t hi = head_weights.cols;
    const std::size_t di = keys.cols;
    DSV4_CHECK(q.rows == scores.rows && head_weights.rows == scores.rows &&
                   visible.size() == scores.rows && q.cols == hi * di && keys.rows >= scores.cols,
               ShapeError,
               "index_scores: q [{}, {}], keys [{}, {}], head weights [{}, {}], {} visible counts, "
               "scores [{}, {}]",
               q.rows, q.cols, keys.rows, keys.cols, head_weights.rows, head_weights.cols,
               visible.size(), scores.rows, scores.cols);
    for (std::size_t t = 0; t < scores.rows; ++t) {
      const std::size_t vis = std::min(visible[t], scores.cols);
      for (std::size_t j = 0; j < scores.cols; ++j) {
        if (j >= vis) {
          scores(t, j) = -std::numeric_limits<float>::infinity();
          continue;
        }
        const float* key = keys.row(j);
        float total = 0.0f;
        for (std::size_t h = 0; h < hi; ++h) {
          const float* qh = q.row(t) + h * di;
          float dot = 0.0f;
          for (std::size_t e = 0; e < di; ++e) dot += qh[e] * key[e];
          const float relu = std::fmax(N::round(dot), 0.0f);
          total += N::round(relu * head_weights(t, h));
        }
        scores(t, j) = N::round(total);
      }
    }
  }

  /// Indices of the picks.size() largest values of s, in descending order; ties go to the smaller
  /// index (deterministic; the reference's torch.topk leaves tie order unspecified).
  void top_k(std::span<const float> s, std::span<std::int32_t> picks) const {
    DSV4_CHECK(picks.size() <= s.size(), ShapeError, "top_k: {} picks out of {} values",
               picks.size(), s.size());
    ScratchBuffer<std::int32_t> order(s.size());
    std::iota(order.begin(), order.end(), 0);
    const auto k = static_cast<std::ptrdiff_t>(picks.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&s](std::int32_t a, std::int32_t b) {
                        const float va = s[static_cast<std::size_t>(a)];
                        const float vb = s[static_cast<std::size_t>(b)];
                        return va > vb || (va == vb && a < b);
                      });
    std::copy(order.begin(), order.begin() + k, picks.begin());
  }
};

}  // namespace dsv4::ref

namespace dsv4 {

/// The reference backend under the name the model's template arguments read well with.
using ReferenceBackend = ref::Backend;

static_assert(Backend<ReferenceBackend>);

}  // namespace dsv4
