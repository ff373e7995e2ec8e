// The GGUF v3 container: typed key/values, tensor infos and an aligned data section.
//
// Spec: spec/formats.md §10.3 (llama.cpp `deepseek4` GGUF); the container layout is ggml's GGUF
// (ggml docs/gguf.md, ggml/src/gguf.cpp), checked against files written by gguf-py and by
// llama-quantize (tests/data/llamacpp). Layout, all little-endian:
//
//   "GGUF"  u32 version (3; 2 has the same layout)  u64 n_tensors  u64 n_kv
//   n_kv  x { string key, u32 value type, value }
//   n_tensors x { string name, u32 n_dims, i64 ne[n_dims] (ne0 = row length first),
//                 u32 ggml type, u64 offset inside the data section }
//   zero padding to `alignment`, then the data section: every tensor at an offset that is a
//   multiple of `alignment` (`general.alignment`, u32 power of two; 32 when absent).
//   string = u64 length + bytes (no terminator); array = u32 element type + u64 count + elements.
//
// GgufFile validates every field of an untrusted file before anything is used (magic, version,
// counts against the bytes left, string lengths, value types, nesting, bools, dims, types, row
// lengths against the type's block, byte sizes, offsets aligned, inside the file and not
// overlapping) and throws FormatError naming the file and the key or tensor. GgufWriter writes a
// header and then streams tensor data in order, padding each tensor to the alignment, so a
// writer never holds more than the bytes it is handed.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/io/byte_reader.hpp"
#include "dsv4/io/mmap.hpp"

