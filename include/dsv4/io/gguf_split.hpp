// Writing a GGUF model as several files ("shards"), as llama.cpp's tools write them, for
// `dsv4 quantize` and `dsv4 convert`. (Reading a split model is GgufFile's: io/gguf.hpp.)
//
//  * Shard k of n is named PREFIX-0000k-of-0000n.gguf (gguf_split_path), PREFIX being the output
//    name without its ".gguf".
//  * By limits, as llama-gguf-split --split-max-tensors N / --split-max-size N(M|G): tensors in
//    file order; a new shard starts at every N-th tensor, or when the next tensor's bytes (padded
//    to the alignment; headers not counted) would take the shard past the size. The first shard
//    holds every key/value, then split.no, split.tensors.count and split.count; the others only
//    those three (llama-gguf-split sets split.count last, once the count is known).
//  * By the input's shards, as llama-quantize --keep-split: output shard k holds the tensors of
//    input shard k; split.no, split.count and split.tensors.count follow the key/values in the
//    first shard and are alone in the others; an output of one shard carries no split keys.
//
// The shards are streamed one after the other (GgufSplitWriter); each goes through its own
// AtomicOutputFile, and all are renamed into place only when every one is complete
// (GgufOutputSet), so a failed run leaves none of them.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/output_file.hpp"

namespace dsv4::io {

/// When to start a new shard (llama-gguf-split's --split-max-size / --split-max-tensors); both
/// zero: one file.
struct GgufSplitLimits {
  std::uint64_t max_bytes = 0;    ///< tensor bytes per shard (padded), headers not counted
  std::uint64_t max_tensors = 0;  ///< tensors per shard
  bool active() const noexcept { return max_bytes != 0 || max_tensors != 0; }
};

/// One output file of a model: its key/values and tensors (offsets within its data section).
struct GgufShard {
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;
  std::uint64_t file_size = 0;
};

/// "500M" or "50G" → bytes (decimal units, 10^6 and 10^9, as llama-gguf-split reads them).
/// Throws InputError naming `option`.
inline std::uint64_t parse_split_size(std::string_view text, std::string_view option) {
  const auto bad = [&](std::string_view why) {
    return InputError(fmt::format(
        "{} {}: {} (expected a positive count of M or G, e.g. 500M or 50G)", option, text, why));
  };
  if (text.size() < 2) throw bad("too short");
  const char unit = text.back();
  std::uint64_t scale = 0;
  if (unit == 'M') {
    scale = 1000ull * 1000;
  } else if (unit == 'G') {
    scale = 1000ull * 1000 * 1000;
  } else {
    throw bad("the unit must be M (megabytes) or G (gigabytes)");
  }
  std::uint64_t n = 0;
  const std::string_view digits = text.substr(0, text.size() - 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) throw bad("not a number");
  if (n == 0) throw bad("the size must be positive");
  if (n > UINT64_MAX / scale) throw bad("too large");
  return n * scale;
}

/// The prefix of split output names: `out` without a trailing ".gguf".
inline std::string gguf_split_prefix(const std::filesystem::path& out) {
  std::string s = out.string();
  constexpr std::string_view kExt = ".gguf";
  if (s.size() > kExt.size() && std::string_view(s).substr(s.size() - kExt.size()) == kExt) {
    s.resize(s.size() - kExt.size());
  }
  return s;
}

namespace detail::split {

inline void finish_shards(std::vector<GgufShard>& shards) {
  for (GgufShard& s : shards) {
    const auto alignment = detail::gguf::alignment_of(s.metadata, "gguf writer");
    const auto data = layout_gguf_tensors(s.tensors, alignment);
    s.file_size = encode_gguf_header(s.metadata, s.tensors).size() + data;
  }
}

inline std::uint16_t shard_count(std::size_t n) {
  DSV4_CHECK(n <= 65535, InputError,
             "the model would be split into {} files; GGUF's split.count holds at most 65,535 "
             "(raise the size or tensor limit)",
             n);
  return static_cast<std::uint16_t>(n);
}

}  // namespace detail::split

/// One shard holding everything (no split keys).
inline std::vector<GgufShard> gguf_single_shard(const GgufMetadata& meta,
                                                std::vector<GgufTensorInfo> tensors) {
  std::vector<GgufShard> shards(1);
  shards[0].metadata = meta;
  shards[0].tensors = std::move(tensors);
  detail::split::finish_shards(shards);
  return shards;
}

/// llama-gguf-split's split of `tensors` (in file order, n_bytes set) under `limits`. Throws
/// InputError when a shard would hold no tensor (the first tensor alone is over the size).
inline std::vector<GgufShard> gguf_split_by_limits(const GgufMetadata& meta,
                                                   const std::vector<GgufTensorInfo>& tensors,
                                                   const GgufSplitLimits& limits) {
  if (!limits.active()) return gguf_single_shard(meta, tensors);
  const auto alignment = detail::gguf::alignment_of(meta, "gguf writer");
  std::vector<GgufShard> shards(1);
  shards[0].metadata = meta;
  std::uint64_t used = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t bytes = detail::gguf::align_up(tensors[i].n_bytes, alignment);
    const bool start = limits.max_bytes != 0 ? used + bytes > limits.max_bytes
                                             : (i > 0 && i % limits.max_tensors == 0);
    if (start) {
      DSV4_CHECK(!shards.back().tensors.empty(), InputError,
                 "--split-max-size: tensor '{}' alone takes {} bytes, more than the {} allowed per "
                 "file (raise the size)",
                 tensors[i].name, bytes, limits.max_bytes);
      shards.emplace_back();
      used = 0;
    }
    used += bytes;
    shards.back().tensors.push_back(tensors[i]);
  }
  const auto n = detail::split::shard_count(shards.size());
  for (std::size_t k = 0; k < shards.size(); ++k) {
    GgufMetadata& m = shards[k].metadata;
    m.set("split.no", GgufValue(static_cast<std::uint16_t>(k)));
    m.set("split.tensors.count", GgufValue(static_cast<std::int32_t>(tensors.size())));
    m.set("split.count", GgufValue(n));
  }
  detail::split::finish_shards(shards);
  return shards;
}

