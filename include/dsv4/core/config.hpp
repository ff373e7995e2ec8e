// ModelConfig: every hyper-parameter of a DeepSeek-V4 model, with the official presets.
//
// Spec: spec/architecture.md §1 (1.1 fields, 1.3 layer schedule, 1.4 reading a config, 1.6 tiny).
// Reference: `ModelArgs` in inference/model.py. Field names are the reference's names; the Hugging
// Face names are mapped by io/config_json.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

/// The attention variant of one block, decided by its compress ratio (spec §1.3).
enum class AttentionKind {
  swa,  ///< ratio 0: sliding window only
  csa,  ///< ratio 4: overlapping compressor + lightning indexer
  hca,  ///< any other ratio: non-overlapping compressor, every visible entry attended
};

/// Returns the attention variant the reference uses for compress ratio `ratio`.
constexpr AttentionKind attention_kind(int ratio) {
  return ratio == 0 ? AttentionKind::swa : ratio == 4 ? AttentionKind::csa : AttentionKind::hca;
}

constexpr const char* attention_kind_name(AttentionKind k) {
  return k == AttentionKind::swa ? "SWA" : k == AttentionKind::csa ? "CSA" : "HCA";
}

/// Storage of a group of weights in a checkpoint ("fp8", "fp4", "bf16", ...).
enum class WeightDtype { bf16, fp8, fp4, f32 };

/// Every field of the reference `ModelArgs`. Defaults are the reference defaults where it has one.
struct ModelConfig {
  // runtime sizing (not model facts)
  int max_batch_size = 4;
  std::int64_t max_seq_len = 4096;

  // storage
  WeightDtype dtype = WeightDtype::fp8;  ///< non-expert linear weights
  WeightDtype expert_dtype =
      WeightDtype::fp4;  ///< routed experts; `dtype` when the config says null
  std::string scale_fmt = "ue8m0";
  std::string scale_dtype = "fp8";

  // trunk
  std::int64_t vocab_size = 129280;
  std::int64_t dim = 7168;
  std::int64_t moe_inter_dim = 3072;
  int n_layers = 61;
  int n_hash_layers = 3;
  int n_mtp_layers = 1;
  std::int64_t n_heads = 128;

  // MoE
  std::int64_t n_routed_experts = 384;
  std::int64_t n_shared_experts = 1;
  std::int64_t n_activated_experts = 6;
  std::string score_func = "sqrtsoftplus";  ///< sqrtsoftplus | softmax | sigmoid
  double route_scale = 2.5;
  double swiglu_limit = 10.0;
  /// Per-block SwiGLU limits of the routed experts and of the shared expert (llama.cpp stores
  /// swiglu_clamp_exp / swiglu_clamp_shexp per layer), n_layers + n_mtp_layers entries each; empty:
  /// swiglu_limit for every block.
  std::vector<double> swiglu_limits;
  std::vector<double> shared_swiglu_limits;

  // attention
  std::int64_t q_lora_rank = 1536;
  std::int64_t head_dim = 512;
  std::int64_t rope_head_dim = 64;
  double norm_eps = 1e-6;
  std::int64_t o_groups = 16;
  std::int64_t o_lora_rank = 1024;
  std::int64_t window_size = 128;
  std::vector<int> compress_ratios;  ///< n_layers + n_mtp_layers entries

  // RoPE / YaRN
  double compress_rope_theta = 160000.0;
  std::int64_t original_seq_len = 65536;
  double rope_theta = 10000.0;
  double rope_factor = 16.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;

  // lightning indexer
  std::int64_t index_n_heads = 64;
  std::int64_t index_head_dim = 128;
  std::int64_t index_topk = 1024;

  // manifold-constrained hyper-connections
  int hc_mult = 4;
  int hc_sinkhorn_iters = 20;
  double hc_eps = 1e-6;

  bool operator==(const ModelConfig&) const = default;

  // ---- derived quantities (spec §1.2) ----
  int n_blocks() const { return n_layers + n_mtp_layers; }
  std::int64_t nope_head_dim() const { return head_dim - rope_head_dim; }
  std::int64_t q_out_features() const { return n_heads * head_dim; }
  std::int64_t wo_a_in_features() const { return n_heads * head_dim / o_groups; }
  std::int64_t wo_b_in_features() const { return o_groups * o_lora_rank; }
  std::int64_t hc_mix_width() const { return (2 + std::int64_t{hc_mult}) * hc_mult; }
  std::int64_t hc_flat_width() const { return hc_mult * dim; }
  /// Compress ratio of block `layer` (MTP block j is layer n_layers + j).
  int compress_ratio(int layer) const {
    return compress_ratios.at(static_cast<std::size_t>(layer));
  }
  AttentionKind attention(int layer) const { return attention_kind(compress_ratio(layer)); }
  bool is_hash_layer(int layer) const { return layer < n_hash_layers; }
  /// SwiGLU limit of the routed experts of block `layer` (MTP block j is layer n_layers + j).
  double routed_swiglu_limit(int layer) const {
    return swiglu_limits.empty() ? swiglu_limit : swiglu_limits.at(static_cast<std::size_t>(layer));
  }
  /// SwiGLU limit of the shared expert of block `layer`.
  double shared_swiglu_limit(int layer) const {
    return shared_swiglu_limits.empty() ? routed_swiglu_limit(layer)
                                        : shared_swiglu_limits.at(static_cast<std::size_t>(layer));
  }
};

}  // namespace dsv4
