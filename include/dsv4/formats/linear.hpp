// Linear layers: y = x W^T for a weight W of shape [out_features, in_features].
//
// Every layer of the model takes its projections through the `LinearOp` concept, so the weight
// format is a policy: `DenseLinear<float>` / `DenseLinear<bf16>` hold plain weights (semantics of
// the reference's bf16 `F.linear`: products accumulated in float32, the result rounded once by the
// numerics policy); `Linear<Format, Semantics>` holds a weight in any storage format (native
// FP8_B128 / FP4_G32, every GGUF block format, F32/F16/BF16), owning its bytes or viewing bytes
// owned elsewhere (a mapped checkpoint); `AnyLinear` holds any of those, chosen per tensor at run
// time. Spec: spec/formats.md §9.3-9.6 (native formats, act_quant, GEMM semantics), §10.3 (GGUF);
// reference symbols `Linear`, `linear`, `act_quant`, `fp8_gemm`, `fp4_gemm` (inference/model.py,
// kernel_tilelang.py); llama.cpp's `vec_dot_type` / `vec_dot` for the GGUF semantics.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/registry.hpp"

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

/// A dense weight of `T` (float or bf16), row-major [out, in]: owned (copies share the values) or
/// a view of values held elsewhere, such as an F32 tensor of a mapped file (`view`).
template <class T>
class DenseLinear {
 public:
  DenseLinear() = default;
  DenseLinear(std::vector<T> weight, std::size_t out_features, std::size_t in_features)
      : out_(out_features), in_(in_features) {
    DSV4_CHECK(weight.size() == out_ * in_, ShapeError,
               "DenseLinear: {} weight values for a [{}, {}] matrix", weight.size(), out_, in_);
    auto held = std::make_shared<const std::vector<T>>(std::move(weight));
    w_ = held->data();
    owner_ = std::move(held);
  }
  /// A view of [out, in] values held elsewhere (a mapped file): no copy; `keep_alive` (if any)
  /// owns them, else the caller keeps them alive while the view is used.
  static DenseLinear view(std::span<const T> weight, std::size_t out_features,
                          std::size_t in_features, std::shared_ptr<const void> keep_alive = {}) {
    DSV4_CHECK(weight.size() == out_features * in_features, ShapeError,
               "DenseLinear::view: {} weight values for a [{}, {}] matrix", weight.size(),
               out_features, in_features);
    DenseLinear d;
    d.w_ = weight.data();
    d.out_ = out_features;
    d.in_ = in_features;
    d.owner_ = std::move(keep_alive);
    return d;
  }

  std::size_t in_features() const noexcept { return in_; }
  std::size_t out_features() const noexcept { return out_; }
  std::span<const T> weight() const noexcept { return {w_, out_ * in_}; }

  /// y[r][o] = N::round(Σ_k x[r][k] · W[o][k]), accumulated in float32 in ascending k.
  template <NumericsPolicy N>
  void forward(ConstView2<float> x, View2<float> y) const {
    check_linear_shapes("DenseLinear", in_, out_, x, y);
    for (std::size_t r = 0; r < x.rows; ++r) {
      const float* xr = x.row(r);
      for (std::size_t o = 0; o < out_; ++o) {
        const T* wr = w_ + o * in_;
        float acc = 0.0f;
        for (std::size_t k = 0; k < in_; ++k) acc += xr[k] * static_cast<float>(wr[k]);
        y(r, o) = N::round(acc);
      }
    }
  }

