// The DeepSeek-V4 model assembled from its layer policies: embedding, the trunk blocks (attention
// variant per block from compress_ratios, MoE with hash routing in the first n_hash_layers blocks
// and score routing after), the residual policy (mHC), the final norm + hc_head + LM head, and the
// MTP blocks (e_proj/h_proj/enorm/hnorm, their own block, norm and hc_head, the shared embedding
// and head). Per-sequence caches live in `Model::State`, so a prefill can be continued by decode
// steps (or further chunks).
//
// Spec: spec/architecture.md §2 (skeleton), §7 (MoE), §8 (MTP), §11 (generation), §12.
// Reference: `Block`, `MTPBlock`, `ParallelHead`, `Transformer` in inference/model.py.
// The model is Model<Backend, Policies>: the policy bundle (V4Policies by default) names the
// numerics, the residual policy, the linear types, the gate's score function, and the block's
// attention and feed-forward network (any types satisfying BlockAttention / BlockFfn, so a model
// with another MoE or FFN is a bundle deriving from V4Policies).
// Backend B (backend/concept.hpp): runs the hot ops (linear layers, norms, RoPE, SwiGLU, the
// attention core, compressor pooling, indexer scores, top-k); the model holds one.
// Numerics N (a NumericsPolicy): every activation the reference holds in bf16 is rounded by N;
// the logits are fp32 (head GEMM of the bf16-rounded normalised state, spec §12 item 29).
// Unlike the reference, forward() returns the logits of every position (identical row by row to
// what the reference computes for its last position).
// Several sequences can run in one call (forward_batch): each has its own state and positions;
// the attention runs per sequence, everything else on all rows at once, and every row's result
// is bit for bit what the sequence computes alone.
#pragma once

#include <concepts>
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

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/io/checkpoint.hpp"
#include "dsv4/io/checkpoint_layout.hpp"
#include "dsv4/io/safetensors.hpp"
#include "dsv4/io/tensor_load.hpp"
#include "dsv4/layers/attention.hpp"
#include "dsv4/layers/kv_cache.hpp"
#include "dsv4/layers/mhc.hpp"
#include "dsv4/layers/moe.hpp"
#include "dsv4/layers/routers.hpp"
#include "dsv4/model/load_layers.hpp"
#include "dsv4/ops/norm.hpp"

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
  /// The indexer's selections of each block (CSA blocks; empty for the others).
  std::vector<std::optional<IndexerSelection>> index;
};

/// The rows of a block call that belong to one sequence: rows first … first+count-1 are its
/// positions start_pos … start_pos+count-1, attended with `state`.
struct BlockSegment {
  std::size_t first = 0;
  std::size_t count = 0;
  std::int64_t start_pos = 0;
  AttentionState* state = nullptr;
  AttentionTrace* trace = nullptr;  ///< optional
};

// ---- what a block is made of -------------------------------------------------------------------

/// How a block's attention is built from `prefix` = "layers.L.attn" (MTP block j: "mtp.j.attn")
/// for block `layer` (MTP block j: n_layers + j). The primary template calls
/// `A::load(src, prefix, cfg, layer)`; specialise it for a type without one.
template <class A>
struct AttentionLoader {
  template <io::TensorSource Src>
  requires requires(const Src& src, const std::string& prefix, const ModelConfig& cfg, int layer) {
    { A::load(src, prefix, cfg, layer) } -> std::same_as<A>;
  }
  static A load(const Src& src, const std::string& prefix, const ModelConfig& cfg, int layer) {
    return A::load(src, prefix, cfg, layer);
  }
};

template <LinearOp Lin>
struct AttentionLoader<AttentionLayer<Lin>> {
  template <io::TensorSource Src>
  static AttentionLayer<Lin> load(const Src& src, const std::string& prefix, const ModelConfig& cfg,
                                  int layer) {
    return AttentionLayer<Lin>(load_attention_weights<Lin>(src, prefix + ".", cfg, layer));
  }
};

/// How a block's feed-forward network is built from `prefix` = "layers.L.ffn" ("mtp.j.ffn") for
/// block `layer`. The primary template calls `F::load(src, prefix, cfg, layer)`; specialise it for
/// a type without one (a dsv4::Moe of another router, say).
template <class F>
struct FfnLoader {
  template <io::TensorSource Src>
  requires requires(const Src& src, const std::string& prefix, const ModelConfig& cfg, int layer) {
    { F::load(src, prefix, cfg, layer) } -> std::same_as<F>;
  }
  static F load(const Src& src, const std::string& prefix, const ModelConfig& cfg, int layer) {
    return F::load(src, prefix, cfg, layer);
  }
};

