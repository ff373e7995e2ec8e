// llama.cpp `deepseek4` GGUF models in dsv4: the metadata as a ModelConfig and back, the tensors
// under the reference's names, and the tokenizer keys.
//
// Spec: spec/formats.md §10.1 (reference names), §10.3 (GGUF names, keys, MTP); the golden
// llama.cpp data set's README (every key llama.cpp's loader reads, with its defaults). Reference:
// llama.cpp `src/models/deepseek4.cpp` (load_arch_hparams, load_arch_tensors, the MTP graph) and
// `conversion/deepseek.py` (DeepseekV4Model) at commit 82bb485.
//
//  * config_from_gguf: the `deepseek4.*` keys (and the tokenizer's length) as a ModelConfig, with
//    llama.cpp's defaults and MTP rule (blocks n_main.. are MTP blocks only when
//    `blk.<n_main>.nextn.eh_proj.weight` exists); errors name the key.
//  * gguf_metadata: a ModelConfig as the key/values llama.cpp's converter writes, in its order
//    (the tiny golden file is reproduced key for key), optionally with tokenizer keys.
//  * gguf_tensor_map: every GGUF tensor of a config with the reference tensors it holds: one
//    (names differ, ggml's ne is the reversed PyTorch shape, values are identical: the converter
//    reshapes or permutes nothing; `attn_output_a` is reshaped only inside llama.cpp's loader), a
//    stack of experts (`ffn_*_exps`, expert e = the e-th [rows, cols] slice), or the MTP
//    `nextn.eh_proj` (e_proj and h_proj side by side along the input dimension).
//  * GgufModel: a TensorSource over a GGUF file in reference names: `layers.N.attn.wq_a.weight`,
//    `layers.N.ffn.experts.E.w1.weight` (a zero-copy slice of the stacked tensor), `mtp.J.*` (the
//    nextn block, with the trunk's `output_hc_*` standing in for `mtp.J.hc_head_*` as in
//    llama.cpp's MTP graph, and `nextn.shared_head_norm` (else `output_norm`) for `mtp.J.norm`).
//    Weights load as zero-copy Linear views in the file's own type (io::load_linear calls
//    GgufModel::load_linear); F32/F16/BF16/I32 tensors report their dtype and bytes, block-
//    quantized ones report F32 with no bytes and dequantize in to_float.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/formats/registry.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/config_json.hpp"
#include "dsv4/io/gguf.hpp"
#include "dsv4/io/load_meter.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"

namespace dsv4::io {

/// `general.architecture` of a DeepSeek-V4 GGUF.
inline constexpr std::string_view kGgufArchitecture = "deepseek4";

/// llama.cpp's llama_expert_gating_func_type values for the score functions dsv4 has.
enum class GgufGatingFunc : std::uint32_t { softmax = 1, sigmoid = 2, sqrt_softplus = 4 };

/// The compress ratios llama.cpp's deepseek4 graph implements (DSV4_CSA_RATIO, DSV4_HCA_RATIO).
inline constexpr int kLlamaCsaRatio = 4;
inline constexpr int kLlamaHcaRatio = 128;

namespace detail::gguf_model {

inline std::string key(std::string_view leaf) { return fmt::format("deepseek4.{}", leaf); }

/// ModelConfig field -> the GGUF key it comes from (for messages of validate()).
inline constexpr std::pair<std::string_view, std::string_view> kFieldKeys[] = {
    {"max_seq_len", "context_length"},
    {"vocab_size", "tokenizer.ggml.tokens (its length)"},
    {"dim", "embedding_length"},
    {"moe_inter_dim", "expert_feed_forward_length"},
    {"n_layers", "block_count"},
    {"n_hash_layers", "hash_layer_count"},
    {"n_mtp_layers", "nextn_predict_layers"},
    {"n_heads", "attention.head_count"},
    {"n_routed_experts", "expert_count"},
    {"n_shared_experts", "expert_shared_count"},
    {"n_activated_experts", "expert_used_count"},
    {"score_func", "expert_gating_func"},
    {"route_scale", "expert_weights_scale"},
    {"swiglu_limit", "swiglu_clamp_exp"},
    {"q_lora_rank", "attention.q_lora_rank"},
    {"head_dim", "attention.key_length"},
    {"rope_head_dim", "rope.dimension_count"},
    {"norm_eps", "attention.layer_norm_rms_epsilon"},
    {"o_groups", "attention.output_group_count"},
    {"o_lora_rank", "attention.output_lora_rank"},
    {"window_size", "attention.sliding_window"},
    {"compress_ratios", "attention.compress_ratios"},
    {"compress_rope_theta", "attention.compress_rope_freq_base"},
    {"original_seq_len", "rope.scaling.original_context_length"},
    {"rope_theta", "rope.freq_base"},
    {"rope_factor", "rope.scaling.factor"},
    {"beta_fast", "rope.scaling.yarn_beta_fast"},
    {"beta_slow", "rope.scaling.yarn_beta_slow"},
    {"index_n_heads", "attention.indexer.head_count"},
    {"index_head_dim", "attention.indexer.key_length"},
    {"index_topk", "attention.indexer.top_k"},
    {"hc_mult", "hyper_connection.count"},
    {"hc_sinkhorn_iters", "hyper_connection.sinkhorn_iterations"},
    {"hc_eps", "hyper_connection.epsilon"},
};

/// Reads the deepseek4 keys of one file, every error naming the file and the key.
class KeyReader {
 public:
  KeyReader(const GgufMetadata& meta, std::string label) : meta_(meta), label_(std::move(label)) {}

  [[noreturn]] void missing(std::string_view k, std::string_view why) const {
    throw FormatError(fmt::format("gguf {}: missing key '{}' ({})", label_, k, why));
  }
  [[noreturn]] void bad(std::string_view k, const std::string& msg) const {
    throw ConfigError(fmt::format("gguf {}: key '{}': {}", label_, k, msg));
  }

  const GgufValue* find(std::string_view leaf) const { return meta_.find(key(leaf)); }