 private:
  std::shared_ptr<const void> owner_;  // the values' owner (copies share it), or none for a view
  const T* w_ = nullptr;
  std::size_t out_ = 0;
  std::size_t in_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Quantized weights: Linear<Format, Semantics>
// ---------------------------------------------------------------------------------------------

/// Semantics policy: x is quantised to the weight format's activation partner (`F::activation`)
/// and every output is the format's own dot (`F::dot`), rounded once by the numerics policy.
///  * Native formats: this is the official reference, act_quant (E4M3, blocks of 128, ue8m0
///    scales) then fp8_gemm / fp4_gemm (per-block exact sums rounded to fp32, times the scale
///    product, fp32 accumulation; formats.md §9.5-9.6). With a bf16 numerics policy the output
///    equals the kernels' bf16 result bit for bit.
///  * GGUF formats: llama.cpp's CPU semantics, x in the type's vec_dot_type (Q8_0 for Q4_0, Q5_0,
///    Q8_0, IQ4_NL and MXFP4; Q8_1 for Q4_1 and Q5_1; Q8_K for the k-quants and IQ4_XS; F16, BF16
///    and F32 for themselves) and the type's vec_dot, both as ggml's x86 CPU backend computes
///    them where that differs from ggml's portable code (`partner_quantize` / `partner_dot`: the
///    x86 order of the 32-value formats and of Q2_K, Q4_K, Q5_K, Q6_K, and the x86 rounding of
///    Q8_0 / Q8_1 activations; Q3_K and IQ4_XS keep the portable order).
struct PartnerDot {
  static constexpr std::string_view name = "partner-dot";
};

/// Semantics policy: the weight is dequantised to fp32 and x is used as it is; every output is
/// Σ_k x[k]·w[k] accumulated in fp32 in ascending k and rounded once by the numerics policy
/// (DenseLinear's semantics: Linear<F32, DequantDot> and Linear<BF16, DequantDot> equal
/// DenseLinear<float> and DenseLinear<bf16> bit for bit). For GGUF weights this is what a consumer
/// that dequantises to f32 computes; for the native formats it skips the activation quantisation.
struct DequantDot {
  static constexpr std::string_view name = "dequant-dot";
};

/// How llama.cpp's x86 CPU backend multiplies a PartnerDot weight: with its type's vec_dot, or,
/// for the formats it repacks at load time that dsv4 models (ggml's CPU_REPACK buffer;
/// RepackedDotFormat: Q4_0, Q4_K, Q2_K; not IQ4_NL and MXFP4), with the repacked GEMM and GEMV
/// kernels (F::dot_repacked), as a 2-D `mul_mat` or as the experts of a `mul_mat_id`. Which weights
/// llama.cpp repacks is the loader's choice (io::GgufModel); a Linear made in code uses vec_dot.
enum class GgmlRepack : std::uint8_t {
  none,        ///< vec_dot (partner_dot)
  mul_mat,     ///< of a call's n rows, the first n − n % 4 by the GEMM, the rest by the GEMV
  mul_mat_id,  ///< every row by the GEMV (the repacked mul_mat_id runs one row at a time)
};

/// How many of a call's `rows` activation rows the repacked GEMM takes (its first ones, in groups
/// of four; the rest go to the GEMV). The split follows the row count of one call, as llama.cpp's
/// follows its ubatch's: a prefill in one call and token-by-token decoding differ, as in llama.cpp.
constexpr std::size_t repack_gemm_rows(GgmlRepack how, std::size_t rows) noexcept {
  return how == GgmlRepack::mul_mat ? rows - rows % 4 : 0;
}

/// The repacked kernel that computes activation row `row` of a call with `rows` rows (how is not
/// GgmlRepack::none).
constexpr RepackKernel repack_kernel(GgmlRepack how, std::size_t row, std::size_t rows) noexcept {
  return row < repack_gemm_rows(how, rows) ? RepackKernel::gemm : RepackKernel::gemv;
}

/// `S` is a semantics policy usable with format `F` (PartnerDot needs the format's dot).
template <class S, class F>
concept LinearSemantics = QuantFormat<F> &&
    (std::same_as<S, DequantDot> || (std::same_as<S, PartnerDot> && DotFormat<F>));

namespace detail::linear {

/// Where the bytes of a Linear live: raw pointers into memory that is either owned (shared by
/// copies of the Linear, immutable) or borrowed (the caller, or `owner`, keeps it alive).
template <class F, bool Planar = PlanarFormat<F>>
struct Storage {
  const typename F::block_type* blocks = nullptr;  // [out, in / block_elems]
};
template <class F>
struct Storage<F, true> {
  const typename F::code_type* codes = nullptr;    // [out, codes_per_row(in)]
  const typename F::scale_type* scales = nullptr;  // [scale_rows(out), scale_cols(in)]
};

/// The checkpoint tensors' element types of a planar format (placeholders for block formats, whose
/// planar members are constrained away).
template <class F, bool Planar = PlanarFormat<F>>
struct PlanarTypes {
  using code_type = std::byte;
  using scale_type = std::byte;
};
template <class F>
struct PlanarTypes<F, true> {
  using code_type = typename F::code_type;
  using scale_type = typename F::scale_type;
};

template <class T>
const T* cast_bytes(std::span<const std::byte> bytes, const char* what, FormatId id) {
  DSV4_CHECK(reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(T) == 0, InputError,
             "Linear<{}>::view_bytes: {} at address {} is not aligned to {} bytes; copy the "
             "tensor or align the file's data",
             format_info(id).name, what, static_cast<const void*>(bytes.data()), alignof(T));
  return reinterpret_cast<const T*>(bytes.data());
}

}  // namespace detail::linear

/// A weight W [out_features, in_features] stored in format F, applied with semantics S
/// (PartnerDot or DequantDot; see above). Block formats store out rows of in/F::block_elems
/// blocks (GGUF's layout); the native formats store the checkpoint's two tensors, codes and
/// scales (`PlanarFormat`). The bytes are owned (constructors, `quantize`) or viewed (`view`,
/// `view_bytes`: zero-copy over a mapped file, optionally keeping its owner alive); copies of a
/// Linear share the same immutable bytes.
/// in_features must be a multiple of F::block_elems, and for PartnerDot of the activation
/// partner's block too (FP8_B128 and FP4_G32: 128; k-quants: 256).
template <QuantFormat F, class S = PartnerDot>
requires LinearSemantics<S, F>
class Linear {
 public:
  using format = F;
  using semantics = S;
  using block_type = typename F::block_type;
  static constexpr bool planar = PlanarFormat<F>;
  using code_type = typename detail::linear::PlanarTypes<F>::code_type;    ///< planar formats
  using scale_type = typename detail::linear::PlanarTypes<F>::scale_type;  ///< planar formats

