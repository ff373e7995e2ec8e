// Reader of the safetensors container: 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then
// the raw little-endian data section. Spec: spec/formats.md §9.1-9.2 and §10.1 (stored dtypes and
// names); golden/reference README "Files" (F4 = float4_e2m1fn_x2 with a logical header shape and
// shape-product/2 data bytes). Every field of the untrusted header is validated before use.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/byte_reader.hpp"
#include "dsv4/io/json_parse.hpp"
#include "dsv4/io/mmap.hpp"

namespace dsv4::io {

/// One tensor's header entry, validated.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;  ///< logical shape (F4: element count, not bytes)
  std::uint64_t elements = 0;        ///< product of `shape` (1 for a scalar)
  std::span<const std::byte> bytes;  ///< the tensor's data inside the file
  std::uint64_t data_begin = 0;      ///< offset inside the data section
};

namespace detail {
/// The DType a C++ element type is stored as (for typed spans).
template <class T>
constexpr DType dtype_of() noexcept {
  if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  else if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<T, f16>)
    return DType::F16;
  else if constexpr (std::is_same_v<T, bf16>)
    return DType::BF16;
  else if constexpr (std::is_same_v<T, fp8_e4m3>)
    return DType::F8_E4M3;
  else if constexpr (std::is_same_v<T, fp8_e5m2>)
    return DType::F8_E5M2;
  else if constexpr (std::is_same_v<T, ue8m0>)
    return DType::F8_E8M0;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return DType::I8;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return DType::U8;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return DType::I16;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::I32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::I64;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::BOOL;
  else
    static_assert(sizeof(T) == 0, "no safetensors dtype for this element type");
}
}  // namespace detail

/// A safetensors file, memory-mapped (or held in memory) and validated on construction.
class SafetensorsFile {
 public:
  /// Largest JSON header accepted (the safetensors format itself caps it at 100 MB).
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  /// Maps and validates `path`. Throws FormatError (bad content) or Error (cannot open).
  explicit SafetensorsFile(const std::filesystem::path& path) : label_(path.string()), map_(path) {
    parse(map_.bytes());
  }

  /// Validates an in-memory copy of a file; `label` names it in error messages.
  SafetensorsFile(std::vector<std::byte> bytes, std::string label)
      : label_(std::move(label)), owned_(std::move(bytes)) {
    parse(std::span<const std::byte>(owned_));
  }

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;

  /// Tensor names in header (sorted) order.
  const std::vector<std::string>& names() const noexcept { return names_; }
  bool has(std::string_view name) const { return index_.find(std::string(name)) != index_.end(); }
  std::size_t size() const noexcept { return infos_.size(); }
  /// The `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const std::string& label() const noexcept { return label_; }

  /// Header entry of `name`; throws FormatError when absent.
  const TensorInfo& info(std::string_view name) const {
    auto it = index_.find(std::string(name));
    DSV4_CHECK(it != index_.end(), FormatError, "safetensors {}: no tensor named '{}' ({} tensors)",
               label_, name, infos_.size());
    return infos_[it->second];
  }

  /// Raw data bytes of `name` (any dtype; F4 is packed two codes per byte, low nibble first).
  std::span<const std::byte> bytes(std::string_view name) const { return info(name).bytes; }

  /// Typed view of `name`; its dtype must be exactly the one of T and the data naturally aligned.
  /// Shape: info(name).shape, row-major.
  template <class T>
  std::span<const T> span(std::string_view name) const {
    const TensorInfo& ti = info(name);
    constexpr DType want = detail::dtype_of<T>();
    DSV4_CHECK(ti.dtype == want, FormatError,
               "safetensors {}: tensor '{}': field dtype: expected {}, found {}", label_, name,
               dtype_name(want), dtype_name(ti.dtype));
    DSV4_CHECK(reinterpret_cast<std::uintptr_t>(ti.bytes.data()) % alignof(T) == 0, FormatError,
               "safetensors {}: tensor '{}': data at file offset {} is not aligned to {} bytes "
               "(use to_float or bytes)",
               label_, name, ti.bytes.data() - file_bytes_.data(), alignof(T));
    return {reinterpret_cast<const T*>(ti.bytes.data()), static_cast<std::size_t>(ti.elements)};
  }

