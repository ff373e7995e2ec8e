// dsv4::cpu: the SIMD CPU backend (Highway kernels with run-time dispatch, oneTBB threads).
//
// Kernels take plain pointers and sizes (STYLE.md §1.1: nothing SIMD crosses the dispatch).
// Every kernel here is tested against the scalar reference on every compiled SIMD target
// (tests/cpu/).
//
// `cpu::Backend` runs every op of the Backend concept (backend/concept.hpp) on a oneTBB arena of
// its own. Work is split into fixed tiles (output columns of a linear layer, rows or tokens of
// the other ops) and every value is computed by one thread with a summation order that does not
// depend on the split, so results are identical for any thread count. Against the reference
// backend:
//  * dense GEMMs (DenseLinear<float>, DenseLinear<bf16>, Linear<F32/F16/BF16>) use lane-parallel
//    fp32 accumulation (Highway), so they differ from the reference's sequential sums by rounding,
//    except Linear<F32/F16, PartnerDot> with K a multiple of 16: llama.cpp's float GEMM order
//    (kernels::gemm_ggml), bit for bit F::dot_x86 as the reference computes it;
//  * quantized Linear<F, PartnerDot> quantizes the activation to F's partner exactly as the
//    reference does; Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, IQ4_XS and the k-quants then
//    run integer SIMD dots (kernels::b32_row / q451_row / kq_row: exact integer block sums, the
//    blocks accumulated in fp32 lanes, so they differ from the reference's block-order sums by
//    rounding); from kernels::kTileRows activation rows on, on CPUs with AVX-512 VNNI, a tile of
//    16 weight rows is repacked for `vpdpbusd` (kernels::b32_tile / kq_tile: the 32-value
//    formats then bit for bit the reference's dot); weights marked GgmlRepack run the repacked
//    kernels' orders (kernels::repacked_row, bit for bit F::dot_repacked); FP8_B128 and FP4_G32
//    run vectorised exact block
//    sums (kernels::native_row), bit for bit the reference's dots; the other formats the
//    reference's own block dot; threaded over output columns;
//  * Linear<F, DequantDot> runs the dense GEMM on F32 / F16 / BF16 weights as stored (widened in
//    registers), and on a tile of dequantised weight rows for the other formats (Q8_0, Q4_0, Q4_1,
//    Q4_K, Q5_K and Q6_K dequantised in lanes, kernels::dequantize_blocks, the formats' own values
//    bit for bit);
//  * sparse attention (the reference's online softmax, its dots and P·V vectorised), rms_norm and
//    the indexer scores (the q·key dots one GEMM per 256 keys) are threaded and differ by
//    rounding; SwiGLU is threaded
//    with the reference's arithmetic (bit-identical); RoPE is vectorised bit for bit; the
//    compressor pooling is vectorised over the channels (Highway's exp: differs by rounding); the
//    per-head q norm is the reference's, threaded; top-k selects through buckets of the values'
//    bits on long rows (the reference's picks, one thread a row).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <dsv4/backend/concept.hpp>
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/numeric.hpp>
#include <dsv4/core/numerics.hpp>
#include <dsv4/core/scratch.hpp>
#include <dsv4/core/tensor.hpp>
#include <dsv4/formats/linear.hpp>
#include <dsv4/ops/rope.hpp>
#include <limits>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dsv4/cpu/kernels.hpp"
#include "dsv4/cpu/threads.hpp"

