// The tensors of a DeepSeek-V4 checkpoint, listed once from a ModelConfig.
//
// Spec: spec/formats.md §9.2 (what the release stores how), §10.1 (official names and shapes) and
// §10.3 (llama.cpp GGUF names). Reference: `Transformer.state_dict()` of inference/model.py and the
// `deepseek4` tensor table of llama.cpp.
//
// One table (block_weights) describes every weight of a block: its official leaf name, its GGUF
// name, its shape, how the release stores it and which component it belongs to. The official
// listing (one tensor per routed expert, FP8/FP4 scale tensors beside their weights) and the GGUF
// listing (experts stacked, MTP projections concatenated, no scale tensors) are both derived from
// it, so the cost sheet, the loaders and the converters cannot disagree about what exists.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/config.hpp"

namespace dsv4 {

/// The parts of the model the cost sheet reports separately.
enum class Component : std::uint8_t {
  embedding,
  attention,   ///< projections, norms and sinks of the attention (not compressor/indexer)
  indexer,     ///< lightning indexer of CSA layers, its own compressor included
  compressor,  ///< the attention compressor of CSA/HCA layers
  mhc,         ///< hyper-connection mixers (hc_attn_*, hc_ffn_*, hc_head_*)
  router,      ///< MoE gate weight and selection bias (the hash table is not a parameter)
  routed_experts,
  shared_expert,
  head,  ///< final norm and LM head
  mtp,   ///< everything in the MTP blocks
};
inline constexpr int kNumComponents = 10;

constexpr std::string_view component_name(Component c) {
  constexpr std::array<std::string_view, kNumComponents> names = {
      "embedding", "attention",      "indexer",       "compressors", "mHC",
      "router",    "routed experts", "shared expert", "head",        "MTP"};
  return names[static_cast<std::size_t>(c)];
}

/// How the official Hugging Face release stores a tensor (formats.md §9.2).
enum class ReleaseDtype : std::uint8_t {
  bf16,
  f32,
  fp8_e4m3,  ///< F8_E4M3 with an F8_E8M0 `.scale` per 128x128 block
  fp4_e2m1,  ///< I8 holding two E2M1 codes per byte, F8_E8M0 `.scale` per 32 inputs
  e8m0,      ///< a scale tensor
  i64,       ///< the hash-routing table tid2eid
};

/// One tensor of the official release.
struct ReleaseTensor {
  std::string name;                 ///< e.g. "layers.3.attn.wq_a.weight"
  std::vector<std::int64_t> shape;  ///< as stored (PyTorch order; FP4 weights [out, in/2] bytes)
  ReleaseDtype dtype = ReleaseDtype::bf16;
  Component component = Component::attention;
  std::int64_t params = 0;  ///< learned values it holds (0 for scales and tid2eid)
  std::int64_t bytes = 0;   ///< bytes in the release
  int layer = -1;           ///< block index (MTP block j: n_layers + j), -1 for top level
  bool routed_expert = false;
};

/// One tensor of a llama.cpp `deepseek4` GGUF (before quantisation: its logical shape).
struct GgufTensor {
  std::string name;              ///< e.g. "blk.3.attn_q_a.weight"
  std::vector<std::int64_t> ne;  ///< ggml order: contiguous dimension first
  Component component = Component::attention;
  std::int64_t params = 0;  ///< learned values (0 for tid2eid)
  int layer = -1;
  bool routed_expert = false;
  bool integer = false;  ///< the I32 hash table
};

namespace detail {

/// A weight of one block, in both naming schemes.
struct BlockWeight {
  std::string official;             ///< leaf after "layers.L." / "mtp.J."
  std::string gguf;                 ///< leaf after "blk.N."
  std::vector<std::int64_t> shape;  ///< PyTorch order, logical (unpacked) shape
  ReleaseDtype dtype;
  Component component;
};

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

/// Every non-expert weight of block `layer`, in the reference's state_dict order.
inline std::vector<BlockWeight> block_weights(const ModelConfig& c, int layer) {
  using enum ReleaseDtype;
  using C = Component;
  const std::int64_t d = c.dim, h = c.hc_mult, mix = c.hc_mix_width();
  const int r = c.compress_ratio(layer);
  const std::int64_t cc = r == 4 ? 2 : 1;
  std::vector<BlockWeight> w = {
      {"attn_norm.weight", "attn_norm.weight", {d}, bf16, C::attention},
      {"ffn_norm.weight", "ffn_norm.weight", {d}, bf16, C::attention},
      {"hc_attn_fn", "hc_attn_fn.weight", {mix, h * d}, f32, C::mhc},
      {"hc_attn_base", "hc_attn_base.weight", {mix}, f32, C::mhc},
      {"hc_attn_scale", "hc_attn_scale.weight", {3}, f32, C::mhc},
      {"hc_ffn_fn", "hc_ffn_fn.weight", {mix, h * d}, f32, C::mhc},
      {"hc_ffn_base", "hc_ffn_base.weight", {mix}, f32, C::mhc},
      {"hc_ffn_scale", "hc_ffn_scale.weight", {3}, f32, C::mhc},
      {"attn.attn_sink", "attn_sinks.weight", {c.n_heads}, f32, C::attention},
      {"attn.wq_a.weight", "attn_q_a.weight", {c.q_lora_rank, d}, fp8_e4m3, C::attention},
      {"attn.q_norm.weight", "attn_q_a_norm.weight", {c.q_lora_rank}, bf16, C::attention},
      {"attn.wq_b.weight",
       "attn_q_b.weight",
       {c.q_out_features(), c.q_lora_rank},
       fp8_e4m3,
       C::attention},
      {"attn.wkv.weight", "attn_kv.weight", {c.head_dim, d}, fp8_e4m3, C::attention},
      {"attn.kv_norm.weight", "attn_kv_a_norm.weight", {c.head_dim}, bf16, C::attention},
      {"attn.wo_a.weight",
       "attn_output_a.weight",
       {c.wo_b_in_features(), c.wo_a_in_features()},
       fp8_e4m3,
       C::attention},
      {"attn.wo_b.weight",
       "attn_output_b.weight",
       {d, c.wo_b_in_features()},
       fp8_e4m3,
       C::attention},
  };
  if (r > 0) {
    const std::int64_t cw = cc * c.head_dim;
    w.push_back(
        {"attn.compressor.wkv.weight", "attn_compressor_kv.weight", {cw, d}, bf16, C::compressor});
    w.push_back({"attn.compressor.wgate.weight",
                 "attn_compressor_gate.weight",
                 {cw, d},
                 bf16,
                 C::compressor});
    w.push_back({"attn.compressor.ape", "attn_compressor_ape.weight", {r, cw}, f32, C::compressor});
    w.push_back({"attn.compressor.norm.weight",
                 "attn_compressor_norm.weight",
                 {c.head_dim},
                 bf16,
                 C::compressor});
  }
  if (r == 4) {
    const std::int64_t di = c.index_head_dim;
    w.push_back({"attn.indexer.wq_b.weight",
                 "indexer.attn_q_b.weight",
                 {c.index_n_heads * di, c.q_lora_rank},
                 fp8_e4m3,
                 C::indexer});
    w.push_back({"attn.indexer.weights_proj.weight",
                 "indexer.proj.weight",
                 {c.index_n_heads, d},
                 bf16,
                 C::indexer});
    w.push_back({"attn.indexer.compressor.wkv.weight",
                 "indexer_compressor_kv.weight",
                 {2 * di, d},
                 bf16,
                 C::indexer});
    w.push_back({"attn.indexer.compressor.wgate.weight",
                 "indexer_compressor_gate.weight",
                 {2 * di, d},
                 bf16,
                 C::indexer});
    w.push_back({"attn.indexer.compressor.ape",
                 "indexer_compressor_ape.weight",
                 {4, 2 * di},
                 f32,
                 C::indexer});
    w.push_back({"attn.indexer.compressor.norm.weight",
                 "indexer_compressor_norm.weight",
                 {di},
                 bf16,
                 C::indexer});
  }
  w.push_back({"ffn.gate.weight", "ffn_gate_inp.weight", {c.n_routed_experts, d}, bf16, C::router});
  if (c.is_hash_layer(layer)) {
    w.push_back({"ffn.gate.tid2eid",
                 "ffn_gate_tid2eid.weight",
                 {c.vocab_size, c.n_activated_experts},
                 i64,
                 C::router});
  } else {
    w.push_back({"ffn.gate.bias", "exp_probs_b.bias", {c.n_routed_experts}, f32, C::router});
  }
  if (c.n_shared_experts > 0) {
    const std::int64_t in = c.moe_inter_dim * c.n_shared_experts;
    w.push_back({"ffn.shared_experts.w1.weight",
                 "ffn_gate_shexp.weight",
                 {in, d},
                 fp8_e4m3,
                 C::shared_expert});
    w.push_back({"ffn.shared_experts.w2.weight",
                 "ffn_down_shexp.weight",
                 {d, in},
                 fp8_e4m3,
                 C::shared_expert});
    w.push_back({"ffn.shared_experts.w3.weight",
                 "ffn_up_shexp.weight",
                 {in, d},
                 fp8_e4m3,
                 C::shared_expert});
  }
  return w;
}

inline std::int64_t elements(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) n *= s;
  return n;
}

inline std::vector<std::int64_t> reversed(std::vector<std::int64_t> v) {
  return {v.rbegin(), v.rend()};
}

}  // namespace detail

