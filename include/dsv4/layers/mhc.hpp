// Residual policies: manifold-constrained hyper-connections (V4) and the plain residual.
//
// Spec: spec/architecture.md §2.3-2.7 and §12 items 27, 28. Reference: `Block.hc_pre`,
// `Block.hc_post`, `ParallelHead.hc_head` in inference/model.py, `hc_split_sinkhorn` in
// inference/kernel_tilelang.py (here ops/sinkhorn.hpp).
//
// A block keeps a residual state of `streams` copies of the hidden vector per token, [T, S, d].
// Each sub-layer f (attention, MoE) is wrapped as
//   (u, mix) = pre(X);  a = f(norm(u));  X = post(a, X, mix)
// HyperConnection<HC> (HC streams, V4 uses 4):
//   z = X_t flattened (HC·d, fp32), m = (fn · z) · rsqrt(mean(z²) + norm_eps)       [(2+HC)·HC]
//   (pre, post, comb) = hc_split_sinkhorn(m, scale, base)
//   u = N( Σ_i pre_i · z_i );   X'_j = N( post_j · a + Σ_i comb[i][j] · X_i )
// PlainResidual (one stream): u = X; X' = N(X + a), i.e. x + f(norm(x)).
// The final head collapses the streams: HyperConnectionHead (sigmoid pre only, no Sinkhorn) or
// PlainHead (identity). All mixing arithmetic is fp32; N::round marks the reference's bf16 tensors.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
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
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/ops/norm.hpp"
#include "dsv4/ops/sinkhorn.hpp"

namespace dsv4 {

namespace detail {
/// m [T, rows] = the mixes of every row z_t of x [T, width] with fn [rows, width].
/// A float weight (DequantDot, the reference's fp32 `F.linear`): m_t = (fn · z_t) · rs_t, the
/// products of the raw row scaled afterwards, as hc_pre / hc_head compute them. A GGUF weight
/// read with llama.cpp's dot products (PartnerDot): m_t = fn · (z_t · rs_t), the normalised row
/// being the activation quantized to the format's vec_dot partner, as ggml's mul_mat does with
/// hc_*_fn, on backend b.
template <Backend B>
void hc_mixes(const B& b, const AnyLinear& fn, std::span<const float> x, std::size_t width,
              float eps, std::span<float> m) {
  const std::size_t t = x.size() / width;
  const View2<float> yv(m.data(), t, fn.out_features());
  if (fn.semantics_name() == PartnerDot::name) {
    ScratchBuffer<float> zn(x.size());
    for (std::size_t r = 0; r < t; ++r) {
      const auto z = x.subspan(r * width, width);
      const float rs = rms_scale<true>(z.data(), width, eps);  // ggml's rms_norm
      for (std::size_t c = 0; c < width; ++c) zn[r * width + c] = z[c] * rs;
    }
    backend_linear<PlainFp32Numerics>(b, fn, ConstView2<float>(zn.data(), t, width), yv);
  } else {
    // the weight's own sequential dots: the mixes feed Sinkhorn and the stream mixing, where a
    // lane-parallel sum's rounding moved the CPU backend's bf16 logits three times further from
    // the golden ones (tiny_fp8: mean 0.014 against 0.0055)
    fn.forward<PlainFp32Numerics>(ConstView2<float>(x.data(), t, width), yv);
    for (std::size_t r = 0; r < t; ++r) {
      const float rs = rms_scale<false>(x.data() + r * width, width, eps);  // hc_pre's
      for (std::size_t j = 0; j < yv.cols; ++j) yv(r, j) = yv(r, j) * rs;
    }
  }
}

/// u[c] = N(Σ_i pre_i · z[i·d + c]); Fused: each term added with one FMA, as llama.cpp's
/// DSV4_HC_PRE (the block's pre under ggml_order; its head adds rounded products in graph nodes).
template <NumericsPolicy N, bool Fused = false>
void hc_weighted_sum(std::span<const float> pre, std::span<const float> z, std::size_t d,
                     std::span<float> u) noexcept {
  for (std::size_t c = 0; c < d; ++c) {
    float acc = 0.0f;
    for (std::size_t i = 0; i < pre.size(); ++i) {
      if constexpr (Fused) {
        acc = std::fma(pre[i], z[i * d + c], acc);
      } else {
        acc += pre[i] * z[i * d + c];
      }
    }
    u[c] = N::round(acc);
  }
}
}  // namespace detail

/// One hyper-connection site (a block has two: hc_attn_* and hc_ffn_*).
template <std::size_t HC = 4>
class HyperConnection {
 public:
  static constexpr std::size_t streams = HC;
  static constexpr std::size_t mix_width = (2 + HC) * HC;