namespace dsv4::cpu {

/// Name of the SIMD target the dispatcher picks on this machine (e.g. "AVX2").
const char* simd_target_name();

/// out[i] = float(in[i]) for i < n.
void bf16_to_f32(const bf16* in, float* out, std::size_t n);

/// out[i] = bf16(in[i]) (round to nearest even, NaN kept) for i < n.
void f32_to_bf16(const float* in, bf16* out, std::size_t n);

/// Σ a[i]·b[i] in fp32 (lane-parallel partial sums, so the summation order is not sequential).
float dot(const float* a, const float* b, std::size_t n);

namespace detail {
template <class L>
struct is_any_linear : std::false_type {};
template <class List>
struct is_any_linear<AnyLinearOf<List>> : std::true_type {};

template <class L>
concept FormatLinear = requires {
  typename L::format;
  typename L::semantics;
}
&&std::same_as<L, Linear<typename L::format, typename L::semantics>>;
}  // namespace detail

/// The block formats kernels::dequantize_blocks reads, and the kind that names each.
template <class F>
inline constexpr bool has_dequant_kernel =
    std::same_as<F, Q8_0> || std::same_as<F, Q4_0> || std::same_as<F, Q4_1> ||
    std::same_as<F, Q5_0> || std::same_as<F, Q5_1> || std::same_as<F, Q2_K> ||
    std::same_as<F, Q3_K> || std::same_as<F, Q4_K> || std::same_as<F, Q5_K> ||
    std::same_as<F, Q6_K> || std::same_as<F, IQ4_NL> || std::same_as<F, IQ4_XS> ||
    std::same_as<F, MXFP4>;

template <class F>
requires has_dequant_kernel<F>
constexpr kernels::DequantKind dequant_kind_of() {
  using K = kernels::DequantKind;
  if constexpr (std::same_as<F, Q4_0>) return K::q4_0;
  if constexpr (std::same_as<F, Q4_1>) return K::q4_1;
  if constexpr (std::same_as<F, Q5_0>) return K::q5_0;
  if constexpr (std::same_as<F, Q5_1>) return K::q5_1;
  if constexpr (std::same_as<F, Q2_K>) return K::q2_k;
  if constexpr (std::same_as<F, Q3_K>) return K::q3_k;
  if constexpr (std::same_as<F, Q4_K>) return K::q4_k;
  if constexpr (std::same_as<F, Q5_K>) return K::q5_k;
  if constexpr (std::same_as<F, Q6_K>) return K::q6_k;
  if constexpr (std::same_as<F, IQ4_NL>) return K::iq4_nl;
  if constexpr (std::same_as<F, IQ4_XS>) return K::iq4_xs;
  if constexpr (std::same_as<F, MXFP4>) return K::mxfp4;
  return K::q8_0;
}

/// The CPU backend: the reference backend's op set on `threads` threads with Highway kernels.
/// Copies share one thread arena (copying is cheap; a Model holds its backend by value).
class Backend : public ref::Backend {
 public:
  static constexpr std::string_view name = "cpu";

  /// A backend on `threads` threads; 0 means the machine's physical cores.
  explicit Backend(int threads = 0)
      : threads_(std::make_shared<Threads>(threads > 0 ? threads : kernels::physical_cores())),
        serial_(std::make_shared<Threads>(1)) {}

  /// The number of threads of the arena.
  int threads() const { return threads_->size(); }

  /// Runs fn(i, sub) for every i < n as independent tasks on the arena, `sub` a one-thread copy
  /// of this backend (each task's ops run on the thread that runs the task). Used where many
  /// small ops are independent (the routed experts of a MoE layer on a few tokens): one
  /// fork/join for all of them instead of one per op. Every op computes the same values on one
  /// thread as on many, so results do not change.
  template <class Fn>
  void parallel_tasks(std::size_t n, Fn&& fn) const {
    if (threads_->size() <= 1 || n <= 1) {
      for (std::size_t i = 0; i < n; ++i) fn(i, *this);
      return;
    }
    Backend sub = *this;
    sub.threads_ = serial_;
    threads_->for_each(n, [&](std::size_t i) { fn(i, std::as_const(sub)); });
  }

  // ---- linear ----

  /// y [rows, out] = x [rows, in] · Wᵀ for DenseLinear<float|bf16>, Linear<F, S> of every
  /// weight format and AnyLinear (any other LinearOp runs its own scalar forward).
  template <NumericsPolicy N, LinearOp L>
  void linear(const L& w, ConstView2<float> x, View2<float> y) const {
    if constexpr (std::same_as<L, DenseLinear<float>> || std::same_as<L, DenseLinear<bf16>>) {
      check_linear_shapes("DenseLinear", w.in_features(), w.out_features(), x, y);
      dense<N>(w.weight().data(), w.out_features(), w.in_features(), x, y);
    } else if constexpr (detail::is_any_linear<L>::value) {
      std::visit([&](const auto& l) { this->linear<N>(l, x, y); }, w.variant());
    } else if constexpr (detail::FormatLinear<L>) {
      check_linear_shapes("Linear", w.in_features(), w.out_features(), x, y);
      format_linear<N>(w, x, y);
    } else {
      w.template forward<N>(x, y);
    }
  }

  // ---- elementwise ----

  /// RMSNorm of every row (as ref::Backend::rms_norm; the sum of squares vectorised).
  template <NumericsPolicy N>
  void rms_norm(std::span<const float> x, std::span<const float> weight, float eps,
                std::span<float> y) const {
    const std::size_t d = weight.size();
    DSV4_CHECK(d > 0 && x.size() % d == 0 && y.size() == x.size(), ShapeError,
               "rms_norm of dim {}: input of {} values, output of {}", d, x.size(), y.size());
    const std::size_t rows = x.size() / d;
    for_tiles(rows, 8, rows * d * 4, [&](std::size_t r0, std::size_t r1) {
      for (std::size_t r = r0; r < r1; ++r) {
        const float* xr = x.data() + r * d;
        float* yr = y.data() + r * d;
        float inv = 0.0f;
        if constexpr (ggml_order<N>()) {
          // double statistics, as ggml (bit for bit the reference)
          inv = rms_scale<true>(xr, d, eps);
        } else {
          const float sum = cpu::dot(xr, xr, d);
          inv = 1.0f / std::sqrt(sum / static_cast<float>(d) + eps);
        }
        for (std::size_t i = 0; i < d; ++i) yr[i] = N::round(weight[i] * (xr[i] * inv));
      }
    });
  }

