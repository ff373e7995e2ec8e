// GGUF F32 (type 0): plain fp32 values, a "block" of one; its own activation partner.
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's F32 type traits
// and the CPU dot `ggml_vec_dot_f32`.
#pragma once

#include <cmath>
#include <cstddef>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/formats/concepts.hpp"

namespace dsv4 {

namespace detail::ggml {
/// Σ w_i·a_i (n a multiple of 16) in the order of llama.cpp's x86 float GEMM (llamafile's
/// tinyBLAS, AVX-512, which ggml's mul_mat runs for F32 and F16 operands of such a K): element i
/// goes to lane i % 16 with one FMA, in ascending i; the 16 lanes are then added as
/// `_mm512_reduce_add_ps` adds them: the upper 8 onto the lower 8, the upper 4 of those onto the
/// lower 4, then (0 + 2) + (1 + 3). w(j) and a(j) give the operands of element j as floats.
template <class W, class A>
DSV4_HOST_DEVICE float sgemm_dot16(const W& w, const A& a, std::size_t n) noexcept {
  float acc[16] = {};
  for (std::size_t k = 0; k < n; k += 16) {
    for (std::size_t l = 0; l < 16; ++l) acc[l] = std::fma(w(k + l), a(k + l), acc[l]);
  }
  float t8[8];
  for (int i = 0; i < 8; ++i) t8[i] = acc[i + 8] + acc[i];
  float t4[4];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}
}  // namespace detail::ggml

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

  /// The same dot as llama.cpp's x86 CPU backend computes it in a mul_mat: for n a multiple of 16
  /// its float GEMM's order (detail::ggml::sgemm_dot16); otherwise `dot` (ggml's vec_dot_f32
  /// SIMD order for other lengths is not reproduced).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const block_type* a,
                                        std::size_t n) noexcept {
    if (n % 16 != 0) return dot(w, a, n);
    return detail::ggml::sgemm_dot16([w](std::size_t i) { return w[i].v; },
                                     [a](std::size_t i) { return a[i].v; }, n);
  }
};

static_assert(QuantizableFormat<F32> && DotFormat<F32>);

}  // namespace dsv4