  /// An unsigned integer scalar (any integer width, as GGUF writers differ).
  std::optional<std::int64_t> opt_int(std::string_view leaf) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) return std::nullopt;
    const auto i = v->as_int();
    if (!i.has_value()) bad(k, fmt::format("expected an integer, found {}", v->type_string()));
    if (*i < 0) bad(k, fmt::format("is {} (expected >= 0)", *i));
    return i;
  }
  std::int64_t req_int(std::string_view leaf, std::string_view why =
                                                  "required by llama.cpp's "
                                                  "deepseek4 loader") const {
    const auto v = opt_int(leaf);
    if (!v.has_value()) missing(key(leaf), why);
    return *v;
  }
  /// A FLOAT32 (or FLOAT64) scalar.
  std::optional<double> opt_float(std::string_view leaf) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) return std::nullopt;
    if (v->is_array() || (v->type() != GgufType::float32 && v->type() != GgufType::float64)) {
      bad(k, fmt::format("expected FLOAT32, found {}", v->type_string()));
    }
    const double d =
        v->type() == GgufType::float32 ? static_cast<double>(v->get<float>()) : v->get<double>();
    if (!std::isfinite(d)) bad(k, fmt::format("is {} (expected a finite number)", d));
    return d;
  }
  double req_float(std::string_view leaf) const {
    const auto v = opt_float(leaf);
    if (!v.has_value()) missing(key(leaf), "required by llama.cpp's deepseek4 loader");
    return *v;
  }
  std::optional<bool> opt_bool(std::string_view leaf) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) return std::nullopt;
    if (v->is_array() || v->type() != GgufType::boolean)
      bad(k, fmt::format("expected BOOL, found {}", v->type_string()));
    return v->get<bool>();
  }
  std::optional<std::string> opt_string(std::string_view leaf) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) return std::nullopt;
    if (v->is_array() || v->type() != GgufType::string)
      bad(k, fmt::format("expected STRING, found {}", v->type_string()));
    return v->str();
  }
  /// An integer array (INT32 or UINT32 in llama.cpp files; any integer type is read).
  std::vector<std::int64_t> req_int_array(std::string_view leaf) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) missing(k, "required by llama.cpp's deepseek4 loader");
    if (!v->is_array())
      bad(k, fmt::format("expected an array of INT32, found {}", v->type_string()));
    std::vector<std::int64_t> out;
    for (std::uint64_t i = 0; i < v->size(); ++i) {
      const auto e = v->element_as_int(i);
      if (!e.has_value())
        bad(k, fmt::format("expected an array of INT32, found {}", v->type_string()));
      out.push_back(*e);
    }
    return out;
  }
  /// A float scalar or a per-block FLOAT32 array of exactly `n` entries (get_key_or_arr).
  std::optional<std::vector<double>> opt_float_or_array(std::string_view leaf,
                                                        std::size_t n) const {
    const std::string k = key(leaf);
    const GgufValue* v = meta_.find(k);
    if (v == nullptr) return std::nullopt;
    std::vector<double> out;
    if (!v->is_array()) {
      out.assign(n, *opt_float(leaf));
      return out;
    }
    if (v->type() != GgufType::float32)
      bad(k, fmt::format("expected FLOAT32 or an array of FLOAT32, found {}", v->type_string()));
    if (v->size() != n)
      bad(k, fmt::format("has {} entries; block_count is {} (one per block)", v->size(), n));
    for (const float f : v->get_array<float>()) out.push_back(static_cast<double>(f));
    return out;
  }

  const std::string& label() const noexcept { return label_; }

 private:
  const GgufMetadata& meta_;
  std::string label_;
};

/// Appends to a validate() message which GGUF keys the named config fields come from.
inline std::string with_key_names(const std::string& msg) {
  std::string keys;
  for (const auto& [field, k] : kFieldKeys) {
    if (msg.find(fmt::format("'{}'", field)) != std::string::npos ||
        msg.find(fmt::format("{} ", field)) == 0) {
      keys += fmt::format("{}{} = deepseek4.{}", keys.empty() ? "" : ", ", field, k);
    }
  }
  return keys.empty() ? msg : fmt::format("{} (GGUF keys: {})", msg, keys);
}

}  // namespace detail::gguf_model

/// The score function of a llama.cpp expert_gating_func value; nullopt for values dsv4 has none
/// for.
inline std::optional<std::string> score_func_of_gating(std::int64_t v) {
  switch (v) {
    case static_cast<std::int64_t>(GgufGatingFunc::softmax):
      return "softmax";
    case static_cast<std::int64_t>(GgufGatingFunc::sigmoid):
      return "sigmoid";
    case static_cast<std::int64_t>(GgufGatingFunc::sqrt_softplus):
      return "sqrtsoftplus";
    default:
      return std::nullopt;
  }
}

/// The llama.cpp expert_gating_func value of a score function.
inline GgufGatingFunc gating_of_score_func(std::string_view score_func) {
  if (score_func == "softmax") return GgufGatingFunc::softmax;
  if (score_func == "sigmoid") return GgufGatingFunc::sigmoid;
  DSV4_CHECK(score_func == "sqrtsoftplus", ConfigError,
             "gguf: score_func '{}' has no llama.cpp gating function", score_func);
  return GgufGatingFunc::sqrt_softplus;
}

