// DeepSeek-V3.2 (MLA + DeepSeek Sparse Attention) for the cost sheet's comparison: parameters,
// KV-cache bytes and decode FLOPs, computed with the same conventions as plan.hpp.
//
// Values: the official DeepSeek-V3.2 config.json (see docs/cost-sheet.md for the source).
// Reference: `MLA`, `Indexer` and `ModelArgs` in DeepSeek-V3.2's inference/model.py: per token and
// layer it caches the kv_lora_rank latent and the rope key (bf16), and the indexer key
// (index_head_dim FP8 e4m3 values + one fp32 scale per 128); a decoded token attends (absorbed MLA)
// to the index_topk entries the indexer picks out of every earlier token.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "dsv4/core/check.hpp"
#include "dsv4/model/plan.hpp"

namespace dsv4::v32 {

struct Config {
  std::int64_t vocab_size = 129280;
  std::int64_t dim = 7168;     // hidden_size
  int n_layers = 61;           // num_hidden_layers
  int n_dense_layers = 3;      // first_k_dense_replace
  int n_mtp_layers = 1;        // num_nextn_predict_layers
  std::int64_t n_heads = 128;  // num_attention_heads
  std::int64_t q_lora_rank = 1536;
  std::int64_t kv_lora_rank = 512;
  std::int64_t qk_nope_head_dim = 128;
  std::int64_t qk_rope_head_dim = 64;
  std::int64_t v_head_dim = 128;
  std::int64_t inter_dim = 18432;     // intermediate_size (dense layers)
  std::int64_t moe_inter_dim = 2048;  // moe_intermediate_size
  std::int64_t n_routed_experts = 256;
  std::int64_t n_shared_experts = 1;
  std::int64_t n_activated_experts = 8;  // num_experts_per_tok
  std::int64_t index_n_heads = 64;
  std::int64_t index_head_dim = 128;
  std::int64_t index_topk = 2048;
};

/// The official DeepSeek-V3.2 configuration.
inline Config v3_2() { return Config{}; }

/// Reads a Hugging Face DeepSeek-V3.2 config.json object (keys as in the official file).
inline Config parse_config(const nlohmann::json& j, const std::string& origin) {
  DSV4_CHECK(j.is_object(), ConfigError, "{}: a DeepSeek-V3.2 config must be a JSON object",
             origin);
  Config c;
  const auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    DSV4_CHECK(j[key].is_number_integer(), ConfigError, "{}: '{}' must be an integer, found {}",
               origin, key, j[key].dump());
    field = j[key].get<std::remove_reference_t<decltype(field)>>();
  };
  get("vocab_size", c.vocab_size);
  get("hidden_size", c.dim);
  get("num_hidden_layers", c.n_layers);
  get("first_k_dense_replace", c.n_dense_layers);
  get("num_nextn_predict_layers", c.n_mtp_layers);
  get("num_attention_heads", c.n_heads);
  get("q_lora_rank", c.q_lora_rank);
  get("kv_lora_rank", c.kv_lora_rank);
  get("qk_nope_head_dim", c.qk_nope_head_dim);
  get("qk_rope_head_dim", c.qk_rope_head_dim);
  get("v_head_dim", c.v_head_dim);
  get("intermediate_size", c.inter_dim);
  get("moe_intermediate_size", c.moe_inter_dim);
  get("n_routed_experts", c.n_routed_experts);
  get("n_shared_experts", c.n_shared_experts);
  get("num_experts_per_tok", c.n_activated_experts);
  get("index_n_heads", c.index_n_heads);
  get("index_head_dim", c.index_head_dim);
  get("index_topk", c.index_topk);
  DSV4_CHECK(c.n_dense_layers <= c.n_layers && c.n_activated_experts <= c.n_routed_experts,
             ConfigError, "{}: inconsistent DeepSeek-V3.2 config", origin);
  return c;
}

struct Params {
  std::int64_t total = 0;   ///< without MTP (the published convention)
  std::int64_t active = 0;  ///< per token, without MTP and the embedding table
  std::int64_t mtp = 0;     ///< one MTP block without its embedding/head copies
};

