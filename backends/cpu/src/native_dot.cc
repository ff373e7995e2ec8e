// The dots of the native DeepSeek-V4 weight formats (FP8_B128 and FP4_G32 weights × FP8_ACT128
// activations), one copy per SIMD target, bit for bit Fp8B128::dot / Fp4G32::dot.
//
// Why vector lanes can give the formats' own bits: every product of two E4M3 values (4-bit
// significands) and of an E4M3 value with twice an E2M1 value (an integer up to 12) is exact in
// fp32, and the products of one block are multiples of 2^-18 below 2^25 in magnitude, so their
// sums are exact in double in any order. The block's exact sum is then rounded once to fp32 and
// scaled and accumulated in ascending block order exactly as the reference does.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "native_dot.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <dsv4/core/numeric.hpp>
#include <dsv4/formats/native.hpp>
#include <limits>

#include "dsv4/cpu/kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#undef DSV4_CPU_NATIVE_SIMD
#if HWY_TARGET != HWY_SCALAR && HWY_HAVE_FLOAT64
#define DSV4_CPU_NATIVE_SIMD 1
#else
#define DSV4_CPU_NATIVE_SIMD 0
#endif

#if DSV4_CPU_NATIVE_SIMD
// Lanes(df) E4M3 codes → their fp32 values (exact; 0x7F / 0xFF are NaN as fp8_e4m3::to_float
// gives).
template <class DF>
HWY_INLINE hn::Vec<DF> DecodeE4m3Vec(DF df, const std::uint8_t* HWY_RESTRICT in) {
  const hn::RebindToSigned<DF> di;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<std::uint8_t, DF> d8;
  const auto b = hn::PromoteTo(du, hn::LoadU(d8, in));
  const auto mag_mask = hn::Set(du, 0x7Fu);
  const auto mag = hn::And(b, mag_mask);
  // normal codes: exponent and mantissa moved into place, E4M3's exponent bias 7 → fp32's 127
  const auto normal = hn::BitCast(df, hn::Add(hn::ShiftLeft<20>(mag), hn::Set(du, 120u << 23)));
  // subnormal codes (exponent 0): m·2^-9
  const auto sub = hn::Mul(hn::ConvertTo(df, hn::BitCast(di, mag)), hn::Set(df, 0x1p-9f));
  auto v = hn::IfThenElse(hn::RebindMask(df, hn::Lt(mag, hn::Set(du, 8u))), sub, normal);
  v = hn::IfThenElse(hn::RebindMask(df, hn::Eq(mag, mag_mask)),
                     hn::Set(df, std::numeric_limits<float>::quiet_NaN()), v);
  const auto sign = hn::ShiftLeft<24>(hn::And(b, hn::Set(du, 0x80u)));
  return hn::Or(v, hn::BitCast(df, sign));
}

// The fp32 products p (exact) added to two double accumulators (exact).
template <class DD, class V>
HWY_INLINE void AddExact(DD dd, V p, hn::Vec<DD>& s0, hn::Vec<DD>& s1) {
  const hn::Half<hn::DFromV<V>> dh;
  s0 = hn::Add(s0, hn::PromoteTo(dd, hn::LowerHalf(dh, p)));
  s1 = hn::Add(s1, hn::PromoteTo(dd, hn::UpperHalf(dh, p)));
}

template <class DD>
HWY_INLINE float RoundSum(DD dd, hn::Vec<DD> s0, hn::Vec<DD> s1) {
  return static_cast<float>(hn::GetLane(hn::SumOfLanes(dd, hn::Add(s0, s1))));
}
#endif

// E4M3 codes → their fp32 values (exact; 0x7F / 0xFF are NaN as fp8_e4m3::to_float gives).
void DecodeE4m3(const std::uint8_t* HWY_RESTRICT in, std::size_t n, float* HWY_RESTRICT out) {
  std::size_t i = 0;
#if DSV4_CPU_NATIVE_SIMD
  const hn::ScalableTag<float> df;
  for (; i + hn::Lanes(df) <= n; i += hn::Lanes(df))
    hn::StoreU(DecodeE4m3Vec(df, in + i), df, out + i);
#endif
  for (; i < n; ++i) out[i] = fp8_e4m3::from_bits(in[i]).to_float();
}

// Exact Σ a[j]·w[j] over n values (products exact in fp32, sums exact in double), rounded to fp32.
HWY_INLINE float ExactDot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT w, std::size_t n) {
#if DSV4_CPU_NATIVE_SIMD
  const hn::ScalableTag<float> df;
  const hn::Repartition<double, decltype(df)> dd;
  const std::size_t lanes = hn::Lanes(df);
  if (n % lanes == 0) {
    auto s0 = hn::Zero(dd), s1 = hn::Zero(dd);
    for (std::size_t j = 0; j < n; j += lanes)
      AddExact(dd, hn::Mul(hn::LoadU(df, a + j), hn::LoadU(df, w + j)), s0, s1);
    return RoundSum(dd, s0, s1);
  }
#endif
  double sum = 0.0;
  for (std::size_t j = 0; j < n; ++j) sum += static_cast<double>(a[j] * w[j]);
  return static_cast<float>(sum);
}

// Twice the value of each E2M1 code (integers, exact in any product with an E4M3 value).
constexpr float kE2m1Twice[16] = {0.f,  1.f,  2.f,  3.f,  4.f,  6.f,  8.f,  12.f,
                                  -0.f, -1.f, -2.f, -3.f, -4.f, -6.f, -8.f, -12.f};

