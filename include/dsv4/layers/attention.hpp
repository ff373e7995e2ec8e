// One DeepSeek-V4 attention block: low-rank query path, a single shared KV head (key = value),
// partial RoPE, FP8-simulated KV entries, attention sinks, a sliding window, compressed entries
// (CSA / HCA), and the grouped low-rank output projection with the inverse rotation.
// Spec: spec/architecture.md §3 (attention), §4 (window and caches), §5 (compressor), §6
// (indexer), §12 (subtle points); reference symbol `Attention` (inference/model.py).
//
// The variant is a policy: `attention::SlidingWindow` (ratio 0), `attention::Csa` (ratio 4:
// overlapping compressor + lightning indexer top-k) and `attention::Hca` (any other ratio: every
// visible compressed entry). `Attention<Variant, Lin>` fixes it at compile time;
// `AttentionLayer<Lin>` picks it at run time from the layer's compress ratio. `Lin` is the type of
// the quantised projections of the release (wq_a, wq_b, wkv, wo_b, indexer.wq_b); wo_a and
// indexer.weights_proj are plain matrices (bf16 values in the reference, held as float so that
// other sources, e.g. an F32 GGUF, load exactly; the products are the same) and the compressors'
// projections float32, as in the reference.
//
// Call shapes: a prefill of T tokens at start_pos 0, a decode step (T = 1, start_pos = p), and, as
// an extension of the reference, a chunk of T > 1 tokens that continues a sequence. The candidate
// lists reproduce the reference's layouts exactly (spec §3.5, §4.1, §6.7): prefill lists are
// [min(T, W) window slots ++ compressed part], decode lists [W window slots ++ compressed part],
// window positions in ascending order padded with -1; since the sparse-attention core works in
// 64-slot chunks, the layout is part of the bf16 numerics.
//
// The projections, norms, rotations, the compressor and indexer pieces and the sparse-attention
// core run on the backend (backend/concept.hpp); every forward also has an overload without one,
// which runs on the reference backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/layers/compressor.hpp"
#include "dsv4/layers/indexer.hpp"
#include "dsv4/layers/kv_cache.hpp"
#include "dsv4/ops/norm.hpp"
#include "dsv4/ops/quant.hpp"
#include "dsv4/ops/rope.hpp"
#include "dsv4/ops/sparse_attention.hpp"

namespace dsv4 {

/// Parameters of one attention block, with its dimensions and RoPE table.
template <LinearOp Lin = DenseLinear<bf16>>
struct AttentionWeights {
  int layer = 0;  ///< block index (MTP block j is n_layers + j)
  int ratio = 0;  ///< compress ratio (0: sliding window only)
  std::int64_t dim = 0;
  std::int64_t n_heads = 0;      ///< H
  std::int64_t head_dim = 0;     ///< Dh
  std::int64_t rope_dim = 0;     ///< Dr (the last Dr dims of a head are rotated)
  std::int64_t q_lora_rank = 0;  ///< q_r
  std::int64_t o_groups = 0;     ///< G
  std::int64_t o_lora_rank = 0;  ///< R_o
  std::int64_t window = 0;       ///< W
  float norm_eps = 1e-6f;

  std::vector<float> attn_sink;  ///< [H]
  Lin wq_a;                      ///< [q_r, dim]
  RmsNorm q_norm;                ///< [q_r]
  Lin wq_b;                      ///< [H·Dh, q_r]
  Lin wkv;                       ///< [Dh, dim]
  RmsNorm kv_norm;               ///< [Dh]
  /// G matrices [R_o, H·Dh/G], rows g·R_o… of wo_a viewed in its stored format
  /// (io::load_float_product; the release's FP8 wo_a as the bf16 values the reference runs)
  std::vector<AnyLinear> wo_a;
  Lin wo_b;                                     ///< [dim, G·R_o]
  std::optional<CompressorWeights> compressor;  ///< ratio > 0
  std::optional<IndexerWeights<Lin>> indexer;   ///< ratio 4
  Rope rope;                                    ///< the layer's table (spec §3.4)