  /// The per-head query normalisation (as ref::Backend::head_rms_norm, bit for bit: each vector's
  /// sum in the reference's order), threaded over the vectors.
  template <NumericsPolicy N>
  void head_rms_norm(std::span<float> x, std::size_t d, float eps) const {
    DSV4_CHECK(d > 0 && x.size() % d == 0, ShapeError,
               "head_rms_norm: {} values are not whole vectors of {}", x.size(), d);
    for_tiles(x.size() / d, 16, x.size() * 4, [&](std::size_t v0, std::size_t v1) {
      ref::Backend::head_rms_norm<N>(x.subspan(v0 * d, (v1 - v0) * d), d, eps);
    });
  }

  /// The residual policy's post (residual_step): a four-stream hyper-connection's (a Mix with
  /// post and comb coefficients) under llama.cpp's order with fp32 activations vectorised over
  /// the channels and threaded over the tokens (kernels::hc_post_ggml, the same FMAs as
  /// HyperConnection<4>::post); otherwise the policy's own post.
  template <NumericsPolicy N, class R>
  void residual_post(const R& r, std::span<const float> f, std::span<const float> res,
                     const typename R::Mix& mix, std::span<float> out) const {
    if constexpr (ggml_order<N>() && std::is_same_v<typename N::act, Fp32Act> && R::streams == 4 &&
                  requires { mix.post.data(), mix.comb.data(); }) {
      const std::size_t d = r.dim();
      const std::size_t t = mix.tokens;
      DSV4_CHECK(f.size() == t * d && res.size() == t * 4 * d && out.size() == t * 4 * d,
                 ShapeError,
                 "HyperConnection<4>::post of dim {} for {} tokens: sub-layer output of {} values, "
                 "residual of {}, output of {}",
                 d, t, f.size(), res.size(), out.size());
      for_tiles(t, 4, t * d * 16, [&](std::size_t t0, std::size_t t1) {
        kernels::hc_post_ggml(f.data() + t0 * d, res.data() + t0 * 4 * d, mix.post.data() + t0 * 4,
                              mix.comb.data() + t0 * 16, t1 - t0, d, out.data() + t0 * 4 * d);
      });
    } else {
      r.template post<N>(f, res, mix, out);
    }
  }

  /// Partial RoPE (as ref::Backend::rope, bit for bit: the same angles, the rotation
  /// vectorised; ggml's angles and FMA rotation under ggml_order), threaded over the vectors
  /// when there are many.
  template <NumericsPolicy N>
  void rope(const Rope& table, float* x, std::size_t n_vec, std::size_t vec_len, std::int64_t pos,
            RopeDirection dir) const {
    table.check_call(pos, vec_len);
    const std::size_t rd = table.rope_dim();
    const std::size_t half = rd / 2;
    ScratchBuffer<float> cs(2 * half);
    ScratchBuffer<float> tab(2 * rd);  // cdup, then salt
    if constexpr (ggml_order<N>()) {
      table.angles_ggml(pos, cs.data(), cs.data() + half);
    } else {
      table.angles(pos, cs.data(), cs.data() + half);
    }
    const float sign = dir == RopeDirection::inverse ? -1.0f : 1.0f;
    for (std::size_t i = 0; i < half; ++i) {
      const float s = sign * cs[half + i];
      tab[2 * i] = tab[2 * i + 1] = cs[i];
      tab[rd + 2 * i] = -s;
      tab[rd + 2 * i + 1] = s;
    }
    constexpr bool round = !std::is_same_v<typename N::act, Fp32Act>;
    for_tiles(n_vec, 16, n_vec * rd * 2, [&](std::size_t v0, std::size_t v1) {
      kernels::rope_rotate(x + v0 * vec_len, v1 - v0, vec_len, rd, tab.data(), tab.data() + rd,
                           round, ggml_order<N>());
    });
  }

  /// The compressor's pooling (ref::Backend::softmax_pool's order, the channels vectorised;
  /// Highway's exp, so it differs from the reference by rounding).
  void softmax_pool(const float* const* kv, const float* const* score, std::size_t m, std::size_t d,
                    float* y) const noexcept {
    kernels::softmax_pool(kv, score, m, d, y);
  }

