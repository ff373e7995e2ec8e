// The lightning indexer of CSA layers (ratio 4): picks, for every query, the index_topk
// compressed entries the attention reads. Spec: spec/architecture.md §6 and §12 items 17-20;
// reference symbol `Indexer` (inference/model.py).
//
// Index queries come from the attention's normalised low-rank query qr (wq_b, RoPE on the last
// rope dims of each index head, Hadamard, FP4 simulation); index keys from the indexer's own
// compressor (rotate mode) over the attention input x. Head weights w = weights_proj(x) · σ with
// σ = Di^-1/2 · Hi^-1/2 (rounded to the activation type first, as the golden data's PyTorch does
// for a Python scalar times a bf16 tensor). score[t][j] = Σ_h round(relu(round(q_th · K_j)) · w_h),
// rounded once; every step is a bf16 op in the reference's own run, so exact ties are common.
//
// Selection: k = min(index_topk, entries existing at the end of the call); entries a query may not
// see yet (j ≥ (pos+1)/4) score −∞, picks of such entries become −1. Ties are broken by ascending
// entry id; the reference's torch.topk leaves tie order unspecified, so compare selections as sets.
// The projections, RoPE, the scores and the top-k run on the backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dsv4/backend/concept.hpp"
#include "dsv4/backend/reference.hpp"
#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/scratch.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/layers/compressor.hpp"
#include "dsv4/ops/hadamard.hpp"
#include "dsv4/ops/quant.hpp"
#include "dsv4/ops/rope.hpp"

namespace dsv4 {

/// The indexer's parameters. `Lin` is the linear type of wq_b (an FP8 projection in the release);
/// weights_proj is a plain bf16 linear in the reference (float32 products of the stored weight).
template <LinearOp Lin>
struct IndexerWeights {
  std::int64_t n_heads = 0;      ///< Hi
  std::int64_t head_dim = 0;     ///< Di (a power of two, a multiple of 32)
  std::int64_t topk = 0;         ///< index_topk
  Lin wq_b;                      ///< [Hi·Di, q_lora_rank]
  AnyLinear weights_proj;        ///< [Hi, dim], stored format (io::load_float_product)
  CompressorWeights compressor;  ///< ratio 4, width Di, rotate mode
};

/// Per-sequence state of an indexer: its compressor's running state and the index key cache
/// ([max_seq_len / 4, Di], the reference's Indexer.kv_cache).
class IndexerState {
 public:
  IndexerState() = default;
  /// The buffers live in `memory` (host memory when null).
  IndexerState(std::int64_t max_seq_len, std::int64_t head_dim, DeviceMemory* memory = nullptr)
      : compressor_(4, head_dim, memory),
        capacity_(static_cast<std::size_t>(max_seq_len / 4)),
        dim_(static_cast<std::size_t>(head_dim)),
        keys_(capacity_ * dim_, 0.0f, memory) {}

  CompressorState& compressor() noexcept { return compressor_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t head_dim() const noexcept { return dim_; }
  /// All key rows, [capacity, Di].
  View2<float> keys() noexcept { return {keys_.data(), capacity_, dim_}; }
  ConstView2<float> keys() const noexcept { return {keys_.data(), capacity_, dim_}; }
  /// Index key j, [Di].
  std::span<const float> key(std::size_t j) const noexcept {
    return {keys_.data() + j * dim_, dim_};
  }
  void reset() {
    compressor_.reset();
    keys_.fill(0.0f);
  }

 private:
  CompressorState compressor_;
  std::size_t capacity_ = 0;
  std::size_t dim_ = 0;
  StateBuffer keys_;  // [capacity, Di]
};

/// What one indexer call selected, for T queries.
struct IndexerSelection {
  std::size_t k = 0;                 ///< selection width min(index_topk, entries)
  std::size_t entries = 0;           ///< entries existing at the end of the call
  ScratchBuffer<std::int32_t> topk;  ///< [T, k] entry ids, -1 where the pick is not visible
  ScratchBuffer<float> scores;  ///< [T, entries] scores top-k ran on (−∞ = not visible yet)
};

/// indexer_forward as host code around backend b's ops (what a host backend runs).
template <NumericsPolicy N, Backend B, LinearOp Lin>
IndexerSelection indexer_forward_on_host(const B& b, const IndexerWeights<Lin>& w, const Rope& rope,
                                         ConstView2<float> x, ConstView2<float> qr,
                                         std::int64_t start_pos, IndexerState& st) {
  const std::size_t t_count = x.rows;
  const auto hi = static_cast<std::size_t>(w.n_heads);
  const auto di = static_cast<std::size_t>(w.head_dim);
  DSV4_CHECK(qr.rows == t_count && st.head_dim() == di, ShapeError,
             "indexer: {} query rows for {} tokens, state of width {} for index_head_dim {}",
             qr.rows, t_count, st.head_dim(), di);

  // Index queries: [T, Hi, Di].
  auto q = b.template alloc<float>(t_count * hi * di);
  b.template linear<N>(w.wq_b, qr, View2<float>(q.data(), t_count, hi * di));
  ScratchBuffer<float> work(di);
  const float hscale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(di)));
  for (std::size_t t = 0; t < t_count; ++t) {
    float* qt = q.data() + t * hi * di;
    b.template rope<N>(rope, qt, hi, di, start_pos + static_cast<std::int64_t>(t),
                       RopeDirection::forward);
    for (std::size_t h = 0; h < hi; ++h) {
      float* v = qt + h * di;
      ops::hadamard(v, v, di, hscale, work.data());
      for (std::size_t j = 0; j < di; ++j) v[j] = N::round(v[j]);
      if constexpr (N::simulate_quant) ops::fp4_act_quant_inplace(v, di);
    }
  }

