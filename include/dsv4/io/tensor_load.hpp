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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/layers/linear.hpp"

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

}  // namespace dsv4::io
