// Loading the layers from a tensor source in the reference's tensor names: every weight checked as
// it is read (present, dtype, shape; FormatError naming the tensor). The layers themselves know
// nothing of files (dependencies run core → formats → ops → backend → layers → model, and io
// loads into the model through these functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"
#include "dsv4/layers/attention.hpp"
#include "dsv4/layers/compressor.hpp"
#include "dsv4/layers/indexer.hpp"
#include "dsv4/layers/mhc.hpp"
#include "dsv4/layers/moe.hpp"
#include "dsv4/layers/routers.hpp"

namespace dsv4 {

// ---- compressor --------------------------------------------------------------------------------

/// Reads a compressor's tensors ("<prefix>wkv.weight", "wgate.weight", "ape", "norm.weight"),
/// checking every shape and dtype (FormatError naming the tensor).
template <io::TensorSource S>
CompressorWeights load_compressor_weights(const S& src, const std::string& prefix, std::int64_t dim,
                                          int ratio, std::int64_t head_dim, std::int64_t rope_dim,
                                          double norm_eps, bool rotate) {
  DSV4_CHECK(ratio > 0 && head_dim > rope_dim && rope_dim > 0, ConfigError,
             "compressor {}: ratio {} with head_dim {} and rope_head_dim {} is not valid", prefix,
             ratio, head_dim, rope_dim);
  CompressorWeights w;
  w.ratio = ratio;
  w.head_dim = head_dim;
  w.rope_dim = rope_dim;
  w.rotate = rotate;
  const std::size_t width = w.width();
  const auto d = static_cast<std::size_t>(dim);
  w.wkv = io::load_float_product(src, tensor_names::cat(prefix, tensor_names::wkv), width, d);
  w.wgate = io::load_float_product(src, tensor_names::cat(prefix, tensor_names::wgate), width, d);
  w.ape = io::load_float(src, tensor_names::cat(prefix, tensor_names::ape),
                         {static_cast<std::uint64_t>(ratio), width});
  w.norm.weight = io::load_float(src, tensor_names::cat(prefix, tensor_names::norm),
                                 {static_cast<std::uint64_t>(head_dim)});
  w.norm.eps = static_cast<float>(norm_eps);
  return w;
}

// ---- indexer -----------------------------------------------------------------------------------

/// Reads "<prefix>wq_b.weight", "weights_proj.weight" and "compressor.*" of a ratio-4 layer.
template <LinearOp Lin, io::TensorSource S>
IndexerWeights<Lin> load_indexer_weights(const S& f, const std::string& prefix,
                                         const ModelConfig& cfg) {
  DSV4_CHECK(cfg.index_head_dim > cfg.rope_head_dim && cfg.index_head_dim % 32 == 0 &&
                 (cfg.index_head_dim & (cfg.index_head_dim - 1)) == 0,
             ConfigError,
             "indexer {}: index_head_dim {} must be a power of two, a multiple of 32 and larger "
             "than rope_head_dim {}",
             prefix, cfg.index_head_dim, cfg.rope_head_dim);
  DSV4_CHECK(cfg.index_n_heads > 0 && cfg.index_topk > 0, ConfigError,
             "indexer {}: index_n_heads {} and index_topk {} must be positive", prefix,
             cfg.index_n_heads, cfg.index_topk);
  IndexerWeights<Lin> w;
  w.n_heads = cfg.index_n_heads;
  w.head_dim = cfg.index_head_dim;
  w.topk = cfg.index_topk;
  const auto q_out = static_cast<std::size_t>(cfg.index_n_heads * cfg.index_head_dim);
  w.wq_b = io::load_linear<Lin>(f, tensor_names::cat(prefix, tensor_names::wq_b), q_out,
                                static_cast<std::size_t>(cfg.q_lora_rank));
  w.weights_proj = io::load_float_product(f, tensor_names::cat(prefix, tensor_names::weights_proj),
                                          static_cast<std::size_t>(cfg.index_n_heads),
                                          static_cast<std::size_t>(cfg.dim));
  w.compressor = load_compressor_weights(
      f, tensor_names::cat(prefix, tensor_names::compressor, "."), cfg.dim, 4, cfg.index_head_dim,
      cfg.rope_head_dim, cfg.norm_eps, /*rotate=*/true);
  return w;
}

// ---- attention ---------------------------------------------------------------------------------

/// The values of the weight `name` (wo_a, [rows, cols]) as the reference runs it: a bf16 matrix.
/// The release stores it as F8_E4M3 with 128×128 block scales (tensor_names::scale_of(name),
/// F8_E8M0), which convert.py multiplies
/// out (exactly: a code times a power of two is a bf16 value); checkpoints after conversion hold
/// BF16 (or F32 / F16 with bf16 values).
template <io::TensorSource S>
std::vector<bf16> load_wo_a(const S& src, const std::string& name, std::size_t rows,
                            std::size_t cols) {
  const std::string& wname = name;
  const io::TensorInfo& ti = io::expect_tensor(src, wname, {rows, cols});
  if (ti.dtype != DType::F8_E4M3) return io::load_bf16(src, wname, {rows, cols});
  constexpr std::size_t kBlock = 128;
  const std::string sname = tensor_names::scale_of(name);
  const std::size_t sr = (rows + kBlock - 1) / kBlock;
  const std::size_t sc = (cols + kBlock - 1) / kBlock;
  DSV4_CHECK(src.has(sname), FormatError,
             "{}: tensor '{}' is F8_E4M3 but its block scales '{}' ([{}, {}]) are missing",
             src.label(), wname, sname, sr, sc);
  const io::TensorInfo& si = io::expect_tensor(src, sname, {sr, sc});
  DSV4_CHECK(si.dtype == DType::F8_E8M0 || si.dtype == DType::F32, FormatError,
             "{}: tensor '{}': expected dtype F8_E8M0 or F32, found {}", src.label(), sname,
             dtype_name(si.dtype));
  const std::vector<float> q = src.to_float(wname);
  const std::vector<float> s = src.to_float(sname);
  std::vector<bf16> out(q.size());
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const float v = q[r * cols + c] * s[(r / kBlock) * sc + c / kBlock];
      out[r * cols + c] = bf16(v);
      DSV4_CHECK(out[r * cols + c].to_float() == v, FormatError,
                 "{}: tensor '{}': element [{}, {}] times its scale is {}, not a bf16 value",
                 src.label(), wname, r, c, v);
    }
  }
  return out;
}

