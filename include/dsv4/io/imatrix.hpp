// llama.cpp's importance-matrix files (llama-imatrix's output), read as llama-quantize reads them
// for `--imatrix FILE` (tools/quantize, common/imatrix-loader):
//  * GGUF form: for each weight NAME, tensors NAME.in_sum2 (F32, the sum of squared activations
//    per input column, one row per expert) and NAME.counts (F32, the number of activations per
//    expert); keys imatrix.datasets (strings), imatrix.chunk_count and imatrix.chunk_size, all
//    three required. The importance of column i of expert j is in_sum2[j][i] / counts[j]
//    (1 where the count is 0).
//  * legacy `.dat`: int32 entry count; per entry int32 name length, the name, int32 ncall, int32
//    value count, the values (float32, already averaged, times ncall); optionally int32 chunk
//    count, int32 dataset-name length and the name. The importance is value / ncall.
// --include-weights / --exclude-weights keep or drop the entries whose name contains one of the
// given strings (not both at once). Every size is checked against the bytes present before
// anything is allocated; a malformed file is one FormatError naming it.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/byte_reader.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/mmap.hpp"

namespace dsv4::io {

/// An importance matrix as llama-quantize uses it.
struct Imatrix {
  /// Weight name (e.g. "blk.0.attn_q_a.weight") → importance per input column, experts one
  /// after the other.
  std::map<std::string, std::vector<float>> entries;
  std::vector<std::string> datasets;  ///< the texts it was computed on
  std::int64_t chunk_count = 0;       ///< chunks of text seen (0: unknown)
  bool legacy = false;                ///< read from the legacy .dat form

