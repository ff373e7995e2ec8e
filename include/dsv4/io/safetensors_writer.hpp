// Writer of the safetensors container (the format io/safetensors.hpp reads): an 8-byte
// little-endian header length, a JSON header {"__metadata__": {...}, name: {dtype, shape,
// data_offsets}, ...} padded with spaces to a multiple of 8 bytes, then the tensors' bytes with no
// holes. Spec: spec/formats.md §9.1-9.2 (dtypes; F4 takes its logical shape and shape-product / 2
// bytes, element 2k in the low nibble of byte k).
//
// Layout choices (those of the Python `safetensors` package): the data section holds the tensors
// ordered by decreasing element alignment (8-, 4-, 2-, then 1-byte types; insertion order inside
// a group), so that with the padded header every tensor starts at an offset of the file that is a
// multiple of its element size and a memory-mapped reader can view it in place.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/byte_reader.hpp"
#include "dsv4/io/output_file.hpp"
#include "dsv4/io/safetensors.hpp"

namespace dsv4::io {

/// Collects tensors (copies of their bytes) and writes them as one safetensors file.
class SafetensorsWriter {
 public:
  /// Adds tensor `name` of `dtype` and logical `shape` (F4: element count) with its raw
  /// little-endian bytes, which are copied. Throws InputError for an empty, reserved or repeated
  /// name, ShapeError when the byte count is not what dtype and shape need.
  void add(std::string name, DType dtype, std::vector<std::uint64_t> shape,
           std::span<const std::byte> data) {
    DSV4_CHECK(!name.empty() && name != "__metadata__", InputError,
               "safetensors writer: '{}' is not a usable tensor name", name);
    DSV4_CHECK(index_.find(name) == index_.end(), InputError,
               "safetensors writer: tensor '{}' added twice", name);
    const std::uint64_t need = byte_size(name, dtype, shape);
    DSV4_CHECK(data.size() == need, ShapeError,
               "safetensors writer: tensor '{}': dtype {} with shape [{}] needs {} bytes, got {}",
               name, dtype_name(dtype), fmt::join(shape, ", "), need, data.size());
    index_.emplace(name, tensors_.size());
    tensors_.push_back({std::move(name), dtype, std::move(shape),
                        std::vector<std::byte>(data.begin(), data.end())});
  }

  /// Adds a tensor from typed values (the dtype is the one of T: float -> F32, bf16 -> BF16,
  /// fp8_e4m3 -> F8_E4M3, ue8m0 -> F8_E8M0, std::int64_t -> I64, ...).
  template <class T>
  void add(std::string name, std::vector<std::uint64_t> shape, std::span<const T> values) {
    add(std::move(name), detail::dtype_of<T>(), std::move(shape), std::as_bytes(values));
  }

  /// Sets one entry of the header's "__metadata__" string map.
  void set_metadata(const std::string& key, std::string value) {
    metadata_[key] = std::move(value);
  }

  /// Tensors added so far.
  std::size_t size() const noexcept { return tensors_.size(); }

  /// Sum of the tensors' byte sizes (what a Hugging Face index calls total_size).
  std::uint64_t data_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const Entry& e : tensors_) n += e.data.size();
    return n;
  }

  /// The whole file.
  std::vector<std::byte> bytes() const {
    const std::vector<std::size_t> order = data_order();
    const std::string header = header_json(order);
    std::vector<std::byte> out(8 + header.size());
    const std::uint64_t len = header.size();
    for (int i = 0; i < 8; ++i)
      out[static_cast<std::size_t>(i)] = static_cast<std::byte>(len >> (8 * i) & 0xFF);
    std::memcpy(out.data() + 8, header.data(), header.size());
    for (std::size_t i : order) {
      out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
    }
    return out;
  }

  /// Writes the file to `path`, which appears only once complete (io/output_file.hpp). Throws
  /// Error when the file cannot be written.
  void write(const std::filesystem::path& path) const {
    const std::vector<std::size_t> order = data_order();
    const std::string header = header_json(order);
    AtomicOutputFile out(path);
    std::byte len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::byte>(header.size() >> (8 * i) & 0xFF);
    out.write(len);
    out.write(std::as_bytes(std::span<const char>(header)));
    for (std::size_t i : order) out.write(tensors_[i].data);
    out.commit();
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> data;
  };

  static std::uint64_t byte_size(const std::string& name, DType dtype,
                                 const std::vector<std::uint64_t>& shape) {
    std::uint64_t n = 1;
    for (std::uint64_t d : shape) {
      const auto p = checked_mul(n, d);
      DSV4_CHECK(p.has_value(), ShapeError,
                 "safetensors writer: tensor '{}': shape [{}] overflows 64 bits", name,
                 fmt::join(shape, ", "));
      n = *p;
    }
    if (dtype == DType::F4) {
      DSV4_CHECK(n % 2 == 0, ShapeError,
                 "safetensors writer: tensor '{}': F4 packs two values per byte, the shape [{}] "
                 "has an odd element count",
                 name, fmt::join(shape, ", "));
      return n / 2;
    }
    const auto b = checked_mul(n, dtype_bits(dtype) / 8);
    DSV4_CHECK(b.has_value(), ShapeError, "safetensors writer: tensor '{}': byte size overflows",
               name);
    return *b;
  }

  static std::size_t alignment(DType t) noexcept {
    return t == DType::F4 ? 1 : std::max<std::size_t>(1, dtype_bits(t) / 8);
  }

  std::vector<std::size_t> data_order() const {
    std::vector<std::size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
      return alignment(tensors_[a].dtype) > alignment(tensors_[b].dtype);
    });
    return order;
  }

  std::string header_json(const std::vector<std::size_t>& order) const {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (std::size_t i : order) {
      const Entry& e = tensors_[i];
      h[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                   {"shape", e.shape},
                   {"data_offsets", {offset, offset + e.data.size()}}};
      offset += e.data.size();
    }
    std::string s = h.dump();
    s.append((8 - s.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    return s;
  }

  std::vector<Entry> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dsv4::io
