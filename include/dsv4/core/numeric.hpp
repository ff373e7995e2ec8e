// Storage number types of DeepSeek-V4 checkpoints and activations, with exact conversions.
//
// Spec: spec/formats.md §9.1 (bf16, FP8 E4M3FN, E8M0, FP4 E2M1) plus IEEE binary16 and FP8 E5M2.
// Every type is a trivially copyable wrapper around its bit pattern, usable on host and device.
//
// Conversions from float round to nearest, ties to even, on the exact fp32 input. Overflow
// behaviour is a template parameter (cf. CUTLASS NumericConverter):
//   Overflow::saturate   clamp to the largest finite value (OCP MX "satfinite"): the default of the
//                        constructors of the 8-bit and smaller types, and what quantisers need;
//   Overflow::ieee       what a plain cast does in PyTorch and ml_dtypes: to infinity where the
//   type
//                        has one (f16, bf16, e5m2), else to NaN (e4m3fn).
// NaN inputs map to the type's canonical quiet NaN with the input's sign (e2m1 has no NaN and no
// infinity: NaN maps to a zero of the opposite sign as in ml_dtypes, infinities saturate). E8M0
// (unsigned power of two, no zero) rounds to the nearest power of two in the linear domain (ties
// up) and maps zero, negatives, infinities and overflow to its NaN (0xFF), as ml_dtypes'
// float8_e8m0fnu does.
//
// tests/unit/numeric_test.cpp checks every code of each type and ~590k fp32 inputs against
// tables written by tools/gen_numeric_tables.py with ml_dtypes/numpy.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

#include "dsv4/core/macros.hpp"