  Linear() = default;

  // ---- block formats (GGUF): rows of F::block_type ----

  /// Takes ownership of `blocks`: [out_features, in_features / F::block_elems], row-major.
  Linear(std::vector<block_type> blocks, std::size_t out_features,
         std::size_t in_features) requires(!planar)
      : out_(out_features), in_(in_features) {
    check_dims();
    auto held = std::make_shared<const std::vector<block_type>>(std::move(blocks));
    check_count("blocks", held->size(), out_ * (in_ / F::block_elems));
    data_.blocks = held->data();
    owner_ = std::move(held);
  }

  /// Views blocks held elsewhere (the caller keeps them alive, or passes their owner as
  /// `keep_alive`). blocks: [out_features, in_features / F::block_elems].
  static Linear view(std::span<const block_type> blocks, std::size_t out_features,
                     std::size_t in_features,
                     std::shared_ptr<const void> keep_alive = {}) requires(!planar) {
    Linear l(out_features, in_features);
    l.check_count("blocks", blocks.size(), l.out_ * (l.in_ / F::block_elems));
    l.data_.blocks = blocks.data();
    l.owner_ = std::move(keep_alive);
    return l;
  }

  /// Views the raw bytes of a tensor (e.g. GGUF tensor data in a mapped file): checks the byte
  /// count (ShapeError) and the alignment of the blocks (InputError).
  static Linear view_bytes(std::span<const std::byte> bytes, std::size_t out_features,
                           std::size_t in_features,
                           std::shared_ptr<const void> keep_alive = {}) requires(!planar) {
    Linear l(out_features, in_features);
    l.check_count("bytes", bytes.size(), l.out_ * (l.in_ / F::block_elems) * sizeof(block_type));
    l.data_.blocks = detail::linear::cast_bytes<block_type>(bytes, "the tensor data", F::id);
    l.owner_ = std::move(keep_alive);
    return l;
  }

