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
#include <tuple>
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

/// How a GGUF tensor holds the reference tensors it is made of.
enum class GgufPacking : std::uint8_t {
  single,       ///< one reference tensor, same values (ne = reversed shape)
  experts,      ///< `ffn_*_exps`: reference tensor e is slice e (ne = {cols, rows, E})
  concat_cols,  ///< `nextn.eh_proj`: [e_proj | h_proj] along the input (ne = {2·d, d})
};

/// One tensor of a llama.cpp `deepseek4` GGUF (before quantisation: its logical shape), with the
/// reference tensors it holds.
struct GgufTensor {
  std::string name;              ///< e.g. "blk.3.attn_q_a.weight"
  std::vector<std::int64_t> ne;  ///< ggml order: contiguous dimension first
  Component component = Component::attention;
  std::int64_t params = 0;  ///< learned values (0 for tid2eid)
  int layer = -1;
  bool routed_expert = false;
  bool integer = false;  ///< the I32 hash table
  GgufPacking packing = GgufPacking::single;
  std::vector<std::string> reference;  ///< its reference tensors: one, E experts, {e_proj, h_proj}
  bool optional = false;  ///< llama.cpp loads the model without it (nextn.shared_head_norm)
};

/// The GGUF leaf names that are not rows of block_weights: the top-level tensors, the stacked
/// experts and the MTP block's own tensors (after "blk.N."), and the MTP tensors llama.cpp may
/// find in a file but dsv4 does not read (the MTP graph uses the trunk's embedding and head).
namespace gguf_names {
inline constexpr std::string_view token_embd = "token_embd.weight";
inline constexpr std::string_view output_norm = "output_norm.weight";
inline constexpr std::string_view output = "output.weight";
inline constexpr std::string_view output_hc_fn = "output_hc_fn.weight";
inline constexpr std::string_view output_hc_base = "output_hc_base.weight";
inline constexpr std::string_view output_hc_scale = "output_hc_scale.weight";
inline constexpr std::string_view gate_exps = "ffn_gate_exps.weight";
inline constexpr std::string_view down_exps = "ffn_down_exps.weight";
inline constexpr std::string_view up_exps = "ffn_up_exps.weight";
inline constexpr std::string_view nextn_eh_proj = "nextn.eh_proj.weight";
inline constexpr std::string_view nextn_enorm = "nextn.enorm.weight";
inline constexpr std::string_view nextn_hnorm = "nextn.hnorm.weight";
inline constexpr std::string_view nextn_shared_head_norm = "nextn.shared_head_norm.weight";
inline constexpr std::string_view nextn_embed_tokens = "nextn.embed_tokens.weight";  ///< unread
inline constexpr std::string_view nextn_shared_head_head =
    "nextn.shared_head_head.weight";  ///< unread
}  // namespace gguf_names

