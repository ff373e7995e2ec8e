// Dispatch table of the conversion and dot kernels (one copy per SIMD target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "convert.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "convert-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void Bf16ToF32Entry(const bf16* in, float* out, size_t n) { Bf16ToF32(in, out, n); }
void F32ToBf16Entry(const float* in, bf16* out, size_t n) { F32ToBf16(in, out, n); }
float DotEntry(const float* a, const float* b, size_t n) { return Dot(a, b, n); }
const char* TargetNameEntry() { return hwy::TargetName(HWY_TARGET); }
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dsv4/cpu/backend.hpp"

namespace dsv4::cpu {
HWY_EXPORT(Bf16ToF32Entry);
HWY_EXPORT(F32ToBf16Entry);
HWY_EXPORT(DotEntry);
HWY_EXPORT(TargetNameEntry);

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(TargetNameEntry)(); }
void bf16_to_f32(const bf16* in, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(Bf16ToF32Entry)(in, out, n);
}
void f32_to_bf16(const float* in, bf16* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(F32ToBf16Entry)(in, out, n);
}
float dot(const float* a, const float* b, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(DotEntry)(a, b, n);
}
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