/// What a block needs of its attention A, run on backend B with numerics N and loaded from tensor
/// source Src: `forward<N>(b, x [T, dim], start_pos, state, out [T, dim], trace)` on one sequence's
/// rows, `make_state(cfg)` for its per-sequence caches, and a loader (AttentionLoader<A>).
template <class A, class B = ReferenceBackend, class N = ReferenceNumerics,
          class Src = io::Checkpoint>
concept BlockAttention = std::movable<A> && Backend<B> && NumericsPolicy<N> &&
    io::TensorSource<Src> &&
    requires(const A& a, const B& b, std::span<const float> x, std::int64_t pos, AttentionState& st,
             std::span<float> out, AttentionTrace* trace, const ModelConfig& cfg, const Src& src,
             const std::string& prefix, int layer) {
  { a.make_state(cfg) } -> std::same_as<AttentionState>;
  a.template forward<N>(b, x, pos, st, out, trace);
  { AttentionLoader<A>::load(src, prefix, cfg, layer) } -> std::same_as<A>;
};

/// What a block needs of its feed-forward network F, run on backend B with numerics N and loaded
/// from tensor source Src: `forward<N>(b, x [rows, dim], tokens [rows], out [rows, dim], routing)`
/// on the rows of every sequence of the call at once (tokens: the rows' ids, for hash routing;
/// out does not alias x; routing, when not null, receives the rows' expert choice, [rows, k]),
/// and a loader (FfnLoader<F>). dsv4::Moe provides the forward.
template <class F, class B = ReferenceBackend, class N = ReferenceNumerics,
          class Src = io::Checkpoint>
concept BlockFfn = std::movable<F> && Backend<B> && NumericsPolicy<N> && io::TensorSource<Src> &&
    requires(const F& f, const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
             std::span<float> out, Routing* routing, const ModelConfig& cfg, const Src& src,
             const std::string& prefix, int layer) {
  f.template forward<N>(b, x, tokens, out, routing);
  { FfnLoader<F>::load(src, prefix, cfg, layer) } -> std::same_as<F>;
};

/// The V4 feed-forward network (spec §7): the MoE with hash routing in the first n_hash_layers
/// blocks and score routing after, routed and shared experts of linear type ExpertLin, gate
/// function S.
template <LinearOp ExpertLin = DenseLinear<bf16>, ScoreFunction S = SqrtSoftplus>
class V4Moe {
 public:
  using hash_moe = Moe<HashRouter<S>, ExpertLin>;
  using score_moe = Moe<TopKRouter<S>, ExpertLin>;

  V4Moe() = default;
  explicit V4Moe(hash_moe moe) : moe_(std::move(moe)) {}
  explicit V4Moe(score_moe moe) : moe_(std::move(moe)) {}

  /// The MoE of block `layer` at `prefix` ("layers.3.ffn"): hash routed when
  /// cfg.is_hash_layer(layer).
  template <io::TensorSource Src>
  static V4Moe load(const Src& src, const std::string& prefix, const ModelConfig& cfg, int layer) {
    if (cfg.is_hash_layer(layer)) {
      return V4Moe(load_moe<HashRouter<S>, ExpertLin>(src, prefix, cfg, layer));
    }
    return V4Moe(load_moe<TopKRouter<S>, ExpertLin>(src, prefix, cfg, layer));
  }

  bool hash_routed() const noexcept { return moe_.index() == 0; }
  const std::variant<hash_moe, score_moe>& variant() const noexcept { return moe_; }

  /// Moe::forward of the block's MoE.
  template <NumericsPolicy N, Backend B>
  void forward(const B& b, std::span<const float> x, std::span<const std::int32_t> tokens,
               std::span<float> out, Routing* routing = nullptr) const {
    std::visit([&](const auto& moe) { moe.template forward<N>(b, x, tokens, out, routing); }, moe_);
  }

 private:
  std::variant<hash_moe, score_moe> moe_;
};

// ---- one block ---------------------------------------------------------------------------------

/// One transformer block (spec §2.3): attention A and feed-forward network F (V4: AttentionLayer
/// and V4Moe), each wrapped by the residual policy R.
template <class A, class F, ResidualPolicy R>
requires BlockAttention<A> && BlockFfn<F>
class Block {
 public:
  using attention_type = A;
  using ffn_type = F;
  using residual_type = R;

