// The KV compressor shared by CSA (ratio 4, overlapping windows) and HCA (any other ratio), and the
// indexer's own copy (rotate mode). Spec: spec/architecture.md §5 and §12 items 11-17, 21;
// reference symbol `Compressor` (inference/model.py).
//
// Every block of `ratio` consecutive tokens becomes one head_dim-vector: per-token projections
// kv = wkv·x and score = wgate·x + ape[pos mod ratio] (float32, no activation quantisation, also
// in the bf16 run), a softmax over the block's tokens taken separately for every channel, and the
// weighted sum. Overlap mode (ratio 4) pools 2·ratio members: the first head_dim channels of the
// previous block's tokens and the second head_dim channels of the current block's tokens (block
// −1 contributes kv 0 with score −∞). The pooled vector is rounded to the activation type,
// RMS-normalised, rotated at the position of the block's first token, then FP8-simulated on the
// non-rope dims (attention compressor) or Hadamard-transformed and FP4-simulated (indexer).
//
// Tokens are streamed through a running state (`CompressorState`, the reference's kv_state /
// score_state), one at a time; the reference's prefill, which pools whole blocks at once, performs
// the same float operations in the same order, so prefill and token-by-token decode agree bit for
// bit given the same inputs. The state is reset at position 0 (the reference does not reset it,
// spec §12 item 21). Every row of the state belongs to one position (no rows are shifted when a
// block completes), so the writes of a token are undone by writing its position again: what
// forgetting the last position (AttentionState::rewind, speculative decoding) relies on.
// The projections, the pooling softmax, the norm and the rotation run on the backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
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
#include "dsv4/core/state_memory.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/ops/hadamard.hpp"
#include "dsv4/ops/norm.hpp"
#include "dsv4/ops/quant.hpp"
#include "dsv4/ops/rope.hpp"

namespace dsv4 {

/// Parameters of one compressor. `c` = 2 in overlap mode (ratio 4), else 1.
struct CompressorWeights {
  int ratio = 0;              ///< tokens per entry r (> 0)
  std::int64_t head_dim = 0;  ///< entry width D (head_dim, or index_head_dim for the indexer)
  std::int64_t rope_dim = 0;  ///< rotated tail of an entry
  bool rotate = false;        ///< indexer mode: Hadamard + FP4 instead of FP8 on the nope dims
  /// [c·D, dim] each, float32 products as the reference computes them, the weights in their
  /// stored format (io::load_float_product; llama.cpp's dots for a GGUF read that way)
  AnyLinear wkv;
  AnyLinear wgate;
  std::vector<float> ape;  ///< [r, c·D] additive score bias by position inside a block
  RmsNorm norm;            ///< [D]

  bool overlap() const noexcept { return ratio == 4; }
  std::size_t coff() const noexcept { return overlap() ? 2 : 1; }
  std::size_t width() const noexcept { return coff() * static_cast<std::size_t>(head_dim); }
  std::size_t dim() const noexcept { return wkv.in_features(); }
};

/// The running state of one compressor for one sequence: the reference's kv_state and
/// score_state, [c·r, c·D] float32 each, one row per position. Overlap mode: position p is in
/// row (block(p) mod 2)·r + p mod r, so the rows of the current block and of the previous one
/// alternate between the two halves (the reference keeps the previous block in rows 0..r-1 and
/// copies the current one there when it completes; the values pooled are the same); otherwise
/// position p is in row p mod r.
class CompressorState {
 public:
  CompressorState() = default;
  /// The buffers live in `memory` (host memory when null).
  CompressorState(int ratio, std::int64_t head_dim, DeviceMemory* memory = nullptr)
      : ratio_(ratio),
        rows_((ratio == 4 ? 2u : 1u) * static_cast<std::size_t>(ratio)),
        width_((ratio == 4 ? 2u : 1u) * static_cast<std::size_t>(head_dim)),
        kv_(rows_ * width_, 0.0f, memory),
        score_(rows_ * width_, -std::numeric_limits<float>::infinity(), memory) {}

  /// Start of a new sequence: kv 0, scores −∞ (so an unfilled previous block weighs nothing).
  void reset() {
    kv_.fill(0.0f);
    score_.fill(-std::numeric_limits<float>::infinity());
  }

  int ratio() const noexcept { return ratio_; }
  std::size_t rows() const noexcept { return rows_; }
  std::size_t width() const noexcept { return width_; }
  float* kv_row(std::size_t r) noexcept { return kv_.data() + r * width_; }
  float* score_row(std::size_t r) noexcept { return score_.data() + r * width_; }
  const float* kv_row(std::size_t r) const noexcept { return kv_.data() + r * width_; }
  const float* score_row(std::size_t r) const noexcept { return score_.data() + r * width_; }