  bool empty() const noexcept { return entries.empty(); }
};

namespace detail::imatrix {

/// The GGUF form starts with the GGUF magic; anything else is read as the legacy .dat form.
inline bool is_gguf(std::span<const std::byte> bytes) {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0;
}

inline Imatrix from_gguf(const GgufFile& f) {
  const std::string& label = f.label();
  const auto bad = [&](const std::string& why) {
    return FormatError(fmt::format("imatrix {}: {}", label, why));
  };
  if (f.tensors().empty())
    throw bad("no tensors (an imatrix file holds NAME.in_sum2 and NAME.counts)");
  const GgufMetadata& m = f.metadata();
  for (const char* key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"}) {
    if (m.find(key) == nullptr) {
      throw bad(
          fmt::format("key '{}' is missing (llama-imatrix writes imatrix.datasets, "
                      "imatrix.chunk_count and imatrix.chunk_size)",
                      key));
    }
  }
  Imatrix im;
  const GgufValue& ds = m.at("imatrix.datasets");
  if (ds.is_array() && ds.type() == GgufType::string) im.datasets = ds.strings();
  try {
    im.chunk_count = m.get_int("imatrix.chunk_count").value_or(0);
  } catch (const FormatError& e) {
    throw bad(e.what());  // the metadata's message names the key, not the file
  }

  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;
  for (const GgufTensorInfo& t : f.tensors()) {
    const std::string& n = t.name;
    if (n.ends_with(".in_sum2")) {
      pairs[n.substr(0, n.size() - 8)].first = &t;
    } else if (n.ends_with(".counts")) {
      pairs[n.substr(0, n.size() - 7)].second = &t;
    }
  }
  for (const auto& [name, p] : pairs) {
    const auto [sums, counts] = p;
    if (sums == nullptr || counts == nullptr) {
      throw bad(fmt::format("'{}' has {} but no {}", name, sums ? "in_sum2" : "counts",
                            sums ? "counts" : "in_sum2"));
    }
    if (sums->type != FormatId::f32 || counts->type != FormatId::f32) {
      throw bad(fmt::format("'{}': in_sum2 and counts must be F32", name));
    }
    const std::int64_t nval = sums->n_elements();
    const std::int64_t ncounts = counts->n_elements();
    if (ncounts < 1 || nval < ncounts) {
      throw bad(fmt::format("'{}': {} sums for {} counts", name, nval, ncounts));
    }
    const auto s = f.tensor_data(*sums);
    const auto c = f.tensor_data(*counts);
    std::vector<float> e(static_cast<std::size_t>(nval), 0.f);
    const std::int64_t ne0 = nval / ncounts;
    for (std::int64_t j = 0; j < ncounts; ++j) {
      float cf = 0.f;
      std::memcpy(&cf, c.data() + 4 * j, 4);
      const auto count = static_cast<float>(std::lround(cf));
      for (std::int64_t i = 0; i < ne0; ++i) {
        float v = 0.f;
        std::memcpy(&v, s.data() + 4 * (j * ne0 + i), 4);
        e[static_cast<std::size_t>(j * ne0 + i)] = count > 0.f ? v / count : 1.f;
      }
    }
    im.entries[name] = std::move(e);
  }
  return im;
}

inline Imatrix from_legacy(std::span<const std::byte> bytes, const std::string& label) {
  ByteReader r(bytes, "imatrix " + label);
  const auto bad = [&](const std::string& why) {
    return FormatError(fmt::format("imatrix {}: {}", label, why));
  };
  const auto n = r.read<std::int32_t>("the entry count");
  if (n < 1) throw bad(fmt::format("{} entries (not an imatrix file, or an empty one)", n));
  Imatrix im;
  im.legacy = true;
  for (std::int32_t i = 0; i < n; ++i) {
    const auto len = r.read<std::int32_t>(fmt::format("entry {} (name length)", i + 1));
    if (len < 0 || static_cast<std::uint64_t>(len) > r.remaining()) {
      throw bad(
          fmt::format("entry {}: name length {} (only {} bytes left)", i + 1, len, r.remaining()));
    }
    std::string name(static_cast<std::size_t>(len), '\0');
    const auto raw = r.take(static_cast<std::size_t>(len), "the name");
    std::memcpy(name.data(), raw.data(), raw.size());
    name.resize(std::strlen(name.c_str()));  // llama.cpp reads the name up to its first NUL
    const auto ncall = r.read<std::int32_t>(fmt::format("entry '{}' (ncall)", name));
    const auto nval = r.read<std::int32_t>(fmt::format("entry '{}' (value count)", name));
    if (nval < 1 || static_cast<std::uint64_t>(nval) * 4 > r.remaining()) {
      throw bad(fmt::format("entry '{}': {} values ({} bytes left)", name, nval, r.remaining()));
    }
    const auto data = r.take(static_cast<std::size_t>(nval) * 4, "the values");
    std::vector<float> e(static_cast<std::size_t>(nval));
    std::memcpy(e.data(), data.data(), data.size());
    if (ncall > 0) {
      for (float& v : e) v = v / static_cast<float>(ncall);
    }
    im.entries[name] = std::move(e);
  }
  if (r.remaining() >= 4) {
    im.chunk_count = r.read<std::int32_t>("the chunk count");
    if (r.remaining() >= 4) {
      const auto len = r.read<std::int32_t>("the dataset name length");
      if (len > 0 && static_cast<std::uint64_t>(len) <= r.remaining()) {
        const auto raw = r.take(static_cast<std::size_t>(len), "the dataset name");
        std::string ds(reinterpret_cast<const char*>(raw.data()), raw.size());
        ds.resize(std::strlen(ds.c_str()));
        im.datasets.push_back(std::move(ds));
      }
    }
  }
  return im;
}

/// `im`, after checking that every value is finite.
inline Imatrix checked(Imatrix im, const std::string& label) {
  for (const auto& [name, values] : im.entries) {
    for (const float v : values) {
      DSV4_CHECK(std::isfinite(v), FormatError,
                 "imatrix {}: entry '{}' holds a non-finite value ({})", label, name, v);
    }
  }
  return im;
}

}  // namespace detail::imatrix

/// An importance matrix from the bytes of its file (GGUF or legacy .dat, told apart by the GGUF
/// magic); `label` names it in errors. Non-finite values are refused, as llama-quantize does.
inline Imatrix imatrix_from_bytes(std::vector<std::byte> bytes, const std::string& label) {
  return detail::imatrix::checked(
      detail::imatrix::is_gguf(bytes)
          ? detail::imatrix::from_gguf(GgufFile(std::move(bytes), label))
          : detail::imatrix::from_legacy(bytes, label),
      label);
}

/// Reads an importance-matrix file (imatrix_from_bytes; the GGUF form is mapped, not copied).
inline Imatrix load_imatrix(const std::filesystem::path& path) {
  MappedFile map(path);
  const auto bytes = map.bytes();
  return detail::imatrix::checked(detail::imatrix::is_gguf(bytes)
                                      ? detail::imatrix::from_gguf(GgufFile(path, false))
                                      : detail::imatrix::from_legacy(bytes, path.string()),
                                  path.string());
}

/// llama-quantize's --include-weights / --exclude-weights: keeps the entries whose name contains
/// one of `include` (when given), drops those that contain one of `exclude`. Both at once is an
/// InputError, as for llama-quantize.
inline void filter_imatrix(Imatrix& im, const std::vector<std::string>& include,
                           const std::vector<std::string>& exclude) {
  DSV4_CHECK(include.empty() || exclude.empty(), InputError,
             "--include-weights and --exclude-weights cannot be combined");
  if (!exclude.empty()) {
    std::erase_if(im.entries, [&](const auto& e) {
      for (const auto& s : exclude)
        if (e.first.find(s) != std::string::npos) return true;
      return false;
    });
  }
  if (!include.empty()) {
    std::erase_if(im.entries, [&](const auto& e) {
      for (const auto& s : include)
        if (e.first.find(s) != std::string::npos) return false;
      return true;
    });
  }
}

}  // namespace dsv4::io