  /// Clamped SwiGLU (as ref::Backend::swiglu, bit for bit), threaded over rows.
  template <NumericsPolicy N>
  void swiglu(View2<float> g, ConstView2<float> v, std::span<const float> row_weights,
              float limit) const {
    DSV4_CHECK(v.rows == g.rows && v.cols == g.cols &&
                   (row_weights.empty() || row_weights.size() == g.rows),
               ShapeError, "swiglu: gate [{}, {}], up [{}, {}], {} row weights", g.rows, g.cols,
               v.rows, v.cols, row_weights.size());
    for_tiles(g.rows, 4, g.rows * g.cols * 16, [&](std::size_t r0, std::size_t r1) {
      const View2<float> gs(g.row(r0), r1 - r0, g.cols, g.stride);
      const ConstView2<float> vs(v.row(r0), r1 - r0, v.cols, v.stride);
      ref::Backend::swiglu<N>(
          gs, vs, row_weights.empty() ? row_weights : row_weights.subspan(r0, r1 - r0), limit);
    });
  }

  // ---- attention pieces ----

  /// Sparse attention with sinks (ref::Backend::sparse_attention's algorithm and activation
  /// mode, the dots and P·V vectorised), threaded over the queries (and their heads when there
  /// are fewer queries than twice the threads). Throws InputError for an
  /// index outside [-1, kv_rows).
  template <NumericsPolicy N>
  void sparse_attention(const SparseAttentionArgs& a) const {
    for (std::size_t i = 0; i < a.tokens * a.width; ++i) {
      DSV4_CHECK(a.idx[i] >= -1 && (a.idx[i] < 0 || static_cast<std::size_t>(a.idx[i]) < a.kv_rows),
                 InputError, "sparse_attention: index [{}][{}] must be -1 or in [0, {}), got {}",
                 i / a.width, i % a.width, a.kv_rows, a.idx[i]);
    }
    constexpr bool fp32 = std::is_same_v<typename N::act, Fp32Act>;
    const std::size_t d = a.head_dim;
    // tiles of (query, group of heads): a few queries (decode) still split over the heads. A
    // head's output does not depend on the heads computed with it, so no split changes a bit.
    const std::size_t group = a.tokens >= 2 * static_cast<std::size_t>(threads_->size())
                                  ? a.heads
                                  : std::min<std::size_t>(a.heads, 4);
    const std::size_t groups = a.heads == 0 ? 0 : (a.heads + group - 1) / group;
    for_tiles(a.tokens * groups, 1, a.tokens * a.heads * a.width * d * 4,
              [&](std::size_t i0, std::size_t i1) {
                ScratchBuffer<float> acc(group * d);
                for (std::size_t i = i0; i < i1; ++i) {
                  const std::size_t t = i / groups;
                  const std::size_t h0 = (i % groups) * group;
                  const std::size_t hn = std::min(group, a.heads - h0);
                  const std::size_t off = (t * a.heads + h0) * d;
                  float* o = a.out + off;
                  kernels::sparse_attention_heads(a.q + off, hn, a.kv, a.idx + t * a.width, a.width,
                                                  d, a.sink + h0, a.scale, !fp32, o, acc.data());
                  if constexpr (!fp32)
                    for (std::size_t j = 0; j < hn * d; ++j) o[j] = bf16(o[j]).to_float();
                }
              });
  }