/// The ModelConfig a deepseek4 GGUF describes. `has_tensor` answers whether the file holds a
/// tensor (for llama.cpp's MTP probe). Missing required keys are FormatError, values dsv4 or the
/// model cannot take are ConfigError; both name the key. The config is validated
/// (io::validate) with the GGUF keys named next to the fields. Storage dtypes are set to bf16
/// (a GGUF holds no FP8/FP4 release tensors).
inline ModelConfig config_from_gguf(const GgufMetadata& meta,
                                    const std::function<bool(std::string_view)>& has_tensor,
                                    const std::string& label) {
  using detail::gguf_model::key;
  const detail::gguf_model::KeyReader r(meta, label);
  {
    const GgufValue* arch = meta.find("general.architecture");
    if (arch == nullptr)
      r.missing("general.architecture", "every GGUF model names its architecture");
    DSV4_CHECK(
        !arch->is_array() && arch->type() == GgufType::string && arch->str() == kGgufArchitecture,
        FormatError,
        "gguf {}: key 'general.architecture' is {} (expected \"deepseek4\": dsv4 reads "
        "llama.cpp's DeepSeek-V4 GGUF files)",
        label,
        arch->type() == GgufType::string && !arch->is_array() ? fmt::format("\"{}\"", arch->str())
                                                              : arch->type_string());
  }
  ModelConfig c;
  c.dtype = WeightDtype::bf16;
  c.expert_dtype = WeightDtype::bf16;
  const auto to_int = [&](std::int64_t v, std::string_view leaf) {
    if (v > (std::int64_t{1} << 30)) r.bad(key(leaf), fmt::format("is {} (too large)", v));
    return static_cast<int>(v);
  };

  // blocks and MTP (load_arch_hparams: nextn blocks count only when their eh_proj exists)
  const int n_all = to_int(r.req_int("block_count", "every GGUF model has it"), "block_count");
  if (n_all <= 0) r.bad(key("block_count"), "is 0 (expected at least one block)");
  if (n_all > 2 * config_limits::blocks) {  // before any per-block list is read or built
    r.bad(key("block_count"),
          fmt::format("is {} (larger than dsv4's limit {})", n_all, 2 * config_limits::blocks));
  }
  int n_nextn = to_int(r.opt_int("nextn_predict_layers").value_or(0), "nextn_predict_layers");
  if (n_nextn >= n_all) {
    r.bad(key("nextn_predict_layers"),
          fmt::format("is {}; block_count is {} (the MTP blocks are the last of block_count)",
                      n_nextn, n_all));
  }
  if (n_nextn > 0 &&
      !has_tensor(fmt::format("blk.{}.{}", n_all - n_nextn, gguf_names::nextn_eh_proj))) {
    n_nextn = 0;  // the converter writes the key even when it leaves the MTP tensors out
  }
  c.n_layers = n_all - n_nextn;
  c.n_mtp_layers = n_nextn;

  c.max_seq_len = r.req_int("context_length", "every GGUF model has it");
  c.dim = r.req_int("embedding_length", "every GGUF model has it");
  c.n_heads = r.req_int("attention.head_count", "llama.cpp has no attention heads without it");
  if (const auto kv = r.opt_int("attention.head_count_kv"); kv.has_value() && *kv != 1) {
    r.bad(key("attention.head_count_kv"),
          fmt::format("is {} (DeepSeek-V4 has one shared latent KV head)", *kv));
  }
  if (c.n_heads <= 0) r.bad(key("attention.head_count"), "is 0");
  const std::int64_t k_len = r.opt_int("attention.key_length").value_or(c.dim / c.n_heads);
  const std::int64_t v_len = r.opt_int("attention.value_length").value_or(c.dim / c.n_heads);
  if (k_len != v_len) {
    r.bad(key("attention.value_length"),
          fmt::format("is {} but attention.key_length is {} (k = v in DeepSeek-V4)", v_len, k_len));
  }
  c.head_dim = k_len;
  c.rope_head_dim = r.opt_int("rope.dimension_count").value_or(k_len);
  c.norm_eps = r.req_float("attention.layer_norm_rms_epsilon");
  c.q_lora_rank = r.req_int("attention.q_lora_rank");
  c.window_size = r.req_int("attention.sliding_window");
  c.o_groups = r.req_int("attention.output_group_count");
  c.o_lora_rank = r.req_int("attention.output_lora_rank");
  c.compress_rope_theta = r.req_float("attention.compress_rope_freq_base");
  c.rope_theta = r.opt_float("rope.freq_base").value_or(10000.0);

  // YaRN (only compressed layers use it, as in the reference)
  const std::string scaling = r.opt_string("rope.scaling.type").value_or("none");
  if (scaling == "yarn") {
    c.rope_factor = r.opt_float("rope.scaling.factor").value_or(1.0);
    c.original_seq_len = r.opt_int("rope.scaling.original_context_length").value_or(0);
    c.beta_fast = r.opt_float("rope.scaling.yarn_beta_fast").value_or(32.0);
    c.beta_slow = r.opt_float("rope.scaling.yarn_beta_slow").value_or(1.0);
    if (c.original_seq_len <= 0) {
      r.bad(key("rope.scaling.original_context_length"),
            "is missing or 0 but rope.scaling.type is \"yarn\"");
    }
  } else if (scaling == "none") {
    c.rope_factor = 1.0;
    c.original_seq_len = 0;
  } else {
    r.bad(key("rope.scaling.type"),
          fmt::format("is \"{}\" (DeepSeek-V4 uses \"yarn\" or no scaling)", scaling));
  }

  // MoE
  c.moe_inter_dim = r.req_int("expert_feed_forward_length");
  c.n_routed_experts = r.req_int("expert_count", "llama.cpp has no experts without it");
  c.n_activated_experts = r.req_int("expert_used_count", "llama.cpp selects no expert without it");
  c.n_shared_experts = r.req_int("expert_shared_count");
  c.route_scale = r.req_float("expert_weights_scale");
  c.n_hash_layers = to_int(r.req_int("hash_layer_count"), "hash_layer_count");
  if (c.n_hash_layers > c.n_layers) {
    r.bad(key("hash_layer_count"),
          fmt::format("is {} but the file has {} trunk blocks (MTP blocks cannot be hash-routed)",
                      c.n_hash_layers, c.n_layers));
  }
  {
    const std::int64_t g = r.req_int("expert_gating_func");
    const auto sf = score_func_of_gating(g);
    if (!sf.has_value()) {
      r.bad(key("expert_gating_func"),
            fmt::format("is {} (expected 4 = sqrt-softplus, DeepSeek-V4's; 1 = softmax and 2 = "
                        "sigmoid are read too)",
                        g));
    }
    c.score_func = *sf;
    const auto norm = r.opt_bool("expert_weights_norm");
    if (!norm.has_value()) r.missing(key("expert_weights_norm"), "required by llama.cpp's loader");
    const bool renormalise = c.score_func != "softmax";
    if (*norm != renormalise) {
      r.bad(key("expert_weights_norm"),
            fmt::format("is {}; dsv4's {} router {} the selected weights", *norm, c.score_func,
                        renormalise ? "always renormalises" : "never renormalises"));
    }
  }
  {
    const auto n = static_cast<std::size_t>(n_all);
    const auto exp = r.opt_float_or_array("swiglu_clamp_exp", n);
    if (!exp.has_value()) r.missing(key("swiglu_clamp_exp"), "required by llama.cpp's loader");
    const auto shexp = r.opt_float_or_array("swiglu_clamp_shexp", n).value_or(*exp);
    bool uniform = true;
    for (std::size_t i = 0; i < n; ++i) {
      if ((*exp)[i] < 0) {
        r.bad(key("swiglu_clamp_exp"), fmt::format("block {} has {} (< 0)", i, (*exp)[i]));
      }
      if (shexp[i] < 0) {
        r.bad(key("swiglu_clamp_shexp"), fmt::format("block {} has {} (< 0)", i, shexp[i]));
      }
      uniform = uniform && (*exp)[i] == (*exp)[0] && shexp[i] == (*exp)[0];
    }
    c.swiglu_limit = (*exp)[0];
    // llama.cpp clamps each block with its own values: kept per block when they differ
    if (!uniform) {
      c.swiglu_limits = *exp;
      c.shared_swiglu_limits = shexp;
    }
  }

  // attention variants
  {
    const std::vector<std::int64_t> ratios = r.req_int_array("attention.compress_ratios");
    if (ratios.size() < static_cast<std::size_t>(n_all)) {
      r.bad(key("attention.compress_ratios"),
            fmt::format("has {} entries; block_count is {} (one per block needed)", ratios.size(),
                        n_all));
    }
    c.compress_ratios.clear();
    for (int i = 0; i < c.n_layers + c.n_mtp_layers; ++i) {
      const std::int64_t v = ratios[static_cast<std::size_t>(i)];
      if (v < 0 || v > c.max_seq_len) {
        r.bad(key("attention.compress_ratios"),
              fmt::format("entry {} is {} (expected 0, 4 or another ratio up to context_length)", i,
                          v));
      }
      c.compress_ratios.push_back(static_cast<int>(v));
    }
  }
  c.index_n_heads = r.req_int("attention.indexer.head_count");
  c.index_head_dim = r.req_int("attention.indexer.key_length");
  c.index_topk = r.req_int("attention.indexer.top_k");

  // hyper-connections
  c.hc_mult = to_int(r.req_int("hyper_connection.count"), "hyper_connection.count");
  c.hc_sinkhorn_iters = to_int(r.req_int("hyper_connection.sinkhorn_iterations"),
                               "hyper_connection.sinkhorn_iterations");
  c.hc_eps = r.req_float("hyper_connection.epsilon");
  if (const auto out = r.opt_int("embedding_length_out");
      out.has_value() && *out != c.hc_mult * c.dim) {
    r.bad(key("embedding_length_out"),
          fmt::format("is {}; hyper_connection.count x embedding_length = {}", *out,
                      c.hc_mult * c.dim));
  }

  // vocabulary: the tokenizer's length (llama.cpp's n_vocab), else the converter's vocab_size
  if (const GgufValue* toks = meta.find("tokenizer.ggml.tokens"); toks != nullptr) {
    DSV4_CHECK(toks->is_array() && toks->type() == GgufType::string, FormatError,
               "gguf {}: key 'tokenizer.ggml.tokens': expected an array of STRING, found {}", label,
               toks->type_string());
    c.vocab_size = static_cast<std::int64_t>(toks->size());
  } else if (const auto v = r.opt_int("vocab_size"); v.has_value()) {
    c.vocab_size = *v;
  } else {
    throw FormatError(fmt::format(
        "gguf {}: no vocabulary size: neither 'tokenizer.ggml.tokens' nor 'deepseek4.vocab_size' "
        "is present",
        label));
  }

  try {
    validate(c, "gguf " + label);
  } catch (const ConfigError& e) {
    throw ConfigError(detail::gguf_model::with_key_names(e.what()));
  }
  return c;
}

/// The ModelConfig of a deepseek4 GGUF file, checked against the tensor bytes the file holds
/// (check_config_fits) so that no table of the model's tensors is built for sizes the file cannot
/// back.
inline ModelConfig config_from_gguf(const GgufFile& f) {
  ModelConfig c = config_from_gguf(
      f.metadata(), [&f](std::string_view n) { return f.find_tensor(n) != nullptr; }, f.label());
  std::uint64_t bytes = 0;
  for (const GgufTensorInfo& t : f.tensors()) bytes += t.n_bytes;
  try {
    check_config_fits(c, bytes, "gguf " + f.label());
  } catch (const ConfigError& e) {
    throw ConfigError(detail::gguf_model::with_key_names(e.what()));
  }
  return c;
}

