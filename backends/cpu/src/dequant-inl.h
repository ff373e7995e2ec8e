// Per-target kernels of dequant.cc: weight rows dequantised to float (the DequantDot tiles of
// cpu::Backend), bit for bit the formats' own dequantize. Re-included once per SIMD target by
// hwy/foreach_target.h (toggle guard below).
#if defined(DSV4_CPU_DEQUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_DEQUANT_INL_H_
#undef DSV4_CPU_DEQUANT_INL_H_
#else
#define DSV4_CPU_DEQUANT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <dsv4/formats/k_quants.hpp>
#include <dsv4/formats/q4_0.hpp>
#include <dsv4/formats/q8_0.hpp>
#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes: a chunk never straddles two of Q6_K's 16-value scale groups.
using DequantTag = hn::CappedTag<float, 16>;

// The bytes p[0..N) as int32 lanes.
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DequantTag>> Bytes(const std::uint8_t* HWY_RESTRICT p) {
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  return hn::BitCast(di, hn::PromoteTo(hn::Rebind<uint32_t, decltype(df)>(), hn::LoadU(du8, p)));
}

// out[32·b + j] = float(qs[j]) · d for every block b (Q8_0::dequantize).
HWY_INLINE void DequantQ8_0(const Q8_0::block_type* HWY_RESTRICT w, size_t n,
                            float* HWY_RESTRICT out) {
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const size_t N = hn::Lanes(df);
  for (size_t b = 0; b < n; ++b) {
    const auto d = hn::Set(df, w[b].d.to_float());
    for (size_t j = 0; j < 32; j += N) {
      const auto q = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(di8, w[b].qs + j)));
      hn::StoreU(hn::Mul(q, d), df, out + 32 * b + j);
    }
  }
}

// out[256·b + e] = d1 · float(q) − m1 with the sub-block's scale and min (Q4_K::dequantize;
// Q5_K::dequantize with the fifth bit of q from qh).
template <class Block>
HWY_INLINE void DequantQ45_K(const Block* HWY_RESTRICT w, size_t n, float* HWY_RESTRICT out) {
  constexpr bool kQ5 = std::is_same_v<Block, Q5_K::block_type>;
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  const auto low = hn::Set(di, 0xF);
  const auto one = hn::Set(di, 1);
  for (size_t b = 0; b < n; ++b) {
    const float d = w[b].d.to_float();
    const float dmin = w[b].dmin.to_float();
    float* o = out + 256 * b;
    for (int c = 0; c < 4; ++c) {
      int sc = 0, m = 0;
      detail::kq::get_scale_min_k4(2 * c, w[b].scales, sc, m);
      const auto d1 = hn::Set(df, d * static_cast<float>(sc));
      const auto m1 = hn::Set(df, dmin * static_cast<float>(m));
      detail::kq::get_scale_min_k4(2 * c + 1, w[b].scales, sc, m);
      const auto d2 = hn::Set(df, d * static_cast<float>(sc));
      const auto m2 = hn::Set(df, dmin * static_cast<float>(m));
      for (size_t l = 0; l < 32; l += N) {
        const auto q = Bytes(w[b].qs + 32 * c + l);
        auto lo = hn::And(q, low);
        auto hi = hn::ShiftRight<4>(q);
        if constexpr (kQ5) {
          const auto h = Bytes(w[b].qh + l);
          lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c), one)));
          hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c + 1), one)));
        }
        hn::StoreU(hn::Sub(hn::Mul(d1, hn::ConvertTo(df, lo)), m1), df, o + 64 * c + l);
        hn::StoreU(hn::Sub(hn::Mul(d2, hn::ConvertTo(df, hi)), m2), df, o + 64 * c + 32 + l);
      }
    }
  }
}

// out[32·b + j] = float(q − 8) · d (Q4_0::dequantize), or float(q) · d + m (Q4_1::dequantize):
// byte j holds elements j (low nibble) and j + 16 (high).
template <class Block>
HWY_INLINE void DequantQ4_01(const Block* HWY_RESTRICT w, size_t n, float* HWY_RESTRICT out) {
  constexpr bool kQ41 = std::is_same_v<Block, Q4_1::block_type>;
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  const auto low = hn::Set(di, 0xF);
  const auto eight = hn::Set(di, 8);
  for (size_t b = 0; b < n; ++b) {
    const auto d = hn::Set(df, w[b].d.to_float());
    for (size_t j = 0; j < 16; j += N) {
      const auto q = Bytes(w[b].qs + j);
      auto lo = hn::And(q, low);
      auto hi = hn::ShiftRight<4>(q);
      if constexpr (kQ41) {
        const auto m = hn::Set(df, w[b].m.to_float());
        hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, lo), d), m), df, out + 32 * b + j);
        hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, hi), d), m), df, out + 32 * b + 16 + j);
      } else {
        lo = hn::Sub(lo, eight);
        hi = hn::Sub(hi, eight);
        hn::StoreU(hn::Mul(hn::ConvertTo(df, lo), d), df, out + 32 * b + j);
        hn::StoreU(hn::Mul(hn::ConvertTo(df, hi), d), df, out + 32 * b + 16 + j);
      }
    }
  }
}

// out[256·b + e] = (d · float(scale)) · float(q − 32) (Q6_K::dequantize).
HWY_INLINE void DequantQ6_K(const Q6_K::block_type* HWY_RESTRICT w, size_t n,
                            float* HWY_RESTRICT out) {
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  const auto low = hn::Set(di, 0xF);
  const auto two = hn::Set(di, 3);
  const auto bias = hn::Set(di, 32);
  for (size_t b = 0; b < n; ++b) {
    const float d = w[b].d.to_float();
    float* o = out + 256 * b;
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (size_t l = 0; l < 32; l += N) {
          const auto ql = Bytes(w[b].ql + 64 * h + 32 * (k & 1) + l);
          const auto qh = Bytes(w[b].qh + 32 * h + l);
          const auto lo = hn::And(hn::ShiftRightSame(ql, 4 * (k >> 1)), low);
          const auto hi = hn::And(hn::ShiftRightSame(qh, 2 * k), two);
          const auto q = hn::Sub(hn::Or(lo, hn::ShiftLeft<4>(hi)), bias);
          const size_t e = 128 * static_cast<size_t>(h) + 32 * static_cast<size_t>(k) + l;
          const auto s = hn::Set(df, d * static_cast<float>(w[b].scales[e / 16]));
          hn::StoreU(hn::Mul(s, hn::ConvertTo(df, q)), df, o + e);
        }
      }
    }
  }
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DSV4_CPU_DEQUANT_INL_H_