  /// Lightning-indexer scores (as ref::Backend::index_scores; the q·key dots of all heads by
  /// kernels::index_dots per tile of keys, the combination over heads vectorised over the keys),
  /// threaded over (query, 256 keys) tiles.
  template <NumericsPolicy N>
  void index_scores(ConstView2<float> q, ConstView2<float> keys, ConstView2<float> head_weights,
                    std::span<const std::size_t> visible, View2<float> scores) const {
    const std::size_t hi = head_weights.cols;
    const std::size_t di = keys.cols;
    DSV4_CHECK(q.rows == scores.rows && head_weights.rows == scores.rows &&
                   visible.size() == scores.rows && q.cols == hi * di && keys.rows >= scores.cols,
               ShapeError,
               "index_scores: q [{}, {}], keys [{}, {}], head weights [{}, {}], {} visible counts, "
               "scores [{}, {}]",
               q.rows, q.cols, keys.rows, keys.cols, head_weights.rows, head_weights.cols,
               visible.size(), scores.rows, scores.cols);
    // tiles of (query, 256 keys): one query (decode) still splits over the keys. Per tile the
    // q·key dots of every head (kernels::index_dots), then the reference's combination, per key
    // the heads in order, vectorised over the tile's keys.
    constexpr std::size_t kKeys = 256;
    const std::size_t chunks = (scores.cols + kKeys - 1) / kKeys;
    for_tiles(scores.rows * chunks, 1, scores.rows * scores.cols * hi * di,
              [&](std::size_t i0, std::size_t i1) {
                ScratchBuffer<float> dots(hi * kKeys);
                ScratchBuffer<float> total(kKeys);
                for (std::size_t i = i0; i < i1; ++i) {
                  const std::size_t t = i / chunks;
                  const std::size_t j0 = (i % chunks) * kKeys;
                  const std::size_t j1 = std::min(j0 + kKeys, scores.cols);
                  const std::size_t vis = std::min(visible[t], scores.cols);
                  const std::size_t je = std::clamp(vis, j0, j1);  // keys [j0, je) are visible
                  const std::size_t n = je - j0;
                  float* out = scores.row(t) + j0;
                  if (n > 0) {
                    kernels::index_dots(q.row(t), hi, di, keys.row(j0), keys.stride, n, dots.data(),
                                        kKeys);
                    float* tot = total.data();
                    std::fill(tot, tot + n, 0.0f);
                    for (std::size_t h = 0; h < hi; ++h) {
                      const float w = head_weights(t, h);
                      const float* dh = dots.data() + h * kKeys;
                      for (std::size_t j = 0; j < n; ++j) {
                        const float d = N::round(dh[j]);
                        const float relu = d > 0.0f ? d : 0.0f;  // fmax(d, 0), NaN → 0
                        tot[j] += N::round(relu * w);
                      }
                    }
                    for (std::size_t j = 0; j < n; ++j) out[j] = N::round(tot[j]);
                  }
                  std::fill(out + n, scores.row(t) + j1, -std::numeric_limits<float>::infinity());
                }
              });
  }

  /// Indices of the picks.size() largest values of s, in descending order, ties to the smaller
  /// index: the reference's picks. For a few picks out of many (the indexer's index_topk of all
  /// compressed entries) a radix selection first: a histogram of the values' top 11 bits (as
  /// order-preserving integers, −0 as +0) finds the bucket holding the k-th largest; every value
  /// of a higher bucket is picked, the rest come from that bucket's values by (value, index),
  /// then only the picks are sorted. Small inputs and inputs with a NaN take the reference's path.
  void top_k(std::span<const float> s, std::span<std::int32_t> picks) const {
    const std::size_t n = s.size(), k = picks.size();
    DSV4_CHECK(k <= n, ShapeError, "top_k: {} picks out of {} values", k, n);
    if (k == 0) return;
    if (n < 512 || 4 * k > n) {
      ref::Backend::top_k(s, picks);
      return;
    }
    constexpr unsigned kShift = 21;  // 2,048 buckets
    const auto bucket = [](float v) {
      auto u = std::bit_cast<std::uint32_t>(v);
      if (u == 0x80000000u) u = 0;  // -0 ties with +0, as in the reference's comparison
      u = (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
      return u >> kShift;
    };
    std::array<std::uint32_t, (std::size_t{1} << (32 - kShift))> hist{};
    for (const float v : s) {
      if (std::isnan(v)) {
        ref::Backend::top_k(s, picks);
        return;
      }
      ++hist[bucket(v)];
    }
    std::size_t b = hist.size(), above = 0;  // values in buckets > b
    while (above + hist[b - 1] < k) above += hist[--b];
    const std::uint32_t edge = static_cast<std::uint32_t>(b - 1);  // the k-th largest is here
    ScratchBuffer<std::int32_t> cand(hist[edge]);
    std::size_t m = 0, c = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t bi = bucket(s[i]);
      if (bi > edge) {
        picks[m++] = static_cast<std::int32_t>(i);
      } else if (bi == edge) {
        cand[c++] = static_cast<std::int32_t>(i);
      }
    }
    const auto before = [&s](std::int32_t a, std::int32_t b2) {
      const float va = s[static_cast<std::size_t>(a)];
      const float vb = s[static_cast<std::size_t>(b2)];
      return va > vb || (va == vb && a < b2);
    };
    const auto need = static_cast<std::ptrdiff_t>(k - m);
    std::partial_sort(cand.begin(), cand.begin() + need, cand.end(), before);
    std::copy(cand.begin(), cand.begin() + need, picks.begin() + static_cast<std::ptrdiff_t>(m));
    std::sort(picks.begin(), picks.end(), before);
  }

 private:
  // Runs fn(begin, end) over [0, n) in tiles of `tile` on the arena, or inline when the work
  // (an estimate in multiply-adds) is too small to share. fn must compute each element the same
  // way whatever range holds it.
  template <class Fn>
  void for_tiles(std::size_t n, std::size_t tile, std::size_t work, Fn&& fn) const {
    if (n == 0) return;
    const std::size_t tiles = (n + tile - 1) / tile;
    if (threads_->size() <= 1 || tiles <= 1 || work < (std::size_t{1} << 15)) {
      fn(std::size_t{0}, n);
      return;
    }
    threads_->for_range(tiles, 1,
                        [&](std::size_t b, std::size_t e) { fn(b * tile, std::min(e * tile, n)); });
  }