  /// The values of a floating tensor (F64, F32, F16, BF16, F8_E4M3, F8_E5M2, F8_E8M0, F4 codes
  /// without scale) widened to float, row-major.
  std::vector<float> to_float(std::string_view name) const {
    const TensorInfo& ti = info(name);
    const auto n = static_cast<std::size_t>(ti.elements);
    const std::byte* p = ti.bytes.data();
    std::vector<float> out(n);
    auto load = [p]<class U>(std::size_t i, U*) {
      U v;
      std::memcpy(&v, p + i * sizeof(U), sizeof(U));
      return v;
    };
    for (std::size_t i = 0; i < n; ++i) {
      switch (ti.dtype) {
        case DType::F64:
          out[i] = static_cast<float>(load(i, static_cast<double*>(nullptr)));
          break;
        case DType::F32:
          out[i] = load(i, static_cast<float*>(nullptr));
          break;
        case DType::F16:
          out[i] = f16::from_bits(load(i, static_cast<std::uint16_t*>(nullptr))).to_float();
          break;
        case DType::BF16:
          out[i] = bf16::from_bits(load(i, static_cast<std::uint16_t*>(nullptr))).to_float();
          break;
        case DType::F8_E4M3:
          out[i] = fp8_e4m3::from_bits(std::to_integer<std::uint8_t>(p[i])).to_float();
          break;
        case DType::F8_E5M2:
          out[i] = fp8_e5m2::from_bits(std::to_integer<std::uint8_t>(p[i])).to_float();
          break;
        case DType::F8_E8M0:
          out[i] = ue8m0::from_bits(std::to_integer<std::uint8_t>(p[i])).to_float();
          break;
        case DType::F4: {
          const auto b = std::to_integer<std::uint8_t>(p[i / 2]);
          const auto code = static_cast<std::uint8_t>(i % 2 == 0 ? b & 0xF : b >> 4);
          out[i] = fp4_e2m1::from_bits(code).to_float();
          break;
        }
        default:
          throw FormatError(fmt::format(
              "safetensors {}: tensor '{}': field dtype: expected a floating type, found {}",
              label_, name, dtype_name(ti.dtype)));
      }
    }
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& msg) const {
    throw FormatError("safetensors " + label_ + ": " + msg);
  }

