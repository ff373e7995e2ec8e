// Per-target kernels of quant_dot.cc: the quantized weight × quantized activation dots of the
// GGUF formats (the decode GEMV and the prefill GEMM of Linear<F, PartnerDot>). Re-included once
// per SIMD target by hwy/foreach_target.h.
//
// On x86 targets with AVX2 a weight row is decoded in registers from its packed blocks, 32
// values at a time; other targets first unpack it (once per call, into scratch the caller owns)
// to unsigned or signed 8-bit quants plus per-block scales. The dots run on 32-byte chunks: with
// AVX2 the integer products are `vpmaddubsw` + `vpmaddwd` (u8 × s8 → s16 pairs → s32 lanes,
// the instructions ggml's AVX2 dots use), every block's integer lanes are converted to float and
// accumulated into one fp32 vector per output with the block's scale, and the lanes are added
// once per output. Up to 4 activation rows share each weight chunk load (the prefill GEMM).
// Integer sums are exact. That is ggml's x86 order: the formats that have it (the 32-value
// formats, Q2_K, Q4_K, Q5_K, Q6_K) equal their dot_x86 bit for bit, on other targets too (the
// scalar paths run the same steps, or dot_x86 itself); Q3_K and IQ4_XS differ from their dots
// (block order, one scalar sum) by fp32 rounding only. Nothing depends on the thread split.
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
#include <dsv4/formats/iq4.hpp>
#include <dsv4/formats/k_quants.hpp>
#include <dsv4/formats/mxfp4.hpp>
#include <dsv4/formats/q4_0.hpp>
#include <dsv4/formats/q5.hpp>
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

// y[r·ldy] = the dot of one unpacked weight row (signed values q [nb·32], block scales wsc [nb])
// with activation row r < rows (Q8_0 blocks xq, 34 bytes: f16 d, int8 qs[32], nb per row; their
// scales as float in xd) in ggml's x86 order (dsv4::detail::ggml::X86Lanes, the formats'
// dot_x86): the scalar path of B32Row. kPaired: IQ4_NL and MXFP4, whose x86 kernels keep even and
// odd blocks apart and add an odd count's last block at the end (detail::ggml::codebook_dot_x86).
template <bool kPaired>
HWY_INLINE void I8Rows(const std::int8_t* HWY_RESTRICT q, const float* HWY_RESTRICT wsc,
                       const std::uint8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd,
                       std::size_t rows, std::size_t nb, float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 34;
  const std::size_t lanes_end = kPaired ? nb & ~std::size_t{1} : nb;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* xr = xq + r * nb * kBytes;
    const float* dr = xd + r * nb;
    const auto act = [&](std::size_t i) {
      return reinterpret_cast<const std::int8_t*>(xr + i * kBytes + 2);
    };
    dsv4::detail::ggml::X86Lanes acc[2];
    for (std::size_t i = 0; i < lanes_end; ++i)
      acc[kPaired ? (i & 1) : 0].add(wsc[i] * dr[i], q + 32 * i, act(i));
    float sum = kPaired ? (acc[0] + acc[1]).sum() : acc[0].sum();
    if (lanes_end < nb) {
      std::int32_t s = 0;
      for (int j = 0; j < 32; ++j) s += q[32 * lanes_end + j] * act(lanes_end)[j];
      sum += wsc[lanes_end] * dr[lanes_end] * static_cast<float>(s);
    }
    y[r * ldy] = sum;
  }
}

// The bytes of one block of a 32-value format (kernels::B32Kind).
HWY_INLINE constexpr std::size_t B32Bytes(kernels::B32Kind kind) {
  using kernels::B32Kind;
  switch (kind) {
    case B32Kind::q8_0:
      return sizeof(dsv4::Q8_0::block_type);
    case B32Kind::q4_0:
      return sizeof(dsv4::Q4_0::block_type);
    case B32Kind::q5_0:
      return sizeof(dsv4::Q5_0::block_type);
    case B32Kind::iq4_nl:
      return sizeof(dsv4::IQ4_NL::block_type);
    case B32Kind::mxfp4:
      return sizeof(dsv4::MXFP4::block_type);
  }
  return 0;
}

static_assert(offsetof(dsv4::Q5_0::block_type, qh) == 2 &&
                  offsetof(dsv4::Q5_0::block_type, qs) == 6 &&
                  offsetof(dsv4::MXFP4::block_type, qs) == 1 &&
                  offsetof(dsv4::Q4_0::block_type, qs) == 2 &&
                  offsetof(dsv4::IQ4_NL::block_type, qs) == 2,
              "the 32-value kernels read the blocks' bytes at these offsets");

// The float scale of a block of a 32-value format: f16 d first, or MXFP4's E8M0 exponent.
template <kernels::B32Kind K>
HWY_INLINE float B32Scale(const std::uint8_t* b) {
  if constexpr (K == kernels::B32Kind::mxfp4) {
    return dsv4::detail::ggml::e8m0_to_fp32_half(b[0]);
  } else {
    return HalfToFloat(LoadU16(b));
  }
}

// Whether ggml's x86 kernel of format K keeps even and odd blocks in two accumulators (I8Rows).
template <kernels::B32Kind K>
inline constexpr bool kB32Paired = K == kernels::B32Kind::iq4_nl || K == kernels::B32Kind::mxfp4;

// One weight row of a 32-value format (nb blocks) into signed values q [nb·32] and block scales
// wsc [nb] (the scalar path of B32Row).
template <kernels::B32Kind K>
HWY_INLINE void UnpackB32(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                          std::int8_t* HWY_RESTRICT q, float* HWY_RESTRICT wsc) {
  using kernels::B32Kind;
  constexpr std::size_t kBytes = B32Bytes(K);
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + kBytes * i;
    std::int8_t* qb = q + 32 * i;
    wsc[i] = B32Scale<K>(b);
    if constexpr (K == B32Kind::q8_0) {
      std::memcpy(qb, b + 2, 32);
    } else if constexpr (K == B32Kind::q5_0) {
      int v[32];
      dsv4::detail::ggml::unpack_q5(b + 6, b + 2, v);
      for (int j = 0; j < 32; ++j) qb[j] = static_cast<std::int8_t>(v[j] - 16);
    } else {
      const std::uint8_t* qs = b + (K == B32Kind::mxfp4 ? 1 : 2);
      for (int j = 0; j < 16; ++j) {
        const int lo = qs[j] & 0x0F;
        const int hi = qs[j] >> 4;
        if constexpr (K == B32Kind::q4_0) {
          qb[j] = static_cast<std::int8_t>(lo - 8);
          qb[j + 16] = static_cast<std::int8_t>(hi - 8);
        } else if constexpr (K == B32Kind::iq4_nl) {
          qb[j] = dsv4::detail::ggml::kIq4nlValues[lo];
          qb[j + 16] = dsv4::detail::ggml::kIq4nlValues[hi];
        } else {
          qb[j] = dsv4::detail::ggml::kMxfp4Values[lo];
          qb[j + 16] = dsv4::detail::ggml::kMxfp4Values[hi];
        }
      }
    }
  }
}