namespace dsv4::io {

inline constexpr std::uint32_t kGgufMagic = 0x46554747;  ///< "GGUF" read as a little-endian u32
inline constexpr std::uint32_t kGgufVersion = 3;
inline constexpr std::uint64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;  ///< GGML_MAX_DIMS

/// Value types of GGUF key/values (gguf_type).
enum class GgufType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

/// gguf-py's spelling of a value type ("UINT32", "STRING", ...); "?" for values outside the enum.
constexpr std::string_view gguf_type_name(GgufType t) noexcept {
  constexpr std::string_view kNames[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                         "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                         "UINT64", "INT64",   "FLOAT64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : std::string_view{"?"};
}

/// Bytes of one value of a fixed-size type; 0 for string and array.
constexpr std::size_t gguf_type_size(GgufType t) noexcept {
  switch (t) {
    case GgufType::uint8:
    case GgufType::int8:
    case GgufType::boolean:
      return 1;
    case GgufType::uint16:
    case GgufType::int16:
      return 2;
    case GgufType::uint32:
    case GgufType::int32:
    case GgufType::float32:
      return 4;
    case GgufType::uint64:
    case GgufType::int64:
    case GgufType::float64:
      return 8;
    default:
      return 0;
  }
}

/// The C++ types a GGUF value element can have, and their GgufType.
template <class T>
struct gguf_type_of;
template <>
struct gguf_type_of<std::uint8_t> : std::integral_constant<GgufType, GgufType::uint8> {};
template <>
struct gguf_type_of<std::int8_t> : std::integral_constant<GgufType, GgufType::int8> {};
template <>
struct gguf_type_of<std::uint16_t> : std::integral_constant<GgufType, GgufType::uint16> {};
template <>
struct gguf_type_of<std::int16_t> : std::integral_constant<GgufType, GgufType::int16> {};
template <>
struct gguf_type_of<std::uint32_t> : std::integral_constant<GgufType, GgufType::uint32> {};
template <>
struct gguf_type_of<std::int32_t> : std::integral_constant<GgufType, GgufType::int32> {};
template <>
struct gguf_type_of<float> : std::integral_constant<GgufType, GgufType::float32> {};
template <>
struct gguf_type_of<bool> : std::integral_constant<GgufType, GgufType::boolean> {};
template <>
struct gguf_type_of<std::uint64_t> : std::integral_constant<GgufType, GgufType::uint64> {};
template <>
struct gguf_type_of<std::int64_t> : std::integral_constant<GgufType, GgufType::int64> {};
template <>
struct gguf_type_of<double> : std::integral_constant<GgufType, GgufType::float64> {};

/// A fixed-size GGUF element type (everything but string and array).
template <class T>
concept GgufScalar = requires {
  gguf_type_of<T>::value;
};

/// One GGUF value: a scalar or a one-level array of a scalar type or of strings. Numeric
/// elements are kept as their little-endian bytes, so a value read from a file writes back
/// bit for bit (NaN payloads included) and two values compare equal when their encodings do.
class GgufValue {
 public:
  GgufValue() = default;

  /// A scalar: GgufValue(std::uint32_t{7}), GgufValue(1.5f), GgufValue(true).
  template <GgufScalar T>
  explicit GgufValue(T v) : type_(gguf_type_of<T>::value), count_(1), raw_(sizeof(T)) {
    if constexpr (std::is_same_v<T, bool>) {
      raw_[0] = std::byte{v ? std::uint8_t{1} : std::uint8_t{0}};
    } else {
      std::memcpy(raw_.data(), &v, sizeof(T));
    }
  }
  /// A string scalar.
  explicit GgufValue(std::string s) : type_(GgufType::string), count_(1), strings_{std::move(s)} {}
  explicit GgufValue(std::string_view s) : GgufValue(std::string(s)) {}
  explicit GgufValue(const char* s) : GgufValue(std::string(s)) {}

  /// An array of a fixed-size type.
  template <GgufScalar T>
  static GgufValue array(std::span<const T> v) {
    GgufValue out;
    out.type_ = gguf_type_of<T>::value;
    out.array_ = true;
    out.count_ = v.size();
    out.raw_.resize(v.size() * sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        out.raw_[i] = std::byte{v[i] ? std::uint8_t{1} : std::uint8_t{0}};
      } else {
        std::memcpy(out.raw_.data() + i * sizeof(T), &v[i], sizeof(T));
      }
    }
    return out;
  }
  template <GgufScalar T>
  static GgufValue array(const std::vector<T>& v) {
    if constexpr (std::is_same_v<T, bool>) {
      std::vector<std::uint8_t> b(v.begin(), v.end());
      GgufValue out = array(std::span<const std::uint8_t>(b));
      out.type_ = GgufType::boolean;
      return out;
    } else {
      return array(std::span<const T>(v));
    }
  }
  /// An array of strings.
  static GgufValue array(std::vector<std::string> v) {
    GgufValue out;
    out.type_ = GgufType::string;
    out.array_ = true;
    out.count_ = v.size();
    out.strings_ = std::move(v);
    return out;
  }

  /// A value from its parts, as the reader finds them (numeric elements as little-endian bytes).
  /// Throws FormatError when the parts are inconsistent.
  static GgufValue from_parts(GgufType type, bool is_array, std::uint64_t count,
                              std::vector<std::byte> raw, std::vector<std::string> strings) {
    DSV4_CHECK(type != GgufType::array && gguf_type_name(type) != "?", FormatError,
               "gguf value: element type {} is not a scalar GGUF type",
               static_cast<std::uint32_t>(type));
    DSV4_CHECK(is_array || count == 1, FormatError, "gguf value: a scalar has {} elements", count);
    if (type == GgufType::string) {
      DSV4_CHECK(raw.empty() && strings.size() == count, FormatError,
                 "gguf value: {} strings for a count of {}", strings.size(), count);
    } else {
      DSV4_CHECK(strings.empty() && raw.size() == count * gguf_type_size(type), FormatError,
                 "gguf value: {} bytes for {} elements of {}", raw.size(), count,
                 gguf_type_name(type));
    }
    GgufValue out;
    out.type_ = type;
    out.array_ = is_array;
    out.count_ = count;
    out.raw_ = std::move(raw);
    out.strings_ = std::move(strings);
    return out;
  }

  /// Element type (never GgufType::array; see is_array).
  GgufType type() const noexcept { return type_; }
  bool is_array() const noexcept { return array_; }
  /// Number of elements: 1 for a scalar.
  std::uint64_t size() const noexcept { return count_; }
  /// "UINT32", "STRING", "ARRAY[INT32 x 5]".
  std::string type_string() const {
    if (!array_) return std::string(gguf_type_name(type_));
    return fmt::format("ARRAY[{} x {}]", gguf_type_name(type_), count_);
  }

  /// The scalar; throws FormatError unless this is a scalar of exactly type T.
  template <GgufScalar T>
  T get() const {
    expect(gguf_type_of<T>::value, false);
    if constexpr (std::is_same_v<T, bool>) {
      return raw_[0] != std::byte{0};
    } else {
      T v;
      std::memcpy(&v, raw_.data(), sizeof(T));
      return v;
    }
  }
  /// The string scalar; throws FormatError unless this is one.
  const std::string& str() const {
    expect(GgufType::string, false);
    return strings_[0];
  }
  /// The elements of an array of exactly type T.
  template <GgufScalar T>
  std::vector<T> get_array() const {
    expect(gguf_type_of<T>::value, true);
    std::vector<T> out(count_);
    for (std::size_t i = 0; i < count_; ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        out[i] = raw_[i] != std::byte{0};
      } else {
        std::memcpy(&out[i], raw_.data() + i * sizeof(T), sizeof(T));
      }
    }
    return out;
  }
  /// The elements of an array of strings.
  const std::vector<std::string>& strings() const {
    expect(GgufType::string, true);
    return strings_;
  }
  /// Numeric elements as stored (little-endian); empty for strings.
  std::span<const std::byte> raw() const noexcept { return raw_; }

  /// An integer scalar of any integer type as int64 (nullopt for other types, or a uint64
  /// above INT64_MAX). GGUF writers differ in the integer width they use for counts.
  std::optional<std::int64_t> as_int() const noexcept {
    if (array_) return std::nullopt;
    return element_as_int(0);
  }
  /// Element i of an integer scalar or array as int64 (nullopt when not integer).
  std::optional<std::int64_t> element_as_int(std::uint64_t i) const noexcept {
    if (i >= count_ || type_ == GgufType::string) return std::nullopt;
    const std::byte* p = raw_.data() + i * gguf_type_size(type_);
    auto load = [p]<class U>(U*) {
      U v;
      std::memcpy(&v, p, sizeof(U));
      return v;
    };
    switch (type_) {
      case GgufType::uint8:
        return load(static_cast<std::uint8_t*>(nullptr));
      case GgufType::int8:
        return load(static_cast<std::int8_t*>(nullptr));
      case GgufType::uint16:
        return load(static_cast<std::uint16_t*>(nullptr));
      case GgufType::int16:
        return load(static_cast<std::int16_t*>(nullptr));
      case GgufType::uint32:
        return load(static_cast<std::uint32_t*>(nullptr));
      case GgufType::int32:
        return load(static_cast<std::int32_t*>(nullptr));
      case GgufType::int64:
        return load(static_cast<std::int64_t*>(nullptr));
      case GgufType::uint64: {
        const auto v = load(static_cast<std::uint64_t*>(nullptr));
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          return std::nullopt;
        return static_cast<std::int64_t>(v);
      }
      default:
        return std::nullopt;
    }
  }

