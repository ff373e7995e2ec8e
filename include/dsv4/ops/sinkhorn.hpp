// Scalar reference of `hc_split_sinkhorn`: turns the (2+hc)*hc hyper-connection mixes of one token
// into pre [hc], post [hc] and the doubly-stochastic comb [hc, hc]. Spec: spec/architecture.md §2.5
// (and §2.4 for where the mixes come from); reference symbol `hc_split_sinkhorn_kernel`
// (inference/kernel_tilelang.py). All fp32, in the kernel's operation order.
#pragma once

#include <cmath>
#include <cstddef>

namespace dsv4::ops {

/// fp32 logistic sigmoid 1 / (1 + exp(-x)).
inline float sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }

/// One token. mixes: [(2+HC)*HC]; scale: [3]; base: [(2+HC)*HC]; pre, post: [HC];
/// comb: [HC, HC] row-major (comb[a*HC + b]). iters >= 1 (20 in V4), eps = hc_eps (1e-6).
///   pre_j  = sigmoid(m_j * scale0 + base_j) + eps
///   post_j = 2 * sigmoid(m_{HC+j} * scale1 + base_{HC+j})
///   C      = row-softmax(m_{2HC..} * scale2 + base_{2HC..}) + eps, then column-normalise,
///            then iters-1 times row-normalise and column-normalise (x / (sum + eps)).
///
/// Ggml: llama.cpp's DSV4_HC_COMB instead (its CPU kernel compiled with FMA contraction): the
/// logits fma(m, scale2, base), the row softmax's values fma(e, 1/sum, eps), and every
/// normalisation a multiplication by 1 / (eps + Σ) with the sum started at eps; pre and post are
/// the same (llama.cpp computes them in separate graph nodes, each rounded as here).
template <std::size_t HC = 4, bool Ggml = false>
inline void hc_split_sinkhorn(const float* mixes, const float* scale, const float* base, int iters,
                              float eps, float* pre, float* post, float* comb) noexcept {
  for (std::size_t j = 0; j < HC; ++j) pre[j] = sigmoid(mixes[j] * scale[0] + base[j]) + eps;
  for (std::size_t j = 0; j < HC; ++j) {
    post[j] = 2.0f * sigmoid(mixes[HC + j] * scale[1] + base[HC + j]);
  }
  float c[HC][HC];
  for (std::size_t a = 0; a < HC; ++a) {
    for (std::size_t b = 0; b < HC; ++b) {
      const std::size_t k = 2 * HC + a * HC + b;
      c[a][b] = Ggml ? std::fma(mixes[k], scale[2], base[k]) : mixes[k] * scale[2] + base[k];
    }
  }
  // each column (columns) or row of c divided by its sum + eps (Ggml: times 1 / (eps + Σ))
  auto normalise = [&c, eps](bool columns) {
    for (std::size_t u = 0; u < HC; ++u) {
      const auto at = [&](std::size_t v) -> float& { return columns ? c[v][u] : c[u][v]; };
      float s = Ggml ? eps : 0.f;
      for (std::size_t v = 0; v < HC; ++v) s += at(v);
      if constexpr (Ggml) {
        const float inv = 1.0f / s;
        for (std::size_t v = 0; v < HC; ++v) at(v) = at(v) * inv;
      } else {
        const float d = s + eps;
        for (std::size_t v = 0; v < HC; ++v) at(v) = at(v) / d;
      }
    }
  };
  // Row softmax + eps.
  for (std::size_t a = 0; a < HC; ++a) {
    float mx = c[a][0];
    for (std::size_t b = 1; b < HC; ++b) mx = std::fmax(mx, c[a][b]);
    float s = 0.f;
    for (std::size_t b = 0; b < HC; ++b) {
      c[a][b] = std::exp(c[a][b] - mx);
      s += c[a][b];
    }
    if constexpr (Ggml) {
      const float inv = 1.0f / s;
      for (std::size_t b = 0; b < HC; ++b) c[a][b] = std::fma(c[a][b], inv, eps);
    } else {
      for (std::size_t b = 0; b < HC; ++b) c[a][b] = c[a][b] / s + eps;
    }
  }
  normalise(true);
  for (int it = 1; it < iters; ++it) {
    normalise(false);
    normalise(true);
  }
  for (std::size_t a = 0; a < HC; ++a) {
    for (std::size_t b = 0; b < HC; ++b) comb[a * HC + b] = c[a][b];
  }
}

}  // namespace dsv4::ops