  AttentionKind kind() const noexcept { return attention_kind(ratio); }
};

/// Intermediate values of one call, for tests and inspection (all float, row-major).
struct AttentionTrace {
  std::vector<float> q;           ///< [T, H, Dh] the sparse-attention query (normalised, rotated)
  std::vector<float> kv;          ///< [kv_rows, Dh] the KV rows the indices address
  std::size_t kv_rows = 0;        ///< prefill: T window rows then the entries; decode: the cache
  std::vector<std::int32_t> idx;  ///< [T, idx_width] candidate rows, -1 = unused slot
  std::size_t idx_width = 0;
  std::vector<float> o;          ///< [T, H, Dh] sparse-attention output (before inverse RoPE)
  CompressorEmitted compressed;  ///< entries the attention compressor produced
  std::optional<IndexerSelection> index;  ///< CSA: the indexer's scores and selections
};

/// What a variant contributes to one call.
struct AttentionCall {
  ConstView2<float> x;   ///< [T, dim] the attention input
  ConstView2<float> qr;  ///< [T, q_r] q_norm(wq_a(x))
  std::int64_t start_pos = 0;
  std::size_t tokens = 0;
};

/// Compressed candidates of every query: entry ids (or -1), [T, width].
struct CompressedCandidates {
  std::size_t width = 0;
  ScratchBuffer<std::int32_t> entries;
  bool on_backend = false;  ///< entries computed by the backend (the indexer's picks)
  std::optional<IndexerSelection> index;
};

namespace attention {

/// Sliding window only (ratio 0): no compressed candidates.
struct SlidingWindow {
  static constexpr AttentionKind kind = AttentionKind::swa;
  static constexpr bool compresses = false;
  static constexpr bool accepts(int ratio) noexcept { return ratio == 0; }

  template <NumericsPolicy N, Backend B, LinearOp Lin>
  static CompressedCandidates candidates(const B&, const AttentionWeights<Lin>&,
                                         const AttentionCall&, AttentionState&) {
    return {};
  }
};

/// Heavily compressed attention: every compressed entry a query can see (j < (pos+1)/r), in
/// ascending order, -1 for the others; width = entries existing at the end of the call. Accepts
/// any ratio > 0 (on a ratio-4 layer it attends to all entries and ignores the indexer).
struct Hca {
  static constexpr AttentionKind kind = AttentionKind::hca;
  static constexpr bool compresses = true;
  static constexpr bool accepts(int ratio) noexcept { return ratio > 0; }

  template <NumericsPolicy N, Backend B, LinearOp Lin>
  static CompressedCandidates candidates(const B&, const AttentionWeights<Lin>& w,
                                         const AttentionCall& c, AttentionState&) {
    CompressedCandidates out;
    const std::int64_t end = c.start_pos + static_cast<std::int64_t>(c.tokens);
    out.width = static_cast<std::size_t>(end / w.ratio);
    out.entries.assign(c.tokens * out.width, -1);
    for (std::size_t t = 0; t < c.tokens; ++t) {
      const auto visible =
          static_cast<std::size_t>((c.start_pos + static_cast<std::int64_t>(t) + 1) / w.ratio);
      for (std::size_t j = 0; j < visible; ++j)
        out.entries[t * out.width + j] = static_cast<std::int32_t>(j);
    }
    return out;
  }
};

/// Compressed sparse attention (ratio 4): the lightning indexer's top-k entries.
struct Csa {
  static constexpr AttentionKind kind = AttentionKind::csa;
  static constexpr bool compresses = true;
  static constexpr bool accepts(int ratio) noexcept { return ratio == 4; }