// ---- k-quants: unsigned quants, per-16 integer scales × Q8_K activations ----

#if DSV4_CPU_QD_AVX2
// vsum[r] += the scaled products of chunk c (values 32c … 32c + 31: groups 2c and 2c + 1 with
// their scales) of an unpacked k-quant super-block qb with R activation rows' quants (a: row 0's
// quants of this block, the rows row_bytes apart), as 8 int32 lanes.
template <int R>
HWY_INLINE void KqChunkAdd(const std::uint8_t* HWY_RESTRICT qb, const kernels::KqBlock& b, int c,
                           const std::uint8_t* HWY_RESTRICT a, std::size_t row_bytes,
                           __m256i* vsum) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + 32 * c));
  const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(b.sc[2 * c + 1]), _mm_set1_epi16(b.sc[2 * c]));
  for (int r = 0; r < R; ++r) {
    const __m256i av = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(a + static_cast<std::size_t>(r) * row_bytes + 32 * c));
    vsum[r] = _mm256_add_epi32(vsum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(w, av), sc));
  }
}
#endif

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
    for (int c = 0; c < 8; ++c) KqChunkAdd<R>(qb, b, c, xq + i * kBytes + 4, row_bytes, isum);
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
// Fused AVX2 row kernels of the k-quants (Q2_K .. Q6_K) and of the 32-value formats (Q8_0,
// Q4_0, Q5_0, IQ4_NL, MXFP4): the weight row is decoded in registers, chunk by chunk, and shared
// by R activation rows; same arithmetic as UnpackKq + KqRowsR and UnpackB32 + I8RowsR (exact
// integer block sums).

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

// The 32 nibbles of 16 packed bytes, element j < 16 the low nibble of qs[j], j ≥ 16 the high
// nibble of qs[j - 16].
HWY_INLINE __m256i Nibbles(const std::uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0F));
}

// 0xFF in byte j where bit j of the little-endian 32-bit qh is set (the fifth bits of Q5_0 /
// Q5_1): byte j takes byte j/8 of qh and is tested against bit j%8.
HWY_INLINE __m256i FifthBits(const std::uint8_t* qh_bytes) {
  std::uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)),
                          _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                           2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// The decoded head of a Q4_K / Q5_K super-block: d, dmin, the 8 six-bit scales as int16 (in
// both 128-bit halves) and the 8 mins as int32.
struct Q45KScales {
  float d, dmin;
  __m256i scb, mins;
};

HWY_INLINE Q45KScales Q45KDecodeScales(const std::uint8_t* b) {
  Q45KScales h;
  h.d = HalfToFloat(LoadU16(b));
  h.dmin = HalfToFloat(LoadU16(b + 2));
  // the 8 scales and 8 mins (6 bits each) from the 12 packed bytes
  std::uint32_t u[3];
  std::memcpy(u, b + 4, 12);
  const std::uint32_t sc_lo = u[0] & 0x3F3F3F3Fu;
  const std::uint32_t mn_lo = u[1] & 0x3F3F3F3Fu;
  const std::uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
  const std::uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
  h.scb = _mm256_broadcastsi128_si256(
      _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(sc_hi), static_cast<int>(sc_lo))));
  h.mins =
      _mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, static_cast<int>(mn_hi), static_cast<int>(mn_lo)));
  return h;
}

// Scale j of a decoded head broadcast to every int16 lane (the mask picks int16 element j).
HWY_INLINE __m256i Q45KScale(__m256i scb, int j) {
  return _mm256_shuffle_epi8(scb, _mm256_set1_epi16(static_cast<short>(0x0101 * 2 * j + 0x0100)));
}

// The min term of a Q4_K / Q5_K super-block in ggml's x86 order (dsv4::detail::kq::
// dot_qk_asym_x86): 4 integer lanes mn[2k]·q8s[2k] + mn[2k + 1]·q8s[2k + 1] of the activation's
// 32-value sums q8s, times −d_a·dmin: Q4_K into the 4 FMA accumulators accm, Q5_K as one float
// of their total into summs.
template <bool kQ5>
HWY_INLINE void Q45KMins(const std::uint8_t* ab, const Q45KScales& h, float da, __m128& accm,
                         float& summs) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
  const __m256i msum = _mm256_mullo_epi32(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)), h.mins);
  const __m256i hp = _mm256_hadd_epi32(msum, msum);
  const __m128i prod =
      _mm_unpacklo_epi64(_mm256_castsi256_si128(hp), _mm256_extracti128_si256(hp, 1));
  const float dmin = -da * h.dmin;
  if constexpr (kQ5) {
    alignas(16) std::int32_t p[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(p), prod);
    summs += dmin * static_cast<float>(p[0] + p[1] + p[2] + p[3]);
  } else {
    accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), accm);
  }
}

// ((a0 + a2) + (a1 + a3)): the lane sum of the Q4_K min accumulators.
HWY_INLINE float HSum4Lanes(__m128 a) {
  const __m128 t = _mm_add_ps(a, _mm_movehl_ps(a, a));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Chunk c (values 64c .. 64c + 63) of a Q4_K / Q5_K super-block as unsigned quants: q0 the
// sub-block 2c (low nibbles), q1 the sub-block 2c + 1 (high nibbles); Q5_K adds the fifth bit
// of element 64c + 32h + l, bit 2c + h of qh[l].
template <bool kQ5>
HWY_INLINE void Q45KChunk(const std::uint8_t* qs, __m256i qh, int c, __m256i m4, __m256i one8,
                          __m256i& q0, __m256i& q1) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
  q0 = _mm256_and_si256(raw, m4);
  q1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
  if constexpr (kQ5) {
    const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one8);
    const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one8);
    q0 = _mm256_or_si256(q0, _mm256_slli_epi16(h0, 4));
    q1 = _mm256_or_si256(q1, _mm256_slli_epi16(h1, 4));
  } else {
    (void)qh;
    (void)one8;
  }
}

