// Per-target kernels of quant_dot.cc: the quantized weight × quantized activation dots of the
// GGUF formats (the decode GEMV and the prefill GEMM of Linear<F, PartnerDot>). Re-included once
// per SIMD target by hwy/foreach_target.h.
//
// A weight row is first unpacked (once per call, into scratch the caller owns) to unsigned or
// signed 8-bit quants plus per-block scales; the dots then run on 32-byte chunks: on x86 targets
// with AVX2 the integer products are `vpmaddubsw` + `vpmaddwd` (u8 × s8 → s16 pairs → s32 lanes,
// the instructions ggml's AVX2 dots use), every block's integer lanes are converted to float and
// accumulated into one fp32 vector per output with the block's scale, and the lanes are added
// once per output. Up to 4 activation rows share each weight chunk load (the prefill GEMM).
// Other targets run the same arithmetic in scalar code. Integer sums are exact; the float
// accumulation order is not the reference's (block order, one scalar sum), so results differ
// from the formats' own dots by fp32 rounding only, and never depend on the thread split.
#if defined(DSV4_CPU_QUANT_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_QUANT_DOT_INL_H_
#undef DSV4_CPU_QUANT_DOT_INL_H_
#else
#define DSV4_CPU_QUANT_DOT_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <dsv4/formats/k_quants.hpp>
#include <dsv4/formats/q8_0.hpp>

#include "dsv4/cpu/kernels.hpp"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#define DSV4_CPU_QD_AVX2 1
#else
#define DSV4_CPU_QD_AVX2 0
#endif

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {

// IEEE binary16 → binary32 (exact, every input; the hardware conversion where the target has
// F16C, else a branch-free bit construction).
HWY_INLINE float HalfToFloat(std::uint16_t h) {
#if DSV4_CPU_QD_AVX2
  return _cvtsh_ss(h);
#else
  const std::uint32_t w = static_cast<std::uint32_t>(h) << 16;
  const std::uint32_t sign = w & 0x80000000u;
  const std::uint32_t two_w = w + w;
  // normal: move exponent and mantissa into place, rebias by multiplying by 2^-112
  const float normal = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1p-112f;
  // subnormal: mantissa into a float of exponent 126 (0.5 + m·2^-24... ), minus 0.5
  const float subnormal = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  const std::uint32_t bits = two_w < (1u << 27) ? std::bit_cast<std::uint32_t>(subnormal)
                                                : std::bit_cast<std::uint32_t>(normal);
  return std::bit_cast<float>(sign | bits);
#endif
}

HWY_INLINE std::uint16_t LoadU16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

#if DSV4_CPU_QD_AVX2
HWY_INLINE float HSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
#endif

// Calls kernel.template operator()<R>(r) for r in groups of 4 rows, then the rest one by one.
template <class Kernel>
HWY_INLINE void ForRowGroups(std::size_t rows, Kernel&& kernel) {
  std::size_t r = 0;
  for (; r + 4 <= rows; r += 4) kernel.template operator()<4>(r);
  for (; r < rows; ++r) kernel.template operator()<1>(r);
}

// ---- 32-value blocks: signed int8 weights (one float scale per block) × Q8_0 activations ----

// y[r·ldy] = Σ_i wsc[i] · xd[r·nb + i] · Σ_j q[32i + j] · a_r,i[j] for r < rows. xq: Q8_0
// blocks (34 bytes: f16 d, int8 qs[32]), nb per row; xd: their scales as float.
template <int R>
HWY_INLINE void I8RowsR(const std::int8_t* HWY_RESTRICT q, const float* HWY_RESTRICT wsc,
                        const std::uint8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd,
                        std::size_t nb, float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 34;
  const std::size_t row_bytes = nb * kBytes;
#if DSV4_CPU_QD_AVX2
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * i));
    const __m256i aw = _mm256_sign_epi8(w, w);
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 2;
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab));
      const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(a, w));
      const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
      const __m256 d = _mm256_set1_ps(wsc[i] * xd[static_cast<std::size_t>(r) * nb + i]);
      acc[r] = _mm256_fmadd_ps(d, s, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
#else
  for (int r = 0; r < R; ++r) {
    float sum = 0.f;
    for (std::size_t i = 0; i < nb; ++i) {
      const auto* a = reinterpret_cast<const std::int8_t*>(
          xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 2);
      std::int32_t s = 0;
      for (int j = 0; j < 32; ++j) s += q[32 * i + j] * a[j];
      sum += static_cast<float>(s) * (wsc[i] * xd[static_cast<std::size_t>(r) * nb + i]);
    }
    y[static_cast<std::size_t>(r) * ldy] = sum;
  }
#endif
}