  // y = N(x · Wᵀ) for a dense row-major weight of T (float, bf16 or f16); Ggml: in llama.cpp's
  // x86 float GEMM order (kernels::gemm_ggml; in % 16 == 0).
  template <NumericsPolicy N, bool Ggml = false, class T>
  void dense(const T* w, std::size_t out, std::size_t in, ConstView2<float> x,
             View2<float> y) const {
    for_tiles(out, kTile, x.rows * out * in, [&](std::size_t o0, std::size_t o1) {
      if constexpr (Ggml) {
        kernels::gemm_ggml(x.data, x.stride, x.rows, w, in, o0, o1, in, y.data, y.stride);
      } else {
        kernels::gemm(x.data, x.stride, x.rows, w, in, o0, o1, in, y.data, y.stride);
      }
      round_columns<N>(y, o0, o1);
    });
  }

  template <NumericsPolicy N>
  static void round_columns(View2<float> y, std::size_t o0, std::size_t o1) {
    if constexpr (!std::is_same_v<typename N::act, Fp32Act>) {
      for (std::size_t r = 0; r < y.rows; ++r)
        for (std::size_t o = o0; o < o1; ++o) y(r, o) = N::round(y(r, o));
    }
  }

  template <NumericsPolicy N, class F, class S>
  void format_linear(const Linear<F, S>& w, ConstView2<float> x, View2<float> y) const {
    const std::size_t out = w.out_features();
    const std::size_t in = w.in_features();
    const std::size_t nb = w.row_blocks();
    if constexpr (std::same_as<S, PartnerDot>) {
      if constexpr (std::same_as<F, F32>) {
        static_assert(sizeof(typename F::block_type) == sizeof(float));
        const auto* wf = reinterpret_cast<const float*>(w.blocks().data());
        if (in % 16 == 0) {  // F32::dot_x86: llama.cpp's float GEMM order
          dense<N, true>(wf, out, in, x, y);
        } else {
          dense<N>(wf, out, in, x, y);
        }
      } else if constexpr (std::same_as<F, F16> || std::same_as<F, BF16>) {
        // the activation rounded to the weight's type, then the dense GEMM (F16 with K a multiple
        // of 16: F16::dot_x86's order)
        using T = typename F::block_type;
        ScratchBuffer<float> xr(x.rows * in);
        for_tiles(x.rows, 4, x.rows * in * 4, [&](std::size_t r0, std::size_t r1) {
          for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t k = 0; k < in; ++k) xr[r * in + k] = T(x(r, k)).to_float();
        });
        const ConstView2<float> xv(xr.data(), x.rows, in);
        if constexpr (std::same_as<F, F16>) {
          if (in % 16 == 0) {
            dense<N, true>(w.blocks().data(), out, in, xv, y);
            return;
          }
        }
        dense<N>(w.blocks().data(), out, in, xv, y);
      } else {
        using A = typename F::activation;
        const std::size_t na = in / A::block_elems;
        ScratchBuffer<typename A::block_type> xq(x.rows * na);
        // Q8_0's and FP8_ACT128's scales as float
        ScratchBuffer<float> xd(std::same_as<A, Q8_0> || kNative<F> ? xq.size() : 0);
        ScratchBuffer<float> xf(kNative<F> ? x.rows * in : 0);  // FP8_ACT128 codes as float
        for_tiles(x.rows, 1, x.rows * in * 8, [&](std::size_t r0, std::size_t r1) {
          for (std::size_t r = r0; r < r1; ++r) {
            if constexpr (std::same_as<A, Q8_0>) {
              kernels::quantize_q8_0(x.row(r), na, xq.data() + r * na, xd.data() + r * na);
            } else if constexpr (std::same_as<A, Q8_K>) {
              kernels::quantize_q8_k(x.row(r), na, xq.data() + r * na);
            } else {
              for (std::size_t j = 0; j < na; ++j)
                partner_quantize<A>(x.row(r) + j * A::block_elems, xq[r * na + j]);
              if constexpr (kNative<F>) {  // the codes' values and the scales as float
                for (std::size_t j = 0; j < na; ++j) {
                  kernels::e4m3_to_f32(xq[r * na + j].qs, 128, xf.data() + r * in + j * 128);
                  xd[r * na + j] = xq[r * na + j].scale.to_float();
                }
              }
            }
          }
        });
        // the packed GEMM's activation offsets, 8 per block (kernels::b32_tile)
        const bool repacked = w.repack() != GgmlRepack::none;
        ScratchBuffer<std::int32_t> asum(
            kB32<F> && !repacked && x.rows >= kernels::kTileRows ? x.rows * na * 8 : 0);
        if (!asum.empty()) {
          for_tiles(x.rows, 1, x.rows * in, [&](std::size_t r0, std::size_t r1) {
            kernels::q8_0_offsets(xq.data() + r0 * na, (r1 - r0) * na, asum.data() + r0 * na * 8);
          });
        }
        // the packed k-quant GEMM's activation quants as int16 (kernels::kq_tile)
        ScratchBuffer<std::int16_t> a16(
            kKQuant<F> && !repacked && x.rows >= kernels::kTileRows ? x.rows * na * 256 : 0);
        if (!a16.empty()) {
          for_tiles(x.rows, 1, x.rows * in, [&](std::size_t r0, std::size_t r1) {
            kernels::q8_k_widen(xq.data() + r0 * na, (r1 - r0) * na, a16.data() + r0 * na * 256);
          });
        }
        for_tiles(out, kTile, x.rows * out * in, [&](std::size_t o0, std::size_t o1) {
          if constexpr (RepackedDotFormat<F>) {
            if (repacked) {  // llama.cpp's repacked kernels (Linear::row_dot)
              const std::size_t gemm_rows = repack_gemm_rows(w.repack(), x.rows);
              ScratchBuffer<std::uint8_t> q(nb * 256);
              ScratchBuffer<kernels::KqBlock> k(nb);
              for (std::size_t o = o0; o < o1; ++o)
                kernels::repacked_row(repack_kind<F>(), w.blocks().data() + o * nb, nb, xq.data(),
                                      xd.data(), x.rows, gemm_rows, y.data + o, y.stride, q.data(),
                                      k.data());
              round_columns<N>(y, o0, o1);
              return;
            }
          }
          if constexpr (kB32<F>) {
            ScratchBuffer<std::int8_t> q(nb * 32);
            ScratchBuffer<float> wsc(nb);
            kernels::b32_tile(b32_kind<F>(), w.blocks().data() + o0 * nb, o1 - o0, nb, xq.data(),
                              xd.data(), asum.empty() ? nullptr : asum.data(), x.rows, y.data + o0,
                              y.stride, q.data(), wsc.data());
            round_columns<N>(y, o0, o1);
          } else if constexpr (std::same_as<F, Q4_1> || std::same_as<F, Q5_1>) {
            for (std::size_t o = o0; o < o1; ++o)
              kernels::q451_row(std::same_as<F, Q5_1>, w.blocks().data() + o * nb, nb, xq.data(),
                                x.rows, y.data + o, y.stride);
            round_columns<N>(y, o0, o1);
          } else if constexpr (kKQuant<F>) {
            ScratchBuffer<std::uint8_t> q(nb * 256);
            ScratchBuffer<kernels::KqBlock> k(nb);
            kernels::kq_tile(kq_kind<F>(), w.blocks().data() + o0 * nb, o1 - o0, nb, xq.data(),
                             a16.empty() ? nullptr : a16.data(), x.rows, y.data + o0, y.stride,
                             q.data(), k.data());
            round_columns<N>(y, o0, o1);
          } else if constexpr (kNative<F>) {
            ScratchBuffer<float> wbuf(nb * F::block_elems);
            for (std::size_t o = o0; o < o1; ++o) {
              kernels::native_row(native_kind<F>(), w.codes().data() + o * F::codes_per_row(in),
                                  w.scales().data() + (o / F::block_rows) * F::scale_cols(in), nb,
                                  xf.data(), in, xd.data(), x.rows, y.data + o, y.stride,
                                  wbuf.data());
            }
            round_columns<N>(y, o0, o1);
          } else {
            ScratchBuffer<typename F::block_type> gathered(PlanarFormat<F> ? nb : 0);
            for (std::size_t o = o0; o < o1; ++o) {
              const typename F::block_type* wr;
              if constexpr (PlanarFormat<F>) {
                for (std::size_t b = 0; b < nb; ++b) gathered[b] = w.block(o, b);
                wr = gathered.data();
              } else {
                wr = w.blocks().data() + o * nb;
              }
              for (std::size_t r = 0; r < x.rows; ++r)
                y(r, o) = N::round(partner_dot<F>(wr, xq.data() + r * na, nb));
            }
          }
        });
      }
    } else if constexpr (std::same_as<F, F32>) {
      // DequantDot of a plain weight: the dense GEMM widens its values as it loads them
      dense<N>(reinterpret_cast<const float*>(w.blocks().data()), out, in, x, y);
    } else if constexpr (std::same_as<F, F16> || std::same_as<F, BF16>) {
      dense<N>(w.blocks().data(), out, in, x, y);
    } else {
      // DequantDot: a tile of dequantised rows, then the dense GEMM on it
      for_tiles(out, kTile, x.rows * out * in, [&](std::size_t o0, std::size_t o1) {
        ScratchBuffer<float> wt((o1 - o0) * in);
        if constexpr (has_dequant_kernel<F>) {
          kernels::dequantize_blocks(dequant_kind_of<F>(), w.blocks().data() + o0 * nb,
                                     (o1 - o0) * nb, wt.data());
        } else {
          for (std::size_t o = o0; o < o1; ++o) w.dequantize_row(o, wt.data() + (o - o0) * in);
        }
        kernels::gemm(x.data, x.stride, x.rows, wt.data(), in, 0, o1 - o0, in, y.data + o0,
                      y.stride);
        round_columns<N>(y, o0, o1);
      });
    }
  }

