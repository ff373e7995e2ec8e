// GGUF 8-bit formats Q8_0 (weights and activations) and Q8_1 (activations of Q4_1/Q5_1).
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.4. Mirrors ggml's `block_q8_0`
// and `block_q8_1` (ggml-common.h), `quantize_row_q8_0_ref` / `quantize_row_q8_1_ref` and
// `dequantize_row_q8_0` (ggml-quants.c), and the CPU dot `ggml_vec_dot_q8_0_q8_0` (ggml-cpu).
//
// Also holds the small helpers shared by the 32-element GGUF formats (q4_0.hpp, q5.hpp,
// iq4.hpp, mxfp4.hpp). Bit exactness: every float operation that decides a stored byte runs in
// ggml's order and precision; dsv4's own targets build with -ffp-contract=off so that nothing
// is fused into an FMA (a consumer that enables contraction may see last-bit differences).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/concepts.hpp"

namespace dsv4 {

namespace detail::ggml {

inline constexpr std::size_t kBlock32 = 32;  ///< ggml's QK8_0 = QK4_0 = QK5_0 = QK4_NL = 32

/// max |in[i]| over n values (ggml: `amax = MAX(amax, fabsf(v))`).
inline float abs_max(const float* in, std::size_t n) noexcept {
  float amax = 0.f;
  for (std::size_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(in[i]));
  return amax;
}

/// The first value of largest magnitude, with its sign (ggml: `if (amax < fabsf(v))`).
inline float signed_abs_max(const float* in, std::size_t n) noexcept {
  float amax = 0.f;
  float max = 0.f;
  for (std::size_t i = 0; i < n; ++i) {
    if (amax < std::fabs(in[i])) {
      amax = std::fabs(in[i]);
      max = in[i];
    }
  }
  return max;
}

/// Smallest and largest value, from FLT_MAX / -FLT_MAX as ggml's q4_1/q5_1 quantizers do.
struct MinMax {
  float min;
  float max;
};
inline MinMax min_max(const float* in, std::size_t n) noexcept {
  MinMax r{3.40282347e38f, -3.40282347e38f};
  for (std::size_t i = 0; i < n; ++i) {
    if (in[i] < r.min) r.min = in[i];
    if (in[i] > r.max) r.max = in[i];
  }
  return r;
}

/// Quantizes 32 values with the symmetric 8-bit rule shared by Q8_0 and Q8_1:
/// d = amax/127, q = roundf(x/d) (computed as x·(1/d), ties away from zero). Returns d.
inline float quantize_q8_32(const float* in, std::int8_t* qs) noexcept {
  const float d = abs_max(in, kBlock32) / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  for (std::size_t j = 0; j < kBlock32; ++j) {
    qs[j] = static_cast<std::int8_t>(std::round(in[j] * id));
  }
  return d;
}

/// As quantize_q8_32, the way ggml's x86 CPU backend quantizes an activation row
/// (`quantize_row_q8_0` / `quantize_row_q8_1` of ggml-cpu/arch/x86, AVX and up): the inverse
/// scale is 127/amax rather than 1/d, and x·id is rounded to nearest, ties to even. Returns d.
inline float quantize_q8_32_x86(const float* in, std::int8_t* qs) noexcept {
  const float amax = abs_max(in, kBlock32);
  const float d = amax / 127.f;
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  for (std::size_t j = 0; j < kBlock32; ++j) {
    qs[j] = static_cast<std::int8_t>(std::nearbyint(in[j] * id));  // default mode: ties to even
  }
  return d;
}

/// ggml's x86 summation order of a 32-value-block dot (`ggml_vec_dot_q8_0_q8_0` and its
/// siblings in ggml-cpu/arch/x86, AVX2 and AVX-512 builds): a block's 32 integer products are
/// summed exactly in 8 lanes of 4 consecutive values (`vpmaddubsw` + `vpmaddwd`, or `vpdpbusd`),
/// each lane is accumulated across the blocks with an FMA of the block's scale product, and the
/// lanes are added once, as `hsum_float_8` does: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
struct X86Lanes {
  float acc[8] = {};

