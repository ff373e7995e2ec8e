// The DeepSeek-V4 model assembled from its layer policies: embedding, the trunk blocks (attention
// variant per block from compress_ratios, MoE with hash routing in the first n_hash_layers blocks
// and score routing after), the residual policy (mHC), the final norm + hc_head + LM head, and the
// MTP blocks (e_proj/h_proj/enorm/hnorm, their own block, norm and hc_head, the shared embedding
// and head). Per-sequence caches live in `Model::State`, so a prefill can be continued by decode
// steps (or further chunks).
//
// Spec: spec/architecture.md §2 (skeleton), §7 (MoE), §8 (MTP), §11 (generation), §12.
// Reference: `Block`, `MTPBlock`, `ParallelHead`, `Transformer` in inference/model.py.
// Numerics N (a NumericsPolicy): every activation the reference holds in bf16 is rounded by N;
// the logits are fp32 (head GEMM of the bf16-rounded normalised state, spec §12 item 29).
// Unlike the reference, forward() returns the logits of every position (identical row by row to
// what the reference computes for its last position).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/io/checkpoint.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"
#include "dsv4/layers/attention.hpp"
#include "dsv4/layers/kv_cache.hpp"
#include "dsv4/layers/linear.hpp"
#include "dsv4/layers/mhc.hpp"
#include "dsv4/layers/moe.hpp"
#include "dsv4/layers/norm.hpp"
#include "dsv4/layers/routers.hpp"
#include "dsv4/model/checkpoint_layout.hpp"

namespace dsv4 {

// ---- residual policies from a checkpoint -------------------------------------------------------

/// How a residual policy is built for block site `prefix` ("layers.L.hc_attn"); specialise for new
/// policies.
template <class R>
struct ResidualLoader;

template <std::size_t HC>
struct ResidualLoader<HyperConnection<HC>> {
  template <io::TensorSource Src>
  static HyperConnection<HC> load(const Src& src, const std::string& prefix,
                                  const ModelConfig& cfg) {
    return load_hyper_connection<HC>(src, prefix, cfg);
  }
  template <io::TensorSource Src>
  static HyperConnectionHead<HC> load_head(const Src& src, const std::string& prefix,
                                           const ModelConfig& cfg) {
    return load_hyper_connection_head<HC>(src, prefix, cfg);
  }
};

template <>
struct ResidualLoader<PlainResidual> {
  template <io::TensorSource Src>
  static PlainResidual load(const Src& src, const std::string&, const ModelConfig& cfg) {
    DSV4_CHECK(cfg.hc_mult == 1, ConfigError,
               "{}: hc_mult = {}; a plain residual model has one stream", src.label(), cfg.hc_mult);
    return PlainResidual(static_cast<std::size_t>(cfg.dim));
  }
  template <io::TensorSource Src>
  static PlainHead load_head(const Src& src, const std::string& prefix, const ModelConfig& cfg) {
    load(src, prefix, cfg);
    return PlainHead(static_cast<std::size_t>(cfg.dim));
  }
};

// ---- one block ---------------------------------------------------------------------------------

/// Values recorded during a forward call (for tests and inspection).
struct ForwardTrace {
  std::vector<std::vector<float>> block_in;  ///< state entering each block, [T, S, dim]
  std::vector<Routing> routing;              ///< MoE decision of each block
};

/// One transformer block (spec §2.3): attention and MoE, each wrapped by the residual policy R.
template <ResidualPolicy R, LinearOp Lin, LinearOp ExpertLin, ScoreFunction S>
class Block {
 public:
  using hash_moe = Moe<HashRouter<S>, ExpertLin>;
  using score_moe = Moe<TopKRouter<S>, ExpertLin>;

