// GGUF 5-bit formats Q5_0 (symmetric, partner Q8_0) and Q5_1 (with a minimum, partner Q8_1).
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's `block_q5_0`
// and `block_q5_1` (ggml-common.h), `quantize_row_q5_{0,1}_ref` and `dequantize_row_q5_{0,1}`
// (ggml-quants.c), and the CPU dots `ggml_vec_dot_q5_0_q8_0` / `ggml_vec_dot_q5_1_q8_1`.
//
// Packing: the low four bits of element j are packed as in Q4_0 (j < 16: low nibble of qs[j];
// j ≥ 16: high nibble of qs[j-16]); its fifth bit is bit j of the little-endian uint32 qh.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/q8_0.hpp"

namespace dsv4 {

namespace detail::ggml {

/// The 5-bit codes q[0..31] of a Q5 block (qh stored as 4 bytes, read without alignment).
DSV4_HOST_DEVICE inline void unpack_q5(const std::uint8_t* qs, const std::uint8_t* qh_bytes,
                                       int* q) noexcept {
  const std::uint32_t qh =
      static_cast<std::uint32_t>(qh_bytes[0]) | static_cast<std::uint32_t>(qh_bytes[1]) << 8 |
      static_cast<std::uint32_t>(qh_bytes[2]) << 16 | static_cast<std::uint32_t>(qh_bytes[3]) << 24;
  for (int j = 0; j < 16; ++j) {
    q[j] = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    q[j + 16] = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
}

/// Packs 5-bit codes q[0..31] into qs[16] and qh[4].
inline void pack_q5(const int* q, std::uint8_t* qs, std::uint8_t* qh_bytes) noexcept {
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<std::uint8_t>((q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4);
    qh |= static_cast<std::uint32_t>((q[j] >> 4) & 1) << j;
    qh |= static_cast<std::uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
  }
  for (int k = 0; k < 4; ++k) qh_bytes[k] = static_cast<std::uint8_t>(qh >> (8 * k));
}

}  // namespace detail::ggml

/// Q5_0: 32 values as 5-bit q in [0, 31] with one f16 scale, value = d·(q - 16) (22 bytes per
/// 32 values, 5.5 bits per weight).
struct Q5_0 {
  struct block_type {
    f16 d;                ///< scale
    std::uint8_t qh[4];   ///< fifth bits, little-endian uint32
    std::uint8_t qs[16];  ///< low nibbles
  };
  static_assert(sizeof(block_type) == 22);
  static constexpr FormatId id = FormatId::q5_0;
  static constexpr std::string_view name = "Q5_0";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_0;

  /// out[32] = d·(q - 16) (ggml `dequantize_row_q5_0`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    int q[32];
    detail::ggml::unpack_q5(b.qs, b.qh, q);
    const float d = b.d.to_float();
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(q[j] - 16) * d;
  }

  /// in[32] → one block (ggml `quantize_row_q5_0_ref`): d = max/-16 with max the value of
  /// largest magnitude, q = min(31, trunc(x/d + 16.5)).
  static void quantize(const float* in, block_type& b) noexcept {
    const float d = detail::ggml::signed_abs_max(in, 32) / -16.f;
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    b.d = f16(d);
    int q[32];
    for (int j = 0; j < 32; ++j) {
      const int v = static_cast<int>(in[j] * inv_d + 16.5f);
      q[j] = v < 31 ? v : 31;
    }
    detail::ggml::pack_q5(q, b.qs, b.qh);
  }

  /// Σ_blocks (d_w·d_a)·Σ_j (q_j - 16)·qa_j in fp32 (`ggml_vec_dot_q5_0_q8_0`, generic path).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_0::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int q[32];
      detail::ggml::unpack_q5(w[i].qs, w[i].qh, q);
      int sumi = 0;
      for (int j = 0; j < 32; ++j) sumi += (q[j] - 16) * a[i].qs[j];
      sum += (w[i].d.to_float() * a[i].d.to_float()) * static_cast<float>(sumi);
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::X86Lanes; `ggml_vec_dot_q5_0_q8_0`, AVX2).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_0::block_type* a,
                                        std::size_t n_blocks) noexcept {
    detail::ggml::X86Lanes acc;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int q[32];
      detail::ggml::unpack_q5(w[i].qs, w[i].qh, q);
      for (int& v : q) v -= 16;
      acc.add(w[i].d.to_float() * a[i].d.to_float(), q, a[i].qs);
    }
    return acc.sum();
  }
};

/// Q5_1: 32 values as 5-bit q in [0, 31] with an f16 scale and an f16 minimum, value = d·q + m
/// (24 bytes per 32 values, 6 bits per weight).
struct Q5_1 {
  struct block_type {
    f16 d;                ///< scale
    f16 m;                ///< minimum
    std::uint8_t qh[4];   ///< fifth bits, little-endian uint32
    std::uint8_t qs[16];  ///< low nibbles
  };
  static_assert(sizeof(block_type) == 24);
  static constexpr FormatId id = FormatId::q5_1;
  static constexpr std::string_view name = "Q5_1";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_1;

  /// out[32] = d·q + m (ggml `dequantize_row_q5_1`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    int q[32];
    detail::ggml::unpack_q5(b.qs, b.qh, q);
    const float d = b.d.to_float();
    const float m = b.m.to_float();
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(q[j]) * d + m;
  }

  /// in[32] → one block (ggml `quantize_row_q5_1_ref`): d = (max - min)/31, m = min,
  /// q = trunc((x - min)/d + 0.5) (ggml does not clamp here; q ≤ 31 holds for finite input).
  static void quantize(const float* in, block_type& b) noexcept {
    const auto mm = detail::ggml::min_max(in, 32);
    const float d = (mm.max - mm.min) / 31.f;
    const float inv_d = d != 0.f ? 1.f / d : 0.f;
    b.d = f16(d);
    b.m = f16(mm.min);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = static_cast<int>((in[j] - mm.min) * inv_d + 0.5f);
    detail::ggml::pack_q5(q, b.qs, b.qh);
  }

  /// Σ_blocks (d_w·d_a)·Σ_j q_j·qa_j + m_w·s_a in fp32 (`ggml_vec_dot_q5_1_q8_1`).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Q8_1::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int q[32];
      detail::ggml::unpack_q5(w[i].qs, w[i].qh, q);
      int sumi = 0;
      for (int j = 0; j < 32; ++j) sumi += q[j] * a[i].qs[j];
      sum += (w[i].d.to_float() * a[i].d.to_float()) * static_cast<float>(sumi) +
             w[i].m.to_float() * a[i].s.to_float();
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::min_dot_x86).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const Q8_1::block_type* a,
                                        std::size_t n_blocks) noexcept {
    return detail::ggml::min_dot_x86(w, a, n_blocks, [&](std::size_t i, int* q) {
      detail::ggml::unpack_q5(w[i].qs, w[i].qh, q);
    });
  }
};

static_assert(QuantizableFormat<Q5_0> && DotFormat<Q5_0>);
static_assert(QuantizableFormat<Q5_1> && DotFormat<Q5_1>);

}  // namespace dsv4
