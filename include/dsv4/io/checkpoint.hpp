// A checkpoint as users download it: config.json plus safetensors shards, read in place and
// addressed by the reference's tensor names.
//
// Spec: spec/formats.md §9.2 (what the release stores how), §10.1 (names, shards and the
// `model.safetensors.index.json` of the release), §10.2 (convert.py's renames,
// io/tensor_names.hpp); spec/architecture.md §1.4 (config.json in either naming scheme).
//
// A directory is read the way the Hugging Face release lays it out: config.json and the shards
// named by model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {tensor:
// shard}}), or, without an index, every *.safetensors file of the directory. Everything is checked
// when the checkpoint is opened, with a FormatError naming the file and the tensor: the index's
// JSON shape, every shard present and a valid safetensors file, every index entry in the shard it
// names (and only there), no tensor in two shards, total_size equal to the sum of the tensors'
// bytes, and no two stored names meaning the same reference tensor.
//
// Opening reads the headers only. Each shard is memory-mapped (io/mmap.hpp) and only its header
// pages are touched; tensor data is paged in when a loader reads it, so opening the 865 GB V4-Pro
// release costs its 64 headers, not its size. Tensors are views into the mappings: `bytes`,
// `span` and the linear loaders (io/tensor_load.hpp) copy nothing, and `keep_alive` lets a view
// outlive the Checkpoint object.
//
// The checkpoint is an io::TensorSource under the reference's names (convert.py's rules applied to
// the stored names, io/tensor_names.hpp), so the layers' loaders read a release directory, a
// converted file or a V3-style spelling alike; `tensors()` lists what is stored, under both names.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/config_json.hpp"
#include "dsv4/io/load_meter.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"
#include "dsv4/io/tensor_names.hpp"

namespace dsv4::io {

/// One tensor as a checkpoint stores it.
struct CheckpointTensor {
  std::string name;       ///< the name in its shard
  std::string reference;  ///< the reference's name; empty when the reference drops the tensor
  std::size_t shard = 0;  ///< index into Checkpoint::shards()
  /// Its header entry: dtype, shape, bytes (owned by the checkpoint's shard).
  const TensorInfo* info = nullptr;
};

/// What model.safetensors.index.json said (Checkpoint::index()).
struct CheckpointIndex {
  std::filesystem::path path;
  std::optional<std::uint64_t> total_size;      ///< metadata.total_size, when present
  std::map<std::string, std::string> metadata;  ///< other metadata entries, as JSON text
};

class Checkpoint {
 public:
  /// Opens `config` and the given safetensors shards (no index): tensor names must be unique
  /// across the shards.
  Checkpoint(const std::filesystem::path& config, const std::vector<std::filesystem::path>& shards)
      : Checkpoint(config, shards, std::nullopt, {}) {}

