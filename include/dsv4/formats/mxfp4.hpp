// ggml's MXFP4 block (GGUF type 39): 32 FP4 E2M1 values with one E8M0 exponent, partner Q8_0.
// llama.cpp's converter writes DeepSeek-V4's routed experts in this layout.
//
// Spec: spec/formats.md §9.1 (E2M1, E8M0), §9.4 (FP4 routed experts), §10.3 (GGUF tensor
// types); STYLE.md §2.4. Mirrors ggml's `block_mxfp4` and `kvalues_mxfp4` (ggml-common.h),
// `GGML_E8M0_TO_FP32_HALF` (ggml-impl.h), `quantize_row_mxfp4_ref` / `dequantize_row_mxfp4`
// (ggml-quants.c) and the CPU dot `ggml_vec_dot_mxfp4_q8_0`.
//
// Layout differs from the official checkpoint's packing (§9.1: element 2k low nibble, 2k+1 high
// nibble of byte k): here element j < 16 is the low nibble of qs[j] and element j ≥ 16 the high
// nibble of qs[j-16]. ggml stores doubled E2M1 values (kvalues_mxfp4: 0, 1, 2, 3, 4, 6, 8, 12
// and negatives) and halves the scale, value = kvalues[c]·2^(e-127)/2, so the same E2M1 code
// and exponent decode to the same number as OCP MXFP4.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/q8_0.hpp"

namespace dsv4 {

namespace detail::ggml {

/// Doubled E2M1 values by code (ggml `kvalues_mxfp4`).
inline constexpr std::int8_t kMxfp4Values[16] = {0, 1,  2,  3,  4,  6,  8,  12,
                                                 0, -1, -2, -3, -4, -6, -8, -12};

/// 2^(e-127)/2 as fp32 (ggml `GGML_E8M0_TO_FP32_HALF`): e ≥ 2 is the normal 2^(e-128); e = 1
/// and e = 0 give the subnormals 2^-127 and 2^-128. e = 255 gives 2^127, not NaN.
DSV4_HOST_DEVICE constexpr float e8m0_to_fp32_half(std::uint8_t e) noexcept {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  return std::bit_cast<float>(bits);
}

}  // namespace detail::ggml

/// MXFP4 as GGUF stores it: value = kvalues_mxfp4[c]·2^(e-128) (17 bytes per 32 values, 4.25
/// bits per weight).
struct MXFP4 {
  struct block_type {
    ue8m0 e;              ///< shared exponent (E8M0)
    std::uint8_t qs[16];  ///< E2M1 codes, see the file comment
  };
  static_assert(sizeof(block_type) == 17);
  static constexpr FormatId id = FormatId::mxfp4;
  static constexpr std::string_view name = "MXFP4";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_0;

  /// out[32] = kvalues[c]·2^(e-128) (ggml `dequantize_row_mxfp4`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    constexpr std::int8_t kv[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    const float d = detail::ggml::e8m0_to_fp32_half(b.e.bits);
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(kv[b.qs[j] & 0x0F]) * d;
      out[j + 16] = static_cast<float>(kv[b.qs[j] >> 4]) * d;
    }
  }

  /// in[32] → one block (ggml `quantize_row_mxfp4_ref`): e = floor(log2(max|x|)) - 2 + 127 (0 for
  /// an all-zero block), then each value takes the first code minimising |kvalues[c]·d - x|
  /// with d = 2^(e-128). Like ggml on x86, the exponent is converted through int and wraps
  /// modulo 256 for max|x| < 2^-125 (ggml's C cast is undefined there).
  static void quantize(const float* in, block_type& b) noexcept {
    using detail::ggml::kMxfp4Values;
    const float amax = detail::ggml::abs_max(in, 32);
    const std::uint8_t e =
        amax > 0.f
            ? static_cast<std::uint8_t>(static_cast<int>(std::floor(std::log2(amax)) - 2.f + 127.f))
            : std::uint8_t{0};
    const float d = detail::ggml::e8m0_to_fp32_half(e);
    b.e = ue8m0::from_bits(e);
    auto best = [d](float x) {
      int best_i = 0;
      float best_err = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - x);
      for (int i = 1; i < 16; ++i) {
        const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - x);
        if (err < best_err) {
          best_i = i;
          best_err = err;
        }
      }
      return best_i;
    };
    for (int j = 0; j < 16; ++j) {
      b.qs[j] = static_cast<std::uint8_t>(best(in[j]) | best(in[j + 16]) << 4);
    }
  }

  /// Σ_blocks (d_a·2^(e-128))·Σ_j kvalues[c_j]·qa_j in fp32 (`ggml_vec_dot_mxfp4_q8_0`).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_0::block_type* a,
                                    std::size_t n_blocks) noexcept {
    constexpr std::int8_t kv[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const float d = a[i].d.to_float() * detail::ggml::e8m0_to_fp32_half(w[i].e.bits);
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
        w, a, n_blocks, detail::ggml::kMxfp4Values, [&](std::size_t i) {
          return a[i].d.to_float() * detail::ggml::e8m0_to_fp32_half(w[i].e.bits);
        });
  }
};

static_assert(QuantizableFormat<MXFP4> && DotFormat<MXFP4>);

}  // namespace dsv4