/// Why a config cannot become a GGUF that llama.cpp (commit 82bb485) loads; empty when it can.
inline std::vector<std::string> llama_cpp_incompatibilities(const ModelConfig& c) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < c.compress_ratios.size(); ++i) {
    const int r = c.compress_ratios[i];
    if (r != 0 && r != kLlamaCsaRatio && r != kLlamaHcaRatio) {
      out.push_back(fmt::format(
          "compress_ratios[{}] = {}: llama.cpp implements only 0 (sliding window), 4 (CSA) and "
          "128 (HCA)",
          i, r));
    }
  }
  if (c.hc_mult != 4)
    out.push_back(fmt::format("hc_mult = {}: llama.cpp asserts 4 streams", c.hc_mult));
  if (c.score_func != "sqrtsoftplus")
    out.push_back(
        fmt::format("score_func = {}: llama.cpp's deepseek4 loader takes sqrt-softplus "
                    "only",
                    c.score_func));
  if (c.index_head_dim % 64 != 0)
    out.push_back(
        fmt::format("index_head_dim = {}: llama.cpp's indexer Hadamard needs a multiple "
                    "of 64",
                    c.index_head_dim));
  return out;
}

/// The tokenizer keys of a GGUF (`tokenizer.ggml.*`), as llama.cpp's gpt2 BPE vocab has them.
struct GgufTokenizer {
  std::string model = "gpt2";
  std::string pre = "deepseek-v3";
  std::vector<std::string> tokens;
  std::vector<std::int32_t> token_types;  ///< 1 normal, 3 control, 4 user-defined, 5 unused
  std::vector<std::string> merges;        ///< "left right"
  std::optional<std::uint32_t> bos;
  std::optional<std::uint32_t> eos;
  std::optional<std::uint32_t> pad;
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;

  bool operator==(const GgufTokenizer&) const = default;
};

/// llama.cpp's token types (llama_token_type).
inline constexpr std::int32_t kTokenNormal = 1;
inline constexpr std::int32_t kTokenControl = 3;
inline constexpr std::int32_t kTokenUserDefined = 4;
inline constexpr std::int32_t kTokenUnused = 5;

/// Options of gguf_metadata.
struct GgufMetadataOptions {
  std::string name = "DeepSeek-V4";                    ///< general.name
  gguf::FileType file_type = gguf::FileType::all_f32;  ///< general.file_type
  bool include_mtp = true;  ///< block_count counts the MTP blocks (and nextn_predict_layers)
  const GgufTokenizer* tokenizer = nullptr;  ///< tokenizer.ggml.* keys when given
  bool llama_cpp_compatible = true;          ///< refuse what llama.cpp cannot load
};

/// The key/values llama.cpp's converter writes for `c` (TextModel + DeepseekV4Model
/// set_gguf_parameters, in that order), then the tokenizer's. With llama_cpp_compatible, a config
/// llama.cpp cannot run (llama_cpp_incompatibilities) is a ConfigError; without it the file is
/// written anyway (dsv4 reads it back; llama.cpp refuses it at load).
inline GgufMetadata gguf_metadata(const ModelConfig& c, const GgufMetadataOptions& opt = {}) {
  using detail::gguf_model::key;
  validate(c, "gguf writer");
  if (opt.llama_cpp_compatible) {
    const auto why = llama_cpp_incompatibilities(c);
    DSV4_CHECK(why.empty(), ConfigError,
               "gguf writer: llama.cpp cannot load this model: {} (write it for dsv4 only with "
               "llama_cpp_compatible = false / --allow-incompatible)",
               fmt::join(why, "; "));
  }
  const bool mtp = opt.include_mtp && c.n_mtp_layers > 0;
  const int n_all = c.n_layers + (mtp ? c.n_mtp_layers : 0);
  const auto u32 = [](std::int64_t v) { return GgufValue(static_cast<std::uint32_t>(v)); };
  const auto f32 = [](double v) { return GgufValue(static_cast<float>(v)); };
  GgufMetadata m;
  m.add("general.architecture", GgufValue(std::string(kGgufArchitecture)));
  m.add("general.name", GgufValue(opt.name));
  m.add(key("block_count"), u32(n_all));
  m.add(key("context_length"), u32(c.max_seq_len));
  m.add(key("embedding_length"), u32(c.dim));
  m.add(key("attention.head_count"), u32(c.n_heads));
  m.add(key("attention.head_count_kv"), u32(1));
  if (c.original_seq_len > 0) {
    m.add(key("rope.scaling.type"), GgufValue("yarn"));
    m.add(key("rope.scaling.factor"), f32(c.rope_factor));
    m.add(key("rope.scaling.original_context_length"), u32(c.original_seq_len));
    m.add(key("rope.scaling.yarn_beta_fast"), f32(c.beta_fast));
    m.add(key("rope.scaling.yarn_beta_slow"), f32(c.beta_slow));
  }
  m.add(key("rope.freq_base"), f32(c.rope_theta));
  m.add(key("attention.layer_norm_rms_epsilon"), f32(c.norm_eps));
  m.add(key("expert_count"), u32(c.n_routed_experts));
  m.add(key("expert_used_count"), u32(c.n_activated_experts));
  m.add(key("expert_gating_func"),
        GgufValue(static_cast<std::uint32_t>(gating_of_score_func(c.score_func))));
  m.add(key("attention.key_length"), u32(c.head_dim));
  m.add(key("attention.value_length"), u32(c.head_dim));
  m.add("general.file_type", GgufValue(static_cast<std::uint32_t>(opt.file_type)));
  m.add(key("rope.dimension_count"), u32(c.rope_head_dim));
  m.add(key("attention.q_lora_rank"), u32(c.q_lora_rank));
  m.add(key("attention.sliding_window"), u32(c.window_size));
  m.add(key("expert_feed_forward_length"), u32(c.moe_inter_dim));
  m.add(key("expert_shared_count"), u32(c.n_shared_experts));
  m.add(key("expert_weights_scale"), f32(c.route_scale));
  m.add(key("expert_weights_norm"), GgufValue(c.score_func != "softmax"));
  if (c.swiglu_limit > 0 || !c.swiglu_limits.empty() || !c.shared_swiglu_limits.empty()) {
    std::vector<float> clamp(static_cast<std::size_t>(n_all));
    std::vector<float> shared(static_cast<std::size_t>(n_all));
    for (int i = 0; i < n_all; ++i) {
      clamp[static_cast<std::size_t>(i)] = static_cast<float>(c.routed_swiglu_limit(i));
      shared[static_cast<std::size_t>(i)] = static_cast<float>(c.shared_swiglu_limit(i));
    }
    m.add(key("swiglu_clamp_exp"), GgufValue::array(clamp));
    m.add(key("swiglu_clamp_shexp"), GgufValue::array(shared));
  }
  m.add(key("attention.indexer.head_count"), u32(c.index_n_heads));
  m.add(key("attention.indexer.key_length"), u32(c.index_head_dim));
  m.add(key("attention.indexer.top_k"), u32(c.index_topk));
  m.add(key("attention.output_group_count"), u32(c.o_groups));
  m.add(key("attention.output_lora_rank"), u32(c.o_lora_rank));
  {
    std::vector<std::int32_t> ratios(c.compress_ratios.begin(), c.compress_ratios.end());
    m.add(key("attention.compress_ratios"), GgufValue::array(ratios));
  }
  m.add(key("attention.compress_rope_freq_base"), f32(c.compress_rope_theta));
  m.add(key("hyper_connection.count"), u32(c.hc_mult));
  m.add(key("hyper_connection.sinkhorn_iterations"), u32(c.hc_sinkhorn_iters));
  m.add(key("hyper_connection.epsilon"), f32(c.hc_eps));
  m.add(key("hash_layer_count"), u32(std::min(c.n_hash_layers, n_all)));
  m.add(key("embedding_length_out"), u32(c.hc_mult * c.dim));
  if (mtp) m.add(key("nextn_predict_layers"), u32(c.n_mtp_layers));
  if (opt.tokenizer == nullptr) {
    // llama.cpp takes the vocabulary size from the tokenizer; without one, say it here
    m.add(key("vocab_size"), u32(c.vocab_size));
  } else {
    const GgufTokenizer& t = *opt.tokenizer;
    DSV4_CHECK(t.tokens.size() == static_cast<std::size_t>(c.vocab_size) &&
                   t.token_types.size() == t.tokens.size(),
               ConfigError,
               "gguf writer: the tokenizer has {} tokens and {} token types; the model's "
               "vocab_size is {}",
               t.tokens.size(), t.token_types.size(), c.vocab_size);
    m.add("tokenizer.ggml.model", GgufValue(t.model));
    m.add("tokenizer.ggml.pre", GgufValue(t.pre));
    m.add("tokenizer.ggml.tokens", GgufValue::array(t.tokens));
    m.add("tokenizer.ggml.token_type", GgufValue::array(t.token_types));
    m.add("tokenizer.ggml.merges", GgufValue::array(t.merges));
    if (t.bos) m.add("tokenizer.ggml.bos_token_id", GgufValue(*t.bos));
    if (t.eos) m.add("tokenizer.ggml.eos_token_id", GgufValue(*t.eos));
    if (t.pad) m.add("tokenizer.ggml.padding_token_id", GgufValue(*t.pad));
    if (t.add_bos) m.add("tokenizer.ggml.add_bos_token", GgufValue(*t.add_bos));
    if (t.add_eos) m.add("tokenizer.ggml.add_eos_token", GgufValue(*t.add_eos));
  }
  return m;
}

