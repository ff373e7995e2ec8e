// Importance-weighted quantization: ggml's quantizers given an importance matrix (the mean
// squared activation of each input column, from llama-imatrix), as llama-quantize runs them with
// `--imatrix` (ggml-quants.c, `quantize_<type>` with quant_weights). The same bytes as ggml.
//
// A row of n values is quantized with qw[0, n): the importance of each column.
//  * Q4_0 / Q5_0: per 32-value block, the symmetric scale search of Q6_K (make_qx_quants,
//    weighted) with weight qw·sqrt(σ² + x²), σ² the row's mean square.
//  * Q4_1 / Q5_1: per 32-value block, the asymmetric search of Q4_K (make_qkx3_quants) with the
//    same weights.
//  * Q4_K / Q5_K: per 32-value sub-block the asymmetric search (make_qkx3_quants: steps
//    -0.9 + 0.05·is, 37 tries) with weight qw·sqrt(2·σ² + x²), σ² of the 256-value super-block;
//    the 6-bit scales and mins by a weighted search of their own (make_qp_quants, weighted by
//    the sub-blocks' total weight), then every value requantized.
//  * Q6_K: per 16-value group the symmetric search weighted by qw itself.
//  * Q2_K: per 16-value group the asymmetric search (nmax 3) with weight qw·sqrt(σ² + x²), σ²
//    of the super-block; 4-bit scales and mins by the weighted search of Q4_K's.
//  * Q3_K: per 16-value group the symmetric search (nmax 4) with weight qw·sqrt(2·σ² + x²); the
//    6-bit scales by the same search (nmax 32) weighted by the groups' total weight.
//  * IQ4_NL / IQ4_XS: their scale search with weight qw·sqrt(2·σ² + x²), σ² of the block (32
//    values) or super-block (256).
//  * Q8_0, MXFP4 (and the float types) ignore the importance matrix in ggml, as here.
// Every block format dsv4 writes is covered (ggml's IQ1/IQ2/IQ3 types are not formats of dsv4).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/iq4.hpp"
#include "dsv4/formats/k_quants.hpp"
#include "dsv4/formats/q4_0.hpp"
#include "dsv4/formats/q5.hpp"

