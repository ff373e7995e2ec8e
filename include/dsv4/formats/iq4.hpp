// GGUF non-linear 4-bit formats IQ4_NL (32-value blocks, partner Q8_0) and IQ4_XS (256-value
// super-blocks with 6-bit sub-block scales, partner Q8_K).
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's
// `block_iq4_nl` / `block_iq4_xs` and `kvalues_iq4nl` (ggml-common.h), the quantizers
// `quantize_row_iq4_nl_ref`, `quantize_iq4_nl`, `quantize_iq4_xs` with their shared
// `quantize_row_iq4_nl_impl` and `best_index_int8`, the dequantizers `dequantize_row_iq4_{nl,xs}`
// (ggml-quants.c), and the CPU dots `ggml_vec_dot_iq4_nl_q8_0` / `ggml_vec_dot_iq4_xs_q8_K`.
//
// A 4-bit code c selects kvalues_iq4nl[c]; packing as Q4_0 (element j < 16 of each 32 in the
// low nibble of qs[j], element j + 16 in its high nibble).
//
// Two IQ4_NL quantizers exist in ggml and give different bytes: the reference one
// (`quantize`, ggml's `from_float_ref`: one weighted least-squares fit of the scale) and the one
// `llama-quantize` runs without an importance matrix (`quantize_chunk`, ggml_quantize_chunk: a
// search over 15 candidate scales followed by a re-quantization). IQ4_XS has one quantizer (its
// reference quantizer calls the search version).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/k_quants.hpp"
#include "dsv4/formats/q8_0.hpp"

namespace dsv4 {

namespace detail::ggml {

/// The 16 levels of the IQ4 codebooks (ggml `kvalues_iq4nl`), ascending.
inline constexpr std::int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};

/// Index of the level nearest to x in the ascending table val[16]; at an exact midpoint the
/// upper level wins (ggml `best_index_int8`: compares 2x with the sum of neighbours, exactly).
inline int best_index_iq4(const std::int8_t* val, float x) noexcept {
  const float x2 = x + x;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    const int j = idx + step;
    if (x2 >= static_cast<float>(val[j - 1] + val[j])) idx = j;
  }
  return idx;
}