  template <NumericsPolicy N, Backend B, LinearOp Lin>
  static CompressedCandidates candidates(const B& b, const AttentionWeights<Lin>& w,
                                         const AttentionCall& c, AttentionState& st) {
    DSV4_CHECK(w.indexer.has_value() && st.has_indexer(), ConfigError,
               "CSA attention of block {} needs indexer weights and an indexer state", w.layer);
    CompressedCandidates out;
    IndexerSelection sel =
        indexer_forward<N>(b, *w.indexer, w.rope, c.x, c.qr, c.start_pos, st.indexer());
    out.width = sel.k;
    out.entries = sel.topk;
    out.on_backend = true;
    out.index = std::move(sel);
    return out;
  }
};

template <class V>
concept Variant = requires(int r) {
  { V::kind } -> std::convertible_to<AttentionKind>;
  { V::compresses } -> std::convertible_to<bool>;
  { V::accepts(r) } -> std::convertible_to<bool>;
};

/// Calls f(V{}) with the policy type of `kind`.
template <class F>
decltype(auto) visit_variant(AttentionKind kind, F&& f) {
  switch (kind) {
    case AttentionKind::swa:
      return std::forward<F>(f)(SlidingWindow{});
    case AttentionKind::csa:
      return std::forward<F>(f)(Csa{});
    case AttentionKind::hca:
      break;
  }
  return std::forward<F>(f)(Hca{});
}

}  // namespace attention

namespace attention_detail {

template <class V, LinearOp Lin>
void check_weights_and_state(const AttentionWeights<Lin>& w, const AttentionState& st) {
  DSV4_CHECK(V::accepts(w.ratio), ConfigError,
             "attention variant {} cannot run block {} of compress ratio {}",
             attention_kind_name(V::kind), w.layer, w.ratio);
  DSV4_CHECK(st.ratio() == w.ratio && st.window() == static_cast<std::size_t>(w.window) &&
                 st.head_dim() == static_cast<std::size_t>(w.head_dim) &&
                 st.max_seq_len() == w.rope.max_seq_len(),
             ShapeError,
             "attention block {}: the state was made for ratio {}, window {}, head_dim {}, "
             "max_seq_len {}; the layer has ratio {}, window {}, head_dim {}, max_seq_len {}",
             w.layer, st.ratio(), st.window(), st.head_dim(), st.max_seq_len(), w.ratio, w.window,
             w.head_dim, w.rope.max_seq_len());
  if constexpr (V::compresses) {
    DSV4_CHECK(w.compressor.has_value(), ConfigError,
               "attention block {} of ratio {} has no compressor weights", w.layer, w.ratio);
  }
}

/// The FP8 activation simulation of x[0, n) in place (spec §9.2) on backend b.
template <Backend B>
void act_quant(const B& b, float* x, std::size_t n) {
  if constexpr (requires { b.act_quant(x, n); }) {
    b.act_quant(x, n);
  } else {
    ops::act_quant_inplace(x, n);
  }
}

/// idx[t][col + k] = entries[t][k] < 0 ? -1 : base + entries[t][k] for the T rows of idx
/// ([T, width]) and entries ([T, k_width]), on backend b.
template <Backend B>
void place_entries(const B& b, std::span<const std::int32_t> entries, std::size_t k_width,
                   std::size_t base, std::span<std::int32_t> idx, std::size_t width,
                   std::size_t col) {
  if constexpr (requires { b.place_entries(entries, k_width, base, idx, width, col); }) {
    b.place_entries(entries, k_width, base, idx, width, col);
  } else {
    for (std::size_t t = 0; t < entries.size() / k_width; ++t) {
      for (std::size_t k = 0; k < k_width; ++k) {
        const std::int32_t e = entries[t * k_width + k];
        idx[t * width + col + k] = e < 0 ? -1 : static_cast<std::int32_t>(base) + e;
      }
    }
  }
}

/// One call of attention variant V on x ([T, dim], after attn_norm) at positions start_pos….
template <class V, NumericsPolicy N, Backend B, LinearOp Lin>
void forward(const B& b, const AttentionWeights<Lin>& w, std::span<const float> x,
             std::int64_t start_pos, AttentionState& st, std::span<float> out,
             AttentionTrace* trace) {
  const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  const std::size_t dim = u(w.dim);
  DSV4_CHECK(dim > 0 && !x.empty() && x.size() % dim == 0 && out.size() == x.size(), ShapeError,
             "attention block {}: x has {} values and out {}; both must be [T, dim = {}] with "
             "T >= 1",
             w.layer, x.size(), out.size(), dim);
  const std::size_t t_count = x.size() / dim;
  check_weights_and_state<V>(w, st);
  st.check_call(start_pos, static_cast<std::int64_t>(t_count));
  const std::int64_t end = start_pos + static_cast<std::int64_t>(t_count);

  const std::size_t h = u(w.n_heads);
  const std::size_t dh = u(w.head_dim);
  const std::size_t dr = u(w.rope_dim);
  const std::size_t qr_dim = u(w.q_lora_rank);
  const std::size_t win = u(w.window);
  const ConstView2<float> xv(x.data(), t_count, dim);
  const auto pos_of = [&](std::size_t t) { return start_pos + static_cast<std::int64_t>(t); };

  // Query path: qr = q_norm(wq_a(x)), q = wq_b(qr) per head normalised and rotated.
  auto qr = b.template alloc<float>(t_count * qr_dim);  // [T, q_r]
  b.template linear<N>(w.wq_a, xv, View2<float>(qr.data(), t_count, qr_dim));
  b.template rms_norm<N>(qr, w.q_norm.weight, w.q_norm.eps, qr);
  auto q = b.template alloc<float>(t_count * h * dh);  // [T, H, Dh]
  b.template linear<N>(w.wq_b, ConstView2<float>(qr.data(), t_count, qr_dim),
                       View2<float>(q.data(), t_count, h * dh));
  b.template head_rms_norm<N>(q, dh, w.norm_eps);
  for (std::size_t t = 0; t < t_count; ++t)
    b.template rope<N>(w.rope, q.data() + t * h * dh, h, dh, pos_of(t), RopeDirection::forward);

  // Window KV: kv_norm(wkv(x)), rotated, FP8-simulated on the non-rope dims.
  auto kv = b.template alloc<float>(t_count * dh);  // [T, Dh]
  b.template linear<N>(w.wkv, xv, View2<float>(kv.data(), t_count, dh));
  b.template rms_norm<N>(kv, w.kv_norm.weight, w.kv_norm.eps, kv);
  for (std::size_t t = 0; t < t_count; ++t) {
    float* kt = kv.data() + t * dh;
    b.template rope<N>(w.rope, kt, 1, dh, pos_of(t), RopeDirection::forward);
    if constexpr (N::simulate_quant) act_quant(b, kt, dh - dr);
  }

  // Compressed entries this call completes, then the variant's compressed candidates.
  CompressorEmitted emitted;
  if constexpr (V::compresses) {
    emitted = compressor_forward<N>(b, *w.compressor, w.rope, xv, start_pos, st.compressor(),
                                    st.compressed());
  }
  const AttentionCall call{xv, ConstView2<float>(qr.data(), t_count, qr_dim), start_pos, t_count};
  CompressedCandidates comp = V::template candidates<N>(b, w, call, st);

  // KV rows and candidate lists (spec §3.5, §4.1).
  const bool decode = start_pos > 0 && t_count == 1;
  const std::size_t n_entries = V::compresses ? u(end / w.ratio) : 0;
  const auto cache_row = [&](std::size_t r) { return std::span<float>(st.cache().row(r), dh); };
  typename B::template buffer<float> kv_rows;  // general path only
  const float* kv_base = nullptr;
  std::size_t kv_count = 0;
  std::size_t snapshot = 0;  // ring rows copied in front of the new rows (general path)
  std::size_t entry_base = 0;
  if (decode) {
    backend_copy<float>(b, kv, cache_row(u(start_pos) % win));
    kv_base = st.cache().data;
    kv_count = st.cache().rows;
    entry_base = win;
  } else {
    snapshot = start_pos > 0 ? win : 0;
    kv_count = snapshot + t_count + n_entries;
    kv_rows = b.template alloc<float>(kv_count * dh);
    const std::span<float> rows(kv_rows.data(), kv_count * dh);
    if (snapshot > 0) {
      backend_copy<float>(b, std::span<const float>(st.cache().data, win * dh),
                          rows.first(win * dh));
    }
    backend_copy<float>(b, kv, rows.subspan(snapshot * dh, t_count * dh));
    if (n_entries > 0) {
      backend_copy<float>(b, std::span<const float>(st.compressed().data, n_entries * dh),
                          rows.subspan((snapshot + t_count) * dh, n_entries * dh));
    }
    kv_base = kv_rows.data();
    entry_base = snapshot + t_count;
  }
  // The window's candidates (and the compressed ones when they are known on the host, as the
  // HCA's are) are written on the host, then uploaded where the backend's memory is its own; the
  // indexer's picks are placed by the backend.
  const std::size_t win_width = start_pos == 0 ? std::min(t_count, win) : win;
  const std::size_t width = win_width + comp.width;
  constexpr bool upload = requires(std::span<const std::int32_t> h, std::span<std::int32_t> d) {
    b.upload(h, d);
  };
  auto idx = b.template alloc<std::int32_t>(t_count * width);  // [T, width]
  ScratchBuffer<std::int32_t> idx_host(upload ? t_count * width : 0);
  const std::span<std::int32_t> idx_rows =
      upload ? std::span<std::int32_t>(idx_host) : std::span<std::int32_t>(idx);
  std::fill(idx_rows.begin(), idx_rows.end(), -1);
  for (std::size_t t = 0; t < t_count; ++t) {
    const std::int64_t pos = pos_of(t);
    const std::int64_t first = std::max<std::int64_t>(0, pos - static_cast<std::int64_t>(win) + 1);
    std::int32_t* row = idx_rows.data() + t * width;
    for (std::int64_t p = first; p <= pos; ++p) {
      std::size_t r = 0;
      if (decode || p < start_pos) {
        r = u(p) % win;  // ring slot (general path: its copy in the snapshot rows)
      } else {
        r = snapshot + u(p - start_pos);
      }
      row[p - first] = static_cast<std::int32_t>(r);
    }
    if (comp.on_backend) continue;
    for (std::size_t k = 0; k < comp.width; ++k) {
      const std::int32_t e = comp.entries[t * comp.width + k];
      row[win_width + k] = e < 0 ? -1 : static_cast<std::int32_t>(entry_base + u(e));
    }
  }
  if constexpr (upload) backend_upload<std::int32_t>(b, idx_host, idx);
  if (comp.on_backend && comp.width > 0) {
    place_entries(b, comp.entries, comp.width, entry_base, idx, width, win_width);
  }

  // Sparse attention over the candidates, with the sinks.
  auto o = b.template alloc<float>(t_count * h * dh);  // [T, H, Dh]
  SparseAttentionArgs sa;
  sa.q = q.data();
  sa.kv = kv_base;
  sa.sink = w.attn_sink.data();
  sa.idx = idx.data();
  sa.tokens = t_count;
  sa.heads = h;
  sa.head_dim = dh;
  sa.kv_rows = kv_count;
  sa.width = width;
  sa.scale = static_cast<float>(std::pow(static_cast<double>(dh), -0.5));
  sa.out = o.data();
  b.template sparse_attention<N>(sa);
  if (trace != nullptr) {
    const auto get = [&b]<class T>(const T* src, std::size_t n, std::vector<T>& dst) {
      dst.resize(n);
      backend_download<T>(b, std::span<const T>(src, n), dst);
    };
    get(q.data(), q.size(), trace->q);
    get(kv_base, kv_count * dh, trace->kv);
    trace->kv_rows = kv_count;
    get(idx.data(), idx.size(), trace->idx);
    trace->idx_width = width;
    get(o.data(), o.size(), trace->o);
    trace->compressed = emitted;
    trace->index = std::move(comp.index);
  }

  // The general path stores the new window rows once every query has read the old ones.
  if (!decode) {
    const std::int64_t keep =
        std::max<std::int64_t>(start_pos, end - static_cast<std::int64_t>(win));
    for (std::int64_t p = keep; p < end; ++p) {
      backend_copy<float>(b, std::span<const float>(kv.data() + u(p - start_pos) * dh, dh),
                          cache_row(u(p) % win));
    }
  }

  // Output: inverse rotation at the query position, grouped wo_a, then wo_b.
  for (std::size_t t = 0; t < t_count; ++t)
    b.template rope<N>(w.rope, o.data() + t * h * dh, h, dh, pos_of(t), RopeDirection::inverse);
  const std::size_t groups = u(w.o_groups);
  const std::size_t rank = u(w.o_lora_rank);
  const std::size_t group_in = h * dh / groups;
  auto y = b.template alloc<float>(t_count * groups * rank);  // [T, G, R_o]
  for (std::size_t g = 0; g < groups; ++g) {
    const ConstView2<float> xg(o.data() + g * group_in, t_count, group_in, h * dh);
    const View2<float> yg(y.data() + g * rank, t_count, rank, groups * rank);
    backend_linear<N>(b, w.wo_a[g], xg, yg);
  }
  b.template linear<N>(w.wo_b, ConstView2<float>(y.data(), t_count, groups * rank),
                       View2<float>(out.data(), t_count, dim));
  st.advance_to(end);
}

}  // namespace attention_detail

/// Attention with the variant fixed at compile time, e.g. `Attention<attention::Csa>`.
template <attention::Variant V, LinearOp Lin = DenseLinear<bf16>>
class Attention {
 public:
  using variant = V;
  using linear_type = Lin;