// The 32 E2M1 codes of one packed group (element 2k: low nibble of byte k) as twice their value.
HWY_INLINE void DecodeE2m1Twice(const std::uint8_t* HWY_RESTRICT q, float* HWY_RESTRICT out) {
#if DSV4_CPU_NATIVE_SIMD && HWY_TARGET != HWY_EMU128
  const hn::Full128<std::uint8_t> d8;
  const hn::Full128<std::int8_t> di8;
  alignas(16) static constexpr std::int8_t kTable[16] = {0, 1,  2,  3,  4,  6,  8,  12,
                                                         0, -1, -2, -3, -4, -6, -8, -12};
  const auto table = hn::Load(di8, kTable);
  const auto v = hn::LoadU(d8, q);
  const auto lo = hn::And(v, hn::Set(d8, 0x0F));
  const auto hi = hn::ShiftRight<4>(v);
  alignas(16) std::int8_t codes[32];
  hn::Store(hn::TableLookupBytes(table, hn::BitCast(di8, hn::InterleaveLower(d8, lo, hi))), di8,
            codes);
  hn::Store(hn::TableLookupBytes(table, hn::BitCast(di8, hn::InterleaveUpper(d8, lo, hi))), di8,
            codes + 16);
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::int8_t, decltype(df)> d8f;
  for (std::size_t j = 0; j < 32; j += hn::Lanes(df))
    hn::StoreU(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8f, codes + j))), df, out + j);
#else
  for (std::size_t k = 0; k < 16; ++k) {
    out[2 * k] = kE2m1Twice[q[k] & 0x0F];
    out[2 * k + 1] = kE2m1Twice[q[k] >> 4];
  }
#endif
}

void NativeRowEntry(kernels::NativeKind kind, const void* codes, const void* scales, std::size_t nb,
                    const float* a, std::size_t lda, const float* as, std::size_t rows, float* y,
                    std::size_t ldy, float* wbuf) {
  const auto* wc = static_cast<const std::uint8_t*>(codes);
  const auto* wsc = static_cast<const std::uint8_t*>(scales);
  if (kind == kernels::NativeKind::fp8_b128) {
    const std::size_t na = nb;  // one activation block per weight block
#if DSV4_CPU_NATIVE_SIMD
    if (rows == 1) {  // the GEMV: each weight vector decoded in registers and used once
      const hn::ScalableTag<float> df;
      const hn::Repartition<double, decltype(df)> dd;
      const std::size_t lanes = hn::Lanes(df);
      if (128 % lanes == 0) {
        float acc = 0.f;
        for (std::size_t i = 0; i < nb; ++i) {
          auto s0 = hn::Zero(dd), s1 = hn::Zero(dd);
          for (std::size_t j = 0; j < 128; j += lanes) {
            const auto w = DecodeE4m3Vec(df, wc + i * 128 + j);
            AddExact(dd, hn::Mul(hn::LoadU(df, a + i * 128 + j), w), s0, s1);
          }
          const float s = as[i] * ue8m0::from_bits(wsc[i]).to_float();
          acc += RoundSum(dd, s0, s1) * s;
        }
        y[0] = acc;
        return;
      }
    }
#endif
    DecodeE4m3(wc, nb * 128, wbuf);
    for (std::size_t r = 0; r < rows; ++r) {
      const float* ar = a + r * lda;
      float acc = 0.f;
      for (std::size_t i = 0; i < nb; ++i) {
        const float s = as[r * na + i] * ue8m0::from_bits(wsc[i]).to_float();
        acc += ExactDot(ar + i * 128, wbuf + i * 128, 128) * s;
      }
      y[r * ldy] = acc;
    }
  } else {
    const std::size_t na = nb / 4;  // one activation block per 4 weight groups
    for (std::size_t g = 0; g < nb; ++g) DecodeE2m1Twice(wc + g * 16, wbuf + g * 32);
    for (std::size_t r = 0; r < rows; ++r) {
      const float* ar = a + r * lda;
      float acc = 0.f;
      for (std::size_t g = 0; g < nb; ++g) {
        const float s = as[r * na + g / 4] * ue8m0::from_bits(wsc[g]).to_float();
        // the exact sum of a·(2w) rounded once, then halved (exact): the reference's fp32 sum
        acc += ExactDot(ar + g * 32, wbuf + g * 32, 32) * 0.5f * s;
      }
      y[r * ldy] = acc;
    }
  }
}

void DecodeE4m3Entry(const void* codes, std::size_t n, float* out) {
  DecodeE4m3(static_cast<const std::uint8_t*>(codes), n, out);
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::cpu {
HWY_EXPORT(NativeRowEntry);
HWY_EXPORT(DecodeE4m3Entry);

namespace kernels {
void native_row(NativeKind kind, const void* codes, const void* scales, std::size_t nb,
                const float* a, std::size_t lda, const float* as, std::size_t rows, float* y,
                std::size_t ldy, float* wbuf) {
  HWY_DYNAMIC_DISPATCH(NativeRowEntry)(kind, codes, scales, nb, a, lda, as, rows, y, ldy, wbuf);
}
void e4m3_to_f32(const void* codes, std::size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeE4m3Entry)(codes, n, out);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif
