// Per-target kernels of gemm.cc: dense GEMM tiles (f32, bf16 and f16 weights) and one head of
// sparse attention. Re-included once per SIMD target by hwy/foreach_target.h.
//
// Every output value is computed by the same instruction sequence whichever tile or range it
// falls in (one vector accumulator per output, lanes reduced once, the tail added in order), so a
// result never depends on how the caller splits the work between threads.
#if defined(DSV4_CPU_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_GEMM_INL_H_
#undef DSV4_CPU_GEMM_INL_H_
#else
#define DSV4_CPU_GEMM_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <limits>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Loads N weights as f32.
template <class DF>
HWY_INLINE hn::Vec<DF> LoadW(DF df, const float* HWY_RESTRICT w) {
  return hn::LoadU(df, w);
}
template <class DF>
HWY_INLINE hn::Vec<DF> LoadW(DF df, const bf16* HWY_RESTRICT w) {
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  return hn::PromoteTo(df, hn::LoadU(dbf, reinterpret_cast<const hwy::bfloat16_t*>(w)));
}
template <class DF>
HWY_INLINE hn::Vec<DF> LoadW(DF df, const f16* HWY_RESTRICT w) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(w)));
}

HWY_INLINE float ScalarW(const float w) { return w; }
HWY_INLINE float ScalarW(const bf16 w) { return w.to_float(); }
HWY_INLINE float ScalarW(const f16 w) { return w.to_float(); }

// y[r][o] = Σ_k x[r][k]·w[o][k] for r < rows, o in [o0, o1): tiles of 4 rows × 2 outputs share
// their loads; every output has its own accumulator, reduced the same way in every tile shape.
template <class T>
HWY_INLINE void GemmTile(const float* HWY_RESTRICT x, size_t ldx, size_t rows,
                         const T* HWY_RESTRICT w, size_t ldw, size_t o0, size_t o1, size_t in,
                         float* HWY_RESTRICT y, size_t ldy) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t vec_end = in - in % N;
  auto finish = [&](hn::Vec<decltype(df)> acc, const float* xr, const T* wr) {
    float s = hn::GetLane(hn::SumOfLanes(df, acc));
    for (size_t k = vec_end; k < in; ++k) s += xr[k] * ScalarW(wr[k]);
    return s;
  };
  size_t o = o0;
  for (; o + 2 <= o1; o += 2) {
    const T* w0 = w + o * ldw;
    const T* w1 = w0 + ldw;
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      const float* x0 = x + r * ldx;
      const float* x1 = x0 + ldx;
      const float* x2 = x1 + ldx;
      const float* x3 = x2 + ldx;
      auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
      auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
      for (size_t k = 0; k < vec_end; k += N) {
        const auto v0 = LoadW(df, w0 + k);
        const auto v1 = LoadW(df, w1 + k);
        const auto b0 = hn::LoadU(df, x0 + k);
        const auto b1 = hn::LoadU(df, x1 + k);
        const auto b2 = hn::LoadU(df, x2 + k);
        const auto b3 = hn::LoadU(df, x3 + k);
        a00 = hn::MulAdd(b0, v0, a00);
        a01 = hn::MulAdd(b0, v1, a01);
        a10 = hn::MulAdd(b1, v0, a10);
        a11 = hn::MulAdd(b1, v1, a11);
        a20 = hn::MulAdd(b2, v0, a20);
        a21 = hn::MulAdd(b2, v1, a21);
        a30 = hn::MulAdd(b3, v0, a30);
        a31 = hn::MulAdd(b3, v1, a31);
      }
      y[r * ldy + o] = finish(a00, x0, w0);
      y[r * ldy + o + 1] = finish(a01, x0, w1);
      y[(r + 1) * ldy + o] = finish(a10, x1, w0);
      y[(r + 1) * ldy + o + 1] = finish(a11, x1, w1);
      y[(r + 2) * ldy + o] = finish(a20, x2, w0);
      y[(r + 2) * ldy + o + 1] = finish(a21, x2, w1);
      y[(r + 3) * ldy + o] = finish(a30, x3, w0);
      y[(r + 3) * ldy + o + 1] = finish(a31, x3, w1);
    }
    for (; r < rows; ++r) {
      const float* x0 = x + r * ldx;
      auto a0 = hn::Zero(df), a1 = hn::Zero(df);
      for (size_t k = 0; k < vec_end; k += N) {
        const auto b0 = hn::LoadU(df, x0 + k);
        a0 = hn::MulAdd(b0, LoadW(df, w0 + k), a0);
        a1 = hn::MulAdd(b0, LoadW(df, w1 + k), a1);
      }
      y[r * ldy + o] = finish(a0, x0, w0);
      y[r * ldy + o + 1] = finish(a1, x0, w1);
    }
  }
  for (; o < o1; ++o) {
    const T* w0 = w + o * ldw;
    for (size_t r = 0; r < rows; ++r) {
      const float* x0 = x + r * ldx;
      auto a0 = hn::Zero(df);
      for (size_t k = 0; k < vec_end; k += N) {
        a0 = hn::MulAdd(hn::LoadU(df, x0 + k), LoadW(df, w0 + k), a0);
      }
      y[r * ldy + o] = finish(a0, x0, w0);
    }
  }
}