  /// Loads block `layer` (MTP block j: layer n_layers + j) from `f` under `prefix` ("layers.3" or
  /// "mtp.0").
  template <io::TensorSource Src>
  static Block load(const Src& f, const std::string& prefix, const ModelConfig& cfg, int layer) {
    Block b;
    b.layer_ = layer;
    const auto d = static_cast<std::uint64_t>(cfg.dim);
    const auto eps = static_cast<float>(cfg.norm_eps);
    b.hc_attn_ = ResidualLoader<R>::load(f, prefix + ".hc_attn", cfg);
    b.hc_ffn_ = ResidualLoader<R>::load(f, prefix + ".hc_ffn", cfg);
    b.attn_norm_ = RmsNorm{io::load_float(f, prefix + ".attn_norm.weight", {d}), eps};
    b.ffn_norm_ = RmsNorm{io::load_float(f, prefix + ".ffn_norm.weight", {d}), eps};
    b.attn_.emplace(load_attention_weights<Lin>(f, prefix + ".attn.", cfg, layer));
    if (cfg.is_hash_layer(layer)) {
      b.ffn_ = load_moe<HashRouter<S>, ExpertLin>(f, prefix + ".ffn", cfg);
    } else {
      b.ffn_ = load_moe<TopKRouter<S>, ExpertLin>(f, prefix + ".ffn", cfg);
    }
    return b;
  }

  int layer() const noexcept { return layer_; }
  const AttentionLayer<Lin>& attention() const { return *attn_; }
  const std::variant<hash_moe, score_moe>& ffn() const noexcept { return ffn_; }
  AttentionState make_state(const ModelConfig& cfg) const { return attn_->make_state(cfg); }

  /// x: [T, streams, dim] updated in place; tokens: [T] ids (hash routing).
  template <NumericsPolicy N>
  void forward(std::span<float> x, std::span<const std::int32_t> tokens, std::int64_t start_pos,
               AttentionState& st, Routing* routing = nullptr) const {
    residual_step<N>(hc_attn_, attn_norm_, x, [&](std::span<const float> u, std::span<float> a) {
      attn_->template forward<N>(u, start_pos, st, a);
    });
    residual_step<N>(hc_ffn_, ffn_norm_, x, [&](std::span<const float> u, std::span<float> f) {
      std::visit([&](const auto& moe) { moe.template forward<N>(u, tokens, f, routing); }, ffn_);
    });
  }

 private:
  int layer_ = 0;
  R hc_attn_;
  R hc_ffn_;
  RmsNorm attn_norm_;
  RmsNorm ffn_norm_;
  std::optional<AttentionLayer<Lin>> attn_;
  std::variant<hash_moe, score_moe> ffn_;
};

// ---- the model ---------------------------------------------------------------------------------

/// DeepSeek-V4 with numerics N, residual policy R (V4: HyperConnection<4>), projection type Lin
/// (the release's FP8 projections), routed/shared expert type ExpertLin and gate function S.
template <NumericsPolicy N = ReferenceNumerics, ResidualPolicy R = HyperConnection<4>,
          LinearOp Lin = DenseLinear<bf16>, LinearOp ExpertLin = Lin,
          ScoreFunction S = SqrtSoftplus>
class Model {
 public:
  using numerics = N;
  using block_type = Block<R, Lin, ExpertLin, S>;
  using head_type = residual_head_t<R>;
  static constexpr std::size_t streams = R::streams;

  /// Per-sequence state: the caches of every trunk block and every MTP block.
  struct State {
    std::vector<AttentionState> layers;
    std::vector<AttentionState> mtp;
    std::int64_t next_pos = 0;               ///< trunk: the next call's start_pos
    std::vector<std::int64_t> mtp_next_pos;  ///< per MTP block
  };

  /// What a call returns.
  struct Output {
    std::size_t tokens = 0;
    std::vector<float> logits;  ///< [T, vocab] (or [1, vocab] when only the last is asked for)
    std::vector<float> hidden;  ///< [T, streams, dim]: the last block's output (MTP input)
  };

