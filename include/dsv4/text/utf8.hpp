// UTF-8 for the tokenizer: strict decoding (invalid input is an InputError naming the byte) and the
// lossy conversion that Hugging Face `tokenizers` applies to decoded bytes (Rust's
// String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD, as the Unicode
// standard recommends in "U+FFFD Substitution of Maximal Subparts").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dsv4/core/check.hpp"

namespace dsv4::text {

namespace detail {

/// Length of the valid UTF-8 sequence at `s[i]`, or 0 if none starts there. `*bad_len` receives
/// the length of the maximal subpart to replace (at least 1) when the sequence is invalid.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t* cp,
                                 std::size_t* bad_len) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  *bad_len = 1;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  std::uint32_t value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    value = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    value = b0 & 0x0Fu;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    value = b0 & 0x07u;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0, C1 or F5..FF
  }
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) {
      *bad_len = k;
      return 0;
    }
    const unsigned char b = byte(i + k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *bad_len = k;
      return 0;
    }
    value = (value << 6) | (b & 0x3Fu);
  }
  *cp = value;
  return need + 1;
}

}  // namespace detail

/// Appends the UTF-8 encoding of `cp` (a Unicode scalar value) to `out`.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Decodes the code point at byte `i` of valid UTF-8 and returns its length in bytes; throws
/// InputError naming `what` and the byte offset when the bytes there are not UTF-8.
inline std::size_t decode_utf8_at(std::string_view s, std::size_t i, std::uint32_t* cp,
                                  std::string_view what = "text") {
  std::size_t bad = 0;
  const std::size_t n = detail::utf8_sequence(s, i, cp, &bad);
  DSV4_CHECK(
      n != 0, InputError,
      "{} is not valid UTF-8: byte {} (0x{:02X}) does not start a valid sequence; encode the "
      "text as UTF-8 before tokenizing it",
      what, i, static_cast<unsigned>(static_cast<unsigned char>(s[i])));
  return n;
}

/// True when `s` is valid UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
inline bool is_valid_utf8(std::string_view s) noexcept {
  std::uint32_t cp = 0;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = detail::utf8_sequence(s, i, &cp, &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// `bytes` as valid UTF-8, each maximal invalid subsequence replaced by U+FFFD.
inline std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::uint32_t cp = 0;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = detail::utf8_sequence(bytes, i, &cp, &bad);
    if (n != 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

}  // namespace dsv4::text