  bool operator==(const GgufValue&) const = default;

 private:
  void expect(GgufType t, bool array) const {
    DSV4_CHECK(type_ == t && array_ == array, FormatError, "gguf value: expected {}{}, found {}",
               array ? "an array of " : "", gguf_type_name(t), type_string());
  }

  GgufType type_ = GgufType::uint8;
  bool array_ = false;
  std::uint64_t count_ = 0;
  std::vector<std::byte> raw_;        // fixed-size elements, little-endian
  std::vector<std::string> strings_;  // string elements
};

/// The key/values of a GGUF file, in file order; keys are unique.
class GgufMetadata {
  // Runs fn, prefixing the message of a FormatError with the key.
  template <class Fn>
  static decltype(auto) with_key(std::string_view key, Fn&& fn) {
    try {
      return fn();
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("gguf: key '{}': {}", key, e.what()));
    }
  }

 public:
  using Entry = std::pair<std::string, GgufValue>;

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  auto begin() const noexcept { return entries_.begin(); }
  auto end() const noexcept { return entries_.end(); }
  const std::vector<Entry>& entries() const noexcept { return entries_; }

  /// The value of `key`, or nullptr.
  const GgufValue* find(std::string_view key) const noexcept {
    for (const auto& [k, v] : entries_)
      if (k == key) return &v;
    return nullptr;
  }
  bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  /// The value of `key`; throws FormatError when absent.
  const GgufValue& at(std::string_view key) const {
    const GgufValue* v = find(key);
    DSV4_CHECK(v != nullptr, FormatError, "gguf: missing key '{}' ({} keys present)", key,
               entries_.size());
    return *v;
  }
  /// The scalar of `key`, of exactly type T; throws FormatError naming the key otherwise.
  template <GgufScalar T>
  T get(std::string_view key) const {
    const GgufValue& v = at(key);
    return with_key(key, [&] { return v.template get<T>(); });
  }
  /// The string of `key`; throws FormatError naming the key otherwise.
  const std::string& get_string(std::string_view key) const {
    const GgufValue& v = at(key);
    return with_key(key, [&]() -> const std::string& { return v.str(); });
  }
  /// An integer scalar of any integer type, or the first element of an integer array (some
  /// architectures store per-layer values); nullopt when absent; FormatError when not integer,
  /// an empty array or a UINT64 above INT64_MAX.
  std::optional<std::int64_t> get_int(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    const auto i = v->element_as_int(0);
    DSV4_CHECK(i.has_value(), FormatError,
               "gguf: key '{}': expected an integer of at most 2^63-1 (or a non-empty array of "
               "such integers), found {}{}",
               key, v->type_string(),
               v->type() == GgufType::uint64 && v->size() > 0 ? " above 2^63-1" : "");
    return i;
  }

  /// Sets `key` as ggml's gguf_set_* does: an existing entry is removed and the key is
  /// appended at the end.
  void set(std::string key, GgufValue value) {
    DSV4_CHECK(!key.empty(), FormatError, "gguf: empty key (a key needs at least one character)");
    remove(key);
    entries_.emplace_back(std::move(key), std::move(value));
  }
  /// Appends a new key; throws FormatError when it exists already (the reader's duplicate
  /// check).
  void add(std::string key, GgufValue value) {
    DSV4_CHECK(!key.empty(), FormatError, "gguf: empty key (a key needs at least one character)");
    DSV4_CHECK(!contains(key), FormatError, "gguf: duplicate key '{}'", key);
    entries_.emplace_back(std::move(key), std::move(value));
  }
  /// Removes `key`; returns whether it was there.
  bool remove(std::string_view key) {
    const auto it = std::find_if(entries_.begin(), entries_.end(),
                                 [&](const Entry& e) { return e.first == key; });
    if (it == entries_.end()) return false;
    entries_.erase(it);
    return true;
  }

  bool operator==(const GgufMetadata&) const = default;

 private:
  friend class GgufFile;  // appends the keys it has checked for duplicates itself (in linear time)

  std::vector<Entry> entries_;
};

/// One tensor of a GGUF file.
struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> ne;  ///< ggml order: ne[0] is the row length; 1 to 4 dims
  FormatId type = FormatId::f32;
  std::uint64_t offset = 0;   ///< inside the data section (a multiple of the alignment)
  std::uint64_t n_bytes = 0;  ///< bytes of data: rows x row_bytes(type, ne[0])

  /// Product of ne (1 for ne = {1}).
  std::int64_t n_elements() const noexcept {
    std::int64_t n = 1;
    for (const auto d : ne) n *= d;
    return n;
  }
  /// Number of rows: the product of ne[1..].
  std::int64_t n_rows() const noexcept {
    std::int64_t n = 1;
    for (std::size_t i = 1; i < ne.size(); ++i) n *= ne[i];
    return n;
  }

  bool operator==(const GgufTensorInfo&) const = default;
};

/// "[256, 512]".
inline std::string gguf_shape_string(std::span<const std::int64_t> ne) {
  return fmt::format("[{}]", fmt::join(ne, ", "));
}

