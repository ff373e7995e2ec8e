// GGUF F32 (type 0): plain fp32 values, a "block" of one; its own activation partner.
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's F32 type traits
// and the CPU dot `ggml_vec_dot_f32`.
#pragma once

#include <cstddef>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/formats/concepts.hpp"

namespace dsv4 {

/// F32: one fp32 value per block (4 bytes).
struct F32 {
  struct block_type {
    float v;
  };
  static_assert(sizeof(block_type) == 4);
  static constexpr FormatId id = FormatId::f32;
  static constexpr std::string_view name = "F32";
  static constexpr std::size_t block_elems = 1;
  using activation = F32;

  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    out[0] = b.v;
  }
  static void quantize(const float* in, block_type& b) noexcept { b.v = in[0]; }

  /// Σ w_i·a_i, products in fp32 and the sum in double, rounded to fp32 once at the end
  /// (ggml's generic `ggml_vec_dot_f32` accumulates in ggml_float = double too).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const block_type* a,
                                    std::size_t n) noexcept {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(w[i].v * a[i].v);
    return static_cast<float>(sum);
  }
};

static_assert(QuantizableFormat<F32> && DotFormat<F32>);

}  // namespace dsv4
