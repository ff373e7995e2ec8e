// GGUF 4-bit formats Q4_0 (symmetric, partner Q8_0) and Q4_1 (with a minimum, partner Q8_1).
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's `block_q4_0`
// and `block_q4_1` (ggml-common.h), `quantize_row_q4_{0,1}_ref` and `dequantize_row_q4_{0,1}`
// (ggml-quants.c), and the CPU dots `ggml_vec_dot_q4_0_q8_0` / `ggml_vec_dot_q4_1_q8_1`.
//
// Packing (both formats): element j < 16 is the low nibble of qs[j], element j ≥ 16 the high
// nibble of qs[j-16].
#pragma once

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
/// Σ_j (q_j − 8)·a_j of one Q4_0 block and its Q8_0 activation block (exact).
template <class W, class A>
DSV4_HOST_DEVICE int q4_0_block_sum(const W& w, const A& a) noexcept {
  int sumi = 0;
  for (int j = 0; j < 16; ++j) {
    sumi += ((w.qs[j] & 0x0F) - 8) * a.qs[j];
    sumi += ((w.qs[j] >> 4) - 8) * a.qs[j + 16];
  }
  return sumi;
}
}  // namespace detail::ggml

/// Q4_0: 32 values as 4-bit q in [0, 15] with one f16 scale, value = d·(q - 8) (18 bytes per
/// 32 values, 4.5 bits per weight).
struct Q4_0 {
  struct block_type {
    f16 d;                ///< scale
    std::uint8_t qs[16];  ///< nibbles, see the file comment
  };
  static_assert(sizeof(block_type) == 18);
  static constexpr FormatId id = FormatId::q4_0;
  static constexpr std::string_view name = "Q4_0";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_0;

  /// out[32] = d·(q - 8) (ggml `dequantize_row_q4_0`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
      out[j + 16] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
  }

  /// in[32] → one block (ggml `quantize_row_q4_0_ref`): d = max/-8 where max is the value of
  /// largest magnitude (so it maps to q = 0), q = min(15, trunc(x/d + 8.5)).
  static void quantize(const float* in, block_type& b) noexcept {
    const float d = detail::ggml::signed_abs_max(in, 32) / -8.f;
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    b.d = f16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = static_cast<int>(in[j] * inv_d + 8.5f);
      const int q1 = static_cast<int>(in[j + 16] * inv_d + 8.5f);
      b.qs[j] = static_cast<std::uint8_t>((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
    }
  }

  /// Σ_blocks (d_w·d_a)·Σ_j (q_j - 8)·qa_j in fp32 (`ggml_vec_dot_q4_0_q8_0`, generic path).
  /// w: [n_blocks]; a: [n_blocks] Q8_0 blocks.
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_0::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const int sumi = detail::ggml::q4_0_block_sum(w[i], a[i]);
      sum += static_cast<float>(sumi) * (w[i].d.to_float() * a[i].d.to_float());
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::X86Lanes; `ggml_vec_dot_q4_0_q8_0`, AVX2).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_0::block_type* a,
                                        std::size_t n_blocks) noexcept {
    detail::ggml::X86Lanes acc;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int q[32];
      for (int j = 0; j < 16; ++j) {
        q[j] = (w[i].qs[j] & 0x0F) - 8;
        q[j + 16] = (w[i].qs[j] >> 4) - 8;
      }
      acc.add(w[i].d.to_float() * a[i].d.to_float(), q, a[i].qs);
    }
    return acc.sum();
  }

  /// The same dot in llama.cpp's repacked kernels (ggml's CPU_REPACK buffer, x86), GEMM and GEMV
  /// alike: each block's exact integer sum added with one FMA of d_w·d_a, in block order.
  DSV4_HOST_DEVICE static float dot_repacked(const block_type* w, const Q8_0::block_type* a,
                                             std::size_t n_blocks, RepackKernel) noexcept {
    float acc = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const int sumi = detail::ggml::q4_0_block_sum(w[i], a[i]);
      acc = std::fma(static_cast<float>(sumi), w[i].d.to_float() * a[i].d.to_float(), acc);
    }
    return acc;
  }
};

/// Q4_1: 32 values as 4-bit q in [0, 15] with an f16 scale and an f16 minimum, value = d·q + m
/// (20 bytes per 32 values, 5 bits per weight).
struct Q4_1 {
  struct block_type {
    f16 d;                ///< scale
    f16 m;                ///< minimum
    std::uint8_t qs[16];  ///< nibbles, see the file comment
  };
  static_assert(sizeof(block_type) == 20);
  static constexpr FormatId id = FormatId::q4_1;
  static constexpr std::string_view name = "Q4_1";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_1;

  /// out[32] = d·q + m (ggml `dequantize_row_q4_1`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    const float m = b.m.to_float();
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(b.qs[j] & 0x0F) * d + m;
      out[j + 16] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
  }

  /// in[32] → one block (ggml `quantize_row_q4_1_ref`): d = (max - min)/15, m = min,
  /// q = min(15, trunc((x - min)/d + 0.5)).
  static void quantize(const float* in, block_type& b) noexcept {
    const auto mm = detail::ggml::min_max(in, 32);
    const float d = (mm.max - mm.min) / 15.f;
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    b.d = f16(d);
    b.m = f16(mm.min);
    for (int j = 0; j < 16; ++j) {
      const int q0 = static_cast<int>((in[j] - mm.min) * inv_d + 0.5f);
      const int q1 = static_cast<int>((in[j + 16] - mm.min) * inv_d + 0.5f);
      b.qs[j] = static_cast<std::uint8_t>((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
    }
  }

  /// Σ_blocks (d_w·d_a)·Σ_j q_j·qa_j + m_w·s_a in fp32 (`ggml_vec_dot_q4_1_q8_1`): the min term
  /// uses the activation block's stored f16 s, not Σ of its dequantized values.
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_1::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int sumi = 0;
      for (int j = 0; j < 16; ++j) {
        sumi += (w[i].qs[j] & 0x0F) * a[i].qs[j];
        sumi += (w[i].qs[j] >> 4) * a[i].qs[j + 16];
      }
      sum += (w[i].d.to_float() * a[i].d.to_float()) * static_cast<float>(sumi) +
             w[i].m.to_float() * a[i].s.to_float();
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::min_dot_x86).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_1::block_type* a,
                                        std::size_t n_blocks) noexcept {
    return detail::ggml::min_dot_x86(w, a, n_blocks, [&](std::size_t i, int* q) {
      for (int j = 0; j < 16; ++j) {
        q[j] = w[i].qs[j] & 0x0F;
        q[j + 16] = w[i].qs[j] >> 4;
      }
    });
  }
};

static_assert(QuantizableFormat<Q4_0> && DotFormat<Q4_0>);
static_assert(QuantizableFormat<Q4_1> && DotFormat<Q4_1>);

}  // namespace dsv4
