// GGUF k-quant block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the activation format Q8_K.
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4 (QuantFormat). Mirrors ggml's
// `block_q{2..6,8}_K` structs (ggml-common.h), the reference quantizers `quantize_row_q*_K_ref`
// with their scale searches (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`,
// `nearest_int`) and the dequantizers `dequantize_row_q*_K` in ggml-quants.c, and the CPU
// backend's portable dot products `ggml_vec_dot_q*_K_q8_K_generic` (ggml-cpu/quants.c).
//
// Bit exactness: every floating-point operation that decides a quantized value or a stored
// scale is evaluated in the same order and precision as ggml's (the build uses
// -ffp-contract=off, and CUDA code --fmad=false, so nothing is fused). Quantizers therefore
// reproduce ggml's bytes exactly, dequantizers its floats exactly, and `dot` follows the generic
// (non-SIMD) accumulation order.
//
// Super-block layout shared by all formats here: 256 values (QK_K); the sub-block scale index of
// element e is e/16 (Q2_K, Q3_K, Q6_K) or e/32 (Q4_K, Q5_K).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/q8_0.hpp"

namespace dsv4 {

namespace detail::kq {

inline constexpr int kSuper = 256;                ///< values per super-block (ggml's QK_K)
inline constexpr float kGroupMaxEps = 1e-15f;     ///< ggml's GROUP_MAX_EPS
inline constexpr float kRoundMagic = 12582912.f;  ///< 1.5·2^23: adding it rounds to an integer

/// Round to nearest (ties to even) through the float mantissa, as ggml's `nearest_int`; exact
/// for |f| <= 2^22 - 1, and for larger inputs it yields the same (meaningless) value ggml does.
DSV4_HOST_DEVICE inline int nearest_int(float f) noexcept {
  const float shifted = f + kRoundMagic;
  const auto bits = std::bit_cast<std::int32_t>(shifted);
  return (bits & 0x007fffff) - 0x00400000;
}

DSV4_HOST_DEVICE constexpr int clamp_int(int v, int lo, int hi) noexcept {
  return v < lo ? lo : (v > hi ? hi : v);
}

/// Symmetric scale search used by Q6_K (ggml `make_qx_quants` with rmse_type 1): the weight of
/// x[i] is qw[i], or x[i]^2 without qw; tries iscale = -(nmax + 0.1·is)/max for is in [-9, 9] and
/// keeps the scale maximising sumlx^2/suml2. Writes L[i] in [0, 2·nmax) (offset by nmax); returns
/// the scale (0 for an all-zero group).
inline float search_symmetric(int n, int nmax, const float* x, std::int8_t* L,
                              const float* qw = nullptr) noexcept {
  float max = 0.f;
  float amax = 0.f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.f;
  float suml2 = 0.f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<std::int8_t>(l + nmax);
    const float w = qw != nullptr ? qw[i] : x[i] * x[i];
    const auto fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.f ? sumlx / suml2 : 0.f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = 0.f;
    suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
      const auto fl = static_cast<float>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      const float w = qw != nullptr ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0.f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] =
            static_cast<std::int8_t>(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// Symmetric scale search of Q3_K (ggml `make_q3_quants` with do_rmse): start from
/// iscale = -nmax/max, then up to 5 passes of coordinate descent on each L[i] with weight x[i]^2.
/// Writes L[i] in [0, 2·nmax) (offset by nmax); returns the least-squares scale.
inline float search_q3(int n, int nmax, const float* x, std::int8_t* L) noexcept {
  float max = 0.f;
  float amax = 0.f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.f;
  float suml2 = 0.f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<std::int8_t>(l);
    const float w = x[i] * x[i];
    const auto fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0.f) {
        float sl2 = suml2 - w * li * li;
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const auto fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (sl2 > 0.f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
  return suml2 > 0.f ? sumlx / suml2 : 0.f;
}

/// Asymmetric (scale, min) search of Q2_K/Q4_K/Q5_K (ggml `make_qkx2_quants`): x ≈ scale·L + min
/// with L in [0, nmax] and min <= 0. Starts from the min/max fit, then tries
/// iscale = (rmin + rdelta·is + nmax)/(max - min) for is in [0, nstep], solving the weighted
/// least-squares (scale, min) for each candidate and keeping the lowest weighted error
/// (|diff| when use_mad, else diff^2). Writes L (n bytes; laux is scratch of n bytes), stores -min
/// in *neg_min and returns the scale.
inline float search_asymmetric(int n, int nmax, const float* x, const float* weights,
                               std::uint8_t* L, float* neg_min, std::uint8_t* laux, float rmin,
                               float rdelta, int nstep, bool use_mad) noexcept {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.f) min = 0.f;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.f;
  }
  const auto fnmax = static_cast<float>(nmax);
  float iscale = fnmax / (max - min);
  float scale = 1.f / iscale;
  float best_error = 0.f;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<std::uint8_t>(clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *neg_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + fnmax) / (max - min);
    float sum_l = 0.f;
    float sum_l2 = 0.f;
    float sum_xl = 0.f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      laux[i] = static_cast<std::uint8_t>(l);
      const float w = weights[i];
      const auto fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.f) {
        this_min = 0.f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.f;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

/// 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K/Q5_K
/// (ggml `get_scale_min_k4`): j < 4 in the low 6 bits of bytes j / j+4, j >= 4 split into a
/// nibble of byte j+4 and the top 2 bits of bytes j-4 / j.
DSV4_HOST_DEVICE inline void get_scale_min_k4(int j, const std::uint8_t* q, int& sc,
                                              int& m) noexcept {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/// Inverse of get_scale_min_k4 (scales must be zeroed before the first call).
inline void put_scale_min_k4(int j, int ls, int lm, std::uint8_t* q) noexcept {
  if (j < 4) {
    q[j] = static_cast<std::uint8_t>(ls);
    q[j + 4] = static_cast<std::uint8_t>(lm);
  } else {
    q[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] = static_cast<std::uint8_t>(q[j - 4] | ((ls >> 4) << 6));
    q[j] = static_cast<std::uint8_t>(q[j] | ((lm >> 4) << 6));
  }
}

/// Stores the 6-bit scale l (0..63, the signed scale + 32) of 16-value group j of Q3_K into its
/// 12 packed bytes (zeroed before the first call): low nibbles in bytes 0..7, top bits in 8..11.
inline void put_q3_scale(int j, int l, std::uint8_t* s) noexcept {
  if (j < 8) {
    s[j] = static_cast<std::uint8_t>(l & 0xF);
  } else {
    s[j - 8] = static_cast<std::uint8_t>(s[j - 8] | ((l & 0xF) << 4));
  }
  s[j % 4 + 8] = static_cast<std::uint8_t>(s[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
}

/// Signed 6-bit scale (-32..31) of 16-value group j of Q3_K from its 12 packed bytes.
DSV4_HOST_DEVICE inline int q3_scale(const std::uint8_t* s, int j) noexcept {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

/// Packs 2-bit values L[0..255] (0..3) the way Q2_K/Q3_K store them: byte 32·h + l holds
/// elements 128·h + 32·k + l in bits 2k..2k+1.
inline void pack_2bit(const std::uint8_t* L, std::uint8_t* qs) noexcept {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int b = 128 * h + l;
      qs[32 * h + l] =
          static_cast<std::uint8_t>(L[b] | (L[b + 32] << 2) | (L[b + 64] << 4) | (L[b + 96] << 6));
    }
  }
}

/// 2-bit value of element e (0..255) of a Q2_K/Q3_K `qs` array.
DSV4_HOST_DEVICE inline int low2(const std::uint8_t* qs, int e) noexcept {
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/// 4-bit value of element e of a Q4_K/Q5_K `qs` array (byte 32·c + l: low nibble element
/// 64·c + l, high nibble element 64·c + 32 + l).
DSV4_HOST_DEVICE inline int low4(const std::uint8_t* qs, int e) noexcept {
  return (qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF;
}

/// Combines per-lane float partial sums the way ggml's generic k-quant dots finish: lanes hold
/// the elements e ≡ lane (mod 8), each block adds d·lane_int to its lane.
struct EightLanes {
  float sums[8] = {};
  DSV4_HOST_DEVICE void add_block(float d, const std::int32_t* lane) noexcept {
    for (int l = 0; l < 8; ++l) sums[l] += d * static_cast<float>(lane[l]);
  }
  DSV4_HOST_DEVICE float finish(float sumf) const noexcept {
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
  }
};

/// The 8 integer lanes of a super-block in ggml's x86 k-quant dots (AVX2: `vpmaddubsw` +
/// `vpmaddwd` on 32-value chunks, the chunks' int32 lanes added): lane m holds values
/// 32c + 4m .. 32c + 4m + 3 of every chunk c, each product times the scale of its 16-value group.
/// q(e): the unsigned quant of element e; sc16[g]: the scale of group g (values 16g .. 16g + 15).
template <class Quant>
DSV4_HOST_DEVICE void x86_lanes(const Quant& q, const int* sc16, const std::int8_t* a,
                                std::int32_t* lanes) noexcept {
  for (int m = 0; m < 8; ++m) {
    lanes[m] = 0;
    for (int c = 0; c < 8; ++c) {
      const int e0 = 32 * c + 4 * m;
      int s = 0;
      for (int e = e0; e < e0 + 4; ++e) s += q(e) * a[e];
      lanes[m] += sc16[e0 / 16] * s;
    }
  }
}

/// Lane m of `vpmaddwd(v16, bsums)`: v16[2m]·bsums[2m] + v16[2m + 1]·bsums[2m + 1], for per-group
/// values v16 (mins or scales) and the activation's 16 group sums.
DSV4_HOST_DEVICE inline void x86_bsum_lanes(const int* v16, const std::int16_t* bsums,
                                            std::int32_t* lanes) noexcept {
  for (int m = 0; m < 8; ++m)
    lanes[m] = v16[2 * m] * bsums[2 * m] + v16[2 * m + 1] * bsums[2 * m + 1];
}

}  // namespace detail::kq

/// Q8_K: the activation partner of every k-quant. 256 int8 values with one float32 scale and
/// the sums of each 16 consecutive quants (used by the dots' min terms).
struct Q8_K {
  struct block_type {
    float d;                 ///< scale: value = d·qs[i]
    std::int8_t qs[256];     ///< quants
    std::int16_t bsums[16];  ///< bsums[j] = Σ qs[16j .. 16j+15]
  };
  static_assert(sizeof(block_type) == 292);
  static constexpr FormatId id = FormatId::q8_k;
  static constexpr std::string_view name = "Q8_K";
  static constexpr std::size_t block_elems = 256;

  /// out[256] = d·qs (ggml `dequantize_row_q8_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    for (int i = 0; i < 256; ++i) out[i] = b.d * static_cast<float>(b.qs[i]);
  }

  /// in[256] → one block (ggml `quantize_row_q8_K_ref`): iscale = -127/max where max is the
  /// signed value of largest magnitude, q = min(127, round(iscale·x)), d = 1/iscale.
  static void quantize(const float* in, block_type& b) noexcept {
    float max = 0.f;
    float amax = 0.f;
    for (int j = 0; j < 256; ++j) {
      const float ax = std::fabs(in[j]);
      if (ax > amax) {
        amax = ax;
        max = in[j];
      }
    }
    if (amax == 0.f) {
      b.d = 0.f;
      std::memset(b.qs, 0, sizeof b.qs);
      // ggml leaves bsums untouched here; dsv4 zeroes them so that a block is fully defined
      std::memset(b.bsums, 0, sizeof b.bsums);
      return;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < 256; ++j) {
      const int v = detail::kq::nearest_int(iscale * in[j]);
      b.qs[j] = static_cast<std::int8_t>(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += b.qs[16 * j + i];
      b.bsums[j] = static_cast<std::int16_t>(sum);
    }
    b.d = 1.f / iscale;
  }
};

namespace detail::kq {

/// The dot of Q2_K / Q4_K in llama.cpp's repacked kernels (ggml's CPU_REPACK buffer, x86): the
/// exact integer sums over `per_step` scale groups at a time, Σ sc·(q·a) and Σ m·bsum (group(i, g,
/// sum, msum) adds group g of block i), each added with one FMA of d·d_a and of dmin·d_a into its
/// own accumulator; the result is their difference. `Groups` scale groups per super-block; the
/// GEMM steps through `gemm_groups` of them at a time, the GEMV through the whole super-block.
template <int Groups, class B, class Group>
DSV4_HOST_DEVICE float dot_repacked_asym(const B* w, const Q8_K::block_type* a,
                                         std::size_t n_blocks, int per_step,
                                         Group&& group) noexcept {
  float acc = 0.f;
  float accm = 0.f;
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const float d = w[i].d.to_float() * a[i].d;
    const float dmin = w[i].dmin.to_float() * a[i].d;
    for (int g0 = 0; g0 < Groups; g0 += per_step) {
      std::int32_t sum = 0;
      std::int32_t msum = 0;
      for (int g = g0; g < g0 + per_step; ++g) group(i, g, sum, msum);
      acc = std::fma(static_cast<float>(sum), d, acc);
      accm = std::fma(static_cast<float>(msum), dmin, accm);
    }
  }
  return acc - accm;
}

}  // namespace detail::kq

/// Q2_K: 2-bit quants in 16 groups of 16, each with a 4-bit scale and 4-bit min; value =
/// d·sc·q - dmin·m (84 bytes per 256 values, 2.625 bits per weight).
struct Q2_K {
  struct block_type {
    std::uint8_t scales[16];  ///< group j: low nibble scale, high nibble min
    std::uint8_t qs[64];      ///< 2-bit quants, see detail::kq::pack_2bit
    f16 d;                    ///< super-block scale of the scales
    f16 dmin;                 ///< super-block scale of the mins
  };
  static_assert(sizeof(block_type) == 84);
  static constexpr FormatId id = FormatId::q2_k;
  static constexpr std::string_view name = "Q2_K";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// out[256] (ggml `dequantize_row_q2_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    const float dmin = b.dmin.to_float();
    for (int e = 0; e < 256; ++e) {
      const int sc = b.scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      out[e] = dl * static_cast<float>(detail::kq::low2(b.qs, e)) - ml;
    }
  }

  /// in[256] → one block (ggml `quantize_row_q2_K_ref`).
  static void quantize(const float* x, block_type& b) noexcept {
    using namespace detail::kq;
    std::uint8_t L[256];
    std::uint8_t laux[16];
    float weights[16];
    float mins[16];
    float scales[16];
    constexpr float q4scale = 15.f;
    float max_scale = 0.f;
    float max_min = 0.f;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = search_asymmetric(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], laux, -0.5f,
                                    0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0.f) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) {
        b.scales[j] = static_cast<std::uint8_t>(nearest_int(iscale * scales[j]));
      }
      b.d = f16(max_scale / q4scale);
    } else {
      for (int j = 0; j < 16; ++j) b.scales[j] = 0;
      b.d = f16(0.f);
    }
    if (max_min > 0.f) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) {
        const int l = nearest_int(iscale * mins[j]);
        b.scales[j] = static_cast<std::uint8_t>(b.scales[j] | (l << 4));
      }
      b.dmin = f16(max_min / q4scale);
    } else {
      b.dmin = f16(0.f);
    }
    requantize_and_pack(x, L, b);
  }

  /// The last step of both Q2_K quantizers (also the importance-weighted one): every value
  /// requantized with the block's stored scales and mins (groups of scale 0 keep L), then packed.
  static void requantize_and_pack(const float* x, std::uint8_t* L, block_type& b) noexcept {
    using namespace detail::kq;
    for (int j = 0; j < 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(b.scales[j] & 0xF);
      if (d == 0.f) continue;
      const float dm = b.dmin.to_float() * static_cast<float>(b.scales[j] >> 4);
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] =
            static_cast<std::uint8_t>(clamp_int(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
      }
    }
    pack_2bit(L, b.qs);
  }

  /// Σ over n_blocks of w·a (ggml `ggml_vec_dot_q2_K_q8_K_generic` order).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sumf = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int summs = 0;
      for (int j = 0; j < 16; ++j) summs += a[i].bsums[j] * (w[i].scales[j] >> 4);
      const float dall = a[i].d * w[i].d.to_float();
      const float dmin = a[i].d * w[i].dmin.to_float();
      int isum = 0;
      for (int g = 0; g < 16; ++g) {
        int isuml = 0;
        for (int e = 16 * g; e < 16 * g + 16; ++e)
          isuml += a[i].qs[e] * detail::kq::low2(w[i].qs, e);
        isum += (w[i].scales[g] & 0xF) * isuml;
      }
      sumf += dall * static_cast<float>(isum) - dmin * static_cast<float>(summs);
    }
    return sumf;
  }

  /// The same dot in ggml's x86 order (`ggml_vec_dot_q2_K_q8_K`, AVX2): per super-block the mins'
  /// lanes (detail::kq::x86_bsum_lanes) with −d_a·dmin, then the scaled quants' lanes
  /// (detail::kq::x86_lanes) with d_a·d, into the same 8 FMA accumulators.
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_K::block_type* a,
                                        std::size_t n_blocks) noexcept {
    detail::ggml::X86Lanes acc;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int sc[16];
      int mn[16];
      for (int g = 0; g < 16; ++g) {
        sc[g] = w[i].scales[g] & 0xF;
        mn[g] = w[i].scales[g] >> 4;
      }
      std::int32_t lanes[8];
      detail::kq::x86_bsum_lanes(mn, a[i].bsums, lanes);
      acc.add_lanes(-a[i].d * w[i].dmin.to_float(), lanes);
      detail::kq::x86_lanes([&](int e) { return detail::kq::low2(w[i].qs, e); }, sc, a[i].qs,
                            lanes);
      acc.add_lanes(a[i].d * w[i].d.to_float(), lanes);
    }
    return acc.sum();
  }

  /// The same dot in llama.cpp's repacked kernels (detail::kq::dot_repacked_asym; AVX-512 builds
  /// only): the GEMM adds each half super-block (8 groups of 16), the GEMV each super-block.
  DSV4_HOST_DEVICE static float dot_repacked(const block_type* w, const Q8_K::block_type* a,
                                             std::size_t n_blocks, RepackKernel kernel) noexcept {
    return detail::kq::dot_repacked_asym<16>(
        w, a, n_blocks, kernel == RepackKernel::gemm ? 8 : 16,
        [&](std::size_t i, int g, std::int32_t& sum, std::int32_t& msum) {
          std::int32_t s = 0;
          for (int e = 16 * g; e < 16 * g + 16; ++e) s += detail::kq::low2(w[i].qs, e) * a[i].qs[e];
          sum += (w[i].scales[g] & 0xF) * s;
          msum += (w[i].scales[g] >> 4) * a[i].bsums[g];
        });
  }
};