  /// Loads a checkpoint directory (config.json + *.safetensors in reference names).
  static Model load(const std::filesystem::path& dir) { return load(io::Checkpoint::open(dir)); }

  /// Loads every tensor of `ckpt` for its config; each is checked (present, dtype, shape) and a
  /// tensor the config does not account for is an error too.
  static Model load(const io::Checkpoint& ckpt) {
    const ModelConfig& cfg = ckpt.config();
    DSV4_CHECK(static_cast<std::size_t>(cfg.hc_mult) == streams, ConfigError,
               "checkpoint {}: hc_mult = {} but the model's residual policy has {} streams",
               ckpt.label(), cfg.hc_mult, streams);
    check_names(ckpt);
    Model m;
    m.cfg_ = cfg;
    const auto d = static_cast<std::uint64_t>(cfg.dim);
    const auto v = static_cast<std::uint64_t>(cfg.vocab_size);
    const auto eps = static_cast<float>(cfg.norm_eps);
    m.embed_ = io::load_bf16(ckpt, "embed.weight", {v, d});
    m.head_ = io::load_linear<DenseLinear<bf16>>(ckpt, "head.weight", v, d);
    m.norm_ = RmsNorm{io::load_float(ckpt, "norm.weight", {d}), eps};
    m.hc_head_ = ResidualLoader<R>::load_head(ckpt, "hc_head", cfg);
    for (int l = 0; l < cfg.n_layers; ++l) {
      const std::string p = "layers." + std::to_string(l);
      m.blocks_.push_back(block_type::load(ckpt, p, cfg, l));
    }
    for (int j = 0; j < cfg.n_mtp_layers; ++j) {
      const std::string p = "mtp." + std::to_string(j);
      const io::Checkpoint& f = ckpt;  // MTP tensors may sit in their own shard
      Mtp mtp;
      mtp.block = block_type::load(f, p, cfg, cfg.n_layers + j);
      mtp.e_proj = io::load_linear<Lin>(f, p + ".e_proj.weight", d, d);
      mtp.h_proj = io::load_linear<Lin>(f, p + ".h_proj.weight", d, d);
      mtp.enorm = RmsNorm{io::load_float(f, p + ".enorm.weight", {d}), eps};
      mtp.hnorm = RmsNorm{io::load_float(f, p + ".hnorm.weight", {d}), eps};
      mtp.norm = RmsNorm{io::load_float(f, p + ".norm.weight", {d}), eps};
      mtp.hc_head = ResidualLoader<R>::load_head(f, p + ".hc_head", cfg);
      m.mtp_.push_back(std::move(mtp));
    }
    return m;
  }

  const ModelConfig& config() const noexcept { return cfg_; }
  std::size_t dim() const noexcept { return static_cast<std::size_t>(cfg_.dim); }
  std::size_t vocab_size() const noexcept { return static_cast<std::size_t>(cfg_.vocab_size); }
  const block_type& block(std::size_t i) const { return blocks_.at(i); }

  /// A fresh per-sequence state.
  State new_state() const {
    State st;
    for (const auto& b : blocks_) st.layers.push_back(b.make_state(cfg_));
    for (const auto& m : mtp_) st.mtp.push_back(m.block.make_state(cfg_));
    st.mtp_next_pos.assign(mtp_.size(), 0);
    return st;
  }