  /// acc[l] = fma(d, Σ_{j<4} q[4l + j]·a[4l + j], acc[l]); q: the block's 32 signed or unsigned
  /// values, a: the activation block's 32 quants.
  template <class Q>
  DSV4_HOST_DEVICE void add(float d, const Q* q, const std::int8_t* a) noexcept {
    std::int32_t s[8];
    for (int l = 0; l < 8; ++l) {
      s[l] = 0;
      for (int j = 4 * l; j < 4 * l + 4; ++j) s[l] += static_cast<int>(q[j]) * a[j];
    }
    add_lanes(d, s);
  }

  /// acc[l] = fma(d, float(s[l]), acc[l]) for the 8 integer lanes s.
  DSV4_HOST_DEVICE void add_lanes(float d, const std::int32_t* s) noexcept {
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(d, static_cast<float>(s[l]), acc[l]);
  }

  /// Lane-wise acc + o.acc (the kernels that keep even and odd blocks in two accumulators).
  DSV4_HOST_DEVICE X86Lanes operator+(const X86Lanes& o) const noexcept {
    X86Lanes r;
    for (int l = 0; l < 8; ++l) r.acc[l] = acc[l] + o.acc[l];
    return r;
  }

  DSV4_HOST_DEVICE float sum() const noexcept {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  }
};

}  // namespace detail::ggml

/// Q8_0: 32 int8 values and one f16 scale, value = d·q (34 bytes per 32 values, 8.5 bits per
/// weight). Its own activation partner.
struct Q8_0 {
  struct block_type {
    f16 d;               ///< scale
    std::int8_t qs[32];  ///< quants
  };
  static_assert(sizeof(block_type) == 34);
  static constexpr FormatId id = FormatId::q8_0;
  static constexpr std::string_view name = "Q8_0";
  static constexpr std::size_t block_elems = 32;
  using activation = Q8_0;

  /// out[32] = d·qs (ggml `dequantize_row_q8_0`).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(b.qs[j]) * d;
  }

  /// in[32] → one block (ggml `quantize_row_q8_0_ref`): d = max|x|/127, q = round(x/d).
  static void quantize(const float* in, block_type& b) noexcept {
    b.d = f16(detail::ggml::quantize_q8_32(in, b.qs));
  }

  /// in[32] → one block as ggml's x86 CPU backend quantizes an activation
  /// (detail::ggml::quantize_q8_32_x86); what llama.cpp's mul_mat feeds the dots on x86.
  static void quantize_x86(const float* in, block_type& b) noexcept {
    b.d = f16(detail::ggml::quantize_q8_32_x86(in, b.qs));
  }

  /// Σ over n_blocks of (d_w·d_a)·Σ_j qw_j·qa_j, the integer sum exact and the scale product
  /// and accumulation in fp32, in ggml's order (`ggml_vec_dot_q8_0_q8_0`, generic path).
  /// w: [n_blocks] weight blocks; a: [n_blocks] activation blocks.
  DSV4_HOST_DEVICE static float dot(const block_type* w, const block_type* a,
                                    std::size_t n_blocks) noexcept {
    float sum = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      int sumi = 0;
      for (int j = 0; j < 32; ++j) sumi += w[i].qs[j] * a[i].qs[j];
      sum += static_cast<float>(sumi) * (w[i].d.to_float() * a[i].d.to_float());
    }
    return sum;
  }

  /// The same dot in ggml's x86 order (detail::ggml::X86Lanes; `ggml_vec_dot_q8_0_q8_0`, AVX2).
  DSV4_HOST_DEVICE static float dot_x86(const block_type* w, const block_type* a,
                                        std::size_t n_blocks) noexcept {
    detail::ggml::X86Lanes acc;
    for (std::size_t i = 0; i < n_blocks; ++i)
      acc.add(w[i].d.to_float() * a[i].d.to_float(), w[i].qs, a[i].qs);
    return acc.sum();
  }
};