// The scaled products of chunk c (sub-blocks q0 and q1 with their scales s0, s1) with one
// activation row's quants a (this super-block's 256), as 8 int32 lanes.
HWY_INLINE __m256i Q45KChunkDot(__m256i q0, __m256i q1, __m256i s0, __m256i s1,
                                const std::uint8_t* a, int c) {
  const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 64 * c));
  const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 64 * c + 32));
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(q0, a0), s0),
                          _mm256_madd_epi16(_mm256_maddubs_epi16(q1, a1), s1));
}

// Q4_K (kQ5 false) or Q5_K (kQ5: the fifth bit of element 64c + 32h + l is bit 2c + h of
// qh[l]).
template <bool kQ5, int R>
HWY_INLINE void Q45KRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                          const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                          std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one8 = _mm256_set1_epi8(1);
  __m256 acc[R];
  __m128 accm[R];
  float summs[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    accm[r] = _mm_setzero_ps();
    summs[r] = 0.f;
  }
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b =
        w + i * (kQ5 ? sizeof(dsv4::Q5_K::block_type) : sizeof(dsv4::Q4_K::block_type));
    const Q45KScales h = Q45KDecodeScales(b);
    const std::uint8_t* qs = b + (kQ5 ? 48 : 16);
    const __m256i qh =
        kQ5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : _mm256_setzero_si256();
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i q0, q1;
      Q45KChunk<kQ5>(qs, qh, c, m4, one8, q0, q1);
      const __m256i s0 = Q45KScale(h.scb, 2 * c);
      const __m256i s1 = Q45KScale(h.scb, 2 * c + 1);
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* a = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4;
        isum[r] = _mm256_add_epi32(isum[r], Q45KChunkDot(q0, q1, s0, s1, a, c));
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      float da;
      std::memcpy(&da, ab, sizeof da);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(da * h.d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      Q45KMins<kQ5>(ab, h, da, accm[r], summs[r]);
    }
  }
  for (int r = 0; r < R; ++r)
    y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]) + (kQ5 ? summs[r] : HSum4Lanes(accm[r]));
}

// Half h (values 128h .. 128h + 127) of a Q6_K super-block as unsigned quants, 32 values per
// vector: q[s] holds values 128h + 32s .. + 31 (low 4 bits from ql, high 2 bits from qh).
HWY_INLINE void Q6KHalf(const std::uint8_t* ql, const std::uint8_t* qh, int h, __m256i m4,
                        __m256i m2, __m256i q[4]) {
  const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
  const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
  const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
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
      __m256i q[4];
      Q6KHalf(ql, qh, h, m4, m2, q);
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

// ---- decode (one activation row): four weight rows per call ----
// Per output the arithmetic of Q45KRowsR<kQ5, 1> / Q6KRowsR<1> (the same lanes, the same lane
// sum, so the same bits whichever way the rows are grouped). The model's rows are short (1 to 4
// super-blocks), where a call's set-up and lane sum per row showed; here four rows share one
// call and one transposing lane sum, each row is read in order (the four rows' blocks
// interleaved read slower), and the rows' accumulations are independent of each other.

// HSum of each of four vectors: lane j of the result is HSum(v[j]) bit for bit (the same adds
// in the same pairs).
HWY_INLINE __m128 HSum4(const __m256 v[4]) {
  __m128 s[4];
  for (int j = 0; j < 4; ++j)
    s[j] = _mm_add_ps(_mm256_castps256_ps128(v[j]), _mm256_extractf128_ps(v[j], 1));
  // [a0 + a2, a1 + a3, b0 + b2, b1 + b3], the same for c and d
  const __m128 ab = _mm_add_ps(_mm_shuffle_ps(s[0], s[1], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm_shuffle_ps(s[0], s[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m128 cd = _mm_add_ps(_mm_shuffle_ps(s[2], s[3], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm_shuffle_ps(s[2], s[3], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm_add_ps(_mm_shuffle_ps(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                    _mm_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
}

// y[j] = row j of w (rows row_bytes apart, nb super-blocks of block_bytes each) · the Q8_K
// activation row xq, j < 4: acc_j = block(super-block, its activation block, acc_j) over the
// row's super-blocks in order, then the four lane sums at once.
template <class Block>
HWY_INLINE void Gemv4(const std::uint8_t* HWY_RESTRICT w, std::size_t row_bytes, std::size_t nb,
                      std::size_t block_bytes, const std::uint8_t* HWY_RESTRICT xq,
                      float* HWY_RESTRICT y, const Block& block) {
  __m256 acc[4];
  for (int j = 0; j < 4; ++j) {
    acc[j] = _mm256_setzero_ps();
    const std::uint8_t* row = w + static_cast<std::size_t>(j) * row_bytes;
    for (std::size_t i = 0; i < nb; ++i)
      acc[j] = block(row + i * block_bytes, xq + i * 292, acc[j]);
  }
  _mm_storeu_ps(y, HSum4(acc));
}

template <bool kQ5>
HWY_INLINE void Q45KGemv4(const std::uint8_t* HWY_RESTRICT w, std::size_t row_bytes, std::size_t nb,
                          const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one8 = _mm256_set1_epi8(1);
  constexpr std::size_t kWBytes =
      kQ5 ? sizeof(dsv4::Q5_K::block_type) : sizeof(dsv4::Q4_K::block_type);
  __m256 acc[4];
  float extra[4];
  for (int j = 0; j < 4; ++j) {
    acc[j] = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    float summs = 0.f;
    const std::uint8_t* row = w + static_cast<std::size_t>(j) * row_bytes;
    for (std::size_t i = 0; i < nb; ++i) {
      const std::uint8_t* b = row + i * kWBytes;
      const std::uint8_t* ab = xq + i * 292;
      float da;
      std::memcpy(&da, ab, sizeof da);
      const Q45KScales h = Q45KDecodeScales(b);
      const __m256i qh = kQ5 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16))
                             : _mm256_setzero_si256();
      __m256i isum = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        __m256i q0, q1;
        Q45KChunk<kQ5>(b + (kQ5 ? 48 : 16), qh, c, m4, one8, q0, q1);
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 4 + 64 * c));
        const __m256i a1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 4 + 64 * c + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, a0), Q45KScale(h.scb, 2 * c));
        const __m256i p1 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q1, a1), Q45KScale(h.scb, 2 * c + 1));
        isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
      }
      acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(da * h.d), _mm256_cvtepi32_ps(isum), acc[j]);
      Q45KMins<kQ5>(ab, h, da, accm, summs);
    }
    extra[j] = kQ5 ? summs : HSum4Lanes(accm);
  }
  alignas(16) float s[4];
  _mm_store_ps(s, HSum4(acc));
  for (int j = 0; j < 4; ++j) y[j] = s[j] + extra[j];
}

