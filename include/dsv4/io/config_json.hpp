// Reading and validating a DeepSeek-V4 `config.json`.
//
// Accepted forms (spec/architecture.md §1.1, §1.4):
//  * the reference `inference/config.json`: `ModelArgs` field names (`dim`, `n_layers`, ...); an
//    unknown key is an error, as it is for `ModelArgs(**config)`;
//  * the Hugging Face `config.json` (`hidden_size`, `num_hidden_layers`, `rope_scaling`,
//    `quantization_config`, ...); keys with no effect on the computation are ignored;
//  * either of them wrapped as `{"model_args": {...}}` (the layout of spec/configs/*.json).
// Missing fields take the `ModelArgs` defaults (ModelConfig's). Then `validate()` checks what the
// reference asserts or silently requires, with an error naming the field.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/io/json_parse.hpp"

namespace dsv4 {

/// Name of a weight storage type as configs spell it.
constexpr const char* weight_dtype_name(WeightDtype d) {
  switch (d) {
    case WeightDtype::bf16:
      return "bf16";
    case WeightDtype::fp8:
      return "fp8";
    case WeightDtype::fp4:
      return "fp4";
    case WeightDtype::f32:
      return "f32";
  }
  return "?";
}

/// Fixed ceilings a configuration must respect (validate()), far above any DeepSeek-V4 model
/// (V4-Pro: dim 7168, 61 + 1 blocks, 384 experts, vocabulary 129,280) and low enough that the
/// tables built from a config (per-tensor and per-expert lists) cost a few MB at most.
struct config_limits {
  static constexpr std::int64_t max_batch_size = std::int64_t{1} << 20;
  static constexpr std::int64_t max_seq_len = std::int64_t{1} << 32;
  static constexpr std::int64_t vocab_size = std::int64_t{1} << 24;
  static constexpr std::int64_t width = std::int64_t{1} << 20;  ///< dim, ranks, moe_inter_dim
  static constexpr std::int64_t blocks = 1024;                  ///< n_layers, n_mtp_layers
  static constexpr std::int64_t heads = std::int64_t{1} << 14;
  static constexpr std::int64_t head_dim = std::int64_t{1} << 16;
  static constexpr std::int64_t experts = 4096;            ///< n_routed_experts
  static constexpr std::int64_t expert_tensors = 1 << 15;  ///< blocks x n_routed_experts
  static constexpr std::int64_t hc_mult = 64;
  static constexpr std::int64_t sinkhorn_iters = 1 << 16;
};

namespace config_detail {

using json = nlohmann::json;

[[noreturn]] inline void fail(std::string_view origin, std::string_view msg) {
  throw ConfigError(fmt::format("{}: {}", origin, msg));
}

inline std::int64_t get_int(const json& v, std::string_view key, std::string_view origin) {
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t{INT64_MAX})
    fail(origin, fmt::format("field '{}' = {} is out of range", key, v.dump()));
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
      return static_cast<std::int64_t>(d);
  }
  fail(origin, fmt::format("field '{}' must be an integer, got {}", key, v.dump()));
}

inline double get_double(const json& v, std::string_view key, std::string_view origin) {
  if (v.is_number()) {
    const double d = v.get<double>();
    if (std::isfinite(d)) return d;
  }
  fail(origin, fmt::format("field '{}' must be a finite number, got {}", key, v.dump()));
}

inline std::string get_string(const json& v, std::string_view key, std::string_view origin) {
  if (v.is_string()) return v.get<std::string>();
  fail(origin, fmt::format("field '{}' must be a string, got {}", key, v.dump()));
}

inline int narrow_int(std::int64_t v, std::string_view key, std::string_view origin) {
  if (v < -(std::int64_t{1} << 31) || v >= (std::int64_t{1} << 31))
    fail(origin, fmt::format("field '{}' = {} is out of range", key, v));
  return static_cast<int>(v);
}