  /// The per-token coefficients pre() computes and post() consumes; also what the reference
  /// records as hc_*.mixes / pre / post / comb.
  struct Mix {
    std::size_t tokens = 0;
    ScratchBuffer<float> mixes;  // [T, (2+HC)·HC]
    ScratchBuffer<float> pre;    // [T, HC]
    ScratchBuffer<float> post;   // [T, HC]
    ScratchBuffer<float> comb;   // [T, HC, HC], comb[i][j]: source stream i -> destination j
  };

  HyperConnection() = default;
  /// fn: [(2+HC)·HC, HC·dim] in its stored format (io::load_float_product: float32 products, or
  /// llama.cpp's dots for a GGUF read that way); base: [(2+HC)·HC]; scale: [3].
  HyperConnection(AnyLinear fn, std::vector<float> base, std::vector<float> scale, std::size_t dim,
                  float norm_eps, float hc_eps, int sinkhorn_iters)
      : fn_(std::move(fn)),
        base_(std::move(base)),
        scale_(std::move(scale)),
        dim_(dim),
        norm_eps_(norm_eps),
        hc_eps_(hc_eps),
        iters_(sinkhorn_iters) {
    DSV4_CHECK(dim_ > 0 && fn_.out_features() == mix_width && fn_.in_features() == HC * dim_ &&
                   base_.size() == mix_width && scale_.size() == 3,
               ShapeError,
               "HyperConnection<{}> of dim {}: fn [{}, {}] (expected [{}, {}]), base of {} "
               "(expected {}), scale of {} (expected 3)",
               HC, dim_, fn_.out_features(), fn_.in_features(), mix_width, HC * dim_, base_.size(),
               mix_width, scale_.size());
    DSV4_CHECK(iters_ >= 1, ConfigError, "HyperConnection: hc_sinkhorn_iters = {} must be >= 1",
               iters_);
  }
  /// As above with fn given as float32 values [(2+HC)·HC, HC·dim] (an owned F32 weight).
  HyperConnection(std::span<const float> fn, std::vector<float> base, std::vector<float> scale,
                  std::size_t dim, float norm_eps, float hc_eps, int sinkhorn_iters)
      : HyperConnection(f32_linear(fn, mix_width, HC * dim), std::move(base), std::move(scale), dim,
                        norm_eps, hc_eps, sinkhorn_iters) {}

  std::size_t dim() const noexcept { return dim_; }
  /// The mixing weight fn in its stored format.
  const AnyLinear& fn() const noexcept { return fn_; }

  /// x: [T, HC, dim] residual state; u: [T, dim] the sub-layer input; mix receives the
  /// coefficients of every token.
  template <NumericsPolicy N>
  void pre(std::span<const float> x, std::span<float> u, Mix& mix) const {
    pre<N>(ReferenceBackend{}, x, u, mix);
  }
  /// As above, the mixes of a GGUF `fn` computed on backend b.
  template <NumericsPolicy N, Backend B>
  void pre(const B& b, std::span<const float> x, std::span<float> u, Mix& mix) const {
    const std::size_t w = HC * dim_;
    DSV4_CHECK(x.size() % w == 0 && u.size() * HC == x.size(), ShapeError,
               "HyperConnection<{}>::pre of dim {}: state of {} values, output of {} (expected "
               "[T, {}, {}] and [T, {}])",
               HC, dim_, x.size(), u.size(), HC, dim_, dim_);
    const std::size_t t = x.size() / w;
    mix.tokens = t;
    mix.mixes.resize(t * mix_width);
    mix.pre.resize(t * HC);
    mix.post.resize(t * HC);
    mix.comb.resize(t * HC * HC);
    detail::hc_mixes(b, fn_, x, w, norm_eps_, mix.mixes);
    for (std::size_t r = 0; r < t; ++r) {
      const auto z = x.subspan(r * w, w);
      float* m = mix.mixes.data() + r * mix_width;
      float* pre = mix.pre.data() + r * HC;
      ops::hc_split_sinkhorn<HC, ggml_order<N>()>(m, scale_.data(), base_.data(), iters_, hc_eps_,
                                                  pre, mix.post.data() + r * HC,
                                                  mix.comb.data() + r * HC * HC);
      detail::hc_weighted_sum<N, ggml_order<N>()>(std::span<const float>(pre, HC), z, dim_,
                                                  u.subspan(r * dim_, dim_));
    }
  }

