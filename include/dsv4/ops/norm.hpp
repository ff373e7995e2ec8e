// RMSNorm as the reference computes it: statistics in float32, y = N::round(w · x · rsqrt(mean(x²)
// + eps)). Spec: spec/architecture.md §2 (attn_norm, ffn_norm, q_norm, kv_norm, final norm).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"

namespace dsv4 {

/// 1 / sqrt(mean(x²) + eps) of x[0..n): the sum of squares in float32, ascending (the
/// reference), or with GgmlOrder in double, the mean rounded to float (ggml's rms_norm; numerics
/// with ggml_order<N>()).
template <bool GgmlOrder>
inline float rms_scale(const float* x, std::size_t n, float eps) noexcept {
  if constexpr (GgmlOrder) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
    const auto mean = static_cast<float>(sum / static_cast<double>(n));
    return 1.0f / std::sqrt(mean + eps);
  } else {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += x[i] * x[i];
    return 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  }
}

/// Normalises one row: out[i] = N::round(weight[i] · x[i] · rsqrt(mean(x²) + eps)).
/// `weight` may be empty (no affine weight, as in the per-head q normalisation). `out` may alias
/// `x`.
template <NumericsPolicy N>
inline void rms_norm_row(std::span<const float> x, std::span<const float> weight, float eps,
                         std::span<float> out) {
  DSV4_CHECK(out.size() == x.size() && (weight.empty() || weight.size() == x.size()), ShapeError,
             "rms_norm: row of {} values, weight of {}, output of {}", x.size(), weight.size(),
             out.size());
  const float inv = rms_scale<ggml_order<N>()>(x.data(), x.size(), eps);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float v = x[i] * inv;
    out[i] = N::round(weight.empty() ? v : weight[i] * v);
  }
}

/// The RMSNorm module: a float32 weight of `dim` values and an epsilon.
struct RmsNorm {
  std::vector<float> weight;
  float eps = 1e-6f;

  std::size_t dim() const noexcept { return weight.size(); }

  /// Normalises each row of `x` ([rows, dim], contiguous) into `out` (may alias `x`).
  template <NumericsPolicy N>
  void forward(std::span<const float> x, std::span<float> out) const {
    const std::size_t d = weight.size();
    DSV4_CHECK(d > 0 && x.size() % d == 0 && out.size() == x.size(), ShapeError,
               "RmsNorm of dim {}: input of {} values, output of {}", d, x.size(), out.size());
    for (std::size_t r = 0; r < x.size() / d; ++r)
      rms_norm_row<N>(x.subspan(r * d, d), weight, eps, out.subspan(r * d, d));
  }
};

}  // namespace dsv4