  // Index keys of the blocks this call completes.
  compressor_forward<N>(b, w.compressor, rope, x, start_pos, st.compressor(), st.keys());

  // Head weights: [T, Hi].
  auto hw = b.template alloc<float>(t_count * hi);
  backend_linear<N>(b, w.weights_proj, x, View2<float>(hw.data(), t_count, hi));
  const float sigma = N::round(static_cast<float>(std::pow(static_cast<double>(di), -0.5) *
                                                  std::pow(static_cast<double>(hi), -0.5)));
  for (float& v : hw) v = N::round(v * sigma);

  IndexerSelection sel;
  const std::int64_t end = start_pos + static_cast<std::int64_t>(t_count);
  sel.entries = static_cast<std::size_t>(end / 4);
  sel.k = std::min(static_cast<std::size_t>(w.topk), sel.entries);
  sel.topk.assign(t_count * sel.k, -1);
  sel.scores.assign(t_count * sel.entries, -std::numeric_limits<float>::infinity());
  ScratchBuffer<std::size_t> visible(t_count);  // entries row t may see
  for (std::size_t t = 0; t < t_count; ++t)
    visible[t] = static_cast<std::size_t>((start_pos + static_cast<std::int64_t>(t) + 1) / 4);
  if (sel.entries == 0) return sel;
  const IndexerState& keys = st;
  b.template index_scores<N>(ConstView2<float>(q.data(), t_count, hi * di), keys.keys(),
                             ConstView2<float>(hw.data(), t_count, hi), visible,
                             View2<float>(sel.scores.data(), t_count, sel.entries));
  for (std::size_t t = 0; t < t_count; ++t) {
    if (sel.k == 0) continue;
    const std::span<std::int32_t> picks(sel.topk.data() + t * sel.k, sel.k);
    b.top_k(std::span<const float>(sel.scores.data() + t * sel.entries, sel.entries), picks);
    for (std::int32_t& j : picks) {
      if (static_cast<std::size_t>(j) >= visible[t]) j = -1;
    }
  }
  return sel;
}

/// Runs the indexer for T tokens at positions start_pos … start_pos+T-1.
/// x: [T, dim] the attention input; qr: [T, q_lora_rank] the attention's q_norm(wq_a(x)).
/// Advances the index-key compressor (entries land in state.keys()) and returns the selections.
/// Runs on backend b as its `indexer` op when it has one.
template <NumericsPolicy N, Backend B, LinearOp Lin>
IndexerSelection indexer_forward(const B& b, const IndexerWeights<Lin>& w, const Rope& rope,
                                 ConstView2<float> x, ConstView2<float> qr, std::int64_t start_pos,
                                 IndexerState& st) {
  if constexpr (requires { b.template indexer<N>(w, rope, x, qr, start_pos, st); }) {
    return b.template indexer<N>(w, rope, x, qr, start_pos, st);
  } else {
    return indexer_forward_on_host<N>(b, w, rope, x, qr, start_pos, st);
  }
}

/// As above on the reference backend.
template <NumericsPolicy N, LinearOp Lin>
IndexerSelection indexer_forward(const IndexerWeights<Lin>& w, const Rope& rope,
                                 ConstView2<float> x, ConstView2<float> qr, std::int64_t start_pos,
                                 IndexerState& st) {
  return indexer_forward<N>(ReferenceBackend{}, w, rope, x, qr, start_pos, st);
}

}  // namespace dsv4
