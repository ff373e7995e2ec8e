// Minimal non-owning tensor views (row-major 2-D with a row stride) and the element types of
// safetensors files. Spec: spec/formats.md §9.1 (number formats), §9.2 (stored dtypes); the dtype
// names mirror the safetensors header strings ("F32", "BF16", "F8_E4M3", "F4", ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace dsv4 {

/// Element type of a stored tensor (safetensors names).
enum class DType : std::uint8_t {
  F64,
  F32,
  F16,
  BF16,
  F8_E4M3,
  F8_E5M2,
  F8_E8M0,
  F4,  ///< float4_e2m1fn_x2: two codes per byte, element 2k in the low nibble of byte k
  I8,
  U8,
  I16,
  I32,
  I64,
  BOOL,
};

/// The safetensors header name of `t`.
constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::F8_E5M2:
      return "F8_E5M2";
    case DType::F8_E8M0:
      return "F8_E8M0";
    case DType::F4:
      return "F4";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::I16:
      return "I16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::BOOL:
      return "BOOL";
  }
  return "?";
}

/// Parses a safetensors dtype name; nullopt when unknown.
constexpr std::optional<DType> dtype_from_name(std::string_view s) noexcept {
  constexpr DType all[] = {DType::F64,     DType::F32,     DType::F16, DType::BF16, DType::F8_E4M3,
                           DType::F8_E5M2, DType::F8_E8M0, DType::F4,  DType::I8,   DType::U8,
                           DType::I16,     DType::I32,     DType::I64, DType::BOOL};
  for (DType t : all) {
    if (dtype_name(t) == s) return t;
  }
  return std::nullopt;
}

/// Storage size in bits of one element (F4: 4).
constexpr std::size_t dtype_bits(DType t) noexcept {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 64;
    case DType::F32:
    case DType::I32:
      return 32;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 16;
    case DType::F4:
      return 4;
    default:
      return 8;
  }
}

/// Mutable row-major view: element (r, c) at data[r * stride + c]; shape [rows, cols].
template <class T>
struct View2 {
  T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;  ///< elements between row starts (>= cols)

  constexpr View2() = default;
  constexpr View2(T* d, std::size_t r, std::size_t c) : data(d), rows(r), cols(c), stride(c) {}
  constexpr View2(T* d, std::size_t r, std::size_t c, std::size_t s)
      : data(d), rows(r), cols(c), stride(s) {}

  constexpr T* row(std::size_t r) const noexcept { return data + r * stride; }
  constexpr T& operator()(std::size_t r, std::size_t c) const noexcept {
    return data[r * stride + c];
  }
};

/// Read-only row-major view, shape [rows, cols] with a row stride.
template <class T>
using ConstView2 = View2<const T>;

}  // namespace dsv4