inline WeightDtype parse_weight_dtype(const json& v, std::string_view key, std::string_view origin,
                                      std::initializer_list<WeightDtype> allowed) {
  const std::string s = get_string(v, key, origin);
  for (WeightDtype d : allowed)
    if (s == weight_dtype_name(d)) return d;
  std::string names;
  for (WeightDtype d : allowed)
    names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", weight_dtype_name(d));
  fail(origin, fmt::format("field '{}' = \"{}\" is not one of {}", key, s, names));
}

/// Sets one ModelArgs-named field from `v`. Returns false for an unknown name.
inline bool set_field(ModelConfig& c, std::string_view key, const json& v,
                      std::string_view origin) {
  auto i64 = [&](std::int64_t& f) { f = get_int(v, key, origin); };
  auto i32 = [&](int& f) { f = narrow_int(get_int(v, key, origin), key, origin); };
  auto dbl = [&](double& f) { f = get_double(v, key, origin); };
  if (key == "max_batch_size") return i32(c.max_batch_size), true;
  if (key == "max_seq_len") return i64(c.max_seq_len), true;
  if (key == "dtype") {
    c.dtype = parse_weight_dtype(v, key, origin, {WeightDtype::bf16, WeightDtype::fp8});
    return true;
  }
  if (key == "expert_dtype") {
    // null: experts use the default weight type (`dtype`); resolved after all fields are read.
    if (!v.is_null())
      c.expert_dtype = parse_weight_dtype(v, key, origin,
                                          {WeightDtype::fp4, WeightDtype::fp8, WeightDtype::bf16});
    return true;
  }
  if (key == "scale_fmt") {
    if (v.is_null()) {
      c.scale_fmt.clear();
    } else {
      c.scale_fmt = get_string(v, key, origin);
      if (c.scale_fmt != "ue8m0")
        fail(origin,
             fmt::format("field 'scale_fmt' = \"{}\" is not null or \"ue8m0\"", c.scale_fmt));
    }
    return true;
  }
  if (key == "scale_dtype") {
    c.scale_dtype = get_string(v, key, origin);
    if (c.scale_dtype != "fp8" && c.scale_dtype != "fp32")
      fail(origin,
           fmt::format("field 'scale_dtype' = \"{}\" is not \"fp8\" or \"fp32\"", c.scale_dtype));
    return true;
  }
  if (key == "vocab_size") return i64(c.vocab_size), true;
  if (key == "dim") return i64(c.dim), true;
  if (key == "moe_inter_dim") return i64(c.moe_inter_dim), true;
  if (key == "n_layers") return i32(c.n_layers), true;
  if (key == "n_hash_layers") return i32(c.n_hash_layers), true;
  if (key == "n_mtp_layers") return i32(c.n_mtp_layers), true;
  if (key == "n_heads") return i64(c.n_heads), true;
  if (key == "n_routed_experts") return i64(c.n_routed_experts), true;
  if (key == "n_shared_experts") return i64(c.n_shared_experts), true;
  if (key == "n_activated_experts") return i64(c.n_activated_experts), true;
  if (key == "score_func") return c.score_func = get_string(v, key, origin), true;
  if (key == "route_scale") return dbl(c.route_scale), true;
  if (key == "swiglu_limit") return dbl(c.swiglu_limit), true;
  if (key == "q_lora_rank") return i64(c.q_lora_rank), true;
  if (key == "head_dim") return i64(c.head_dim), true;
  if (key == "rope_head_dim") return i64(c.rope_head_dim), true;
  if (key == "norm_eps") return dbl(c.norm_eps), true;
  if (key == "o_groups") return i64(c.o_groups), true;
  if (key == "o_lora_rank") return i64(c.o_lora_rank), true;
  if (key == "window_size") return i64(c.window_size), true;
  if (key == "compress_ratios") {
    if (!v.is_array()) fail(origin, "field 'compress_ratios' must be an array of integers");
    c.compress_ratios.clear();
    for (const json& r : v)
      c.compress_ratios.push_back(narrow_int(get_int(r, "compress_ratios[]", origin), key, origin));
    return true;
  }
  if (key == "compress_rope_theta") return dbl(c.compress_rope_theta), true;
  if (key == "original_seq_len") return i64(c.original_seq_len), true;
  if (key == "rope_theta") return dbl(c.rope_theta), true;
  if (key == "rope_factor") return dbl(c.rope_factor), true;
  if (key == "beta_fast") return dbl(c.beta_fast), true;
  if (key == "beta_slow") return dbl(c.beta_slow), true;
  if (key == "index_n_heads") return i64(c.index_n_heads), true;
  if (key == "index_head_dim") return i64(c.index_head_dim), true;
  if (key == "index_topk") return i64(c.index_topk), true;
  if (key == "hc_mult") return i32(c.hc_mult), true;
  if (key == "hc_sinkhorn_iters") return i32(c.hc_sinkhorn_iters), true;
  if (key == "hc_eps") return dbl(c.hc_eps), true;
  return false;
}