  template <class F>
  static constexpr kernels::RepackKind repack_kind() {
    if constexpr (std::same_as<F, Q4_0>) {
      return kernels::RepackKind::q4_0;
    } else if constexpr (std::same_as<F, Q2_K>) {
      return kernels::RepackKind::q2_k;
    } else {
      static_assert(std::same_as<F, Q4_K>, "a format llama.cpp repacks");
      return kernels::RepackKind::q4_k;
    }
  }

  template <class F>
  static constexpr bool kB32 =
      std::same_as<F, Q8_0> || std::same_as<F, Q4_0> || std::same_as<F, Q5_0> ||
      std::same_as<F, IQ4_NL> || std::same_as<F, MXFP4>;

  template <class F>
  static constexpr kernels::B32Kind b32_kind() {
    if constexpr (std::same_as<F, Q4_0>) return kernels::B32Kind::q4_0;
    if constexpr (std::same_as<F, Q5_0>) return kernels::B32Kind::q5_0;
    if constexpr (std::same_as<F, IQ4_NL>) return kernels::B32Kind::iq4_nl;
    if constexpr (std::same_as<F, MXFP4>) return kernels::B32Kind::mxfp4;
    return kernels::B32Kind::q8_0;
  }

  template <class F>
  static constexpr bool kNative = std::same_as<F, Fp8B128> || std::same_as<F, Fp4G32>;