namespace detail::gguf {

inline std::uint64_t align_up(std::uint64_t n, std::uint64_t a) { return (n + a - 1) / a * a; }

/// The alignment the metadata asks for: `general.alignment` (u32, a power of two), else 32.
inline std::uint64_t alignment_of(const GgufMetadata& meta, std::string_view what) {
  const GgufValue* v = meta.find("general.alignment");
  if (v == nullptr) return kGgufDefaultAlignment;
  DSV4_CHECK(v->type() == GgufType::uint32 && !v->is_array(), FormatError,
             "{}: key 'general.alignment': expected UINT32, found {}", what, v->type_string());
  const std::uint32_t a = v->get<std::uint32_t>();
  DSV4_CHECK(a != 0 && (a & (a - 1)) == 0, FormatError,
             "{}: key 'general.alignment' is {} (expected a power of two)", what, a);
  return a;
}

/// Bytes of a tensor of type `t` and shape `ne`, every check done (dims, sizes, block
/// divisibility, overflow); throws FormatError naming `what` (file and tensor).
inline std::uint64_t checked_tensor_bytes(FormatId t, std::span<const std::int64_t> ne,
                                          std::string_view what) {
  const auto tr = dsv4::gguf::type_traits(t);
  DSV4_CHECK(tr.has_value(), FormatError,
             "{}: ggml type id {} is unknown (expected one of ggml's types: F32=0, F16=1, Q4_0=2, "
             "..., BF16=30, MXFP4=39)",
             what, static_cast<std::uint32_t>(t));
  DSV4_CHECK(!ne.empty() && ne.size() <= static_cast<std::size_t>(kGgufMaxDims), FormatError,
             "{}: {} dimensions (expected 1 to {})", what, ne.size(), kGgufMaxDims);
  // The product of the non-zero dims bounds every partial product (n_elements, n_rows), so a
  // zero dim cannot hide an overflow of the others.
  std::uint64_t extent = 1;
  bool empty = false;
  for (std::size_t i = 0; i < ne.size(); ++i) {
    DSV4_CHECK(ne[i] >= 0, FormatError, "{}: ne[{}] = {} is negative", what, i, ne[i]);
    empty = empty || ne[i] == 0;
    const auto e =
        checked_mul(extent, static_cast<std::uint64_t>(std::max<std::int64_t>(ne[i], 1)));
    DSV4_CHECK(
        e.has_value() && *e <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
        FormatError, "{}: shape {} has more than 2^63 elements{}", what, gguf_shape_string(ne),
        empty ? " (counting its non-zero dimensions)" : "");
    extent = *e;
  }
  const std::uint64_t elements = empty ? 0 : extent;
  const auto block = static_cast<std::uint64_t>(tr->block_elems);
  DSV4_CHECK(static_cast<std::uint64_t>(ne[0]) % block == 0, FormatError,
             "{}: row length ne[0] = {} is not a multiple of the {} block size {}", what, ne[0],
             tr->name, block);
  const auto bytes = checked_mul(elements / block, static_cast<std::uint64_t>(tr->block_bytes));
  DSV4_CHECK(bytes.has_value(), FormatError, "{}: byte size overflows 64 bits", what);
  return *bytes;
}

// ---- encoding -----------------------------------------------------------------------------------

template <class T>
void put(std::vector<std::byte>& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  const auto at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}
inline void put_string(std::vector<std::byte>& out, std::string_view s) {
  put<std::uint64_t>(out, s.size());
  const auto at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}

}  // namespace detail::gguf

/// Appends the encoding of `v` as it follows the type field of a key/value: a scalar's bytes, a
/// string's length and bytes, or an array's element type, count and elements.
inline void encode_gguf_value(std::vector<std::byte>& out, const GgufValue& v) {
  using detail::gguf::put;
  if (v.is_array()) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(v.type()));
    put<std::uint64_t>(out, v.size());
  }
  if (v.type() == GgufType::string) {
    if (v.is_array()) {
      for (const auto& s : v.strings()) detail::gguf::put_string(out, s);
    } else {
      detail::gguf::put_string(out, v.str());
    }
  } else {
    out.insert(out.end(), v.raw().begin(), v.raw().end());
  }
}

/// Fills in `offset` and `n_bytes` of each tensor: in the given order, each at the next multiple
/// of `alignment`. Returns the size of the data section (the last tensor padded too). Throws
/// FormatError for a tensor with an invalid shape or type.
inline std::uint64_t layout_gguf_tensors(std::span<GgufTensorInfo> tensors,
                                         std::uint64_t alignment) {
  std::uint64_t offset = 0;
  for (auto& t : tensors) {
    t.n_bytes = detail::gguf::checked_tensor_bytes(t.type, t.ne, "gguf tensor '" + t.name + "'");
    t.offset = offset;
    const auto end = checked_add(offset, t.n_bytes);
    DSV4_CHECK(end.has_value() && *end < std::numeric_limits<std::uint64_t>::max() - alignment,
               FormatError, "gguf: data section size overflows 64 bits at tensor '{}'", t.name);
    offset = detail::gguf::align_up(*end, alignment);
  }
  return offset;
}