  /// Loads block `layer` (MTP block j: layer n_layers + j) from `f` under `prefix` ("layers.3" or
  /// "mtp.0").
  template <io::TensorSource Src>
  static Block load(const Src& f, const std::string& prefix, const ModelConfig& cfg, int layer) {
    Block b;
    b.layer_ = layer;
    const auto d = static_cast<std::uint64_t>(cfg.dim);
    const auto eps = static_cast<float>(cfg.norm_eps);
    b.hc_attn_ = ResidualLoader<R>::load(f, tensor_names::join(prefix, tensor_names::hc_attn), cfg);
    b.hc_ffn_ = ResidualLoader<R>::load(f, tensor_names::join(prefix, tensor_names::hc_ffn), cfg);
    b.attn_norm_ =
        RmsNorm{io::load_float(f, tensor_names::join(prefix, tensor_names::attn_norm), {d}), eps};
    b.ffn_norm_ =
        RmsNorm{io::load_float(f, tensor_names::join(prefix, tensor_names::ffn_norm), {d}), eps};
    b.attn_.emplace(
        AttentionLoader<A>::load(f, tensor_names::join(prefix, tensor_names::attn), cfg, layer));
    b.ffn_.emplace(
        FfnLoader<F>::load(f, tensor_names::join(prefix, tensor_names::ffn), cfg, layer));
    return b;
  }

  int layer() const noexcept { return layer_; }
  const A& attention() const { return *attn_; }
  const F& ffn() const { return *ffn_; }
  /// A fresh state of the block's attention, its buffers in `memory` where the attention type
  /// takes one (host memory when null).
  AttentionState make_state(const ModelConfig& cfg, DeviceMemory* memory = nullptr) const {
    if constexpr (requires { attn_->make_state(cfg, memory); }) {
      return attn_->make_state(cfg, memory);
    } else {
      return attn_->make_state(cfg);
    }
  }

  /// x: [rows, streams, dim] updated in place; tokens: [rows] ids (hash routing); segments: the
  /// sequences the rows belong to (together covering every row once). The attention runs per
  /// segment; the residual mixing and the FFN on all rows at once.
  template <NumericsPolicy N, Backend B>
  requires BlockAttention<A, B, N> && BlockFfn<F, B, N>
  void forward(const B& b, std::span<float> x, std::span<const std::int32_t> tokens,
               std::span<const BlockSegment> segments, Routing* routing = nullptr) const {
    const std::size_t d = hc_attn_.dim();
    residual_step<N>(b, hc_attn_, attn_norm_, x, [&](std::span<const float> u, std::span<float> a) {
      for (const BlockSegment& sg : segments) {
        attn_->template forward<N>(b, u.subspan(sg.first * d, sg.count * d), sg.start_pos,
                                   *sg.state, a.subspan(sg.first * d, sg.count * d), sg.trace);
      }
    });
    residual_step<N>(b, hc_ffn_, ffn_norm_, x, [&](std::span<const float> u, std::span<float> f) {
      ffn_->template forward<N>(b, u, tokens, f, routing);
    });
  }

  /// One sequence: x [T, streams, dim] at positions start_pos….
  template <NumericsPolicy N, Backend B>
  requires BlockAttention<A, B, N> && BlockFfn<F, B, N>
  void forward(const B& b, std::span<float> x, std::span<const std::int32_t> tokens,
               std::int64_t start_pos, AttentionState& st, Routing* routing = nullptr,
               AttentionTrace* trace = nullptr) const {
    const BlockSegment sg{0, tokens.size(), start_pos, &st, trace};
    forward<N>(b, x, tokens, std::span<const BlockSegment>(&sg, 1), routing);
  }

 private:
  int layer_ = 0;
  R hc_attn_;
  R hc_ffn_;
  RmsNorm attn_norm_;
  RmsNorm ffn_norm_;
  std::optional<A> attn_;
  std::optional<F> ffn_;
};

// ---- policy bundles ----------------------------------------------------------------------------

/// Placeholders of a policy bundle that the model resolves against the bundle's other members, so
/// that a bundle overriding `linear` (or `score`) changes what follows from it.
struct SameAsLinear {};      ///< expert_linear: the bundle's `linear`
struct DefaultAttention {};  ///< attention: AttentionLayer<linear> (variant per block's ratio)
struct DefaultFfn {};        ///< ffn: V4Moe<expert_linear, score>

/// The policies of DeepSeek-V4, the defaults of a Model. Derive and override members for another
/// model, e.g. `struct MyPolicies : V4Policies { using ffn = MyMoe; };`.
struct V4Policies {
  using numerics = ReferenceNumerics;   ///< NumericsPolicy of every activation
  using residual = HyperConnection<4>;  ///< ResidualPolicy (mHC with 4 streams)
  using linear = DenseLinear<bf16>;     ///< LinearOp of the attention and MTP projections
  using expert_linear = SameAsLinear;   ///< LinearOp of the V4 MoE's experts
  using score = SqrtSoftplus;           ///< ScoreFunction of the V4 MoE's gate
  using attention = DefaultAttention;   ///< a BlockAttention
  using ffn = DefaultFfn;               ///< a BlockFfn
};

