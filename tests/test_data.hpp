// Locating and reading the committed test data in tests/data (never ../shared).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsv4::test {

/// Absolute path of `relative` inside tests/data.
inline std::filesystem::path data_path(const std::string& relative) {
  return std::filesystem::path(DSV4_TEST_DATA_DIR) / relative;
}

/// Reads a whole file of raw little-endian `T` values from tests/data.
template <class T>
std::vector<T> read_raw(const std::string& relative) {
  const auto path = data_path(relative);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open test data " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % sizeof(T) != 0) {
    throw std::runtime_error("test data " + path.string() +
                             " has a size that is not a multiple of " + std::to_string(sizeof(T)));
  }
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace dsv4::test