HWY_INLINE void Q6KGemv4(const std::uint8_t* HWY_RESTRICT w, std::size_t row_bytes, std::size_t nb,
                         const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m2 = _mm256_set1_epi8(0x03);
  const auto block = [&](const std::uint8_t* b, const std::uint8_t* ab, __m256 acc) {
    float da;
    std::memcpy(&da, ab, sizeof da);
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const float d = HalfToFloat(LoadU16(b + 208));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00),
                                _mm256_permute2x128_si256(sc16, sc16, 0x11)};
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      Q6KHalf(b, b + 128, h, m4, m2, q);
      const __m256i sch = sc_half[h];
      for (int s = 0; s < 4; ++s) {
        const __m256i av =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 4 + 128 * h + 32 * s));
        isum = _mm256_add_epi32(
            isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[s], av), PairScale(sch, s)));
      }
    }
    const __m256i is = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
    return _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(is), acc);
  };
  Gemv4(w, row_bytes, nb, sizeof(dsv4::Q6_K::block_type), xq, y, block);
}

// One activation row against n weight rows of kind (nb super-blocks each): the rows in groups of
// four where a 4-row kernel exists → y[0 .. returned count); the caller computes the rest.
HWY_INLINE std::size_t KqGemv(kernels::KqKind kind, const std::uint8_t* w, std::size_t n,
                              std::size_t nb, std::size_t row_bytes, const std::uint8_t* xq,
                              float* y) {
  using kernels::KqKind;
  const auto groups = [&](auto kernel) {
    std::size_t o = 0;
    for (; o + 4 <= n; o += 4) kernel(w + o * row_bytes, y + o);
    return o;
  };
  switch (kind) {
    case KqKind::q4_k:
      return groups(
          [&](const std::uint8_t* wo, float* yo) { Q45KGemv4<false>(wo, row_bytes, nb, xq, yo); });
    case KqKind::q5_k:
      return groups(
          [&](const std::uint8_t* wo, float* yo) { Q45KGemv4<true>(wo, row_bytes, nb, xq, yo); });
    case KqKind::q6_k:
      return groups(
          [&](const std::uint8_t* wo, float* yo) { Q6KGemv4(wo, row_bytes, nb, xq, yo); });
    default:
      return 0;
  }
}

// IQ4_XS: sub-block c (32 values) of a super-block has codes packed as Q4_0 in qs[16c..16c+15]
// and the multiplier ls_c − 32 (6-bit ls_c: nibble c%2 of scales_l[c/2], bits 2c..2c+1 of
// scales_h); the codes look their values up in the 16-entry table with a byte shuffle.
template <int R>
HWY_INLINE void IQ4XSRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                           const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                           std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i table = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(dsv4::detail::ggml::kIq4nlValues)));
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * sizeof(dsv4::IQ4_XS::block_type);
    const float d = HalfToFloat(LoadU16(b));
    const unsigned sh = LoadU16(b + 2);
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      const int ls = ((b[4 + c / 2] >> (4 * (c % 2))) & 0x0F) | (((sh >> (2 * c)) & 3) << 4);
      const __m256i sv = _mm256_set1_epi16(static_cast<short>(ls - 32));
      const __m256i q = _mm256_shuffle_epi8(table, Nibbles(b + 8 + 16 * c));
      const __m256i aq = _mm256_sign_epi8(q, q);
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* a = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4;
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 32 * c));
        const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(av, q));
        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, sv));
      }
    }
    for (int r = 0; r < R; ++r) {
      float da;
      std::memcpy(&da, xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes, sizeof da);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(isum[r]), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
}

