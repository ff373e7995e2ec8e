// Dispatch table of the weight dequantisation kernels (one copy per SIMD target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dequant.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "dequant-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void DequantizeBlocksEntry(int kind, const void* w, size_t n_blocks, float* out) {
  switch (kind) {
    case 0:
      DequantQ8_0(static_cast<const Q8_0::block_type*>(w), n_blocks, out);
      break;
    case 1:
      DequantQ45_K(static_cast<const Q4_K::block_type*>(w), n_blocks, out);
      break;
    case 2:
      DequantQ6_K(static_cast<const Q6_K::block_type*>(w), n_blocks, out);
      break;
    case 3:
      DequantQ45_K(static_cast<const Q5_K::block_type*>(w), n_blocks, out);
      break;
    case 4:
      DequantQ45_01(static_cast<const Q4_0::block_type*>(w), n_blocks, out);
      break;
    case 5:
      DequantQ45_01(static_cast<const Q4_1::block_type*>(w), n_blocks, out);
      break;
    case 6:
      DequantQ45_01(static_cast<const Q5_0::block_type*>(w), n_blocks, out);
      break;
    case 7:
      DequantQ45_01(static_cast<const Q5_1::block_type*>(w), n_blocks, out);
      break;
    case 8:
      DequantQ23_K(static_cast<const Q2_K::block_type*>(w), n_blocks, out);
      break;
    case 9:
      DequantQ23_K(static_cast<const Q3_K::block_type*>(w), n_blocks, out);
      break;
    case 10:
      DequantIQ4_NL(static_cast<const IQ4_NL::block_type*>(w), n_blocks, out);
      break;
    case 11:
      DequantIQ4_XS(static_cast<const IQ4_XS::block_type*>(w), n_blocks, out);
      break;
    default:
      DequantMXFP4(static_cast<const MXFP4::block_type*>(w), n_blocks, out);
      break;
  }
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dsv4/cpu/kernels.hpp"

namespace dsv4::cpu {
HWY_EXPORT(DequantizeBlocksEntry);

namespace kernels {
void dequantize_blocks(DequantKind kind, const void* w, std::size_t n_blocks, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantizeBlocksEntry)(static_cast<int>(kind), w, n_blocks, out);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