/// llama-quantize --keep-split's split: tensor i goes to shard shard_of[i] (the tensors are in
/// file order, grouped by shard; shard numbers start at 0 and none is empty).
inline std::vector<GgufShard> gguf_split_by_index(const GgufMetadata& meta,
                                                  const std::vector<GgufTensorInfo>& tensors,
                                                  const std::vector<std::uint32_t>& shard_of) {
  DSV4_CHECK(shard_of.size() == tensors.size(), ShapeError,
             "gguf split: {} tensors and {} shard numbers", tensors.size(), shard_of.size());
  std::size_t n = 1;
  for (const auto s : shard_of) n = std::max<std::size_t>(n, std::size_t{s} + 1);
  const auto count = detail::split::shard_count(n);
  std::vector<GgufShard> shards(n);
  shards[0].metadata = meta;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    DSV4_CHECK(i == 0 || shard_of[i] >= shard_of[i - 1], ShapeError,
               "gguf split: tensor '{}' of shard {} follows one of shard {}", tensors[i].name,
               shard_of[i], shard_of[i - 1]);
    shards[shard_of[i]].tensors.push_back(tensors[i]);
  }
  if (n > 1) {
    for (std::size_t k = 0; k < n; ++k) {
      GgufMetadata& m = shards[k].metadata;
      m.set("split.no", GgufValue(static_cast<std::uint16_t>(k)));
      m.set("split.count", GgufValue(count));
      m.set("split.tensors.count", GgufValue(static_cast<std::int32_t>(tensors.size())));
    }
  }
  detail::split::finish_shards(shards);
  return shards;
}

/// Streams the shards of a model one after the other: the caller writes the tensors' bytes in
/// order, as to one GgufWriter; shard k goes to open(k), which is called when shard k starts.
class GgufSplitWriter {
 public:
  using SinkFactory = std::function<GgufWriter::Sink(std::size_t shard)>;

  GgufSplitWriter(const std::vector<GgufShard>& shards, SinkFactory open)
      : shards_(shards), open_(std::move(open)) {
    DSV4_CHECK(!shards_.empty(), ShapeError, "gguf split writer: no shard");
    start(0);
  }

  /// Appends the next bytes of the current tensor (GgufWriter::write).
  void write(std::span<const std::byte> data) {
    while (writer_->current() == shards_[shard_].tensors.size() && shard_ + 1 < shards_.size()) {
      writer_->finish();
      start(shard_ + 1);
    }
    writer_->write(data);
  }

