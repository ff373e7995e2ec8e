// A checkpoint: a config.json and the safetensors files holding its tensors, in reference names.
//
// Spec: spec/formats.md §10.1 (reference tensor names), §1.4 of architecture.md (config.json in
// either naming scheme). A directory is read as the Hugging Face release lays it out: config.json
// plus the shards named by model.safetensors.index.json, or every *.safetensors file when there is
// no index. Tensor names must be unique across shards; the checkpoint is a TensorSource, so the
// layer loaders read a block's tensors from whichever shards hold them.
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
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/config_json.hpp"
#include "dsv4/io/safetensors.hpp"

namespace dsv4::io {

class Checkpoint {
 public:
  /// Opens `config` and the given safetensors shards.
  Checkpoint(const std::filesystem::path& config, const std::vector<std::filesystem::path>& shards)
      : label_(config.has_parent_path() ? config.parent_path().string() : config.string()),
        cfg_(load_config(config.string())) {
    DSV4_CHECK(!shards.empty(), FormatError, "checkpoint {}: no safetensors files", label_);
    for (const auto& p : shards) {
      auto f = std::make_shared<SafetensorsFile>(p);
      const std::size_t idx = files_.size();
      for (const std::string& n : f->names()) {
        const auto [it, fresh] = where_.emplace(n, idx);
        DSV4_CHECK(fresh, FormatError, "checkpoint {}: tensor '{}' is in both {} and {}", label_, n,
                   files_[it->second]->label(), f->label());
      }
      files_.push_back(std::move(f));
    }
  }

  /// Opens a checkpoint directory: config.json plus the shards listed in
  /// model.safetensors.index.json ("weight_map"), or every *.safetensors file without an index.
  static Checkpoint open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    DSV4_CHECK(fs::is_directory(dir), FormatError, "checkpoint {}: not a directory", dir.string());
    const fs::path config = dir / "config.json";
    DSV4_CHECK(fs::exists(config), FormatError, "checkpoint {}: no config.json", dir.string());
    std::vector<fs::path> shards;
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
      std::ifstream in(index, std::ios::binary);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("{}: not valid JSON: {}", index.string(), e.what()));
      }
      DSV4_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                 FormatError, "{}: expected an object with a \"weight_map\" object",
                 index.string());
      std::set<std::string> names;
      for (const auto& [tensor, file] : j["weight_map"].items()) {
        DSV4_CHECK(file.is_string(), FormatError, "{}: weight_map['{}'] is not a file name",
                   index.string(), tensor);
        names.insert(file.get<std::string>());
      }
      for (const std::string& n : names) {
        DSV4_CHECK(n.find('/') == std::string::npos && n.find('\\') == std::string::npos &&
                       n != ".." && n != ".",
                   FormatError, "{}: shard name '{}' is not a plain file name", index.string(), n);
        shards.push_back(dir / n);
      }
    } else {
      for (const auto& e : fs::directory_iterator(dir)) {
        if (e.is_regular_file() && e.path().extension() == ".safetensors") {
          shards.push_back(e.path());
        }
      }
      std::sort(shards.begin(), shards.end());
    }
    DSV4_CHECK(!shards.empty(), FormatError, "checkpoint {}: no *.safetensors files", dir.string());
    return {config, shards};
  }

  const ModelConfig& config() const noexcept { return cfg_; }
  const std::string& label() const noexcept { return label_; }
  std::size_t size() const noexcept { return where_.size(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(where_.size());
    for (const auto& [n, i] : where_) out.push_back(n);
    return out;
  }

  // ---- TensorSource ----
  bool has(std::string_view name) const { return where_.find(std::string(name)) != where_.end(); }
  const TensorInfo& info(std::string_view name) const { return file_of(name).info(name); }
  std::vector<float> to_float(std::string_view name) const { return file_of(name).to_float(name); }

 private:
  const SafetensorsFile& file_of(std::string_view name) const {
    auto it = where_.find(std::string(name));
    DSV4_CHECK(it != where_.end(), FormatError, "checkpoint {}: no tensor named '{}'", label_,
               name);
    return *files_[it->second];
  }

  std::string label_;
  ModelConfig cfg_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t, std::less<>> where_;
};

}  // namespace dsv4::io