namespace dsv4 {

/// What an importance matrix does to a format's quantizer.
enum class WeightedUse {
  ignored,      ///< ggml's quantizer does not read it (Q8_0, MXFP4, ...)
  implemented,  ///< weighted_quantize_row<F> gives ggml's bytes
};

namespace detail::wq {

/// Weighted least-squares refit of non-negative values x[0, n) as scale·L, L in [0, nmax]
/// (ggml `make_qp_quants`): the best of iscale = (nmax + 0.1·is)/max for is in [-4, 4] by
/// weighted squared error, then up to 5 passes of coordinate descent on each L[i]. Used for the
/// 6-bit scales and mins of Q4_K/Q5_K. Returns the scale.
inline float search_positive(int n, int nmax, const float* x, std::uint8_t* L,
                             const float* w) noexcept {
  using kq::nearest_int;
  float max = 0.f;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kq::kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const auto fnmax = static_cast<float>(nmax);
  float iscale = fnmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1.f / iscale;
  float best = 0.f;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + fnmax) / max;
    const float scale_is = 1.f / iscale_is;
    float err = 0.f;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_is * x[i]);
      l = l < nmax ? l : nmax;
      const float diff = x[i] - scale_is * static_cast<float>(l);
      err += w[i] * diff * diff;
    }
    if (err < best) {
      best = err;
      iscale = iscale_is;
    }
  }
  float sumlx = 0.f;
  float suml2 = 0.f;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = l < nmax ? l : nmax;
    L[i] = static_cast<std::uint8_t>(l);
    const auto fl = static_cast<float>(l);
    sumlx += w[i] * x[i] * fl;
    suml2 += w[i] * fl * fl;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const auto li = static_cast<float>(L[i]);
      float slx = sumlx - w[i] * x[i] * li;
      float sl2 = suml2 - w[i] * li * li;
      if (slx > 0.f && sl2 > 0.f) {
        int l = nearest_int(x[i] * sl2 / slx);
        l = l < nmax ? l : nmax;
        if (l != L[i]) {
          const auto fl = static_cast<float>(l);
          slx += w[i] * x[i] * fl;
          sl2 += w[i] * fl * fl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::uint8_t>(l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.f ? sumlx / suml2 : 0.f;
}

/// Σ x² over x[0, n), summed in order in float as ggml sums it.
inline float sum_squares(const float* x, std::int64_t n) noexcept {
  float s = 0.f;
  for (std::int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

/// Mean square of x[0, n) as ggml computes it.
inline float mean_square(const float* x, std::int64_t n) noexcept {
  return sum_squares(x, n) / static_cast<float>(n);
}

/// The weights of n values with importance qw: w = qw·sqrt(sigma2 + x²). Returns Σ w (in order).
inline float importance_weights(const float* x, const float* qw, float sigma2, int n,
                                float* w) noexcept {
  float sum = 0.f;
  for (int i = 0; i < n; ++i) w[i] = qw[i] * std::sqrt(sigma2 + x[i] * x[i]);
  for (int i = 0; i < n; ++i) sum += w[i];
  return sum;
}

/// One weighted 32-value block of Q4_0 (nmax 8) or Q5_0 (nmax 16): L in [0, 2·nmax), returns d.
inline float legacy_block(const float* x, const float* qw, float sigma2, int nmax,
                          std::int8_t* L) noexcept {
  float weight[32];
  importance_weights(x, qw, sigma2, 32, weight);
  return kq::search_symmetric(32, nmax, x, L, weight);
}

/// The weighted scales of a Q4_K/Q5_K super-block (quantize_row_q{4,5}_K_impl): writes scales,
/// d, dmin of `b` and L[256] in [0, nmax]. `clamp63` as Q5_K does (Q4_K stores the 6-bit values
/// as found).
template <class Block>
inline void qk_asym_weighted(const float* x, const float* qw, Block& b, int nmax, bool clamp63,
                             std::uint8_t* L) noexcept {
  using kq::nearest_int;
  std::uint8_t laux[32];
  std::uint8_t ls[8];
  std::uint8_t lm[8];
  float weights[32];
  float sw[8];
  float mins[8];
  float scales[8];
  const float sigma2 = 2.f * sum_squares(x, 256) / 256.f;
  for (int j = 0; j < 8; ++j) {
    sw[j] = importance_weights(x + 32 * j, qw + 32 * j, sigma2, 32, weights);
    scales[j] = kq::search_asymmetric(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], laux,
                                      -0.9f, 0.05f, 36, false);
  }
  const float d_block = search_positive(8, 63, scales, ls, sw);
  const float m_block = search_positive(8, 63, mins, lm, sw);
  std::memset(b.scales, 0, sizeof b.scales);
  for (int j = 0; j < 8; ++j) {
    int s = ls[j];
    int m = lm[j];
    if (clamp63) {
      s = s < 63 ? s : 63;
      m = m < 63 ? m : 63;
    }
    kq::put_scale_min_k4(j, s, m, b.scales);
  }
  b.d = f16(d_block);
  b.dmin = f16(m_block);
  kq::requantize_asym(x, b, nmax, L);
}

/// One weighted Q2_K super-block (ggml `quantize_row_q2_K_impl`).
inline void q2_k_block(const float* x, const float* qw, Q2_K::block_type& b) noexcept {
  using kq::nearest_int;
  std::uint8_t L[256];
  std::uint8_t laux[16];
  float mins[16];
  float scales[16];
  float sw[16];
  float weight[16];
  std::uint8_t ls[16];
  std::uint8_t lm[16];
  const float sigma2 = sum_squares(x, 256) / 256.f;
  for (int j = 0; j < 16; ++j) {
    sw[j] = importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight);
    scales[j] = kq::search_asymmetric(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], laux, -0.9f,
                                      0.05f, 36, false);
  }
  const float dm = search_positive(16, 15, scales, ls, sw);
  const float mm = search_positive(16, 15, mins, lm, sw);
  b.d = f16(dm);
  b.dmin = f16(mm);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<std::uint8_t>(ls[j] | (lm[j] << 4));
  Q2_K::requantize_and_pack(x, L, b);
}

/// One weighted Q3_K super-block (ggml `quantize_row_q3_K_impl`).
inline void q3_k_block(const float* x, const float* qw, Q3_K::block_type& b) noexcept {
  using kq::nearest_int;
  std::int8_t L[256];
  float scales[16];
  float weight[16];
  float sw[16];
  std::int8_t ls[16];
  const float sigma2 = 2.f * sum_squares(x, 256) / 256.f;
  for (int j = 0; j < 16; ++j) {
    sw[j] = importance_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight);
    scales[j] = kq::search_symmetric(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  std::memset(b.scales, 0, sizeof b.scales);
  const float d_block = kq::search_symmetric(16, 32, scales, ls, sw);
  for (int j = 0; j < 16; ++j) kq::put_q3_scale(j, ls[j], b.scales);
  b.d = f16(d_block);
  Q3_K::requantize_and_pack(x, L, b);
}

}  // namespace detail::wq

/// How ggml's quantizer of F uses an importance matrix, and whether dsv4 reproduces it.
template <class F>
constexpr WeightedUse weighted_use() noexcept {
  switch (F::id) {
    case FormatId::q4_0:
    case FormatId::q5_0:
    case FormatId::q4_1:
    case FormatId::q5_1:
    case FormatId::q4_k:
    case FormatId::q5_k:
    case FormatId::q6_k:
    case FormatId::q2_k:
    case FormatId::q3_k:
    case FormatId::iq4_nl:
    case FormatId::iq4_xs:
      return WeightedUse::implemented;
    default:
      return WeightedUse::ignored;
  }
}

/// One row of n values (a multiple of F::block_elems) → n / block_elems blocks of F, weighted by
/// the importance qw[0, n) as ggml quantizes it (only for weighted_use<F>() == implemented).
template <class F>
void weighted_quantize_row(const float* x, const float* qw, std::int64_t n,
                           typename F::block_type* out) noexcept {
  using kq_int = std::int64_t;
  const kq_int nb = n / static_cast<kq_int>(F::block_elems);
  if constexpr (F::id == FormatId::q4_0 || F::id == FormatId::q5_0) {
    const float sigma2 = detail::wq::mean_square(x, n);
    for (kq_int ib = 0; ib < nb; ++ib) {
      std::int8_t L[32];
      const float d = detail::wq::legacy_block(x + 32 * ib, qw + 32 * ib, sigma2,
                                               F::id == FormatId::q4_0 ? 8 : 16, L);
      auto& b = out[ib];
      b.d = f16(d);
      if constexpr (F::id == FormatId::q4_0) {
        for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + 16] << 4));
      } else {
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
          const auto x0 = static_cast<std::uint8_t>(L[j]);
          const auto x1 = static_cast<std::uint8_t>(L[j + 16]);
          b.qs[j] = static_cast<std::uint8_t>((x0 & 0x0F) | ((x1 & 0x0F) << 4));
          qh |= static_cast<std::uint32_t>((x0 & 0x10u) >> 4) << j;
          qh |= static_cast<std::uint32_t>((x1 & 0x10u) >> 4) << (j + 16);
        }
        std::memcpy(b.qh, &qh, sizeof qh);
      }
    }
  } else if constexpr (F::id == FormatId::q4_1 || F::id == FormatId::q5_1) {
    const float sigma2 = detail::wq::mean_square(x, n);
    constexpr int nmax = F::id == FormatId::q4_1 ? 15 : 31;
    for (kq_int ib = 0; ib < nb; ++ib) {
      const float* xb = x + 32 * ib;
      const float* qwb = qw + 32 * ib;
      float weight[32];
      detail::wq::importance_weights(xb, qwb, sigma2, 32, weight);
      std::uint8_t L[32];
      std::uint8_t laux[32];
      float neg_min = 0.f;
      const float d = detail::kq::search_asymmetric(32, nmax, xb, weight, L, &neg_min, laux, -0.9f,
                                                    0.05f, 36, false);
      auto& b = out[ib];
      b.d = f16(d);
      b.m = f16(-neg_min);
      if constexpr (F::id == FormatId::q4_1) {
        for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + 16] << 4));
      } else {
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
          b.qs[j] = static_cast<std::uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
          qh |= static_cast<std::uint32_t>((L[j] & 0x10u) >> 4) << j;
          qh |= static_cast<std::uint32_t>((L[j + 16] & 0x10u) >> 4) << (j + 16);
        }
        std::memcpy(b.qh, &qh, sizeof qh);
      }
    }
  } else if constexpr (F::id == FormatId::q4_k || F::id == FormatId::q5_k) {
    for (kq_int i = 0; i < nb; ++i) {
      std::uint8_t L[256];
      constexpr bool q5 = F::id == FormatId::q5_k;
      detail::wq::qk_asym_weighted(x + 256 * i, qw + 256 * i, out[i], q5 ? 31 : 15, q5, L);
      F::pack(L, out[i]);
    }
  } else if constexpr (F::id == FormatId::q6_k) {
    for (kq_int i = 0; i < nb; ++i) {
      Q6_K::quantize_weighted(x + 256 * i, qw + 256 * i, out[i]);
    }
  } else if constexpr (F::id == FormatId::q2_k) {
    for (kq_int i = 0; i < nb; ++i) detail::wq::q2_k_block(x + 256 * i, qw + 256 * i, out[i]);
  } else if constexpr (F::id == FormatId::q3_k) {
    for (kq_int i = 0; i < nb; ++i) detail::wq::q3_k_block(x + 256 * i, qw + 256 * i, out[i]);
  } else if constexpr (F::id == FormatId::iq4_nl) {
    for (kq_int i = 0; i < nb; ++i)
      IQ4_NL::quantize_chunk_weighted(x + 32 * i, qw + 32 * i, out[i]);
  } else if constexpr (F::id == FormatId::iq4_xs) {
    for (kq_int i = 0; i < nb; ++i) IQ4_XS::quantize_weighted(x + 256 * i, qw + 256 * i, out[i]);
  } else {
    static_assert(F::id == FormatId::q4_0, "no weighted quantizer for this format");
  }
}

}  // namespace dsv4