/// The tokenizer keys of a GGUF file (nullopt when it has no tokenizer.ggml.tokens).
inline std::optional<GgufTokenizer> gguf_tokenizer_of(const GgufMetadata& meta,
                                                      std::string_view label = "file") {
  const GgufValue* toks = meta.find("tokenizer.ggml.tokens");
  if (toks == nullptr) return std::nullopt;
  auto with = [&](std::string_view k, auto fn) {
    try {
      return fn();
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("gguf {}: key '{}': {}", label, k, e.what()));
    }
  };
  GgufTokenizer t;
  t.tokens = with("tokenizer.ggml.tokens", [&] { return toks->strings(); });
  // the value of key k read by get, a type mismatch naming the file and the key
  const auto value = [&](std::string_view k, auto get) {
    return with(k, [&] { return get(meta.at(k)); });
  };
  const auto str = [](const GgufValue& v) { return v.str(); };
  const auto u32 = [](const GgufValue& v) { return v.get<std::uint32_t>(); };
  const auto flag = [](const GgufValue& v) { return v.get<bool>(); };
  if (meta.contains("tokenizer.ggml.model")) t.model = value("tokenizer.ggml.model", str);
  if (meta.contains("tokenizer.ggml.pre")) t.pre = value("tokenizer.ggml.pre", str);
  if (const GgufValue* v = meta.find("tokenizer.ggml.token_type"); v != nullptr)
    t.token_types = with("tokenizer.ggml.token_type", [&] { return v->get_array<std::int32_t>(); });
  if (const GgufValue* v = meta.find("tokenizer.ggml.merges"); v != nullptr)
    t.merges = with("tokenizer.ggml.merges", [&] { return v->strings(); });
  if (meta.contains("tokenizer.ggml.bos_token_id"))
    t.bos = value("tokenizer.ggml.bos_token_id", u32);
  if (meta.contains("tokenizer.ggml.eos_token_id"))
    t.eos = value("tokenizer.ggml.eos_token_id", u32);
  if (meta.contains("tokenizer.ggml.padding_token_id"))
    t.pad = value("tokenizer.ggml.padding_token_id", u32);
  if (meta.contains("tokenizer.ggml.add_bos_token"))
    t.add_bos = value("tokenizer.ggml.add_bos_token", flag);
  if (meta.contains("tokenizer.ggml.add_eos_token"))
    t.add_eos = value("tokenizer.ggml.add_eos_token", flag);
  return t;
}

/// The GGUF tokenizer of a Hugging Face tokenizer.json (byte-level BPE) as llama.cpp's gpt2
/// vocab conversion builds it: ids 0..vocab_size-1 from the model vocabulary and the added
/// tokens (special ones CONTROL, others USER_DEFINED), ids neither names become "[PAD<id>]"
/// (UNUSED); merges as "left right". BOS/EOS/PAD and add_bos/add_eos come from
/// tokenizer_config.json beside it when present (`bos_token`, `eos_token`, `pad_token`,
/// `add_bos_token`, `add_eos_token`), else the DeepSeek specials `<｜begin▁of▁sentence｜>` /
/// `<｜end▁of▁sentence｜>` / `<｜▁pad▁｜>` with add_bos true and add_eos false.
inline GgufTokenizer gguf_tokenizer_from_json(const std::filesystem::path& tokenizer_json,
                                              std::int64_t vocab_size) {
  using nlohmann::json;
  const std::string label = tokenizer_json.string();
  auto read = [](const std::filesystem::path& p, const std::string& what) {
    std::ifstream in(p, std::ios::binary);
    DSV4_CHECK(in.good(), FormatError, "{}: cannot open {}", p.string(), what);
    try {
      return json::parse(in);
    } catch (const json::exception& e) {
      throw FormatError(fmt::format("{}: not valid JSON: {}", p.string(), e.what()));
    }
  };
  const json j = read(tokenizer_json, "the tokenizer");
  DSV4_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), FormatError,
             "{}: expected a tokenizer.json object with a \"model\"", label);
  const json& model = j["model"];
  DSV4_CHECK(model.value("type", std::string()) == "BPE" && model.contains("vocab") &&
                 model["vocab"].is_object() && model.contains("merges") &&
                 model["merges"].is_array(),
             FormatError, "{}: expected a BPE model with \"vocab\" and \"merges\"", label);
  DSV4_CHECK(vocab_size > 0, ConfigError, "{}: vocab_size {} is not positive", label, vocab_size);
  const auto n = static_cast<std::size_t>(vocab_size);
  GgufTokenizer t;
  t.tokens.assign(n, std::string());
  t.token_types.assign(n, kTokenUnused);
  std::vector<bool> named(n, false);
  std::unordered_map<std::string, std::uint32_t> ids;
  auto place = [&](std::int64_t id, const std::string& s, std::int32_t type) {
    DSV4_CHECK(id >= 0 && id < vocab_size, FormatError,
               "{}: token '{}' has id {}, outside the model's vocabulary [0, {})", label, s, id,
               vocab_size);
    const auto i = static_cast<std::size_t>(id);
    t.tokens[i] = s;
    t.token_types[i] = type;
    named[i] = true;
    ids[s] = static_cast<std::uint32_t>(id);
  };
  for (const auto& [s, id] : model["vocab"].items()) {
    DSV4_CHECK(id.is_number_integer(), FormatError, "{}: vocab entry '{}' has no integer id", label,
               s);
    place(id.get<std::int64_t>(), s, kTokenNormal);
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      DSV4_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() &&
                     a.contains("content") && a["content"].is_string(),
                 FormatError, "{}: an added token lacks an integer id or a content string", label);
      place(a["id"].get<std::int64_t>(), a["content"].get<std::string>(),
            a.value("special", false) ? kTokenControl : kTokenUserDefined);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!named[i]) t.tokens[i] = fmt::format("[PAD{}]", i);
  }
  for (const json& mg : model["merges"]) {
    if (mg.is_string()) {
      t.merges.push_back(mg.get<std::string>());
    } else {
      DSV4_CHECK(mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string(),
                 FormatError, "{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", label);
      t.merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
    }
  }
  // special tokens
  auto id_of = [&](const std::string& s) -> std::optional<std::uint32_t> {
    const auto it = ids.find(s);
    if (it == ids.end()) return std::nullopt;
    return it->second;
  };
  auto token_text = [](const json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string())
      return v["content"].get<std::string>();
    return std::nullopt;
  };
  t.bos = id_of("<｜begin▁of▁sentence｜>");
  t.eos = id_of("<｜end▁of▁sentence｜>");
  t.pad = id_of("<｜▁pad▁｜>");
  t.add_bos = true;
  t.add_eos = false;
  const auto config = tokenizer_json.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    const json tc = read(config, "the tokenizer config");
    auto special = [&](const char* k, std::optional<std::uint32_t>& dst) {
      if (!tc.contains(k)) return;
      const auto s = token_text(tc[k]);
      if (!s.has_value()) return;
      const auto id = id_of(*s);
      DSV4_CHECK(id.has_value(), FormatError, "{}: {} '{}' is not a token of {}", config.string(),
                 k, *s, label);
      dst = id;
    };
    special("bos_token", t.bos);
    special("eos_token", t.eos);
    special("pad_token", t.pad);
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
      t.add_bos = tc["add_bos_token"].get<bool>();
    if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
      t.add_eos = tc["add_eos_token"].get<bool>();
  }
  return t;
}

