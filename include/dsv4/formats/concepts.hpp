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

#include "dsv4/core/macros.hpp"

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
  fp8_b128 = 1000,    ///< FP8 e4m3 weights with one e8m0 scale per 128x128 block
  fp4_g32 = 1001,     ///< FP4 e2m1 packed in pairs with one e8m0 scale per 32 inputs
  fp8_act128 = 1002,  ///< FP8 e4m3 activations, one power-of-two scale per 128 (act_quant)
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
/// product of n_blocks consecutive weight blocks with the activation blocks that cover the same
/// n_blocks·F::block_elems values (one each when the block sizes agree; FP4_G32 pairs four
/// 32-value weight blocks with one 128-value activation block).
template <class F>
concept DotFormat = QuantFormat<F> && QuantFormat<typename F::activation> &&
    requires(const typename F::block_type* w, const typename F::activation::block_type* a,
             std::size_t n) {
  { F::dot(w, a, n) } -> std::convertible_to<float>;
};

/// A dot format that also has ggml's x86 summation order, `F::dot_x86` (the order of llama.cpp's
/// CPU backend on x86 machines: AVX2 and AVX-512 builds), beside `F::dot` (ggml's portable order).
template <class F>
concept X86DotFormat = DotFormat<F> &&
    requires(const typename F::block_type* w, const typename F::activation::block_type* a,
             std::size_t n) {
  { F::dot_x86(w, a, n) } -> std::convertible_to<float>;
};

/// An activation format that also has ggml's x86 quantizer, `A::quantize_x86`.
template <class A>
concept X86QuantizableFormat = QuantizableFormat<A> &&
    requires(const float* in, typename A::block_type& q) {
  A::quantize_x86(in, q);
};

/// The dot of a weight in format F with its quantized activation as llama.cpp's CPU backend
/// computes it on x86 (`F::dot_x86`), or `F::dot` where the format has one order only.
template <DotFormat F>
DSV4_HOST_DEVICE float partner_dot(const typename F::block_type* w,
                                   const typename F::activation::block_type* a,
                                   std::size_t n_blocks) noexcept {
  if constexpr (X86DotFormat<F>) {
    return F::dot_x86(w, a, n_blocks);
  } else {
    return F::dot(w, a, n_blocks);
  }
}

/// One activation block of format A as llama.cpp's CPU backend quantizes it on x86
/// (`A::quantize_x86`), or `A::quantize` where the format has one quantizer only.
template <QuantizableFormat A>
void partner_quantize(const float* in, typename A::block_type& b) {
  if constexpr (X86QuantizableFormat<A>) {
    A::quantize_x86(in, b);
  } else {
    A::quantize(in, b);
  }
}

/// The two kernels llama.cpp's CPU backend multiplies a weight with after repacking it at load
/// time (ggml's CPU_REPACK buffer on x86; modelled here for Q4_0, Q4_K, and, as with AVX-512,
/// Q2_K): the GEMM takes activation rows four at a time, the GEMV one row.
enum class RepackKernel : std::uint8_t { gemm, gemv };

/// A dot format with the orders of ggml's repacked kernels, `F::dot_repacked(w, a, n, kernel)`:
/// the dot that one output of that kernel gets (the activation is quantized as for `F::dot`).
template <class F>
concept RepackedDotFormat = DotFormat<F> &&
    requires(const typename F::block_type* w, const typename F::activation::block_type* a,
             std::size_t n, RepackKernel k) {
  { F::dot_repacked(w, a, n, k) } -> std::convertible_to<float>;
};

/// A format whose checkpoint stores codes and scales as two tensors ("planar"; the native V4
/// formats, formats.md §9.3-9.4) rather than as an array of self-contained blocks. Block b of row n
/// is `F::block_codes` code_type elements at codes[n·codes_per_row(K) + b·block_codes] with the
/// scale scales[(n / F::block_rows)·scale_cols(K) + b]; `F::load_block` assembles it.
template <class F>
concept PlanarFormat = QuantFormat<F> &&
    requires(std::size_t n, const typename F::code_type* c, const typename F::scale_type* s,
             typename F::block_type& blk) {
  { F::block_codes } -> std::convertible_to<std::size_t>;
  { F::block_rows } -> std::convertible_to<std::size_t>;
  { F::codes_per_row(n) } -> std::convertible_to<std::size_t>;
  { F::scale_rows(n) } -> std::convertible_to<std::size_t>;
  { F::scale_cols(n) } -> std::convertible_to<std::size_t>;
  F::load_block(c, s, blk);  // codes of one block, its scale
};

}  // namespace dsv4
