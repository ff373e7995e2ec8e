// Scalar reference of the sparse attention core (`sparse_attn`): per query and head, gather the
// indexed latent KV rows (index -1 = unused slot), scaled q.k scores in fp32, online softmax over
// chunks of 64 slots with an attention sink in the denominator, probabilities rounded to bf16
// before P.V in the bf16 mode. Spec: spec/architecture.md §3.6; reference symbol
// `sparse_attn_kernel` (inference/kernel_tilelang.py).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/ops/quant.hpp"

namespace dsv4::ops {

/// Activation policy of the bf16 reference run: P rounded to bf16 before P.V, output rounded to
/// bf16 (the kernel's `acc_s_cast` and bf16 output tensor).
struct Bf16Act {
  static constexpr bool round_p = true;
  static float out(float v) noexcept { return round_bf16(v); }
};
/// Activation policy of the fp32 run: P and the output stay fp32.
struct F32Act {
  static constexpr bool round_p = false;
  static float out(float v) noexcept { return v; }
};

inline constexpr std::size_t kSparseAttnChunk = 64;  ///< slots per online-softmax step

/// One (query, head). q: [D]; kv: [N, D] (row stride D); idx: [K] (-1 = unused, else < N,
/// unchecked); sink: the head's sink logit; o: [D]; acc: [D] fp32 scratch.
template <class Act, class T>
inline void sparse_attention_head(const T* q, const T* kv, const std::int32_t* idx, std::size_t k,
                                  std::size_t d, float sink, float scale, T* o,
                                  float* acc) noexcept {
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  float m = neg_inf;  // running max
  float l = 0.f;      // running denominator
  for (std::size_t j = 0; j < d; ++j) acc[j] = 0.f;
  float s[kSparseAttnChunk];
  for (std::size_t c0 = 0; c0 < k; c0 += kSparseAttnChunk) {
    const std::size_t cn = std::min(kSparseAttnChunk, k - c0);
    float cmax = m;
    for (std::size_t t = 0; t < cn; ++t) {
      const std::int32_t r = idx[c0 + t];
      if (r < 0) {
        s[t] = neg_inf;
      } else {
        const T* kr = kv + static_cast<std::size_t>(r) * d;
        float dot = 0.f;
        for (std::size_t j = 0; j < d; ++j) dot += detail::widen(q[j]) * detail::widen(kr[j]);
        s[t] = dot * scale;
      }
      cmax = std::fmax(cmax, s[t]);
    }
    if (cmax == neg_inf) continue;  // nothing visible yet: the chunk adds exactly nothing
    const float alpha = std::exp(m - cmax);
    float psum = 0.f;
    for (std::size_t t = 0; t < cn; ++t) {
      s[t] = std::exp(s[t] - cmax);  // p_t, fp32
      psum += s[t];
    }
    // acc = acc * alpha + P.V of this chunk (the chunk's products summed in slot order first).
    for (std::size_t j = 0; j < d; ++j) {
      float pv = 0.f;
      for (std::size_t t = 0; t < cn; ++t) {
        if (s[t] == 0.f) continue;  // masked slot (its gathered row is zero anyway)
        const float p = Act::round_p ? round_bf16(s[t]) : s[t];
        pv += p * detail::widen(kv[static_cast<std::size_t>(idx[c0 + t]) * d + j]);
      }
      acc[j] = acc[j] * alpha + pv;
    }
    l = l * alpha + psum;
    m = cmax;
  }
  l += std::exp(sink - m);
  for (std::size_t j = 0; j < d; ++j) o[j] = detail::narrow<T>(Act::out(acc[j] / l));
}

/// Sparse attention over a batch of queries.
/// q: [S, H, D]; kv: [N, D]; sink: [H]; idx: [S, K] (-1 or in [0, N)); o: [S, H, D].
/// `scale` is the softmax scale (D^-1/2 in V4). Throws InputError on an index outside [-1, N).
template <class Act, class T>
inline void sparse_attention(const T* q, const T* kv, const float* sink, const std::int32_t* idx,
                             std::size_t s, std::size_t h, std::size_t d, std::size_t n,
                             std::size_t k, float scale, T* o) {
  for (std::size_t t = 0; t < s * k; ++t) {
    DSV4_CHECK(idx[t] >= -1 && (idx[t] < 0 || static_cast<std::size_t>(idx[t]) < n), InputError,
               "sparse_attention: index [{}][{}] must be -1 or in [0, {}), got {}", t / k, t % k, n,
               idx[t]);
  }
  ScratchBuffer<float> acc(d);
  for (std::size_t t = 0; t < s; ++t) {
    for (std::size_t hh = 0; hh < h; ++hh) {
      sparse_attention_head<Act>(q + (t * h + hh) * d, kv, idx + t * k, k, d, sink[hh], scale,
                                 o + (t * h + hh) * d, acc.data());
    }
  }
}

}  // namespace dsv4::ops
