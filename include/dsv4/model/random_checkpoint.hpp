// Seeded random checkpoints for any configuration: every tensor of the bf16 release layout
// (io/checkpoint_layout.hpp), drawn with the initialisation recipe of the golden reference data
// set (tiny_a, tiny_b), written as a checkpoint directory (config.json in reference names plus one
// model.safetensors, io/safetensors_writer.hpp) that Model::load reads.
//
// Spec: spec/formats.md §10.1 (reference tensor names), spec/architecture.md §1.4 (config.json).
// Used where a configuration the golden data does not cover is needed, e.g. projections whose
// input widths are multiples of 256 so that every quantization format applies to every weight
// (docs/quantization.md).
//
// The recipe (weights rounded to bf16, the F32 tensors of the release stored as F32):
//   embed.weight            N(0, 1)
//   head.weight             N(0, 1) · 2 / sqrt(dim)
//   projections [out, in]   N(0, 1) / sqrt(in); wo_b and the experts' w2 times 0.3
//   norms                   1 + 0.1 · N(0, 1)
//   attn_sink               N(0, 1)
//   compressor ape          0.5 · N(0, 1)
//   hc_*_fn [m, k]          N(0, 1) / sqrt(k);  hc_*_base 0.5 · N(0, 1);  hc_*_scale 0.5 + U[0, 1)
//   ffn.gate.bias           0.1 · N(0, 1)
//   ffn.gate.tid2eid        per token, the first top-k of a random permutation of the experts
// The random stream is std::mt19937_64 with 53-bit uniforms and Box-Muller normals, so a seed
// gives the same checkpoint on every platform.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/config_json.hpp"
#include "dsv4/io/safetensors_writer.hpp"

namespace dsv4 {

/// One tensor of a generated checkpoint: safetensors dtype, shape and little-endian bytes.
struct GeneratedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> bytes;
};