/// Hugging Face name -> ModelArgs name, for the fields whose names differ (spec §1.1).
inline std::optional<std::string_view> hf_to_reference(std::string_view hf) {
  struct Pair {
    std::string_view hf, ref;
  };
  static constexpr Pair pairs[] = {
      {"hidden_size", "dim"},
      {"num_hidden_layers", "n_layers"},
      {"num_nextn_predict_layers", "n_mtp_layers"},
      {"num_hash_layers", "n_hash_layers"},
      {"num_attention_heads", "n_heads"},
      {"qk_rope_head_dim", "rope_head_dim"},
      {"sliding_window", "window_size"},
      {"num_experts_per_tok", "n_activated_experts"},
      {"moe_intermediate_size", "moe_inter_dim"},
      {"scoring_func", "score_func"},
      {"routed_scaling_factor", "route_scale"},
      {"rms_norm_eps", "norm_eps"},
  };
  for (const Pair& p : pairs)
    if (p.hf == hf) return p.ref;
  return std::nullopt;
}

/// Fields shared by both naming schemes (same name and meaning).
inline bool is_common_field(std::string_view k) {
  static constexpr std::string_view names[] = {"vocab_size",
                                               "head_dim",
                                               "q_lora_rank",
                                               "o_groups",
                                               "o_lora_rank",
                                               "compress_ratios",
                                               "compress_rope_theta",
                                               "rope_theta",
                                               "n_routed_experts",
                                               "n_shared_experts",
                                               "swiglu_limit",
                                               "index_n_heads",
                                               "index_head_dim",
                                               "index_topk",
                                               "hc_mult",
                                               "hc_sinkhorn_iters",
                                               "hc_eps",
                                               "expert_dtype"};
  for (std::string_view n : names)
    if (n == k) return true;
  return false;
}

/// Fields a Hugging Face config.json must have: they define the tensor shapes, and the Hugging
/// Face form documents no default for them (ModelArgs' defaults are V4-Pro's sizes, which a
/// missing field must not silently become).
inline constexpr std::string_view kHfRequired[] = {
    "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
    "head_dim",    "qk_rope_head_dim",  "q_lora_rank",         "o_lora_rank",
    "o_groups",    "n_routed_experts",  "num_experts_per_tok", "moe_intermediate_size"};

