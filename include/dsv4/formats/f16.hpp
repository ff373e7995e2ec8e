// GGUF F16 (type 1) and BF16 (type 30): one 16-bit float per "block"; each is its own
// activation partner (ggml's vec_dot_type for F16 is F16, for BF16 it is BF16).
//
// Spec: spec/formats.md §9.1 (bf16), §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's
// `GGML_FP32_TO_FP16` / `GGML_FP32_TO_BF16` (round to nearest even), their inverses, and the CPU
// dots `ggml_vec_dot_f16` / `ggml_vec_dot_bf16`.
#pragma once

#include <cstddef>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/f32.hpp"

namespace dsv4 {

namespace detail::ggml {
/// Σ w_i·a_i over 16-bit floats: each product is exact in fp32 (two 11- or 8-bit significands),
/// the sum runs in double and is rounded to fp32 once (ggml's generic path keeps ggml_float =
/// double; its SIMD paths sum in fp32 lanes, hence the test's stated budget).
template <class T>
DSV4_HOST_DEVICE float dot16(const T* w, const T* a, std::size_t n) noexcept {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(w[i].to_float() * a[i].to_float());
  return static_cast<float>(sum);
}
}  // namespace detail::ggml

/// F16: IEEE binary16 values (2 bytes each).
struct F16 {
  using block_type = f16;
  static_assert(sizeof(block_type) == 2);
  static constexpr FormatId id = FormatId::f16;
  static constexpr std::string_view name = "F16";
  static constexpr std::size_t block_elems = 1;
  using activation = F16;

  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    out[0] = b.to_float();
  }
  /// Round to nearest even; overflow to infinity (ggml's F16C/`_cvtss_sh` conversion).
  static void quantize(const float* in, block_type& b) noexcept { b = f16(in[0]); }
  DSV4_HOST_DEVICE static float dot(const block_type* w, const block_type* a,
                                    std::size_t n) noexcept {
    return detail::ggml::dot16(w, a, n);
  }
  /// The same dot as llama.cpp's x86 CPU backend computes it in a mul_mat (the activation
  /// already rounded to f16): for n a multiple of 16 its float GEMM's order
  /// (detail::ggml::sgemm_dot16), otherwise `dot`.
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const block_type* a,
                                        std::size_t n) noexcept {
    if (n % 16 != 0) return dot(w, a, n);
    return detail::ggml::sgemm_dot16([w](std::size_t i) { return w[i].to_float(); },
                                     [a](std::size_t i) { return a[i].to_float(); }, n);
  }
};

/// BF16: the upper halves of fp32 values (2 bytes each).
struct BF16 {
  using block_type = bf16;
  static_assert(sizeof(block_type) == 2);
  static constexpr FormatId id = FormatId::bf16;
  static constexpr std::string_view name = "BF16";
  static constexpr std::size_t block_elems = 1;
  using activation = BF16;

  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    out[0] = b.to_float();
  }
  /// Round to nearest even (ggml `GGML_FP32_TO_BF16`; NaN payloads may differ).
  static void quantize(const float* in, block_type& b) noexcept { b = bf16(in[0]); }
  DSV4_HOST_DEVICE static float dot(const block_type* w, const block_type* a,
                                    std::size_t n) noexcept {
    return detail::ggml::dot16(w, a, n);
  }
};

static_assert(QuantizableFormat<F16> && DotFormat<F16>);
static_assert(QuantizableFormat<BF16> && DotFormat<BF16>);

}  // namespace dsv4