  /// Takes the weights of a block whose ratio V accepts (ConfigError otherwise).
  explicit Attention(AttentionWeights<Lin> w) : w_(std::move(w)) {
    DSV4_CHECK(V::accepts(w_.ratio), ConfigError,
               "attention variant {} cannot run block {} of compress ratio {}",
               attention_kind_name(V::kind), w_.layer, w_.ratio);
  }

  const AttentionWeights<Lin>& weights() const noexcept { return w_; }

  /// A fresh per-sequence state for this layer.
  AttentionState make_state(const ModelConfig& cfg, DeviceMemory* memory = nullptr) const {
    return AttentionState(cfg, w_.ratio, memory);
  }

  /// x: [T, dim] (after attn_norm); out: [T, dim]. start_pos 0 starts a new sequence; otherwise
  /// it must equal state.next_pos(). Throws ShapeError / InputError on bad shapes or positions.
  template <NumericsPolicy N, Backend B>
  void forward(const B& b, std::span<const float> x, std::int64_t start_pos, AttentionState& state,
               std::span<float> out, AttentionTrace* trace = nullptr) const {
    attention_detail::forward<V, N>(b, w_, x, start_pos, state, out, trace);
  }
  /// As above on the reference backend.
  template <NumericsPolicy N>
  void forward(std::span<const float> x, std::int64_t start_pos, AttentionState& state,
               std::span<float> out, AttentionTrace* trace = nullptr) const {
    forward<N>(ReferenceBackend{}, x, start_pos, state, out, trace);
  }