/// Reads the attention tensors of block `layer` ("<prefix>wq_a.weight", …; prefix e.g.
/// "layers.1.attn." or "mtp.0.attn.") and checks every shape and dtype against `cfg`
/// (FormatError naming the tensor). The layer's compress ratio is cfg.compress_ratios[layer].
/// `Lin` must have an io::LinearLoader (DenseLinear<float>, DenseLinear<bf16>, ...).
template <LinearOp Lin = DenseLinear<bf16>, io::TensorSource S>
AttentionWeights<Lin> load_attention_weights(const S& f, const std::string& prefix,
                                             const ModelConfig& cfg, int layer) {
  DSV4_CHECK(layer >= 0 && static_cast<std::size_t>(layer) < cfg.compress_ratios.size(),
             ConfigError, "attention {}: block {} has no entry in compress_ratios ({} entries)",
             prefix, layer, cfg.compress_ratios.size());
  DSV4_CHECK(cfg.n_heads > 0 && cfg.o_groups > 0 && cfg.n_heads % cfg.o_groups == 0 &&
                 cfg.head_dim > cfg.rope_head_dim && cfg.rope_head_dim > 0 &&
                 cfg.rope_head_dim % 2 == 0 && cfg.window_size > 0,
             ConfigError,
             "attention {}: n_heads {}, o_groups {}, head_dim {}, rope_head_dim {}, window_size {} "
             "are not a valid attention shape",
             prefix, cfg.n_heads, cfg.o_groups, cfg.head_dim, cfg.rope_head_dim, cfg.window_size);
  DSV4_CHECK(cfg.nope_head_dim() % static_cast<std::int64_t>(ops::kKvQuantBlock) == 0, ConfigError,
             "attention {}: head_dim - rope_head_dim = {} must be a multiple of {} (FP8 KV "
             "simulation blocks)",
             prefix, cfg.nope_head_dim(), ops::kKvQuantBlock);
  AttentionWeights<Lin> w;
  w.layer = layer;
  w.ratio = cfg.compress_ratio(layer);
  DSV4_CHECK(w.ratio >= 0, ConfigError, "attention {}: compress ratio {} is negative", prefix,
             w.ratio);
  w.dim = cfg.dim;
  w.n_heads = cfg.n_heads;
  w.head_dim = cfg.head_dim;
  w.rope_dim = cfg.rope_head_dim;
  w.q_lora_rank = cfg.q_lora_rank;
  w.o_groups = cfg.o_groups;
  w.o_lora_rank = cfg.o_lora_rank;
  w.window = cfg.window_size;
  w.norm_eps = static_cast<float>(cfg.norm_eps);

  const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const auto eps = w.norm_eps;
  w.attn_sink =
      io::load_float(f, tensor_names::cat(prefix, tensor_names::attn_sink), {u(cfg.n_heads)});
  w.wq_a = io::load_linear<Lin>(f, tensor_names::cat(prefix, tensor_names::wq_a),
                                u(cfg.q_lora_rank), u(cfg.dim));
  w.q_norm.weight =
      io::load_float(f, tensor_names::cat(prefix, tensor_names::q_norm), {u(cfg.q_lora_rank)});
  w.q_norm.eps = eps;
  w.wq_b = io::load_linear<Lin>(f, tensor_names::cat(prefix, tensor_names::wq_b),
                                u(cfg.q_out_features()), u(cfg.q_lora_rank));
  w.wkv = io::load_linear<Lin>(f, tensor_names::cat(prefix, tensor_names::wkv), u(cfg.head_dim),
                               u(cfg.dim));
  w.kv_norm.weight =
      io::load_float(f, tensor_names::cat(prefix, tensor_names::kv_norm), {u(cfg.head_dim)});
  w.kv_norm.eps = eps;
  {
    const std::size_t rows = u(cfg.o_groups * cfg.o_lora_rank);
    const std::size_t cols = u(cfg.wo_a_in_features());
    const std::string name = tensor_names::cat(prefix, tensor_names::wo_a);
    const DType stored = io::expect_tensor(f, name, {rows, cols}).dtype;
    // The groups are rows g·R_o… of one weight in its stored format (views of its bytes); the
    // release's FP8 wo_a becomes the bf16 values the reference runs (exact, checked).
    AnyLinear full;
    if (stored == DType::F8_E4M3) {
      full = Linear<BF16, DequantDot>(load_wo_a(f, name, rows, cols), rows, cols);
    } else {
      full = io::load_float_product(f, name, rows, cols);
    }
    for (std::int64_t g = 0; g < cfg.o_groups; ++g)
      w.wo_a.push_back(full.rows(u(g * cfg.o_lora_rank), u(cfg.o_lora_rank)));
  }
  w.wo_b = io::load_linear<Lin>(f, tensor_names::cat(prefix, tensor_names::wo_b), u(cfg.dim),
                                u(cfg.wo_b_in_features()));
  if (w.ratio > 0) {
    w.compressor =
        load_compressor_weights(f, tensor_names::cat(prefix, tensor_names::compressor, "."),
                                cfg.dim, w.ratio, cfg.head_dim, cfg.rope_head_dim, cfg.norm_eps,
                                /*rotate=*/false);
  }
  if (w.ratio == 4)
    w.indexer =
        load_indexer_weights<Lin>(f, tensor_names::cat(prefix, tensor_names::indexer, "."), cfg);
  w.rope = Rope::for_layer(cfg, w.ratio);
  return w;
}