/// Q3_K: 3-bit signed quants (-4..3) in 16 groups of 16 with signed 6-bit scales; value =
/// d·sc·q (110 bytes per 256 values, 3.4375 bits per weight).
struct Q3_K {
  struct block_type {
    std::uint8_t hmask[32];   ///< high bit of element e: bit e/32 of hmask[e%32] (set = q >= 0)
    std::uint8_t qs[64];      ///< low 2 bits, see detail::kq::pack_2bit
    std::uint8_t scales[12];  ///< 16 6-bit scales (+32), see detail::kq::q3_scale
    f16 d;                    ///< super-block scale
  };
  static_assert(sizeof(block_type) == 110);
  static constexpr FormatId id = FormatId::q3_k;
  static constexpr std::string_view name = "Q3_K";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// Signed quant (-4..3) of element e.
  DSV4_HOST_DEVICE static int quant(const block_type& b, int e) noexcept {
    const bool high = (b.hmask[e % 32] >> (e / 32)) & 1;
    return detail::kq::low2(b.qs, e) - (high ? 0 : 4);
  }

  /// out[256] (ggml `dequantize_row_q3_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d_all = b.d.to_float();
    for (int e = 0; e < 256; ++e) {
      const float dl = d_all * static_cast<float>(detail::kq::q3_scale(b.scales, e / 16));
      out[e] = dl * static_cast<float>(quant(b, e));
    }
  }

  /// in[256] → one block (ggml `quantize_row_q3_K_ref`).
  static void quantize(const float* x, block_type& b) noexcept {
    using namespace detail::kq;
    std::int8_t L[256];
    float scales[16];
    float max_scale = 0.f;
    float amax = 0.f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = search_q3(16, 4, x + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale != 0.f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        const auto l8 = static_cast<std::int8_t>(nearest_int(iscale * scales[j]));
        put_q3_scale(j, clamp_int(l8, -32, 31) + 32, b.scales);
      }
      b.d = f16(1.f / iscale);
    } else {
      b.d = f16(0.f);
    }
    requantize_and_pack(x, L, b);
  }

  /// The last step of both Q3_K quantizers (also the importance-weighted one): every value
  /// requantized with the block's stored scales (groups of scale 0 keep L, offset by 4), then
  /// the high bits into hmask and the low two into qs.
  static void requantize_and_pack(const float* x, std::int8_t* L, block_type& b) noexcept {
    using namespace detail::kq;
    for (int j = 0; j < 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(q3_scale(b.scales, j));
      if (d == 0.f) continue;
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] =
            static_cast<std::int8_t>(clamp_int(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
      }
    }
    std::memset(b.hmask, 0, sizeof b.hmask);
    std::uint8_t low[256];
    for (int e = 0; e < 256; ++e) {
      int l = L[e];
      if (l > 3) {
        b.hmask[e % 32] = static_cast<std::uint8_t>(b.hmask[e % 32] | (1 << (e / 32)));
        l -= 4;
      }
      low[e] = static_cast<std::uint8_t>(l);
    }
    pack_2bit(low, b.qs);
  }

  /// Σ over n_blocks of w·a (ggml `ggml_vec_dot_q3_K_q8_K_generic` order).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    detail::kq::EightLanes lanes;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      std::int32_t lane[8] = {};
      for (int e = 0; e < 256; ++e) {
        lane[e % 8] += detail::kq::q3_scale(w[i].scales, e / 16) * (a[i].qs[e] * quant(w[i], e));
      }
      lanes.add_block(w[i].d.to_float() * a[i].d, lane);
    }
    return lanes.finish(0.f);
  }
};

