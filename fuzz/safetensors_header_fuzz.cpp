// Fuzzes the safetensors reader (io/safetensors.hpp) through its in-memory constructor: any bytes
// either load or are rejected with a dsv4::Error naming the file. A file that loads must keep
// every promise of its accessors: each tensor's bytes lie inside the data section, match its
// dtype and shape and overlap no other tensor, and bytes, span and to_float read them without
// throwing (ASan checks every byte read).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/safetensors.hpp"
#include "fuzz_util.hpp"

namespace {

using dsv4::DType;
using dsv4::io::SafetensorsFile;
using dsv4::io::TensorInfo;

constexpr std::string_view kLabel = "fuzz.safetensors";

void require(bool ok) {
  if (!ok) std::abort();
}

// span<T> must agree with bytes whenever the data is aligned for T (otherwise it throws).
template <class T>
void check_span(const SafetensorsFile& f, const TensorInfo& ti) {
  if (reinterpret_cast<std::uintptr_t>(ti.bytes.data()) % alignof(T) != 0) return;
  const std::span<const T> s = f.span<T>(ti.name);
  require(s.size() == ti.elements && static_cast<const void*>(s.data()) == ti.bytes.data());
  dsv4::fuzz::keep(dsv4::fuzz::touch(std::as_bytes(s)));
}

void check_typed(const SafetensorsFile& f, const TensorInfo& ti) {
  switch (ti.dtype) {
    case DType::F64:
      return check_span<double>(f, ti);
    case DType::F32:
      return check_span<float>(f, ti);
    case DType::F16:
      return check_span<dsv4::f16>(f, ti);
    case DType::BF16:
      return check_span<dsv4::bf16>(f, ti);
    case DType::F8_E4M3:
      return check_span<dsv4::fp8_e4m3>(f, ti);
    case DType::F8_E5M2:
      return check_span<dsv4::fp8_e5m2>(f, ti);
    case DType::F8_E8M0:
      return check_span<dsv4::ue8m0>(f, ti);
    case DType::I8:
      return check_span<std::int8_t>(f, ti);
    case DType::U8:
      return check_span<std::uint8_t>(f, ti);
    case DType::I16:
      return check_span<std::int16_t>(f, ti);
    case DType::I32:
      return check_span<std::int32_t>(f, ti);
    case DType::I64:
      return check_span<std::int64_t>(f, ti);
    case DType::BOOL:
      return check_span<bool>(f, ti);
    case DType::F4:
      return;  // no element type: two codes per byte
  }
}

bool is_floating(DType t) {
  switch (t) {
    case DType::F64:
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::F8_E8M0:
    case DType::F4:
      return true;
    default:
      return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes = dsv4::fuzz::to_bytes(data, size);
  const std::byte* const base = bytes.data();  // the reader keeps this buffer (vector move)
  std::optional<SafetensorsFile> file;
  try {
    file.emplace(std::move(bytes), std::string(kLabel));
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
    return 0;
  }
  const SafetensorsFile& f = *file;
  require(f.names().size() == f.size() && f.label() == kLabel);
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);
  const std::byte* const data_begin = base + 8 + header_len;
  const std::byte* const data_end = base + size;

  std::vector<std::pair<const std::byte*, const std::byte*>> ranges;
  for (const std::string& name : f.names()) {
    require(f.has(name));
    const TensorInfo& ti = f.info(name);
    require(ti.name == name);
    // the shape gives the element count, the dtype the byte count
    std::uint64_t elements = 1;
    for (const std::uint64_t d : ti.shape) elements *= d;  // checked by the reader
    require(elements == ti.elements);
    const std::uint64_t want =
        ti.dtype == DType::F4 ? ti.elements / 2 : ti.elements * (dsv4::dtype_bits(ti.dtype) / 8);
    require(ti.bytes.size() == want);
    const std::span<const std::byte> b = f.bytes(name);
    require(b.data() == ti.bytes.data() && b.size() == ti.bytes.size());
    if (!b.empty()) {
      require(b.data() >= data_begin && b.data() + b.size() <= data_end);
      require(static_cast<std::uint64_t>(b.data() - data_begin) == ti.data_begin);
      ranges.emplace_back(b.data(), b.data() + b.size());
    }
    dsv4::fuzz::keep(dsv4::fuzz::touch(b));
    check_typed(f, ti);
    if (is_floating(ti.dtype)) {
      const std::vector<float> v = f.to_float(name);
      require(v.size() == ti.elements);
      float s = 0;
      for (const float x : v) s += x;
      dsv4::fuzz::keep(s);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) require(ranges[i - 1].second <= ranges[i].first);
  for (const auto& [k, v] : f.metadata()) dsv4::fuzz::keep(k.size() + v.size());
  // a missing tensor is an error naming the file
  constexpr std::string_view kMissing = "\x01 no such tensor";
  if (!f.has(kMissing)) {
    try {
      (void)f.info(kMissing);
      std::abort();
    } catch (const dsv4::FormatError& e) {
      dsv4::fuzz::check_rejection(e, kLabel);
    }
  }
  return 0;
}
