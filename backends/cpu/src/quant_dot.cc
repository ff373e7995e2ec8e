// Dispatch table of the quantized dot kernels (quant_dot-inl.h, one copy per SIMD target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant_dot.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <atomic>

#include "quant_dot-inl.h"
#include "quant_gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void B32RowEntry(kernels::B32Kind kind, const void* w, std::size_t nb, const void* xq,
                 const float* xd, std::size_t rows, float* y, std::size_t ldy, std::int8_t* q,
                 float* wsc) {
  B32Row(kind, static_cast<const std::uint8_t*>(w), nb, static_cast<const std::uint8_t*>(xq), xd,
         rows, y, ldy, q, wsc);
}
void Q451RowEntry(bool q5_1, const void* w, std::size_t nb, const void* xq, std::size_t rows,
                  float* y, std::size_t ldy) {
  const auto* wb = static_cast<const std::uint8_t*>(w);
  const auto* xb = static_cast<const std::uint8_t*>(xq);
  if (q5_1) {
    Q451RowK<true>(wb, nb, xb, rows, y, ldy);
  } else {
    Q451RowK<false>(wb, nb, xb, rows, y, ldy);
  }
}
void KqRowEntry(kernels::KqKind kind, const void* w, std::size_t nb, const void* xq,
                std::size_t rows, float* y, std::size_t ldy, std::uint8_t* q, kernels::KqBlock* k) {
  KqRow(kind, static_cast<const std::uint8_t*>(w), nb, static_cast<const std::uint8_t*>(xq), rows,
        y, ldy, q, k);
}
void RepackedRowEntry(kernels::RepackKind kind, const void* w, std::size_t nb, const void* xq,
                      const float* xd, std::size_t rows, std::size_t gemm_rows, float* y,
                      std::size_t ldy, std::uint8_t* q, kernels::KqBlock* k) {
  RepackedRow(kind, static_cast<const std::uint8_t*>(w), nb, static_cast<const std::uint8_t*>(xq),
              xd, rows, gemm_rows, y, ldy, q, k);
}
void B32TileEntry(kernels::B32Kind kind, const void* w, std::size_t n, std::size_t nb,
                  const void* xq, const float* xd, const std::int32_t* asum, std::size_t rows,
                  float* y, std::size_t ldy, std::int8_t* q, float* wsc) {
  B32Tile(kind, static_cast<const std::uint8_t*>(w), n, nb, static_cast<const std::uint8_t*>(xq),
          xd, asum, rows, y, ldy, q, wsc);
}
void KqTileEntry(kernels::KqKind kind, const void* w, std::size_t n, std::size_t nb, const void* xq,
                 const std::int16_t* a16, std::size_t rows, float* y, std::size_t ldy,
                 std::uint8_t* q, kernels::KqBlock* k) {
  KqTile(kind, static_cast<const std::uint8_t*>(w), n, nb, static_cast<const std::uint8_t*>(xq),
         a16, rows, y, ldy, q, k);
}
void Q8_KWidenEntry(const void* xq, std::size_t n_blocks, std::int16_t* out) {
  Q8_KWiden(static_cast<const std::uint8_t*>(xq), n_blocks, out);
}
void Q8_0OffsetsEntry(const void* xq, std::size_t n_blocks, std::int32_t* out) {
  Q8_0Offsets(static_cast<const std::uint8_t*>(xq), n_blocks, out);
}
bool PackedActiveEntry() {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  return PackedAllowed();
#else
  return false;
#endif
}
void QuantizeQ8_0Entry(const float* x, std::size_t n_blocks, void* out, float* xd) {
  QuantizeQ8_0(x, n_blocks, static_cast<std::uint8_t*>(out), xd);
}
void QuantizeQ8_KEntry(const float* x, std::size_t n_blocks, void* out) {
  QuantizeQ8_K(x, n_blocks, static_cast<std::uint8_t*>(out));
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace dsv4::cpu {
HWY_EXPORT(B32RowEntry);
HWY_EXPORT(Q451RowEntry);
HWY_EXPORT(KqRowEntry);
HWY_EXPORT(RepackedRowEntry);
HWY_EXPORT(B32TileEntry);
HWY_EXPORT(KqTileEntry);
HWY_EXPORT(Q8_0OffsetsEntry);
HWY_EXPORT(Q8_KWidenEntry);
HWY_EXPORT(PackedActiveEntry);
HWY_EXPORT(QuantizeQ8_0Entry);
HWY_EXPORT(QuantizeQ8_KEntry);

namespace kernels {
void b32_row(B32Kind kind, const void* w, std::size_t nb, const void* xq, const float* xd,
             std::size_t rows, float* y, std::size_t ldy, std::int8_t* q, float* wsc) {
  HWY_DYNAMIC_DISPATCH(B32RowEntry)(kind, w, nb, xq, xd, rows, y, ldy, q, wsc);
}
void q451_row(bool q5_1, const void* w, std::size_t nb, const void* xq, std::size_t rows, float* y,
              std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(Q451RowEntry)(q5_1, w, nb, xq, rows, y, ldy);
}
void kq_row(KqKind kind, const void* w, std::size_t nb, const void* xq, std::size_t rows, float* y,
            std::size_t ldy, std::uint8_t* q, KqBlock* k) {
  HWY_DYNAMIC_DISPATCH(KqRowEntry)(kind, w, nb, xq, rows, y, ldy, q, k);
}
void repacked_row(RepackKind kind, const void* w, std::size_t nb, const void* xq, const float* xd,
                  std::size_t rows, std::size_t gemm_rows, float* y, std::size_t ldy,
                  std::uint8_t* q, KqBlock* k) {
  HWY_DYNAMIC_DISPATCH(RepackedRowEntry)(kind, w, nb, xq, xd, rows, gemm_rows, y, ldy, q, k);
}
void quantize_q8_0(const float* x, std::size_t n_blocks, void* out, float* xd) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8_0Entry)(x, n_blocks, out, xd);
}
void quantize_q8_k(const float* x, std::size_t n_blocks, void* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8_KEntry)(x, n_blocks, out);
}
void b32_tile(B32Kind kind, const void* w, std::size_t n, std::size_t nb, const void* xq,
              const float* xd, const std::int32_t* asum, std::size_t rows, float* y,
              std::size_t ldy, std::int8_t* q, float* wsc) {
  HWY_DYNAMIC_DISPATCH(B32TileEntry)(kind, w, n, nb, xq, xd, asum, rows, y, ldy, q, wsc);
}
void kq_tile(KqKind kind, const void* w, std::size_t n, std::size_t nb, const void* xq,
             const std::int16_t* a16, std::size_t rows, float* y, std::size_t ldy, std::uint8_t* q,
             KqBlock* k) {
  HWY_DYNAMIC_DISPATCH(KqTileEntry)(kind, w, n, nb, xq, a16, rows, y, ldy, q, k);
}
void q8_k_widen(const void* xq, std::size_t n_blocks, std::int16_t* out) {
  HWY_DYNAMIC_DISPATCH(Q8_KWidenEntry)(xq, n_blocks, out);
}
void q8_0_offsets(const void* xq, std::size_t n_blocks, std::int32_t* out) {
  HWY_DYNAMIC_DISPATCH(Q8_0OffsetsEntry)(xq, n_blocks, out);
}
namespace {
std::atomic<bool> g_packed_allowed{true};
}  // namespace
bool packed_gemm_allowed() { return g_packed_allowed.load(std::memory_order_relaxed); }
void allow_packed_gemm(bool allowed) { g_packed_allowed.store(allowed, std::memory_order_relaxed); }
bool packed_gemm_active() { return HWY_DYNAMIC_DISPATCH(PackedActiveEntry)(); }
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