  // ---- planar formats (native FP8_B128 / FP4_G32): codes and scales as in the checkpoint ----

  /// Takes ownership of the two checkpoint tensors: codes [out, F::codes_per_row(in)],
  /// scales [F::scale_rows(out), F::scale_cols(in)].
  Linear(std::vector<code_type> codes, std::vector<scale_type> scales, std::size_t out_features,
         std::size_t in_features) requires planar : out_(out_features),
                                                    in_(in_features) {
    check_dims();
    check_count("codes", codes.size(), out_ * F::codes_per_row(in_));
    check_count("scales", scales.size(), F::scale_rows(out_) * F::scale_cols(in_));
    auto held =
        std::make_shared<const PlanarHolder>(PlanarHolder{std::move(codes), std::move(scales)});
    data_.codes = held->codes.data();
    data_.scales = held->scales.data();
    owner_ = std::move(held);
  }

  /// Views the two checkpoint tensors held elsewhere (e.g. spans of a mapped safetensors file).
  static Linear view(std::span<const code_type> codes, std::span<const scale_type> scales,
                     std::size_t out_features, std::size_t in_features,
                     std::shared_ptr<const void> keep_alive = {}) requires planar {
    Linear l(out_features, in_features);
    l.check_count("codes", codes.size(), l.out_ * F::codes_per_row(l.in_));
    l.check_count("scales", scales.size(), F::scale_rows(l.out_) * F::scale_cols(l.in_));
    l.data_.codes = codes.data();
    l.data_.scales = scales.data();
    l.owner_ = std::move(keep_alive);
    return l;
  }

  /// Views the raw bytes of the two checkpoint tensors (FP8_B128: F8_E4M3 codes; FP4_G32: the
  /// packed bytes, I8 or F4 in the file; scales F8_E8M0).
  static Linear view_bytes(std::span<const std::byte> codes, std::span<const std::byte> scales,
                           std::size_t out_features, std::size_t in_features,
                           std::shared_ptr<const void> keep_alive = {}) requires planar {
    Linear l(out_features, in_features);
    l.check_count("code bytes", codes.size(), l.out_ * F::codes_per_row(l.in_) * sizeof(code_type));
    l.check_count("scale bytes", scales.size(),
                  F::scale_rows(l.out_) * F::scale_cols(l.in_) * sizeof(scale_type));
    l.data_.codes = detail::linear::cast_bytes<code_type>(codes, "the codes", F::id);
    l.data_.scales = detail::linear::cast_bytes<scale_type>(scales, "the scales", F::id);
    l.owner_ = std::move(keep_alive);
    return l;
  }

  // ---- quantisation ----

  /// Quantises w [out, in] into an owning Linear: block formats row by row with F::quantize
  /// (ggml's reference quantizers for GGUF types), the native formats with F::quantize_matrix
  /// (FP8_B128: one scale per 128x128 tile, the release's rule).
  static Linear quantize(ConstView2<float> w) requires QuantizableFormat<F> {
    Linear shape_only(w.rows, w.cols);  // validates in_features
    if constexpr (planar) {
      std::vector<code_type> codes(w.rows * F::codes_per_row(w.cols));
      std::vector<scale_type> scales(F::scale_rows(w.rows) * F::scale_cols(w.cols));
      F::quantize_matrix(w, codes.data(), scales.data());
      return Linear(std::move(codes), std::move(scales), w.rows, w.cols);
    } else {
      const std::size_t nb = w.cols / F::block_elems;
      std::vector<block_type> blocks(w.rows * nb);
      for (std::size_t r = 0; r < w.rows; ++r) {
        for (std::size_t b = 0; b < nb; ++b) {
          F::quantize(w.row(r) + b * F::block_elems, blocks[r * nb + b]);
        }
      }
      return Linear(std::move(blocks), w.rows, w.cols);
    }
  }