namespace dsv4 {

enum class Overflow { saturate, ieee };

namespace detail {

/// Special-value convention of a small float format.
enum class Specials {
  ieee,  // all-ones exponent: infinity (mantissa 0) or NaN
  fn,    // "finite, NaN": only the all-ones code (per sign) is NaN, no infinity (E4M3FN)
  none,  // every code is finite (E2M1)
};

/// Describes a sign-magnitude binary float with `E` exponent bits, `M` mantissa bits, IEEE bias.
template <int E, int M, Specials S>
struct MiniFloatSpec {
  static constexpr int exp_bits = E;
  static constexpr int man_bits = M;
  static constexpr int bias = (1 << (E - 1)) - 1;
  static constexpr int emin = 1 - bias;  // exponent of the smallest normal
  static constexpr std::uint32_t sign_bit = 1u << (E + M);
  static constexpr std::uint32_t mag_mask = sign_bit - 1u;
  static constexpr Specials specials = S;
  static constexpr std::uint32_t inf_code = ((1u << E) - 1u) << M;  // ieee only
  static constexpr std::uint32_t nan_code = S == Specials::ieee ? inf_code | (1u << (M - 1))
                                            : S == Specials::fn ? mag_mask
                                                                : sign_bit;  // none: -0
  static constexpr std::uint32_t max_finite = S == Specials::ieee ? inf_code - 1u
                                              : S == Specials::fn ? mag_mask - 1u
                                                                  : mag_mask;
};

/// Rounds the fp32 value with bits `x` to the format `Spec`; returns the code.
template <class Spec, Overflow O>
DSV4_HOST_DEVICE constexpr std::uint32_t encode_minifloat(std::uint32_t x) {
  const std::uint32_t sign = (x >> 31) ? Spec::sign_bit : 0u;
  const std::uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) {  // NaN
    // e2m1 has no NaN: ml_dtypes maps NaN to a zero of the opposite sign; so do we.
    return Spec::specials == Specials::none ? sign ^ Spec::sign_bit : sign | Spec::nan_code;
  }
  std::uint32_t code;
  if (a == 0x7f800000u) {
    code = Spec::max_finite + 1u;  // treated as overflow below
  } else if (a == 0) {
    return sign;
  } else {
    const int e = static_cast<int>(a >> 23);
    const std::uint32_t m = a & 0x7fffffu;
    // value = sig * 2^exp2, sig an integer of at most 24 bits
    const std::uint64_t sig = e == 0 ? m : (m | 0x800000u);
    const int exp2 = (e == 0 ? 1 : e) - 150;
    const int floor_log2 = (63 - std::countl_zero(sig)) + exp2;
    const int te = floor_log2 > Spec::emin ? floor_log2 : Spec::emin;  // target binade exponent
    const int qe = te - Spec::man_bits;                                // its quantum's exponent
    const int shift = qe - exp2;
    std::uint64_t n;  // the value in units of 2^qe, rounded to nearest even
    if (shift <= 0) {
      n = sig << (-shift);
    } else if (shift > 40) {
      n = 0;
    } else {
      const std::uint64_t q = sig >> shift;
      const std::uint64_t rem = sig & ((std::uint64_t{1} << shift) - 1u);
      const std::uint64_t half = std::uint64_t{1} << (shift - 1);
      n = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    }
    // ((te - emin) << M) + n: n carries the implicit bit, and a carry out of the mantissa moves
    // into the exponent field by itself.
    code = static_cast<std::uint32_t>(
        (static_cast<std::uint64_t>(te - Spec::emin) << Spec::man_bits) + n);
  }
  if (code > Spec::max_finite) {
    if (O == Overflow::saturate || Spec::specials == Specials::none) {
      code = Spec::max_finite;
    } else {
      code = Spec::specials == Specials::ieee ? Spec::inf_code : Spec::nan_code;
    }
  }
  return sign | code;
}

/// Exact value of the code `c` of format `Spec` as fp32 bits.
template <class Spec>
DSV4_HOST_DEVICE constexpr float decode_minifloat(std::uint32_t c) {
  const bool neg = (c & Spec::sign_bit) != 0;
  const std::uint32_t mag = c & Spec::mag_mask;
  const std::uint32_t ef = mag >> Spec::man_bits;
  const std::uint32_t mf = mag & ((1u << Spec::man_bits) - 1u);
  if constexpr (Spec::specials == Specials::ieee) {
    if (ef == (1u << Spec::exp_bits) - 1u) {
      const float inf = std::numeric_limits<float>::infinity();
      if (mf == 0) return neg ? -inf : inf;
      return neg ? -std::numeric_limits<float>::quiet_NaN()
                 : std::numeric_limits<float>::quiet_NaN();
    }
  } else if constexpr (Spec::specials == Specials::fn) {
    if (mag == Spec::mag_mask) {
      return neg ? -std::numeric_limits<float>::quiet_NaN()
                 : std::numeric_limits<float>::quiet_NaN();
    }
  }
  // Build the fp32 directly: every value of these formats is an fp32 normal or zero, except
  // deep bf16 subnormals, which are fp32 subnormals with the same bits.
  std::uint32_t bits;
  if (ef == 0) {
    if (mf == 0) return neg ? -0.0f : 0.0f;
    // subnormal: mf * 2^(emin - M); normalise
    const int lz = std::countl_zero(mf) - (32 - Spec::man_bits);  // leading zeros within M bits
    int fe = Spec::emin - 1 - lz;                                 // unbiased exponent
    std::uint32_t frac = (mf << (lz + 1)) & ((1u << Spec::man_bits) - 1u);
    if (fe + 127 <= 0) {  // fp32 subnormal (only reachable for bf16)
      return std::bit_cast<float>((neg ? 0x80000000u : 0u) | mf << (23 - Spec::man_bits));
    }
    bits = static_cast<std::uint32_t>(fe + 127) << 23 | frac << (23 - Spec::man_bits);
  } else {
    const int fe = static_cast<int>(ef) - Spec::bias;
    bits = static_cast<std::uint32_t>(fe + 127) << 23 | mf << (23 - Spec::man_bits);
  }
  return std::bit_cast<float>((neg ? 0x80000000u : 0u) | bits);
}

using Bf16Spec = MiniFloatSpec<8, 7, Specials::ieee>;
using F16Spec = MiniFloatSpec<5, 10, Specials::ieee>;
using E4M3Spec = MiniFloatSpec<4, 3, Specials::fn>;
using E5M2Spec = MiniFloatSpec<5, 2, Specials::ieee>;
using E2M1Spec = MiniFloatSpec<2, 1, Specials::none>;

}  // namespace detail

/// bfloat16: the upper half of an IEEE fp32.
struct bf16 {
  std::uint16_t bits;

  bf16() = default;
  /// Rounds to nearest even; overflow goes to infinity (bf16 has fp32's range, so only
  /// values within half an ulp of FLT_MAX can overflow). NaN becomes the canonical quiet NaN.
  DSV4_HOST_DEVICE constexpr explicit bf16(float f) : bits(round(f)) {}
  DSV4_HOST_DEVICE static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 r{};
    r.bits = b;
    return r;
  }
  DSV4_HOST_DEVICE constexpr float to_float() const {
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  }
  DSV4_HOST_DEVICE constexpr explicit operator float() const { return to_float(); }

  /// The classic add-and-truncate rounding; equal to the generic encoder on every input.
  DSV4_HOST_DEVICE static constexpr std::uint16_t round(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x7fc0u);
    const std::uint32_t lsb = (x >> 16) & 1u;
    return static_cast<std::uint16_t>((x + 0x7fffu + lsb) >> 16);
  }
};

/// IEEE 754 binary16.
struct f16 {
  std::uint16_t bits;

  f16() = default;
  DSV4_HOST_DEVICE constexpr explicit f16(float f)
      : bits(static_cast<std::uint16_t>(detail::encode_minifloat<detail::F16Spec, Overflow::ieee>(
            std::bit_cast<std::uint32_t>(f)))) {}
  DSV4_HOST_DEVICE static constexpr f16 from_bits(std::uint16_t b) {
    f16 r{};
    r.bits = b;
    return r;
  }
  DSV4_HOST_DEVICE constexpr float to_float() const {
    return detail::decode_minifloat<detail::F16Spec>(bits);
  }
  DSV4_HOST_DEVICE constexpr explicit operator float() const { return to_float(); }
};