/// Every tensor name of a V4 checkpoint in the reference's naming, written once: a full name is
/// joined from these parts (join("layers.3", attn, wq_a) is "layers.3.attn.wq_a.weight"; a
/// hyper-connection site's tensors are the site and a suffix, cat(hc_attn, hc_fn)), and the
/// layout's lists below, the loaders (model/load_layers.hpp, Model::load) and the GGUF name map
/// (io/gguf_model.hpp) compose theirs from them.
namespace tensor_names {
// top level
inline constexpr std::string_view embed = "embed.weight";
inline constexpr std::string_view head = "head.weight";
inline constexpr std::string_view norm = "norm.weight";  ///< also in a compressor and an MTP block
inline constexpr std::string_view hc_head = "hc_head";   ///< a hyper-connection site
// blocks: "layers.L" and "mtp.J" (join(layers, L))
inline constexpr std::string_view layers = "layers";
inline constexpr std::string_view mtp = "mtp";
// in a block
inline constexpr std::string_view attn_norm = "attn_norm.weight";
inline constexpr std::string_view ffn_norm = "ffn_norm.weight";
inline constexpr std::string_view hc_attn = "hc_attn";  ///< a hyper-connection site
inline constexpr std::string_view hc_ffn = "hc_ffn";    ///< a hyper-connection site
inline constexpr std::string_view attn = "attn";
inline constexpr std::string_view ffn = "ffn";
// a hyper-connection site's tensors: site + suffix
inline constexpr std::string_view hc_fn = "_fn";
inline constexpr std::string_view hc_base = "_base";
inline constexpr std::string_view hc_scale = "_scale";
// in attn
inline constexpr std::string_view attn_sink = "attn_sink";
inline constexpr std::string_view wq_a = "wq_a.weight";
inline constexpr std::string_view q_norm = "q_norm.weight";
inline constexpr std::string_view wq_b = "wq_b.weight";  ///< also in indexer
inline constexpr std::string_view wkv = "wkv.weight";    ///< also in a compressor
inline constexpr std::string_view kv_norm = "kv_norm.weight";
inline constexpr std::string_view wo_a = "wo_a.weight";
inline constexpr std::string_view wo_b = "wo_b.weight";
inline constexpr std::string_view compressor = "compressor";  ///< also in indexer
inline constexpr std::string_view indexer = "indexer";
// in a compressor (besides wkv and norm)
inline constexpr std::string_view wgate = "wgate.weight";
inline constexpr std::string_view ape = "ape";
// in indexer (besides wq_b and compressor)
inline constexpr std::string_view weights_proj = "weights_proj.weight";
// in ffn
inline constexpr std::string_view gate = "gate";  ///< join(gate, weight / bias / tid2eid)
inline constexpr std::string_view weight = "weight";
inline constexpr std::string_view bias = "bias";
inline constexpr std::string_view tid2eid = "tid2eid";
inline constexpr std::string_view experts = "experts";  ///< join(experts, E, w1 / w2 / w3)
inline constexpr std::string_view shared_experts =
    "shared_experts";  ///< join(shared_experts, w1 …)
inline constexpr std::string_view w1 = "w1.weight";
inline constexpr std::string_view w2 = "w2.weight";
inline constexpr std::string_view w3 = "w3.weight";
// in an MTP block (besides norm and hc_head)
inline constexpr std::string_view e_proj = "e_proj.weight";
inline constexpr std::string_view h_proj = "h_proj.weight";
inline constexpr std::string_view enorm = "enorm.weight";
inline constexpr std::string_view hnorm = "hnorm.weight";

/// The parts concatenated: `cat(hc_attn, hc_fn)` is "hc_attn_fn".
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  ((s += std::string_view(parts)), ...);
  return s;
}
/// The parts joined by dots: `join("layers.3", attn, wq_a)` is "layers.3.attn.wq_a.weight".
template <class First, class... Parts>
std::string join(const First& first, const Parts&... parts) {
  std::string s{std::string_view(first)};
  ((s += '.', s += std::string_view(parts)), ...);
  return s;
}
/// "<x>.weight" -> "<x>.scale": the FP8/FP4 block scales stored beside a weight.
inline std::string scale_of(std::string_view weight_name) {
  constexpr std::string_view w = ".weight";
  if (weight_name.size() >= w.size() && weight_name.substr(weight_name.size() - w.size()) == w)
    weight_name.remove_suffix(w.size());
  return cat(weight_name, ".scale");
}
}  // namespace tensor_names

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
  namespace n = tensor_names;
  const std::int64_t d = c.dim, h = c.hc_mult, mix = c.hc_mix_width();
  const int r = c.compress_ratio(layer);
  const std::int64_t cc = r == 4 ? 2 : 1;
  std::vector<BlockWeight> w = {
      {std::string(n::attn_norm), "attn_norm.weight", {d}, bf16, C::attention},
      {std::string(n::ffn_norm), "ffn_norm.weight", {d}, bf16, C::attention},
      {n::cat(n::hc_attn, n::hc_fn), "hc_attn_fn.weight", {mix, h * d}, f32, C::mhc},
      {n::cat(n::hc_attn, n::hc_base), "hc_attn_base.weight", {mix}, f32, C::mhc},
      {n::cat(n::hc_attn, n::hc_scale), "hc_attn_scale.weight", {3}, f32, C::mhc},
      {n::cat(n::hc_ffn, n::hc_fn), "hc_ffn_fn.weight", {mix, h * d}, f32, C::mhc},
      {n::cat(n::hc_ffn, n::hc_base), "hc_ffn_base.weight", {mix}, f32, C::mhc},
      {n::cat(n::hc_ffn, n::hc_scale), "hc_ffn_scale.weight", {3}, f32, C::mhc},
      {n::join(n::attn, n::attn_sink), "attn_sinks.weight", {c.n_heads}, f32, C::attention},
      {n::join(n::attn, n::wq_a), "attn_q_a.weight", {c.q_lora_rank, d}, fp8_e4m3, C::attention},
      {n::join(n::attn, n::q_norm), "attn_q_a_norm.weight", {c.q_lora_rank}, bf16, C::attention},
      {n::join(n::attn, n::wq_b),
       "attn_q_b.weight",
       {c.q_out_features(), c.q_lora_rank},
       fp8_e4m3,
       C::attention},
      {n::join(n::attn, n::wkv), "attn_kv.weight", {c.head_dim, d}, fp8_e4m3, C::attention},
      {n::join(n::attn, n::kv_norm), "attn_kv_a_norm.weight", {c.head_dim}, bf16, C::attention},
      {n::join(n::attn, n::wo_a),
       "attn_output_a.weight",
       {c.wo_b_in_features(), c.wo_a_in_features()},
       fp8_e4m3,
       C::attention},
      {n::join(n::attn, n::wo_b),
       "attn_output_b.weight",
       {d, c.wo_b_in_features()},
       fp8_e4m3,
       C::attention},
  };
  if (r > 0) {
    const std::int64_t cw = cc * c.head_dim;
    w.push_back({n::join(n::attn, n::compressor, n::wkv),
                 "attn_compressor_kv.weight",
                 {cw, d},
                 bf16,
                 C::compressor});
    w.push_back({n::join(n::attn, n::compressor, n::wgate),
                 "attn_compressor_gate.weight",
                 {cw, d},
                 bf16,
                 C::compressor});
    w.push_back({n::join(n::attn, n::compressor, n::ape),
                 "attn_compressor_ape.weight",
                 {r, cw},
                 f32,
                 C::compressor});
    w.push_back({n::join(n::attn, n::compressor, n::norm),
                 "attn_compressor_norm.weight",
                 {c.head_dim},
                 bf16,
                 C::compressor});
  }
  if (r == 4) {
    const std::int64_t di = c.index_head_dim;
    w.push_back({n::join(n::attn, n::indexer, n::wq_b),
                 "indexer.attn_q_b.weight",
                 {c.index_n_heads * di, c.q_lora_rank},
                 fp8_e4m3,
                 C::indexer});
    w.push_back({n::join(n::attn, n::indexer, n::weights_proj),
                 "indexer.proj.weight",
                 {c.index_n_heads, d},
                 bf16,
                 C::indexer});
    w.push_back({n::join(n::attn, n::indexer, n::compressor, n::wkv),
                 "indexer_compressor_kv.weight",
                 {2 * di, d},
                 bf16,
                 C::indexer});
    w.push_back({n::join(n::attn, n::indexer, n::compressor, n::wgate),
                 "indexer_compressor_gate.weight",
                 {2 * di, d},
                 bf16,
                 C::indexer});
    w.push_back({n::join(n::attn, n::indexer, n::compressor, n::ape),
                 "indexer_compressor_ape.weight",
                 {4, 2 * di},
                 f32,
                 C::indexer});
    w.push_back({n::join(n::attn, n::indexer, n::compressor, n::norm),
                 "indexer_compressor_norm.weight",
                 {di},
                 bf16,
                 C::indexer});
  }
  w.push_back({n::join(n::ffn, n::gate, n::weight),
               "ffn_gate_inp.weight",
               {c.n_routed_experts, d},
               bf16,
               C::router});
  if (c.is_hash_layer(layer)) {
    w.push_back({n::join(n::ffn, n::gate, n::tid2eid),
                 "ffn_gate_tid2eid.weight",
                 {c.vocab_size, c.n_activated_experts},
                 i64,
                 C::router});
  } else {
    w.push_back({n::join(n::ffn, n::gate, n::bias),
                 "exp_probs_b.bias",
                 {c.n_routed_experts},
                 f32,
                 C::router});
  }
  if (c.n_shared_experts > 0) {
    const std::int64_t in = c.moe_inter_dim * c.n_shared_experts;
    w.push_back({n::join(n::ffn, n::shared_experts, n::w1),
                 "ffn_gate_shexp.weight",
                 {in, d},
                 fp8_e4m3,
                 C::shared_expert});
    w.push_back({n::join(n::ffn, n::shared_experts, n::w2),
                 "ffn_down_shexp.weight",
                 {d, in},
                 fp8_e4m3,
                 C::shared_expert});
    w.push_back({n::join(n::ffn, n::shared_experts, n::w3),
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
      s.name = tensor_names::scale_of(name);
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
      s.name = tensor_names::scale_of(t.name);
      s.shape = {detail::ceil_div(shape[0], 128), detail::ceil_div(shape[1], 128)};
      s.dtype = ReleaseDtype::e8m0;
      s.params = 0;
      s.bytes = s.shape[0] * s.shape[1];
      out.push_back(s);
    }
  };
  using enum ReleaseDtype;
  const std::int64_t d = c.dim, V = c.vocab_size;
  namespace n = tensor_names;
  add(std::string(n::embed), {V, d}, bf16, Component::embedding, -1, false);
  for (int L = 0; L < c.n_blocks(); ++L) {
    const bool mtp = L >= c.n_layers;
    const std::string prefix = mtp ? n::join(n::mtp, std::to_string(L - c.n_layers), "")
                                   : n::join(n::layers, std::to_string(L), "");
    for (const auto& w : detail::block_weights(c, L)) {
      add(prefix + w.official, w.shape, w.dtype, w.component, L, false);
    }
    for (std::int64_t e = 0; e < c.n_routed_experts; ++e) {
      const std::string ep = prefix + n::join(n::ffn, n::experts, std::to_string(e), "");
      add(ep + std::string(n::w1), {c.moe_inter_dim, d}, fp4_e2m1, Component::routed_experts, L,
          true);
      add(ep + std::string(n::w2), {d, c.moe_inter_dim}, fp4_e2m1, Component::routed_experts, L,
          true);
      add(ep + std::string(n::w3), {c.moe_inter_dim, d}, fp4_e2m1, Component::routed_experts, L,
          true);
    }
    if (mtp) {
      add(prefix + std::string(n::e_proj), {d, d}, fp8_e4m3, Component::mtp, L, false);
      add(prefix + std::string(n::h_proj), {d, d}, fp8_e4m3, Component::mtp, L, false);
      add(prefix + std::string(n::enorm), {d}, bf16, Component::mtp, L, false);
      add(prefix + std::string(n::hnorm), {d}, bf16, Component::mtp, L, false);
      add(prefix + std::string(n::norm), {d}, bf16, Component::mtp, L, false);
      add(n::cat(prefix, n::hc_head, n::hc_fn), {c.hc_mult, c.hc_flat_width()}, f32, Component::mtp,
          L, false);
      add(n::cat(prefix, n::hc_head, n::hc_base), {c.hc_mult}, f32, Component::mtp, L, false);
      add(n::cat(prefix, n::hc_head, n::hc_scale), {1}, f32, Component::mtp, L, false);
    }
  }
  add(std::string(n::norm), {d}, bf16, Component::head, -1, false);
  add(std::string(n::head), {V, d}, bf16, Component::head, -1, false);
  add(n::cat(n::hc_head, n::hc_fn), {c.hc_mult, c.hc_flat_width()}, f32, Component::mhc, -1, false);
  add(n::cat(n::hc_head, n::hc_base), {c.hc_mult}, f32, Component::mhc, -1, false);
  add(n::cat(n::hc_head, n::hc_scale), {1}, f32, Component::mhc, -1, false);
  return out;
}

