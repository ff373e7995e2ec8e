// Dispatch table of the dense GEMM and attention kernels (one copy per SIMD target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "gemm.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void GemmF32Entry(const float* x, size_t ldx, size_t rows, const float* w, size_t ldw, size_t o0,
                  size_t o1, size_t in, float* y, size_t ldy) {
  GemmTile(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void GemmBf16Entry(const float* x, size_t ldx, size_t rows, const bf16* w, size_t ldw, size_t o0,
                   size_t o1, size_t in, float* y, size_t ldy) {
  GemmTile(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void GemmF16Entry(const float* x, size_t ldx, size_t rows, const f16* w, size_t ldw, size_t o0,
                  size_t o1, size_t in, float* y, size_t ldy) {
  GemmTile(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void SparseAttnHeadEntry(const float* q, const float* kv, const int32_t* idx, size_t k, size_t d,
                         float sink, float scale, bool round_p, float* out, float* acc) {
  SparseAttnHead(q, kv, idx, k, d, sink, scale, round_p, out, acc);
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dsv4/cpu/kernels.hpp"

namespace dsv4::cpu {
HWY_EXPORT(GemmF32Entry);
HWY_EXPORT(GemmBf16Entry);
HWY_EXPORT(GemmF16Entry);
HWY_EXPORT(SparseAttnHeadEntry);

namespace kernels {
void gemm(const float* x, std::size_t ldx, std::size_t rows, const float* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmF32Entry)(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void gemm(const float* x, std::size_t ldx, std::size_t rows, const bf16* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmBf16Entry)(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void gemm(const float* x, std::size_t ldx, std::size_t rows, const f16* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmF16Entry)(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void sparse_attention_head(const float* q, const float* kv, const std::int32_t* idx, std::size_t k,
                           std::size_t d, float sink, float scale, bool round_p, float* out,
                           float* acc) {
  HWY_DYNAMIC_DISPATCH(SparseAttnHeadEntry)(q, kv, idx, k, d, sink, scale, round_p, out, acc);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