/// The header of a GGUF v3 file: magic, version, counts, key/values, tensor infos (with their
/// offsets as given) and zero padding up to the data section.
inline std::vector<std::byte> encode_gguf_header(const GgufMetadata& meta,
                                                 std::span<const GgufTensorInfo> tensors) {
  using detail::gguf::put;
  const std::uint64_t alignment = detail::gguf::alignment_of(meta, "gguf writer");
  std::vector<std::byte> out;
  put<std::uint32_t>(out, kGgufMagic);
  put<std::uint32_t>(out, kGgufVersion);
  put<std::uint64_t>(out, tensors.size());
  put<std::uint64_t>(out, meta.size());
  for (const auto& [key, value] : meta) {
    detail::gguf::put_string(out, key);
    put<std::uint32_t>(
        out, static_cast<std::uint32_t>(value.is_array() ? GgufType::array : value.type()));
    encode_gguf_value(out, value);
  }
  for (const auto& t : tensors) {
    detail::gguf::put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.ne.size()));
    for (const auto d : t.ne) put<std::int64_t>(out, d);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.type));
    put<std::uint64_t>(out, t.offset);
  }
  out.resize(detail::gguf::align_up(out.size(), alignment), std::byte{0});
  return out;
}

/// The name llama.cpp gives shard `no` (0-based) of a model split into `count` files:
/// PREFIX-00001-of-00003.gguf (llama_split_path).
inline std::string gguf_split_path(std::string_view prefix, std::size_t no, std::size_t count) {
  return fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, no + 1, count);
}

/// A GGUF file, memory-mapped (or held in memory) and validated on construction; or a model
/// split into several (llama-gguf-split's and llama-quantize --keep-split's shards): opened by
/// its first shard (PREFIX-00001-of-0000N.gguf, `split.count` N > 1), a GgufFile maps every shard
/// and shows one model: the first shard's key/values, the tensors of all shards in shard order,
/// each read from its own file (zero-copy).
class GgufFile {
 public:
  /// Maps and validates `path`, and the other shards of a split model whose first shard it is
  /// (unless `follow_split` is false). Throws FormatError (bad content, a missing or mismatched
  /// shard, a shard other than the first) or Error (cannot open).
  explicit GgufFile(const std::filesystem::path& path, bool follow_split = true)
      : label_(path.string()), map_(path), bytes_(map_.bytes()) {
    parse();
    if (follow_split) open_shards(path);
  }

  /// Validates an in-memory copy of a file; `label` names it in error messages. The shards of a
  /// split model are not followed: only this file's tensors are listed.
  GgufFile(std::vector<std::byte> bytes, std::string label)
      : label_(std::move(label)), owned_(std::move(bytes)), bytes_(owned_) {
    parse();
  }

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  GgufFile(GgufFile&&) = default;
  GgufFile& operator=(GgufFile&&) = default;

  const std::string& label() const noexcept { return label_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint64_t alignment() const noexcept { return alignment_; }
  /// File offset of the data section (of the first shard for a split model).
  std::uint64_t data_offset() const noexcept { return data_offset_; }
  /// The whole file (the first shard of a split model).
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

  /// Number of files: 1, or the shards of a split model.
  std::size_t shard_count() const noexcept { return 1 + shards_.size(); }
  /// Shard k (0: this file).
  const GgufFile& shard(std::size_t k) const { return k == 0 ? *this : shards_.at(k - 1); }
  /// Bytes of all files.
  std::uint64_t total_bytes() const noexcept {
    std::uint64_t n = bytes_.size();
    for (const auto& s : shards_) n += s.bytes_.size();
    return n;
  }
  /// The shard that holds the data of `t` (one of tensors()).
  std::size_t shard_of(const GgufTensorInfo& t) const {
    if (shards_.empty()) return 0;
    const std::size_t i = index_of(t);
    return shard_of_[i];
  }

  const GgufMetadata& metadata() const noexcept { return meta_; }
  /// Tensors in file (header) order.
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }

  /// The tensor named `name`, or nullptr.
  const GgufTensorInfo* find_tensor(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  /// The tensor named `name`; throws FormatError when absent.
  const GgufTensorInfo& tensor(std::string_view name) const {
    const GgufTensorInfo* t = find_tensor(name);
    DSV4_CHECK(t != nullptr, FormatError, "gguf {}: no tensor named '{}' ({} tensors)", label_,
               name, tensors_.size());
    return *t;
  }
  /// The data bytes of a tensor of this file (of its shard, for a split model).
  std::span<const std::byte> tensor_data(const GgufTensorInfo& t) const {
    const GgufFile& f = shard(shard_of(t));
    return f.bytes_.subspan(static_cast<std::size_t>(f.data_offset_ + t.offset),
                            static_cast<std::size_t>(t.n_bytes));
  }
  std::span<const std::byte> tensor_data(std::string_view name) const {
    return tensor_data(tensor(name));
  }

  /// Tells the kernel that the mapped pages of `t` are no longer needed (they are re-read from
  /// the file if touched again). Lets a pass over a file larger than memory keep its resident
  /// set small. No effect for in-memory files.
  void release_pages(const GgufTensorInfo& t) const noexcept {
    if (!shards_.empty()) {
      const auto i = find_index(t);
      if (!i) return;
      const std::size_t k = shard_of_[*i];
      if (k != 0) {
        shards_[k - 1].release_pages(t);
        return;
      }
    }
    if (map_.data() == nullptr) return;
    const long page = ::sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    const auto p = static_cast<std::uint64_t>(page);
    const std::uint64_t begin = detail::gguf::align_up(data_offset_ + t.offset, p);
    const std::uint64_t end = (data_offset_ + t.offset + t.n_bytes) / p * p;
    if (end > begin) {
      ::madvise(const_cast<std::byte*>(map_.data()) + begin, static_cast<std::size_t>(end - begin),
                MADV_DONTNEED);
    }
  }

 private:
  [[noreturn]] void bad(const std::string& msg) const {
    throw FormatError("gguf " + label_ + ": " + msg);
  }

  /// Index of `t` in tensors_: by address when it is one of them, else by name; nullopt when
  /// this file has no tensor of that name.
  std::optional<std::size_t> find_index(const GgufTensorInfo& t) const noexcept {
    if (&t >= tensors_.data() && &t < tensors_.data() + tensors_.size()) {
      return static_cast<std::size_t>(&t - tensors_.data());
    }
    const auto it = index_.find(t.name);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  std::size_t index_of(const GgufTensorInfo& t) const {
    const auto i = find_index(t);
    DSV4_CHECK(i.has_value(), FormatError, "gguf {}: no tensor named '{}'", label_, t.name);
    return *i;
  }

  /// A u16 split key as llama.cpp reads it (absent: nullopt).
  std::optional<std::int64_t> split_key(std::string_view key) const {
    const auto v = meta_.get_int(key);
    if (v && (*v < 0 || *v > 65535))
      bad(fmt::format("key '{}' is {} (expected 0 to 65,535)", key, *v));
    return v;
  }

  /// When this file is the first shard of a split model, maps the others (named as llama.cpp
  /// names them) and lists their tensors after this file's.
  void open_shards(const std::filesystem::path& path) {
    const auto count = split_key("split.count");
    if (!count || *count <= 1) return;
    const auto no = split_key("split.no").value_or(0);
    const std::string name = path.filename().string();
    const std::string own =
        gguf_split_path("", static_cast<std::size_t>(no), static_cast<std::size_t>(*count));
    if (no != 0) {
      std::string first = name;
      if (first.size() > own.size() && first.ends_with(own)) {
        first = gguf_split_path(first.substr(0, first.size() - own.size()), 0,
                                static_cast<std::size_t>(*count));
      } else {
        first = "its first shard";
      }
      bad(
          fmt::format("this is shard {} of {} of a split model; open the model by its first "
                      "shard ({})",
                      no + 1, *count, first));
    }
    DSV4_CHECK(name.size() > own.size() && name.ends_with(own), FormatError,
               "gguf {}: the first shard of a model split into {} files is named "
               "PREFIX{} (llama.cpp's naming, which finds the other shards); this one is named {}",
               label_, *count, own, name);
    const std::filesystem::path prefix =
        path.parent_path() / name.substr(0, name.size() - own.size());
    shard_of_.assign(tensors_.size(), 0);
    for (std::int64_t k = 1; k < *count; ++k) {
      const std::filesystem::path p = gguf_split_path(prefix.string(), static_cast<std::size_t>(k),
                                                      static_cast<std::size_t>(*count));
      std::error_code ec;
      DSV4_CHECK(std::filesystem::is_regular_file(p, ec), FormatError,
                 "gguf {}: shard {} of {} ({}) is missing", label_, k + 1, *count, p.string());
      GgufFile s(p, false);
      const auto s_no = s.split_key("split.no");
      const auto s_count = s.split_key("split.count");
      DSV4_CHECK(s_no == k && s_count == count, FormatError,
                 "gguf {}: holds split.no {} and split.count {} (expected {} and {}: it is not "
                 "shard {} of this model)",
                 s.label_, s_no ? fmt::format("{}", *s_no) : std::string("(absent)"),
                 s_count ? fmt::format("{}", *s_count) : std::string("(absent)"), k, *count, k + 1);
      for (const GgufTensorInfo& t : s.tensors_) {
        DSV4_CHECK(index_.emplace(t.name, tensors_.size()).second, FormatError,
                   "gguf {}: tensor '{}' is in two shards (the second is {})", label_, t.name,
                   s.label_);
        tensors_.push_back(t);
        shard_of_.push_back(static_cast<std::uint32_t>(k));
      }
      shards_.push_back(std::move(s));
    }
    if (const auto n = meta_.get_int("split.tensors.count")) {
      DSV4_CHECK(*n == static_cast<std::int64_t>(tensors_.size()), FormatError,
                 "gguf {}: split.tensors.count is {} but the {} shards hold {} tensors", label_, *n,
                 *count, tensors_.size());
    }
  }

  /// Reads a string, refusing lengths beyond the bytes left.
  std::string read_string(ByteReader& r, std::string_view field) const {
    const auto n = r.read<std::uint64_t>(fmt::format("{} (length)", field));
    if (n > r.remaining()) {
      bad(fmt::format("{}: string length {} runs past the end of the file ({} bytes left)", field,
                      n, r.remaining()));
    }
    const auto s = r.take(n, field);
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }

  GgufValue read_value(ByteReader& r, const std::string& key) const {
    const std::string field = "key '" + key + "'";
    const auto raw_type = r.read<std::uint32_t>(field + " (value type)");
    auto check_type = [&](std::uint32_t t, std::string_view what) {
      if (t > static_cast<std::uint32_t>(GgufType::float64)) {
        bad(fmt::format("{}: {} {} is not a GGUF value type (expected 0 to 12)", field, what, t));
      }
      return static_cast<GgufType>(t);
    };
    GgufType type = check_type(raw_type, "value type");
    bool is_array = false;
    std::uint64_t count = 1;
    if (type == GgufType::array) {
      is_array = true;
      type =
          check_type(r.read<std::uint32_t>(field + " (array element type)"), "array element type");
      if (type == GgufType::array) bad(field + ": arrays of arrays are not supported by GGUF");
      count = r.read<std::uint64_t>(field + " (array length)");
      // every element takes at least one byte (a string at least its 8-byte length)
      const std::uint64_t min_size = type == GgufType::string ? 8 : gguf_type_size(type);
      const auto need = checked_mul(count, min_size);
      if (!need.has_value() || *need > r.remaining()) {
        bad(fmt::format("{}: array of {} {} elements needs at least {} bytes, {} are left", field,
                        count, gguf_type_name(type), need.value_or(0), r.remaining()));
      }
    }
    std::vector<std::byte> raw;
    std::vector<std::string> strings;
    if (type == GgufType::string) {
      strings.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) {
        strings.push_back(read_string(
            r, is_array ? fmt::format("{} element {}", field, i) : field + " (string)"));
      }
    } else {
      const auto n = count * gguf_type_size(type);  // checked above for arrays
      const auto s = r.take(n, field + " (value)");
      raw.assign(s.begin(), s.end());
      if (type == GgufType::boolean) {
        for (std::size_t i = 0; i < raw.size(); ++i) {
          const auto b = std::to_integer<unsigned>(raw[i]);
          if (b > 1) bad(fmt::format("{}: bool element {} is {} (expected 0 or 1)", field, i, b));
        }
      }
    }
    return GgufValue::from_parts(type, is_array, count, std::move(raw), std::move(strings));
  }

  void parse() {
    ByteReader r(bytes_, "gguf " + label_);
    const auto magic = r.read<std::uint32_t>("the magic");
    if (magic != kGgufMagic) {
      char m[4];
      std::memcpy(m, &magic, 4);
      std::string shown;
      for (const char c : m) shown += (c >= 32 && c < 127) ? c : '?';
      bad(fmt::format("bad magic '{}' (0x{:08x}); expected 'GGUF': not a GGUF file", shown, magic));
    }
    version_ = r.read<std::uint32_t>("the version");
    if (version_ != 2 && version_ != 3) {
      bad(
          fmt::format("version {} is not supported (expected 3; version 2 is read too, version 1 "
                      "is obsolete)",
                      version_));
    }
    const auto n_tensors = r.read<std::uint64_t>("the tensor count");
    const auto n_kv = r.read<std::uint64_t>("the key/value count");
    // smallest key/value: 8-byte key length + 1 byte of key + 4-byte type + 1-byte value;
    // smallest tensor info: 8 + 1 (name) + 4 (n_dims) + 8 (one ne) + 4 (type) + 8 (offset)
    constexpr std::uint64_t kMinKv = 14;
    constexpr std::uint64_t kMinTensor = 33;
    const auto need_kv = checked_mul(n_kv, kMinKv);
    const auto need_t = checked_mul(n_tensors, kMinTensor);
    if (!need_kv || !need_t || !checked_add(*need_kv, *need_t) ||
        *checked_add(*need_kv, *need_t) > r.remaining()) {
      bad(
          fmt::format("{} key/values and {} tensors cannot fit in the {} bytes left after the "
                      "fixed header (counts are corrupt or the file is truncated)",
                      n_kv, n_tensors, r.remaining()));
    }

    // GgufMetadata::add checks for a duplicate by a linear search: quadratic in the number of
    // keys, which a hostile file chooses (a 2 MB file of 100,000 keys took half a minute).
    std::unordered_set<std::string> keys;
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      std::string key = read_string(r, fmt::format("key #{} (name)", i));
      if (key.empty()) bad(fmt::format("key #{} has an empty name", i));
      if (!keys.insert(key).second) bad(fmt::format("duplicate key '{}' (key #{})", key, i));
      GgufValue v = read_value(r, key);
      meta_.entries_.emplace_back(std::move(key), std::move(v));
    }
    alignment_ = detail::gguf::alignment_of(meta_, "gguf " + label_);

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      t.name = read_string(r, fmt::format("tensor #{} (name)", i));
      if (t.name.empty()) bad(fmt::format("tensor #{} has an empty name", i));
      const std::string field = fmt::format("tensor '{}'", t.name);
      if (index_.count(t.name) != 0) bad(fmt::format("duplicate tensor name '{}'", t.name));
      const auto n_dims = r.read<std::uint32_t>(field + " (n_dims)");
      if (n_dims < 1 || n_dims > static_cast<std::uint32_t>(kGgufMaxDims)) {
        bad(fmt::format("{}: n_dims is {} (expected 1 to {})", field, n_dims, kGgufMaxDims));
      }
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        t.ne.push_back(r.read<std::int64_t>(fmt::format("{} (ne[{}])", field, d)));
      }
      t.type = static_cast<FormatId>(r.read<std::uint32_t>(field + " (type)"));
      t.offset = r.read<std::uint64_t>(field + " (offset)");
      t.n_bytes = detail::gguf::checked_tensor_bytes(t.type, t.ne, "gguf " + label_ + ": " + field);
      if (t.offset % alignment_ != 0) {
        bad(fmt::format("{}: data offset {} is not a multiple of the alignment {}", field, t.offset,
                        alignment_));
      }
      index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    data_offset_ = detail::gguf::align_up(r.offset(), alignment_);
    const std::uint64_t file_size = bytes_.size();
    const std::uint64_t data_size = data_offset_ <= file_size ? file_size - data_offset_ : 0;
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      const auto end = checked_add(t.offset, t.n_bytes);
      if (!end.has_value() || *end > data_size) {
        bad(fmt::format(
            "tensor '{}': data [{}, {}) of the data section runs past its end: the "
            "data section starts at file offset {} and holds {} bytes (the file is "
            "truncated or the offset is corrupt)",
            t.name, t.offset, end ? fmt::format("{}", *end) : "overflow", data_offset_, data_size));
      }
      if (t.n_bytes > 0) order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].offset < tensors_[b].offset;
    });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const auto& prev = tensors_[order[k - 1]];
      const auto& cur = tensors_[order[k]];
      if (prev.offset + prev.n_bytes > cur.offset) {
        bad(fmt::format("tensors '{}' (data [{}, {})) and '{}' (data [{}, {})) overlap", prev.name,
                        prev.offset, prev.offset + prev.n_bytes, cur.name, cur.offset,
                        cur.offset + cur.n_bytes));
      }
    }
  }

  std::string label_;
  MappedFile map_;
  std::vector<std::byte> owned_;
  std::span<const std::byte> bytes_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = kGgufDefaultAlignment;
  std::uint64_t data_offset_ = 0;
  GgufMetadata meta_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<GgufFile> shards_;         ///< shards 2..N of a split model
  std::vector<std::uint32_t> shard_of_;  ///< per tensor (empty for one file)
};