  // ---- access ----

  std::size_t in_features() const noexcept { return in_; }
  std::size_t out_features() const noexcept { return out_; }
  /// Blocks per row, in_features / F::block_elems.
  std::size_t row_blocks() const noexcept { return in_ / F::block_elems; }
  /// True when the bytes belong to this Linear (and its copies), false for a view.
  bool owns_bytes() const noexcept { return owner_ != nullptr && !viewed_; }
  /// How llama.cpp would multiply this weight (GgmlRepack::none unless set by `repacked`).
  GgmlRepack repack() const noexcept { return repack_; }

  /// This weight multiplied as llama.cpp's CPU backend does after repacking it (`how`: as a 2-D
  /// mul_mat or as an expert of a mul_mat_id; none: vec_dot again): the same bytes, products in
  /// F::dot_repacked's orders. ggml repacks weights whose row count is a multiple of 8 only;
  /// ShapeError for another.
  Linear repacked(GgmlRepack how) const
      requires(std::same_as<S, PartnerDot>&& RepackedDotFormat<F>) {
    DSV4_CHECK(how == GgmlRepack::none || out_ % 8 == 0, ShapeError,
               "Linear<{}>: llama.cpp repacks weights of a multiple of 8 rows only, not [{}, {}]",
               F::name, out_, in_);
    Linear l = *this;
    l.repack_ = how;
    return l;
  }

  /// PartnerDot: the dot of row `w` of this weight (its row_blocks() blocks) with activation row
  /// `row` of a call of `rows` rows, quantized (`a`): partner_dot, or F::dot_repacked with the
  /// kernel llama.cpp uses for that row when the weight is repacked.
  float row_dot(const block_type* w, const typename F::activation::block_type* a, std::size_t row,
                std::size_t rows) const noexcept requires std::same_as<S, PartnerDot> {
    if constexpr (RepackedDotFormat<F>) {
      if (repack_ != GgmlRepack::none)
        return F::dot_repacked(w, a, row_blocks(), repack_kernel(repack_, row, rows));
    }
    return partner_dot<F>(w, a, row_blocks());
  }

  /// The blocks (block formats): [out, in / block_elems].
  std::span<const block_type> blocks() const noexcept requires(!planar) {
    return {data_.blocks, out_ * row_blocks()};
  }
  /// The codes tensor (planar formats): [out, F::codes_per_row(in)].
  std::span<const code_type> codes() const noexcept requires planar {
    return {data_.codes, out_ * F::codes_per_row(in_)};
  }
  /// The scales tensor (planar formats): [F::scale_rows(out), F::scale_cols(in)].
  std::span<const scale_type> scales() const noexcept requires planar {
    return {data_.scales, F::scale_rows(out_) * F::scale_cols(in_)};
  }

  /// Rows first … first+count-1 of W as a Linear of its own: a view of the same bytes, which it
  /// keeps alive as this Linear does (the groups of `wo_a`). Planar formats need whole scale
  /// tiles: `first` a multiple of F::block_rows and count one too, or the rows running to the
  /// end. Throws ShapeError otherwise.
  Linear rows(std::size_t first, std::size_t count) const {
    DSV4_CHECK(first <= out_ && count <= out_ - first, ShapeError,
               "Linear<{}>: rows {}..{} of a [{}, {}] weight", F::name, first, first + count, out_,
               in_);
    Linear l(count, in_);
    l.owner_ = owner_;
    l.repack_ = repack_;
    if constexpr (planar) {
      DSV4_CHECK(
          first % F::block_rows == 0 && (count % F::block_rows == 0 || first + count == out_),
          ShapeError, "Linear<{}>: rows {}..{} of a [{}, {}] weight cut its {}-row scale tiles",
          F::name, first, first + count, out_, in_, F::block_rows);
      l.data_.codes = data_.codes + first * F::codes_per_row(in_);
      l.data_.scales = data_.scales + first / F::block_rows * F::scale_cols(in_);
    } else {
      l.data_.blocks = data_.blocks + first * row_blocks();
    }
    return l;
  }