  void parse(std::span<const std::byte> file) {
    file_bytes_ = file;
    ByteReader r(file, "safetensors " + label_);
    const auto header_len = r.read<std::uint64_t>("the 8-byte header length");
    if (header_len > r.remaining()) {
      bad(fmt::format("header length {} runs past the end of the file (expected at most {})",
                      header_len, r.remaining()));
    }
    if (header_len > kMaxHeaderBytes) {
      bad(fmt::format("header length {} exceeds the limit of {} bytes", header_len,
                      kMaxHeaderBytes));
    }
    const auto header = r.take(header_len, "the JSON header");
    const auto data = file.subspan(r.offset());

    const nlohmann::json j = parse_json_text<FormatError>(
        std::string_view(reinterpret_cast<const char*>(header.data()), header.size()),
        "safetensors " + label_ + ": header");
    if (!j.is_object()) bad(fmt::format("header: expected a JSON object, found {}", j.type_name()));

    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) {
          bad(fmt::format("__metadata__: expected an object of strings, found {}", v.type_name()));
        }
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m->is_string()) {
            bad(fmt::format("__metadata__['{}']: expected a string, found {}", m.key(),
                            m->type_name()));
          }
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      infos_.push_back(parse_tensor(name, v, data));
    }

    // Data ranges must not overlap (sorted by start; empty tensors take no room).
    std::vector<std::size_t> order(infos_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
      return infos_[a].data_begin < infos_[b].data_begin;
    });
    std::uint64_t prev_end = 0;
    const TensorInfo* prev = nullptr;
    for (std::size_t i : order) {
      const TensorInfo& ti = infos_[i];
      if (ti.bytes.empty()) continue;
      if (prev != nullptr && ti.data_begin < prev_end) {
        bad(
            fmt::format("tensor '{}': field data_offsets: begins at {}, inside tensor '{}' which "
                        "ends at {} (expected non-overlapping ranges)",
                        ti.name, ti.data_begin, prev->name, prev_end));
      }
      prev_end = ti.data_begin + ti.bytes.size();
      prev = &ti;
    }
    names_.reserve(infos_.size());
    for (std::size_t i = 0; i < infos_.size(); ++i) {
      names_.push_back(infos_[i].name);
      index_.emplace(infos_[i].name, i);
    }
  }

  TensorInfo parse_tensor(const std::string& name, const nlohmann::json& v,
                          std::span<const std::byte> data) const {
    if (!v.is_object()) {
      bad(fmt::format("tensor '{}': expected an object with dtype/shape/data_offsets, found {}",
                      name, v.type_name()));
    }
    TensorInfo ti;
    ti.name = name;
    // dtype
    auto d = v.find("dtype");
    if (d == v.end() || !d->is_string()) {
      bad(fmt::format("tensor '{}': field dtype: expected a string, found {}", name,
                      d == v.end() ? "nothing" : d->type_name()));
    }
    const auto dt = dtype_from_name(d->get<std::string>());
    if (!dt) {
      bad(
          fmt::format("tensor '{}': field dtype: expected one of F64, F32, F16, BF16, F8_E4M3, "
                      "F8_E5M2, F8_E8M0, F4, I8, U8, I16, I32, I64, BOOL, found '{}'",
                      name, d->get<std::string>()));
    }
    ti.dtype = *dt;
    // shape
    auto s = v.find("shape");
    if (s == v.end() || !s->is_array()) {
      bad(fmt::format("tensor '{}': field shape: expected an array, found {}", name,
                      s == v.end() ? "nothing" : s->type_name()));
    }
    std::uint64_t elements = 1;
    for (std::size_t i = 0; i < s->size(); ++i) {
      const auto& e = (*s)[i];
      if (!e.is_number_integer() ||
          (e.is_number_integer() && !e.is_number_unsigned() && e.get<std::int64_t>() < 0)) {
        bad(fmt::format("tensor '{}': field shape[{}]: expected a non-negative integer, found {}",
                        name, i, e.dump()));
      }
      const auto dim = e.get<std::uint64_t>();
      const auto prod = checked_mul(elements, dim);
      if (!prod) {
        bad(fmt::format("tensor '{}': field shape: element count overflows 64 bits ({})", name,
                        s->dump()));
      }
      elements = *prod;
      ti.shape.push_back(dim);
    }
    ti.elements = elements;
    // byte size implied by dtype and shape
    std::uint64_t want_bytes = 0;
    if (ti.dtype == DType::F4) {
      if (elements % 2 != 0) {
        bad(
            fmt::format("tensor '{}': field shape: F4 packs two values per byte, expected an even "
                        "element count, found {}",
                        name, elements));
      }
      want_bytes = elements / 2;
    } else {
      const auto b = checked_mul(elements, dtype_bits(ti.dtype) / 8);
      if (!b) bad(fmt::format("tensor '{}': byte size overflows 64 bits", name));
      want_bytes = *b;
    }
    // data_offsets
    auto o = v.find("data_offsets");
    if (o == v.end() || !o->is_array() || o->size() != 2 || !(*o)[0].is_number_unsigned() ||
        !(*o)[1].is_number_unsigned()) {
      bad(
          fmt::format("tensor '{}': field data_offsets: expected [begin, end] non-negative "
                      "integers, found {}",
                      name, o == v.end() ? "nothing" : o->dump()));
    }
    const auto begin = (*o)[0].get<std::uint64_t>();
    const auto end = (*o)[1].get<std::uint64_t>();
    if (begin > end || end > data.size()) {
      bad(
          fmt::format("tensor '{}': field data_offsets: expected begin <= end <= {} (data section "
                      "size), found [{}, {}]",
                      name, data.size(), begin, end));
    }
    if (end - begin != want_bytes) {
      bad(
          fmt::format("tensor '{}': field data_offsets: dtype {} and shape {} need {} bytes, found "
                      "{}",
                      name, dtype_name(ti.dtype), s->dump(), want_bytes, end - begin));
    }
    ti.data_begin = begin;
    ti.bytes = data.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
    return ti;
  }

  std::string label_;
  MappedFile map_;
  std::vector<std::byte> owned_;
  std::span<const std::byte> file_bytes_;
  std::vector<TensorInfo> infos_;
  std::vector<std::string> names_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dsv4::io