/// Writes a GGUF v3 file to a sink in one pass: the header on construction, then the tensors'
/// data in the order given, each padded with zeros to the alignment. Holds no tensor data; the
/// caller may hand over a tensor in any number of pieces.
class GgufWriter {
 public:
  using Sink = std::function<void(std::span<const std::byte>)>;

  /// Lays out `tensors` (their offset and n_bytes are computed; shapes and types are validated:
  /// FormatError on any problem, before anything is written), then writes the header.
  GgufWriter(const GgufMetadata& meta, std::vector<GgufTensorInfo> tensors, Sink sink)
      : tensors_(std::move(tensors)), sink_(std::move(sink)) {
    alignment_ = detail::gguf::alignment_of(meta, "gguf writer");
    std::unordered_map<std::string_view, int> seen;
    for (const auto& t : tensors_) {
      DSV4_CHECK(!t.name.empty(), FormatError, "gguf writer: a tensor has an empty name");
      DSV4_CHECK(seen.emplace(t.name, 0).second, FormatError,
                 "gguf writer: duplicate tensor name '{}'", t.name);
    }
    data_size_ = layout_gguf_tensors(tensors_, alignment_);
    const auto header = encode_gguf_header(meta, tensors_);
    header_size_ = header.size();
    emit(header);
    skip_empty();
  }