namespace detail::random_ckpt {

/// Uniforms in [0, 1) with 53 bits and Box-Muller normals from one mt19937_64 stream.
class Stream {
 public:
  explicit Stream(std::uint64_t seed) : rng_(seed) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1p-53; }
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  std::uint64_t below(std::uint64_t n) { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

inline bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

template <class T>
std::vector<std::byte> to_bytes(const std::vector<T>& v) {
  std::vector<std::byte> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

/// Values of one floating tensor by the recipe in the file comment (before storage rounding).
inline std::vector<float> draw(Stream& s, std::string_view name,
                               const std::vector<std::int64_t>& shape, const ModelConfig& c) {
  std::size_t n = 1;
  for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
  const double in = shape.size() == 2 ? static_cast<double>(shape[1]) : 1.0;
  std::vector<float> v(n);
  auto fill = [&](auto f) {
    for (float& x : v) x = static_cast<float>(f());
  };
  namespace tn = tensor_names;
  if (name == tn::embed) {
    fill([&] { return s.normal(); });
  } else if (name == tn::head) {
    fill([&] { return s.normal() * 2.0 / std::sqrt(static_cast<double>(c.dim)); });
  } else if (ends_with(name, tn::norm)) {
    fill([&] { return 1.0 + 0.1 * s.normal(); });
  } else if (ends_with(name, tn::attn_sink)) {
    fill([&] { return s.normal(); });
  } else if (ends_with(name, tn::join("", tn::ape))) {
    fill([&] { return 0.5 * s.normal(); });
  } else if (ends_with(name, tn::hc_fn)) {
    fill([&] { return s.normal() / std::sqrt(in); });
  } else if (ends_with(name, tn::hc_base)) {
    fill([&] { return 0.5 * s.normal(); });
  } else if (ends_with(name, tn::hc_scale)) {
    fill([&] { return 0.5 + s.uniform(); });
  } else if (ends_with(name, tn::join(tn::gate, tn::bias))) {
    fill([&] { return 0.1 * s.normal(); });
  } else {
    DSV4_CHECK(shape.size() == 2 && ends_with(name, tn::join("", tn::weight)), ConfigError,
               "random checkpoint: no initialisation rule for tensor '{}'", name);
    const double gain = ends_with(name, tn::wo_b) || ends_with(name, tn::w2) ? 0.3 : 1.0;
    fill([&] { return s.normal() / std::sqrt(in) * gain; });
  }
  return v;
}

}  // namespace detail::random_ckpt

/// A tiny DeepSeek-V4 (full structure: CSA, HCA and SWA blocks, hash- and score-routed MoE with a
/// shared expert, mHC) whose projection widths are all multiples of 256, so that every weight
/// format, the 256-value k-quants and their Q8_K activation partner included, applies to every
/// projection without a fallback. No MTP block (prefill logits do not use it).
inline ModelConfig tiny256_config() {
  ModelConfig c;
  c.max_batch_size = 1;
  c.max_seq_len = 64;
  c.dtype = WeightDtype::bf16;
  c.expert_dtype = WeightDtype::bf16;
  c.vocab_size = 512;
  c.dim = 256;
  c.moe_inter_dim = 256;
  c.n_layers = 3;
  c.n_hash_layers = 1;
  c.n_mtp_layers = 0;
  c.n_heads = 2;
  c.n_routed_experts = 4;
  c.n_shared_experts = 1;
  c.n_activated_experts = 2;
  c.route_scale = 1.5;
  c.swiglu_limit = 10.0;
  c.q_lora_rank = 256;
  c.head_dim = 128;
  c.rope_head_dim = 64;
  c.o_groups = 2;
  c.o_lora_rank = 128;
  c.window_size = 8;
  c.compress_ratios = {4, 8, 0};
  c.index_n_heads = 4;
  c.index_head_dim = 128;
  c.index_topk = 4;
  return c;
}

/// config.json content for `c` in the reference's ModelArgs names (what io::load_config reads).
inline nlohmann::ordered_json reference_config_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["max_batch_size"] = c.max_batch_size;
  j["max_seq_len"] = c.max_seq_len;
  j["dtype"] = weight_dtype_name(c.dtype);
  if (c.expert_dtype == c.dtype) {
    j["expert_dtype"] = nullptr;
  } else {
    j["expert_dtype"] = weight_dtype_name(c.expert_dtype);
  }
  j["scale_fmt"] = c.scale_fmt;
  j["scale_dtype"] = c.scale_dtype;
  j["vocab_size"] = c.vocab_size;
  j["dim"] = c.dim;
  j["moe_inter_dim"] = c.moe_inter_dim;
  j["n_layers"] = c.n_layers;
  j["n_hash_layers"] = c.n_hash_layers;
  j["n_mtp_layers"] = c.n_mtp_layers;
  j["n_heads"] = c.n_heads;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["n_activated_experts"] = c.n_activated_experts;
  j["score_func"] = c.score_func;
  j["route_scale"] = c.route_scale;
  j["swiglu_limit"] = c.swiglu_limit;
  j["q_lora_rank"] = c.q_lora_rank;
  j["head_dim"] = c.head_dim;
  j["rope_head_dim"] = c.rope_head_dim;
  j["norm_eps"] = c.norm_eps;
  j["o_groups"] = c.o_groups;
  j["o_lora_rank"] = c.o_lora_rank;
  j["window_size"] = c.window_size;
  j["compress_ratios"] = c.compress_ratios;
  j["compress_rope_theta"] = c.compress_rope_theta;
  j["original_seq_len"] = c.original_seq_len;
  j["rope_theta"] = c.rope_theta;
  j["rope_factor"] = c.rope_factor;
  j["beta_fast"] = c.beta_fast;
  j["beta_slow"] = c.beta_slow;
  j["index_n_heads"] = c.index_n_heads;
  j["index_head_dim"] = c.index_head_dim;
  j["index_topk"] = c.index_topk;
  j["hc_mult"] = c.hc_mult;
  j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
  j["hc_eps"] = c.hc_eps;
  return j;
}

/// Every tensor of the bf16 release layout of `cfg` (release_tensors with dtype and expert_dtype
/// bf16), drawn from `seed`. Throws ConfigError for an invalid config.
inline std::vector<GeneratedTensor> random_weights(ModelConfig cfg, std::uint64_t seed) {
  cfg.dtype = WeightDtype::bf16;
  cfg.expert_dtype = WeightDtype::bf16;
  validate(cfg, "random checkpoint config");
  detail::random_ckpt::Stream s(seed);
  std::vector<GeneratedTensor> out;
  for (const ReleaseTensor& rt : release_tensors(cfg)) {
    GeneratedTensor t;
    t.name = rt.name;
    t.shape.assign(rt.shape.begin(), rt.shape.end());
    if (rt.dtype == ReleaseDtype::i64) {
      const auto rows = static_cast<std::size_t>(rt.shape[0]);
      const auto k = static_cast<std::size_t>(rt.shape[1]);
      std::vector<std::int64_t> ids(rows * k);
      std::vector<std::int64_t> perm(static_cast<std::size_t>(cfg.n_routed_experts));
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t e = 0; e < perm.size(); ++e) perm[e] = static_cast<std::int64_t>(e);
        for (std::size_t e = perm.size(); e > 1; --e) std::swap(perm[e - 1], perm[s.below(e)]);
        std::copy_n(perm.begin(), k, ids.begin() + static_cast<std::ptrdiff_t>(r * k));
      }
      t.dtype = DType::I64;
      t.bytes = detail::random_ckpt::to_bytes(ids);
    } else {
      const std::vector<float> v = detail::random_ckpt::draw(s, rt.name, rt.shape, cfg);
      if (rt.dtype == ReleaseDtype::f32) {
        std::vector<float> r(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) r[i] = bf16(v[i]).to_float();
        t.dtype = DType::F32;
        t.bytes = detail::random_ckpt::to_bytes(r);
      } else {
        DSV4_CHECK(rt.dtype == ReleaseDtype::bf16, ConfigError,
                   "random checkpoint: tensor '{}' has release dtype {}, expected BF16 or F32",
                   rt.name, release_dtype_name(rt.dtype));
        std::vector<bf16> r(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) r[i] = bf16(v[i]);
        t.dtype = DType::BF16;
        t.bytes = detail::random_ckpt::to_bytes(r);
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

/// Writes a checkpoint directory `dir` (created if needed): config.json for `cfg` (dtype bf16)
/// and model.safetensors with random_weights(cfg, seed).
inline void write_random_checkpoint(const std::filesystem::path& dir, ModelConfig cfg,
                                    std::uint64_t seed) {
  cfg.dtype = WeightDtype::bf16;
  cfg.expert_dtype = WeightDtype::bf16;
  const std::vector<GeneratedTensor> tensors = random_weights(cfg, seed);
  std::filesystem::create_directories(dir);
  {
    std::ofstream j(dir / "config.json", std::ios::trunc);
    j << reference_config_json(cfg).dump(1) << "\n";
    DSV4_CHECK(j.good(), Error, "random checkpoint: cannot write {}",
               (dir / "config.json").string());
  }
  io::SafetensorsWriter writer;
  for (const GeneratedTensor& t : tensors) writer.add(t.name, t.dtype, t.shape, t.bytes);
  writer.write(dir / "model.safetensors");
}

}  // namespace dsv4