namespace detail::kq {

/// The last step of the Q4_K/Q5_K quantizers (also the importance-weighted ones): every value
/// requantized with the block's stored scales and mins into L[256] in [0, nmax] (sub-blocks of
/// scale 0 keep L).
template <class Block>
inline void requantize_asym(const float* x, const Block& b, int nmax, std::uint8_t* L) noexcept {
  for (int j = 0; j < 8; ++j) {
    int sc = 0;
    int m = 0;
    get_scale_min_k4(j, b.scales, sc, m);
    const float d = b.d.to_float() * static_cast<float>(sc);
    if (d == 0.f) continue;
    const float dm = b.dmin.to_float() * static_cast<float>(m);
    for (int i = 0; i < 32; ++i) {
      L[32 * j + i] =
          static_cast<std::uint8_t>(clamp_int(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
    }
  }
}

/// Shared quantizer of Q4_K and Q5_K (ggml `quantize_row_q4_K_ref` / `q5_K_ref`): per 32-value
/// sub-block an asymmetric search weighted by rms(x) + |x|, 6-bit scales and mins relative to
/// f16 super-block scales, then requantization of every value. Writes L[256] in [0, nmax] and
/// the scales / d / dmin fields.
template <class Block>
inline void quantize_qk_asym(const float* x, Block& b, int nmax, float rmin, float rdelta,
                             int nstep, std::uint8_t* L) noexcept {
  std::uint8_t laux[32];
  float weights[32];
  float mins[8];
  float scales[8];
  float max_scale = 0.f;
  float max_min = 0.f;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0.f;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32.f);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = search_asymmetric(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], laux, rmin,
                                  rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.f ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0.f ? 63.f / max_min : 0.f;
  std::memset(b.scales, 0, sizeof b.scales);
  for (int j = 0; j < 8; ++j) {
    // ggml stores the rounded value in a uint8_t before clamping to 63
    auto ls = static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j]));
    auto lm = static_cast<std::uint8_t>(nearest_int(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    put_scale_min_k4(j, ls, lm, b.scales);
  }
  b.d = f16(max_scale / 63.f);
  b.dmin = f16(max_min / 63.f);
  requantize_asym(x, b, nmax, L);
}

/// Shared dot of Q4_K and Q5_K (ggml `ggml_vec_dot_q{4,5}_K_q8_K_generic` order); `F::quant(b, e)`
/// gives the unsigned quant of element e.
template <class F>
DSV4_HOST_DEVICE inline float dot_qk_asym(const typename F::block_type* w,
                                          const Q8_K::block_type* a,
                                          std::size_t n_blocks) noexcept {
  EightLanes lanes;
  float sumf = 0.f;
  for (std::size_t i = 0; i < n_blocks; ++i) {
    int sc[8];
    int mn[8];
    for (int j = 0; j < 8; ++j) get_scale_min_k4(j, w[i].scales, sc[j], mn[j]);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) sumi += a[i].bsums[j] * mn[j / 2];
    std::int32_t lane[8] = {};
    for (int e = 0; e < 256; ++e) lane[e % 8] += sc[e / 32] * (a[i].qs[e] * F::quant(w[i], e));
    lanes.add_block(w[i].d.to_float() * a[i].d, lane);
    const float dmin = w[i].dmin.to_float() * a[i].d;
    sumf -= dmin * static_cast<float>(sumi);
  }
  return lanes.finish(sumf);
}

