// The QuantFormat concept: what every weight/activation storage format provides.
//
// Spec: spec/formats.md §9 (native V4 formats) and §10.3 (GGUF); STYLE.md §2.4. A format is a small
// struct whose `block_type` is the on-disk block byte for byte (GGUF's block structs, OCP MX
// blocks).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace dsv4 {

/// Identifies a storage format. Values equal ggml's `ggml_type` ids where GGUF has the format,
/// so a GGUF tensor's type field converts directly; dsv4-only formats use ids from 1000 on.
enum class FormatId : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq4_nl = 20,
  iq4_xs = 23,
  bf16 = 30,
  mxfp4 = 39,
  // native DeepSeek-V4 checkpoint formats (not GGUF types)
  fp8_b128 = 1000,  ///< FP8 e4m3 weights with one e8m0 scale per 128x128 block
  fp4_g32 = 1001,   ///< FP4 e2m1 packed in pairs with one e8m0 scale per 32 inputs
};

/// A storage format: one block of `block_elems` values stored as `block_type`.
template <class F>
concept QuantFormat = requires {
  typename F::block_type;
  { F::id } -> std::convertible_to<FormatId>;
  { F::name } -> std::convertible_to<std::string_view>;
  { F::block_elems } -> std::convertible_to<std::size_t>;
}
&&std::is_trivially_copyable_v<typename F::block_type>&&
    std::is_standard_layout_v<typename F::block_type>&& requires(const typename F::block_type& blk,
                                                                 float* out) {
  F::dequantize(blk, out);  // writes block_elems floats
};

/// A format that can also quantize a block of floats (ggml's reference quantizers, bit for bit).
template <class F>
concept QuantizableFormat = QuantFormat<F> && requires(const float* in, typename F::block_type& q) {
  F::quantize(in, q);  // reads block_elems floats
};

/// A weight format with a dot product against its activation partner (ggml's vec_dot_type):
/// `F::activation` is the format activations are quantised to, `F::dot(w, a, n_blocks)` the dot
/// product of n_blocks consecutive blocks.
template <class F>
concept DotFormat = QuantFormat<F> && QuantFormat<typename F::activation> &&
    requires(const typename F::block_type* w, const typename F::activation::block_type* a,
             std::size_t n) {
  { F::dot(w, a, n) } -> std::convertible_to<float>;
};

}  // namespace dsv4
