// Scalar reference Walsh-Hadamard transform of the indexer (`rotate_activation`): Sylvester
// (natural) order, fp32 butterflies on the widened input, times the scale, one rounding to the
// output type. Spec: spec/formats.md §9.7; reference symbol `rotate_activation`
// (inference/model.py, via fast_hadamard_transform's `hadamard_transform(x, scale)`).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <vector>

#include "dsv4/core/numeric.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/ops/quant.hpp"

namespace dsv4::ops {

/// y_i = scale * Σ_j (-1)^popcount(i & j) x_j for one vector.
/// x: [n], y: [n] (may alias x), n a power of two (unchecked: kernel), `work`: [n] fp32 scratch.
/// Butterflies run with stride 1, 2, 4, ... (a + b, a - b) in fp32; then one multiply by `scale`
/// and one rounding to Out.
template <class In, class Out>
inline void hadamard(const In* x, Out* y, std::size_t n, float scale, float* work) noexcept {
  for (std::size_t i = 0; i < n; ++i) work[i] = detail::widen(x[i]);
  for (std::size_t h = 1; h < n; h *= 2) {
    for (std::size_t i = 0; i < n; i += 2 * h) {
      for (std::size_t j = i; j < i + h; ++j) {
        const float a = work[j];
        const float b = work[j + h];
        work[j] = a + b;
        work[j + h] = a - b;
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i) y[i] = detail::narrow<Out>(work[i] * scale);
}

/// rotate_activation over rows: x, y: [rows, n] (row stride n), scale n^-1/2 in fp32.
template <class In, class Out>
inline void rotate_activation(const In* x, Out* y, std::size_t rows, std::size_t n) {
  DSV4_CHECK(n > 0 && std::has_single_bit(n), ShapeError,
             "rotate_activation: vector length must be a power of two, got {}", n);
  ScratchBuffer<float> work(n);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (std::size_t r = 0; r < rows; ++r) hadamard(x + r * n, y + r * n, n, scale, work.data());
}

}  // namespace dsv4::ops