inline ModelConfig parse_hf(const json& j, std::string_view origin) {
  for (const std::string_view k : kHfRequired) {
    if (!j.contains(k))
      fail(origin, fmt::format("required field '{}' is missing (it has no default)", k));
  }
  ModelConfig c;
  c.dtype = WeightDtype::bf16;  // no quantization_config: plain bf16 weights
  bool expert_null = !j.contains("expert_dtype");
  for (const auto& [key, value] : j.items()) {
    if (key == "num_key_value_heads") {
      if (get_int(value, key, origin) != 1)
        fail(origin, fmt::format("field 'num_key_value_heads' = {}: V4 has one shared KV head",
                                 value.dump()));
    } else if (key == "max_position_embeddings") {
      c.max_seq_len = get_int(value, key, origin);
    } else if (key == "rope_scaling") {
      if (value.is_null()) {
        c.original_seq_len = 0;  // no YaRN
        continue;
      }
      if (!value.is_object()) fail(origin, "field 'rope_scaling' must be an object or null");
      for (const auto& [k, v] : value.items()) {
        if (k == "factor")
          c.rope_factor = get_double(v, "rope_scaling.factor", origin);
        else if (k == "original_max_position_embeddings")
          c.original_seq_len = get_int(v, "rope_scaling.original_max_position_embeddings", origin);
        else if (k == "beta_fast")
          c.beta_fast = get_double(v, "rope_scaling.beta_fast", origin);
        else if (k == "beta_slow")
          c.beta_slow = get_double(v, "rope_scaling.beta_slow", origin);
        else if (k == "type" || k == "rope_type") {
          const std::string t = get_string(v, "rope_scaling.type", origin);
          if (t != "yarn")
            fail(origin,
                 fmt::format("rope_scaling type \"{}\" is not supported (V4 uses \"yarn\")", t));
        }
      }
    } else if (key == "quantization_config") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail(origin, "field 'quantization_config' must be an object");
      if (value.contains("quant_method")) {
        const std::string m =
            get_string(value["quant_method"], "quantization_config.quant_method", origin);
        if (m != "fp8")
          fail(
              origin,
              fmt::format("quantization_config.quant_method \"{}\" is not supported (\"fp8\")", m));
        c.dtype = WeightDtype::fp8;
      }
      if (value.contains("scale_fmt")) set_field(c, "scale_fmt", value["scale_fmt"], origin);
      if (value.contains("weight_block_size")) {
        const json& b = value["weight_block_size"];
        if (!(b.is_array() && b.size() == 2 && b[0] == 128 && b[1] == 128))
          fail(origin,
               fmt::format("quantization_config.weight_block_size {} is not [128, 128]", b.dump()));
      }
    } else if (auto ref = hf_to_reference(key)) {
      set_field(c, *ref, value, origin);
    } else if (is_common_field(key)) {
      if (key == "expert_dtype") expert_null = value.is_null();
      set_field(c, key, value, origin);
    }
    // everything else (architectures, model_type, torch_dtype, bos/eos ids, ...) has no effect
  }
  if (expert_null) c.expert_dtype = c.dtype;
  return c;
}

inline ModelConfig parse_reference(const json& j, std::string_view origin) {
  ModelConfig c;
  bool expert_null = false;
  for (const auto& [key, value] : j.items()) {
    if (!set_field(c, key, value, origin))
      fail(origin, fmt::format("unknown field '{}' (not a ModelArgs field)", key));
    if (key == "expert_dtype") expert_null = value.is_null();
  }
  if (expert_null) c.expert_dtype = c.dtype;
  return c;
}

}  // namespace config_detail