  /// f: [T, dim] sub-layer output; res: [T, HC, dim] the state pre() read; out: [T, HC, dim]
  /// (may alias res).
  template <NumericsPolicy N>
  void post(std::span<const float> f, std::span<const float> res, const Mix& mix,
            std::span<float> out) const {
    const std::size_t w = HC * dim_;
    const std::size_t t = mix.tokens;
    DSV4_CHECK(f.size() == t * dim_ && res.size() == t * w && out.size() == t * w, ShapeError,
               "HyperConnection<{}>::post of dim {} for {} tokens: sub-layer output of {} values, "
               "residual of {}, output of {}",
               HC, dim_, t, f.size(), res.size(), out.size());
    float y[HC];
    for (std::size_t r = 0; r < t; ++r) {
      const float* post = mix.post.data() + r * HC;
      const float* comb = mix.comb.data() + r * HC * HC;
      const float* xr = res.data() + r * w;
      float* o = out.data() + r * w;
      for (std::size_t c = 0; c < dim_; ++c) {
        for (std::size_t j = 0; j < HC; ++j) {
          if constexpr (ggml_order<N>()) {  // llama.cpp's DSV4_HC_POST: FMAs onto post·f
            float acc = post[j] * f[r * dim_ + c];
            for (std::size_t i = 0; i < HC; ++i)
              acc = std::fma(comb[i * HC + j], xr[i * dim_ + c], acc);
            y[j] = acc;
          } else {
            float acc = 0.0f;
            for (std::size_t i = 0; i < HC; ++i) acc += comb[i * HC + j] * xr[i * dim_ + c];
            y[j] = post[j] * f[r * dim_ + c] + acc;
          }
        }
        for (std::size_t j = 0; j < HC; ++j) o[j * dim_ + c] = N::round(y[j]);
      }
    }
  }

 private:
  AnyLinear fn_;  // [mixes, HC·dim] in its stored format
  std::vector<float> base_;
  std::vector<float> scale_;
  std::size_t dim_ = 0;
  float norm_eps_ = 1e-6f;
  float hc_eps_ = 1e-6f;
  int iters_ = 20;
};

/// The final collapse of HC streams before the output norm (hc_head_*): sigmoid pre only.
template <std::size_t HC = 4>
class HyperConnectionHead {
 public:
  static constexpr std::size_t streams = HC;

  HyperConnectionHead() = default;
  /// fn: [HC, HC·dim]; base: [HC]; scale: [1].
  HyperConnectionHead(AnyLinear fn, std::vector<float> base, std::vector<float> scale,
                      std::size_t dim, float norm_eps, float hc_eps)
      : fn_(std::move(fn)),
        base_(std::move(base)),
        scale_(std::move(scale)),
        dim_(dim),
        norm_eps_(norm_eps),
        hc_eps_(hc_eps) {
    DSV4_CHECK(dim_ > 0 && fn_.out_features() == HC && fn_.in_features() == HC * dim_ &&
                   base_.size() == HC && scale_.size() == 1,
               ShapeError,
               "HyperConnectionHead<{}> of dim {}: fn [{}, {}] (expected [{}, {}]), base of {} "
               "(expected {}), scale of {} (expected 1)",
               HC, dim_, fn_.out_features(), fn_.in_features(), HC, HC * dim_, base_.size(), HC,
               scale_.size());
  }
  /// As above with fn given as float32 values [HC, HC·dim] (an owned F32 weight).
  HyperConnectionHead(std::span<const float> fn, std::vector<float> base, std::vector<float> scale,
                      std::size_t dim, float norm_eps, float hc_eps)
      : HyperConnectionHead(f32_linear(fn, HC, HC * dim), std::move(base), std::move(scale), dim,
                            norm_eps, hc_eps) {}

  std::size_t dim() const noexcept { return dim_; }
  /// The mixing weight fn in its stored format.
  const AnyLinear& fn() const noexcept { return fn_; }