  /// Runs the trunk on `tokens` at positions start_pos… (0 starts a new sequence; otherwise
  /// start_pos must be st.next_pos). Returns the logits of every position (all_logits) or of the
  /// last one, and the last block's output.
  Output forward(std::span<const std::int32_t> tokens, std::int64_t start_pos, State& st,
                 bool all_logits = true, ForwardTrace* trace = nullptr) const {
    check_tokens(tokens);
    check_state(st);
    DSV4_CHECK(start_pos == 0 || start_pos == st.next_pos, InputError,
               "model: start_pos {} does not continue the sequence (expected 0 or {})", start_pos,
               st.next_pos);
    const std::size_t t = tokens.size();
    const std::size_t d = dim();
    std::vector<float> e(t * d);
    for (std::size_t r = 0; r < t; ++r) {
      const auto row = static_cast<std::size_t>(tokens[r]) * d;
      for (std::size_t c = 0; c < d; ++c) e[r * d + c] = embed_[row + c].to_float();
    }
    std::vector<float> x = expand_streams(e, d, streams);  // [T, S, d]
    if (trace != nullptr) {
      trace->block_in.clear();
      trace->routing.assign(blocks_.size(), {});
    }
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (trace != nullptr) trace->block_in.push_back(x);
      blocks_[i].template forward<N>(x, tokens, start_pos, st.layers[i],
                                     trace != nullptr ? &trace->routing[i] : nullptr);
    }
    st.next_pos = start_pos + static_cast<std::int64_t>(t);
    Output out;
    out.tokens = t;
    out.logits = logits(hc_head_, norm_, x, all_logits);
    out.hidden = std::move(x);
    return out;
  }

  /// Prefill of a new sequence.
  Output prefill(std::span<const std::int32_t> tokens, State& st, bool all_logits = true) const {
    return forward(tokens, 0, st, all_logits);
  }
  /// One decode step at st.next_pos.
  Output decode(std::int32_t token, State& st) const {
    return forward(std::span<const std::int32_t>(&token, 1), st.next_pos, st, true);
  }

  /// MTP block j (spec §8.2): hidden [T, streams, dim] (trunk outputs at positions start_pos…),
  /// tokens [T] (the next tokens: position i pairs with token i+1). Returns its logits (row i
  /// predicts token i+2) and the block's output.
  Output mtp_forward(std::span<const float> hidden, std::span<const std::int32_t> tokens,
                     std::int64_t start_pos, State& st, std::size_t j = 0,
                     bool all_logits = true) const {
    DSV4_CHECK(j < mtp_.size(), InputError, "model: MTP block {} requested, the model has {}", j,
               mtp_.size());
    check_tokens(tokens);
    check_state(st);
    const std::size_t t = tokens.size();
    const std::size_t d = dim();
    DSV4_CHECK(hidden.size() == t * streams * d, ShapeError,
               "model: MTP input of {} values for {} tokens (expected [{}, {}, {}])", hidden.size(),
               t, t, streams, d);
    DSV4_CHECK(start_pos == 0 || start_pos == st.mtp_next_pos[j], InputError,
               "model: MTP start_pos {} does not continue its sequence (expected 0 or {})",
               start_pos, st.mtp_next_pos[j]);
    const Mtp& m = mtp_[j];
    std::vector<float> e(t * d);
    for (std::size_t r = 0; r < t; ++r) {
      const auto row = static_cast<std::size_t>(tokens[r]) * d;
      for (std::size_t c = 0; c < d; ++c) e[r * d + c] = embed_[row + c].to_float();
    }
    m.enorm.template forward<N>(e, e);
    std::vector<float> ep(t * d);
    m.e_proj.template forward<N>(ConstView2<float>(e.data(), t, d), View2<float>(ep.data(), t, d));
    std::vector<float> h(hidden.begin(), hidden.end());  // [T·S, d]
    m.hnorm.template forward<N>(h, h);
    std::vector<float> x(h.size());
    m.h_proj.template forward<N>(ConstView2<float>(h.data(), t * streams, d),
                                 View2<float>(x.data(), t * streams, d));
    for (std::size_t r = 0; r < t; ++r) {
      for (std::size_t s = 0; s < streams; ++s) {
        float* xr = x.data() + (r * streams + s) * d;
        for (std::size_t c = 0; c < d; ++c) xr[c] = N::round(ep[r * d + c] + xr[c]);
      }
    }
    m.block.template forward<N>(x, tokens, start_pos, st.mtp[j]);
    st.mtp_next_pos[j] = start_pos + static_cast<std::int64_t>(t);
    Output out;
    out.tokens = t;
    out.logits = logits(m.hc_head, m.norm, x, all_logits);
    out.hidden = std::move(x);
    return out;
  }