 private:
  AttentionWeights<Lin> w_;
};

/// Attention whose variant is chosen at run time from the block's compress ratio
/// (0 → SlidingWindow, 4 → Csa, other → Hca).
template <LinearOp Lin = DenseLinear<bf16>>
class AttentionLayer {
 public:
  using linear_type = Lin;

  explicit AttentionLayer(AttentionWeights<Lin> w) : w_(std::move(w)) {}

  const AttentionWeights<Lin>& weights() const noexcept { return w_; }
  AttentionKind kind() const noexcept { return w_.kind(); }
  AttentionState make_state(const ModelConfig& cfg, DeviceMemory* memory = nullptr) const {
    return AttentionState(cfg, w_.ratio, memory);
  }

  /// As Attention<V>::forward, with V picked from the ratio.
  template <NumericsPolicy N, Backend B>
  void forward(const B& b, std::span<const float> x, std::int64_t start_pos, AttentionState& state,
               std::span<float> out, AttentionTrace* trace = nullptr) const {
    attention::visit_variant(w_.kind(), [&]<class V>(V) {
      attention_detail::forward<V, N>(b, w_, x, start_pos, state, out, trace);
    });
  }
  /// As above on the reference backend.
  template <NumericsPolicy N>
  void forward(std::span<const float> x, std::int64_t start_pos, AttentionState& state,
               std::span<float> out, AttentionTrace* trace = nullptr) const {
    forward<N>(ReferenceBackend{}, x, start_pos, state, out, trace);
  }

 private:
  AttentionWeights<Lin> w_;
};

}  // namespace dsv4