  /// Block b of row o (planar formats: assembled from the codes and the scale of its tile).
  block_type block(std::size_t o, std::size_t b) const noexcept {
    if constexpr (planar) {
      block_type blk{};
      F::load_block(data_.codes + o * F::codes_per_row(in_) + b * F::block_codes,
                    data_.scales + (o / F::block_rows) * F::scale_cols(in_) + b, blk);
      return blk;
    } else {
      return data_.blocks[o * row_blocks() + b];
    }
  }

  /// Writes row o of W, dequantised: out[in_features].
  void dequantize_row(std::size_t o, float* out) const noexcept {
    for (std::size_t b = 0; b < row_blocks(); ++b) {
      F::dequantize(block(o, b), out + b * F::block_elems);
    }
  }

  /// y [rows, out] = x [rows, in] W^T with the semantics S, each output rounded by N::round.
  /// (The FP8/FP4 activation simulation switch of N does not apply here: quantising the input of
  /// a native-format GEMM is part of the GEMM itself, formats.md §9.6.)
  template <NumericsPolicy N>
  void forward(ConstView2<float> x, View2<float> y) const {
    check_linear_shapes("Linear", in_, out_, x, y);
    const std::size_t nb = row_blocks();
    if constexpr (std::same_as<S, PartnerDot>) {
      using A = typename F::activation;
      const std::size_t na = in_ / A::block_elems;
      ScratchBuffer<typename A::block_type> xq(x.rows * na);  // [rows, na]
      for (std::size_t r = 0; r < x.rows; ++r) {
        for (std::size_t j = 0; j < na; ++j)
          partner_quantize<A>(x.row(r) + j * A::block_elems, xq[r * na + j]);
      }
      ScratchBuffer<block_type> gathered(planar ? nb : 0);  // one row of assembled native blocks
      for (std::size_t o = 0; o < out_; ++o) {
        const block_type* w = row_of_blocks(o, gathered.data());
        for (std::size_t r = 0; r < x.rows; ++r)
          y(r, o) = N::round(row_dot(w, xq.data() + r * na, r, x.rows));
      }
    } else {
      // one dequantised row (an F32 weight is read in place: its values are the floats)
      ScratchBuffer<float> row(std::same_as<F, F32> ? 0 : in_);
      for (std::size_t o = 0; o < out_; ++o) {
        const float* w;
        if constexpr (std::same_as<F, F32>) {
          static_assert(sizeof(block_type) == sizeof(float));
          w = reinterpret_cast<const float*>(data_.blocks + o * in_);
        } else {
          dequantize_row(o, row.data());
          w = row.data();
        }
        for (std::size_t r = 0; r < x.rows; ++r) {
          const float* xr = x.row(r);
          float acc = 0.0f;
          for (std::size_t k = 0; k < in_; ++k) acc += xr[k] * w[k];
          y(r, o) = N::round(acc);
        }
      }
    }
  }

 private:
  struct PlanarHolder {
    std::vector<code_type> codes;
    std::vector<scale_type> scales;
  };

  // A shape-checked Linear without bytes yet; `viewed_` marks a view.
  Linear(std::size_t out_features, std::size_t in_features)
      : out_(out_features), in_(in_features), viewed_(true) {
    check_dims();
  }

  void check_dims() const {
    std::size_t need = F::block_elems;
    if constexpr (std::same_as<S, PartnerDot>) {
      need = std::max(need, F::activation::block_elems);  // all block sizes are powers of two
    }
    DSV4_CHECK(in_ % need == 0, ShapeError,
               "Linear<{}, {}>: in_features must be a multiple of {} ({} blocks{}), got [{}, {}]",
               F::name, S::name, need, F::name,
               std::same_as<S, PartnerDot> ? " and the activation's blocks" : "", out_, in_);
  }