// Q2_K (kQ3 false: unsigned 2-bit quants, 4-bit scales and mins) or Q3_K (kQ3: the third bit
// from hmask, signed 6-bit scales, value = q − 4): element 128h + 32s + l is bits 2s..2s+1 of
// qs[32h + l] (and bit 4h + s of hmask[l]); its group is 8h + 2s + l/16.
template <bool kQ3, int R>
HWY_INLINE void Q23KRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                          const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                          std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  constexpr std::size_t kWBytes =
      kQ3 ? sizeof(dsv4::Q3_K::block_type) : sizeof(dsv4::Q2_K::block_type);
  const std::size_t row_bytes = nb * kBytes;
  const __m256i m2 = _mm256_set1_epi8(0x03);
  const __m256i one8 = _mm256_set1_epi8(1);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * kWBytes;
    const std::uint8_t* qs = b + (kQ3 ? 32 : 16);
    __m256i sc16;
    __m256i mn16 = _mm256_setzero_si256();
    float d;
    float dmin = 0.f;
    if constexpr (kQ3) {
      // the 16 6-bit scales (detail::kq::q3_scale): low 4 bits from the nibbles of bytes 0-7
      // (low nibbles groups 0-7, high 8-15), bits 4-5 of group j from bits 2(j/4) of byte
      // 8 + j%4
      std::uint64_t lo8;
      std::uint32_t hi4;
      std::memcpy(&lo8, b + 96, 8);
      std::memcpy(&hi4, b + 104, 4);
      const __m128i m4 = _mm_set1_epi8(0x0F);
      const __m128i x = _mm_cvtsi64_si128(static_cast<long long>(lo8));
      const __m128i lo =
          _mm_unpacklo_epi64(_mm_and_si128(x, m4), _mm_and_si128(_mm_srli_epi16(x, 4), m4));
      const __m128i h = _mm_cvtsi32_si128(static_cast<int>(hi4));
      const __m128i hi =
          _mm_unpacklo_epi64(_mm_unpacklo_epi32(h, _mm_srli_epi16(h, 2)),
                             _mm_unpacklo_epi32(_mm_srli_epi16(h, 4), _mm_srli_epi16(h, 6)));
      const __m128i hi2 = _mm_slli_epi16(_mm_and_si128(hi, _mm_set1_epi8(3)), 4);
      sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(_mm_or_si128(lo, hi2), _mm_set1_epi8(32)));
      d = HalfToFloat(LoadU16(b + 108));
    } else {
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
      sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
      mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
      d = HalfToFloat(LoadU16(b + 80));
      dmin = HalfToFloat(LoadU16(b + 82));
    }
    const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    const __m256i hm =
        kQ3 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)) : _mm256_setzero_si256();
    __m256i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
      const __m256i sch = h == 0 ? sc_lo : sc_hi;
      for (int s = 0; s < 4; ++s) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m2);
        if constexpr (kQ3) {
          const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one8);
          q = _mm256_or_si256(q, _mm256_slli_epi16(hb, 2));
        }
        const __m256i sv = PairScale(sch, s);
        for (int r = 0; r < R; ++r) {
          const std::uint8_t* a =
              xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4 + 128 * h + 32 * s;
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q, av), sv));
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      float da;
      std::memcpy(&da, ab, sizeof da);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
      if constexpr (kQ3) {
        // the −4 offset of the signed quants: −4·Σ_g sc_g·bsums_g
        const __m256i is =
            _mm256_sub_epi32(isum[r], _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 2));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(is), acc[r]);
      } else {
        // ggml's x86 order (Q2_K::dot_x86): the mins' lanes first, then the quants'
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-da * dmin),
                                 _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16)), acc[r]);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(da * d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
}

// The 32 signed values of a block of a 32-value format, decoded in registers; the codebook
// formats look their codes up in the 16-entry table with a byte shuffle.
template <kernels::B32Kind K>
HWY_INLINE __m256i B32Values(const std::uint8_t* b) {
  using kernels::B32Kind;
  if constexpr (K == B32Kind::q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  } else if constexpr (K == B32Kind::q4_0) {
    return _mm256_sub_epi8(Nibbles(b + 2), _mm256_set1_epi8(8));
  } else if constexpr (K == B32Kind::q5_0) {
    // value = nibble − 16 where the fifth bit is clear
    return _mm256_sub_epi8(Nibbles(b + 6),
                           _mm256_andnot_si256(FifthBits(b + 2), _mm256_set1_epi8(0x10)));
  } else {
    const std::int8_t* t =
        K == B32Kind::iq4_nl ? dsv4::detail::ggml::kIq4nlValues : dsv4::detail::ggml::kMxfp4Values;
    const __m256i table =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
    return _mm256_shuffle_epi8(table, Nibbles(b + (K == B32Kind::mxfp4 ? 1 : 2)));
  }
}

// The integer sums of a block's 32 products in 8 int32 lanes of 4 consecutive values (u8 × s8
// via the sign trick: `vpmaddubsw` + `vpmaddwd`, as ggml's mul_sum_i8_pairs).
HWY_INLINE __m256i B32BlockLanes(__m256i wq, const std::uint8_t* a) {
  const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(av, wq));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

HWY_INLINE std::int32_t HSumI32(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 1)));
}

// One weight row of 32-value format K (nb blocks) · R Q8_0 activation rows (nb blocks each,
// their scales in xd) → y[r·ldy], the weights decoded in registers block by block (B32Values),
// in ggml's x86 order: I8Rows' arithmetic (IQ4_NL / MXFP4: even and odd blocks in two
// accumulators, an odd count's last block added to the lane sum).
template <kernels::B32Kind K, int R>
HWY_INLINE void B32RowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                         const std::uint8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd,
                         float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 34;  // a Q8_0 activation block
  constexpr std::size_t kWBytes = B32Bytes(K);
  const std::size_t row_bytes = nb * kBytes;
  // acc[r] = fma(d_w·d_a, the lanes of block i, acc[r]) for every row r
  const auto step = [&](std::size_t i, __m256* acc) {
    const std::uint8_t* b = w + i * kWBytes;
    const float wd = B32Scale<K>(b);
    const __m256i wq = B32Values<K>(b);
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 2;
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[static_cast<std::size_t>(r) * nb + i]),
                               _mm256_cvtepi32_ps(B32BlockLanes(wq, ab)), acc[r]);
    }
  };
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  if constexpr (kB32Paired<K>) {
    __m256 odd[R];
    for (int r = 0; r < R; ++r) odd[r] = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      step(i, acc);
      step(i + 1, odd);
    }
    for (int r = 0; r < R; ++r) {
      float sum = HSum(_mm256_add_ps(acc[r], odd[r]));
      if (i < nb) {  // the last of an odd count of blocks
        const std::uint8_t* b = w + i * kWBytes;
        const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 2;
        const std::int32_t s = HSumI32(B32BlockLanes(B32Values<K>(b), ab));
        sum += B32Scale<K>(b) * xd[static_cast<std::size_t>(r) * nb + i] * static_cast<float>(s);
      }
      y[static_cast<std::size_t>(r) * ldy] = sum;
    }
  } else {
    for (std::size_t i = 0; i < nb; ++i) step(i, acc);
    for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]);
  }
}

// One Q4_1 (kQ5 false) or Q5_1 (kQ5) weight row (nb blocks: f16 d, f16 m, [qh[4],] qs[16]) · R
// Q8_1 activation rows (36-byte blocks: f16 d, f16 s = d·Σqs, int8 qs[32]): Σ_i d_i·da_i·
// Σ_j q·a (unsigned q, exact) in fp32 lanes, plus Σ_i m_i·s_i in one float (the block order).
template <bool kQ5, int R>
HWY_INLINE void Q451RowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                          const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                          std::size_t ldy) {
  constexpr std::size_t kBytes = 36;
  constexpr std::size_t kWBytes = kQ5 ? 24 : 20;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  float msum[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    msum[r] = 0.f;
  }
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * kWBytes;
    const float wd = HalfToFloat(LoadU16(b));
    const float wm = HalfToFloat(LoadU16(b + 2));
    __m256i q = Nibbles(b + (kQ5 ? 8 : 4));
    if constexpr (kQ5)
      q = _mm256_or_si256(q, _mm256_and_si256(FifthBits(b + 4), _mm256_set1_epi8(0x10)));
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 4));
      const __m256 sv = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, av), ones));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wd * HalfToFloat(LoadU16(ab))), sv, acc[r]);
      msum[r] += wm * HalfToFloat(LoadU16(ab + 2));
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = HSum(acc[r]) + msum[r];
}