/// Bundle `Base` with numerics N.
template <NumericsPolicy N, class Base = V4Policies>
struct WithNumerics : Base {
  using numerics = N;
};

/// Bundle `Base` with projection linear type Lin (the experts' too, unless Base names its own
/// expert_linear). `WithLinear<AnyLinear, WithNumerics<PlainFp32Numerics>>` runs a GGUF file or a
/// FP8/FP4 checkpoint in its stored formats.
template <LinearOp Lin, class Base = V4Policies>
struct WithLinear : Base {
  using linear = Lin;
};

namespace detail {

template <class T, class P>
struct resolve_policy {
  using type = T;
};
template <class P>
struct resolve_policy<SameAsLinear, P> {
  using type = typename P::linear;
};
template <class P>
struct resolve_policy<DefaultAttention, P> {
  using type = AttentionLayer<typename P::linear>;
};
template <class P>
struct resolve_policy<DefaultFfn, P> {
  using type =
      V4Moe<typename resolve_policy<typename P::expert_linear, P>::type, typename P::score>;
};

}  // namespace detail

/// The types a policy bundle P names, placeholders resolved.
template <class P>
struct ResolvedPolicies {
  using numerics = typename P::numerics;
  using residual = typename P::residual;
  using linear = typename P::linear;
  using expert_linear = typename detail::resolve_policy<typename P::expert_linear, P>::type;
  using score = typename P::score;
  using attention = typename detail::resolve_policy<typename P::attention, P>::type;
  using ffn = typename detail::resolve_policy<typename P::ffn, P>::type;
};

/// A policy bundle (V4Policies or a type derived from it).
template <class P>
concept ModelPolicies = requires {
  typename P::numerics;
  typename P::residual;
  typename P::linear;
  typename P::expert_linear;
  typename P::score;
  typename P::attention;
  typename P::ffn;
}
&&NumericsPolicy<typename P::numerics>&& ResidualPolicy<typename P::residual>&&
    LinearOp<typename P::linear>&& LinearOp<typename ResolvedPolicies<P>::expert_linear>&&
        BlockAttention<typename ResolvedPolicies<P>::attention>&&
            BlockFfn<typename ResolvedPolicies<P>::ffn>;

// ---- the model ---------------------------------------------------------------------------------

/// Per-sequence state of a Model: the caches of every trunk block and every MTP block. The same
/// type for every Model instantiation, so a type-erased model (AnyModel) shares it.
struct ModelState {
  std::vector<AttentionState> layers;
  std::vector<AttentionState> mtp;
  std::int64_t next_pos = 0;               ///< trunk: the next call's start_pos
  std::vector<std::int64_t> mtp_next_pos;  ///< per MTP block
};

/// What a Model call returns.
struct ModelOutput {
  std::size_t tokens = 0;
  std::vector<float> logits;  ///< [T, vocab] (or [1, vocab] when only the last is asked for)
  std::vector<float> hidden;  ///< [T, streams, dim]: the last block's output (MTP input)
};

/// DeepSeek-V4 on backend B with the policies of bundle P (V4Policies: the reference's bf16
/// numerics, mHC with 4 streams, bf16 projections, the V4 MoE with the sqrt-softplus gate).
/// `Model<>` is the reference backend with the V4 policies; `ReferenceModel<P>` names the
/// reference backend with bundle P; `Model<B, WithNumerics<PlainFp32Numerics>>` changes one policy,
/// `struct MyPolicies : V4Policies { using ffn = MyMoe; }` another.
template <Backend B = ReferenceBackend, ModelPolicies P = V4Policies>
class Model {
  using N = typename ResolvedPolicies<P>::numerics;
  using R = typename ResolvedPolicies<P>::residual;
  using Lin = typename ResolvedPolicies<P>::linear;
  using ExpertLin = typename ResolvedPolicies<P>::expert_linear;
  static_assert(SupportsLinear<B, Lin> && SupportsLinear<B, ExpertLin>,
                "the backend has no linear kernel for the model's weight types");

 public:
  using backend_type = B;
  using policies = P;
  using numerics = N;
  using residual_type = R;
  using linear_type = Lin;
  using expert_linear_type = ExpertLin;
  using attention_type = typename ResolvedPolicies<P>::attention;
  using ffn_type = typename ResolvedPolicies<P>::ffn;
  using block_type = Block<attention_type, ffn_type, R>;
  using head_type = residual_head_t<R>;
  static constexpr std::size_t streams = R::streams;

  /// Per-sequence state (ModelState): the caches of every trunk block and every MTP block.
  using State = ModelState;
  /// What a call returns (ModelOutput).
  using Output = ModelOutput;