/// Bytes per element of a release dtype (FP4: half a byte; handled by the caller).
constexpr std::int64_t release_dtype_bytes(ReleaseDtype t) {
  return t == ReleaseDtype::f32 ? 4 : t == ReleaseDtype::bf16 ? 2 : t == ReleaseDtype::i64 ? 8 : 1;
}

constexpr std::string_view release_dtype_name(ReleaseDtype t) {
  constexpr std::array<std::string_view, 6> names = {"BF16", "F32",     "F8_E4M3",
                                                     "I8",   "F8_E8M0", "I64"};
  return names[static_cast<std::size_t>(t)];
}

/// Every tensor of the official release (formats.md §10.1): trunk, then the MTP blocks.
/// `expert_dtype` bf16 (configs whose routed experts are not FP4) stores experts as BF16, and
/// `dtype` bf16 stores every FP8 weight as BF16 without scales (the golden tiny models' form).
inline std::vector<ReleaseTensor> release_tensors(const ModelConfig& c) {
  std::vector<ReleaseTensor> out;
  const auto add = [&](std::string name, std::vector<std::int64_t> shape, ReleaseDtype dt,
                       Component comp, int layer, bool expert) {
    ReleaseTensor t;
    t.layer = layer;
    t.routed_expert = expert;
    t.component = layer >= c.n_layers ? Component::mtp : comp;
    const std::int64_t n = detail::elements(shape);
    if (dt == ReleaseDtype::fp8_e4m3 && c.dtype != WeightDtype::fp8) dt = ReleaseDtype::bf16;
    if (dt == ReleaseDtype::fp4_e2m1 && c.expert_dtype != WeightDtype::fp4) {
      dt = c.expert_dtype == WeightDtype::fp8 ? ReleaseDtype::fp8_e4m3 : ReleaseDtype::bf16;
    }
    if (dt == ReleaseDtype::fp4_e2m1) {
      // packed I8 [out, in/2] + scale [out, in/32]
      t.name = name;
      t.shape = {shape[0], shape[1] / 2};
      t.dtype = dt;
      t.params = n;
      t.bytes = n / 2;
      out.push_back(t);
      ReleaseTensor s = t;
      s.name = name.substr(0, name.size() - 6) + "scale";  // "weight" -> "scale"
      s.shape = {shape[0], shape[1] / 32};
      s.dtype = ReleaseDtype::e8m0;
      s.params = 0;
      s.bytes = shape[0] * (shape[1] / 32);
      out.push_back(s);
      return;
    }
    t.name = std::move(name);
    t.shape = shape;
    t.dtype = dt;
    t.params = dt == ReleaseDtype::i64 ? 0 : n;
    t.bytes = n * release_dtype_bytes(dt);
    out.push_back(t);
    if (dt == ReleaseDtype::fp8_e4m3) {
      ReleaseTensor s = t;
      s.name = t.name.substr(0, t.name.size() - 6) + "scale";
      s.shape = {detail::ceil_div(shape[0], 128), detail::ceil_div(shape[1], 128)};
      s.dtype = ReleaseDtype::e8m0;
      s.params = 0;
      s.bytes = s.shape[0] * s.shape[1];
      out.push_back(s);
    }
  };
  using enum ReleaseDtype;
  const std::int64_t d = c.dim, V = c.vocab_size;
  add("embed.weight", {V, d}, bf16, Component::embedding, -1, false);
  for (int L = 0; L < c.n_blocks(); ++L) {
    const bool mtp = L >= c.n_layers;
    const std::string prefix =
        mtp ? "mtp." + std::to_string(L - c.n_layers) + "." : "layers." + std::to_string(L) + ".";
    for (const auto& w : detail::block_weights(c, L)) {
      add(prefix + w.official, w.shape, w.dtype, w.component, L, false);
    }
    for (std::int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string ep = prefix + "ffn.experts." + std::to_string(e) + ".";
      add(ep + "w1.weight", {c.moe_inter_dim, d}, fp4_e2m1, Component::routed_experts, L, true);
      add(ep + "w2.weight", {d, c.moe_inter_dim}, fp4_e2m1, Component::routed_experts, L, true);
      add(ep + "w3.weight", {c.moe_inter_dim, d}, fp4_e2m1, Component::routed_experts, L, true);
    }
    if (mtp) {
      add(prefix + "e_proj.weight", {d, d}, fp8_e4m3, Component::mtp, L, false);
      add(prefix + "h_proj.weight", {d, d}, fp8_e4m3, Component::mtp, L, false);
      add(prefix + "enorm.weight", {d}, bf16, Component::mtp, L, false);
      add(prefix + "hnorm.weight", {d}, bf16, Component::mtp, L, false);
      add(prefix + "norm.weight", {d}, bf16, Component::mtp, L, false);
      add(prefix + "hc_head_fn", {c.hc_mult, c.hc_flat_width()}, f32, Component::mtp, L, false);
      add(prefix + "hc_head_base", {c.hc_mult}, f32, Component::mtp, L, false);
      add(prefix + "hc_head_scale", {1}, f32, Component::mtp, L, false);
    }
  }
  add("norm.weight", {d}, bf16, Component::head, -1, false);
  add("head.weight", {V, d}, bf16, Component::head, -1, false);
  add("hc_head_fn", {c.hc_mult, c.hc_flat_width()}, f32, Component::mhc, -1, false);
  add("hc_head_base", {c.hc_mult}, f32, Component::mhc, -1, false);
  add("hc_head_scale", {1}, f32, Component::mhc, -1, false);
  return out;
}

