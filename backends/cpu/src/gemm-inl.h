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

// One (query, head) of sparse attention with the reference's structure (ops/sparse_attention.hpp:
// online softmax over chunks of 64 slots, the sink in the denominator, P rounded to bf16 when
// round_p), the q·k dots and the P·V accumulation vectorised over the head dimension.
// out[d] = acc / l (unrounded); acc: [d] scratch.
HWY_INLINE void SparseAttnHead(const float* HWY_RESTRICT q, const float* HWY_RESTRICT kv,
                               const int32_t* HWY_RESTRICT idx, size_t k, size_t d, float sink,
                               float scale, bool round_p, float* HWY_RESTRICT out,
                               float* HWY_RESTRICT acc) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t vec_end = d - d % N;
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  constexpr size_t kChunk = 64;
  float m = neg_inf;
  float l = 0.f;
  for (size_t j = 0; j < d; ++j) acc[j] = 0.f;
  float s[kChunk];
  for (size_t c0 = 0; c0 < k; c0 += kChunk) {
    const size_t cn = std::min(kChunk, k - c0);
    float cmax = m;
    for (size_t t = 0; t < cn; ++t) {
      const int32_t r = idx[c0 + t];
      if (r < 0) {
        s[t] = neg_inf;
      } else {
        const float* kr = kv + static_cast<size_t>(r) * d;
        auto a = hn::Zero(df);
        for (size_t j = 0; j < vec_end; j += N)
          a = hn::MulAdd(hn::LoadU(df, q + j), hn::LoadU(df, kr + j), a);
        float dot = hn::GetLane(hn::SumOfLanes(df, a));
        for (size_t j = vec_end; j < d; ++j) dot += q[j] * kr[j];
        s[t] = dot * scale;
      }
      cmax = std::fmax(cmax, s[t]);
    }
    if (cmax == neg_inf) continue;
    const float alpha = std::exp(m - cmax);
    float psum = 0.f;
    for (size_t t = 0; t < cn; ++t) {
      s[t] = std::exp(s[t] - cmax);
      psum += s[t];
    }
    const auto va = hn::Set(df, alpha);
    for (size_t j = 0; j < vec_end; j += N)
      hn::StoreU(hn::Mul(hn::LoadU(df, acc + j), va), df, acc + j);
    for (size_t j = vec_end; j < d; ++j) acc[j] *= alpha;
    for (size_t t = 0; t < cn; ++t) {
      if (s[t] == 0.f) continue;
      const float p = round_p ? bf16(s[t]).to_float() : s[t];
      const float* kr = kv + static_cast<size_t>(idx[c0 + t]) * d;
      const auto vp = hn::Set(df, p);
      for (size_t j = 0; j < vec_end; j += N)
        hn::StoreU(hn::MulAdd(vp, hn::LoadU(df, kr + j), hn::LoadU(df, acc + j)), df, acc + j);
      for (size_t j = vec_end; j < d; ++j) acc[j] += p * kr[j];
    }
    l = l * alpha + psum;
    m = cmax;
  }
  l += std::exp(sink - m);
  for (size_t j = 0; j < d; ++j) out[j] = acc[j] / l;
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
