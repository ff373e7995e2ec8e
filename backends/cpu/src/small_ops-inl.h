// Per-target kernels of small_ops.cc: the partial RoPE rotation and the compressor's softmax
// pooling. Re-included once per SIMD target by hwy/foreach_target.h (toggle guard below).
#if defined(DSV4_CPU_SMALL_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_SMALL_OPS_INL_H_
#undef DSV4_CPU_SMALL_OPS_INL_H_
#else
#define DSV4_CPU_SMALL_OPS_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <dsv4/core/numeric.hpp>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// v rounded to the nearest bf16 value (ties to even), NaNs made quiet: bf16(v).to_float().
template <class DF, class V>
HWY_INLINE V RoundBf16(DF df, V v) {
  const hn::RebindToUnsigned<DF> du;
  const auto x = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(x), hn::Set(du, 1u));
  const auto rounded = hn::Add(hn::Add(x, hn::Set(du, 0x7fffu)), lsb);
  const auto r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)),
                                hn::Or(x, hn::Set(du, 0x00400000u)), rounded);
  return hn::BitCast(df, hn::And(r, hn::Set(du, 0xffff0000u)));
}

// The last rope_dim values of n_vec vectors of vec_len values at x, as (re, im) pairs:
// out = x·cdup + swap(x)·salt, i.e. (re·c − im·s, im·c + re·s), each product and sum rounded
// once as the reference's rotation computes it, or (ggml_fma) with ggml's two FMAs.
HWY_INLINE void RopeRotate(float* HWY_RESTRICT x, size_t n_vec, size_t vec_len, size_t rope_dim,
                           const float* HWY_RESTRICT cdup, const float* HWY_RESTRICT salt,
                           bool round_bf16, bool ggml_fma) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  for (size_t v = 0; v < n_vec; ++v) {
    float* r = x + v * vec_len + (vec_len - rope_dim);
    size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
    // (ggml's FMA rotation needs fused MulAdd: targets without it take the scalar loop)
    if (N % 2 == 0 && (HWY_NATIVE_FMA || !ggml_fma)) {
      for (; i + N <= rope_dim; i += N) {
        const auto a = hn::LoadU(df, r + i);
        const auto b = hn::Reverse2(df, a);
        const auto c = hn::LoadU(df, cdup + i);
        const auto s = hn::LoadU(df, salt + i);
        const auto ac = hn::Mul(a, c);
        const auto bs = hn::Mul(b, s);
        // ggml: even lanes fma(re, c, im·(−s)), odd lanes fma(re, s, im·c)
        auto y =
            ggml_fma ? hn::OddEven(hn::MulAdd(b, s, ac), hn::MulAdd(a, c, bs)) : hn::Add(ac, bs);
        if (round_bf16) y = RoundBf16(df, y);
        hn::StoreU(y, df, r + i);
      }
    }
#else
    (void)N;
#endif
    for (; i < rope_dim; i += 2) {
      const float re = r[i];
      const float im = r[i + 1];
      float y0 = ggml_fma ? std::fma(re, cdup[i], im * salt[i]) : re * cdup[i] + im * salt[i];
      float y1 = ggml_fma ? std::fma(re, salt[i + 1], im * cdup[i + 1])
                          : im * cdup[i + 1] + re * salt[i + 1];
      if (round_bf16) {
        y0 = bf16(y0).to_float();
        y1 = bf16(y1).to_float();
      }
      r[i] = y0;
      r[i + 1] = y1;
    }
  }
}

