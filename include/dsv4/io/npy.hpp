// NumPy .npy arrays of float32 (format version 1.0, little-endian, C order): the writer goes
// through AtomicOutputFile, so a failed write never leaves a partial file; the reader checks the
// header and the size and throws FormatError naming the problem.
//
// Layout (numpy.lib.format): the magic "\x93NUMPY", the version bytes 1 0, a little-endian
// uint16 header length, then an ASCII dict
//   {'descr': '<f4', 'fortran_order': False, 'shape': (T, V), }
// padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/output_file.hpp"

namespace dsv4::io {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes little-endian");

/// The complete .npy header (magic, version, length, dict, padding) of a float32 array `shape`.
inline std::string npy_header(std::span<const std::uint64_t> shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) dict += ", ";
    dict += std::to_string(shape[i]);
  }
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  const std::size_t lead = 10;  // magic (6) + version (2) + header length (2)
  std::size_t total = lead + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - lead - dict.size() - 1, ' ');
  dict += '\n';
  const auto n = static_cast<std::uint16_t>(dict.size());
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  h += static_cast<char>(n & 0xff);
  h += static_cast<char>(n >> 8);
  return h + dict;
}

/// Writes `values` as a float32 .npy array of `shape` (the product of shape must be
/// values.size()) to `path`, atomically: the file appears only complete. Throws Error naming the
/// cause (errno text) when the file cannot be written.
inline void write_npy_f32(const std::filesystem::path& path, std::span<const float> values,
                          std::span<const std::uint64_t> shape) {
  std::uint64_t n = 1;
  for (const std::uint64_t s : shape) n *= s;
  DSV4_CHECK(n == values.size(), ShapeError, "npy {}: shape holds {} values, given {}",
             path.string(), n, values.size());
  const std::string header = npy_header(shape);
  AtomicOutputFile out(path);
  out.write(std::as_bytes(std::span<const char>(header.data(), header.size())));
  out.write(std::as_bytes(values));
  out.commit();
}

/// A float32 array read from a .npy file.
struct NpyArray {
  std::vector<std::uint64_t> shape;
  std::vector<float> values;
};

/// Reads a little-endian float32 C-order .npy file (version 1.0 or 2.0). Throws FormatError naming
/// the problem for anything else (bad magic, another dtype, Fortran order, wrong size).
inline NpyArray read_npy_f32(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  DSV4_CHECK(in.good(), InputError, "{}: cannot open", path.string());
  char lead[10];
  in.read(lead, 8);
  DSV4_CHECK(in.gcount() == 8 && std::memcmp(lead, "\x93NUMPY", 6) == 0, FormatError,
             "{}: not a .npy file (bad magic)", path.string());
  const int major = static_cast<unsigned char>(lead[6]);
  DSV4_CHECK(major == 1 || major == 2, FormatError, "{}: .npy version {} is not supported",
             path.string(), major);
  std::uint64_t hlen = 0;
  const int len_bytes = major == 1 ? 2 : 4;
  unsigned char lb[4] = {};
  in.read(reinterpret_cast<char*>(lb), len_bytes);
  DSV4_CHECK(in.gcount() == len_bytes, FormatError, "{}: truncated .npy header", path.string());
  for (int i = len_bytes - 1; i >= 0; --i) hlen = (hlen << 8) | lb[i];
  DSV4_CHECK(hlen <= 65536, FormatError, "{}: .npy header of {} bytes", path.string(), hlen);
  std::string dict(hlen, '\0');
  in.read(dict.data(), static_cast<std::streamsize>(hlen));
  DSV4_CHECK(static_cast<std::uint64_t>(in.gcount()) == hlen, FormatError,
             "{}: truncated .npy header", path.string());
  const auto field = [&](const std::string& key) {
    const auto k = dict.find("'" + key + "'");
    DSV4_CHECK(k != std::string::npos, FormatError, "{}: .npy header has no '{}'", path.string(),
               key);
    auto c = dict.find(':', k);
    DSV4_CHECK(c != std::string::npos, FormatError, "{}: bad .npy header", path.string());
    ++c;
    while (c < dict.size() && dict[c] == ' ') ++c;
    return c;
  };
  const auto d = field("descr");
  DSV4_CHECK(dict.compare(d, 5, "'<f4'") == 0, FormatError,
             "{}: .npy dtype is not little-endian float32 ('<f4')", path.string());
  const auto f = field("fortran_order");
  DSV4_CHECK(dict.compare(f, 5, "False") == 0, FormatError, "{}: .npy array in Fortran order",
             path.string());
  auto s = field("shape");
  DSV4_CHECK(s < dict.size() && dict[s] == '(', FormatError, "{}: bad .npy shape", path.string());
  ++s;
  NpyArray a;
  std::uint64_t n = 1;
  while (s < dict.size() && dict[s] != ')') {
    if (dict[s] == ' ' || dict[s] == ',') {
      ++s;
      continue;
    }
    std::uint64_t v = 0;
    int digits = 0;
    while (s < dict.size() && dict[s] >= '0' && dict[s] <= '9' && digits < 18) {
      v = v * 10 + static_cast<std::uint64_t>(dict[s++] - '0');
      ++digits;
    }
    DSV4_CHECK(digits > 0 && digits < 18, FormatError, "{}: bad .npy shape", path.string());
    a.shape.push_back(v);
    n *= v;
    DSV4_CHECK(n <= (std::uint64_t{1} << 40), FormatError, "{}: .npy array too large",
               path.string());
  }
  DSV4_CHECK(s < dict.size(), FormatError, "{}: bad .npy shape", path.string());
  a.values.resize(n);
  in.read(reinterpret_cast<char*>(a.values.data()), static_cast<std::streamsize>(n * 4));
  DSV4_CHECK(static_cast<std::uint64_t>(in.gcount()) == n * 4, FormatError,
             "{}: .npy data holds fewer than the {} values of its shape", path.string(), n);
  in.peek();
  DSV4_CHECK(in.eof(), FormatError, "{}: .npy file longer than its shape", path.string());
  return a;
}

}  // namespace dsv4::io