HWY_INLINE void I8Rows(const std::int8_t* q, const float* wsc, const std::uint8_t* xq,
                       const float* xd, std::size_t rows, std::size_t nb, float* y,
                       std::size_t ldy) {
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    I8RowsR<R>(q, wsc, xq + r * nb * 34, xd + r * nb, nb, y + r * ldy, ldy);
  });
}

// One Q8_0 weight row (nb blocks of f16 d, int8 qs[32]) into q [nb·32] and wsc [nb].
HWY_INLINE void UnpackQ8_0(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                           std::int8_t* HWY_RESTRICT q, float* HWY_RESTRICT wsc) {
  for (std::size_t i = 0; i < nb; ++i) {
    wsc[i] = HalfToFloat(LoadU16(w + 34 * i));
    std::memcpy(q + 32 * i, w + 34 * i + 2, 32);
  }
}

// ---- k-quants: unsigned quants, per-16 integer scales × Q8_K activations ----

// y[r·ldy] = Σ_i xd_i · (d_i · Σ_g sc_g·Σ_{e∈g} q·a + Σ_g bias_g·bsums_g) − xd_i · dmin_i ·
// Σ_g mn_g·bsums_g for r < rows; xq: Q8_K blocks (292 bytes: float d, int8 qs[256], int16
// bsums[16]), nb per row.
template <int R>
HWY_INLINE void KqRowsR(const std::uint8_t* HWY_RESTRICT q, const kernels::KqBlock* HWY_RESTRICT k,
                        const std::uint8_t* HWY_RESTRICT xq, std::size_t nb, float* HWY_RESTRICT y,
                        std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
#if DSV4_CPU_QD_AVX2
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const kernels::KqBlock& b = k[i];
    const std::uint8_t* qb = q + 256 * i;
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + 32 * c));
      const __m256i sc =
          _mm256_set_m128i(_mm_set1_epi16(b.sc[2 * c + 1]), _mm_set1_epi16(b.sc[2 * c]));
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4;
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 32 * c));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), sc));
      }
    }
    const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.bias));
    const __m256i mn = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.mn));
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
      float da;
      std::memcpy(&da, ab, sizeof da);
      const __m256i is = _mm256_add_epi32(isum[r], _mm256_madd_epi16(bs, bias));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b.d * da), _mm256_cvtepi32_ps(is), acc[r]);
      acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(b.dmin * da),
                                _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn)), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
#else
  for (int r = 0; r < R; ++r) {
    float sum = 0.f;
    for (std::size_t i = 0; i < nb; ++i) {
      const kernels::KqBlock& b = k[i];
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      float da;
      std::memcpy(&da, ab, sizeof da);
      const auto* a = reinterpret_cast<const std::int8_t*>(ab + 4);
      std::int16_t bsums[16];
      std::memcpy(bsums, ab + 260, sizeof bsums);
      std::int32_t isum = 0;
      std::int32_t msum = 0;
      for (int g = 0; g < 16; ++g) {
        std::int32_t s = 0;
        for (int e = 16 * g; e < 16 * g + 16; ++e) s += q[256 * i + e] * a[e];
        isum += b.sc[g] * s + b.bias[g] * bsums[g];
        msum += b.mn[g] * bsums[g];
      }
      sum += b.d * da * static_cast<float>(isum) - b.dmin * da * static_cast<float>(msum);
    }
    y[static_cast<std::size_t>(r) * ldy] = sum;
  }
#endif
}

HWY_INLINE void KqRows(const std::uint8_t* q, const kernels::KqBlock* k, const std::uint8_t* xq,
                       std::size_t rows, std::size_t nb, float* y, std::size_t ldy) {
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    KqRowsR<R>(q, k, xq + r * nb * 292, nb, y + r * ldy, ldy);
  });
}