  /// One sequence of a batched call (forward_batch).
  struct BatchItem {
    std::span<const std::int32_t> tokens;  ///< at least one token
    std::int64_t start_pos = 0;            ///< 0 (a new sequence) or state->next_pos
    State* state = nullptr;                ///< this sequence's own state
    bool all_logits = true;                ///< every position's logits, or the last one's
    bool hidden = true;                    ///< Output::hidden filled (else left empty)
  };

  /// Loads a checkpoint directory (config.json + *.safetensors in reference names).
  static Model load(const std::filesystem::path& dir, B backend = B{}) {
    return load(io::Checkpoint::open(dir), std::move(backend));
  }

  /// Loads every tensor of `ckpt` for its config; each is checked (present, dtype, shape) and a
  /// tensor the config does not account for is an error too. The model keeps `backend`.
  static Model load(const io::Checkpoint& ckpt, B backend = B{}) {
    check_names(ckpt);
    return load(ckpt, ckpt.config(), std::move(backend));
  }

  /// Loads the model `cfg` describes from any tensor source in reference names (a checkpoint, a
  /// GGUF file through io::GgufModel, ...); every tensor is checked as it is read (present,
  /// dtype, shape). The model keeps `backend`.
  template <io::TensorSource Src>
  static Model load(const Src& src, const ModelConfig& cfg, B backend = B{}) {
    DSV4_CHECK(static_cast<std::size_t>(cfg.hc_mult) == streams, ConfigError,
               "{}: hc_mult = {} but the model's residual policy has {} streams", src.label(),
               cfg.hc_mult, streams);
    Model m;
    m.backend_ = std::move(backend);
    m.cfg_ = cfg;
    const auto d = static_cast<std::uint64_t>(cfg.dim);
    const auto v = static_cast<std::uint64_t>(cfg.vocab_size);
    const auto eps = static_cast<float>(cfg.norm_eps);
    // The embedding stays in its stored format (mapped where the source allows); a lookup
    // dequantises the rows it reads.
    m.embed_ = io::load_linear<AnyLinear>(src, std::string(tensor_names::embed), v, d);
    // The head runs in its stored format: float32 products of the dequantised rows (the
    // reference's fp32 GEMM), or, for a GGUF read with llama.cpp's dot products, the activation
    // quantized to the format's vec_dot partner as ggml's mul_mat computes it.
    m.head_ = io::load_float_product(src, std::string(tensor_names::head), v, d);
    m.norm_ = RmsNorm{io::load_float(src, std::string(tensor_names::norm), {d}), eps};
    m.hc_head_ = ResidualLoader<R>::load_head(src, std::string(tensor_names::hc_head), cfg);
    for (int l = 0; l < cfg.n_layers; ++l) {
      const std::string p = tensor_names::join(tensor_names::layers, std::to_string(l));
      m.blocks_.push_back(block_type::load(src, p, cfg, l));
    }
    for (int j = 0; j < cfg.n_mtp_layers; ++j) {
      const std::string p = tensor_names::join(tensor_names::mtp, std::to_string(j));
      Mtp mtp;
      mtp.block = block_type::load(src, p, cfg, cfg.n_layers + j);
      mtp.e_proj = io::load_linear<Lin>(src, tensor_names::join(p, tensor_names::e_proj), d, d);
      mtp.h_proj = io::load_linear<Lin>(src, tensor_names::join(p, tensor_names::h_proj), d, d);
      mtp.enorm =
          RmsNorm{io::load_float(src, tensor_names::join(p, tensor_names::enorm), {d}), eps};
      mtp.hnorm =
          RmsNorm{io::load_float(src, tensor_names::join(p, tensor_names::hnorm), {d}), eps};
      mtp.norm = RmsNorm{io::load_float(src, tensor_names::join(p, tensor_names::norm), {d}), eps};
      mtp.hc_head =
          ResidualLoader<R>::load_head(src, tensor_names::join(p, tensor_names::hc_head), cfg);
      m.mtp_.push_back(std::move(mtp));
    }
    return m;
  }

  const ModelConfig& config() const noexcept { return cfg_; }
  const B& backend() const noexcept { return backend_; }
  std::size_t dim() const noexcept { return static_cast<std::size_t>(cfg_.dim); }
  std::size_t vocab_size() const noexcept { return static_cast<std::size_t>(cfg_.vocab_size); }
  std::size_t n_mtp() const noexcept { return mtp_.size(); }
  const block_type& block(std::size_t i) const { return blocks_.at(i); }
  /// The output head [vocab, dim] in its stored format (io::load_float_product).
  const AnyLinear& head() const noexcept { return head_; }