  /// x: [T, HC, dim] -> y: [T, dim] = N(Σ_j (sigmoid(m_j · scale + base_j) + eps) · x_j).
  template <NumericsPolicy N>
  void collapse(std::span<const float> x, std::span<float> y) const {
    collapse<N>(ReferenceBackend{}, x, y);
  }
  /// As above, the mixes of a GGUF `fn` computed on backend b.
  template <NumericsPolicy N, Backend B>
  void collapse(const B& b, std::span<const float> x, std::span<float> y) const {
    const std::size_t w = HC * dim_;
    DSV4_CHECK(x.size() % w == 0 && y.size() * HC == x.size(), ShapeError,
               "HyperConnectionHead<{}> of dim {}: state of {} values, output of {}", HC, dim_,
               x.size(), y.size());
    float pre[HC];
    const std::size_t t = x.size() / w;
    ScratchBuffer<float> mixes(t * HC);
    detail::hc_mixes(b, fn_, x, w, norm_eps_, mixes);
    for (std::size_t r = 0; r < t; ++r) {
      const auto z = x.subspan(r * w, w);
      const float* m = mixes.data() + r * HC;
      for (std::size_t j = 0; j < HC; ++j)
        pre[j] = ops::sigmoid(m[j] * scale_[0] + base_[j]) + hc_eps_;
      detail::hc_weighted_sum<N>(pre, z, dim_, y.subspan(r * dim_, dim_));
    }
  }

 private:
  AnyLinear fn_;  // [mixes, HC·dim] in its stored format
  std::vector<float> base_;
  std::vector<float> scale_;
  std::size_t dim_ = 0;
  float norm_eps_ = 1e-6f;
  float hc_eps_ = 1e-6f;
};

/// The ordinary residual connection: one stream, x + f(norm(x)).
class PlainResidual {
 public:
  static constexpr std::size_t streams = 1;
  struct Mix {
    std::size_t tokens = 0;
  };

  PlainResidual() = default;
  explicit PlainResidual(std::size_t dim) : dim_(dim) {}
  std::size_t dim() const noexcept { return dim_; }

  /// u = x.
  template <NumericsPolicy N>
  void pre(std::span<const float> x, std::span<float> u, Mix& mix) const {
    DSV4_CHECK(dim_ > 0 && x.size() % dim_ == 0 && u.size() == x.size(), ShapeError,
               "PlainResidual::pre of dim {}: state of {} values, output of {}", dim_, x.size(),
               u.size());
    mix.tokens = x.size() / dim_;
    std::copy(x.begin(), x.end(), u.begin());
  }

  /// out = N(res + f) (out may alias res).
  template <NumericsPolicy N>
  void post(std::span<const float> f, std::span<const float> res, const Mix& mix,
            std::span<float> out) const {
    DSV4_CHECK(f.size() == mix.tokens * dim_ && res.size() == f.size() && out.size() == f.size(),
               ShapeError,
               "PlainResidual::post of dim {} for {} tokens: sub-layer output of {} values, "
               "residual of {}, output of {}",
               dim_, mix.tokens, f.size(), res.size(), out.size());
    for (std::size_t i = 0; i < f.size(); ++i) out[i] = N::round(res[i] + f[i]);
  }

 private:
  std::size_t dim_ = 0;
};

/// The head of a one-stream model: the state is the hidden vector.
class PlainHead {
 public:
  static constexpr std::size_t streams = 1;
  PlainHead() = default;
  explicit PlainHead(std::size_t dim) : dim_(dim) {}
  std::size_t dim() const noexcept { return dim_; }

  template <NumericsPolicy N>
  void collapse(std::span<const float> x, std::span<float> y) const {
    DSV4_CHECK(y.size() == x.size() && dim_ > 0 && x.size() % dim_ == 0, ShapeError,
               "PlainHead of dim {}: state of {} values, output of {}", dim_, x.size(), y.size());
    std::copy(x.begin(), x.end(), y.begin());
  }