#if DSV4_CPU_QD_AVX2
// Fused AVX2 row kernels of the two k-quants of the common recipes (Q4_K_M: Q4_K and Q6_K) and
// of Q8_0: the weight row is decoded in registers, chunk by chunk, and shared by R activation
// rows; same arithmetic as UnpackKq + KqRowsR (exact integer block sums).

// The int16 scale of chunk c (0..3) of a broadcast 8 × int16 vector: lanes 0-7 take element
// 2c, lanes 8-15 element 2c + 1 (the two 16-value groups of a 32-value chunk).
HWY_INLINE __m256i PairScale(__m256i s8x16, int c) {
  const auto lo = static_cast<char>(4 * c);
  const auto hi = static_cast<char>(4 * c + 2);
  const __m256i mask =
      _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo,
                       lo + 1, lo, lo + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi,
                       hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1);
  return _mm256_shuffle_epi8(s8x16, mask);
}

template <int R>
HWY_INLINE void Q4KRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                         const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                         std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * sizeof(dsv4::Q4_K::block_type);
    const float d = HalfToFloat(LoadU16(b));
    const float dmin = HalfToFloat(LoadU16(b + 2));
    // the 8 scales and 8 mins (6 bits each) from the 12 packed bytes
    std::uint32_t u[3];
    std::memcpy(u, b + 4, 12);
    const std::uint32_t sc_lo = u[0] & 0x3F3F3F3Fu;
    const std::uint32_t mn_lo = u[1] & 0x3F3F3F3Fu;
    const std::uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const std::uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    // scale j as int16, repeated: each 16-bit lane pair of a chunk's 32 values takes its scale
    const __m128i sc8 =
        _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(sc_hi), static_cast<int>(sc_lo)));
    const __m256i scb = _mm256_broadcastsi128_si256(sc8);
    const __m256i mins =
        _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, static_cast<int>(mn_hi), static_cast<int>(mn_lo)));
    const std::uint8_t* qs = b + 16;
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      const __m256i q0 = _mm256_and_si256(raw, m4);
      const __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      // scale of sub-block 2c / 2c+1, broadcast to every lane (mask picks int16 element j)
      const __m256i s0 = _mm256_shuffle_epi8(
          scb, _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 1) + 4 * c)));
      const __m256i s1 = _mm256_shuffle_epi8(
          scb, _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 3) + 4 * c + 2)));
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* a = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4;
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 64 * c));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 64 * c + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, a0), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, a1), s1);
        isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(p0, p1));
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      float da;
      std::memcpy(&da, ab, sizeof da);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
      const __m256i msum = _mm256_mullo_epi32(_mm256_madd_epi16(bs, ones), mins);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(msum), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
}

template <int R>
HWY_INLINE void Q6KRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                         const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                         std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m2 = _mm256_set1_epi8(0x03);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * sizeof(dsv4::Q6_K::block_type);
    const std::uint8_t* ql = b;
    const std::uint8_t* qh = b + 128;
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const float d = HalfToFloat(LoadU16(b + 208));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);  // the 16 group scales
    const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
      __m256i q[4];
      q[0] =
          _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
      const __m256i sch = h == 0 ? sc_lo : sc_hi;
      for (int s = 0; s < 4; ++s) {
        const __m256i sv = PairScale(sch, s);
        for (int r = 0; r < R; ++r) {
          const std::uint8_t* a =
              xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4 + 128 * h + 32 * s;
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
          isum[r] =
              _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q[s], av), sv));
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      float da;
      std::memcpy(&da, ab, sizeof da);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
      // the −32 offset of the signed quants: −32·Σ_g sc_g·bsums_g
      const __m256i is =
          _mm256_sub_epi32(isum[r], _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(is), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
}

