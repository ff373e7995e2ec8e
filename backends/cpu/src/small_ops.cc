// Dispatch table of the RoPE rotation and the compressor's softmax pooling (one copy per SIMD
// target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "small_ops.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "small_ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {
void RopeRotateEntry(float* x, size_t n_vec, size_t vec_len, size_t rope_dim, const float* cdup,
                     const float* salt, bool round_bf16, bool ggml_fma) {
  RopeRotate(x, n_vec, vec_len, rope_dim, cdup, salt, round_bf16, ggml_fma);
}
void HcPostGgmlEntry(const float* f, const float* res, const float* post, const float* comb,
                     size_t tokens, size_t d, float* out) {
  HcPostGgml(f, res, post, comb, tokens, d, out);
}
void SoftmaxPoolEntry(const float* const* kv, const float* const* score, size_t m, size_t d,
                      float* y) {
  SoftmaxPool(kv, score, m, d, y);
}
}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "dsv4/cpu/kernels.hpp"

namespace dsv4::cpu {
HWY_EXPORT(RopeRotateEntry);
HWY_EXPORT(SoftmaxPoolEntry);
HWY_EXPORT(HcPostGgmlEntry);

namespace kernels {
void rope_rotate(float* x, std::size_t n_vec, std::size_t vec_len, std::size_t rope_dim,
                 const float* cdup, const float* salt, bool round_bf16, bool ggml_fma) {
  HWY_DYNAMIC_DISPATCH(RopeRotateEntry)
  (x, n_vec, vec_len, rope_dim, cdup, salt, round_bf16, ggml_fma);
}
void hc_post_ggml(const float* f, const float* res, const float* post, const float* comb,
                  std::size_t tokens, std::size_t d, float* out) {
  HWY_DYNAMIC_DISPATCH(HcPostGgmlEntry)(f, res, post, comb, tokens, d, out);
}
void softmax_pool(const float* const* kv, const float* const* score, std::size_t m, std::size_t d,
                  float* y) {
  HWY_DYNAMIC_DISPATCH(SoftmaxPoolEntry)(kv, score, m, d, y);
}
}  // namespace kernels
}  // namespace dsv4::cpu
#endif  // HWY_ONCE