// ---- tensor names ---------------------------------------------------------------------------

using dsv4::GgufPacking;

/// One GGUF tensor of a config and the reference tensors it is made of.
struct GgufTensorMapping {
  std::string gguf;              ///< "blk.3.ffn_gate_exps.weight"
  std::vector<std::int64_t> ne;  ///< ggml order, logical
  GgufPacking packing = GgufPacking::single;
  std::vector<std::string> reference;     ///< one name, E experts, or {e_proj, h_proj}
  std::vector<std::uint64_t> part_shape;  ///< PyTorch shape of each reference tensor
  bool integer = false;                   ///< I32 (tid2eid)
  bool optional = false;                  ///< llama.cpp loads a file without it
  int layer = -1;
};

/// Every GGUF tensor of `c` with its reference tensors, in gguf_tensors(c) order (the names and
/// the mapping are the layout's, io/checkpoint_layout.hpp); adds the shape of each part.
inline std::vector<GgufTensorMapping> gguf_tensor_map(const ModelConfig& c,
                                                      bool include_mtp = true) {
  std::vector<GgufTensorMapping> out;
  for (GgufTensor& t : gguf_tensors(c, include_mtp)) {
    GgufTensorMapping m;
    m.gguf = std::move(t.name);
    m.ne = std::move(t.ne);
    m.packing = t.packing;
    m.reference = std::move(t.reference);
    m.integer = t.integer;
    m.optional = t.optional;
    m.layer = t.layer;
    const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
    switch (m.packing) {
      case GgufPacking::single:
        m.part_shape.assign(m.ne.rbegin(), m.ne.rend());
        break;
      case GgufPacking::experts:
        m.part_shape = {u(m.ne[1]), u(m.ne[0])};
        break;
      case GgufPacking::concat_cols:
        m.part_shape = {u(m.ne[1]), u(m.ne[0] / 2)};
        break;
    }
    out.push_back(std::move(m));
  }
  return out;
}

// ---- a GGUF file as a TensorSource -----------------------------------------------------------

/// Whether `id` is a GGUF type dsv4 holds weights in (a block format of LinearFormats).
inline bool is_gguf_weight_type(FormatId id) noexcept {
  return [id]<class... Fs>(type_list<Fs...>*) {
    return ((Fs::id == id && !PlanarFormat<Fs>) || ...);
  }(static_cast<LinearFormats*>(nullptr));
}

/// Which semantics the Linear views of a GgufModel get when the caller's type leaves the choice
/// open (AnyLinear): llama.cpp's CPU semantics (PartnerDot: x quantized to the type's
/// vec_dot_type) or an fp32 dot of the dequantized weight (DequantDot). With `partner_dot` the
/// tensors a model holds as float (head, wo_a, compressors, the indexer's weights_proj, mHC mixers)
/// also run in their stored format with the activation partner, as ggml computes them
/// (io::load_partner_view); `partner_dot_projections` keeps those as fp32 products of their
/// dequantized values (what load_quantized's recipe over all tensors computes) and gives the
/// projections PartnerDot views.
enum class GgufLinearSemantics : std::uint8_t { partner_dot, dequant_dot, partner_dot_projections };

/// A deepseek4 GGUF file read under the reference's tensor names (see the top of this file).
/// Construction checks every tensor against the config the metadata describes (present, shape,
/// a type dsv4 reads; nothing unexpected), with FormatError naming the tensor.
class GgufModel {
 public:
  /// `llama_repack`: the weights llama.cpp repacks at load time (Q4_0, Q4_K, Q2_K) multiply in
  /// its repacked kernels' orders (GgmlRepack; llama.cpp's default on x86), or with vec_dot as
  /// llama.cpp's `--no-repack` does (false). PartnerDot weights only.
  explicit GgufModel(const std::filesystem::path& path,
                     GgufLinearSemantics semantics = GgufLinearSemantics::partner_dot,
                     bool llama_repack = true)
      : GgufModel(std::make_shared<const GgufFile>(path), semantics, llama_repack) {}

  explicit GgufModel(std::shared_ptr<const GgufFile> file,
                     GgufLinearSemantics semantics = GgufLinearSemantics::partner_dot,
                     bool llama_repack = true)
      : file_(std::move(file)), semantics_(semantics), llama_repack_(llama_repack) {
    DSV4_CHECK(file_ != nullptr, InputError, "GgufModel: no file");
    cfg_ = config_from_gguf(*file_);
    build();
  }

  const ModelConfig& config() const noexcept { return cfg_; }
  const GgufFile& file() const noexcept { return *file_; }
  std::shared_ptr<const GgufFile> file_ptr() const noexcept { return file_; }
  GgufLinearSemantics semantics() const noexcept { return semantics_; }
  /// The tokenizer keys of the file, if any.
  std::optional<GgufTokenizer> tokenizer() const {
    return gguf_tokenizer_of(file_->metadata(), file_->label());
  }