/// Shared x86-order dot of Q4_K and Q5_K (`ggml_vec_dot_q{4,5}_K_q8_K`, AVX2): the scaled
/// quants' lanes (x86_lanes) with d_a·d into 8 FMA accumulators; the min term from 4 lanes
/// mn[2k]·(bsums[4k] + bsums[4k + 1]) + mn[2k + 1]·(bsums[4k + 2] + bsums[4k + 3]) with
/// −d_a·dmin, Q4_K into 4 FMA accumulators added at the end as ((0 + 2) + (1 + 3)), Q5_K as one
/// float per super-block of their integer total, summed in block order. Both added last.
template <class F>
DSV4_HOST_DEVICE inline float dot_qk_asym_x86(const typename F::block_type* w,
                                              const Q8_K::block_type* a,
                                              std::size_t n_blocks) noexcept {
  constexpr bool kQ5 = F::id == FormatId::q5_k;
  detail::ggml::X86Lanes acc;
  float accm[4] = {};
  float summs = 0.f;
  for (std::size_t i = 0; i < n_blocks; ++i) {
    int sc[8];
    int mn[8];
    for (int j = 0; j < 8; ++j) get_scale_min_k4(j, w[i].scales, sc[j], mn[j]);
    const float dmin = -a[i].d * w[i].dmin.to_float();
    std::int32_t prod[4];
    for (int k = 0; k < 4; ++k) {
      const int s0 = a[i].bsums[4 * k] + a[i].bsums[4 * k + 1];
      const int s1 = a[i].bsums[4 * k + 2] + a[i].bsums[4 * k + 3];
      prod[k] = mn[2 * k] * s0 + mn[2 * k + 1] * s1;
    }
    if constexpr (kQ5) {
      summs += dmin * static_cast<float>(prod[0] + prod[1] + prod[2] + prod[3]);
    } else {
      for (int k = 0; k < 4; ++k) accm[k] = std::fma(dmin, static_cast<float>(prod[k]), accm[k]);
    }
    int sc16[16];
    for (int g = 0; g < 16; ++g) sc16[g] = sc[g / 2];
    std::int32_t lanes[8];
    x86_lanes([&](int e) { return F::quant(w[i], e); }, sc16, a[i].qs, lanes);
    acc.add_lanes(a[i].d * w[i].d.to_float(), lanes);
  }
  return acc.sum() + (kQ5 ? summs : (accm[0] + accm[2]) + (accm[1] + accm[3]));
}

}  // namespace detail::kq