/// Checks a configuration the way the reference asserts or silently requires (spec §1.4's
/// checklist); throws ConfigError naming the offending field.
inline void validate(const ModelConfig& c, std::string_view origin = "config") {
  using config_detail::fail;
  auto positive = [&](std::int64_t v, const char* name) {
    if (v <= 0) fail(origin, fmt::format("'{}' must be positive, got {}", name, v));
  };
  positive(c.max_batch_size, "max_batch_size");
  positive(c.max_seq_len, "max_seq_len");
  positive(c.vocab_size, "vocab_size");
  positive(c.dim, "dim");
  positive(c.moe_inter_dim, "moe_inter_dim");
  positive(c.n_layers, "n_layers");
  positive(c.n_heads, "n_heads");
  positive(c.n_routed_experts, "n_routed_experts");
  positive(c.n_activated_experts, "n_activated_experts");
  positive(c.q_lora_rank, "q_lora_rank");
  positive(c.head_dim, "head_dim");
  positive(c.rope_head_dim, "rope_head_dim");
  positive(c.o_groups, "o_groups");
  positive(c.o_lora_rank, "o_lora_rank");
  positive(c.window_size, "window_size");
  positive(c.hc_mult, "hc_mult");
  positive(c.hc_sinkhorn_iters, "hc_sinkhorn_iters");
  if (c.n_mtp_layers < 0)
    fail(origin, fmt::format("'n_mtp_layers' must be >= 0, got {}", c.n_mtp_layers));
  // Fixed sanity ceilings (config_limits): every table built from a config stays small before
  // any tensor is read, whatever the numbers in the file.
  auto at_most = [&](std::int64_t v, std::int64_t limit, const char* name) {
    if (v > limit)
      fail(origin, fmt::format("'{}' = {} is larger than dsv4's limit {}", name, v, limit));
  };
  using L = config_limits;
  at_most(c.max_batch_size, L::max_batch_size, "max_batch_size");
  at_most(c.max_seq_len, L::max_seq_len, "max_seq_len");
  at_most(c.vocab_size, L::vocab_size, "vocab_size");
  at_most(c.dim, L::width, "dim");
  at_most(c.moe_inter_dim, L::width, "moe_inter_dim");
  at_most(c.q_lora_rank, L::width, "q_lora_rank");
  at_most(c.o_lora_rank, L::width, "o_lora_rank");
  at_most(c.n_layers, L::blocks, "n_layers");
  at_most(c.n_mtp_layers, L::blocks, "n_mtp_layers");
  at_most(c.n_heads, L::heads, "n_heads");
  at_most(c.head_dim, L::head_dim, "head_dim");
  at_most(c.rope_head_dim, L::head_dim, "rope_head_dim");
  at_most(c.o_groups, L::heads, "o_groups");
  at_most(c.n_routed_experts, L::experts, "n_routed_experts");
  at_most(c.window_size, L::max_seq_len, "window_size");
  at_most(c.index_n_heads, L::heads, "index_n_heads");
  at_most(c.index_head_dim, L::head_dim, "index_head_dim");
  at_most(c.index_topk, L::max_seq_len, "index_topk");
  at_most(c.hc_mult, L::hc_mult, "hc_mult");
  at_most(c.hc_sinkhorn_iters, L::sinkhorn_iters, "hc_sinkhorn_iters");
  if ((std::int64_t{c.n_layers} + c.n_mtp_layers) * c.n_routed_experts > L::expert_tensors) {
    fail(origin, fmt::format("(n_layers + n_mtp_layers) x n_routed_experts = {} x {} is larger "
                             "than dsv4's limit {} experts in all",
                             std::int64_t{c.n_layers} + c.n_mtp_layers, c.n_routed_experts,
                             L::expert_tensors));
  }
  // The derived sizes (ModelConfig's accessors, the tensor shapes) must be representable.
  if (std::int64_t{c.n_layers} + c.n_mtp_layers > INT32_MAX)
    fail(origin, fmt::format("n_layers + n_mtp_layers = {} + {} is out of range", c.n_layers,
                             c.n_mtp_layers));
  auto product_fits = [&](std::int64_t a, std::int64_t b, const char* what) {
    if (a > INT64_MAX / b) fail(origin, fmt::format("{} = {} * {} overflows 64 bits", what, a, b));
  };
  product_fits(c.n_heads, c.head_dim, "n_heads * head_dim");
  product_fits(c.o_groups, c.o_lora_rank, "o_groups * o_lora_rank");
  product_fits(c.hc_mult, c.dim, "hc_mult * dim");
  product_fits(c.hc_mult + std::int64_t{2}, c.hc_mult, "(2 + hc_mult) * hc_mult");
  if (c.n_hash_layers < 0 || c.n_hash_layers > c.n_layers)
    fail(origin, fmt::format("'n_hash_layers' = {} must be within 0..n_layers ({})",
                             c.n_hash_layers, c.n_layers));
  if (c.n_shared_experts != 1)
    fail(origin, fmt::format("'n_shared_experts' = {}: the V4 block has exactly one shared expert",
                             c.n_shared_experts));
  if (c.n_activated_experts > c.n_routed_experts)
    fail(origin,
         fmt::format("top-k 'n_activated_experts' = {} is larger than 'n_routed_experts' = {}",
                     c.n_activated_experts, c.n_routed_experts));
  if (c.score_func != "sqrtsoftplus" && c.score_func != "softmax" && c.score_func != "sigmoid")
    fail(origin, fmt::format("'score_func' = \"{}\" is not sqrtsoftplus, softmax or sigmoid",
                             c.score_func));
  if (!(c.route_scale > 0))
    fail(origin, fmt::format("'route_scale' must be positive, got {}", c.route_scale));
  if (c.swiglu_limit < 0)
    fail(origin, fmt::format("'swiglu_limit' must be >= 0, got {}", c.swiglu_limit));
  if (c.n_heads % c.o_groups != 0)
    fail(origin,
         fmt::format("'n_heads' = {} is not divisible by 'o_groups' = {}", c.n_heads, c.o_groups));
  if (c.rope_head_dim % 2 != 0 || c.rope_head_dim >= c.head_dim)
    fail(origin, fmt::format("'rope_head_dim' = {} must be even and smaller than 'head_dim' = {}",
                             c.rope_head_dim, c.head_dim));
  if ((c.head_dim - c.rope_head_dim) % 64 != 0)
    fail(origin, fmt::format("head_dim - rope_head_dim = {} must be a multiple of 64 (the KV FP8 "
                             "blocks of the reference)",
                             c.head_dim - c.rope_head_dim));
  if (!(c.norm_eps > 0) || !(c.hc_eps > 0))
    fail(origin,
         fmt::format("'norm_eps' ({}) and 'hc_eps' ({}) must be positive", c.norm_eps, c.hc_eps));
  if (!(c.rope_theta > 0) || !(c.compress_rope_theta > 0))
    fail(origin, "'rope_theta' and 'compress_rope_theta' must be positive");
  if (c.original_seq_len < 0) fail(origin, "'original_seq_len' must be >= 0 (0 disables YaRN)");
  if (c.original_seq_len > 0 && !(c.rope_factor >= 1))
    fail(origin, fmt::format("'rope_factor' = {} must be >= 1 when YaRN is on", c.rope_factor));
  if (c.compress_ratios.size() != static_cast<std::size_t>(c.n_blocks()))
    fail(origin, fmt::format("'compress_ratios' has {} entries; n_layers + n_mtp_layers = {}",
                             c.compress_ratios.size(), c.n_layers + c.n_mtp_layers));
  bool has_csa = false;
  for (std::size_t i = 0; i < c.compress_ratios.size(); ++i) {
    const int r = c.compress_ratios[i];
    if (r != 0 && (r < 2 || r > c.max_seq_len))
      fail(origin,
           fmt::format("unknown compress ratio {} for block {}: 0 (sliding window), 4 (CSA) "
                       "or another ratio in 2..max_seq_len ({}) (HCA)",
                       r, i, c.max_seq_len));
    has_csa = has_csa || r == 4;
  }
  if (has_csa) {
    positive(c.index_n_heads, "index_n_heads");
    positive(c.index_topk, "index_topk");
    const std::int64_t di = c.index_head_dim;
    if (di <= 0 || (di & (di - 1)) != 0 || di % 32 != 0 || di <= c.rope_head_dim)
      fail(origin, fmt::format("'index_head_dim' = {} must be a power of two, a multiple of 32 and "
                               "larger than rope_head_dim (Hadamard rotation, FP4 blocks)",
                               di));
  }
  const bool quantized = c.dtype == WeightDtype::fp8;
  if (quantized) {
    auto mult128 = [&](std::int64_t v, const char* what) {
      if (v % 128 != 0)
        fail(origin, fmt::format("{} = {} must be a multiple of 128 with FP8 weights (activation "
                                 "quantisation blocks)",
                                 what, v));
    };
    mult128(c.dim, "'dim'");
    mult128(c.q_lora_rank, "'q_lora_rank'");
    mult128(c.o_groups * c.o_lora_rank, "o_groups * o_lora_rank");
    mult128(c.n_heads * c.head_dim / c.o_groups, "n_heads * head_dim / o_groups");
  }
  if (c.expert_dtype == WeightDtype::fp8 || c.expert_dtype == WeightDtype::fp4) {
    if (c.moe_inter_dim % 128 != 0 || c.dim % 128 != 0)
      fail(origin, fmt::format("'dim' = {} and 'moe_inter_dim' = {} must be multiples of 128 with "
                               "quantised experts",
                               c.dim, c.moe_inter_dim));
  }
}

