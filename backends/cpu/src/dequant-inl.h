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
#include <dsv4/formats/iq4.hpp>
#include <dsv4/formats/k_quants.hpp>
#include <dsv4/formats/mxfp4.hpp>
#include <dsv4/formats/q4_0.hpp>
#include <dsv4/formats/q5.hpp>
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

// The fifth bits of elements j.. j+N of a Q5_0/Q5_1 block: bit j+lane of the little-endian qh.
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DequantTag>> FifthBits(const std::uint8_t* qh_bytes,
                                                              size_t j) {
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<uint32_t, decltype(df)> du;
  const std::uint32_t qh =
      static_cast<std::uint32_t>(qh_bytes[0]) | static_cast<std::uint32_t>(qh_bytes[1]) << 8 |
      static_cast<std::uint32_t>(qh_bytes[2]) << 16 | static_cast<std::uint32_t>(qh_bytes[3]) << 24;
  const auto bits = hn::Shr(hn::Set(du, qh), hn::Iota(du, static_cast<std::uint32_t>(j)));
  return hn::BitCast(di, hn::ShiftLeft<4>(hn::And(bits, hn::Set(du, 1u))));
}

// The 32-value formats with 4-bit codes and an offset or a minimum: out[32·b + j] =
// float(q − 8) · d (Q4_0::dequantize), float(q − 16) · d (Q5_0, q with its fifth bit from qh), or
// float(q) · d + m (Q4_1, Q5_1). Byte j holds elements j (low nibble) and j + 16 (high).
template <class Block>
HWY_INLINE void DequantQ45_01(const Block* HWY_RESTRICT w, size_t n, float* HWY_RESTRICT out) {
  constexpr bool kQ5 =
      std::is_same_v<Block, Q5_0::block_type> || std::is_same_v<Block, Q5_1::block_type>;
  constexpr bool kMin =
      std::is_same_v<Block, Q4_1::block_type> || std::is_same_v<Block, Q5_1::block_type>;
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  const auto low = hn::Set(di, 0xF);
  const auto offset = hn::Set(di, kQ5 ? 16 : 8);
  for (size_t b = 0; b < n; ++b) {
    const auto d = hn::Set(df, w[b].d.to_float());
    for (size_t j = 0; j < 16; j += N) {
      const auto q = Bytes(w[b].qs + j);
      auto lo = hn::And(q, low);
      auto hi = hn::ShiftRight<4>(q);
      if constexpr (kQ5) {
        lo = hn::Or(lo, FifthBits(w[b].qh, j));
        hi = hn::Or(hi, FifthBits(w[b].qh, j + 16));
      }
      if constexpr (kMin) {
        const auto m = hn::Set(df, w[b].m.to_float());
        hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, lo), d), m), df, out + 32 * b + j);
        hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, hi), d), m), df, out + 32 * b + 16 + j);
      } else {
        hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::Sub(lo, offset)), d), df, out + 32 * b + j);
        hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::Sub(hi, offset)), d), df, out + 32 * b + 16 + j);
      }
    }
  }
}

// One 32-value group of 4-bit codes through a 16-entry table (IQ4_NL / IQ4_XS kvalues, MXFP4's
// doubled E2M1 values): out[j] = scale · table[code] (IQ4_NL: d; IQ4_XS: the sub-block's
// d·(ls − 32); MXFP4: 2^(e−128) — the formats write table[code] · scale, the same product). Byte j
// holds the codes of elements j (low nibble) and j + 16 (high).
HWY_INLINE void DequantTable32(const std::uint8_t* HWY_RESTRICT qs, float scale,
                               const std::int8_t* HWY_RESTRICT table, float* HWY_RESTRICT out) {
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const hn::CappedTag<uint8_t, 16> d8;
  const size_t N = hn::Lanes(df);
  alignas(16) std::int8_t v[32];  // the codes' table values, in element order
  if (hn::Lanes(d8) == 16) {
    const auto tbl = hn::LoadU(d8, reinterpret_cast<const std::uint8_t*>(table));
    const auto q = hn::LoadU(d8, qs);
    hn::StoreU(hn::TableLookupBytes(tbl, hn::And(q, hn::Set(d8, 0xF))), d8,
               reinterpret_cast<std::uint8_t*>(v));
    hn::StoreU(hn::TableLookupBytes(tbl, hn::ShiftRight<4>(q)), d8,
               reinterpret_cast<std::uint8_t*>(v) + 16);
  } else {
    for (size_t j = 0; j < 16; ++j) {
      v[j] = table[qs[j] & 0xF];
      v[j + 16] = table[qs[j] >> 4];
    }
  }
  const auto s = hn::Set(df, scale);
  for (size_t j = 0; j < 32; j += N) {
    hn::StoreU(hn::Mul(s, hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(di8, v + j)))), df,
               out + j);
  }
}