/// Parameter counts (norm weights, the indexer's LayerNorm weight and bias included).
inline Params count_parameters(const Config& c) {
  const std::int64_t d = c.dim, H = c.n_heads;
  const std::int64_t attn = d * c.q_lora_rank + c.q_lora_rank +
                            c.q_lora_rank * H * (c.qk_nope_head_dim + c.qk_rope_head_dim) +
                            d * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank +
                            c.kv_lora_rank * H * (c.qk_nope_head_dim + c.v_head_dim) +
                            H * c.v_head_dim * d + 2 * d;
  const std::int64_t indexer = c.q_lora_rank * c.index_n_heads * c.index_head_dim +
                               d * c.index_head_dim + 2 * c.index_head_dim + d * c.index_n_heads;
  const std::int64_t expert = 3 * d * c.moe_inter_dim;
  const std::int64_t router = c.n_routed_experts * d + c.n_routed_experts;
  const std::int64_t moe = router + (c.n_routed_experts + c.n_shared_experts) * expert;
  const std::int64_t moe_active = router + (c.n_activated_experts + c.n_shared_experts) * expert;
  const std::int64_t dense = 3 * d * c.inter_dim;
  const std::int64_t n_moe = c.n_layers - c.n_dense_layers;
  Params p;
  p.total = 2 * c.vocab_size * d + d + c.n_layers * (attn + indexer) + c.n_dense_layers * dense +
            n_moe * moe;
  p.active = c.vocab_size * d + d + c.n_layers * (attn + indexer) + c.n_dense_layers * dense +
             n_moe * moe_active;
  p.mtp = attn + indexer + moe + 2 * d * d + 3 * d;
  return p;
}

/// Per-sequence cache after `context` tokens, trunk layers. Reference storage: latent + rope key
/// bf16 (2·(kv_lora_rank + rope) bytes) and the FP8 indexer key with one fp32 scale per 128.
/// FP8 storage: the latent as FP8 with one fp32 scale per 128 values, the rope key bf16 (the
/// 656-byte FP8 sparse-MLA cache entry of DeepSeek's kernels), same indexer key.
inline plan::KvSheet kv_cache(const Config& c, std::int64_t context, plan::KvStorage s) {
  plan::KvSheet k;
  const std::int64_t latent =
      s == plan::KvStorage::reference
          ? 2 * (c.kv_lora_rank + c.qk_rope_head_dim)
          : c.kv_lora_rank + 4 * (c.kv_lora_rank / 128) + 2 * c.qk_rope_head_dim;
  const std::int64_t index_key = c.index_head_dim + 4 * ((c.index_head_dim + 127) / 128);
  k.compressed = c.n_layers * context * latent;  // every token is an entry: no compression
  k.indexer = c.n_layers * context * index_key;
  return k;
}

/// Decode FLOPs of one token that sees `context` tokens: absorbed MLA over min(context, topk)
/// entries (q·k over kv_lora_rank + rope dims, p·v over kv_lora_rank), indexer scores over every
/// earlier token, and 2·active parameters for the projections.
inline plan::FlopSheet decode_flops(const Config& c, std::int64_t context) {
  plan::FlopSheet f;
  const double entries = static_cast<double>(std::min(context, c.index_topk));
  const double H = static_cast<double>(c.n_heads);
  f.attention_core = static_cast<double>(c.n_layers) * entries * H *
                     (2.0 * static_cast<double>(c.kv_lora_rank + c.qk_rope_head_dim) +
                      2.0 * static_cast<double>(c.kv_lora_rank));
  f.indexer = static_cast<double>(c.n_layers) * static_cast<double>(context) *
              (2.0 * static_cast<double>(c.index_n_heads * c.index_head_dim) +
               3.0 * static_cast<double>(c.index_n_heads));
  f.projections = 2.0 * static_cast<double>(count_parameters(c).active);
  return f;
}

}  // namespace dsv4::v32
