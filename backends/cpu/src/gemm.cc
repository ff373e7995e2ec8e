// Dispatch table of the GEMM and block-dot kernels (one copy per SIMD target).
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
void Q8_0RowsEntry(const void* w, const void* xq, size_t rows, size_t nb, float* out,
                   size_t out_stride) {
  Q8_0Rows(static_cast<const uint8_t*>(w), static_cast<const uint8_t*>(xq), rows, nb, out,
           out_stride);
}
void I8BlockRowsEntry(const int8_t* q, const float* wsc, const void* xq, size_t rows, size_t nb,
                      float* out, size_t out_stride) {
  I8BlockRows(q, wsc, static_cast<const uint8_t*>(xq), rows, nb, out, out_stride);
}
void KqLanesEntry(const int8_t* q, const int8_t* a, size_t a_stride, const int32_t* sc16, size_t nb,
                  int32_t* lanes) {
  KqLanes(q, a, a_stride, sc16, nb, lanes);
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
HWY_EXPORT(Q8_0RowsEntry);
HWY_EXPORT(KqLanesEntry);
HWY_EXPORT(I8BlockRowsEntry);
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
void q8_0_rows(const void* w, const void* xq, std::size_t rows, std::size_t nb, float* out,
               std::size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(Q8_0RowsEntry)(w, xq, rows, nb, out, out_stride);
}
void i8_block_rows(const std::int8_t* q, const float* wsc, const void* xq, std::size_t rows,
                   std::size_t nb, float* out, std::size_t out_stride) {
  HWY_DYNAMIC_DISPATCH(I8BlockRowsEntry)(q, wsc, xq, rows, nb, out, out_stride);
}
void kq_lanes(const std::int8_t* q, const std::int8_t* a, std::size_t a_stride,
              const std::int32_t* sc16, std::size_t nb, std::int32_t* lanes) {
  HWY_DYNAMIC_DISPATCH(KqLanesEntry)(q, a, a_stride, sc16, nb, lanes);
}
void sparse_attention_head(const float* q, const float* kv, const std::int32_t* idx, std::size_t k,
                           std::size_t d, float sink, float scale, bool round_p, float* out,
                           float* acc) {
  HWY_DYNAMIC_DISPATCH(SparseAttnHeadEntry)(q, kv, idx, k, d, sink, scale, round_p, out, acc);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