template <int R>
HWY_INLINE void Q8_0RowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                          const std::uint8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd,
                          float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 34;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  std::size_t i = 0;
  if constexpr (R == 1) {
    // one row: two blocks per step into two accumulators (the FMA chain is the bound)
    __m256 acc1 = _mm256_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
      const std::uint8_t* b = w + i * kBytes;
      const std::uint8_t* ab = xq + i * kBytes;
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kBytes + 2));
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 2));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + kBytes + 2));
      const __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(a0, w0));
      const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(w1, w1), _mm256_sign_epi8(a1, w1));
      const float d0 = HalfToFloat(LoadU16(b)) * xd[i];
      const float d1 = HalfToFloat(LoadU16(b + kBytes)) * xd[i + 1];
      acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(d0), _mm256_cvtepi32_ps(_mm256_madd_epi16(p0, ones)),
                               acc[0]);
      acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1), _mm256_cvtepi32_ps(_mm256_madd_epi16(p1, ones)),
                             acc1);
    }
    acc[0] = _mm256_add_ps(acc[0], acc1);
  }
  for (; i < nb; ++i) {
    const std::uint8_t* b = w + i * kBytes;
    const float wd = HalfToFloat(LoadU16(b));
    const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    const __m256i aw = _mm256_sign_epi8(wq, wq);
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 2;
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab));
      const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(a, wq));
      const __m256 sv = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[static_cast<std::size_t>(r) * nb + i]), sv,
                               acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
}

#endif  // DSV4_CPU_QD_AVX2

// ---- activation quantizers (bit for bit Q8_0::quantize / Q8_K::quantize) ----

#if DSV4_CPU_QD_AVX2
HWY_INLINE float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// roundf (halves away from zero), exact: the truncation plus one step where the rest is >= 1/2.
HWY_INLINE __m256 RoundHalfAway(__m256 v) {
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 rest = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 up = _mm256_cmp_ps(rest, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(sign, _mm256_set1_ps(1.0f))));
}

// Four vectors of 8 integral floats in [-128, 127] → 32 int8 in order.
HWY_INLINE __m256i PackI8(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256i ab = _mm256_packs_epi32(_mm256_cvttps_epi32(a), _mm256_cvttps_epi32(b));
  const __m256i cd = _mm256_packs_epi32(_mm256_cvttps_epi32(c), _mm256_cvttps_epi32(d));
  const __m256i q = _mm256_packs_epi16(ab, cd);
  // the packs interleave the 128-bit halves: a0 b0 c0 d0 a1 b1 c1 d1 (4-value groups)
  return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
#endif

// One row of n_blocks Q8_0 blocks (34 bytes each) from x, and their scales as float in xd.
HWY_INLINE void QuantizeQ8_0(const float* HWY_RESTRICT x, std::size_t n_blocks,
                             std::uint8_t* HWY_RESTRICT out, float* HWY_RESTRICT xd) {
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const float* in = x + 32 * i;
    std::uint8_t* b = out + 34 * i;
#if DSV4_CPU_QD_AVX2
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(in + 8 * k);
      m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);  // a NaN input is skipped (fmax)
    }
    const float d = HMax(m) / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    for (int k = 0; k < 4; ++k) v[k] = RoundHalfAway(_mm256_mul_ps(v[k], vid));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + 2), PackI8(v[0], v[1], v[2], v[3]));
    const auto h = static_cast<std::uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    std::memcpy(b, &h, 2);
    xd[i] = _cvtsh_ss(h);
#else
    dsv4::Q8_0::block_type blk;
    dsv4::Q8_0::quantize(in, blk);
    std::memcpy(b, &blk, sizeof blk);
    xd[i] = HalfToFloat(blk.d.bits);
#endif
  }
}