  /// Opens a checkpoint directory: config.json plus the shards listed in
  /// model.safetensors.index.json, or every *.safetensors file when there is no index.
  static Checkpoint open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    DSV4_CHECK(fs::is_directory(dir), FormatError, "checkpoint {}: not a directory", dir.string());
    const fs::path config = dir / "config.json";
    DSV4_CHECK(fs::exists(config), FormatError,
               "checkpoint {}: no config.json (the model's configuration, in Hugging Face or "
               "reference names)",
               dir.string());
    const fs::path index_path = dir / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
      ParsedIndex ix = read_index(index_path);
      std::vector<fs::path> shards;
      for (const auto& [file, tensors] : ix.shards) {
        const fs::path p = dir / file;
        // The name comes from the index: a status query can fail on it (a name too long for the
        // file system, say), an error naming the shard like a missing one.
        std::error_code ec;
        const bool present = fs::is_regular_file(p, ec);
        DSV4_CHECK(!ec || ec == std::errc::no_such_file_or_directory, FormatError,
                   "{}: shard '{}' (listed for {} tensors, e.g. '{}') cannot be examined in {}: {}",
                   index_path.string(), file, tensors.size(), tensors.front(), dir.string(),
                   ec.message());
        DSV4_CHECK(present, FormatError,
                   "{}: shard '{}' (listed for {} tensors, e.g. '{}') does not exist in {}; the "
                   "download is incomplete",
                   index_path.string(), file, tensors.size(), tensors.front(), dir.string());
        shards.push_back(p);
      }
      return {config, shards, std::move(ix), dir};
    }
    std::vector<fs::path> shards;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && e.path().extension() == ".safetensors") shards.push_back(e.path());
    }
    std::sort(shards.begin(), shards.end());
    DSV4_CHECK(!shards.empty(), FormatError,
               "checkpoint {}: no model.safetensors.index.json and no *.safetensors files",
               dir.string());
    return {config, shards, std::nullopt, dir};
  }

  const ModelConfig& config() const noexcept { return cfg_; }
  /// The directory (or config file) the checkpoint was opened from, for messages.
  const std::string& label() const noexcept { return label_; }
  /// The shard files, in index (file name) order.
  const std::vector<std::filesystem::path>& shards() const noexcept { return shard_paths_; }
  /// The index, when the checkpoint has one.
  const std::optional<CheckpointIndex>& index() const noexcept { return index_; }
  /// Every stored tensor, by shard then by name (MTP copies the reference drops included).
  const std::vector<CheckpointTensor>& tensors() const noexcept { return tensors_; }
  /// Sum of the stored tensors' bytes (equals the index's total_size).
  std::uint64_t total_bytes() const noexcept { return total_bytes_; }

  /// Number of tensors under reference names.
  std::size_t size() const noexcept { return by_reference_.size(); }
  /// The reference names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_reference_.size());
    for (const auto& [n, i] : by_reference_) out.push_back(n);
    return out;
  }

  // ---- TensorSource (reference names) ----
  /// From now on, reports the bytes of the tensors read (each counted once) against the bytes of
  /// all of them: the progress of a model being loaded from this checkpoint (io/load_meter.hpp).
  void report_reads(LoadMeter::Callback cb) {
    std::uint64_t total = 0;
    for (const CheckpointTensor& t : tensors_) {
      if (!t.reference.empty()) total += t.info->bytes.size();
    }
    meter_ = std::make_shared<LoadMeter>(total, std::move(cb));
  }

  bool has(std::string_view name) const { return by_reference_.find(name) != by_reference_.end(); }
  const TensorInfo& info(std::string_view name) const { return *entry(name).info; }
  std::vector<float> to_float(std::string_view name) const {
    const CheckpointTensor& t = entry(name);
    return files_[t.shard]->to_float(t.name);
  }

  // ---- zero-copy access ----
  /// The raw bytes of tensor `name` inside its mapped shard.
  std::span<const std::byte> bytes(std::string_view name) const { return entry(name).info->bytes; }
  /// Typed view of tensor `name` (dtype and alignment checked; SafetensorsFile::span).
  template <class T>
  std::span<const T> span(std::string_view name) const {
    const CheckpointTensor& t = entry(name);
    return files_[t.shard]->template span<T>(t.name);
  }
  /// An owner of the mapping that holds tensor `name`: views stay valid while it lives, after the
  /// Checkpoint is gone (the linear loaders hand it to Linear::view_bytes).
  std::shared_ptr<const void> keep_alive(std::string_view name) const {
    return files_[entry(name).shard];
  }
  /// The stored tensor behind reference name `name` (its file name, shard and header entry).
  const CheckpointTensor& stored(std::string_view name) const { return entry(name); }

 private:
  struct ParsedIndex {
    CheckpointIndex info;
    std::map<std::string, std::string> weight_map;           // tensor -> shard file
    std::map<std::string, std::vector<std::string>> shards;  // shard file -> its tensors
  };

  /// Reads and checks the JSON shape of an index file.
  static ParsedIndex read_index(const std::filesystem::path& path) {
    const std::string where = path.string();
    std::ifstream in(path, std::ios::binary);
    DSV4_CHECK(in.good(), FormatError, "{}: cannot be read", where);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // nlohmann keeps the last of repeated keys; a tensor listed twice must be an error instead.
    std::string top_key;
    std::string repeated;
    std::set<std::string> seen;
    const auto watch = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
      // An index nests three levels; deep nesting would make dump() (error messages) recurse.
      constexpr int kMaxDepth = 16;
      if ((ev == nlohmann::json::parse_event_t::object_start ||
           ev == nlohmann::json::parse_event_t::array_start) &&
          depth >= kMaxDepth) {
        throw FormatError(
            fmt::format("{}: arrays and objects nested deeper than {} levels (an index nests 3)",
                        where, kMaxDepth));
      }
      if (ev == nlohmann::json::parse_event_t::key) {
        if (depth == 1) top_key = v.get<std::string>();
        if (depth == 2 && top_key == "weight_map" && !seen.insert(v.get<std::string>()).second &&
            repeated.empty()) {
          repeated = v.get<std::string>();
        }
      }
      return true;
    };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text, watch);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(fmt::format("{}: not valid JSON: {}", where, e.what()));
    }
    DSV4_CHECK(j.is_object(), FormatError,
               "{}: expected a JSON object {{\"metadata\": ..., \"weight_map\": ...}}, found {}",
               where, j.type_name());
    DSV4_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), FormatError,
               "{}: expected a \"weight_map\" object (tensor name -> shard file), found {}", where,
               j.contains("weight_map") ? j["weight_map"].type_name() : "nothing");
    DSV4_CHECK(repeated.empty(), FormatError,
               "{}: weight_map lists tensor '{}' more than once; a tensor lives in one shard",
               where, repeated);
    ParsedIndex ix;
    ix.info.path = path;
    if (j.contains("metadata")) {
      const nlohmann::json& m = j["metadata"];
      DSV4_CHECK(m.is_object() || m.is_null(), FormatError,
                 "{}: \"metadata\" must be an object, found {}", where, m.type_name());
      if (m.is_object()) {
        for (const auto& [k, v] : m.items()) {
          if (k == "total_size") {
            DSV4_CHECK(
                v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0),
                FormatError, "{}: metadata.total_size must be a non-negative integer, found {}",
                where, v.dump());
            ix.info.total_size = v.get<std::uint64_t>();
          } else {
            ix.info.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
          }
        }
      }
    }
    const nlohmann::json& wm = j["weight_map"];
    DSV4_CHECK(!wm.empty(), FormatError, "{}: weight_map is empty", where);
    for (const auto& [tensor, file] : wm.items()) {
      DSV4_CHECK(file.is_string(), FormatError,
                 "{}: weight_map['{}'] must be a shard file name, found {}", where, tensor,
                 file.dump());
      const std::string f = file.get<std::string>();
      DSV4_CHECK(!f.empty() && f.find('/') == std::string::npos &&
                     f.find('\\') == std::string::npos && f != "." && f != "..",
                 FormatError, "{}: weight_map['{}'] = '{}' is not a plain file name", where, tensor,
                 f);
      ix.weight_map[tensor] = f;
      ix.shards[f].push_back(tensor);
    }
    return ix;
  }

  Checkpoint(const std::filesystem::path& config, const std::vector<std::filesystem::path>& shards,
             std::optional<ParsedIndex> index, const std::filesystem::path& dir)
      : label_(!dir.empty()               ? dir.string()
               : config.has_parent_path() ? config.parent_path().string()
                                          : config.string()),
        cfg_(load_config(config.string())),
        shard_paths_(shards) {
    DSV4_CHECK(!shards.empty(), FormatError, "checkpoint {}: no safetensors files", label_);
    std::map<std::string, std::size_t, std::less<>> where;  // stored name -> shard
    for (const auto& p : shards) {
      auto f = std::make_shared<SafetensorsFile>(p);  // maps; reads and validates the header
      const std::size_t s = files_.size();
      for (const std::string& n : f->names()) {
        const auto [it, fresh] = where.emplace(n, s);
        DSV4_CHECK(fresh, FormatError,
                   "checkpoint {}: tensor '{}' is in both {} and {}; a tensor lives in one shard",
                   label_, n, files_[it->second]->label(), f->label());
      }
      files_.push_back(std::move(f));
    }
    if (index) check_index(*index, where);
    for (std::size_t s = 0; s < files_.size(); ++s) {
      for (const std::string& n : files_[s]->names()) {
        const TensorInfo& ti = files_[s]->info(n);
        tensors_.push_back({n, reference_name(n).value_or(std::string()), s, &ti});
        total_bytes_ += ti.bytes.size();
      }
    }
    // before any per-tensor table of the config (layouts, conversions) is built
    check_config_fits(cfg_, total_bytes_, label_ + "/config.json");
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const CheckpointTensor& t = tensors_[i];
      if (t.reference.empty()) continue;
      const auto [it, fresh] = by_reference_.emplace(t.reference, i);
      DSV4_CHECK(fresh, FormatError,
                 "checkpoint {}: tensors '{}' ({}) and '{}' ({}) are both the reference's '{}' "
                 "(convert.py's renames); keep one spelling",
                 label_, tensors_[it->second].name, files_[tensors_[it->second].shard]->label(),
                 t.name, files_[t.shard]->label(), t.reference);
    }
    if (index) {
      if (index->info.total_size) {
        DSV4_CHECK(*index->info.total_size == total_bytes_, FormatError,
                   "{}: metadata.total_size is {} but the shards' tensors hold {} bytes",
                   index->info.path.string(), *index->info.total_size, total_bytes_);
      }
      index_ = std::move(index->info);
    }
  }

  /// Every index entry is in the shard it names, and every shard tensor is in the index.
  void check_index(const ParsedIndex& ix,
                   const std::map<std::string, std::size_t, std::less<>>& where) const {
    const std::string idx = ix.info.path.string();
    std::map<std::string, std::size_t> shard_of_file;
    for (std::size_t s = 0; s < shard_paths_.size(); ++s) {
      shard_of_file[shard_paths_[s].filename().string()] = s;
    }
    for (const auto& [tensor, file] : ix.weight_map) {
      const std::size_t s = shard_of_file.at(file);
      if (files_[s]->has(tensor)) continue;
      const auto it = where.find(tensor);
      if (it != where.end()) {
        throw FormatError(fmt::format("{}: tensor '{}' is listed in shard {} but is stored in {}",
                                      idx, tensor, file, files_[it->second]->label()));
      }
      throw FormatError(fmt::format("{}: tensor '{}' is listed in shard {}, which does not hold it",
                                    idx, tensor, files_[s]->label()));
    }
    for (std::size_t s = 0; s < files_.size(); ++s) {
      for (const std::string& n : files_[s]->names()) {
        DSV4_CHECK(ix.weight_map.count(n) != 0, FormatError,
                   "{}: shard {} holds tensor '{}', which the index does not list", idx,
                   files_[s]->label(), n);
      }
    }
  }

  const CheckpointTensor& entry(std::string_view name) const {
    const auto it = by_reference_.find(name);
    DSV4_CHECK(it != by_reference_.end(), FormatError, "checkpoint {}: no tensor named '{}'",
               label_, name);
    const CheckpointTensor& t = tensors_[it->second];
    if (meter_) meter_->read(&t, t.info->bytes.size());
    return t;
  }

  std::string label_;
  ModelConfig cfg_;
  std::vector<std::filesystem::path> shard_paths_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::vector<CheckpointTensor> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_reference_;  // reference name -> tensors_
  std::shared_ptr<LoadMeter> meter_;                              // set by report_reads
  std::optional<CheckpointIndex> index_;
  std::uint64_t total_bytes_ = 0;
};

static_assert(TensorSource<Checkpoint>);

}  // namespace dsv4::io
