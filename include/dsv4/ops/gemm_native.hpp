// Scalar reference of the native-format GEMMs of the V4 kernels: `fp8_gemm` (E4M3 activations x
// E4M3 weights with 128x128-block scales) and `fp4_gemm` (E4M3 activations x packed E2M1 weights
// with per-32 scales). Per K block: the exact dot product of the codes rounded once to fp32, times
// the fp32 product of the two scales, added to an fp32 accumulator in ascending block order; one
// rounding to bf16 at the end. Spec: spec/formats.md §9.3, §9.4, §9.6; reference symbols
// `fp8_gemm`, `fp4_gemm` (inference/kernel_tilelang.py) as characterised by the golden README.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/ops/quant.hpp"

namespace dsv4::ops {

inline constexpr std::size_t kFp8WeightBlock = 128;  ///< fp8 weight scale block (both dims)
inline constexpr std::size_t kFp4WeightBlock = 32;   ///< fp4 weight scale block along K

namespace detail {
/// Value of a scale stored as fp32 or ue8m0.
template <class S>
constexpr float scale_value(S s) noexcept {
  if constexpr (std::is_same_v<S, ue8m0>) {
    return s.to_float();
  } else {
    static_assert(std::is_same_v<S, float>, "scales are float or ue8m0");
    return s;
  }
}

/// The E2M1 code of logical element k of a packed row (element 2i in the low nibble of byte i).
constexpr std::uint8_t fp4_code(const std::uint8_t* packed_row, std::size_t k) noexcept {
  const std::uint8_t b = packed_row[k / 2];
  return static_cast<std::uint8_t>(k % 2 == 0 ? (b & 0xF) : (b >> 4));
}
}  // namespace detail

/// C = x W^T with FP8 weights.
/// xq: [M, K] E4M3 activation codes; xs: [M, ceil(K/128)] activation scales;
/// w: [N, K] E4M3 weight codes; ws: [ceil(N/128), ceil(K/128)] weight scales; c: [M, N] bf16.
/// C[m][n] = bf( Σ_kb fp32(Σ_{k in kb} xq·w) · (xs[m][kb] · ws[n/128][kb]) ).
template <class SA, class SW>
inline void fp8_gemm(ConstView2<fp8_e4m3> xq, ConstView2<SA> xs, ConstView2<fp8_e4m3> w,
                     ConstView2<SW> ws, View2<bf16> c) {
  const std::size_t kblocks = (xq.cols + kFp8WeightBlock - 1) / kFp8WeightBlock;
  DSV4_CHECK(w.cols == xq.cols && c.rows == xq.rows && c.cols == w.rows && xs.rows == xq.rows &&
                 xs.cols == kblocks &&
                 ws.rows == (w.rows + kFp8WeightBlock - 1) / kFp8WeightBlock && ws.cols == kblocks,
             ShapeError,
             "fp8_gemm: expected xq [M,K], xs [M,{}], w [N,K], ws [ceil(N/128),{}], c [M,N]; got "
             "xq [{},{}], xs [{},{}], w [{},{}], ws [{},{}], c [{},{}]",
             kblocks, kblocks, xq.rows, xq.cols, xs.rows, xs.cols, w.rows, w.cols, ws.rows, ws.cols,
             c.rows, c.cols);
  for (std::size_t m = 0; m < xq.rows; ++m) {
    for (std::size_t n = 0; n < w.rows; ++n) {
      float acc = 0.f;
      for (std::size_t kb = 0; kb < kblocks; ++kb) {
        const std::size_t k0 = kb * kFp8WeightBlock;
        const std::size_t k1 = std::min(xq.cols, k0 + kFp8WeightBlock);
        // E4M3 x E4M3 products are exact in double, and so is a sum of 128 of them.
        double dot = 0.0;
        for (std::size_t k = k0; k < k1; ++k) {
          dot += static_cast<double>(xq(m, k).to_float()) * static_cast<double>(w(n, k).to_float());
        }
        const float s =
            detail::scale_value(xs(m, kb)) * detail::scale_value(ws(n / kFp8WeightBlock, kb));
        acc += static_cast<float>(dot) * s;
      }
      c(m, n) = bf16(acc);
    }
  }
}

/// C = x W^T with FP4 weights.
/// xq: [M, K] E4M3 activation codes; xs: [M, K/128] activation scales;
/// w: [N, K/2] packed E2M1 codes (element 2i in the low nibble of byte i); ws: [N, K/32] weight
/// scales; c: [M, N] bf16. K must be a multiple of 128.
/// C[m][n] = bf( Σ_kb32 fp32(Σ_{k in kb32} xq·w4) · (xs[m][kb32/4] · ws[n][kb32]) ).
template <class SA, class SW>
inline void fp4_gemm(ConstView2<fp8_e4m3> xq, ConstView2<SA> xs, ConstView2<std::uint8_t> w,
                     ConstView2<SW> ws, View2<bf16> c) {
  const std::size_t k = xq.cols;
  DSV4_CHECK(k % kGemmQuantBlock == 0 && w.cols * 2 == k && c.rows == xq.rows && c.cols == w.rows &&
                 xs.rows == xq.rows && xs.cols == k / kGemmQuantBlock && ws.rows == w.rows &&
                 ws.cols == k / kFp4WeightBlock,
             ShapeError,
             "fp4_gemm: expected xq [M,K] with K % 128 == 0, xs [M,K/128], w [N,K/2], "
             "ws [N,K/32], c [M,N]; got xq [{},{}], xs [{},{}], w [{},{}], ws [{},{}], c [{},{}]",
             xq.rows, xq.cols, xs.rows, xs.cols, w.rows, w.cols, ws.rows, ws.cols, c.rows, c.cols);
  constexpr std::size_t per_act_block = kGemmQuantBlock / kFp4WeightBlock;
  for (std::size_t m = 0; m < xq.rows; ++m) {
    for (std::size_t n = 0; n < w.rows; ++n) {
      const std::uint8_t* wrow = w.row(n);
      float acc = 0.f;
      for (std::size_t kb = 0; kb < k / kFp4WeightBlock; ++kb) {
        double dot = 0.0;
        for (std::size_t kk = kb * kFp4WeightBlock; kk < (kb + 1) * kFp4WeightBlock; ++kk) {
          const float wv = fp4_e2m1::from_bits(detail::fp4_code(wrow, kk)).to_float();
          dot += static_cast<double>(xq(m, kk).to_float()) * static_cast<double>(wv);
        }
        const float s =
            detail::scale_value(xs(m, kb / per_act_block)) * detail::scale_value(ws(n, kb));
        acc += static_cast<float>(dot) * s;
      }
      c(m, n) = bf16(acc);
    }
  }
}

}  // namespace dsv4::ops