// ---- hyper-connections -------------------------------------------------------------------------

/// Loads `<prefix>_fn`, `<prefix>_base`, `<prefix>_scale` (prefix e.g. "layers.0.hc_attn").
template <std::size_t HC = 4, io::TensorSource Src>
HyperConnection<HC> load_hyper_connection(const Src& src, const std::string& prefix,
                                          const ModelConfig& cfg) {
  DSV4_CHECK(static_cast<std::size_t>(cfg.hc_mult) == HC, ConfigError,
             "{}: hc_mult = {} but the model is built for {} streams", src.label(), cfg.hc_mult,
             HC);
  const auto d = static_cast<std::uint64_t>(cfg.dim);
  constexpr std::uint64_t m = HyperConnection<HC>::mix_width;
  return {io::load_float_product(src, tensor_names::cat(prefix, tensor_names::hc_fn), m, HC * d),
          io::load_float(src, tensor_names::cat(prefix, tensor_names::hc_base), {m}),
          io::load_float(src, tensor_names::cat(prefix, tensor_names::hc_scale), {3}),
          static_cast<std::size_t>(d),
          static_cast<float>(cfg.norm_eps),
          static_cast<float>(cfg.hc_eps),
          cfg.hc_sinkhorn_iters};
}

/// Loads `<prefix>_fn`, `<prefix>_base`, `<prefix>_scale` (prefix "hc_head" or "mtp.0.hc_head").
template <std::size_t HC = 4, io::TensorSource Src>
HyperConnectionHead<HC> load_hyper_connection_head(const Src& src, const std::string& prefix,
                                                   const ModelConfig& cfg) {
  DSV4_CHECK(static_cast<std::size_t>(cfg.hc_mult) == HC, ConfigError,
             "{}: hc_mult = {} but the model is built for {} streams", src.label(), cfg.hc_mult,
             HC);
  const auto d = static_cast<std::uint64_t>(cfg.dim);
  return {io::load_float_product(src, tensor_names::cat(prefix, tensor_names::hc_fn), HC, HC * d),
          io::load_float(src, tensor_names::cat(prefix, tensor_names::hc_base), {HC}),
          io::load_float(src, tensor_names::cat(prefix, tensor_names::hc_scale), {1}),
          static_cast<std::size_t>(d),
          static_cast<float>(cfg.norm_eps),
          static_cast<float>(cfg.hc_eps)};
}

