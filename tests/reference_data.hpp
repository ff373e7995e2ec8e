// The tiny reference checkpoints of tests/data/reference/{tiny_a,tiny_b} (golden reference data
// set: config.json, weights, golden logits, per-layer intermediates) and the error measures the
// layer and model tests report.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <dsv4/core/config.hpp>
#include <dsv4/io/config_json.hpp>
#include <dsv4/io/safetensors.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace dsv4::test {

/// One tiny reference configuration with its files, opened once per process.
struct ReferenceCase {
  std::string name;  // "tiny_a" / "tiny_b"
  ModelConfig cfg;
  io::SafetensorsFile weights;

  explicit ReferenceCase(const std::string& n)
      : name(n),
        cfg(load_config(data_path("reference/" + n + "/config.json").string())),
        weights(data_path("reference/" + n + "/weights.safetensors")) {}

  /// "golden_fp32" / "golden_bf16" / "intermediates_fp32" / "intermediates_bf16"; nullptr when the
  /// repository does not carry that file (tiny_b has no bf16 intermediates).
  const io::SafetensorsFile* file(const std::string& stem) const {
    auto it = files_.find(stem);
    if (it != files_.end()) return it->second.get();
    const auto path = data_path("reference/" + name + "/" + stem + ".safetensors");
    std::unique_ptr<io::SafetensorsFile> f;
    if (std::filesystem::exists(path)) f = std::make_unique<io::SafetensorsFile>(path);
    return files_.emplace(stem, std::move(f)).first->second.get();
  }

  /// Block prefixes in the weights: "layers.0" … and "mtp.0" …; intermediates use
  /// "prefill.layers.L." and "mtp_prefill.mtp.J.".
  std::vector<std::string> blocks() const {
    std::vector<std::string> out;
    for (int l = 0; l < cfg.n_layers; ++l) out.push_back("layers." + std::to_string(l));
    for (int j = 0; j < cfg.n_mtp_layers; ++j) out.push_back("mtp." + std::to_string(j));
    return out;
  }
  static std::string intermediate_prefix(const std::string& block) {
    return (block.rfind("mtp.", 0) == 0 ? "mtp_prefill." : "prefill.") + block + ".";
  }
  /// Layer id of a block prefix (MTP block j is n_layers + j).
  int layer_id(const std::string& block) const {
    const auto dot = block.find('.');
    const int i = std::stoi(block.substr(dot + 1));
    return block.rfind("mtp.", 0) == 0 ? cfg.n_layers + i : i;
  }

 private:
  mutable std::map<std::string, std::unique_ptr<io::SafetensorsFile>> files_;
};

inline const ReferenceCase& reference_case(const std::string& name) {
  static std::map<std::string, std::unique_ptr<ReferenceCase>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, std::make_unique<ReferenceCase>(name)).first;
  return *it->second;
}

/// Integer tensor as int32.
inline std::vector<std::int32_t> read_i32(const io::SafetensorsFile& f, const std::string& name) {
  const auto s = f.span<std::int32_t>(name);
  return {s.begin(), s.end()};
}

/// Error of `got` against `want`: max |d|, mean |d|, max |d| / max |want|, rel-L2.
struct ErrorStats {
  double max_abs = 0;
  double mean_abs = 0;
  double max_rel = 0;  // max |d| relative to max |want|
  double rel_l2 = 0;
  std::size_t n = 0;

  std::string str() const {
    return fmt::format("max abs {:.3g}, mean abs {:.3g}, max rel {:.3g}, rel-L2 {:.3g}", max_abs,
                       mean_abs, max_rel, rel_l2);
  }
};

inline ErrorStats compare(std::span<const float> got, std::span<const float> want) {
  REQUIRE(got.size() == want.size());
  ErrorStats s;
  s.n = got.size();
  double sum = 0, d2 = 0, w2 = 0, wmax = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    s.max_abs = std::max(s.max_abs, d);
    sum += d;
    d2 += d * d;
    w2 += static_cast<double>(want[i]) * want[i];
    wmax = std::max(wmax, std::fabs(static_cast<double>(want[i])));
  }
  s.mean_abs = s.n ? sum / static_cast<double>(s.n) : 0;
  s.max_rel = wmax > 0 ? s.max_abs / wmax : s.max_abs;
  s.rel_l2 = w2 > 0 ? std::sqrt(d2 / w2) : std::sqrt(d2);
  return s;
}

/// Running maximum over several comparisons (for one summary line per test).
struct ErrorSummary {
  ErrorStats worst;
  void add(const ErrorStats& s) {
    worst.max_abs = std::max(worst.max_abs, s.max_abs);
    worst.mean_abs = std::max(worst.mean_abs, s.mean_abs);
    worst.max_rel = std::max(worst.max_rel, s.max_rel);
    worst.rel_l2 = std::max(worst.rel_l2, s.rel_l2);
    worst.n += s.n;
  }
};

}  // namespace dsv4::test
