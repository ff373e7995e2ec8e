// Loading named weights from a tensor source (one safetensors file, or a checkpoint of several)
// with every tensor validated: present, a dtype the destination can hold, the expected shape.
// Errors are FormatError naming the source, the tensor, what was expected and what was found.
//
// Spec: spec/formats.md §9.2 (stored dtypes), §10.1 (reference tensor names).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/safetensors.hpp"

namespace dsv4::io {

/// Anything that maps tensor names to validated safetensors entries: `SafetensorsFile`, or a
/// checkpoint made of several files.
template <class S>
concept TensorSource = requires(const S& s, std::string_view name) {
  { s.has(name) } -> std::convertible_to<bool>;
  { s.info(name) } -> std::convertible_to<const TensorInfo&>;
  { s.to_float(name) } -> std::convertible_to<std::vector<float>>;
  { s.label() } -> std::convertible_to<std::string>;
};

/// "[a, b, c]".
inline std::string shape_string(std::span<const std::uint64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

/// The entry of `name`, checked for presence and shape; throws FormatError otherwise.
template <TensorSource S>
const TensorInfo& expect_tensor(const S& src, std::string_view name,
                                std::span<const std::uint64_t> shape) {
  DSV4_CHECK(src.has(name), FormatError, "{}: tensor '{}' is missing (expected shape {})",
             src.label(), name, shape_string(shape));
  const TensorInfo& ti = src.info(name);
  const bool same = ti.shape.size() == shape.size() &&
                    std::equal(ti.shape.begin(), ti.shape.end(), shape.begin());
  DSV4_CHECK(same, FormatError, "{}: tensor '{}': expected shape {}, found {}", src.label(), name,
             shape_string(shape), shape_string(ti.shape));
  return ti;
}

template <TensorSource S>
const TensorInfo& expect_tensor(const S& src, std::string_view name,
                                std::initializer_list<std::uint64_t> shape) {
  return expect_tensor(src, name, std::span<const std::uint64_t>(shape.begin(), shape.size()));
}

/// Whether `t` is a plain (unscaled) floating storage type.
constexpr bool is_plain_float(DType t) noexcept {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F64;
}

/// A plain floating tensor (F32, BF16, F16, F64) of the given shape, widened to float.
template <TensorSource S>
std::vector<float> load_float(const S& src, std::string_view name,
                              std::initializer_list<std::uint64_t> shape) {
  const TensorInfo& ti = expect_tensor(src, name, shape);
  DSV4_CHECK(is_plain_float(ti.dtype), FormatError,
             "{}: tensor '{}': expected a plain floating dtype (F32, BF16, F16), found {}; "
             "quantised weights need a quantised linear type",
             src.label(), name, dtype_name(ti.dtype));
  return src.to_float(name);
}

/// A plain floating tensor stored as bf16. F32/F16/F64 sources are accepted only when every value
/// is exactly a bf16 value (as in checkpoints that widen bf16 weights); otherwise FormatError.
template <TensorSource S>
std::vector<bf16> load_bf16(const S& src, std::string_view name,
                            std::initializer_list<std::uint64_t> shape) {
  const std::vector<float> f = load_float(src, name, shape);
  std::vector<bf16> out(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) {
    out[i] = bf16(f[i]);
    DSV4_CHECK(out[i].to_float() == f[i] || f[i] != f[i], FormatError,
               "{}: tensor '{}': element {} = {} is not a bf16 value (dtype {}); hold this "
               "weight as float instead",
               src.label(), name, i, f[i], dtype_name(src.info(name).dtype));
  }
  return out;
}

/// An integer index tensor (I32 or I64) of the given shape as int32 (I64 values must fit).
template <TensorSource S>
std::vector<std::int32_t> load_index(const S& src, std::string_view name,
                                     std::initializer_list<std::uint64_t> shape) {
  const TensorInfo& ti = expect_tensor(src, name, shape);
  const auto n = static_cast<std::size_t>(ti.elements);
  std::vector<std::int32_t> out(n);
  if (ti.dtype == DType::I32) {
    std::memcpy(out.data(), ti.bytes.data(), n * sizeof(std::int32_t));
  } else if (ti.dtype == DType::I64) {
    for (std::size_t i = 0; i < n; ++i) {
      std::int64_t v = 0;
      std::memcpy(&v, ti.bytes.data() + i * sizeof(v), sizeof(v));
      DSV4_CHECK(v >= INT32_MIN && v <= INT32_MAX, FormatError,
                 "{}: tensor '{}': element {} = {} does not fit in 32 bits", src.label(), name, i,
                 v);
      out[i] = static_cast<std::int32_t>(v);
    }
  } else {
    throw FormatError(fmt::format("{}: tensor '{}': expected dtype I32 or I64, found {}",
                                  src.label(), name, dtype_name(ti.dtype)));
  }
  return out;
}

/// How a linear type is loaded from `<name>` (the ".weight" tensor, plus its companions such as
/// ".scale" for quantised formats). Specialise for new LinearOp types.
template <class L>
struct LinearLoader;

template <>
struct LinearLoader<DenseLinear<float>> {
  template <TensorSource S>
  static DenseLinear<float> load(const S& src, std::string_view weight_name, std::size_t out,
                                 std::size_t in) {
    return {load_float(src, weight_name, {out, in}), out, in};
  }
};

template <>
struct LinearLoader<DenseLinear<bf16>> {
  template <TensorSource S>
  static DenseLinear<bf16> load(const S& src, std::string_view weight_name, std::size_t out,
                                std::size_t in) {
    return {load_bf16(src, weight_name, {out, in}), out, in};
  }
};

// ---- Linear<F, S> and AnyLinear from checkpoint tensors (zero-copy where the bytes allow) ----

namespace detail::load {

/// An owner of the bytes of `name` when the source can give one (io::Checkpoint::keep_alive);
/// otherwise none, and the caller keeps the source alive while the views are used.
template <TensorSource S>
std::shared_ptr<const void> owner_of(const S& src, std::string_view name) {
  if constexpr (requires {
                  { src.keep_alive(name) } -> std::convertible_to<std::shared_ptr<const void>>;
                }) {
    return src.keep_alive(name);
  } else {
    return {};
  }
}

/// The formats a safetensors tensor holds one to one (one value per element).
template <class F>
inline constexpr bool plain_format =
    std::is_same_v<F, F32> || std::is_same_v<F, F16> || std::is_same_v<F, BF16>;

template <class F>
constexpr DType plain_dtype() noexcept {
  if constexpr (std::is_same_v<F, F32>)
    return DType::F32;
  else if constexpr (std::is_same_v<F, F16>)
    return DType::F16;
  else
    return DType::BF16;
}

/// The scales of a native weight: viewed in place when stored as F8_E8M0, converted from F32
/// (each value must be a power of two in E8M0's range) into `converted` otherwise.
template <TensorSource S>
std::span<const std::byte> native_scales(const S& src, const std::string& name,
                                         std::initializer_list<std::uint64_t> shape,
                                         std::string_view weight_name, std::string_view fmt_name,
                                         std::vector<ue8m0>& converted) {
  DSV4_CHECK(src.has(name), FormatError,
             "{}: tensor '{}' is a {} weight but its scales '{}' (shape {}) are missing",
             src.label(), weight_name, fmt_name, name,
             shape_string(std::span<const std::uint64_t>(shape.begin(), shape.size())));
  const TensorInfo& si = expect_tensor(src, name, shape);
  if (si.dtype == DType::F8_E8M0) return si.bytes;
  DSV4_CHECK(si.dtype == DType::F32, FormatError,
             "{}: tensor '{}': expected dtype F8_E8M0 (or F32 powers of two), found {}",
             src.label(), name, dtype_name(si.dtype));
  const std::vector<float> v = src.to_float(name);
  converted.resize(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    converted[i] = ue8m0::from_float(v[i]);
    DSV4_CHECK(converted[i].to_float() == v[i], FormatError,
               "{}: tensor '{}': element {} = {} is not a power of two in E8M0's range",
               src.label(), name, i, v[i]);
  }
  return std::as_bytes(std::span<const ue8m0>(converted));
}

}  // namespace detail::load

/// Linear<F, S> from a checkpoint, viewing the mapped bytes (the source's keep_alive, when it has
/// one, keeps them alive):
///  * FP8_B128: "<p>.weight" F8_E4M3 [out, in] with "<p>.scale" F8_E8M0 [ceil(out/128),
///    ceil(in/128)] (formats.md §9.3);
///  * FP4_G32: "<p>.weight" packed E2M1, as I8/U8 [out, in/2] (the release) or F4 [out, in] (a
///    converted file), with "<p>.scale" F8_E8M0 [out, in/32] (§9.4);
///  * F32, F16, BF16: a tensor of that dtype is viewed (copied only when its data is not aligned);
///    another plain floating dtype is converted when every value is exact in F.
/// Scales stored as F32 (exact powers of two) are converted and owned by the Linear. Block
/// formats of GGUF files are not stored in safetensors checkpoints (dsv4 quantize makes them).
template <QuantFormat F, class Sem>
struct LinearLoader<Linear<F, Sem>> {
  using L = Linear<F, Sem>;

  template <TensorSource S>
  static L load(const S& src, std::string_view weight_name, std::size_t out, std::size_t in) {
    static_assert(PlanarFormat<F> || detail::load::plain_format<F>,
                  "LinearLoader: a safetensors checkpoint holds F32/F16/BF16 and the native "
                  "FP8_B128/FP4_G32 weights only");
    if constexpr (PlanarFormat<F>) {
      return load_native(src, weight_name, out, in);
    } else {
      return load_plain(src, weight_name, out, in);
    }
  }

 private:
  template <TensorSource S>
  static L load_native(const S& src, std::string_view weight_name, std::size_t out,
                       std::size_t in) {
    DSV4_CHECK(src.has(weight_name), FormatError,
               "{}: tensor '{}' is missing (a [{}, {}] {} weight)", src.label(), weight_name, out,
               in, F::name);
    const TensorInfo& wi = src.info(weight_name);
    std::vector<std::uint64_t> scale_shape;
    if constexpr (std::is_same_v<F, Fp8B128>) {
      DSV4_CHECK(wi.dtype == DType::F8_E4M3, FormatError,
                 "{}: tensor '{}': Linear<{}> needs F8_E4M3 codes, found {} (load a {} weight as "
                 "DenseLinear or AnyLinear)",
                 src.label(), weight_name, F::name, dtype_name(wi.dtype), dtype_name(wi.dtype));
      expect_tensor(src, weight_name, {out, in});
    } else {
      static_assert(std::is_same_v<F, Fp4G32>);
      DSV4_CHECK(in % F::block_elems == 0, ShapeError,
                 "{}: tensor '{}': an FP4_G32 weight needs in_features divisible by {}, got [{}, "
                 "{}]",
                 src.label(), weight_name, F::block_elems, out, in);
      if (wi.dtype == DType::I8 || wi.dtype == DType::U8) {
        expect_tensor(src, weight_name, {out, in / 2});
      } else {
        DSV4_CHECK(wi.dtype == DType::F4, FormatError,
                   "{}: tensor '{}': Linear<{}> needs packed E2M1 codes (I8 or U8 [out, in/2], or "
                   "F4 [out, in]), found {}",
                   src.label(), weight_name, F::name, dtype_name(wi.dtype));
        expect_tensor(src, weight_name, {out, in});
      }
    }
    const std::string sname = tensor_names::scale_of(weight_name);
    auto converted = std::make_shared<std::vector<ue8m0>>();
    const std::span<const std::byte> scales = detail::load::native_scales(
        src, sname, {F::scale_rows(out), F::scale_cols(in)}, weight_name, F::name, *converted);
    std::shared_ptr<const void> owner = detail::load::owner_of(src, weight_name);
    if (!converted->empty()) {
      // The Linear keeps both the converted scales and the mapping of the codes alive.
      owner = std::make_shared<
          const std::pair<std::shared_ptr<std::vector<ue8m0>>, std::shared_ptr<const void>>>(
          converted, std::move(owner));
    }
    return L::view_bytes(wi.bytes, scales, out, in, std::move(owner));
  }

  template <TensorSource S>
  static L load_plain(const S& src, std::string_view weight_name, std::size_t out, std::size_t in) {
    using B = typename F::block_type;
    const TensorInfo& wi = expect_tensor(src, weight_name, {out, in});
    if (wi.dtype == detail::load::plain_dtype<F>()) {
      if (reinterpret_cast<std::uintptr_t>(wi.bytes.data()) % alignof(B) == 0) {
        return L::view_bytes(wi.bytes, out, in, detail::load::owner_of(src, weight_name));
      }
      std::vector<B> copy(out * in);  // unaligned data: one copy
      std::memcpy(copy.data(), wi.bytes.data(), wi.bytes.size());
      return L(std::move(copy), out, in);
    }
    DSV4_CHECK(is_plain_float(wi.dtype), FormatError,
               "{}: tensor '{}': Linear<{}> needs a plain floating tensor, found {} (a quantised "
               "weight loads as its native Linear or AnyLinear)",
               src.label(), weight_name, F::name, dtype_name(wi.dtype));
    const std::vector<float> v = src.to_float(weight_name);
    std::vector<B> blocks(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      F::quantize(&v[i], blocks[i]);
      float back = 0.f;
      F::dequantize(blocks[i], &back);
      DSV4_CHECK(back == v[i] || v[i] != v[i], FormatError,
                 "{}: tensor '{}': element {} = {} ({}) is not exactly a {} value", src.label(),
                 weight_name, i, v[i], dtype_name(wi.dtype), F::name);
    }
    return L(std::move(blocks), out, in);
  }
};

/// AnyLinear (or any AnyLinearOf) from a checkpoint: the format follows the stored dtype, with
/// the reference's semantics: F8_E4M3 + scale -> Linear<FP8_B128, PartnerDot> and I8/U8/F4 +
/// scale -> Linear<FP4_G32, PartnerDot> (act_quant then fp8_gemm / fp4_gemm); BF16, F16, F32 ->
/// Linear<BF16 / F16 / F32, DequantDot> (F.linear's fp32 accumulation, = DenseLinear). Throws
/// FormatError for other dtypes, or when the list lacks the alternative the dtype needs.
template <class... Ls>
struct LinearLoader<AnyLinearOf<type_list<Ls...>>> {
  using Any = AnyLinearOf<type_list<Ls...>>;

  template <TensorSource S>
  static Any load(const S& src, std::string_view weight_name, std::size_t out, std::size_t in) {
    DSV4_CHECK(src.has(weight_name), FormatError, "{}: tensor '{}' is missing (a [{}, {}] weight)",
               src.label(), weight_name, out, in);
    switch (src.info(weight_name).dtype) {
      case DType::F8_E4M3:
        return pick<Linear<Fp8B128, PartnerDot>>(src, weight_name, out, in);
      case DType::I8:
      case DType::U8:
      case DType::F4:
        return pick<Linear<Fp4G32, PartnerDot>>(src, weight_name, out, in);
      case DType::BF16:
        return pick<Linear<BF16, DequantDot>>(src, weight_name, out, in);
      case DType::F16:
        return pick<Linear<F16, DequantDot>>(src, weight_name, out, in);
      case DType::F32:
        return pick<Linear<F32, DequantDot>>(src, weight_name, out, in);
      default:
        throw FormatError(fmt::format(
            "{}: tensor '{}': dtype {} is not a weight format (expected F8_E4M3, I8/F4, BF16, "
            "F16 or F32)",
            src.label(), weight_name, dtype_name(src.info(weight_name).dtype)));
    }
  }

 private:
  template <class L, TensorSource S>
  static Any pick(const S& src, std::string_view weight_name, std::size_t out, std::size_t in) {
    if constexpr ((std::is_same_v<L, Ls> || ...)) {
      return Any(LinearLoader<L>::load(src, weight_name, out, in));
    } else {
      throw FormatError(fmt::format(
          "{}: tensor '{}' is stored as {}, which needs Linear<{}, {}>; this AnyLinearOf does not "
          "list it",
          src.label(), weight_name, dtype_name(src.info(weight_name).dtype), L::format::name,
          L::semantics::name));
    }
  }
};

/// Loads a [out, in] projection named `weight_name` as the linear type L. A source that stores
/// weights in formats only it can view (a GGUF file: io::GgufModel) provides
/// `src.load_linear<L>(name, out, in)`, which is used instead of LinearLoader<L>.
template <class L, TensorSource S>
L load_linear(const S& src, std::string_view weight_name, std::size_t out, std::size_t in) {
  if constexpr (requires { src.template load_linear<L>(weight_name, out, in); }) {
    return src.template load_linear<L>(weight_name, out, in);
  } else {
    return LinearLoader<L>::load(src, weight_name, out, in);
  }
}

/// For a source whose weights compute with llama.cpp's dot products (io::GgufModel with
/// partner-dot semantics): `weight_name` [out, in] as a view in its stored format, whose product
/// quantizes the activation to the format's vec_dot partner as ggml's mul_mat does (an F16 weight
/// gets the activation rounded to f16: layer 0's wo_a and wo_b of llama.cpp's F16 file, within
/// 1.2e-7 of f16-rounded products, 2e-4 of unrounded ones; F32 and F16 sum in llama.cpp's float
/// GEMM order, F32::dot_x86: the router gate of llama.cpp's Q8_0 file, all 4,800 logits of layer 0
/// bit for bit, against 9 % with an ascending fp32 sum). std::nullopt for any other source (the
/// model then uses its float copy).
template <TensorSource S>
std::optional<AnyLinear> load_partner_view(const S& src, const std::string& weight_name,
                                           std::size_t out, std::size_t in) {
  if constexpr (requires {
                  src.semantics() == decltype(src.semantics())::partner_dot;
                  src.stored_type(weight_name) == FormatId::f32;
                }) {
    if (src.semantics() == decltype(src.semantics())::partner_dot) {
      return load_linear<AnyLinear>(src, weight_name, out, in);
    }
  }
  return std::nullopt;
}

/// A weight the model applies with float32 products (the head, the compressors' wkv / wgate, the
/// indexer's weights_proj, the routers' gates, wo_a), held in its stored format and never copied
/// to float: Linear<stored format, DequantDot> over the source's bytes, whose outputs are the
/// float32 sums over the dequantised row in ascending k (what a float copy gives, bit for bit);
/// for a GGUF read with llama.cpp's dot products, the partner view (load_partner_view) where the
/// format has one. A checkpoint's tensor is F32, BF16 or F16 (viewed) or F64 (converted once to
/// F32), as load_float accepts; a GGUF block type behind another source (QuantizingSource) is
/// converted once to F32 too.
template <TensorSource S>
AnyLinear load_float_product(const S& src, const std::string& weight_name, std::size_t out,
                             std::size_t in) {
  if (std::optional<AnyLinear> p = load_partner_view(src, weight_name, out, in))
    return *std::move(p);
  if constexpr (requires {
                  src.semantics();
                  src.stored_type(weight_name);
                }) {
    // a GGUF file: its stored type with dequant-dot semantics, viewed in the mapping
    const auto any =
        src.template load_linear<AnyLinearOf<LinearTypes<DequantDot>>>(weight_name, out, in);
    return std::visit([](const auto& l) { return AnyLinear(l); }, any.variant());
  } else {
    const TensorInfo& ti = expect_tensor(src, weight_name, {out, in});
    if (!ti.bytes.empty()) {
      switch (ti.dtype) {
        case DType::F32:
        case DType::BF16:
        case DType::F16:
          return load_linear<AnyLinear>(src, weight_name, out, in);
        default:
          break;
      }
    }
    const std::vector<float> v = load_float(src, weight_name, {out, in});
    return Linear<F32, DequantDot>::quantize(ConstView2<float>(v.data(), out, in));
  }
}

}  // namespace dsv4::io