/// Every tensor of a llama.cpp `deepseek4` GGUF converted from the release (formats.md §10.3),
/// in llama.cpp's order: top level, then blocks; the MTP blocks when `include_mtp`. Each names the
/// reference tensors it holds (MTP block j: prefix "mtp.j."; its hc_head_* and the shared
/// embedding/head are not stored: llama.cpp's MTP graph uses the trunk's).
inline std::vector<GgufTensor> gguf_tensors(const ModelConfig& c, bool include_mtp = true) {
  std::vector<GgufTensor> out;
  const auto add = [&](std::string_view prefix, std::string_view leaf,
                       std::vector<std::int64_t> shape, Component comp, int layer,
                       std::vector<std::string> reference) -> GgufTensor& {
    GgufTensor t;
    t.name = std::string(prefix) + std::string(leaf);
    t.ne = detail::reversed(std::move(shape));
    t.layer = layer;
    t.component = layer >= c.n_layers ? Component::mtp : comp;
    t.params = detail::elements(t.ne);
    t.reference = std::move(reference);
    out.push_back(std::move(t));
    return out.back();
  };
  namespace n = tensor_names;
  namespace g = gguf_names;
  const std::int64_t d = c.dim, V = c.vocab_size;
  const auto one = [](auto... parts) { return std::vector<std::string>{n::cat(parts...)}; };
  add("", g::token_embd, {V, d}, Component::embedding, -1, one(n::embed));
  add("", g::output_norm, {d}, Component::head, -1, one(n::norm));
  add("", g::output, {V, d}, Component::head, -1, one(n::head));
  add("", g::output_hc_fn, {c.hc_mult, c.hc_flat_width()}, Component::mhc, -1,
      one(n::hc_head, n::hc_fn));
  add("", g::output_hc_base, {c.hc_mult}, Component::mhc, -1, one(n::hc_head, n::hc_base));
  add("", g::output_hc_scale, {1}, Component::mhc, -1, one(n::hc_head, n::hc_scale));
  const int n_blocks = include_mtp ? c.n_blocks() : c.n_layers;
  for (int L = 0; L < n_blocks; ++L) {
    const bool mtp = L >= c.n_layers;
    const std::string p = "blk." + std::to_string(L) + ".";
    const std::string ref = mtp ? n::join(n::mtp, std::to_string(L - c.n_layers), "")
                                : n::join(n::layers, std::to_string(L), "");
    for (const auto& w : detail::block_weights(c, L)) {
      GgufTensor& t = add(p, w.gguf, w.shape, w.component, L, one(ref, w.official));
      if (w.dtype == ReleaseDtype::i64) {  // stored as I32
        t.integer = true;
        t.params = 0;
      }
    }
    const std::int64_t E = c.n_routed_experts, I = c.moe_inter_dim;
    const auto experts = [&](std::string_view w) {
      std::vector<std::string> r;
      for (std::int64_t e = 0; e < E; ++e)
        r.push_back(ref + n::join(n::ffn, n::experts, std::to_string(e), w));
      return r;
    };
    for (const auto& [leaf, w, shape] :
         {std::tuple{g::gate_exps, n::w1, std::vector<std::int64_t>{E, I, d}},
          std::tuple{g::down_exps, n::w2, std::vector<std::int64_t>{E, d, I}},
          std::tuple{g::up_exps, n::w3, std::vector<std::int64_t>{E, I, d}}}) {
      GgufTensor& t = add(p, leaf, shape, Component::routed_experts, L, experts(w));
      t.routed_expert = true;
      t.packing = GgufPacking::experts;
    }
    if (mtp) {
      add(p, g::nextn_eh_proj, {d, 2 * d}, Component::mtp, L,
          {n::cat(ref, n::e_proj), n::cat(ref, n::h_proj)})
          .packing = GgufPacking::concat_cols;
      add(p, g::nextn_enorm, {d}, Component::mtp, L, one(ref, n::enorm));
      add(p, g::nextn_hnorm, {d}, Component::mtp, L, one(ref, n::hnorm));
      add(p, g::nextn_shared_head_norm, {d}, Component::mtp, L, one(ref, n::norm)).optional = true;
    }
  }
  return out;
}

}  // namespace dsv4