  template <class F>
  static constexpr kernels::NativeKind native_kind() {
    return std::same_as<F, Fp4G32> ? kernels::NativeKind::fp4_g32 : kernels::NativeKind::fp8_b128;
  }

  template <class F>
  static constexpr bool kKQuant =
      std::same_as<F, Q2_K> || std::same_as<F, Q3_K> || std::same_as<F, Q4_K> ||
      std::same_as<F, Q5_K> || std::same_as<F, Q6_K> || std::same_as<F, IQ4_XS>;

  template <class F>
  static constexpr kernels::KqKind kq_kind() {
    if constexpr (std::same_as<F, Q2_K>) return kernels::KqKind::q2_k;
    if constexpr (std::same_as<F, Q3_K>) return kernels::KqKind::q3_k;
    if constexpr (std::same_as<F, Q4_K>) return kernels::KqKind::q4_k;
    if constexpr (std::same_as<F, Q5_K>) return kernels::KqKind::q5_k;
    if constexpr (std::same_as<F, IQ4_XS>) return kernels::KqKind::iq4_xs;
    return kernels::KqKind::q6_k;
  }

  static constexpr std::size_t kTile = 16;  // output columns per tile of a linear layer
  std::shared_ptr<Threads> threads_;
  std::shared_ptr<Threads> serial_;  // the one-thread arena of parallel_tasks' sub-backends
};

static_assert(offsetof(Q8_0::block_type, qs) == 2 && sizeof(Q8_0::block_type) == 34,
              "the Q8_0 kernels read a block as f16 d, int8 qs[32]");
static_assert(offsetof(Q8_1::block_type, qs) == 4 && sizeof(Q8_1::block_type) == 36 &&
                  offsetof(Q5_1::block_type, qh) == 4 && offsetof(Q5_1::block_type, qs) == 8 &&
                  offsetof(Q4_1::block_type, qs) == 4,
              "kernels::q451_row reads Q4_1 / Q5_1 / Q8_1 blocks at these offsets");
static_assert(offsetof(Q8_K::block_type, qs) == 4 && offsetof(Q8_K::block_type, bsums) == 260 &&
                  sizeof(Q8_K::block_type) == 292,
              "kernels::kq_row reads a Q8_K block as float d, int8 qs[256], int16 bsums[16]");

}  // namespace dsv4::cpu

namespace dsv4 {
static_assert(Backend<cpu::Backend>);
static_assert(SupportsLinear<cpu::Backend, AnyLinear>);
}  // namespace dsv4
