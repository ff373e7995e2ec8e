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
void GemmGgmlF32Entry(const float* x, size_t ldx, size_t rows, const float* w, size_t ldw,
                      size_t o0, size_t o1, size_t in, float* y, size_t ldy) {
  GemmGgml16(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void GemmGgmlF16Entry(const float* x, size_t ldx, size_t rows, const f16* w, size_t ldw, size_t o0,
                      size_t o1, size_t in, float* y, size_t ldy) {
  GemmGgml16(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
double FmaProbeEntry(std::size_t iters) {
  const hn::ScalableTag<float> df;
  auto a0 = hn::Set(df, 0.5f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  auto a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  const auto m = hn::Set(df, 0.999999f);
  const auto c = hn::Set(df, 1e-7f);
  for (std::size_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, c);
    a1 = hn::MulAdd(a1, m, c);
    a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c);
    a4 = hn::MulAdd(a4, m, c);
    a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c);
    a7 = hn::MulAdd(a7, m, c);
    a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c);
    a10 = hn::MulAdd(a10, m, c);
    a11 = hn::MulAdd(a11, m, c);
  }
  const auto s = hn::Add(
      hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7))),
      hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
  volatile float sink = hn::GetLane(hn::SumOfLanes(df, s));
  (void)sink;
  return 2.0 * 12.0 * static_cast<double>(hn::Lanes(df)) * static_cast<double>(iters);
}
void IndexDotsEntry(const float* q, size_t heads, size_t di, const float* keys, size_t ldk,
                    size_t n, float* dots, size_t ldd) {
  IndexDots(q, heads, di, keys, ldk, n, dots, ldd);
}
void SparseAttnHeadsEntry(const float* q, size_t heads, const float* kv, const int32_t* idx,
                          size_t k, size_t d, const float* sinks, float scale, bool round_p,
                          float* out, float* acc) {
  SparseAttnHeads(q, heads, kv, idx, k, d, sinks, scale, round_p, out, acc);
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dsv4/cpu/kernels.hpp"

namespace dsv4::cpu {
HWY_EXPORT(GemmF32Entry);
HWY_EXPORT(GemmBf16Entry);
HWY_EXPORT(GemmF16Entry);
HWY_EXPORT(GemmGgmlF32Entry);
HWY_EXPORT(GemmGgmlF16Entry);
HWY_EXPORT(SparseAttnHeadsEntry);
HWY_EXPORT(IndexDotsEntry);
HWY_EXPORT(FmaProbeEntry);

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
void gemm_ggml(const float* x, std::size_t ldx, std::size_t rows, const float* w, std::size_t ldw,
               std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmGgmlF32Entry)(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void gemm_ggml(const float* x, std::size_t ldx, std::size_t rows, const f16* w, std::size_t ldw,
               std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmGgmlF16Entry)(x, ldx, rows, w, ldw, o0, o1, in, y, ldy);
}
void index_dots(const float* q, std::size_t heads, std::size_t di, const float* keys,
                std::size_t ldk, std::size_t n, float* dots, std::size_t ldd) {
  HWY_DYNAMIC_DISPATCH(IndexDotsEntry)(q, heads, di, keys, ldk, n, dots, ldd);
}
double fma_probe(std::size_t iters) { return HWY_DYNAMIC_DISPATCH(FmaProbeEntry)(iters); }
void sparse_attention_heads(const float* q, std::size_t heads, const float* kv,
                            const std::int32_t* idx, std::size_t k, std::size_t d,
                            const float* sinks, float scale, bool round_p, float* out, float* acc) {
  HWY_DYNAMIC_DISPATCH(SparseAttnHeadsEntry)
  (q, heads, kv, idx, k, d, sinks, scale, round_p, out, acc);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
