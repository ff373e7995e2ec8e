// Scalar reference ("oracle") activation quantisers of the V4 TileLang kernels: the GEMM-input FP8
// quantiser (act_quant, E4M3 codes + per-block scales, ue8m0 or unrounded), the in-place FP8
// simulation (act_quant inplace, block 64) and the in-place FP4 simulation (fp4_act_quant, block
// 32). Spec: spec/formats.md §9.5; reference symbols `act_quant`, `fp4_act_quant`,
// `fast_round_scale` (inference/kernel_tilelang.py). All arithmetic fp32, in the kernel's order.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"

namespace dsv4::ops {

/// Scale format of the FP8 activation quantiser (`scale_fmt` of the reference).
enum class ScaleFmt : std::uint8_t {
  ue8m0,    ///< power of two rounded up (V4 always)
  noround,  ///< scale_fmt None: s = amax * fp32(1/448)
};

inline constexpr std::size_t kGemmQuantBlock = 128;  ///< act_quant block of FP8/FP4-weight linears
inline constexpr std::size_t kKvQuantBlock =
    64;  ///< in-place FP8 simulation block (KV, compressor)
inline constexpr std::size_t kFp4QuantBlock = 32;  ///< in-place FP4 simulation block (indexer)

namespace detail {

/// Widens an activation element (float or bf16) to fp32.
template <class T>
constexpr float widen(T v) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    return v.to_float();
  } else {
    static_assert(std::is_same_v<T, float>, "activations are float or bf16");
    return v;
  }
}

/// Narrows an fp32 value to the activation type (bf16: round to nearest even).
template <class T>
constexpr T narrow(float v) noexcept {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16(v);
  } else {
    return v;
  }
}

/// max |x_j| over one block, floored at `floor_value` (fp32; NaN-free inputs assumed).
template <class T>
inline float block_amax(const T* x, std::size_t n, float floor_value) noexcept {
  float amax = 0.f;
  for (std::size_t j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(widen(x[j])));
  return std::fmax(amax, floor_value);
}

/// fp32 clamp to [-qmax, qmax].
inline float clamp_q(float v, float qmax) noexcept { return std::fmin(std::fmax(v, -qmax), qmax); }

}  // namespace detail

/// The quantiser scale of one block: v = fp32(amax * fp32(1/qmax)); with ue8m0 rounding
/// 2^ceil(log2 v) from v's fp32 bits (`fast_round_scale`).
inline float quant_scale(float amax, float qmax, ScaleFmt fmt) noexcept {
  const float v = amax * (1.0f / qmax);
  return fmt == ScaleFmt::ue8m0 ? ue8m0::ceil_pow2(v).to_float() : v;
}

/// GEMM-input FP8 quantiser (act_quant, out of place), one row.
/// x: [n] activations; q: [n] E4M3 codes; scale: [n / block] fp32 scales (powers of two for
/// ue8m0, exactly representable as ue8m0::ceil_pow2). x ≈ e4m3(q) * scale per block.
/// n must be a multiple of `block` (checked by the caller-facing overload below).
template <class T>
inline void act_quant_row(const T* x, std::size_t n, std::size_t block, ScaleFmt fmt, fp8_e4m3* q,
                          float* scale) noexcept {
  constexpr float qmax = fp8_e4m3::max_finite;
  for (std::size_t b = 0; b * block < n; ++b) {
    const T* xb = x + b * block;
    const float s = quant_scale(detail::block_amax(xb, block, 1e-4f), qmax, fmt);
    scale[b] = s;
    for (std::size_t j = 0; j < block; ++j) {
      q[b * block + j] = fp8_e4m3::from_float(detail::clamp_q(detail::widen(xb[j]) / s, qmax));
    }
  }
}

/// GEMM-input FP8 quantiser over rows. x: [rows, n] (row stride n); q: [rows, n];
/// scale: [rows, n / block]. Throws ShapeError when n is not a multiple of block.
template <class T>
inline void act_quant(const T* x, std::size_t rows, std::size_t n, std::size_t block, ScaleFmt fmt,
                      fp8_e4m3* q, float* scale) {
  DSV4_CHECK(block > 0 && n % block == 0, ShapeError,
             "act_quant: row width must be a multiple of the block: expected a multiple of {}, "
             "got {}",
             block, n);
  for (std::size_t r = 0; r < rows; ++r) {
    act_quant_row(x + r * n, n, block, fmt, q + r * n, scale + r * (n / block));
  }
}

/// In-place FP8 simulation (act_quant inplace, ue8m0 scales): every block of `block` values
/// becomes bf(e4m3(clamp(x/s)) * s). x: [n], n a multiple of block (unchecked: kernel).
template <class T>
inline void act_quant_inplace(T* x, std::size_t n, std::size_t block = kKvQuantBlock) noexcept {
  constexpr float qmax = fp8_e4m3::max_finite;
  for (std::size_t b = 0; b * block < n; ++b) {
    T* xb = x + b * block;
    const float s = quant_scale(detail::block_amax(xb, block, 1e-4f), qmax, ScaleFmt::ue8m0);
    for (std::size_t j = 0; j < block; ++j) {
      const float y =
          fp8_e4m3::from_float(detail::clamp_q(detail::widen(xb[j]) / s, qmax)).to_float();
      xb[j] = detail::narrow<T>(y * s);
    }
  }
}

/// In-place FP4 simulation (fp4_act_quant inplace): amax floored at 6*2^-126, scale
/// 2^ceil(log2(amax/6)), every value becomes bf(e2m1(clamp(x/s, ±6)) * s). x: [n], n a multiple
/// of block (unchecked: kernel).
template <class T>
inline void fp4_act_quant_inplace(T* x, std::size_t n,
                                  std::size_t block = kFp4QuantBlock) noexcept {
  constexpr float qmax = fp4_e2m1::max_finite;
  constexpr float floor_value = 6.0f * 0x1p-126f;
  for (std::size_t b = 0; b * block < n; ++b) {
    T* xb = x + b * block;
    const float s = quant_scale(detail::block_amax(xb, block, floor_value), qmax, ScaleFmt::ue8m0);
    for (std::size_t j = 0; j < block; ++j) {
      const float y =
          fp4_e2m1::from_float(detail::clamp_q(detail::widen(xb[j]) / s, qmax)).to_float();
      xb[j] = detail::narrow<T>(y * s);
    }
  }
}

}  // namespace dsv4::ops
