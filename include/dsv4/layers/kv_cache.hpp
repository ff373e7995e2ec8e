// Per-sequence attention state, owned by the caller: the sliding-window ring, the compressed
// cache, the compressor's running state and the indexer's key cache and compressor state.
// Spec: spec/architecture.md §4 (4.2 ring buffer, 4.3 per-layer state); reference buffers
// `Attention.kv_cache`, `Compressor.kv_state` / `score_state`, `Indexer.kv_cache`.
//
// Layout as in the reference: one [W + max_seq_len / r, Dh] float buffer whose first W rows are
// the ring (token at position p in slot p mod W) and whose rows W + j hold compressed entry j, so a
// decode step attends over the buffer in place. Values are floats; in the bf16 numerics they are
// bf16 values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/state_memory.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/layers/compressor.hpp"
#include "dsv4/layers/indexer.hpp"

namespace dsv4 {

/// The state of one attention layer for one sequence.
class AttentionState {
 public:
  AttentionState() = default;

  /// State for a layer of compress ratio `ratio` (0: sliding window only) under `cfg`, its
  /// buffers in `memory` (host memory when null; a backend's own: Backend::state_memory()).
  AttentionState(const ModelConfig& cfg, int ratio, DeviceMemory* memory = nullptr)
      : ratio_(ratio),
        window_(static_cast<std::size_t>(cfg.window_size)),
        head_dim_(static_cast<std::size_t>(cfg.head_dim)),
        max_seq_len_(cfg.max_seq_len) {
    DSV4_CHECK(ratio >= 0 && cfg.window_size > 0 && cfg.head_dim > 0 && cfg.max_seq_len > 0,
               ConfigError,
               "attention state: ratio {}, window_size {}, head_dim {}, max_seq_len {} are not "
               "valid",
               ratio, cfg.window_size, cfg.head_dim, cfg.max_seq_len);
    capacity_ = ratio > 0 ? static_cast<std::size_t>(cfg.max_seq_len / ratio) : 0;
    cache_ = StateBuffer((window_ + capacity_) * head_dim_, 0.0f, memory);
    if (ratio > 0) compressor_ = CompressorState(ratio, cfg.head_dim, memory);
    if (ratio == 4) indexer_ = IndexerState(cfg.max_seq_len, cfg.index_head_dim, memory);
  }

  int ratio() const noexcept { return ratio_; }
  std::size_t window() const noexcept { return window_; }
  std::size_t head_dim() const noexcept { return head_dim_; }
  std::int64_t max_seq_len() const noexcept { return max_seq_len_; }
  /// Compressed entries the cache can hold (max_seq_len / ratio; 0 without a compressor).
  std::size_t capacity() const noexcept { return capacity_; }
  /// Tokens of the current sequence processed so far (the next call's start_pos).
  std::int64_t next_pos() const noexcept { return next_pos_; }
  /// Compressed entries produced so far.
  std::size_t entries() const noexcept {
    return ratio_ > 0 ? static_cast<std::size_t>(next_pos_ / ratio_) : 0;
  }

  /// The whole buffer, [window + capacity, Dh]: ring rows first, then compressed entries.
  View2<float> cache() noexcept { return {cache_.data(), window_ + capacity_, head_dim_}; }
  ConstView2<float> cache() const noexcept {
    return {cache_.data(), window_ + capacity_, head_dim_};
  }
  /// Ring slot s (the token at a position p ≡ s mod W), [Dh].
  std::span<float> window_row(std::size_t s) noexcept {
    return {cache_.data() + s * head_dim_, head_dim_};
  }
  std::span<const float> window_row(std::size_t s) const noexcept {
    return {cache_.data() + s * head_dim_, head_dim_};
  }
  /// The compressed region, [capacity, Dh].
  View2<float> compressed() noexcept {
    return {cache_.data() + window_ * head_dim_, capacity_, head_dim_};
  }
  /// Compressed entry j, [Dh].
  std::span<const float> compressed_entry(std::size_t j) const noexcept {
    return {cache_.data() + (window_ + j) * head_dim_, head_dim_};
  }

  CompressorState& compressor() noexcept { return compressor_; }
  bool has_indexer() const noexcept { return indexer_.has_value(); }
  IndexerState& indexer() { return indexer_.value(); }
  const IndexerState& indexer() const { return indexer_.value(); }

  /// Forgets the sequence: the next call must start at position 0.
  void reset() {
    next_pos_ = 0;
    cache_.fill(0.0f);
    compressor_.reset();
    if (indexer_) indexer_->reset();
  }

  /// Checks that a call of `count` tokens at `start_pos` continues this state's sequence (or
  /// starts a new one at 0) and fits max_seq_len; throws InputError otherwise.
  void check_call(std::int64_t start_pos, std::int64_t count) const {
    DSV4_CHECK(count > 0, InputError, "attention: a call needs at least one token, got {}", count);
    DSV4_CHECK(start_pos == 0 || start_pos == next_pos_, InputError,
               "attention: start_pos {} does not continue the sequence held by this state "
               "(expected 0 for a new sequence or {} for the next token)",
               start_pos, next_pos_);
    DSV4_CHECK(start_pos + count <= max_seq_len_, InputError,
               "attention: positions {}..{} exceed max_seq_len = {} (the caches and the RoPE "
               "table hold max_seq_len positions)",
               start_pos, start_pos + count - 1, max_seq_len_);
  }

  /// Records that the tokens up to `end_pos` (exclusive) were processed.
  void advance_to(std::int64_t end_pos) noexcept { next_pos_ = end_pos; }

  /// Forgets the last position processed: the next call starts at `pos` (next_pos() − 1, or
  /// next_pos(), which changes nothing). What that position wrote (its ring slot, its compressor
  /// rows, an entry or index key it completed) stays in the buffers but cannot be read: the next
  /// call at `pos` writes the same slots before any query reads them, and the ring slot it took
  /// held a position outside every later window. Forgetting two positions would lose a position
  /// still inside the window, so it is refused (InputError).
  void rewind(std::int64_t pos) {
    DSV4_CHECK(pos >= 0 && pos <= next_pos_ && pos + 1 >= next_pos_, InputError,
               "attention: cannot rewind the state at position {} to {}; only the last position "
               "can be forgotten",
               next_pos_, pos);
    next_pos_ = pos;
  }

 private:
  int ratio_ = 0;
  std::size_t window_ = 0;
  std::size_t head_dim_ = 0;
  std::int64_t max_seq_len_ = 0;
  std::size_t capacity_ = 0;
  std::int64_t next_pos_ = 0;
  StateBuffer cache_;  // [window + capacity, Dh]
  CompressorState compressor_;
  std::optional<IndexerState> indexer_;
};

}  // namespace dsv4
