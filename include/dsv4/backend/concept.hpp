// The Backend concept: what the model needs from whatever executes its hot operations.
//
// A backend supplies, as member functions of one object that the model holds:
//  * linear algebra: y = x·Wᵀ for every weight type L it supports (`SupportsLinear<B, L>`, through
//    the Linear types of formats/linear.hpp: DenseLinear<float>, DenseLinear<bf16> always,
//    quantized Linear<Format, Semantics> / AnyLinear as the backend chooses);
//  * the attention pieces: sparse attention with sinks (spec §3.6), the compressor's softmax
//    pooling (§5.3), the indexer's scores (§6.4) and top-k (§6.5, also the MoE gate, §7.1);
//  * elementwise ops: RMSNorm with a weight (§2.1) and the weightless per-head q normalisation in
//    the activation precision (§3.2), partial RoPE (§3.4), clamped SwiGLU (§7.2);
//  * memory: `alloc<T>(n)`, a zero-filled buffer for activations.
// Softmax appears in its three fused forms (inside sparse attention, the compressor pooling and
// the Softmax gate function), not as a free-standing op: the model never needs one on its own.
// Every op that rounds takes the numerics policy N as its first template argument; the numerics
// stay a separate compile-time choice of the model (docs/design.md, "Backends").
//
// A backend may also take over the steps that host backends run as host code around these ops
// (copies between buffers, the embedding lookup, the residual mixing, the compressor, the
// indexer, the MoE; see the `backend_*` helpers below and the layers' `*_on_host` functions):
// a backend whose memory the host cannot touch provides them all, together with
// `state_memory()` (core/state_memory.hpp) for the sequence's caches. The host backends provide
// none of them and run the layers' own code.
//
// The reference backend (backend/reference.hpp) is the scalar, single-threaded oracle; a new
// host backend can derive from it and replace one member at a time, each tested against it.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ranges>
#include <span>
#include <string_view>

#include "dsv4/core/numeric.hpp"
#include "dsv4/core/numerics.hpp"
#include "dsv4/core/state_memory.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/linear.hpp"
#include "dsv4/ops/rope.hpp"

namespace dsv4 {

/// One sparse-attention call (spec §3.6): for every query t and head h, an online softmax over
/// the KV rows idx[t][·] (-1 = unused slot) scaled by `scale`, with the head's sink logit in the
/// denominator, times the rows (key = value).
struct SparseAttentionArgs {
  const float* q = nullptr;           ///< [T, H, D]
  const float* kv = nullptr;          ///< [kv_rows, D]
  const float* sink = nullptr;        ///< [H]
  const std::int32_t* idx = nullptr;  ///< [T, width], -1 or in [0, kv_rows)
  std::size_t tokens = 0;             ///< T
  std::size_t heads = 0;              ///< H
  std::size_t head_dim = 0;           ///< D
  std::size_t kv_rows = 0;
  std::size_t width = 0;
  float scale = 1.0f;    ///< the softmax scale, D^-1/2 in V4
  float* out = nullptr;  ///< [T, H, D]
};

/// Backend B runs y [rows, out] = x [rows, in] · Wᵀ for weight type L, rounding each output with
/// the numerics policy (`b.linear<N>(w, x, y)`).
template <class B, class L>
concept SupportsLinear = LinearOp<L> &&
    requires(const B& b, const L& w, ConstView2<float> x, View2<float> y) {
  b.template linear<ReferenceNumerics>(w, x, y);
  b.template linear<PlainFp32Numerics>(w, x, y);
};

/// Everything the model calls on a backend; see the file comment. Shapes are in the comments of
/// the reference backend's members, which define the semantics bit for bit.
template <class B>
concept Backend = requires {
  { B::name } -> std::convertible_to<std::string_view>;
  typename B::template buffer<float>;
  typename B::template buffer<std::int32_t>;
}
&&std::ranges::contiguous_range<typename B::template buffer<float>>&&
    SupportsLinear<B, DenseLinear<float>>&& SupportsLinear<B, DenseLinear<bf16>>&& requires(
        const B& b, std::size_t n, std::span<const float> cx, std::span<float> x,
        ConstView2<float> cv, View2<float> v, float f, const Rope& rope, float* p,
        const SparseAttentionArgs& sa, const float* const* members,
        std::span<const std::size_t> visible, std::span<std::int32_t> picks) {
  // memory
  { b.template alloc<float>(n) } -> std::same_as<typename B::template buffer<float>>;
  { b.template alloc<std::int32_t>(n) } -> std::same_as<typename B::template buffer<std::int32_t>>;
  // elementwise
  b.template rms_norm<ReferenceNumerics>(cx, cx, f, x);
  b.template head_rms_norm<ReferenceNumerics>(x, n, f);
  b.template rope<ReferenceNumerics>(rope, p, n, n, std::int64_t{0}, RopeDirection::forward);
  b.template swiglu<ReferenceNumerics>(v, cv, cx, f);
  b.template mul_rows<PlainFp32Numerics>(v, cx);
  // attention pieces
  b.template sparse_attention<ReferenceNumerics>(sa);
  b.softmax_pool(members, members, n, n, p);
  b.template index_scores<ReferenceNumerics>(cv, cv, cv, visible, v);
  b.top_k(cx, picks);
};

// ---- the steps a backend may take over
// -----------------------------------------------------------

/// dst = src, both in backend b's memory (a device-to-device copy). T is named by the caller:
/// `backend_copy<float>(b, src, dst)`.
template <class T, class B>
void backend_copy(const B& b, std::span<const T> src, std::span<T> dst) {
  if constexpr (requires { b.copy(src, dst); }) {
    b.copy(src, dst);
  } else {
    std::copy(src.begin(), src.end(), dst.begin());
  }
}

/// dst (backend b's memory) = src (host memory).
template <class T, class B>
void backend_upload(const B& b, std::span<const T> src, std::span<T> dst) {
  if constexpr (requires { b.upload(src, dst); }) {
    b.upload(src, dst);
  } else {
    std::copy(src.begin(), src.end(), dst.begin());
  }
}

/// dst (host memory) = src (backend b's memory).
template <class T, class B>
void backend_download(const B& b, std::span<const T> src, std::span<T> dst) {
  if constexpr (requires { b.download(src, dst); }) {
    b.download(src, dst);
  } else {
    std::copy(src.begin(), src.end(), dst.begin());
  }
}

/// y = x·Wᵀ on backend b when it takes L (SupportsLinear), by the weight's own forward otherwise
/// (an AnyLinear on a backend that lists only some formats).
template <NumericsPolicy N, class B, LinearOp L>
void backend_linear(const B& b, const L& w, ConstView2<float> x, View2<float> y) {
  if constexpr (SupportsLinear<B, L>) {
    b.template linear<N>(w, x, y);
  } else {
    w.template forward<N>(x, y);
  }
}

/// The memory a sequence's caches live in on backend b (null: host memory).
template <class B>
DeviceMemory* backend_state_memory(const B& b) {
  if constexpr (requires {
                  { b.state_memory() } -> std::convertible_to<DeviceMemory*>;
                }) {
    return b.state_memory();
  } else {
    return nullptr;
  }
}

}  // namespace dsv4