// One row of n_blocks Q8_K blocks (292 bytes each) from x.
HWY_INLINE void QuantizeQ8_K(const float* HWY_RESTRICT x, std::size_t n_blocks,
                             std::uint8_t* HWY_RESTRICT out) {
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const float* in = x + 256 * i;
    std::uint8_t* b = out + 292 * i;
#if DSV4_CPU_QD_AVX2
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 32; ++k)
      m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(in + 8 * k), abs_mask), m);
    const float amax = HMax(m);
    if (!(amax > 0.f)) {  // all zero (or NaN): the scalar quantizer decides
      dsv4::Q8_K::block_type blk;
      dsv4::Q8_K::quantize(in, blk);
      std::memcpy(b, &blk, sizeof blk);
      continue;
    }
    // the first value of largest magnitude, with its sign
    float max = 0.f;
    for (int j = 0; j < 256; ++j) {
      if (std::fabs(in[j]) == amax) {
        max = in[j];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i lim = _mm256_set1_epi32(127);
    const __m256i ones = _mm256_set1_epi16(1);
    std::int16_t bsums[16];
    for (int c = 0; c < 8; ++c) {  // 32 values per step
      __m256i qi[4];
      for (int k = 0; k < 4; ++k) {
        // nearest_int: round half to even (the default rounding mode), then min(127, v)
        qi[k] = _mm256_min_epi32(
            _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(in + 32 * c + 8 * k))), lim);
      }
      const __m256i q16a = _mm256_packs_epi32(qi[0], qi[1]);
      const __m256i q16b = _mm256_packs_epi32(qi[2], qi[3]);
      const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                    _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + 4 + 32 * c), q);
      // sums of each 16 values: widen and add pairs
      const __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
      const __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
      const __m256i s0 = _mm256_madd_epi16(w0, ones);  // 8 pair sums of values 0..15
      const __m256i s1 = _mm256_madd_epi16(w1, ones);  // of values 16..31
      const __m256i h = _mm256_hadd_epi32(s0, s1);
      const __m256i h2 = _mm256_hadd_epi32(h, h);
      // h2 lanes: [s0 0-3 pairs.., ] → per 128-bit half: sum(s0 half), sum(s1 half), ...
      alignas(32) std::int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), h2);
      bsums[2 * c] = static_cast<std::int16_t>(t[0] + t[4]);
      bsums[2 * c + 1] = static_cast<std::int16_t>(t[1] + t[5]);
    }
    std::memcpy(b + 260, bsums, sizeof bsums);
    const float d = 1.f / iscale;
    std::memcpy(b, &d, sizeof d);
#else
    dsv4::Q8_K::block_type blk;
    dsv4::Q8_K::quantize(in, blk);
    std::memcpy(b, &blk, sizeof blk);
#endif
  }
}

// Scales and mins of the Q4_K / Q5_K 12-byte packing, repeated for both 16-value halves of
// each 32-value sub-block.
HWY_INLINE void Scales4K(const std::uint8_t* packed, kernels::KqBlock& b) {
  for (int j = 0; j < 8; ++j) {
    int sc = 0;
    int m = 0;
    dsv4::detail::kq::get_scale_min_k4(j, packed, sc, m);
    b.sc[2 * j] = b.sc[2 * j + 1] = static_cast<std::int16_t>(sc);
    b.mn[2 * j] = b.mn[2 * j + 1] = static_cast<std::int16_t>(m);
    b.bias[2 * j] = b.bias[2 * j + 1] = 0;
  }
}

