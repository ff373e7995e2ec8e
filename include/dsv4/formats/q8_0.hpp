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
    const float d = detail::ggml::quantize_q8_32(in, b.qs);
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += b.qs[j];
    b.d = f16(d);
    b.s = f16(static_cast<float>(sum) * d);
  }
};

static_assert(QuantizableFormat<Q8_0> && DotFormat<Q8_0>);
static_assert(QuantizableFormat<Q8_1>);

}  // namespace dsv4
