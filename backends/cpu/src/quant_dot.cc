// Dispatch table of the quantized dot kernels (quant_dot-inl.h, one copy per SIMD target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant_dot.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "quant_dot-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void Q8_0RowEntry(const void* w, std::size_t nb, const void* xq, const float* xd, std::size_t rows,
                  float* y, std::size_t ldy, std::int8_t* q, float* wsc) {
  const auto* wb = static_cast<const std::uint8_t*>(w);
  const auto* xb = static_cast<const std::uint8_t*>(xq);
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  (void)q;
  (void)wsc;
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    Q8_0RowsR<R>(wb, nb, xb + r * nb * 34, xd + r * nb, y + r * ldy, ldy);
  });
#else
  UnpackQ8_0(wb, nb, q, wsc);
  I8Rows(q, wsc, xb, xd, rows, nb, y, ldy);
#endif
}
void I8RowsEntry(const std::int8_t* q, const float* wsc, const void* xq, const float* xd,
                 std::size_t rows, std::size_t nb, float* y, std::size_t ldy) {
  I8Rows(q, wsc, static_cast<const std::uint8_t*>(xq), xd, rows, nb, y, ldy);
}
void KqRowEntry(kernels::KqKind kind, const void* w, std::size_t nb, const void* xq,
                std::size_t rows, float* y, std::size_t ldy, std::uint8_t* q, kernels::KqBlock* k) {
  const auto* wb = static_cast<const std::uint8_t*>(w);
  const auto* xb = static_cast<const std::uint8_t*>(xq);
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (kind == kernels::KqKind::q4_k) {
    ForRowGroups(rows, [&]<int R>(std::size_t r) {
      Q4KRowsR<R>(wb, nb, xb + r * nb * 292, y + r * ldy, ldy);
    });
    return;
  }
  if (kind == kernels::KqKind::q6_k) {
    ForRowGroups(rows, [&]<int R>(std::size_t r) {
      Q6KRowsR<R>(wb, nb, xb + r * nb * 292, y + r * ldy, ldy);
    });
    return;
  }
#endif
  UnpackKq(kind, wb, nb, q, k);
  KqRows(q, k, xb, rows, nb, y, ldy);
}
void QuantizeQ8_0Entry(const float* x, std::size_t n_blocks, void* out, float* xd) {
  QuantizeQ8_0(x, n_blocks, static_cast<std::uint8_t*>(out), xd);
}
void QuantizeQ8_KEntry(const float* x, std::size_t n_blocks, void* out) {
  QuantizeQ8_K(x, n_blocks, static_cast<std::uint8_t*>(out));
}
void HalfToFloatEntry(const std::uint16_t* in, std::size_t stride, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = HalfToFloat(in[i * stride]);
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::cpu {
HWY_EXPORT(Q8_0RowEntry);
HWY_EXPORT(I8RowsEntry);
HWY_EXPORT(KqRowEntry);
HWY_EXPORT(HalfToFloatEntry);
HWY_EXPORT(QuantizeQ8_0Entry);
HWY_EXPORT(QuantizeQ8_KEntry);

namespace kernels {
void q8_0_row(const void* w, std::size_t nb, const void* xq, const float* xd, std::size_t rows,
              float* y, std::size_t ldy, std::int8_t* q, float* wsc) {
  HWY_DYNAMIC_DISPATCH(Q8_0RowEntry)(w, nb, xq, xd, rows, y, ldy, q, wsc);
}
void i8_rows(const std::int8_t* q, const float* wsc, const void* xq, const float* xd,
             std::size_t rows, std::size_t nb, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(I8RowsEntry)(q, wsc, xq, xd, rows, nb, y, ldy);
}
void kq_row(KqKind kind, const void* w, std::size_t nb, const void* xq, std::size_t rows, float* y,
            std::size_t ldy, std::uint8_t* q, KqBlock* k) {
  HWY_DYNAMIC_DISPATCH(KqRowEntry)(kind, w, nb, xq, rows, y, ldy, q, k);
}
void quantize_q8_0(const float* x, std::size_t n_blocks, void* out, float* xd) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8_0Entry)(x, n_blocks, out, xd);
}
void quantize_q8_k(const float* x, std::size_t n_blocks, void* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8_KEntry)(x, n_blocks, out);
}
void half_to_float(const std::uint16_t* in, std::size_t stride, std::size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(HalfToFloatEntry)(in, stride, n, out);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