// ---- MoE ---------------------------------------------------------------------------------------

/// How a router is loaded from `<prefix>` = "layers.L.ffn.gate" (weight [E, dim], plus bias [E] or
/// tid2eid [vocab, k]). Specialise for new router types.
template <class R>
struct RouterLoader;

template <ScoreFunction S>
struct RouterLoader<TopKRouter<S>> {
  template <io::TensorSource Src>
  static TopKRouter<S> load(const Src& src, const std::string& prefix, const ModelConfig& cfg) {
    const auto e = static_cast<std::uint64_t>(cfg.n_routed_experts);
    return {io::load_float_product(src, tensor_names::join(prefix, tensor_names::weight), e,
                                   static_cast<std::size_t>(cfg.dim)),
            io::load_float(src, tensor_names::join(prefix, tensor_names::bias), {e}),
            static_cast<std::size_t>(cfg.n_activated_experts), static_cast<float>(cfg.route_scale)};
  }
};

template <ScoreFunction S>
struct RouterLoader<HashRouter<S>> {
  template <io::TensorSource Src>
  static HashRouter<S> load(const Src& src, const std::string& prefix, const ModelConfig& cfg) {
    const auto e = static_cast<std::uint64_t>(cfg.n_routed_experts);
    const auto k = static_cast<std::uint64_t>(cfg.n_activated_experts);
    const auto v = static_cast<std::uint64_t>(cfg.vocab_size);
    try {
      return {io::load_float_product(src, tensor_names::join(prefix, tensor_names::weight), e,
                                     static_cast<std::size_t>(cfg.dim)),
              io::load_index(src, tensor_names::join(prefix, tensor_names::tid2eid), {v, k}), v, k,
              static_cast<float>(cfg.route_scale)};
    } catch (const ConfigError& err) {
      throw ConfigError(fmt::format("{}: '{}': {}", src.label(), prefix, err.what()));
    }
  }
};