/// The fewest weight values a model of `c` holds: its routed experts (3 matrices of
/// moe_inter_dim x dim per expert and block) and its embedding and output head (vocab x dim
/// each). As double: exact for every config validate() accepts.
inline double min_weight_values(const ModelConfig& c) {
  const double experts = static_cast<double>(c.n_blocks()) *
                         static_cast<double>(c.n_routed_experts) * 3.0 *
                         static_cast<double>(c.moe_inter_dim) * static_cast<double>(c.dim);
  return experts + 2.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.dim);
}

/// The smallest storage any weight format dsv4 reads takes per value (bits): llama.cpp's IQ1_S
/// holds 1.5625; the bound leaves a margin below it.
inline constexpr double kMinBitsPerWeight = 1.5;

/// Checks that `bytes` (the tensor bytes a file or checkpoint holds) can hold the model `c`
/// describes, before any table of its tensors is built: a count or dimension inflated in a header
/// (2^31 experts, a 10^12 vocabulary) is an error naming the sizes, not an allocation.
inline void check_config_fits(const ModelConfig& c, std::uint64_t bytes, std::string_view origin) {
  const double need = min_weight_values(c) * kMinBitsPerWeight / 8.0;
  if (need > static_cast<double>(bytes)) {
    config_detail::fail(
        origin,
        fmt::format("{} blocks with 'n_routed_experts' = {}, 'moe_inter_dim' = {}, 'dim' = {} "
                    "and 'vocab_size' = {} describe at least {:.0f} weight values, at least {:.0f} "
                    "bytes; the tensors present hold {} bytes",
                    c.n_blocks(), c.n_routed_experts, c.moe_inter_dim, c.dim, c.vocab_size,
                    min_weight_values(c), need, bytes));
  }
}