/// Q8_1: Q8_0 plus s = d·Σq rounded to f16, which the Q4_1/Q5_1 dots use for their min term
/// (36 bytes per 32 values). Activation-only: ggml has no dot with Q8_1 weights.
struct Q8_1 {
  struct block_type {
    f16 d;               ///< scale
    f16 s;               ///< d·Σ qs, rounded to f16
    std::int8_t qs[32];  ///< quants
  };
  static_assert(sizeof(block_type) == 36);
  static constexpr FormatId id = FormatId::q8_1;
  static constexpr std::string_view name = "Q8_1";
  static constexpr std::size_t block_elems = 32;

  /// out[32] = d·qs (ggml has no Q8_1 dequantizer; this is the value the block stands for).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float d = b.d.to_float();
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(b.qs[j]) * d;
  }

  /// in[32] → one block (ggml `quantize_row_q8_1_ref`): as Q8_0, then s = f16(d·Σq) with d the
  /// unrounded fp32 scale.
  static void quantize(const float* in, block_type& b) noexcept {
    finish(detail::ggml::quantize_q8_32(in, b.qs), b);
  }

  /// in[32] → one block as ggml's x86 CPU backend quantizes an activation (`quantize_row_q8_1`
  /// of ggml-cpu/arch/x86: detail::ggml::quantize_q8_32_x86, then s as above).
  static void quantize_x86(const float* in, block_type& b) noexcept {
    finish(detail::ggml::quantize_q8_32_x86(in, b.qs), b);
  }

 private:
  static void finish(float d, block_type& b) noexcept {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += b.qs[j];
    b.d = f16(d);
    b.s = f16(static_cast<float>(sum) * d);
  }
};

namespace detail::ggml {

/// ggml's x86 order of the codebook formats' dots (`ggml_vec_dot_iq4_nl_q8_0`,
/// `ggml_vec_dot_mxfp4_q8_0`, AVX2): the values are table[code] (low nibbles: values 0-15, high:
/// 16-31); even and odd blocks go to two X86Lanes, added lane-wise before the lane sum; with an
/// odd block count the last block is added to that sum as d·float(Σ products).
/// scale(i): block i's scale product.
template <class Block, class Scale>
DSV4_HOST_DEVICE float codebook_dot_x86(const Block* w, const Q8_0::block_type* a,
                                        std::size_t n_blocks, const std::int8_t* table,
                                        Scale scale) noexcept {
  const auto values = [&](std::size_t i, int* q) {
    for (int j = 0; j < 16; ++j) {
      q[j] = table[w[i].qs[j] & 0x0F];
      q[j + 16] = table[w[i].qs[j] >> 4];
    }
  };
  X86Lanes even;
  X86Lanes odd;
  std::size_t i = 0;
  int q[32];
  for (; i + 1 < n_blocks; i += 2) {
    values(i, q);
    even.add(scale(i), q, a[i].qs);
    values(i + 1, q);
    odd.add(scale(i + 1), q, a[i + 1].qs);
  }
  float sum = (even + odd).sum();
  if (i < n_blocks) {
    values(i, q);
    int s = 0;
    for (int j = 0; j < 32; ++j) s += q[j] * a[i].qs[j];
    sum += scale(i) * static_cast<float>(s);
  }
  return sum;
}

/// ggml's x86 order of the dots with a Q8_1 partner (`ggml_vec_dot_q4_1_q8_1`,
/// `ggml_vec_dot_q5_1_q8_1`, AVX2): the scaled integer sums in X86Lanes, the min terms m_w·s_a
/// in one float in block order, added last. values(i, q): block i's 32 unsigned quants.
template <class Block, class Values>
DSV4_HOST_DEVICE float min_dot_x86(const Block* w, const Q8_1::block_type* a, std::size_t n_blocks,
                                   Values values) noexcept {
  X86Lanes acc;
  float summs = 0.f;
  for (std::size_t i = 0; i < n_blocks; ++i) {
    summs += w[i].m.to_float() * a[i].s.to_float();
    int q[32];
    values(i, q);
    acc.add(w[i].d.to_float() * a[i].d.to_float(), q, a[i].qs);
  }
  return acc.sum() + summs;
}

}  // namespace detail::ggml

static_assert(QuantizableFormat<Q8_0> && DotFormat<Q8_0>);
static_assert(QuantizableFormat<Q8_1>);

}  // namespace dsv4