  /// A fresh per-sequence state, its caches in the backend's memory (Backend::state_memory(),
  /// host memory for the host backends).
  State new_state() const {
    State st;
    DeviceMemory* memory = backend_state_memory(backend_);
    for (const auto& b : blocks_) st.layers.push_back(b.make_state(cfg_, memory));
    for (const auto& m : mtp_) st.mtp.push_back(m.block.make_state(cfg_, memory));
    st.mtp_next_pos.assign(mtp_.size(), 0);
    return st;
  }

  /// Runs the trunk on `tokens` at positions start_pos… (0 starts a new sequence; otherwise
  /// start_pos must be st.next_pos). Returns the logits of every position (all_logits) or of the
  /// last one, and the last block's output (hidden = false leaves Output::hidden empty: no copy
  /// of [T, streams, dim] when no MTP step follows).
  Output forward(std::span<const std::int32_t> tokens, std::int64_t start_pos, State& st,
                 bool all_logits = true, ForwardTrace* trace = nullptr, bool hidden = true) const {
    Output out;
    forward_into(tokens, start_pos, st, out, all_logits, trace, hidden);
    return out;
  }

  /// As forward(), the result written into `out`, whose vectors keep their capacity: a decode
  /// loop that reuses one Output allocates nothing once its sequence is warm (the activations
  /// live in pooled scratch memory, core/scratch.hpp).
  void forward_into(std::span<const std::int32_t> tokens, std::int64_t start_pos, State& st,
                    Output& out, bool all_logits = true, ForwardTrace* trace = nullptr,
                    bool hidden = true) const {
    const BatchItem item{tokens, start_pos, &st, all_logits, hidden};
    run(std::span<const BatchItem>(&item, 1), trace, std::span<Output>(&out, 1));
  }

  /// Several sequences in one call, each with its own state, positions and length (a prefill of
  /// one next to decode steps of others, for instance). Output i belongs to items[i] and equals,
  /// bit for bit, what forward() computes for that sequence alone. Every item needs its own
  /// state (InputError otherwise).
  std::vector<Output> forward_batch(std::span<const BatchItem> items) const {
    DSV4_CHECK(!items.empty(), InputError, "model: a batch needs at least one sequence");
    for (std::size_t i = 0; i < items.size(); ++i) {
      DSV4_CHECK(items[i].state != nullptr, InputError, "model: batch item {} has no state", i);
      for (std::size_t j = 0; j < i; ++j) {
        DSV4_CHECK(items[j].state != items[i].state, InputError,
                   "model: batch items {} and {} share one state; every sequence needs its own", j,
                   i);
      }
    }
    std::vector<Output> outs(items.size());
    run(items, nullptr, outs);
    return outs;
  }

  /// Prefill of a new sequence.
  Output prefill(std::span<const std::int32_t> tokens, State& st, bool all_logits = true) const {
    return forward(tokens, 0, st, all_logits);
  }
  /// One decode step at st.next_pos.
  Output decode(std::int32_t token, State& st) const {
    return forward(std::span<const std::int32_t>(&token, 1), st.next_pos, st, true);
  }
  /// One decode step at st.next_pos into `out` (see forward_into).
  void decode_into(std::int32_t token, State& st, Output& out) const {
    forward_into(std::span<const std::int32_t>(&token, 1), st.next_pos, st, out, true);
  }

  /// Forgets the trunk's last position: the next call starts at `pos` = st.next_pos − 1 (or
  /// st.next_pos, which changes nothing). This is what rejecting a speculative token needs. One
  /// position is the limit: its writes (its ring slot, its compressor rows, an entry it
  /// completed) are overwritten by the next call at `pos` before anything reads them, which does
  /// not hold for two (the older one's ring slot would have evicted a position still in the
  /// window). The MTP blocks' states are not touched. Throws InputError otherwise.
  void rewind(State& st, std::int64_t pos) const {
    check_state(st);
    DSV4_CHECK(pos >= 0 && pos <= st.next_pos && pos + 1 >= st.next_pos, InputError,
               "model: cannot rewind a sequence at position {} to {}; only the last position "
               "can be forgotten",
               st.next_pos, pos);
    for (auto& l : st.layers) l.rewind(pos);
    st.next_pos = pos;
  }

  /// MTP block j (spec §8.2): hidden [T, streams, dim] (trunk outputs at positions start_pos…),
  /// tokens [T] (the next tokens: position i pairs with token i+1). Returns its logits (row i
  /// predicts token i+2) and the block's output.
  Output mtp_forward(std::span<const float> hidden, std::span<const std::int32_t> tokens,
                     std::int64_t start_pos, State& st, std::size_t j = 0,
                     bool all_logits = true) const {
    Output out;
    mtp_forward_into(hidden, tokens, start_pos, st, out, j, all_logits);
    return out;
  }