  void check_count(const char* what, std::size_t got, std::size_t want) const {
    DSV4_CHECK(got == want, ShapeError, "Linear<{}>: a [{}, {}] weight needs {} {}, got {}",
               F::name, out_, in_, want, what, got);
  }

  // The blocks of row o: in place for block formats, assembled into `scratch` for planar ones.
  const block_type* row_of_blocks(std::size_t o, block_type* scratch) const noexcept {
    if constexpr (planar) {
      for (std::size_t b = 0; b < row_blocks(); ++b) scratch[b] = block(o, b);
      return scratch;
    } else {
      (void)scratch;
      return data_.blocks + o * row_blocks();
    }
  }

  detail::linear::Storage<F> data_{};
  std::shared_ptr<const void> owner_;  // owned bytes, or the keep-alive of a view (may be null)
  std::size_t out_ = 0;
  std::size_t in_ = 0;
  bool viewed_ = false;
  GgmlRepack repack_ = GgmlRepack::none;
};

// ---------------------------------------------------------------------------------------------
// AnyLinear: a weight whose format is chosen per tensor at run time
// ---------------------------------------------------------------------------------------------

/// The formats a Linear can hold as a weight: every format with a dot (activation-only formats
/// Q8_1, Q8_K and FP8_ACT128 are not weights).
using LinearFormats = type_list<F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
                                Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, Fp8B128, Fp4G32>;

namespace detail::linear {
template <class S, class L>
struct linears_of;
template <class S, class... Fs>
struct linears_of<S, type_list<Fs...>> {
  using type = type_list<Linear<Fs, S>...>;
};
}  // namespace detail::linear

/// Linear<F, S> for every F of LinearFormats.
template <class S>
using LinearTypes = typename detail::linear::linears_of<S, LinearFormats>::type;

template <class List>
class AnyLinearOf;

/// One of the Linear types of `type_list<Ls...>`, chosen at run time (std::variant); satisfies
/// LinearOp, so a model can mix formats per tensor (the official checkpoint: FP8_B128 dense and
/// FP4_G32 experts with BF16 `wo_a`; a GGUF Q4_K_M file: Q4_K with some tensors at Q6_K).
template <class... Ls>
class AnyLinearOf<type_list<Ls...>> {
 public:
  using variant_type = std::variant<Ls...>;

  /// An empty [0, 0] weight of the first type.
  AnyLinearOf() = default;
  /// Holds `l` (implicit: a Linear converts to an AnyLinear).
  template <class L>
  requires(std::same_as<std::remove_cvref_t<L>, Ls> || ...) AnyLinearOf(L&& l)
      : v_(std::forward<L>(l)) {}  // NOLINT(google-explicit-constructor)

  std::size_t in_features() const noexcept {
    return std::visit([](const auto& l) { return l.in_features(); }, v_);
  }
  std::size_t out_features() const noexcept {
    return std::visit([](const auto& l) { return l.out_features(); }, v_);
  }
  /// The held weight's storage format.
  FormatId format_id() const noexcept {
    return std::visit([](const auto& l) { return std::remove_cvref_t<decltype(l)>::format::id; },
                      v_);
  }
  /// The held weight's semantics policy name ("partner-dot" or "dequant-dot").
  std::string_view semantics_name() const noexcept {
    return std::visit(
        [](const auto& l) { return std::remove_cvref_t<decltype(l)>::semantics::name; }, v_);
  }
  /// True when the held weight owns its bytes, false for a view (Linear::owns_bytes).
  bool owns_bytes() const noexcept {
    return std::visit([](const auto& l) { return l.owns_bytes(); }, v_);
  }
  template <class L>
  bool holds() const noexcept {
    return std::holds_alternative<L>(v_);
  }
  /// The held Linear; throws std::bad_variant_access for another type.
  template <class L>
  const L& get() const {
    return std::get<L>(v_);
  }
  const variant_type& variant() const noexcept { return v_; }