#else
HWY_INLINE std::size_t KqGemv(kernels::KqKind, const std::uint8_t*, std::size_t, std::size_t,
                              std::size_t, const std::uint8_t*, float*) {
  return 0;  // the row kernels do all rows
}
#endif  // DSV4_CPU_QD_AVX2

// ---- activation quantizers (bit for bit Q8_0::quantize_x86 / Q8_K::quantize) ----

#if DSV4_CPU_QD_AVX2
HWY_INLINE float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
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
    const float amax = HMax(m);
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    for (int k = 0; k < 4; ++k)
      v[k] =
          _mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + 2), PackI8(v[0], v[1], v[2], v[3]));
    const auto h = static_cast<std::uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    std::memcpy(b, &h, 2);
    xd[i] = _cvtsh_ss(h);
#else
    dsv4::Q8_0::block_type blk;
    dsv4::Q8_0::quantize_x86(in, blk);
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
      case KqKind::iq4_xs: {
        // unsigned q = value + 128, its offset in bias: −128·sc
        dsv4::IQ4_XS::block_type blk;
        std::memcpy(&blk, w + i * sizeof blk, sizeof blk);
        for (int c = 0; c < 8; ++c) {
          for (int l = 0; l < 16; ++l) {
            qb[32 * c + l] = static_cast<std::uint8_t>(
                dsv4::detail::ggml::kIq4nlValues[blk.qs[16 * c + l] & 0x0F] + 128);
            qb[32 * c + 16 + l] = static_cast<std::uint8_t>(
                dsv4::detail::ggml::kIq4nlValues[blk.qs[16 * c + l] >> 4] + 128);
          }
          const auto sc = static_cast<std::int16_t>(dsv4::IQ4_XS::sub_scale(blk, c) - 32);
          b.sc[2 * c] = b.sc[2 * c + 1] = sc;
          b.bias[2 * c] = b.bias[2 * c + 1] = static_cast<std::int16_t>(-128 * sc);
          b.mn[2 * c] = b.mn[2 * c + 1] = 0;
        }
        b.d = HalfToFloat(blk.d.bits);
        b.dmin = 0.f;
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

// One weight row of a 32-value format · `rows` Q8_0 activation rows (kernels::b32_row): the
// fused kernel on AVX2 targets, else the unpack into q / wsc and the scalar one.
template <kernels::B32Kind K>
HWY_INLINE void B32RowK(const std::uint8_t* w, std::size_t nb, const std::uint8_t* xq,
                        const float* xd, std::size_t rows, float* y, std::size_t ldy,
                        std::int8_t* q, float* wsc) {
#if DSV4_CPU_QD_AVX2
  (void)q;
  (void)wsc;
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    B32RowsR<K, R>(w, nb, xq + r * nb * 34, xd + r * nb, y + r * ldy, ldy);
  });
#else
  UnpackB32<K>(w, nb, q, wsc);
  I8Rows<kB32Paired<K> >(q, wsc, xq, xd, rows, nb, y, ldy);
#endif
}

HWY_INLINE void B32Row(kernels::B32Kind kind, const std::uint8_t* w, std::size_t nb,
                       const std::uint8_t* xq, const float* xd, std::size_t rows, float* y,
                       std::size_t ldy, std::int8_t* q, float* wsc) {
  using kernels::B32Kind;
  switch (kind) {
    case B32Kind::q8_0:
      return B32RowK<B32Kind::q8_0>(w, nb, xq, xd, rows, y, ldy, q, wsc);
    case B32Kind::q4_0:
      return B32RowK<B32Kind::q4_0>(w, nb, xq, xd, rows, y, ldy, q, wsc);
    case B32Kind::q5_0:
      return B32RowK<B32Kind::q5_0>(w, nb, xq, xd, rows, y, ldy, q, wsc);
    case B32Kind::iq4_nl:
      return B32RowK<B32Kind::iq4_nl>(w, nb, xq, xd, rows, y, ldy, q, wsc);
    case B32Kind::mxfp4:
      return B32RowK<B32Kind::mxfp4>(w, nb, xq, xd, rows, y, ldy, q, wsc);
  }
}

// One Q4_1 / Q5_1 weight row · `rows` Q8_1 activation rows (kernels::q451_row): the fused
// kernel on AVX2 targets, else the same arithmetic in scalar code.
template <bool kQ5>
HWY_INLINE void Q451RowK(const std::uint8_t* w, std::size_t nb, const std::uint8_t* xq,
                         std::size_t rows, float* y, std::size_t ldy) {
#if DSV4_CPU_QD_AVX2
  ForRowGroups(rows, [&]<int R>(std::size_t r) {
    Q451RowsR<kQ5, R>(w, nb, xq + r * nb * 36, y + r * ldy, ldy);
  });
#else
  constexpr std::size_t kWBytes = kQ5 ? 24 : 20;
  for (std::size_t r = 0; r < rows; ++r) {
    dsv4::detail::ggml::X86Lanes acc;
    float msum = 0.f;
    for (std::size_t i = 0; i < nb; ++i) {
      const std::uint8_t* b = w + i * kWBytes;
      const std::uint8_t* ab = xq + (r * nb + i) * 36;
      const auto* a = reinterpret_cast<const std::int8_t*>(ab + 4);
      const std::uint8_t* qs = b + (kQ5 ? 8 : 4);
      int v[32];
      if constexpr (kQ5) {
        dsv4::detail::ggml::unpack_q5(qs, b + 4, v);
      } else {
        for (int j = 0; j < 16; ++j) {
          v[j] = qs[j] & 0x0F;
          v[j + 16] = qs[j] >> 4;
        }
      }
      msum += HalfToFloat(LoadU16(b + 2)) * HalfToFloat(LoadU16(ab + 2));
      acc.add(HalfToFloat(LoadU16(b)) * HalfToFloat(LoadU16(ab)), v, a);
    }
    y[r * ldy] = acc.sum() + msum;
  }
#endif
}