 private:
  struct Mtp {
    block_type block;
    Lin e_proj;
    Lin h_proj;
    RmsNorm enorm;
    RmsNorm hnorm;
    RmsNorm norm;
    head_type hc_head;
  };

  /// Head (spec §2.7): collapse the streams, norm, fp32 GEMM with the vocabulary.
  std::vector<float> logits(const head_type& hc_head, const RmsNorm& norm, std::span<const float> x,
                            bool all) const {
    const std::size_t d = dim();
    const std::size_t t = x.size() / (streams * d);
    const std::size_t first = all ? 0 : t - 1;
    const std::size_t rows = t - first;
    std::vector<float> y(rows * d);
    hc_head.template collapse<N>(x.subspan(first * streams * d), y);
    norm.template forward<N>(y, y);
    std::vector<float> out(rows * vocab_size());
    head_.template forward<Numerics<Fp32Act, N::simulate_quant>>(
        ConstView2<float>(y.data(), rows, d), View2<float>(out.data(), rows, vocab_size()));
    return out;
  }

  void check_tokens(std::span<const std::int32_t> tokens) const {
    DSV4_CHECK(!tokens.empty(), InputError, "model: a call needs at least one token");
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      DSV4_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, InputError,
                 "model: token id {} at position {} is outside the vocabulary [0, {})", tokens[i],
                 i, cfg_.vocab_size);
    }
  }

  void check_state(const State& st) const {
    DSV4_CHECK(st.layers.size() == blocks_.size() && st.mtp.size() == mtp_.size() &&
                   st.mtp_next_pos.size() == mtp_.size(),
               InputError,
               "model: the state holds {} block and {} MTP caches; this model has {} and {} (make "
               "it with new_state())",
               st.layers.size(), st.mtp.size(), blocks_.size(), mtp_.size());
  }

  /// Every tensor of the checkpoint must belong to the config's model: the release's names
  /// (spec formats.md §10.1), where FP8/FP4 `.scale` companions and the MTP aliases of the shared
  /// embedding/head are optional.
  static void check_names(const io::Checkpoint& ckpt) {
    const ModelConfig& cfg = ckpt.config();
    std::set<std::string> known;
    for (const auto& rt : release_tensors(cfg)) known.insert(rt.name);
    for (int l = 0; l < cfg.n_layers + cfg.n_mtp_layers; ++l) {
      const std::string p = l < cfg.n_layers ? "layers." + std::to_string(l) + "."
                                             : "mtp." + std::to_string(l - cfg.n_layers) + ".";
      known.insert(p + "attn.wo_a.scale");  // kept by the release, folded by convert.py
      if (cfg.is_hash_layer(l)) known.insert(p + "ffn.gate.tid2eid");
      if (l >= cfg.n_layers) {
        known.insert(p + "embed.weight");
        known.insert(p + "head.weight");
      }
    }
    for (const std::string& n : ckpt.names()) {
      DSV4_CHECK(known.count(n) != 0, FormatError,
                 "checkpoint {}: tensor '{}' is not part of the model config.json describes "
                 "(n_layers {}, n_mtp_layers {}, n_routed_experts {}, compress_ratios); the "
                 "config does not match the weights",
                 ckpt.label(), n, cfg.n_layers, cfg.n_mtp_layers, cfg.n_routed_experts);
    }
  }

  ModelConfig cfg_;
  std::vector<bf16> embed_;  // [vocab, dim]
  DenseLinear<bf16> head_;   // [vocab, dim], fp32 GEMM
  RmsNorm norm_;
  head_type hc_head_;
  std::vector<block_type> blocks_;
  std::vector<Mtp> mtp_;
};

}  // namespace dsv4