 private:
  int ratio_ = 0;
  std::size_t rows_ = 0;
  std::size_t width_ = 0;
  StateBuffer kv_;     // [rows, width]
  StateBuffer score_;  // [rows, width]
};

/// Entries a call produced: entry ids [first, first + count).
struct CompressorEmitted {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

/// Rounds, normalises, rotates and quantisation-simulates one pooled entry in place
/// (spec §5.4). y: [D]; `pos` is the position of the block's first token.
template <NumericsPolicy N, Backend B>
void compressor_postprocess(const B& b, const CompressorWeights& w, const Rope& rope,
                            std::span<float> y, std::int64_t pos) {
  const auto d = static_cast<std::size_t>(w.head_dim);
  for (float& v : y) v = N::round(v);
  b.template rms_norm<N>(y, w.norm.weight, w.norm.eps, y);
  b.template rope<N>(rope, y.data(), 1, d, pos, RopeDirection::forward);
  if (w.rotate) {
    ScratchBuffer<float> work(d);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    ops::hadamard(y.data(), y.data(), d, scale, work.data());
    for (float& v : y) v = N::round(v);
    if constexpr (N::simulate_quant) ops::fp4_act_quant_inplace(y.data(), d);
  } else {
    if constexpr (N::simulate_quant)
      ops::act_quant_inplace(y.data(), d - static_cast<std::size_t>(w.rope_dim));
  }
}

/// compressor_forward (below) as host code around backend b's ops (what a host backend runs).
template <NumericsPolicy N, Backend B>
CompressorEmitted compressor_forward_on_host(const B& b, const CompressorWeights& w,
                                             const Rope& rope, ConstView2<float> x,
                                             std::int64_t start_pos, CompressorState& st,
                                             View2<float> entries) {
  using Fp32N = Numerics<Fp32Act, N::simulate_quant>;  // the compressor's projections are float32
  const std::size_t t_count = x.rows;
  const std::size_t width = w.width();
  const auto d = static_cast<std::size_t>(w.head_dim);
  const auto r = static_cast<std::size_t>(w.ratio);
  DSV4_CHECK(st.ratio() == w.ratio && st.width() == width && entries.cols == d, ShapeError,
             "compressor: state for ratio {} width {} and entries of width {} do not fit a "
             "ratio-{} compressor of head_dim {}",
             st.ratio(), st.width(), entries.cols, w.ratio, w.head_dim);
  if (start_pos == 0) st.reset();

  auto kv = b.template alloc<float>(t_count * width);     // [T, c·D]
  auto score = b.template alloc<float>(t_count * width);  // [T, c·D]
  backend_linear<Fp32N>(b, w.wkv, x, View2<float>(kv.data(), t_count, width));
  backend_linear<Fp32N>(b, w.wgate, x, View2<float>(score.data(), t_count, width));

  CompressorEmitted emitted{-1, 0};
  ScratchBuffer<float> y(d);
  ScratchBuffer<const float*> mkv(2 * r);
  ScratchBuffer<const float*> msc(2 * r);
  for (std::size_t t = 0; t < t_count; ++t) {
    const std::int64_t p = start_pos + static_cast<std::int64_t>(t);
    const auto i = static_cast<std::size_t>(p % w.ratio);
    const std::size_t cur = w.overlap() ? static_cast<std::size_t>((p / w.ratio) % 2) * r : 0;
    const std::size_t row = cur + i;
    const float* ape = w.ape.data() + i * width;
    for (std::size_t f = 0; f < width; ++f) {
      st.kv_row(row)[f] = kv[t * width + f];
      st.score_row(row)[f] = score[t * width + f] + ape[f];
    }
    if ((p + 1) % w.ratio != 0) continue;

    std::size_t m = 0;
    if (w.overlap()) {
      const std::size_t prev = r - cur;
      for (std::size_t k = 0; k < r; ++k, ++m) {  // previous block: first D channels
        mkv[m] = st.kv_row(prev + k);
        msc[m] = st.score_row(prev + k);
      }
      for (std::size_t k = 0; k < r; ++k, ++m) {  // current block: second D channels
        mkv[m] = st.kv_row(cur + k) + d;
        msc[m] = st.score_row(cur + k) + d;
      }
    } else {
      for (std::size_t k = 0; k < r; ++k, ++m) {
        mkv[m] = st.kv_row(k);
        msc[m] = st.score_row(k);
      }
    }
    b.softmax_pool(mkv.data(), msc.data(), m, d, y.data());
    const std::int64_t j = p / w.ratio;
    compressor_postprocess<N>(b, w, rope, y, p + 1 - w.ratio);
    DSV4_CHECK(static_cast<std::size_t>(j) < entries.rows, InputError,
               "compressor: entry {} (position {}) exceeds the cache of {} entries", j, p,
               entries.rows);
    std::copy(y.begin(), y.end(), entries.row(static_cast<std::size_t>(j)));
    if (emitted.count == 0) emitted.first = j;
    ++emitted.count;
  }
  if (emitted.count == 0) emitted.first = 0;
  return emitted;
}

/// Feeds T tokens at positions start_pos … start_pos+T-1 through the compressor. Every block the
/// call completes (position p with (p+1) mod r == 0) is pooled, post-processed and written to row
/// p / r of `entries` ([capacity, D]). At start_pos 0 the state is reset first.
/// x: [T, dim], the attention input. Positions must continue the state's sequence (the caller
/// checks). Throws ShapeError on mismatched sizes and InputError when an entry falls outside
/// `entries`. Runs on backend b as its `compressor` op when it has one.
template <NumericsPolicy N, Backend B>
CompressorEmitted compressor_forward(const B& b, const CompressorWeights& w, const Rope& rope,
                                     ConstView2<float> x, std::int64_t start_pos,
                                     CompressorState& st, View2<float> entries) {
  if constexpr (requires { b.template compressor<N>(w, rope, x, start_pos, st, entries); }) {
    return b.template compressor<N>(w, rope, x, start_pos, st, entries);
  } else {
    return compressor_forward_on_host<N>(b, w, rope, x, start_pos, st, entries);
  }
}

/// As above on the reference backend.
template <NumericsPolicy N>
CompressorEmitted compressor_forward(const CompressorWeights& w, const Rope& rope,
                                     ConstView2<float> x, std::int64_t start_pos,
                                     CompressorState& st, View2<float> entries) {
  return compressor_forward<N>(ReferenceBackend{}, w, rope, x, start_pos, st, entries);
}

}  // namespace dsv4