/// Loads the MoE at `<prefix>` = "layers.L.ffn" (or "mtp.0.ffn"): `gate.*`, `experts.{e}.w{1,2,3}`,
/// `shared_experts.w{1,2,3}` (when cfg.n_shared_experts is 1). The router's score function must be
/// cfg.score_func. `layer` (MTP block j: n_layers + j) selects the block's SwiGLU limits when the
/// config has per-block ones (cfg.swiglu_limits); -1: cfg.swiglu_limit.
template <Router R, LinearOp L = DenseLinear<bf16>, LinearOp LS = L, io::TensorSource Src>
Moe<R, L, LS> load_moe(const Src& src, const std::string& prefix, const ModelConfig& cfg,
                       int layer = -1) {
  DSV4_CHECK(cfg.score_func == R::score_function::name, ConfigError,
             "{}: score_func is '{}' but the router is built for '{}'", src.label(), cfg.score_func,
             R::score_function::name);
  DSV4_CHECK(cfg.n_shared_experts == 0 || cfg.n_shared_experts == 1, ConfigError,
             "{}: n_shared_experts = {}; the MoE supports 0 or 1", src.label(),
             cfg.n_shared_experts);
  const auto d = static_cast<std::size_t>(cfg.dim);
  const auto inter = static_cast<std::size_t>(cfg.moe_inter_dim);
  const auto n_blocks = static_cast<std::size_t>(cfg.n_blocks());
  DSV4_CHECK(cfg.swiglu_limits.empty() || cfg.swiglu_limits.size() == n_blocks, ConfigError,
             "{}: {} per-block swiglu limits for {} blocks", src.label(), cfg.swiglu_limits.size(),
             n_blocks);
  DSV4_CHECK(cfg.shared_swiglu_limits.empty() || cfg.shared_swiglu_limits.size() == n_blocks,
             ConfigError, "{}: {} per-block shared-expert swiglu limits for {} blocks", src.label(),
             cfg.shared_swiglu_limits.size(), n_blocks);
  DSV4_CHECK(layer >= -1 && layer < cfg.n_blocks(), ConfigError, "{}: block {} of {}", src.label(),
             layer, n_blocks);
  const auto limit =
      static_cast<float>(layer < 0 ? cfg.swiglu_limit : cfg.routed_swiglu_limit(layer));
  const auto shared_limit =
      static_cast<float>(layer < 0 ? cfg.swiglu_limit : cfg.shared_swiglu_limit(layer));
  auto expert = [&]<class LL>(const std::string& p, float lim) {
    return Expert<LL>(io::load_linear<LL>(src, tensor_names::join(p, tensor_names::w1), inter, d),
                      io::load_linear<LL>(src, tensor_names::join(p, tensor_names::w2), d, inter),
                      io::load_linear<LL>(src, tensor_names::join(p, tensor_names::w3), inter, d),
                      lim);
  };
  std::vector<Expert<L>> experts;
  experts.reserve(static_cast<std::size_t>(cfg.n_routed_experts));
  for (std::int64_t e = 0; e < cfg.n_routed_experts; ++e) {
    experts.push_back(expert.template operator()<L>(
        tensor_names::join(prefix, tensor_names::experts, std::to_string(e)), limit));
  }
  std::optional<Expert<LS>> shared;
  if (cfg.n_shared_experts == 1)
    shared = expert.template operator()<LS>(
        tensor_names::join(prefix, tensor_names::shared_experts), shared_limit);
  return {RouterLoader<R>::load(src, tensor_names::join(prefix, tensor_names::gate), cfg),
          std::move(experts), std::move(shared)};
}

}  // namespace dsv4