/// Round to nearest through the float mantissa (ggml `nearest_int`), exact for |f| < 2^22.
inline int nearest_int(float f) noexcept {
  const float shifted = f + 12582912.f;  // 1.5·2^23
  std::int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

/// Scale of one 32-value block for the IQ4 quantizers, with weights `weight` (x² when null:
/// ggml `quantize_row_iq4_nl_impl`'s inner loop without an importance matrix). ntry < 0: start from
/// d = max/values[0] and return the weighted least-squares scale for the resulting codes;
/// ntry > 0: start from -max/values[0] and also try the 2·ntry+1 scales (itry + values[0])/max,
/// keeping the best. Writes the codes of the starting scale to L[32]; returns 0 (codes 0) for
/// a block below ggml's GROUP_MAX_EPS.
inline float iq4_block_scale(const float* x, std::uint8_t* L, int ntry,
                             const float* weight = nullptr) noexcept {
  const std::int8_t* values = kIq4nlValues;
  float w[32];
  for (int j = 0; j < 32; ++j) w[j] = weight != nullptr ? weight[j] : x[j] * x[j];
  float amax = 0.f;
  float max = 0.f;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < 1e-15f) {
    std::memset(L, 0, 32);
    return 0.f;
  }
  const float v0 = static_cast<float>(values[0]);
  float d = ntry > 0 ? -max / v0 : max / v0;
  float id = 1.f / d;
  float sumqx = 0.f;
  float sumq2 = 0.f;
  for (int j = 0; j < 32; ++j) {
    const int l = best_index_iq4(values, id * x[j]);
    L[j] = static_cast<std::uint8_t>(l);
    const float q = static_cast<float>(values[l]);
    sumqx += w[j] * q * x[j];
    sumq2 += w[j] * q * q;
  }
  d = sumq2 > 0.f ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -ntry; itry <= ntry; ++itry) {
    id = static_cast<float>(itry + values[0]) / max;
    sumqx = sumq2 = 0.f;
    for (int j = 0; j < 32; ++j) {
      const float q = static_cast<float>(values[best_index_iq4(values, id * x[j])]);
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
    if (sumq2 > 0.f && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

/// Packs 32 codes into 16 bytes (low nibble: element j, high nibble: element j + 16).
inline void pack_nibbles32(const std::uint8_t* L, std::uint8_t* qs) noexcept {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>(L[j] | L[j + 16] << 4);
}

}  // namespace detail::ggml

/// IQ4_NL: 32 values as 4-bit codes into kvalues_iq4nl with one f16 scale, value =
/// d·kvalues[c] (18 bytes per 32 values, 4.5 bits per weight).
struct IQ4_NL {
  struct block_type {
    f16 d;                ///< scale
    std::uint8_t qs[16];  ///< codes, packed as Q4_0
  };
  static_assert(sizeof(block_type) == 18);
  static constexpr FormatId id = FormatId::iq4_nl;
  static constexpr std::string_view name = "IQ4_NL";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_0;

  /// out[32] = d·kvalues[c] (ggml `dequantize_row_iq4_nl`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    constexpr std::int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};
    const float d = b.d.to_float();
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>(kv[b.qs[j] & 0x0F]);
      out[j + 16] = d * static_cast<float>(kv[b.qs[j] >> 4]);
    }
  }

  /// in[32] → one block with ggml's reference quantizer (`quantize_row_iq4_nl_ref`): codes for
  /// d0 = max/-127, then d = the x²-weighted least-squares scale for those codes. A block with
  /// max|x| < 1e-15 gets d = 0 and codes 0, as in current ggml (older ggml, which made
  /// tests/data/ggml-quants, left those codes unset; they decode to zero either way).
  static void quantize(const float* in, block_type& b) noexcept {
    std::uint8_t L[32];
    const float d = detail::ggml::iq4_block_scale(in, L, -1);
    b.d = f16(d);
    detail::ggml::pack_nibbles32(L, b.qs);
  }

  /// in[32] → one block as `llama-quantize` makes it without an importance matrix
  /// (ggml_quantize_chunk → `quantize_iq4_nl`): scale search over 15 candidates, then codes
  /// re-chosen for the final fp32 scale.
  static void quantize_chunk(const float* in, block_type& b) noexcept {
    quantize_chunk_weighted(in, nullptr, b);
  }

  /// quantize_chunk with the importance qw[32] of each value (ggml `quantize_iq4_nl` with
  /// quant_weights: weights qw·sqrt(2·mean(x²) + x²) instead of x²); qw null is quantize_chunk.
  static void quantize_chunk_weighted(const float* in, const float* qw, block_type& b) noexcept {
    std::uint8_t L[32];
    float weight[32];
    if (qw != nullptr) {
      float sigma2 = 0.f;
      for (int j = 0; j < 32; ++j) sigma2 += in[j] * in[j];
      sigma2 *= 2.f / 32.f;
      for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + in[j] * in[j]);
    }
    const float d = detail::ggml::iq4_block_scale(in, L, 7, qw != nullptr ? weight : nullptr);
    b.d = f16(d);
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    for (int j = 0; j < 32; ++j) {
      L[j] = static_cast<std::uint8_t>(
          detail::ggml::best_index_iq4(detail::ggml::kIq4nlValues, inv_d * in[j]));
    }
    detail::ggml::pack_nibbles32(L, b.qs);
  }

  /// Σ_blocks (d_w·d_a)·Σ_j kvalues[c_j]·qa_j in fp32 (`ggml_vec_dot_iq4_nl_q8_0`).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_0::block_type* a,
                                    std::size_t n_blocks) noexcept {
    constexpr std::int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const float d = w[i].d.to_float() * a[i].d.to_float();
      int sumi1 = 0;
      int sumi2 = 0;
      for (int j = 0; j < 16; ++j) {
        sumi1 += a[i].qs[j] * kv[w[i].qs[j] & 0x0F];
        sumi2 += a[i].qs[j + 16] * kv[w[i].qs[j] >> 4];
      }
      sum += d * static_cast<float>(sumi1 + sumi2);
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::codebook_dot_x86).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_0::block_type* a,
                                        std::size_t n_blocks) noexcept {
    return detail::ggml::codebook_dot_x86(
        w, a, n_blocks, detail::ggml::kIq4nlValues,
        [&](std::size_t i) { return a[i].d.to_float() * w[i].d.to_float(); });
  }
};

/// IQ4_XS: 256 values in 8 sub-blocks of 32; each sub-block has a 6-bit scale ls (4 low bits
/// in scales_l, 2 high bits in scales_h), value = d·(ls - 32)·kvalues[c] (136 bytes per 256
/// values, 4.25 bits per weight).
struct IQ4_XS {
  struct block_type {
    f16 d;                     ///< super-block scale
    std::uint16_t scales_h;    ///< bits 2i, 2i+1: high bits of sub-block i's scale
    std::uint8_t scales_l[4];  ///< nibble i%2 of byte i/2: low bits of sub-block i's scale
    std::uint8_t qs[128];      ///< codes, 16 bytes per sub-block packed as Q4_0
  };
  static_assert(sizeof(block_type) == 136);
  static constexpr FormatId id = FormatId::iq4_xs;
  static constexpr std::string_view name = "IQ4_XS";
  static constexpr std::size_t block_elems = 256;
  using activation = Q8_K;