/// Parses a config from JSON (either naming scheme, optionally wrapped in "model_args") and
/// validates it. `origin` names the source in error messages.
inline ModelConfig parse_config(const nlohmann::json& j, std::string_view origin = "config") {
  using config_detail::fail;
  if (!j.is_object()) fail(origin, "a config must be a JSON object");
  if (j.contains("model_args")) return parse_config(j["model_args"], origin);
  const bool hf = j.contains("hidden_size") || j.contains("num_hidden_layers") ||
                  j.contains("model_type") || j.contains("architectures");
  if (hf && j.contains("model_type") && j["model_type"] != "deepseek_v4")
    fail(origin, fmt::format("model_type {} is not \"deepseek_v4\"", j["model_type"].dump()));
  ModelConfig c =
      hf ? config_detail::parse_hf(j, origin) : config_detail::parse_reference(j, origin);
  // The reference forces power-of-two scales whenever scales are stored as fp8 (e8m0).
  if (c.scale_dtype == "fp8") c.scale_fmt = "ue8m0";
  validate(c, origin);
  return c;
}

/// Parses JSON text.
inline ModelConfig parse_config_text(std::string_view text, std::string_view origin = "config") {
  return parse_config(io::parse_json_text<ConfigError>(text, origin), origin);
}

/// Reads and parses a config.json file.
inline ModelConfig load_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw ConfigError(fmt::format("{}: is not a file (expected a config.json)", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open config file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_config_text(ss.str(), path);
}

}  // namespace dsv4
