// Bounds-checked little-endian reading of untrusted bytes (file headers), with overflow-checked
// size arithmetic. Used by the safetensors reader (spec/formats.md §10.1) and other loaders.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"

namespace dsv4::io {

static_assert(std::endian::native == std::endian::little, "dsv4 io assumes a little-endian host");

/// a * b, or nullopt on overflow.
constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

/// a + b, or nullopt on overflow.
constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
  return a + b;
}

/// Sequential reader over a byte span; every read checks the remaining length and throws
/// FormatError naming `what` (e.g. the file) and the offset.
class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string what)
      : bytes_(bytes), what_(std::move(what)) {}

  std::size_t offset() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

  /// Reads one little-endian trivially copyable value.
  template <class T>
  requires std::is_trivially_copyable_v<T> T read(std::string_view field) {
    require(sizeof(T), field);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  /// Returns the next `n` bytes and advances past them.
  std::span<const std::byte> take(std::uint64_t n, std::string_view field) {
    require(n, field);
    auto s = bytes_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }

 private:
  void require(std::uint64_t n, std::string_view field) const {
    DSV4_CHECK(n <= remaining(), FormatError,
               "{}: truncated while reading {} at byte offset {}: expected {} bytes, found {}",
               what_, field, pos_, n, remaining());
  }

  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
  std::string what_;
};

}  // namespace dsv4::io
