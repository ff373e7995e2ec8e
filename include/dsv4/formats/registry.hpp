// The list of storage formats and the single runtime→type bridge, `visit_format`.
//
// Spec: spec/formats.md §10.3 (GGUF tensor types); STYLE.md §2.3 (one runtime→type bridge,
// gemma.cpp's CallUpcasted). The GGUF reader/writer, the backends and the tests all read
// `AllFormats`; nothing else switches on a FormatId.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "dsv4/core/error.hpp"
#include "dsv4/core/type_list.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/f16.hpp"
#include "dsv4/formats/f32.hpp"
#include "dsv4/formats/iq4.hpp"
#include "dsv4/formats/k_quants.hpp"
#include "dsv4/formats/mxfp4.hpp"
#include "dsv4/formats/native.hpp"
#include "dsv4/formats/q4_0.hpp"
#include "dsv4/formats/q5.hpp"
#include "dsv4/formats/q8_0.hpp"

namespace dsv4 {

/// Every GGUF block format dsv4 reads and writes, in ggml type-id order.
using GgufFormats = type_list<F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K,
                              Q6_K, Q8_K, IQ4_NL, IQ4_XS, BF16, MXFP4>;

/// The native DeepSeek-V4 checkpoint formats and their activation partner (dsv4 ids from 1000).
using NativeFormats = type_list<Fp8B128, Fp4G32, Fp8Act128>;

/// Every storage format with a FormatId: the GGUF formats, then the native ones.
using AllFormats = type_list_concat_t<GgufFormats, NativeFormats>;

namespace detail {
template <class Fn, class F, class... Rest>
decltype(auto) visit_format_in(FormatId id, Fn& fn) {
  if (id == F::id) return fn.template operator()<F>();
  if constexpr (sizeof...(Rest) > 0) {
    return visit_format_in<Fn, Rest...>(id, fn);
  } else {
    throw FormatError(fmt::format(
        "visit_format: format id {} is not one of dsv4's storage formats (GGUF/ggml type ids "
        "0-39 that dsv4 implements, or dsv4 ids from 1000); the tensor uses a type dsv4 cannot "
        "read",
        static_cast<std::uint32_t>(id)));
  }
}
template <class Fn, class... Fs>
decltype(auto) visit_format_list(FormatId id, Fn& fn, type_list<Fs...>*) {
  return visit_format_in<Fn, Fs...>(id, fn);
}
}  // namespace detail

/// Calls `fn.template operator()<F>()` with the format F of `AllFormats` whose `F::id == id`
/// and returns its result (every instantiation must return the same type).
/// Throws FormatError when no format has that id.
template <class Fn>
decltype(auto) visit_format(FormatId id, Fn&& fn) {
  return detail::visit_format_list(id, fn, static_cast<AllFormats*>(nullptr));
}

/// Static facts of a format, for code that only has its id (GGUF tensor sizes, listings).
struct FormatInfo {
  FormatId id;
  std::string_view name;    ///< GGUF spelling, e.g. "Q4_K"
  std::size_t block_elems;  ///< values per block
  std::size_t block_bytes;  ///< bytes per block (native formats: their self-contained row-segment
                            ///< blocks; the checkpoint keeps codes and scales apart, native.hpp)
};

/// Facts of the format with this id; throws FormatError for an unknown id.
inline FormatInfo format_info(FormatId id) {
  return visit_format(id, []<class F>() {
    return FormatInfo{F::id, F::name, F::block_elems, sizeof(typename F::block_type)};
  });
}

/// Bytes of a row of n values; throws ShapeError unless n is a multiple of the block size.
inline std::size_t row_bytes(FormatId id, std::size_t n) {
  const FormatInfo info = format_info(id);
  if (n % info.block_elems != 0) {
    throw ShapeError(fmt::format(
        "row_bytes: a row of {} values cannot be stored as {}, whose blocks hold {} values; "
        "the row length must be a multiple of {}",
        n, info.name, info.block_elems, info.block_elems));
  }
  return n / info.block_elems * info.block_bytes;
}

}  // namespace dsv4