// One k-quant weight row · `rows` Q8_K activation rows (kernels::kq_row): the fused kernels on
// AVX2 targets, else the unpack into q / k and the generic one.
HWY_INLINE void KqRow(kernels::KqKind kind, const std::uint8_t* w, std::size_t nb,
                      const std::uint8_t* xq, std::size_t rows, float* y, std::size_t ldy,
                      std::uint8_t* q, kernels::KqBlock* k) {
#if DSV4_CPU_QD_AVX2
  using kernels::KqKind;
  const auto fused = [&]<class Kernel>(Kernel kernel) {
    ForRowGroups(rows, [&]<int R>(std::size_t r) {
      kernel.template operator()<R>(xq + r * nb * 292, y + r * ldy);
    });
  };
  switch (kind) {
    case KqKind::q2_k:
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { Q23KRowsR<false, R>(w, nb, x, yr, ldy); });
    case KqKind::q3_k:
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { Q23KRowsR<true, R>(w, nb, x, yr, ldy); });
    case KqKind::q4_k:
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { Q45KRowsR<false, R>(w, nb, x, yr, ldy); });
    case KqKind::q5_k:
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { Q45KRowsR<true, R>(w, nb, x, yr, ldy); });
    case KqKind::q6_k:
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { Q6KRowsR<R>(w, nb, x, yr, ldy); });
    case KqKind::iq4_xs:  // (its unpacked quants reach 241: too large for KqRowsR's vpmaddubsw)
      return fused(
          [&]<int R>(const std::uint8_t* x, float* yr) { IQ4XSRowsR<R>(w, nb, x, yr, ldy); });
  }
#else
  // the formats with ggml's x86 order: their own dot_x86 (the fused kernels' arithmetic)
  const auto x86 = [&]<class F>() {
    const auto* wb = reinterpret_cast<const typename F::block_type*>(w);
    const auto* ab = reinterpret_cast<const dsv4::Q8_K::block_type*>(xq);
    for (std::size_t r = 0; r < rows; ++r) y[r * ldy] = F::dot_x86(wb, ab + r * nb, nb);
  };
  switch (kind) {
    case kernels::KqKind::q2_k:
      return x86.template operator()<dsv4::Q2_K>();
    case kernels::KqKind::q4_k:
      return x86.template operator()<dsv4::Q4_K>();
    case kernels::KqKind::q5_k:
      return x86.template operator()<dsv4::Q5_K>();
    case kernels::KqKind::q6_k:
      return x86.template operator()<dsv4::Q6_K>();
    default:
      break;
  }
#endif
  UnpackKq(kind, w, nb, q, k);
  KqRows(q, k, xq, rows, nb, y, ldy);
}

// ---- llama.cpp's repacked kernels (Q4_0, Q2_K, Q4_K: the formats' dot_repacked) ----
// Each step's exact integer sum times its scale product, added with one FMA in order; the
// k-quants keep their min term in a second accumulator and return the difference. A k-quant step
// is `chunks` 32-value chunks of a super-block (Q4_K: 2 in the GEMM, Q2_K: 4; the GEMV: 8).

// One unpacked k-quant weight row (UnpackKq: q [nb·256], k [nb]) · R Q8_K activation rows.
template <int R>
HWY_INLINE void RepackedKqRowsR(const std::uint8_t* HWY_RESTRICT q,
                                const kernels::KqBlock* HWY_RESTRICT k,
                                const std::uint8_t* HWY_RESTRICT xq, std::size_t nb, int chunks,
                                float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  float acc[R] = {};
  float accm[R] = {};
  for (std::size_t i = 0; i < nb; ++i) {
    const kernels::KqBlock& b = k[i];
    const std::uint8_t* qb = q + 256 * i;
    for (int c0 = 0; c0 < 8; c0 += chunks) {
      std::int32_t isum[R];
#if DSV4_CPU_QD_AVX2
      __m256i vsum[R];
      for (int r = 0; r < R; ++r) vsum[r] = _mm256_setzero_si256();
      for (int c = c0; c < c0 + chunks; ++c)
        KqChunkAdd<R>(qb, b, c, xq + i * kBytes + 4, row_bytes, vsum);
      for (int r = 0; r < R; ++r) isum[r] = HSumI32(vsum[r]);
#else
      for (int r = 0; r < R; ++r) {
        const auto* a = reinterpret_cast<const std::int8_t*>(
            xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4);
        std::int32_t s = 0;
        for (int g = 2 * c0; g < 2 * (c0 + chunks); ++g) {
          std::int32_t sg = 0;
          for (int e = 16 * g; e < 16 * g + 16; ++e) sg += qb[e] * a[e];
          s += b.sc[g] * sg;
        }
        isum[r] = s;
      }
#endif
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
        float da;
        std::memcpy(&da, ab, sizeof da);
        std::int16_t bsums[16];
        std::memcpy(bsums, ab + 260, sizeof bsums);
        std::int32_t msum = 0;
        for (int g = 2 * c0; g < 2 * (c0 + chunks); ++g) msum += b.mn[g] * bsums[g];
        acc[r] = std::fma(static_cast<float>(isum[r]), b.d * da, acc[r]);
        accm[r] = std::fma(static_cast<float>(msum), b.dmin * da, accm[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = acc[r] - accm[r];
}

// One unpacked Q4_0 weight row (signed quants q [nb·32], block scales k[i].d) · one Q8_0
// activation row (xq, its scales xd): Σ_i fma(Σ_j q·a, d_i·xd_i) in block order.
HWY_INLINE float RepackedQ4_0Row(const std::int8_t* HWY_RESTRICT q,
                                 const kernels::KqBlock* HWY_RESTRICT k,
                                 const std::uint8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd,
                                 std::size_t nb) {
  constexpr std::size_t kBytes = 34;
  float acc = 0.f;
  for (std::size_t i = 0; i < nb; ++i) {
    const auto* a = reinterpret_cast<const std::int8_t*>(xq + i * kBytes + 2);
#if DSV4_CPU_QD_AVX2
    const __m256i w0 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 32 * i)));
    const __m256i w1 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 32 * i + 16)));
    const __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
    const __m256i a1 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16)));
    const std::int32_t s =
        HSumI32(_mm256_add_epi32(_mm256_madd_epi16(w0, a0), _mm256_madd_epi16(w1, a1)));