  /// As mtp_forward(), the result written into `out`, whose vectors keep their capacity (a
  /// drafting loop that reuses one Output allocates nothing once warm).
  void mtp_forward_into(std::span<const float> hidden, std::span<const std::int32_t> tokens,
                        std::int64_t start_pos, State& st, Output& out, std::size_t j = 0,
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
    const B& b = backend_;
    const Mtp& m = mtp_[j];
    auto e = embed(tokens);  // [T, d]
    b.template rms_norm<N>(e, m.enorm.weight, m.enorm.eps, e);
    auto ep = b.template alloc<float>(t * d);
    b.template linear<N>(m.e_proj, ConstView2<float>(e.data(), t, d),
                         View2<float>(ep.data(), t, d));
    auto h = b.template alloc<float>(t * streams * d);  // [T·S, d]
    backend_upload<float>(b, hidden, h);                // the trunk's output, from the host
    b.template rms_norm<N>(h, m.hnorm.weight, m.hnorm.eps, h);
    auto x = b.template alloc<float>(h.size());
    b.template linear<N>(m.h_proj, ConstView2<float>(h.data(), t * streams, d),
                         View2<float>(x.data(), t * streams, d));
    add_to_streams(ep, x);
    m.block.template forward<N>(b, x, tokens, start_pos, st.mtp[j]);
    st.mtp_next_pos[j] = start_pos + static_cast<std::int64_t>(t);
    out.tokens = t;
    const auto lg = logits(m.hc_head, m.norm, x, all_logits ? 0 : t - 1, t);
    download(lg, out.logits);
    download(x, out.hidden);
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

  /// Embedding rows of `tokens` (host ids, checked): [T, d], the backend's `embed` op when it
  /// has one.
  typename B::template buffer<float> embed(std::span<const std::int32_t> tokens) const {
    const B& b = backend_;
    const std::size_t d = dim();
    auto e = b.template alloc<float>(tokens.size() * d);
    if constexpr (requires { b.embed(embed_, tokens, std::span<float>(e)); }) {
      b.embed(embed_, tokens, std::span<float>(e));
    } else {
      for (std::size_t r = 0; r < tokens.size(); ++r)
        embed_.dequantize_row(static_cast<std::size_t>(tokens[r]), e.data() + r * d);
    }
    return e;
  }

  /// x[r][s] = N(ep[r] + x[r][s]) for every stream s: ep [T, d], x [T, streams, d] (the MTP
  /// block's input), the backend's `add_to_streams` op when it has one.
  void add_to_streams(std::span<const float> ep, std::span<float> x) const {
    const B& b = backend_;
    const std::size_t d = dim();
    if constexpr (requires { b.template add_to_streams<N>(ep, d, streams, x); }) {
      b.template add_to_streams<N>(ep, d, streams, x);
    } else {
      for (std::size_t r = 0; r < ep.size() / d; ++r) {
        for (std::size_t s = 0; s < streams; ++s) {
          float* xr = x.data() + (r * streams + s) * d;
          for (std::size_t c = 0; c < d; ++c) xr[c] = N::round(ep[r * d + c] + xr[c]);
        }
      }
    }
  }

  /// dst = src (backend memory) on the host, dst resized (its capacity kept).
  void download(std::span<const float> src, std::vector<float>& dst) const {
    dst.resize(src.size());
    backend_download<float>(backend_, src, dst);
  }

  /// The trunk on every item's tokens (rows concatenated in item order).
  void run(std::span<const BatchItem> items, ForwardTrace* trace, std::span<Output> outs) const {
    const B& b = backend_;
    const std::size_t d = dim();
    std::size_t rows = 0;
    for (const BatchItem& it : items) {
      check_tokens(it.tokens);
      check_state(*it.state);
      DSV4_CHECK(it.start_pos == 0 || it.start_pos == it.state->next_pos, InputError,
                 "model: start_pos {} does not continue the sequence (expected 0 or {})",
                 it.start_pos, it.state->next_pos);
      rows += it.tokens.size();
    }
    ScratchBuffer<std::int32_t> tokens(rows);
    ScratchBuffer<BlockSegment> segments(items.size());
    for (std::size_t k = 0, at = 0; k < items.size(); ++k) {
      const BatchItem& it = items[k];
      segments[k] = {at, it.tokens.size(), it.start_pos, nullptr, nullptr};
      std::copy(it.tokens.begin(), it.tokens.end(), tokens.begin() + at);
      at += it.tokens.size();
    }
    auto x = b.template alloc<float>(rows * streams * d);  // [rows, S, d]
    expand_streams(b, embed(tokens), d, streams, x);
    std::optional<AttentionTrace> attn_trace;
    if (trace != nullptr) {
      trace->block_in.clear();
      trace->routing.assign(blocks_.size(), {});
      trace->index.assign(blocks_.size(), std::nullopt);
    }
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      for (std::size_t k = 0; k < items.size(); ++k) segments[k].state = &items[k].state->layers[i];
      if (trace != nullptr) {
        download(x, trace->block_in.emplace_back());
        segments[0].trace = &attn_trace.emplace();
      }
      blocks_[i].template forward<N>(b, x, tokens, segments,
                                     trace != nullptr ? &trace->routing[i] : nullptr);
      if (trace != nullptr) trace->index[i] = std::move(attn_trace->index);
    }
    // Logits of the rows asked for, in one head GEMM.
    ScratchBuffer<std::size_t> firsts(items.size());
    std::size_t picked = 0;
    for (std::size_t k = 0; k < items.size(); ++k) {
      const std::size_t n = items[k].all_logits ? segments[k].count : 1;
      firsts[k] = segments[k].first + segments[k].count - n;
      picked += n;
    }
    const std::size_t w = streams * d;
    auto sel = b.template alloc<float>(picked * w);  // [picked, S, d]
    for (std::size_t k = 0, at = 0; k < items.size(); ++k) {
      const std::size_t n = (segments[k].first + segments[k].count - firsts[k]) * w;
      backend_copy<float>(b, std::span<const float>(x.data() + firsts[k] * w, n),
                          std::span<float>(sel.data() + at, n));
      at += n;
    }
    const auto all = logits(hc_head_, norm_, sel, 0, picked);
    const std::size_t v = vocab_size();
    std::size_t at = 0;
    for (std::size_t k = 0; k < items.size(); ++k) {
      const BlockSegment& sg = segments[k];
      const std::size_t n = sg.first + sg.count - firsts[k];
      items[k].state->next_pos = sg.start_pos + static_cast<std::int64_t>(sg.count);
      Output& o = outs[k];
      o.tokens = sg.count;
      download(std::span<const float>(all.data() + at * v, n * v), o.logits);
      if (items[k].hidden) {
        download(std::span<const float>(x.data() + sg.first * w, sg.count * w), o.hidden);
      } else {
        o.hidden.clear();
      }
      at += n;
    }
  }