 private:
  std::size_t dim_ = 0;
};

/// A residual policy: `streams`, a `Mix` record, pre() and post() as above.
template <class R>
concept ResidualPolicy = requires(const R& r, std::span<const float> x, std::span<float> u,
                                  typename R::Mix& mix) {
  { R::streams } -> std::convertible_to<std::size_t>;
  { r.dim() } -> std::convertible_to<std::size_t>;
  r.template pre<ReferenceNumerics>(x, u, mix);
  r.template post<ReferenceNumerics>(x, x, mix, u);
};

/// A head policy: `streams` and collapse().
template <class H>
concept ResidualHead = requires(const H& h, std::span<const float> x, std::span<float> y) {
  { H::streams } -> std::convertible_to<std::size_t>;
  h.template collapse<ReferenceNumerics>(x, y);
};

/// The head type that goes with each residual policy.
template <class R>
struct residual_head;
template <std::size_t HC>
struct residual_head<HyperConnection<HC>> {
  using type = HyperConnectionHead<HC>;
};
template <>
struct residual_head<PlainResidual> {
  using type = PlainHead;
};
template <class R>
using residual_head_t = typename residual_head<R>::type;

/// The residual policy's pre() on backend b (its mixes on b where the policy can).
template <NumericsPolicy N, Backend B, ResidualPolicy R>
void residual_pre_on_host(const B& b, const R& residual, std::span<const float> x,
                          std::span<float> u, typename R::Mix& mix) {
  if constexpr (requires { residual.template pre<N>(b, x, u, mix); }) {
    residual.template pre<N>(b, x, u, mix);
  } else {
    residual.template pre<N>(x, u, mix);
  }
}

/// The initial state x [T, streams, dim]: every token's vector of e ([T, dim]) repeated into
/// `streams` copies, on backend b (its `expand_streams` op when it has one).
template <Backend B>
void expand_streams(const B& b, std::span<const float> e, std::size_t dim, std::size_t streams,
                    std::span<float> x) {
  DSV4_CHECK(dim > 0 && e.size() % dim == 0 && x.size() == e.size() * streams, ShapeError,
             "expand_streams: {} values are not whole rows of dim {}, or the state of {} values "
             "does not hold {} streams of them",
             e.size(), dim, x.size(), streams);
  if constexpr (requires { b.expand_streams(e, dim, streams, x); }) {
    b.expand_streams(e, dim, streams, x);
  } else {
    const std::size_t t = e.size() / dim;
    for (std::size_t r = 0; r < t; ++r) {
      for (std::size_t s = 0; s < streams; ++s) {
        std::copy_n(e.data() + r * dim, dim, x.data() + (r * streams + s) * dim);
      }
    }
  }
}

/// As above on the host, into a new buffer.
inline ScratchBuffer<float> expand_streams(std::span<const float> e, std::size_t dim,
                                           std::size_t streams) {
  DSV4_CHECK(dim > 0 && e.size() % dim == 0, ShapeError,
             "expand_streams: {} values are not whole rows of dim {}", e.size(), dim);
  ScratchBuffer<float> x(e.size() * streams);
  expand_streams(ReferenceBackend{}, e, dim, streams, x);
  return x;
}

/// One wrapped sub-layer on the state x ([T, streams, dim], updated in place):
/// x = post(f(norm(pre(x))), x), the norm on backend b. `f(u, out)` maps [T, dim] to [T, dim].
/// `mix_out`, when given, receives the coefficients. pre and post run as backend b's
/// `residual_pre` / `residual_post` ops when it has them.
template <NumericsPolicy N, Backend B, ResidualPolicy R, class F>
void residual_step(const B& b, const R& residual, const RmsNorm& norm, std::span<float> x, F&& f,
                   typename R::Mix* mix_out = nullptr) {
  const std::size_t d = residual.dim();
  const std::size_t t = x.size() / (R::streams * d);
  typename R::Mix local;
  typename R::Mix& mix = mix_out != nullptr ? *mix_out : local;
  auto u = b.template alloc<float>(t * d);
  const std::span<const float> xc = x;
  if constexpr (requires { b.template residual_pre<N>(residual, xc, std::span<float>(u), mix); }) {
    b.template residual_pre<N>(residual, xc, std::span<float>(u), mix);
  } else {
    residual_pre_on_host<N>(b, residual, xc, u, mix);
  }
  b.template rms_norm<N>(u, norm.weight, norm.eps, u);
  auto a = b.template alloc<float>(t * d);
  std::forward<F>(f)(std::span<const float>(u), std::span<float>(a));
  const std::span<const float> ac = a;
  if constexpr (requires { b.template residual_post<N>(residual, ac, xc, mix, x); }) {
    b.template residual_post<N>(residual, ac, xc, mix, x);
  } else {
    residual.template post<N>(ac, xc, mix, x);
  }
}

/// As above on the reference backend.
template <NumericsPolicy N, ResidualPolicy R, class F>
void residual_step(const R& residual, const RmsNorm& norm, std::span<float> x, F&& f,
                   typename R::Mix* mix_out = nullptr) {
  residual_step<N>(ReferenceBackend{}, residual, norm, x, std::forward<F>(f), mix_out);
}

}  // namespace dsv4
