// The cost sheet: parameters, weight bytes, KV-cache bytes and attention FLOPs of a V4 model,
// computed from its configuration alone (no weights), and the same for DeepSeek-V3.2.
//
// Spec: spec/architecture.md §1.5 (parameter budget), §4.3 (per-layer state), §3.5/§6.7 (what a
// decoded token attends to); spec/formats.md §9.2 (release storage). docs/cost-sheet.md explains
// every convention used here and how the numbers compare with DeepSeek's published ones.
//
// Conventions (the ones DeepSeek's published totals follow, see docs/cost-sheet.md):
//   * "total" parameters exclude the MTP blocks (reported separately), as V3's "671B" did;
//   * "active" parameters per token exclude the MTP blocks and the embedding table (a row
//     lookup, no arithmetic), and count k_e of the E routed experts of each block;
//   * a FLOP is one multiply or one add (a multiply-add is 2 FLOPs).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dsv4/core/config.hpp"
#include "dsv4/formats/gguf_recipe.hpp"
#include "dsv4/io/checkpoint_layout.hpp"

namespace dsv4::plan {

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

struct ParamSheet {
  std::array<std::int64_t, kNumComponents> total{};   ///< learned values per component
  std::array<std::int64_t, kNumComponents> active{};  ///< used by one token, per component

  std::int64_t of(Component c) const { return total[static_cast<std::size_t>(c)]; }
  std::int64_t active_of(Component c) const { return active[static_cast<std::size_t>(c)]; }
  /// Total without the MTP blocks (the published convention).
  std::int64_t total_params() const { return sum(total) - of(Component::mtp); }
  std::int64_t total_with_mtp() const { return sum(total); }
  /// Active per token without MTP and embedding (the published convention).
  std::int64_t active_params() const {
    return sum(active) - active_of(Component::mtp) - active_of(Component::embedding);
  }

