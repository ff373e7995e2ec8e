// Helpers shared by the libFuzzer targets: the error oracle (a rejected input is a dsv4::Error
// whose message names the input; anything else crashes the fuzzer) and reads that touch every
// byte of a view, so that AddressSanitizer sees a view that runs past its buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "dsv4/core/error.hpp"

namespace dsv4::fuzz {

/// The input's bytes as the owning vector the in-memory readers take.
inline std::vector<std::byte> to_bytes(const std::uint8_t* data, std::size_t size) {
  const auto* p = reinterpret_cast<const std::byte*>(data);
  return {p, p + size};
}

/// A reader rejected the input: its message must be non-empty and name the input (`label`, the
/// file name the reader was given), so that a user learns which file is bad. Aborts otherwise.
inline void check_rejection(const dsv4::Error& e, std::string_view label) {
  const std::string_view msg = e.what();
  if (msg.empty() || msg.find(label) == std::string_view::npos) {
    std::fprintf(stderr, "rejection without a clear message (expected it to name '%.*s'): '%s'\n",
                 static_cast<int>(label.size()), label.data(), e.what());
    std::abort();
  }
}

/// Reads every byte of `s` (ASan reports a view that reaches outside its buffer).
inline std::uint64_t touch(std::span<const std::byte> s) {
  std::uint64_t h = 0;
  for (const std::byte b : s) h = h * 31 + std::to_integer<std::uint8_t>(b);
  return h;
}

/// Keeps a value alive so that the reads producing it are not optimised away.
template <class T>
void keep(const T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

}  // namespace dsv4::fuzz