/// Every tensor of a llama.cpp `deepseek4` GGUF converted from the release (formats.md §10.3),
/// in llama.cpp's order: top level, then blocks; the MTP blocks when `include_mtp`.
inline std::vector<GgufTensor> gguf_tensors(const ModelConfig& c, bool include_mtp = true) {
  std::vector<GgufTensor> out;
  const auto add = [&](std::string name, std::vector<std::int64_t> shape, Component comp, int layer,
                       bool expert, bool integer = false) {
    GgufTensor t;
    t.name = std::move(name);
    t.ne = detail::reversed(std::move(shape));
    t.layer = layer;
    t.component = layer >= c.n_layers ? Component::mtp : comp;
    t.routed_expert = expert;
    t.integer = integer;
    t.params = integer ? 0 : detail::elements(t.ne);
    out.push_back(std::move(t));
  };
  const std::int64_t d = c.dim, V = c.vocab_size;
  add("token_embd.weight", {V, d}, Component::embedding, -1, false);
  add("output_norm.weight", {d}, Component::head, -1, false);
  add("output.weight", {V, d}, Component::head, -1, false);
  add("output_hc_fn.weight", {c.hc_mult, c.hc_flat_width()}, Component::mhc, -1, false);
  add("output_hc_base.weight", {c.hc_mult}, Component::mhc, -1, false);
  add("output_hc_scale.weight", {1}, Component::mhc, -1, false);
  const int n_blocks = include_mtp ? c.n_blocks() : c.n_layers;
  for (int L = 0; L < n_blocks; ++L) {
    const std::string p = "blk." + std::to_string(L) + ".";
    for (const auto& w : detail::block_weights(c, L)) {
      std::vector<std::int64_t> shape = w.shape;
      if (w.dtype == ReleaseDtype::i64) {
        add(p + w.gguf, shape, w.component, L, false, true);  // stored as I32
      } else {
        add(p + w.gguf, shape, w.component, L, false);
      }
    }
    const std::int64_t E = c.n_routed_experts, I = c.moe_inter_dim;
    add(p + "ffn_gate_exps.weight", {E, I, d}, Component::routed_experts, L, true);
    add(p + "ffn_down_exps.weight", {E, d, I}, Component::routed_experts, L, true);
    add(p + "ffn_up_exps.weight", {E, I, d}, Component::routed_experts, L, true);
    if (L >= c.n_layers) {
      add(p + "nextn.eh_proj.weight", {d, 2 * d}, Component::mtp, L, false);
      add(p + "nextn.enorm.weight", {d}, Component::mtp, L, false);
      add(p + "nextn.hnorm.weight", {d}, Component::mtp, L, false);
      add(p + "nextn.shared_head_norm.weight", {d}, Component::mtp, L, false);
    }
  }
  return out;
}

}  // namespace dsv4