  /// Checks that every tensor of every shard was written.
  void finish() {
    while (shard_ + 1 < shards_.size()) {
      writer_->finish();
      start(shard_ + 1);
    }
    writer_->finish();
  }

 private:
  void start(std::size_t k) {
    shard_ = k;
    writer_.reset();
    writer_ = std::make_unique<GgufWriter>(shards_[k].metadata, shards_[k].tensors, open_(k));
  }

  const std::vector<GgufShard>& shards_;
  SinkFactory open_;
  std::size_t shard_ = 0;
  std::unique_ptr<GgufWriter> writer_;
};

/// The files of one output: `out` itself, or its shards' names when `split_names`. Each shard
/// is written to a temporary file; commit() renames them all once all are complete, and a set
/// destroyed without commit() removes its temporary files.
class GgufOutputSet {
 public:
  GgufOutputSet(const std::filesystem::path& out, std::size_t n_shards, bool split_names) {
    if (!split_names) {
      DSV4_CHECK(n_shards == 1, ShapeError, "gguf output: {} shards for one file name", n_shards);
      paths_.push_back(out);
    } else {
      const std::string prefix = gguf_split_prefix(out);
      for (std::size_t k = 0; k < n_shards; ++k) {
        paths_.emplace_back(gguf_split_path(prefix, k, n_shards));
      }
    }
    files_.resize(n_shards);
  }

  const std::vector<std::filesystem::path>& paths() const noexcept { return paths_; }

  /// Refuses, before any work, outputs that would destroy one of `inputs` or cannot be written
  /// (check_output_path for every file).
  void check(const std::vector<std::filesystem::path>& inputs) const {
    for (const auto& p : paths_) check_output_path(p, inputs);
  }

  /// The sink of shard k (opens its temporary file; the previous shard's is closed).
  GgufWriter::Sink sink(std::size_t k) {
    if (k > 0 && files_[k - 1]) files_[k - 1]->seal();
    files_.at(k) = std::make_unique<AtomicOutputFile>(paths_[k]);
    AtomicOutputFile* f = files_[k].get();
    return [f](std::span<const std::byte> s) { f->write(s); };
  }

  /// Renames every shard into place.
  void commit() {
    for (auto& f : files_) {
      DSV4_CHECK(f != nullptr, Error, "gguf output: a shard was never written");
      f->seal();
    }
    for (auto& f : files_) f->commit();
  }

 private:
  std::vector<std::filesystem::path> paths_;
  std::vector<std::unique_ptr<AtomicOutputFile>> files_;
};

/// The files of `in` (every shard of a split model).
inline std::vector<std::filesystem::path> gguf_paths(const GgufFile& in) {
  std::vector<std::filesystem::path> paths;
  for (std::size_t k = 0; k < in.shard_count(); ++k) paths.emplace_back(in.shard(k).label());
  return paths;
}

/// llama-gguf-split --split: the model `in` (one file or split) rewritten as shards under
/// `limits` (llama-gguf-split's default, 128 tensors per file, when none is set), named after
/// `out`; tensors and key/values unchanged, in the input's order. All files appear only when
/// all are complete; `progress` (tensor index, count) may throw to cancel. Returns the paths.
inline std::vector<std::filesystem::path> split_gguf_file(
    const GgufFile& in, const std::filesystem::path& out, GgufSplitLimits limits,
    const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  if (!limits.active()) limits.max_tensors = 128;
  std::vector<GgufTensorInfo> tensors = in.tensors();
  for (auto& t : tensors) t.ne.resize(static_cast<std::size_t>(gguf::n_dims(t.ne)));
  const auto shards = gguf_split_by_limits(in.metadata(), tensors, limits);
  GgufOutputSet files(out, shards.size(), true);
  files.check(gguf_paths(in));
  GgufSplitWriter writer(shards, [&files](std::size_t k) { return files.sink(k); });
  for (std::size_t i = 0; i < in.tensors().size(); ++i) {
    writer.write(in.tensor_data(in.tensors()[i]));
    in.release_pages(in.tensors()[i]);
    if (progress) progress(i + 1, in.tensors().size());
  }
  writer.finish();
  files.commit();
  return files.paths();
}

}  // namespace dsv4::io