/// Q4_K: 4-bit quants in 8 sub-blocks of 32 with 6-bit scales and mins; value = d·sc·q - dmin·m
/// (144 bytes per 256 values, 4.5 bits per weight).
struct Q4_K {
  struct block_type {
    f16 d;                    ///< super-block scale of the scales
    f16 dmin;                 ///< super-block scale of the mins
    std::uint8_t scales[12];  ///< 8 6-bit scales and mins, see detail::kq::get_scale_min_k4
    std::uint8_t qs[128];     ///< 4-bit quants, see detail::kq::low4
  };
  static_assert(sizeof(block_type) == 144);
  static constexpr FormatId id = FormatId::q4_k;
  static constexpr std::string_view name = "Q4_K";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// Unsigned quant (0..15) of element e.
  DSV4_HOST_DEVICE static int quant(const block_type& b, int e) noexcept {
    return detail::kq::low4(b.qs, e);
  }

  /// out[256] (ggml `dequantize_row_q4_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    const float dmin = b.dmin.to_float();
    for (int j = 0; j < 8; ++j) {
      int sc = 0;
      int m = 0;
      detail::kq::get_scale_min_k4(j, b.scales, sc, m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      for (int e = 32 * j; e < 32 * j + 32; ++e) out[e] = d1 * static_cast<float>(quant(b, e)) - m1;
    }
  }

