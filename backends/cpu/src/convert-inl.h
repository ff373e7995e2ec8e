// Per-target kernels of convert.cc: bf16 <-> f32 and the f32 dot product.
// Re-included once per SIMD target by hwy/foreach_target.h (toggle guard below).
#if defined(DSV4_CPU_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_CONVERT_INL_H_
#undef DSV4_CPU_CONVERT_INL_H_
#else
#define DSV4_CPU_CONVERT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <dsv4/core/numeric.hpp>

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

HWY_INLINE void Bf16ToF32(const bf16* HWY_RESTRICT in, float* HWY_RESTRICT out, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Repartition<hwy::bfloat16_t, decltype(df)> dbf;
  const hn::Half<decltype(dbf)> dbfh;
  const size_t N = hn::Lanes(df);
  const auto* src = reinterpret_cast<const hwy::bfloat16_t*>(in);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dbfh, src + i)), df, out + i);
  }
  for (; i < n; ++i) out[i] = in[i].to_float();
}

HWY_INLINE void F32ToBf16(const float* HWY_RESTRICT in, bf16* HWY_RESTRICT out, size_t n) {
  // Round to nearest even on the integer bits: (x + 0x7fff + lsb) >> 16, NaNs made quiet.
  const hn::ScalableTag<uint32_t> du;
  const hn::Rebind<uint16_t, decltype(du)> du16;
  const hn::RebindToSigned<decltype(du)> di;
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(du);
  const auto bias = hn::Set(du, 0x7fffu);
  const auto one = hn::Set(du, 1u);
  const auto quiet = hn::Set(du, 0x00400000u);
  auto* dst = reinterpret_cast<uint16_t*>(out);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto f = hn::LoadU(df, in + i);
    const auto x = hn::BitCast(du, f);
    const auto lsb = hn::And(hn::ShiftRight<16>(x), one);
    const auto rounded = hn::Add(hn::Add(x, bias), lsb);
    const auto nan = hn::Or(x, quiet);
    const auto r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(f)), nan, rounded);
    // Highway 1.0.3 demotes i32 -> u16 (saturating); the shifted values fit in 16 bits.
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, hn::ShiftRight<16>(r))), du16, dst + i);
  }
  for (; i < n; ++i) out[i] = bf16(in[i]);
}

HWY_INLINE float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  // Two accumulators hide part of the FMA latency.
  auto acc0 = hn::Zero(df);
  auto acc1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), acc1);
  }
  for (; i + N <= n; i += N) acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
