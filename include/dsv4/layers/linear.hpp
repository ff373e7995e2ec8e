// Linear layers: y = x W^T for a weight W of shape [out_features, in_features].
//
// Every layer of the model takes its projections through the `LinearOp` concept, so the weight
// format is a policy: `DenseLinear<float>` / `DenseLinear<bf16>` here; the quantized formats
// (native FP8/FP4, GGUF blocks) provide the same interface. Semantics of the reference's bf16
// `F.linear`: products accumulated in float32, the result rounded once by the numerics policy.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/tensor.hpp"

namespace dsv4 {

/// What a projection provides: its shape and `forward<Numerics>(x [rows, in], y [rows, out])`.
template <class L>
concept LinearOp = requires(const L& l, ConstView2<float> x, View2<float> y) {
  { l.in_features() } -> std::convertible_to<std::size_t>;
  { l.out_features() } -> std::convertible_to<std::size_t>;
  l.template forward<ReferenceNumerics>(x, y);
};

/// Checks the shapes of a linear call; throws ShapeError naming `what`.
inline void check_linear_shapes(const char* what, std::size_t in, std::size_t out,
                                ConstView2<float> x, View2<float> y) {
  DSV4_CHECK(x.cols == in && y.cols == out && y.rows == x.rows, ShapeError,
             "{}: weight [{}, {}] applied to x [{}, {}] into y [{}, {}]", what, out, in, x.rows,
             x.cols, y.rows, y.cols);
}

/// A dense weight held as `T` (float or bf16), row-major [out, in].
template <class T>
class DenseLinear {
 public:
  DenseLinear() = default;
  DenseLinear(std::vector<T> weight, std::size_t out_features, std::size_t in_features)
      : w_(std::move(weight)), out_(out_features), in_(in_features) {
    DSV4_CHECK(w_.size() == out_ * in_, ShapeError,
               "DenseLinear: {} weight values for a [{}, {}] matrix", w_.size(), out_, in_);
  }

  std::size_t in_features() const noexcept { return in_; }
  std::size_t out_features() const noexcept { return out_; }
  std::span<const T> weight() const noexcept { return w_; }

  /// y[r][o] = N::round(Σ_k x[r][k] · W[o][k]), accumulated in float32 in ascending k.
  template <NumericsPolicy N>
  void forward(ConstView2<float> x, View2<float> y) const {
    check_linear_shapes("DenseLinear", in_, out_, x, y);
    for (std::size_t r = 0; r < x.rows; ++r) {
      const float* xr = x.row(r);
      for (std::size_t o = 0; o < out_; ++o) {
        const T* wr = w_.data() + o * in_;
        float acc = 0.0f;
        for (std::size_t k = 0; k < in_; ++k) acc += xr[k] * static_cast<float>(wr[k]);
        y(r, o) = N::round(acc);
      }
    }
  }

 private:
  std::vector<T> w_;
  std::size_t out_ = 0;
  std::size_t in_ = 0;
};

}  // namespace dsv4