namespace detail {
/// Shared body of the byte-sized float types.
template <class Derived, class Spec>
struct ByteFloat {
  std::uint8_t bits;

  template <Overflow O = Overflow::saturate>
  DSV4_HOST_DEVICE static constexpr Derived from_float(float f) {
    return Derived::from_bits(
        static_cast<std::uint8_t>(encode_minifloat<Spec, O>(std::bit_cast<std::uint32_t>(f))));
  }
  DSV4_HOST_DEVICE static constexpr Derived from_bits(std::uint8_t b) {
    Derived r{};
    r.bits = b;
    return r;
  }
  DSV4_HOST_DEVICE constexpr float to_float() const { return decode_minifloat<Spec>(bits); }
  DSV4_HOST_DEVICE constexpr explicit operator float() const { return to_float(); }
};
}  // namespace detail

/// FP8 E4M3FN: bias 7, no infinity, NaN = S.1111.111, largest finite 448.
struct fp8_e4m3 : detail::ByteFloat<fp8_e4m3, detail::E4M3Spec> {
  static constexpr float max_finite = 448.0f;
};
/// FP8 E5M2: bias 15, IEEE-like (infinities and NaNs), largest finite 57344.
struct fp8_e5m2 : detail::ByteFloat<fp8_e5m2, detail::E5M2Spec> {
  static constexpr float max_finite = 57344.0f;
};
/// FP4 E2M1 (one code per byte, low nibble): values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives.
struct fp4_e2m1 : detail::ByteFloat<fp4_e2m1, detail::E2M1Spec> {
  static constexpr float max_finite = 6.0f;
};

/// E8M0 ("ue8m0"): unsigned power of two 2^(bits-127); 0xFF is NaN; there is no zero.
struct ue8m0 {
  std::uint8_t bits;

  DSV4_HOST_DEVICE static constexpr ue8m0 from_bits(std::uint8_t b) {
    ue8m0 r{};
    r.bits = b;
    return r;
  }
  /// Nearest power of two (ties, i.e. mantissa exactly 1.5, round up).
  DSV4_HOST_DEVICE static constexpr ue8m0 from_float(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x >> 31) != 0 || x == 0 || x >= 0x7f800000u) return from_bits(0xff);
    const int e = static_cast<int>(x >> 23);
    const std::uint32_t m = x & 0x7fffffu;
    // Below 2^-126 (fp32 subnormals) ml_dtypes rounds on the raw mantissa field: up to 2^-127
    // gives code 0, anything above gives code 1 (2^-126).
    if (e == 0) return from_bits(m > 0x400000u ? 1 : 0);
    const int k = e - 127 + (m >= 0x400000u ? 1 : 0);  // log2 rounded, ties up
    if (k > 127) return from_bits(0xff);
    return from_bits(static_cast<std::uint8_t>(k + 127));
  }
  /// The power of two 2^ceil(log2 v) (the V4 activation quantisers' scale rounding, formats.md
  /// §9.5), from the fp32 bits of a positive normal v.
  DSV4_HOST_DEVICE static constexpr ue8m0 ceil_pow2(float v) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(v);
    const int k = static_cast<int>((x >> 23) & 0xffu) - 127 + ((x & 0x7fffffu) != 0 ? 1 : 0);
    return from_bits(static_cast<std::uint8_t>(k + 127));
  }
  DSV4_HOST_DEVICE constexpr float to_float() const {
    if (bits == 0xff) return std::numeric_limits<float>::quiet_NaN();
    if (bits == 0) return std::bit_cast<float>(0x00400000u);  // 2^-127, an fp32 subnormal
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 23);
  }
  DSV4_HOST_DEVICE constexpr explicit operator float() const { return to_float(); }
};

/// Rounds `f` to the nearest bf16 value and returns it as float (the reference's `bf()`).
DSV4_HOST_DEVICE constexpr float round_bf16(float f) { return bf16(f).to_float(); }

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2);
static_assert(sizeof(fp8_e4m3) == 1 && sizeof(fp8_e5m2) == 1 && sizeof(fp4_e2m1) == 1 &&
              sizeof(ue8m0) == 1);
static_assert(fp8_e4m3::from_float(448.0f).bits == 0x7e && fp8_e4m3::from_float(1e9f).bits == 0x7e);
static_assert(fp8_e4m3::from_float<Overflow::ieee>(1e9f).bits == 0x7f);
static_assert(fp4_e2m1::from_float(2.5f).bits == 0x4 && fp4_e2m1::from_float(-5.0f).bits == 0xe);
static_assert(ue8m0::from_float(1.5f).bits == 128 && ue8m0::ceil_pow2(1.0f).bits == 127);

}  // namespace dsv4