  template <NumericsPolicy N>
  void forward(ConstView2<float> x, View2<float> y) const {
    std::visit([&](const auto& l) { l.template forward<N>(x, y); }, v_);
  }
  /// Rows first … first+count-1 as a weight of their own (Linear::rows: a view of the same
  /// bytes).
  AnyLinearOf rows(std::size_t first, std::size_t count) const {
    return std::visit([&](const auto& l) { return AnyLinearOf(l.rows(first, count)); }, v_);
  }
  /// Writes row o of the weight, dequantised: out[in_features()] (an embedding lookup).
  void dequantize_row(std::size_t o, float* out) const {
    std::visit([&](const auto& l) { l.dequantize_row(o, out); }, v_);
  }

 private:
  variant_type v_;
};

/// Any weight format with either semantics.
using AnyLinear = AnyLinearOf<type_list_concat_t<LinearTypes<PartnerDot>, LinearTypes<DequantDot>>>;

/// An owned float32 weight [out_features, in_features] (row-major `w`, copied) with
/// DenseLinear<float>'s products: the AnyLinear alternative for a weight made in code (a router's
/// gate, a test's projection).
inline Linear<F32, DequantDot> f32_linear(std::span<const float> w, std::size_t out_features,
                                          std::size_t in_features) {
  DSV4_CHECK(w.size() == out_features * in_features, ShapeError,
             "f32_linear: {} values for a [{}, {}] weight", w.size(), out_features, in_features);
  return Linear<F32, DequantDot>::quantize(ConstView2<float>(w.data(), out_features, in_features));
}

/// A view of a block-format tensor chosen by its FormatId (what a GGUF reader has): throws
/// FormatError for ids that are not weight formats or are native (planar) ones, and what
/// Linear<F, S>::view_bytes throws otherwise.
template <class S = PartnerDot>
AnyLinear any_linear_view(FormatId id, std::span<const std::byte> bytes, std::size_t out_features,
                          std::size_t in_features, std::shared_ptr<const void> keep_alive = {}) {
  return visit_format(id, [&]<class F>() -> AnyLinear {
    if constexpr (type_list_contains_v<LinearFormats, F> && !PlanarFormat<F>) {
      return Linear<F, S>::view_bytes(bytes, out_features, in_features, std::move(keep_alive));
    } else {
      throw FormatError(
          fmt::format("any_linear_view: {} is {}; pass {}", F::name,
                      PlanarFormat<F> ? "a native format stored as codes and scales"
                                      : "an activation format, not a weight format",
                      PlanarFormat<F> ? "the codes and the scales tensors" : "a weight tensor"));
    }
  });
}

/// A view of a native-format weight (codes and scales tensors) chosen by its FormatId (what a
/// safetensors reader derives from the dtypes): throws FormatError for non-native ids.
template <class S = PartnerDot>
AnyLinear any_linear_view(FormatId id, std::span<const std::byte> codes,
                          std::span<const std::byte> scales, std::size_t out_features,
                          std::size_t in_features, std::shared_ptr<const void> keep_alive = {}) {
  return visit_format(id, [&]<class F>() -> AnyLinear {
    if constexpr (type_list_contains_v<LinearFormats, F> && PlanarFormat<F>) {
      return Linear<F, S>::view_bytes(codes, scales, out_features, in_features,
                                      std::move(keep_alive));
    } else {
      throw FormatError(fmt::format(
          "any_linear_view: {} is not a native weight format (FP8_B128 or FP4_G32); a block "
          "format takes one tensor of blocks",
          F::name));
    }
  });
}

static_assert(LinearOp<Linear<Fp8B128>> && LinearOp<Linear<Q4_K, DequantDot>>);
static_assert(LinearOp<AnyLinear>);

}  // namespace dsv4