 private:
  static std::int64_t sum(const std::array<std::int64_t, kNumComponents>& a) {
    std::int64_t s = 0;
    for (std::int64_t v : a) s += v;
    return s;
  }
};

/// Counts parameters per component from the official tensor list (scales and the hash table are
/// not parameters). Active: routed experts count k_e/E of their block; the embedding counts one
/// row (reported, but left out of active_params()); everything else counts fully.
inline ParamSheet count_parameters(const ModelConfig& c) {
  ParamSheet s;
  for (const ReleaseTensor& t : release_tensors(c)) {
    const auto i = static_cast<std::size_t>(t.component);
    s.total[i] += t.params;
    if (t.routed_expert) {
      // one expert's tensor: an expert is active for k_e of E tokens on average; count exactly
      // k_e experts' worth per block by scaling the per-expert share
      continue;
    }
    s.active[i] += t.component == Component::embedding ? t.params / c.vocab_size : t.params;
  }
  // routed experts: k_e experts of 3·I·d per block (MTP blocks' experts go to the MTP row)
  const std::int64_t expert = 3 * c.moe_inter_dim * c.dim;
  s.active[static_cast<std::size_t>(Component::routed_experts)] =
      static_cast<std::int64_t>(c.n_layers) * c.n_activated_experts * expert;
  s.active[static_cast<std::size_t>(Component::mtp)] +=
      static_cast<std::int64_t>(c.n_mtp_layers) * c.n_activated_experts * expert;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Weight bytes
// ---------------------------------------------------------------------------------------------

/// Bytes of the official release as stored (FP8 + 128x128 e8m0 scales for dense linears, FP4 +
/// per-32 e8m0 scales for routed experts, BF16/F32/I64 elsewhere): formats.md §9.2.
inline std::int64_t release_bytes(const ModelConfig& c) {
  std::int64_t b = 0;
  for (const ReleaseTensor& t : release_tensors(c)) b += t.bytes;
  return b;
}

/// Bytes of a BF16 copy of the release: FP8/FP4 weights widened to BF16 (scales dropped), BF16,
/// F32 and I64 tensors as released (what a BF16 conversion of the official checkpoint holds).
inline std::int64_t bf16_bytes(const ModelConfig& c) {
  std::int64_t b = 0;
  for (const ReleaseTensor& t : release_tensors(c)) {
    switch (t.dtype) {
      case ReleaseDtype::fp8_e4m3:
      case ReleaseDtype::fp4_e2m1:
        b += 2 * t.params;
        break;
      case ReleaseDtype::e8m0:
        break;
      default:
        b += t.bytes;
    }
  }
  return b;
}

/// Bytes of a llama.cpp GGUF of the model quantized with `recipe` (llama-quantize's per-tensor
/// choice for `deepseek4`, formats/gguf_recipe.hpp), MTP blocks included; the tensors a recipe
/// keeps at a higher precision (F32 norms, hc and compressor tensors, Q6_K/Q8_0 promotions, row
/// lengths that force a fallback) are in `by_type`.
struct GgufSheet {
  struct TypeShare {
    FormatId type{};
    int tensors = 0;
    std::int64_t params = 0;
    std::int64_t bytes = 0;
    std::vector<Component> components;  ///< components with at least one tensor of this type
  };
  std::int64_t bytes = 0;
  std::int64_t params = 0;
  std::vector<TypeShare> by_type;  ///< ordered by ggml type id
  double bits_per_weight() const {
    return params > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
  }
};

inline GgufSheet gguf_bytes(const ModelConfig& c, gguf::FileType recipe, bool pure = false) {
  const std::vector<GgufTensor> tensors = gguf_tensors(c, true);
  std::vector<gguf::TensorInfo> infos;
  infos.reserve(tensors.size());
  for (const GgufTensor& t : tensors)
    infos.push_back({t.name, t.ne, t.integer ? gguf::ggml_id::i32 : FormatId::f32});
  gguf::ModelFacts facts;
  facts.n_layers = c.n_layers + c.n_mtp_layers;
  facts.n_expert = static_cast<int>(c.n_routed_experts);
  facts.n_head = static_cast<int>(c.n_heads);
  facts.n_head_kv = 1;
  const std::vector<FormatId> types = gguf::plan_types(recipe, facts, infos, pure);
  GgufSheet s;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::int64_t b = gguf::tensor_bytes(types[i], tensors[i].ne);
    std::int64_t n = 1;
    for (std::int64_t d : tensors[i].ne) n *= d;
    if (tensors[i].integer) n = 0;  // the hash table holds ids, not weights
    s.bytes += b;
    s.params += n;
    auto it = std::find_if(s.by_type.begin(), s.by_type.end(),
                           [&](const GgufSheet::TypeShare& x) { return x.type == types[i]; });
    if (it == s.by_type.end()) {
      s.by_type.push_back({types[i], 0, 0, 0, {}});
      it = s.by_type.end() - 1;
    }
    it->tensors += 1;
    it->params += n;
    it->bytes += b;
    if (std::find(it->components.begin(), it->components.end(), tensors[i].component) ==
        it->components.end())
      it->components.push_back(tensors[i].component);
  }
  std::sort(s.by_type.begin(), s.by_type.end(), [](const auto& a, const auto& b) {
    return static_cast<std::uint32_t>(a.type) < static_cast<std::uint32_t>(b.type);
  });
  return s;
}

// ---------------------------------------------------------------------------------------------
// KV cache and per-sequence state
// ---------------------------------------------------------------------------------------------

/// How cache entries are stored.
enum class KvStorage {
  reference,  ///< as model.py holds them: bf16 entries, bf16 indexer keys
  fp8,        ///< nope dims FP8 e4m3 + one e8m0 scale per 64, rope dims bf16; indexer keys FP4
              ///< e2m1 + one e8m0 scale per 32 (the grids the reference already rounds them to)
};

struct KvSheet {
  std::int64_t window = 0;            ///< sliding-window rings
  std::int64_t compressed = 0;        ///< compressed entries of CSA/HCA layers
  std::int64_t indexer = 0;           ///< indexer key caches of CSA layers
  std::int64_t compressor_state = 0;  ///< running kv/score state of the compressors (fp32)
  std::int64_t total() const { return window + compressed + indexer + compressor_state; }
};

/// Bytes of one attention cache entry (a head_dim vector).
inline std::int64_t kv_entry_bytes(const ModelConfig& c, KvStorage s) {
  if (s == KvStorage::reference) return 2 * c.head_dim;
  const std::int64_t nope = c.nope_head_dim();
  return nope + nope / 64 + 2 * c.rope_head_dim;
}

/// Bytes of one indexer key.
inline std::int64_t indexer_key_bytes(const ModelConfig& c, KvStorage s) {
  return s == KvStorage::reference ? 2 * c.index_head_dim
                                   : c.index_head_dim / 2 + c.index_head_dim / 32;
}

/// Per-sequence state after `context` tokens (spec §4.3), trunk blocks only unless `with_mtp`.
inline KvSheet kv_cache(const ModelConfig& c, std::int64_t context, KvStorage s,
                        bool with_mtp = false) {
  KvSheet k;
  const std::int64_t entry = kv_entry_bytes(c, s);
  const int n = with_mtp ? c.n_blocks() : c.n_layers;
  for (int L = 0; L < n; ++L) {
    const int r = c.compress_ratio(L);
    k.window += std::min(context, c.window_size) * entry;
    if (r == 0) continue;
    const std::int64_t cc = r == 4 ? 2 : 1;
    k.compressed += (context / r) * entry;
    k.compressor_state += 2 * (cc * r) * (cc * c.head_dim) * 4;  // kv_state + score_state, fp32
    if (r == 4) {
      k.indexer += (context / 4) * indexer_key_bytes(c, s);
      k.compressor_state += 2 * 8 * (2 * c.index_head_dim) * 4;
    }
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// FLOPs per decoded token
// ---------------------------------------------------------------------------------------------

struct FlopSheet {
  double attention_core = 0;  ///< q·k and p·v over the attended entries, all heads
  double indexer = 0;         ///< lightning-indexer scores over the visible entries
  double projections = 0;     ///< 2 · active parameters (every matmul of the token)
  double attention() const { return attention_core + indexer; }
  double total() const { return attention() + projections; }
};

/// FLOPs of decoding one token that sees `context` tokens (itself included), trunk only.
/// Attention core per block: 4·H·Dh per attended entry (q·k and p·v, K = V); the entries are the
/// window (min(context, W)), plus every visible compressed entry (HCA) or the indexer's top-k of
/// them (CSA). Indexer: 2·Hi·Di per visible entry for the scores, plus 3·Hi for relu·w and the
/// head sum. Softmax, norms and RoPE are negligible and left out.
inline FlopSheet decode_flops(const ModelConfig& c, std::int64_t context) {
  FlopSheet f;
  for (int L = 0; L < c.n_layers; ++L) {
    const int r = c.compress_ratio(L);
    double entries = static_cast<double>(std::min(context, c.window_size));
    if (r == 4) {
      const std::int64_t visible = context / 4;
      entries += static_cast<double>(std::min(c.index_topk, visible));
      f.indexer += static_cast<double>(visible) *
                   (2.0 * static_cast<double>(c.index_n_heads * c.index_head_dim) +
                    3.0 * static_cast<double>(c.index_n_heads));
    } else if (r > 0) {
      entries += static_cast<double>(context / r);
    }
    f.attention_core += entries * 4.0 * static_cast<double>(c.n_heads * c.head_dim);
  }
  f.projections = 2.0 * static_cast<double>(count_parameters(c).active_params());
  return f;
}

}  // namespace dsv4::plan