// The lightning indexer's dots of one query: dots[h·ldd + j] = Σ_e q[h·di + e]·keys[j·ldk + e]
// for h < heads, j < n. Tiles of 4 heads × 4 keys (4 × 2 on AVX2) keep one vector accumulator
// per output; on x86 the tile's accumulators are reduced together by one transposing tree
// (unpack / shuffle / block-shuffle adds: ~3 operations per output instead of a full lane sum
// each), elsewhere each by SumOfLanes. Every output sees the same instruction sequence in every
// tile (a partial tile repeats its last head or key and drops the copies), so the result depends
// on neither n, nor the caller's split, nor the output's place in its tile. The tail past the
// last whole vector of di is added in order after the lane sum.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// v[i] = the lane sum of a[i], i < 16.
HWY_INLINE __m512 ReduceSixteen(const __m512* a) {
  __m512 r[8], s[4], u[2];
  for (int i = 0; i < 8; ++i)
    r[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    s[i] = _mm512_add_ps(_mm512_shuffle_ps(r[2 * i], r[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(r[2 * i], r[2 * i + 1], 0xEE));
  for (int i = 0; i < 2; ++i)
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88),
                       _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
}
#elif HWY_TARGET == HWY_AVX2
// v[i] = the lane sum of a[i], i < 8.
HWY_INLINE __m256 ReduceEight(const __m256* a) {
  __m256 r[4], s[2];
  for (int i = 0; i < 4; ++i)
    r[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)
    s[i] = _mm256_add_ps(_mm256_shuffle_ps(r[2 * i], r[2 * i + 1], 0x44),
                         _mm256_shuffle_ps(r[2 * i], r[2 * i + 1], 0xEE));
  return _mm256_add_ps(_mm256_permute2f128_ps(s[0], s[1], 0x20),
                       _mm256_permute2f128_ps(s[0], s[1], 0x31));
}
#endif

// y[r][o] in llama.cpp's x86 float GEMM order (dsv4::detail::ggml::sgemm_dot16; in a multiple of
// 16): 16 lane accumulators, element k into lane k % 16 by one FMA, the lanes reduced as
// `_mm512_reduce_add_ps` does. The lanes are vectors of up to 16 on targets with fused MulAdd,
// scalar std::fma elsewhere (the same bits).
template <class T>
HWY_INLINE void GemmGgml16(const float* HWY_RESTRICT x, size_t ldx, size_t rows,
                           const T* HWY_RESTRICT w, size_t ldw, size_t o0, size_t o1, size_t in,
                           float* HWY_RESTRICT y, size_t ldy) {
  const auto reduce = [](const float* acc) {
    float t8[8];
    for (int i = 0; i < 8; ++i) t8[i] = acc[i + 8] + acc[i];
    float t4[4];
    for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
    return (t4[0] + t4[2]) + (t4[1] + t4[3]);
  };
  for (size_t o = o0; o < o1; ++o) {
    const T* wr = w + o * ldw;
    for (size_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ldx;
      HWY_ALIGN float acc[16] = {};
#if HWY_TARGET != HWY_SCALAR
      if constexpr (HWY_NATIVE_FMA) {
        const hn::CappedTag<float, 16> df;
        const size_t n = hn::Lanes(df);  // 4, 8 or 16: 16 / n vectors hold the 16 lanes
        for (size_t v = 0; v < 16; v += n) {
          auto a = hn::Zero(df);
          for (size_t k = v; k < in; k += 16)
            a = hn::MulAdd(LoadW(df, wr + k), hn::LoadU(df, xr + k), a);
          hn::Store(a, df, acc + v);
        }
        y[r * ldy + o] = reduce(acc);
        continue;
      }
#endif
      for (size_t k = 0; k < in; k += 16)
        for (size_t l = 0; l < 16; ++l) acc[l] = std::fma(ScalarW(wr[k + l]), xr[k + l], acc[l]);
      y[r * ldy + o] = reduce(acc);
    }
  }
}

HWY_INLINE void IndexDots(const float* HWY_RESTRICT q, size_t heads, size_t di,
                          const float* HWY_RESTRICT keys, size_t ldk, size_t n,
                          float* HWY_RESTRICT dots, size_t ldd) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t vec_end = di - di % N;
  constexpr size_t kH = 4;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  constexpr size_t kK = 4;
#else
  constexpr size_t kK = 2;
#endif
  HWY_ALIGN float sums[kH * kK];
  // keys outer: a tile's keys stay in L1 while every head group reads them
  for (size_t j0 = 0; j0 < n; j0 += kK) {
    const float* kr[kK];
    for (size_t c = 0; c < kK; ++c) kr[c] = keys + std::min(j0 + c, n - 1) * ldk;
    for (size_t h0 = 0; h0 < heads; h0 += kH) {
      const float* qh[kH];
      for (size_t g = 0; g < kH; ++g) qh[g] = q + std::min(h0 + g, heads - 1) * di;
#if HWY_HAVE_SCALABLE
      // sizeless vectors (SVE, RVV) cannot be held in arrays: one (head, key) pair at a time, the
      // same lane sums and reduction as the tile
      for (size_t i = 0; i < kH * kK; ++i) {
        auto a = hn::Zero(df);
        for (size_t e = 0; e < vec_end; e += N)
          a = hn::MulAdd(hn::LoadU(df, qh[i / kK] + e), hn::LoadU(df, kr[i % kK] + e), a);
        sums[i] = hn::GetLane(hn::SumOfLanes(df, a));
      }
#else
      hn::Vec<decltype(df)> acc[kH * kK];
      for (auto& a : acc) a = hn::Zero(df);
      for (size_t e = 0; e < vec_end; e += N) {
        hn::Vec<decltype(df)> kv[kK];
        for (size_t c = 0; c < kK; ++c) kv[c] = hn::LoadU(df, kr[c] + e);
        for (size_t g = 0; g < kH; ++g) {
          const auto qv = hn::LoadU(df, qh[g] + e);
          for (size_t c = 0; c < kK; ++c) acc[g * kK + c] = hn::MulAdd(qv, kv[c], acc[g * kK + c]);
        }
      }
#endif
#if HWY_HAVE_SCALABLE
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
      if (N == 16) {
        __m512 raw[kH * kK];
        for (size_t i = 0; i < kH * kK; ++i) raw[i] = acc[i].raw;
        _mm512_store_ps(sums, ReduceSixteen(raw));
      }
#elif HWY_TARGET == HWY_AVX2
      if (N == 8) {
        __m256 raw[kH * kK];
        for (size_t i = 0; i < kH * kK; ++i) raw[i] = acc[i].raw;
        _mm256_store_ps(sums, ReduceEight(raw));
      }
#else
      for (size_t i = 0; i < kH * kK; ++i) sums[i] = hn::GetLane(hn::SumOfLanes(df, acc[i]));
#endif
      for (size_t g = 0; g < kH && h0 + g < heads; ++g) {
        for (size_t c = 0; c < kK && j0 + c < n; ++c) {
          float s = sums[g * kK + c];
          for (size_t e = vec_end; e < di; ++e) s += qh[g][e] * kr[c][e];
          dots[(h0 + g) * ldd + j0 + c] = s;
        }
      }
    }
  }
}

// All heads of one query of sparse attention with the reference's structure per head
// (ops/sparse_attention.hpp: online softmax over chunks of 64 slots, the sink in the
// denominator, P rounded to bf16 when round_p), the q·k dots and the P·V accumulation vectorised
// over the head dimension. The heads share the query's KV rows (key = value, one KV head), so the
// dots run four heads × two keys at a time: each key row is loaded once for four heads. Every
// dot and every acc element sees the same operations in the same order as one head and one key
// at a time, so the result does not depend on the grouping. out[h·d + j] = acc / l (unrounded);
// acc: [heads·d] scratch.
HWY_INLINE void SparseAttnHeads(const float* HWY_RESTRICT q, size_t heads,
                                const float* HWY_RESTRICT kv, const int32_t* HWY_RESTRICT idx,
                                size_t k, size_t d, const float* HWY_RESTRICT sinks, float scale,
                                bool round_p, float* HWY_RESTRICT out, float* HWY_RESTRICT acc) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t vec_end = d - d % N;
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  constexpr size_t kChunk = 64;
  constexpr size_t kPvGroup = 8;
  constexpr size_t kHeads = 4;  // heads dotted together
  std::fill(acc, acc + heads * d, 0.f);
  const float* rows[kChunk];  // the chunk's valid keys, in slot order
  size_t slot[kChunk];
  float s[kHeads][kChunk];
  const float* prow[kChunk];  // one head's keys of non-zero weight
  float p[kChunk];
  // the online-softmax state of each head
  constexpr size_t kMaxStack = 256;
  float m_stack[kMaxStack], l_stack[kMaxStack];
  std::vector<float> m_heap, l_heap;
  float* m = m_stack;
  float* l = l_stack;
  if (heads > kMaxStack) {
    m_heap.assign(heads, 0.f);
    l_heap.assign(heads, 0.f);
    m = m_heap.data();
    l = l_heap.data();
  }
  for (size_t h = 0; h < heads; ++h) {
    m[h] = neg_inf;
    l[h] = 0.f;
  }
  const auto tail_dot = [&](const float* qh, const float* kr, float dot) {
    for (size_t j = vec_end; j < d; ++j) dot += qh[j] * kr[j];
    return dot;
  };
  const auto finish = [&](auto a, const float* qh, const float* kr) {
    return tail_dot(qh, kr, hn::GetLane(hn::SumOfLanes(df, a))) * scale;
  };
  for (size_t c0 = 0; c0 < k; c0 += kChunk) {
    const size_t cn = std::min(kChunk, k - c0);
    size_t nv = 0;
    for (size_t t = 0; t < cn; ++t) {
      const int32_t r = idx[c0 + t];
      if (r >= 0) {
        slot[nv] = t;
        rows[nv++] = kv + static_cast<size_t>(r) * d;
      }
    }
    for (size_t h0 = 0; h0 < heads; h0 += kHeads) {
      const size_t hn_ = std::min(kHeads, heads - h0);
      for (size_t g = 0; g < hn_; ++g)
        for (size_t t = 0; t < cn; ++t) s[g][t] = neg_inf;
      const float* qh[kHeads];
      for (size_t g = 0; g < kHeads; ++g) qh[g] = q + (h0 + std::min(g, hn_ - 1)) * d;
      size_t v = 0;
      if (hn_ == kHeads) {
        for (; v + 2 <= nv; v += 2) {
          const float* k0 = rows[v];
          const float* k1 = rows[v + 1];
          auto a00 = hn::Zero(df), a01 = hn::Zero(df), a10 = hn::Zero(df), a11 = hn::Zero(df);
          auto a20 = hn::Zero(df), a21 = hn::Zero(df), a30 = hn::Zero(df), a31 = hn::Zero(df);
          for (size_t j = 0; j < vec_end; j += N) {
            const auto kv0 = hn::LoadU(df, k0 + j);
            const auto kv1 = hn::LoadU(df, k1 + j);
            const auto q0 = hn::LoadU(df, qh[0] + j);
            a00 = hn::MulAdd(q0, kv0, a00);
            a01 = hn::MulAdd(q0, kv1, a01);
            const auto q1 = hn::LoadU(df, qh[1] + j);
            a10 = hn::MulAdd(q1, kv0, a10);
            a11 = hn::MulAdd(q1, kv1, a11);
            const auto q2 = hn::LoadU(df, qh[2] + j);
            a20 = hn::MulAdd(q2, kv0, a20);
            a21 = hn::MulAdd(q2, kv1, a21);
            const auto q3 = hn::LoadU(df, qh[3] + j);
            a30 = hn::MulAdd(q3, kv0, a30);
            a31 = hn::MulAdd(q3, kv1, a31);
          }
          s[0][slot[v]] = finish(a00, qh[0], k0);
          s[0][slot[v + 1]] = finish(a01, qh[0], k1);
          s[1][slot[v]] = finish(a10, qh[1], k0);
          s[1][slot[v + 1]] = finish(a11, qh[1], k1);
          s[2][slot[v]] = finish(a20, qh[2], k0);
          s[2][slot[v + 1]] = finish(a21, qh[2], k1);
          s[3][slot[v]] = finish(a30, qh[3], k0);
          s[3][slot[v + 1]] = finish(a31, qh[3], k1);
        }
      }
      for (; v < nv; ++v) {
        for (size_t g = 0; g < hn_; ++g) {
          auto a = hn::Zero(df);
          for (size_t j = 0; j < vec_end; j += N)
            a = hn::MulAdd(hn::LoadU(df, qh[g] + j), hn::LoadU(df, rows[v] + j), a);
          s[g][slot[v]] = finish(a, qh[g], rows[v]);
        }
      }
      for (size_t g = 0; g < hn_; ++g) {
        const size_t h = h0 + g;
        float* sh = s[g];
        float* ah = acc + h * d;
        float cmax = m[h];
        for (size_t t = 0; t < cn; ++t) cmax = sh[t] > cmax ? sh[t] : cmax;  // fmax: no NaN max
        if (cmax == neg_inf) continue;
        const float alpha = std::exp(m[h] - cmax);
        float psum = 0.f;
        for (size_t t = 0; t < cn; ++t) {
          sh[t] = std::exp(sh[t] - cmax);
          psum += sh[t];
        }
        // the keys with a non-zero weight, in slot order (masked slots have weight 0)
        size_t np = 0;
        for (size_t e = 0; e < nv; ++e) {
          const float w = sh[slot[e]];
          if (w == 0.f) continue;
          p[np] = round_p ? bf16(w).to_float() : w;
          prow[np++] = rows[e];
        }
        // acc·alpha + Σ p·v over keys e0..e1-1 (scale: the first pass also applies alpha), four
        // vectors of acc at a time so that the key loop carries four independent FMA chains
        const auto va = hn::Set(df, alpha);
        const auto pv_pass = [&](size_t e0, size_t e1, bool scale_acc) {
          size_t j = 0;
          for (; j + 4 * N <= vec_end; j += 4 * N) {
            auto a0 = hn::LoadU(df, ah + j), a1 = hn::LoadU(df, ah + j + N);
            auto a2 = hn::LoadU(df, ah + j + 2 * N), a3 = hn::LoadU(df, ah + j + 3 * N);
            if (scale_acc) {
              a0 = hn::Mul(a0, va);
              a1 = hn::Mul(a1, va);
              a2 = hn::Mul(a2, va);
              a3 = hn::Mul(a3, va);
            }
            for (size_t e = e0; e < e1; ++e) {
              const auto pe = hn::Set(df, p[e]);
              const float* r = prow[e] + j;
              a0 = hn::MulAdd(pe, hn::LoadU(df, r), a0);
              a1 = hn::MulAdd(pe, hn::LoadU(df, r + N), a1);
              a2 = hn::MulAdd(pe, hn::LoadU(df, r + 2 * N), a2);
              a3 = hn::MulAdd(pe, hn::LoadU(df, r + 3 * N), a3);
            }
            hn::StoreU(a0, df, ah + j);
            hn::StoreU(a1, df, ah + j + N);
            hn::StoreU(a2, df, ah + j + 2 * N);
            hn::StoreU(a3, df, ah + j + 3 * N);
          }
          for (; j < vec_end; j += N) {
            auto a = hn::LoadU(df, ah + j);
            if (scale_acc) a = hn::Mul(a, va);
            for (size_t e = e0; e < e1; ++e)
              a = hn::MulAdd(hn::Set(df, p[e]), hn::LoadU(df, prow[e] + j), a);
            hn::StoreU(a, df, ah + j);
          }
        };
        pv_pass(0, std::min(np, kPvGroup), true);
        for (size_t e0 = kPvGroup; e0 < np; e0 += kPvGroup)
          pv_pass(e0, std::min(np, e0 + kPvGroup), false);
        for (size_t j = vec_end; j < d; ++j) {
          ah[j] *= alpha;
          for (size_t e = 0; e < np; ++e) ah[j] += p[e] * prow[e][j];
        }
        l[h] = l[h] * alpha + psum;
        m[h] = cmax;
      }
    }
  }
  for (size_t h = 0; h < heads; ++h) {
    const float lh = l[h] + std::exp(sinks[h] - m[h]);
    for (size_t j = 0; j < d; ++j) out[h * d + j] = acc[h * d + j] / lh;
  }
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