  /// in[256] → one block (ggml `quantize_row_q4_K_ref`).
  static void quantize(const float* x, block_type& b) noexcept {
    std::uint8_t L[256];
    detail::kq::quantize_qk_asym(x, b, 15, -1.f, 0.1f, 20, L);
    pack(L, b);
  }

  /// Packs L[256] (0..15) into qs.
  static void pack(const std::uint8_t* L, block_type& b) noexcept {
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * c + l] = static_cast<std::uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
      }
    }
  }

  /// Σ over n_blocks of w·a (ggml `ggml_vec_dot_q4_K_q8_K_generic` order).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    return detail::kq::dot_qk_asym<Q4_K>(w, a, n_blocks);
  }

  /// The same dot in ggml's x86 order (detail::kq::dot_qk_asym_x86).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_K::block_type* a,
                                        std::size_t n_blocks) noexcept {
    return detail::kq::dot_qk_asym_x86<Q4_K>(w, a, n_blocks);
  }

  /// The same dot in llama.cpp's repacked kernels (detail::kq::dot_repacked_asym): the GEMM adds
  /// each pair of 32-value sub-blocks (4 steps per super-block), the GEMV each super-block.
  DSV4_HOST_DEVICE static float dot_repacked(const block_type* w, const Q8_K::block_type* a,
                                             std::size_t n_blocks, RepackKernel kernel) noexcept {
    return detail::kq::dot_repacked_asym<8>(
        w, a, n_blocks, kernel == RepackKernel::gemm ? 2 : 8,
        [&](std::size_t i, int g, std::int32_t& sum, std::int32_t& msum) {
          int sc = 0;
          int m = 0;
          detail::kq::get_scale_min_k4(g, w[i].scales, sc, m);
          std::int32_t s = 0;
          for (int e = 32 * g; e < 32 * g + 32; ++e) s += quant(w[i], e) * a[i].qs[e];
          sum += sc * s;
          msum += m * (a[i].bsums[2 * g] + a[i].bsums[2 * g + 1]);
        });
  }
};