#else
    std::int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[32 * i + j] * a[j];
#endif
    acc = std::fma(static_cast<float>(s), k[i].d * xd[i], acc);
  }
  return acc;
}

#if DSV4_CPU_QD_AVX2
// Q4_K in the repacked kernels' orders, the weight row decoded in registers (Q45KChunk) and
// shared by R activation rows: `gemm` adds each 64-value chunk's integer sums with its FMAs (the
// min term of chunk c is lane c of Q45KMins' integer products), the GEMV each super-block's.
template <int R>
HWY_INLINE void Q4KRepackedRowsR(const std::uint8_t* HWY_RESTRICT w, std::size_t nb,
                                 const std::uint8_t* HWY_RESTRICT xq, bool gemm,
                                 float* HWY_RESTRICT y, std::size_t ldy) {
  constexpr std::size_t kBytes = 292;
  const std::size_t row_bytes = nb * kBytes;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one8 = _mm256_set1_epi8(1);
  float acc[R] = {};
  float accm[R] = {};
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* b = w + i * sizeof(dsv4::Q4_K::block_type);
    const Q45KScales h = Q45KDecodeScales(b);
    const std::uint8_t* qs = b + 16;
    float da[R];
    alignas(16) std::int32_t mins[R][4];
    __m256i isum[R];
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* ab = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes;
      std::memcpy(&da[r], ab, sizeof(float));
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + 260));
      const __m256i msum = _mm256_mullo_epi32(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)), h.mins);
      const __m256i hp = _mm256_hadd_epi32(msum, msum);
      _mm_store_si128(
          reinterpret_cast<__m128i*>(mins[r]),
          _mm_unpacklo_epi64(_mm256_castsi256_si128(hp), _mm256_extracti128_si256(hp, 1)));
      isum[r] = _mm256_setzero_si256();
    }
    for (int c = 0; c < 4; ++c) {
      __m256i q0, q1;
      Q45KChunk<false>(qs, _mm256_setzero_si256(), c, m4, one8, q0, q1);
      const __m256i s0 = Q45KScale(h.scb, 2 * c);
      const __m256i s1 = Q45KScale(h.scb, 2 * c + 1);
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* a = xq + static_cast<std::size_t>(r) * row_bytes + i * kBytes + 4;
        const __m256i p = Q45KChunkDot(q0, q1, s0, s1, a, c);
        if (gemm) {
          acc[r] = std::fma(static_cast<float>(HSumI32(p)), h.d * da[r], acc[r]);
          accm[r] = std::fma(static_cast<float>(mins[r][c]), h.dmin * da[r], accm[r]);
        } else {
          isum[r] = _mm256_add_epi32(isum[r], p);
        }
      }
    }
    if (!gemm) {
      for (int r = 0; r < R; ++r) {
        const std::int32_t msum = mins[r][0] + mins[r][1] + mins[r][2] + mins[r][3];
        acc[r] = std::fma(static_cast<float>(HSumI32(isum[r])), h.d * da[r], acc[r]);
        accm[r] = std::fma(static_cast<float>(msum), h.dmin * da[r], accm[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) y[static_cast<std::size_t>(r) * ldy] = acc[r] - accm[r];
}
#endif

HWY_INLINE void RepackedRow(kernels::RepackKind kind, const std::uint8_t* HWY_RESTRICT w,
                            std::size_t nb, const std::uint8_t* HWY_RESTRICT xq,
                            const float* HWY_RESTRICT xd, std::size_t rows, std::size_t gemm_rows,
                            float* HWY_RESTRICT y, std::size_t ldy, std::uint8_t* HWY_RESTRICT q,
                            kernels::KqBlock* HWY_RESTRICT k) {
  if (kind == kernels::RepackKind::q4_0) {
    auto* q8 = reinterpret_cast<std::int8_t*>(q);
    for (std::size_t i = 0; i < nb; ++i) {
      const std::uint8_t* b = w + i * sizeof(dsv4::Q4_0::block_type);
      k[i].d = HalfToFloat(LoadU16(b));
      for (int j = 0; j < 16; ++j) {
        q8[32 * i + j] = static_cast<std::int8_t>((b[2 + j] & 0x0F) - 8);
        q8[32 * i + j + 16] = static_cast<std::int8_t>((b[2 + j] >> 4) - 8);
      }
    }
    for (std::size_t r = 0; r < rows; ++r)
      y[r * ldy] = RepackedQ4_0Row(q8, k, xq + r * nb * 34, xd + r * nb, nb);
    return;
  }
  const bool q4k = kind == kernels::RepackKind::q4_k;
#if DSV4_CPU_QD_AVX2
  if (q4k) {
    std::size_t r = 0;
    for (const auto [end, gemm] : {std::pair{gemm_rows, true}, std::pair{rows, false}}) {
      for (; r + 4 <= end; r += 4)
        Q4KRepackedRowsR<4>(w, nb, xq + r * nb * 292, gemm, y + r * ldy, ldy);
      for (; r < end; ++r) Q4KRepackedRowsR<1>(w, nb, xq + r * nb * 292, gemm, y + r * ldy, ldy);
    }
    return;
  }
#endif
  UnpackKq(q4k ? kernels::KqKind::q4_k : kernels::KqKind::q2_k, w, nb, q, k);
  const int gemm_chunks = q4k ? 2 : 4;
  std::size_t r = 0;
  for (; r + 4 <= gemm_rows; r += 4)
    RepackedKqRowsR<4>(q, k, xq + r * nb * 292, nb, gemm_chunks, y + r * ldy, ldy);
  for (; r < gemm_rows; ++r)
    RepackedKqRowsR<1>(q, k, xq + r * nb * 292, nb, gemm_chunks, y + r * ldy, ldy);
  for (; r + 4 <= rows; r += 4)
    RepackedKqRowsR<4>(q, k, xq + r * nb * 292, nb, 8, y + r * ldy, ldy);
  for (; r < rows; ++r) RepackedKqRowsR<1>(q, k, xq + r * nb * 292, nb, 8, y + r * ldy, ldy);
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#undef DSV4_CPU_QD_AVX2

#endif  // toggle guard