  /// Reference names of every tensor (sorted), aliases included.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, e] : entries_) out.push_back(n);
    return out;
  }
  /// The GGUF tensor that holds reference tensor `name`, and how.
  const GgufTensorInfo& gguf_tensor(std::string_view name) const { return *entry(name).tensor; }
  /// The ggml type `name` is stored as.
  FormatId stored_type(std::string_view name) const { return entry(name).tensor->type; }
  /// The raw bytes of `name` in its stored type: whole rows of blocks (empty for the halves of
  /// `nextn.eh_proj`, which are not contiguous).
  std::span<const std::byte> stored_bytes(std::string_view name) const { return entry(name).raw; }

  // ---- TensorSource ----
  std::string label() const { return file_->label(); }

  /// From now on, reports the bytes of the tensors read (each counted once) against the bytes of
  /// all of them: the progress of a model being loaded from this source (io/load_meter.hpp).
  void report_reads(LoadMeter::Callback cb) {
    std::uint64_t total = 0;
    for (const auto& [n, e] : entries_) total += e.raw.size();
    meter_ = std::make_shared<LoadMeter>(total, std::move(cb));
  }

  bool has(std::string_view name) const { return entries_.find(name) != entries_.end(); }
  const TensorInfo& info(std::string_view name) const { return entry(name).info; }
  /// The values of `name` as float (dequantized for block types). I32 tensors are FormatError.
  std::vector<float> to_float(std::string_view name) const {
    const Entry& e = entry(name);
    DSV4_CHECK(e.tensor->type != gguf::ggml_id::i32, FormatError,
               "gguf {}: tensor '{}' ('{}') is I32, not floating", label(), name, e.tensor->name);
    const std::size_t rows = e.info.shape.size() == 2 ? e.info.shape[0] : 1;
    const std::size_t cols = static_cast<std::size_t>(e.info.elements) / rows;
    std::vector<float> out(static_cast<std::size_t>(e.info.elements));
    if (e.packing != GgufPacking::concat_cols) {
      dequantize(e.tensor->type, e.raw, static_cast<std::int64_t>(out.size()), out.data());
      return out;
    }
    // a half of eh_proj: rows of 2·cols values, this part's cols at offset part·cols
    const auto data = file_->tensor_data(*e.tensor);
    const auto row_bytes = static_cast<std::size_t>(gguf::row_bytes(e.tensor->type, 2 * cols));
    std::vector<float> row(2 * cols);
    for (std::size_t r = 0; r < rows; ++r) {
      dequantize(e.tensor->type, data.subspan(r * row_bytes, row_bytes),
                 static_cast<std::int64_t>(2 * cols), row.data());
      std::copy_n(row.begin() + static_cast<std::ptrdiff_t>(e.part * cols), cols,
                  out.begin() + static_cast<std::ptrdiff_t>(r * cols));
    }
    return out;
  }

  /// The [out, in] weight `name` as linear type L (io::load_linear's hook for this source):
  ///  * Linear<F, S>: a zero-copy view when the file stores F (a copy of the blocks for the
  ///    halves of eh_proj); F32 is also made from any other stored type (exact);
  ///  * AnyLinearOf<...>: the stored type with the semantics of semantics() (or the other one when
  ///    the list lacks it);
  ///  * DenseLinear<float> / DenseLinear<bf16>: the dequantized values (bf16: each exact); an F32
  ///    tensor as DenseLinear<float> is a zero-copy view.
  template <class L>
  L load_linear(std::string_view name, std::size_t out, std::size_t in) const {
    const Entry& e = entry(name);
    expect_tensor(*this, name, {out, in});
    if constexpr (is_dense<L>::value) {
      if constexpr (std::is_same_v<L, DenseLinear<float>>) {
        // an F32 tensor is viewed in place: no float copy next to the mapped one
        if (e.tensor->type == FormatId::f32 && e.packing != GgufPacking::concat_cols &&
            e.raw.size() == out * in * sizeof(float) &&
            reinterpret_cast<std::uintptr_t>(e.raw.data()) % alignof(float) == 0) {
          return L::view(
              std::span<const float>(reinterpret_cast<const float*>(e.raw.data()), out * in), out,
              in, file_);
        }
      }
      return LinearLoader<L>::load(*this, name, out, in);
    } else if constexpr (is_linear<L>::value) {
      using F = typename L::format;
      if constexpr (PlanarFormat<F>) {
        throw FormatError(fmt::format(
            "gguf {}: tensor '{}': a GGUF file holds no native {} weights (load it as its stored "
            "type {} or AnyLinear)",
            label(), name, F::name, gguf::type_name(e.tensor->type)));
      } else {
        if (e.tensor->type == F::id) return view_as<L>(e, out, in);
        if constexpr (std::is_same_v<F, F32>) {
          const std::vector<float> v = to_float(name);
          return L::quantize(ConstView2<float>(v.data(), out, in));
        } else {
          throw FormatError(fmt::format(
              "gguf {}: tensor '{}' is stored as {}; Linear<{}> would re-quantize it (load it as "
              "Linear<{}>, Linear<F32> or AnyLinear)",
              label(), name, gguf::type_name(e.tensor->type), F::name,
              gguf::type_name(e.tensor->type)));
        }
      }
    } else if constexpr (is_any_linear<L>::value) {
      return any_linear<L>(e, name, out, in);
    } else {
      return LinearLoader<L>::load(*this, name, out, in);
    }
  }

 private:
  struct Entry {
    const GgufTensorInfo* tensor = nullptr;
    GgufPacking packing = GgufPacking::single;
    std::size_t part = 0;            // expert index or eh_proj half
    std::span<const std::byte> raw;  // stored bytes of this part (empty for eh_proj halves)
    TensorInfo info;
  };

  template <class T>
  struct is_linear : std::false_type {};
  template <class F, class S>
  struct is_linear<Linear<F, S>> : std::true_type {};
  template <class T>
  struct is_any_linear : std::false_type {};
  template <class List>
  struct is_any_linear<AnyLinearOf<List>> : std::true_type {};
  template <class T>
  struct is_dense : std::false_type {};
  template <class T>
  struct is_dense<DenseLinear<T>> : std::true_type {};

  const Entry& entry(std::string_view name) const {
    const auto it = entries_.find(name);
    DSV4_CHECK(it != entries_.end(), FormatError,
               "gguf {}: no tensor named '{}' (reference names: layers.N.attn.wq_a.weight, "
               "layers.N.ffn.experts.E.w1.weight, mtp.J.e_proj.weight, ...)",
               label(), name);
    if (meter_) meter_->read(&it->second, it->second.raw.size());
    return it->second;
  }

  static void dequantize(FormatId type, std::span<const std::byte> src, std::int64_t n,
                         float* out) {
    visit_format(type, [&]<class F>() {
      if constexpr (PlanarFormat<F>) {
        throw FormatError(fmt::format("gguf: type {} is not a GGUF type", F::name));
      } else {
        using B = typename F::block_type;
        const auto nb = static_cast<std::size_t>(n) / F::block_elems;
        for (std::size_t i = 0; i < nb; ++i) {
          B b;
          std::memcpy(&b, src.data() + i * sizeof(B), sizeof(B));
          F::dequantize(b, out + i * F::block_elems);
        }
      }
    });
  }

  /// The blocks of `e` (a view, or an owned copy of the rows' halves for eh_proj).
  template <class L>
  L view_as(const Entry& e, std::size_t out, std::size_t in) const {
    using F = typename L::format;
    if (e.packing != GgufPacking::concat_cols) {
      if constexpr (std::same_as<typename L::semantics, PartnerDot> && RepackedDotFormat<F>) {
        return L::view_bytes(e.raw, out, in, file_).repacked(repack_of(e, out));
      } else {
        return L::view_bytes(e.raw, out, in, file_);
      }
    }
    using B = typename F::block_type;
    DSV4_CHECK(in % F::block_elems == 0, FormatError,
               "gguf {}: tensor '{}' ({}, ne {}): its halves e_proj and h_proj have {} columns "
               "each, not whole {} blocks of {}; load it as Linear<F32> or AnyLinear (dequantized)",
               label(), e.tensor->name, F::name, gguf_shape_string(e.tensor->ne), in, F::name,
               F::block_elems);
    const auto data = file_->tensor_data(*e.tensor);
    const std::size_t nb = in / F::block_elems;  // blocks per half row
    std::vector<B> blocks(out * nb);
    for (std::size_t r = 0; r < out; ++r) {
      std::memcpy(blocks.data() + r * nb, data.data() + (r * 2 * nb + e.part * nb) * sizeof(B),
                  nb * sizeof(B));
    }
    return L(std::move(blocks), out, in);
  }

  /// How llama.cpp's CPU backend (an x86 build with AVX-512, its default weight repacking)
  /// multiplies the PartnerDot weight `e` of a format it repacks: the experts through its
  /// repacked mul_mat_id, a 2-D weight through its repacked mul_mat, both for a multiple of 8
  /// rows only; `attn_output_a` (wo_a, which llama.cpp multiplies per group as one 3-D batched
  /// mul_mat) by vec_dot. The halves of eh_proj are one repacked product in llama.cpp and two
  /// here, which no order makes equal: they keep vec_dot.
  GgmlRepack repack_of(const Entry& e, std::size_t out) const {
    if (!llama_repack_ || out % 8 != 0) return GgmlRepack::none;
    if (e.packing == GgufPacking::experts) return GgmlRepack::mul_mat_id;
    if (e.packing != GgufPacking::single ||
        e.tensor->name.find(".attn_output_a.") != std::string::npos)
      return GgmlRepack::none;
    return GgmlRepack::mul_mat;
  }

  template <class Any>
  Any any_linear(const Entry& e, std::string_view name, std::size_t out, std::size_t in) const {
    return visit_format(e.tensor->type, [&]<class F>() -> Any {
      if constexpr (PlanarFormat<F> || !type_list_contains_v<LinearFormats, F>) {
        throw FormatError(fmt::format("gguf {}: tensor '{}' is {}, which is not a weight format",
                                      label(), name, F::name));
      } else {
        using P = Linear<F, PartnerDot>;
        using D = Linear<F, DequantDot>;
        constexpr bool has_p = std::is_constructible_v<Any, P>;
        constexpr bool has_d = std::is_constructible_v<Any, D>;
        if (e.packing == GgufPacking::concat_cols && in % F::block_elems != 0) {
          // a half of eh_proj whose columns split the stored type's blocks (a model whose width
          // is not a multiple of the block, e.g. dim 128 under Q4_K): the exact values as F32
          using W = Linear<F32, DequantDot>;
          if constexpr (std::is_constructible_v<Any, W>) {
            const std::vector<float> v = to_float(name);
            return Any(W::quantize(ConstView2<float>(v.data(), out, in)));
          }
        }
        if constexpr (has_p && has_d) {
          if (semantics_ != GgufLinearSemantics::dequant_dot) return Any(view_as<P>(e, out, in));
          return Any(view_as<D>(e, out, in));
        } else if constexpr (has_p) {
          return Any(view_as<P>(e, out, in));
        } else if constexpr (has_d) {
          return Any(view_as<D>(e, out, in));
        } else {
          throw FormatError(fmt::format(
              "gguf {}: tensor '{}' is stored as {}, which this AnyLinearOf does not list", label(),
              name, F::name));
        }
      }
    });
  }

  void add(const std::string& name, Entry e) {
    e.info.name = name;
    entries_.emplace(name, std::move(e));
  }

  void build() {
    const GgufFile& f = *file_;
    const auto map = gguf_tensor_map(cfg_, true);
    std::set<std::string> expected;
    const auto trim = [](std::vector<std::int64_t> ne) {
      ne.resize(static_cast<std::size_t>(gguf::n_dims(ne)));
      return ne;
    };
    for (const GgufTensorMapping& m : map) {
      expected.insert(m.gguf);
      const GgufTensorInfo* t = f.find_tensor(m.gguf);
      if (t == nullptr && m.optional) {
        continue;  // nextn.shared_head_norm: the MTP head then uses output_norm (aliased below)
      }
      DSV4_CHECK(t != nullptr, FormatError,
                 "gguf {}: tensor '{}' is missing (expected ne {} for '{}'{})", f.label(), m.gguf,
                 gguf_shape_string(m.ne), m.reference.front(),
                 m.reference.size() > 1 ? " and the others it holds" : "");
      DSV4_CHECK(trim(t->ne) == trim(m.ne), FormatError,
                 "gguf {}: tensor '{}': expected ne {} (from the metadata), found {}", f.label(),
                 m.gguf, gguf_shape_string(m.ne), gguf_shape_string(t->ne));
      if (m.integer) {
        DSV4_CHECK(t->type == gguf::ggml_id::i32, FormatError,
                   "gguf {}: tensor '{}': expected I32 (expert ids), found {}", f.label(), m.gguf,
                   gguf::type_name(t->type));
      } else {
        const bool readable = is_gguf_weight_type(t->type);
        DSV4_CHECK(readable, FormatError,
                   "gguf {}: tensor '{}' has type {}, which is not a weight type dsv4 reads",
                   f.label(), m.gguf, gguf::type_name(t->type));
      }
      const auto data = f.tensor_data(*t);
      for (std::size_t p = 0; p < m.reference.size(); ++p) {
        Entry e;
        e.tensor = t;
        e.packing = m.packing;
        e.part = p;
        e.info.shape = m.part_shape;
        e.info.elements = 1;
        for (const auto s : m.part_shape) e.info.elements *= s;
        if (m.packing == GgufPacking::experts) {
          const std::size_t part_bytes = data.size() / m.reference.size();
          e.raw = data.subspan(p * part_bytes, part_bytes);
        } else if (m.packing == GgufPacking::single) {
          e.raw = data;
        }
        e.info.dtype = DType::F32;
        switch (t->type) {
          case FormatId::f32:
            e.info.bytes = e.raw;
            break;
          case FormatId::f16:
            e.info.dtype = DType::F16;
            e.info.bytes = e.raw;
            break;
          case FormatId::bf16:
            e.info.dtype = DType::BF16;
            e.info.bytes = e.raw;
            break;
          default:
            if (t->type == gguf::ggml_id::i32) {
              e.info.dtype = DType::I32;
              e.info.bytes = e.raw;
            }
            break;  // block types: F32 through to_float, no bytes
        }
        if (!e.info.bytes.empty()) {
          // inside the data section of the tensor's file (its shard, for a split model)
          e.info.data_begin =
              t->offset + static_cast<std::uint64_t>(e.info.bytes.data() - data.data());
        }
        add(m.reference[p], e);
      }
    }
    for (const GgufTensorInfo& t : f.tensors()) {
      const auto leaf_is = [&](std::string_view leaf) {
        return t.name.starts_with("blk.") && t.name.ends_with(fmt::format(".{}", leaf));
      };
      const bool optional_mtp =
          leaf_is(gguf_names::nextn_embed_tokens) || leaf_is(gguf_names::nextn_shared_head_head);
      DSV4_CHECK(expected.count(t.name) != 0 || optional_mtp, FormatError,
                 "gguf {}: tensor '{}' ({}, ne {}) is not part of the model the metadata "
                 "describes (block_count {}, nextn_predict_layers {}, compress_ratios)",
                 f.label(), t.name, gguf::type_name(t.type), gguf_shape_string(t.ne),
                 cfg_.n_blocks(), cfg_.n_mtp_layers);
    }
    // llama.cpp's MTP graph uses the trunk's hc_head and the shared embedding and head
    for (int j = 0; j < cfg_.n_mtp_layers; ++j) {
      namespace n = tensor_names;
      const std::string p = n::join(n::mtp, std::to_string(j), "");
      for (const std::string_view suffix : {n::hc_fn, n::hc_base, n::hc_scale}) {
        const std::string leaf = n::cat(n::hc_head, suffix);
        add(p + leaf, entries_.at(leaf));
      }
      const std::string norm(n::norm);
      if (!has(p + norm)) add(p + norm, entries_.at(norm));
    }
  }

  std::shared_ptr<const GgufFile> file_;
  GgufLinearSemantics semantics_ = GgufLinearSemantics::partner_dot;
  bool llama_repack_ = true;
  ModelConfig cfg_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::shared_ptr<LoadMeter> meter_;  // set by report_reads
};

static_assert(TensorSource<GgufModel>);

}  // namespace dsv4::io