  /// Head (spec §2.7) of rows first … rows-1 of x [rows, S, d]: collapse the streams, norm, fp32
  /// GEMM with the vocabulary.
  typename B::template buffer<float> logits(const head_type& hc_head, const RmsNorm& norm,
                                            std::span<const float> x, std::size_t first,
                                            std::size_t rows_end) const {
    const B& b = backend_;
    const std::size_t d = dim();
    const std::size_t rows = rows_end - first;
    auto y = b.template alloc<float>(rows * d);
    const auto xs = x.subspan(first * streams * d, rows * streams * d);
    if constexpr (requires { b.template head_collapse<N>(hc_head, xs, std::span<float>(y)); }) {
      b.template head_collapse<N>(hc_head, xs, std::span<float>(y));
    } else if constexpr (requires { hc_head.template collapse<N>(b, xs, std::span<float>(y)); }) {
      hc_head.template collapse<N>(b, xs, y);
    } else {
      hc_head.template collapse<N>(xs, y);
    }
    b.template rms_norm<N>(y, norm.weight, norm.eps, y);
    auto out = b.template alloc<float>(rows * vocab_size());
    backend_linear<Numerics<Fp32Act, N::simulate_quant>>(
        b, head_, ConstView2<float>(y.data(), rows, d),
        View2<float>(out.data(), rows, vocab_size()));
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
      namespace n = tensor_names;
      const std::string p = l < cfg.n_layers
                                ? n::join(n::layers, std::to_string(l), "")
                                : n::join(n::mtp, std::to_string(l - cfg.n_layers), "");
      known.insert(
          p + n::scale_of(n::join(n::attn, n::wo_a)));  // kept by the release, folded by convert.py
      if (cfg.is_hash_layer(l)) known.insert(p + n::join(n::ffn, n::gate, n::tid2eid));
      if (l >= cfg.n_layers) {
        known.insert(p + std::string(n::embed));
        known.insert(p + std::string(n::head));
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

  B backend_{};
  ModelConfig cfg_;
  AnyLinear embed_;  // [vocab, dim] in its stored format (bf16 in the release)
  AnyLinear head_;   // [vocab, dim] in its stored format (io::load_float_product)
  RmsNorm norm_;
  head_type hc_head_;
  std::vector<block_type> blocks_;
  std::vector<Mtp> mtp_;
};

/// The model on the reference backend with policy bundle P.
template <ModelPolicies P = V4Policies>
using ReferenceModel = Model<ReferenceBackend, P>;

}  // namespace dsv4