inline constexpr std::int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};

// IQ4_NL::dequantize: d · kvalues[c].
HWY_INLINE void DequantIQ4_NL(const IQ4_NL::block_type* HWY_RESTRICT w, size_t n,
                              float* HWY_RESTRICT out) {
  for (size_t b = 0; b < n; ++b)
    DequantTable32(w[b].qs, w[b].d.to_float(), kIq4Values, out + 32 * b);
}

// IQ4_XS::dequantize: (d · (ls − 32)) · kvalues[c] per 32-value sub-block.
HWY_INLINE void DequantIQ4_XS(const IQ4_XS::block_type* HWY_RESTRICT w, size_t n,
                              float* HWY_RESTRICT out) {
  for (size_t b = 0; b < n; ++b) {
    const float d = w[b].d.to_float();
    for (int ib = 0; ib < 8; ++ib) {
      const float dl = d * static_cast<float>(IQ4_XS::sub_scale(w[b], ib) - 32);
      DequantTable32(w[b].qs + 16 * ib, dl, kIq4Values, out + 256 * b + 32 * ib);
    }
  }
}

// MXFP4::dequantize: kvalues[c] · 2^(e−128).
HWY_INLINE void DequantMXFP4(const MXFP4::block_type* HWY_RESTRICT w, size_t n,
                             float* HWY_RESTRICT out) {
  for (size_t b = 0; b < n; ++b) {
    DequantTable32(w[b].qs, detail::ggml::e8m0_to_fp32_half(w[b].e.bits),
                   detail::ggml::kMxfp4Values, out + 32 * b);
  }
}

// Q2_K::dequantize: (d · sc) · float(q) − dmin · m per 16-value group; Q3_K::dequantize:
// (d · scale) · float(q) with q = low2 − (high bit clear ? 4 : 0). Element 128·h + 32·k + l has
// its two low bits in bits 2k of qs[32·h + l] and Q3_K's high bit in bit 4h + k of hmask[l].
template <class Block>
HWY_INLINE void DequantQ23_K(const Block* HWY_RESTRICT w, size_t n, float* HWY_RESTRICT out) {
  constexpr bool kQ3 = std::is_same_v<Block, Q3_K::block_type>;
  const DequantTag df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const size_t N = hn::Lanes(df);
  const auto three = hn::Set(di, 3);
  const auto one = hn::Set(di, 1);
  const auto four = hn::Set(di, 4);
  for (size_t b = 0; b < n; ++b) {
    const float d = w[b].d.to_float();
    float* o = out + 256 * b;
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (size_t l = 0; l < 32; l += N) {
          const size_t e = 128 * static_cast<size_t>(h) + 32 * static_cast<size_t>(k) + l;
          auto q = hn::And(hn::ShiftRightSame(Bytes(w[b].qs + 32 * h + l), 2 * k), three);
          if constexpr (kQ3) {
            const auto high = hn::And(hn::ShiftRightSame(Bytes(w[b].hmask + l), 4 * h + k), one);
            q = hn::Sub(q, hn::Sub(four, hn::ShiftLeft<2>(high)));
            const float dl =
                d * static_cast<float>(detail::kq::q3_scale(w[b].scales, static_cast<int>(e / 16)));
            hn::StoreU(hn::Mul(hn::Set(df, dl), hn::ConvertTo(df, q)), df, o + e);
          } else {
            const int sc = w[b].scales[e / 16];
            const auto dl = hn::Set(df, d * static_cast<float>(sc & 0xF));
            const auto ml = hn::Set(df, w[b].dmin.to_float() * static_cast<float>(sc >> 4));
            hn::StoreU(hn::Sub(hn::Mul(dl, hn::ConvertTo(df, q)), ml), df, o + e);
          }
        }
      }
    }
  }
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DSV4_CPU_DEQUANT_INL_H_