  /// Tensors with their offsets, in writing order.
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  std::uint64_t alignment() const noexcept { return alignment_; }
  std::uint64_t header_size() const noexcept { return header_size_; }
  /// Size of the whole file once finished.
  std::uint64_t file_size() const noexcept { return header_size_ + data_size_; }
  /// Index of the tensor the next bytes belong to (tensors().size() when all are written).
  std::size_t current() const noexcept { return current_; }

  /// Appends the next `data.size()` bytes of the current tensor; when the tensor is complete,
  /// pads it and moves to the next. Throws ShapeError when `data` runs past the current tensor.
  void write(std::span<const std::byte> data) {
    DSV4_CHECK(current_ < tensors_.size() || data.empty(), ShapeError,
               "gguf writer: {} bytes written after the last tensor", data.size());
    if (data.empty()) return;
    const auto& t = tensors_[current_];
    DSV4_CHECK(data.size() <= t.n_bytes - written_, ShapeError,
               "gguf writer: tensor '{}' ({} {}) takes {} bytes; {} are written and {} more were "
               "given",
               t.name, dsv4::gguf::type_name(t.type), gguf_shape_string(t.ne), t.n_bytes, written_,
               data.size());
    emit(data);
    written_ += data.size();
    if (written_ == t.n_bytes) next();
  }

  /// Writes the whole data of the tensor `name`, which must be the current one.
  void write_tensor(std::string_view name, std::span<const std::byte> data) {
    DSV4_CHECK(current_ < tensors_.size() && tensors_[current_].name == name && written_ == 0,
               ShapeError, "gguf writer: tensor '{}' written out of order (expected '{}')", name,
               current_ < tensors_.size() ? tensors_[current_].name : std::string("<none>"));
    DSV4_CHECK(data.size() == tensors_[current_].n_bytes, ShapeError,
               "gguf writer: tensor '{}' takes {} bytes, {} were given", name,
               tensors_[current_].n_bytes, data.size());
    write(data);
  }

  /// Checks that every tensor was written completely.
  void finish() const {
    DSV4_CHECK(current_ == tensors_.size(), ShapeError,
               "gguf writer: finished after {} of {} tensors (tensor '{}' has {} of {} bytes)",
               current_, tensors_.size(),
               current_ < tensors_.size() ? tensors_[current_].name : std::string(), written_,
               current_ < tensors_.size() ? tensors_[current_].n_bytes : 0);
  }

 private:
  void emit(std::span<const std::byte> s) { sink_(s); }
  void next() {
    const auto& t = tensors_[current_];
    const auto pad = detail::gguf::align_up(t.n_bytes, alignment_) - t.n_bytes;
    if (pad > 0) {
      const std::vector<std::byte> zeros(static_cast<std::size_t>(pad), std::byte{0});
      emit(zeros);
    }
    ++current_;
    written_ = 0;
    skip_empty();
  }
  void skip_empty() {
    while (current_ < tensors_.size() && tensors_[current_].n_bytes == 0) ++current_;
  }

  std::vector<GgufTensorInfo> tensors_;
  Sink sink_;
  std::uint64_t alignment_ = kGgufDefaultAlignment;
  std::uint64_t data_size_ = 0;
  std::uint64_t header_size_ = 0;
  std::size_t current_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace dsv4::io