/// Q5_K: Q4_K with a fifth (high) bit per quant; value = d·sc·q - dmin·m, q in 0..31
/// (176 bytes per 256 values, 5.5 bits per weight).
struct Q5_K {
  struct block_type {
    f16 d;                    ///< super-block scale of the scales
    f16 dmin;                 ///< super-block scale of the mins
    std::uint8_t scales[12];  ///< as Q4_K
    std::uint8_t qh[32];      ///< high bit of element e: bit e/32 of qh[e%32]
    std::uint8_t qs[128];     ///< low 4 bits, as Q4_K
  };
  static_assert(sizeof(block_type) == 176);
  static constexpr FormatId id = FormatId::q5_k;
  static constexpr std::string_view name = "Q5_K";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// Unsigned quant (0..31) of element e.
  DSV4_HOST_DEVICE static int quant(const block_type& b, int e) noexcept {
    return detail::kq::low4(b.qs, e) + (((b.qh[e % 32] >> (e / 32)) & 1) << 4);
  }

  /// out[256] (ggml `dequantize_row_q5_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    const float dmin = b.dmin.to_float();
    for (int j = 0; j < 8; ++j) {
      int sc = 0;
      int m = 0;
      detail::kq::get_scale_min_k4(j, b.scales, sc, m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      for (int e = 32 * j; e < 32 * j + 32; ++e) out[e] = d1 * static_cast<float>(quant(b, e)) - m1;
    }
  }

  /// in[256] → one block (ggml `quantize_row_q5_K_ref`).
  static void quantize(const float* x, block_type& b) noexcept {
    std::uint8_t L[256];
    detail::kq::quantize_qk_asym(x, b, 31, -0.5f, 0.1f, 15, L);
    pack(L, b);
  }

  /// Packs L[256] (0..31): the fifth bits into qh, the low four into qs.
  static void pack(const std::uint8_t* L, block_type& b) noexcept {
    std::memset(b.qh, 0, sizeof b.qh);
    for (int e = 0; e < 256; ++e) {
      if (L[e] > 15) b.qh[e % 32] = static_cast<std::uint8_t>(b.qh[e % 32] | (1 << (e / 32)));
    }
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * c + l] =
            static_cast<std::uint8_t>((L[64 * c + l] & 0xF) | ((L[64 * c + 32 + l] & 0xF) << 4));
      }
    }
  }

  /// Σ over n_blocks of w·a (ggml `ggml_vec_dot_q5_K_q8_K_generic` order).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    return detail::kq::dot_qk_asym<Q5_K>(w, a, n_blocks);
  }

  /// The same dot in ggml's x86 order (detail::kq::dot_qk_asym_x86).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_K::block_type* a,
                                        std::size_t n_blocks) noexcept {
    return detail::kq::dot_qk_asym_x86<Q5_K>(w, a, n_blocks);
  }
};