  /// The 6-bit scale of sub-block ib (0..7), 0..63; the multiplier is ls - 32.
  DSV4_HOST_DEVICE static int sub_scale(const block_type& b, int ib) noexcept {
    return ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((b.scales_h >> (2 * ib)) & 3) << 4);
  }

  /// out[256] = d·(ls - 32)·kvalues[c] (ggml `dequantize_row_iq4_xs`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    constexpr std::int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};
    const float d = b.d.to_float();
    for (int ib = 0; ib < 8; ++ib) {
      const float dl = d * static_cast<float>(sub_scale(b, ib) - 32);
      const std::uint8_t* qs = b.qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        out[32 * ib + j] = dl * static_cast<float>(kv[qs[j] & 0x0F]);
        out[32 * ib + j + 16] = dl * static_cast<float>(kv[qs[j] >> 4]);
      }
    }
  }

  /// in[256] → one block (ggml `quantize_row_iq4_xs_ref` = `quantize_iq4_xs` without an
  /// importance matrix): per sub-block scale search as IQ4_NL's chunk quantizer, d = -s/32 for
  /// the sub-block scale s of largest magnitude, ls = clamp(round(s_i/d), -32, 31), then codes
  /// re-chosen for each sub-block's d·ls (fp32, not the f16-rounded d).
  static void quantize(const float* in, block_type& b) noexcept {
    quantize_weighted(in, nullptr, b);
  }

  /// quantize with the importance qw[256] of each value (ggml `quantize_iq4_xs` with
  /// quant_weights: sub-block weights qw·sqrt(2·mean(x²) + x²), the mean over all 256); qw null is
  /// quantize.
  static void quantize_weighted(const float* in, const float* qw, block_type& b) noexcept {
    using namespace detail::ggml;
    std::uint8_t L[256];
    float scales[8];
    float max_scale = 0.f;
    float amax_scale = 0.f;
    float sigma2 = 0.f;
    if (qw != nullptr) {
      for (int j = 0; j < 256; ++j) sigma2 += in[j] * in[j];
      sigma2 *= 2.f / 256.f;
    }
    for (int ib = 0; ib < 8; ++ib) {
      float weight[32];
      if (qw != nullptr) {
        for (int j = 0; j < 32; ++j) {
          const float x = in[32 * ib + j];
          weight[j] = qw[32 * ib + j] * std::sqrt(sigma2 + x * x);
        }
      }
      scales[ib] = iq4_block_scale(in + 32 * ib, L + 32 * ib, 7, qw != nullptr ? weight : nullptr);
      if (std::fabs(scales[ib]) > amax_scale) {
        amax_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    const float d = -max_scale / 32.f;
    b.d = f16(d);
    b.scales_h = 0;
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    for (int ib = 0; ib < 8; ++ib) {
      int l = nearest_int(inv_d * scales[ib]);
      l = l < -32 ? -32 : (l > 31 ? 31 : l);
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0.f ? 1.f / dl : 0.f;
      for (int j = 0; j < 32; ++j) {
        L[32 * ib + j] =
            static_cast<std::uint8_t>(best_index_iq4(kIq4nlValues, idl * in[32 * ib + j]));
      }
      l += 32;
      const auto lo = static_cast<std::uint8_t>(l & 0x0F);
      if (ib % 2 == 0) {
        b.scales_l[ib / 2] = lo;
      } else {
        b.scales_l[ib / 2] = static_cast<std::uint8_t>(b.scales_l[ib / 2] | lo << 4);
      }
      b.scales_h = static_cast<std::uint16_t>(b.scales_h | (l >> 4) << (2 * ib));
    }
    for (int ib = 0; ib < 8; ++ib) pack_nibbles32(L + 32 * ib, b.qs + 16 * ib);
  }

  /// Σ_blocks Σ_sub (d_w·d_a·(ls - 32))·Σ_j kvalues[c_j]·qa_j in fp32, sub-blocks in order
  /// (`ggml_vec_dot_iq4_xs_q8_K`, generic path). a: Q8_K blocks (fp32 scale).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_K::block_type* a,
                                    std::size_t n_blocks) noexcept {
    constexpr std::int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const float d4d8 = w[i].d.to_float() * a[i].d;
      for (int ib = 0; ib < 8; ++ib) {
        const float dl = d4d8 * static_cast<float>(sub_scale(w[i], ib) - 32);
        const std::uint8_t* qs = w[i].qs + 16 * ib;
        const std::int8_t* q8 = a[i].qs + 32 * ib;
        int sumi1 = 0;
        int sumi2 = 0;
        for (int j = 0; j < 16; ++j) {
          sumi1 += q8[j] * kv[qs[j] & 0x0F];
          sumi2 += q8[j + 16] * kv[qs[j] >> 4];
        }
        sum += dl * static_cast<float>(sumi1 + sumi2);
      }
    }
    return sum;
  }
};

static_assert(QuantizableFormat<IQ4_NL> && DotFormat<IQ4_NL>);
static_assert(QuantizableFormat<IQ4_XS> && DotFormat<IQ4_XS>);

}  // namespace dsv4