// One k-quant weight row (nb super-blocks of format `kind`) into unsigned quants q [nb·256] and
// the blocks' scales.
HWY_INLINE void UnpackKq(kernels::KqKind kind, const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                         std::uint8_t* HWY_RESTRICT q, kernels::KqBlock* HWY_RESTRICT k) {
  using kernels::KqKind;
  for (std::size_t i = 0; i < nb; ++i) {
    std::uint8_t* qb = q + 256 * i;
    kernels::KqBlock& b = k[i];
    switch (kind) {
      case KqKind::q2_k: {
        dsv4::Q2_K::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int h = 0; h < 2; ++h)
          for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l)
              qb[128 * h + 32 * s + l] =
                  static_cast<std::uint8_t>((blk.qs[32 * h + l] >> (2 * s)) & 3);
        for (int g = 0; g < 16; ++g) {
          b.sc[g] = static_cast<std::int16_t>(blk.scales[g] & 0xF);
          b.mn[g] = static_cast<std::int16_t>(blk.scales[g] >> 4);
          b.bias[g] = 0;
        }
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = HalfToFloat(blk.dmin.bits);
        break;
      }
      case KqKind::q3_k: {
        dsv4::Q3_K::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int h = 0; h < 2; ++h)
          for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l)
              qb[128 * h + 32 * s + l] =
                  static_cast<std::uint8_t>(((blk.qs[32 * h + l] >> (2 * s)) & 3) |
                                            (((blk.hmask[l] >> (4 * h + s)) & 1) << 2));
        for (int g = 0; g < 16; ++g) {
          const int sc = dsv4::detail::kq::q3_scale(blk.scales, g);
          b.sc[g] = static_cast<std::int16_t>(sc);
          b.bias[g] = static_cast<std::int16_t>(-4 * sc);
          b.mn[g] = 0;
        }
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = 0.f;
        break;
      }
      case KqKind::q4_k: {
        dsv4::Q4_K::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int c = 0; c < 4; ++c)
          for (int l = 0; l < 32; ++l) {
            qb[64 * c + l] = blk.qs[32 * c + l] & 0xF;
            qb[64 * c + 32 + l] = blk.qs[32 * c + l] >> 4;
          }
        Scales4K(blk.scales, b);
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = HalfToFloat(blk.dmin.bits);
        break;
      }
      case KqKind::q5_k: {
        dsv4::Q5_K::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int c = 0; c < 4; ++c)
          for (int l = 0; l < 32; ++l) {
            const int lo = blk.qs[32 * c + l] & 0xF;
            const int hi = blk.qs[32 * c + l] >> 4;
            qb[64 * c + l] = static_cast<std::uint8_t>(lo | (((blk.qh[l] >> (2 * c)) & 1) << 4));
            qb[64 * c + 32 + l] =
                static_cast<std::uint8_t>(hi | (((blk.qh[l] >> (2 * c + 1)) & 1) << 4));
          }
        Scales4K(blk.scales, b);
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = HalfToFloat(blk.dmin.bits);
        break;
      }
      case KqKind::q6_k: {
        dsv4::Q6_K::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int h = 0; h < 2; ++h)
          for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
              const int lo = (blk.ql[64 * h + 32 * (s & 1) + l] >> (4 * (s >> 1))) & 0xF;
              const int hi = (blk.qh[32 * h + l] >> (2 * s)) & 3;
              qb[128 * h + 32 * s + l] = static_cast<std::uint8_t>(lo | (hi << 4));
            }
        for (int g = 0; g < 16; ++g) {
          b.sc[g] = blk.scales[g];
          b.bias[g] = static_cast<std::int16_t>(-32 * blk.scales[g]);
          b.mn[g] = 0;
        }
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = 0.f;
        break;
      }
    }
  }
}

// One Q8_0 weight row · `rows` Q8_0 activation rows (kernels::q8_0_row): the fused kernel on
// AVX2 targets, else the unpack into q / wsc and the generic one.
HWY_INLINE void Q8_0Row(const std::uint8_t* w, std::size_t nb, const std::uint8_t* xq,
                        const float* xd, std::size_t rows, float* y, std::size_t ldy,
                        std::int8_t* q, float* wsc) {
#if DSV4_CPU_QD_AVX2
  (void)q;
  (void)wsc;
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    Q8_0RowsR<R>(w, nb, xq + r * nb * 34, xd + r * nb, y + r * ldy, ldy);
  });
#else
  UnpackQ8_0(w, nb, q, wsc);
  I8Rows(q, wsc, xq, xd, rows, nb, y, ldy);
#endif
}

// One k-quant weight row · `rows` Q8_K activation rows (kernels::kq_row): the fused kernels for
// Q4_K / Q6_K on AVX2 targets, else the unpack into q / k and the generic one.
HWY_INLINE void KqRow(kernels::KqKind kind, const std::uint8_t* w, std::size_t nb,
                      const std::uint8_t* xq, std::size_t rows, float* y, std::size_t ldy,
                      std::uint8_t* q, kernels::KqBlock* k) {
#if DSV4_CPU_QD_AVX2
  if (kind == kernels::KqKind::q4_k) {
    ForRowGroups(rows, [&]<int R>(std::size_t r) {
      Q4KRowsR<R>(w, nb, xq + r * nb * 292, y + r * ldy, ldy);
    });
    return;
  }
  if (kind == kernels::KqKind::q6_k) {
    ForRowGroups(rows, [&]<int R>(std::size_t r) {
      Q6KRowsR<R>(w, nb, xq + r * nb * 292, y + r * ldy, ldy);
    });
    return;
  }
#endif
  UnpackKq(kind, w, nb, q, k);
  KqRows(q, k, xq, rows, nb, y, ldy);
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#undef DSV4_CPU_QD_AVX2

#endif  // toggle guard