/// Q6_K: 6-bit signed quants (-32..31) in 16 groups of 16 with int8 scales; value = d·sc·q
/// (210 bytes per 256 values, 6.5625 bits per weight).
struct Q6_K {
  struct block_type {
    std::uint8_t ql[128];    ///< low 4 bits: byte 64·h + 32·p + l holds elements
                             ///< 128·h + 32·p + l (low nibble) and 128·h + 64 + 32·p + l (high)
    std::uint8_t qh[64];     ///< high 2 bits: byte 32·h + l, bits 2k..2k+1 = element 128·h+32k+l
    std::int8_t scales[16];  ///< group scales
    f16 d;                   ///< super-block scale
  };
  static_assert(sizeof(block_type) == 210);
  static constexpr FormatId id = FormatId::q6_k;
  static constexpr std::string_view name = "Q6_K";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// Signed quant (-32..31) of element e.
  DSV4_HOST_DEVICE static int quant(const block_type& b, int e) noexcept {
    const int h = e / 128;
    const int k = (e % 128) / 32;  // 0..3
    const int l = e % 32;
    const int lo = (b.ql[64 * h + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 0xF;
    const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32;
  }

  /// out[256] (ggml `dequantize_row_q6_K`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    for (int e = 0; e < 256; ++e) {
      out[e] = d * static_cast<float>(b.scales[e / 16]) * static_cast<float>(quant(b, e));
    }
  }

  /// in[256] → one block (ggml `quantize_row_q6_K_ref`).
  static void quantize(const float* x, block_type& b) noexcept { quantize_weighted(x, nullptr, b); }

  /// in[256] → one block with the importance qw[256] of each value (ggml
  /// `quantize_row_q6_K_impl`: the group scale searches weighted by qw instead of x^2); qw null
  /// is quantize().
  static void quantize_weighted(const float* x, const float* qw, block_type& b) noexcept {
    using namespace detail::kq;
    std::int8_t L[256];
    float scales[16];
    float max_scale = 0.f;
    float max_abs_scale = 0.f;
    for (int ib = 0; ib < 16; ++ib) {
      const float scale = search_symmetric(16, 32, x + 16 * ib, L + 16 * ib,
                                           qw != nullptr ? qw + 16 * ib : nullptr);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&b, 0, sizeof b);
      b.d = f16(0.f);
      return;
    }
    const float iscale = -128.f / max_scale;
    b.d = f16(1.f / iscale);
    for (int ib = 0; ib < 16; ++ib) {
      const int v = nearest_int(iscale * scales[ib]);
      b.scales[ib] = static_cast<std::int8_t>(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(b.scales[j]);
      if (d == 0.f) continue;
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] =
            static_cast<std::int8_t>(clamp_int(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + l;
        const int q1 = L[e];
        const int q2 = L[e + 32];
        const int q3 = L[e + 64];
        const int q4 = L[e + 96];
        b.ql[64 * h + l] = static_cast<std::uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        b.ql[64 * h + 32 + l] = static_cast<std::uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        b.qh[32 * h + l] = static_cast<std::uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) |
                                                     ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }

  /// Σ over n_blocks of w·a (ggml `ggml_vec_dot_q6_K_q8_K_generic` order).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    detail::kq::EightLanes lanes;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      std::int32_t lane[8] = {};
      for (int e = 0; e < 256; ++e)
        lane[e % 8] += w[i].scales[e / 16] * (a[i].qs[e] * quant(w[i], e));
      lanes.add_block(w[i].d.to_float() * a[i].d, lane);
    }
    return lanes.finish(0.f);
  }

  /// The same dot in ggml's x86 order (`ggml_vec_dot_q6_K_q8_K`, AVX2): the unsigned quants'
  /// lanes (detail::kq::x86_lanes) minus 32 times the scales' bsum lanes
  /// (detail::kq::x86_bsum_lanes), with d_a·d into 8 FMA accumulators.
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_K::block_type* a,
                                        std::size_t n_blocks) noexcept {
    detail::ggml::X86Lanes acc;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int sc[16];
      for (int g = 0; g < 16; ++g) sc[g] = w[i].scales[g];
      std::int32_t lanes[8];
      std::int32_t offset[8];
      // unsigned quants (0..63): the offset is taken out per lane afterwards, as ggml does
      detail::kq::x86_lanes([&](int e) { return quant(w[i], e) + 32; }, sc, a[i].qs, lanes);
      detail::kq::x86_bsum_lanes(sc, a[i].bsums, offset);
      for (int m = 0; m < 8; ++m) lanes[m] -= 32 * offset[m];
      acc.add_lanes(a[i].d * w[i].d.to_float(), lanes);
    }
    return acc.sum();
  }
};

static_assert(QuantizableFormat<Q8_K>);
static_assert(DotFormat<Q2_K> && QuantizableFormat<Q2_K>);
static_assert(DotFormat<Q3_K> && QuantizableFormat<Q3_K>);
static_assert(DotFormat<Q4_K> && QuantizableFormat<Q4_K>);
static_assert(DotFormat<Q5_K> && QuantizableFormat<Q5_K>);
static_assert(DotFormat<Q6_K> && QuantizableFormat<Q6_K>);

}  // namespace dsv4