// The hyper-connections' post of `tokens` tokens in llama.cpp's order (HyperConnection::post
// under ggml_order): out[t][j][c] = post[t][j]·f[t][c], then + comb[t][i][j]·res[t][i][c] by one
// FMA each for i < 4; channels in lanes on targets with fused MulAdd, std::fma elsewhere (the same
// bits). out may alias res (a channel's four inputs are read before its outputs are written).
HWY_INLINE void HcPostGgml(const float* HWY_RESTRICT f, const float* res, const float* post,
                           const float* comb, size_t tokens, size_t d, float* out) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  for (size_t t = 0; t < tokens; ++t) {
    const float* ft = f + t * d;
    const float* x = res + t * 4 * d;
    const float* p = post + 4 * t;
    const float* cb = comb + 16 * t;
    float* o = out + t * 4 * d;
    size_t c = 0;
#if HWY_TARGET != HWY_SCALAR
    if (HWY_NATIVE_FMA) {
      for (; c + N <= d; c += N) {
        // (named vectors: SVE's sizeless vectors cannot live in arrays)
        const auto fv = hn::LoadU(df, ft + c);
        const auto x0 = hn::LoadU(df, x + c);
        const auto x1 = hn::LoadU(df, x + d + c);
        const auto x2 = hn::LoadU(df, x + 2 * d + c);
        const auto x3 = hn::LoadU(df, x + 3 * d + c);
        const auto out_j = [&](size_t j) {
          auto acc = hn::Mul(hn::Set(df, p[j]), fv);
          acc = hn::MulAdd(hn::Set(df, cb[j]), x0, acc);
          acc = hn::MulAdd(hn::Set(df, cb[4 + j]), x1, acc);
          acc = hn::MulAdd(hn::Set(df, cb[8 + j]), x2, acc);
          return hn::MulAdd(hn::Set(df, cb[12 + j]), x3, acc);
        };
        const auto y0 = out_j(0);
        const auto y1 = out_j(1);
        const auto y2 = out_j(2);
        const auto y3 = out_j(3);
        hn::StoreU(y0, df, o + c);
        hn::StoreU(y1, df, o + d + c);
        hn::StoreU(y2, df, o + 2 * d + c);
        hn::StoreU(y3, df, o + 3 * d + c);
      }
    }
#else
    (void)N;
#endif
    for (; c < d; ++c) {
      float xs[4], ys[4];
      for (size_t i = 0; i < 4; ++i) xs[i] = x[i * d + c];
      for (size_t j = 0; j < 4; ++j) {
        float acc = p[j] * ft[c];
        for (size_t i = 0; i < 4; ++i) acc = std::fma(cb[4 * i + j], xs[i], acc);
        ys[j] = acc;
      }
      for (size_t j = 0; j < 4; ++j) o[j * d + c] = ys[j];
    }
  }
}

// y_f = Σ_k kv[k][f] · (e_k,f / Σ_j e_j,f), e = exp(score − max): the members in order for each
// channel, the channels in lanes (Highway's exp: within a few ulp of std::exp).
HWY_INLINE void SoftmaxPool(const float* const* HWY_RESTRICT kv,
                            const float* const* HWY_RESTRICT score, size_t m, size_t d,
                            float* HWY_RESTRICT y) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t f = 0;
  for (; f + N <= d; f += N) {
    auto mx = hn::Set(df, -std::numeric_limits<float>::infinity());
    for (size_t k = 0; k < m; ++k) mx = hn::Max(mx, hn::LoadU(df, score[k] + f));
    auto sum = hn::Zero(df);
    for (size_t k = 0; k < m; ++k)
      sum = hn::Add(sum, hn::Exp(df, hn::Sub(hn::LoadU(df, score[k] + f), mx)));
    auto acc = hn::Zero(df);
    for (size_t k = 0; k < m; ++k) {
      const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, score[k] + f), mx));
      acc = hn::Add(acc, hn::Mul(hn::LoadU(df, kv[k] + f), hn::Div(e, sum)));
    }
    hn::StoreU(acc, df, y + f);
  }
  for (; f < d; ++f) {
    float mx = -std::numeric_limits<float>::infinity();
    for (size_t k = 0; k < m; ++k) mx = std::fmax(mx, score[k][f]);
    float sum = 0.0f;
    for (size_t k = 0; k < m; ++k) sum += std::exp(score[k][f] - mx);
    float acc = 0.0f;
    for (size_t k = 0; k < m; ++k) acc += kv[k][f] * (std::exp(score[k][f] - mx) / sum);
    y[f] = acc;
  }
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DSV4_CPU_SMALL_OPS_INL_H_
