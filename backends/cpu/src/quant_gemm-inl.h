// Per-target kernels of quant_dot.cc, continued: the prefill GEMM of the quantized formats over
// a tile of up to 16 weight rows (kernels::b32_tile / kq_tile). Re-included once per SIMD target
// by hwy/foreach_target.h, after quant_dot-inl.h (whose block decoders it uses).
//
// On AVX-512 targets whose CPU has VNNI the tile is repacked once per call into 16-lane form:
// four consecutive values of each of the 16 weight rows side by side, so that one `vpdpbusd`
// multiplies four values of 16 weight rows by the same four activation values (a broadcast) and
// adds the products into 16 int32 lanes, one per output. The weights are the unsigned operand:
// the 32-value formats' signed values are stored with +128 and 128·Σ a is subtracted per 4-value
// group, the k-quants' unpacked quants are unsigned already. Every lane is one output, its integer
// sums exact, so a result does not depend on the tile it falls in, the thread split or the rows
// computed beside it. The formats with ggml's x86 order (all 32-value formats, Q2_K, Q4_K, Q5_K,
// Q6_K) keep the sums of ggml's 8 lanes apart, each with its own fp32 FMA, and equal the formats'
// dot_x86 bit for bit (the k-quants through pre-scaled int16 weight pairs and `vpdpwssd`); Q3_K
// and IQ4_XS accumulate exact super-block sums in block order. Other targets (and fewer than
// kTileRows activation rows) run the row kernels per output, all n rows of a call inside one
// dispatched function.
#if defined(DSV4_CPU_QUANT_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DSV4_CPU_QUANT_GEMM_INL_H_
#undef DSV4_CPU_QUANT_GEMM_INL_H_
#else
#define DSV4_CPU_QUANT_GEMM_INL_H_
#endif

#include <hwy/highway.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <dsv4/core/scratch.hpp>
#include <type_traits>

#include "dsv4/cpu/kernels.hpp"

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define DSV4_CPU_QG_VNNI 1
// the packed kernels: AVX-512 VNNI on top of the target's own instruction set
#define DSV4_CPU_VNNI_FN __attribute__((target("avx512vnni")))
#else
#define DSV4_CPU_QG_VNNI 0
#endif

HWY_BEFORE_NAMESPACE();
namespace dsv4::cpu::HWY_NAMESPACE {

#if DSV4_CPU_QG_VNNI

// Whether the packed kernels may run: the CPU has AVX-512 VNNI and the caller allows them.
HWY_INLINE bool PackedAllowed() {
  static const bool has_vnni = __builtin_cpu_supports("avx512vnni");
  return has_vnni && kernels::packed_gemm_allowed();
}

HWY_INLINE __m512i Bcast4(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// ---- 32-value formats ----

// Packed form of n ≤ 16 weight rows of format K (nb blocks each): per block, 8 groups of 16
// lanes × 4 bytes (value + 128; rows past n hold 128, i.e. value 0) and 16 float scales (0 past n).
constexpr std::size_t kB32PackBytes = 8 * 64 + 16 * sizeof(float);

template <kernels::B32Kind K>
HWY_INLINE void PackB32(const std::uint8_t* HWY_RESTRICT w, std::size_t n, std::size_t nb,
                        std::uint8_t* HWY_RESTRICT pack) {
  constexpr std::size_t kWBytes = B32Bytes(K);
  for (std::size_t i = 0; i < nb; ++i) {
    std::uint8_t* p = pack + i * kB32PackBytes;
    float wsc[16];
    for (std::size_t o = 0; o < 16; ++o) {
      alignas(32) std::uint32_t v[8];
      if (o < n) {
        const std::uint8_t* b = w + (o * nb + i) * kWBytes;
        _mm256_store_si256(reinterpret_cast<__m256i*>(v),
                           _mm256_xor_si256(B32Values<K>(b), _mm256_set1_epi8(-128)));
        wsc[o] = B32Scale<K>(b);
      } else {
        for (auto& x : v) x = 0x80808080u;
        wsc[o] = 0.f;
      }
      for (int c = 0; c < 8; ++c) std::memcpy(p + c * 64 + o * 4, &v[c], 4);
    }
    std::memcpy(p + 8 * 64, wsc, sizeof wsc);
  }
}

// The exact integer sums of 4-value group c of a block (activation quants a, their group offsets
// asum [8]) with the packed block p of 16 weight rows, one per lane.
DSV4_CPU_VNNI_FN HWY_INLINE __m512i B32Group(const std::uint8_t* p, const std::uint8_t* a,
                                             const std::int32_t* asum, int c) {
  return _mm512_dpbusd_epi32(_mm512_set1_epi32(-asum[c]), _mm512_loadu_si512(p + 64 * c),
                             Bcast4(a + 4 * c));
}

// acc[r] = fma(d_w·d_a, float(group c of block i · activation row r), acc[r]) for r < R, the
// group's integer sum one vpdpbusd started from −asum (B32TileR).
template <int R>
DSV4_CPU_VNNI_FN HWY_INLINE void B32TileGroup(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                              std::size_t i, int c,
                                              const std::uint8_t* HWY_RESTRICT xq,
                                              const float* HWY_RESTRICT xd,
                                              const std::int32_t* HWY_RESTRICT asum, __m512* acc) {
  constexpr std::size_t kBytes = 34;
  const std::uint8_t* p = pack + i * kB32PackBytes;
  const __m512 wd = _mm512_loadu_ps(p + 8 * 64);
  for (int r = 0; r < R; ++r) {
    const std::size_t ri = static_cast<std::size_t>(r) * nb + i;
    const __m512 d = _mm512_mul_ps(wd, _mm512_set1_ps(xd[ri]));
    acc[r] = _mm512_fmadd_ps(
        d, _mm512_cvtepi32_ps(B32Group(p, xq + ri * kBytes + 2, asum + 8 * ri, c)), acc[r]);
  }
}

// R activation rows (Q8_0 blocks xq, scales xd, nb per row; asum: 128·Σ of each 4-value group,
// 8 per block) · the packed tile → y[r·ldy + o] for the lanes of `mask`, in ggml's x86 order
// (the formats' dot_x86): each 4-value group's integer sum is its own lane of ggml's kernel, so
// every group c gets one vpdpbusd started from −asum and its own fp32 accumulator (FMA with the
// block's scale product), the 8 accumulators added at the end as hsum_float_8 adds its lanes.
// The groups are taken one at a time over all blocks, so that each weight load serves the R rows.
// kPaired (IQ4_NL, MXFP4): even and odd blocks in two accumulators, an odd count's last block
// added to the sum as d·float(Σ).
template <int R, bool kPaired>
DSV4_CPU_VNNI_FN HWY_INLINE void B32TileR(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                          const std::uint8_t* HWY_RESTRICT xq,
                                          const float* HWY_RESTRICT xd,
                                          const std::int32_t* HWY_RESTRICT asum,
                                          float* HWY_RESTRICT y, std::size_t ldy, __mmask16 mask) {
  constexpr std::size_t kBytes = 34;
  const std::size_t lanes_end = kPaired ? nb & ~std::size_t{1} : nb;
  __m512 lanes[8][R];
  for (int c = 0; c < 8; ++c) {
    __m512 acc[R];
    for (auto& v : acc) v = _mm512_setzero_ps();
    if constexpr (kPaired) {
      __m512 odd[R];
      for (auto& v : odd) v = _mm512_setzero_ps();
      for (std::size_t i = 0; i < lanes_end; i += 2) {
        B32TileGroup<R>(pack, nb, i, c, xq, xd, asum, acc);
        B32TileGroup<R>(pack, nb, i + 1, c, xq, xd, asum, odd);
      }
      for (int r = 0; r < R; ++r) lanes[c][r] = _mm512_add_ps(acc[r], odd[r]);
    } else {
      for (std::size_t i = 0; i < nb; ++i) B32TileGroup<R>(pack, nb, i, c, xq, xd, asum, acc);
      for (int r = 0; r < R; ++r) lanes[c][r] = acc[r];
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(lanes[0][r], lanes[4][r]),
                                             _mm512_add_ps(lanes[2][r], lanes[6][r])),
                               _mm512_add_ps(_mm512_add_ps(lanes[1][r], lanes[5][r]),
                                             _mm512_add_ps(lanes[3][r], lanes[7][r])));
    if (lanes_end < nb) {
      const std::size_t ri = static_cast<std::size_t>(r) * nb + lanes_end;
      const std::uint8_t* p = pack + lanes_end * kB32PackBytes;
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 8; ++c)
        s = _mm512_add_epi32(s, B32Group(p, xq + ri * kBytes + 2, asum + 8 * ri, c));
      const __m512 d = _mm512_mul_ps(_mm512_loadu_ps(p + 8 * 64), _mm512_set1_ps(xd[ri]));
      sum = _mm512_add_ps(sum, _mm512_mul_ps(d, _mm512_cvtepi32_ps(s)));
    }
    _mm512_mask_storeu_ps(y + r * ldy, mask, sum);
  }
}

// Runs STEP(R, r) over the activation rows in groups of 8, one of 4, then one by one (a macro:
// a lambda would not carry the packed kernels' target attribute).
#define DSV4_CPU_FOR_TILE_ROWS(rows, STEP)         \
  do {                                             \
    std::size_t r_ = 0;                            \
    for (; r_ + 8 <= (rows); r_ += 8) STEP(8, r_); \
    if (r_ + 4 <= (rows)) {                        \
      STEP(4, r_);                                 \
      r_ += 4;                                     \
    }                                              \
    for (; r_ < (rows); ++r_) STEP(1, r_);         \
  } while (false)

template <kernels::B32Kind K>
DSV4_CPU_VNNI_FN void B32TileK(const std::uint8_t* w, std::size_t n, std::size_t nb,
                               const std::uint8_t* xq, const float* xd, const std::int32_t* asum,
                               std::size_t rows, float* y, std::size_t ldy, std::uint8_t* pack) {
  PackB32<K>(w, n, nb, pack);
  const auto mask = static_cast<__mmask16>((1u << n) - 1);
  constexpr bool kPaired = kB32Paired<K>;
#define DSV4_CPU_B32_STEP(R, r)                                                                 \
  B32TileR<R, kPaired>(pack, nb, xq + (r)*nb * 34, xd + (r)*nb, asum + 8 * (r)*nb, y + (r)*ldy, \
                       ldy, mask)
  DSV4_CPU_FOR_TILE_ROWS(rows, DSV4_CPU_B32_STEP);
#undef DSV4_CPU_B32_STEP
}

// ---- k-quants ----

// Packed form of n ≤ 16 k-quant weight rows, per super-block: the unsigned quants as 64 groups
// of 16 lanes × 4 bytes, the 16 group scales as int32 lanes, the bias and min pairs of groups
// (2g, 2g + 1) as int16 pairs per lane, d and dmin (all zero past n).
struct KqPackLayout {
  static constexpr std::size_t q = 0;
  static constexpr std::size_t sc = 64 * 64;
  static constexpr std::size_t bias = sc + 16 * 64;
  static constexpr std::size_t mn = bias + 8 * 64;
  static constexpr std::size_t d = mn + 8 * 64;
  static constexpr std::size_t dmin = d + 64;
  static constexpr std::size_t bytes = dmin + 64;
};

// R Q8_K activation rows (292-byte blocks: float d, int8 qs[256], int16 bsums[16]; nb per row)
// · the packed tile → y[r·ldy + o] for the lanes of `mask`: per super-block
// d·d_a·(Σ_g sc_g·Σ q·a + Σ_g bias_g·bsums_g) − dmin·d_a·Σ_g mn_g·bsums_g, the integer parts
// exact. kGroup: 32 where each scale covers two 16-value groups (Q4_K, Q5_K, IQ4_XS), else 16.
template <int R, int kGroup, bool kBias, bool kMin>
DSV4_CPU_VNNI_FN HWY_INLINE void KqTileR(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                         const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                                         std::size_t ldy, __mmask16 mask) {
  using L = KqPackLayout;
  constexpr std::size_t kBytes = 292;
  constexpr int kChunks = kGroup / 4;  // 4-value chunks per scale group
  const std::size_t row_bytes = nb * kBytes;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* p = pack + i * L::bytes;
    const std::uint8_t* a = xq + i * kBytes;
    __m512i isum[R];
    for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
    for (int g = 0; g < 256 / kGroup; ++g) {
      __m512i t[R];
      for (int r = 0; r < R; ++r) t[r] = _mm512_setzero_si512();
      for (int c = 0; c < kChunks; ++c) {
        const int chunk = g * kChunks + c;
        const __m512i wv = _mm512_loadu_si512(p + L::q + 64 * chunk);
        for (int r = 0; r < R; ++r)
          t[r] = _mm512_dpbusd_epi32(t[r], wv, Bcast4(a + r * row_bytes + 4 + 4 * chunk));
      }
      const __m512i sc = _mm512_loadu_si512(p + L::sc + 64 * (g * kGroup / 16));
      for (int r = 0; r < R; ++r) isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(t[r], sc));
    }
    if constexpr (kBias) {
      for (int g = 0; g < 8; ++g) {
        const __m512i bv = _mm512_loadu_si512(p + L::bias + 64 * g);
        for (int r = 0; r < R; ++r)
          isum[r] = _mm512_dpwssd_epi32(isum[r], bv, Bcast4(a + r * row_bytes + 260 + 4 * g));
      }
    }
    const __m512 d = _mm512_loadu_ps(p + L::d);
    for (int r = 0; r < R; ++r) {
      float da;
      std::memcpy(&da, a + r * row_bytes, sizeof da);
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(da)), _mm512_cvtepi32_ps(isum[r]),
                               acc[r]);
    }
    if constexpr (kMin) {
      __m512i msum[R];
      for (int r = 0; r < R; ++r) msum[r] = _mm512_setzero_si512();
      for (int g = 0; g < 8; ++g) {
        const __m512i mv = _mm512_loadu_si512(p + L::mn + 64 * g);
        for (int r = 0; r < R; ++r)
          msum[r] = _mm512_dpwssd_epi32(msum[r], mv, Bcast4(a + r * row_bytes + 260 + 4 * g));
      }
      const __m512 dmin = _mm512_loadu_ps(p + L::dmin);
      for (int r = 0; r < R; ++r) {
        float da;
        std::memcpy(&da, a + r * row_bytes, sizeof da);
        acc[r] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, _mm512_set1_ps(da)),
                                  _mm512_cvtepi32_ps(msum[r]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy, mask, acc[r]);
}

// Packed form of n ≤ 16 weight rows of a k-quant with ggml's x86 order (Q2_K, Q4_K, Q5_K,
// Q6_K), per super-block: each value pair times its 16-value group's scale as an int16 pair per
// lane (128 pairs of 16 lanes: q·sc ≤ 63·128 fits), so that one vpdpwssd adds two scaled
// products of 16 outputs; then KqPackLayout's bias, min pairs, d and dmin (zero past n).
struct KqX86PackLayout {
  static constexpr std::size_t w16 = 0;
  static constexpr std::size_t bias = 128 * 64;
  static constexpr std::size_t mn = bias + 8 * 64;
  static constexpr std::size_t d = mn + 8 * 64;
  static constexpr std::size_t dmin = d + 64;
  static constexpr std::size_t bytes = dmin + 64;
};

// Packs n ≤ 16 k-quant weight rows into layout L (KqPackLayout: unsigned quants and int32 group
// scales; KqX86PackLayout: the pre-scaled int16 pairs), then the bias and min pairs, d and dmin.
template <class L>
HWY_INLINE void PackKq(kernels::KqKind kind, const std::uint8_t* HWY_RESTRICT w, std::size_t n,
                       std::size_t nb, std::size_t w_row_bytes, std::uint8_t* HWY_RESTRICT pack,
                       std::uint8_t* HWY_RESTRICT q, kernels::KqBlock* HWY_RESTRICT k) {
  std::memset(pack, 0, nb * L::bytes);
  for (std::size_t o = 0; o < n; ++o) {
    UnpackKq(kind, w + o * w_row_bytes, nb, q, k);
    for (std::size_t i = 0; i < nb; ++i) {
      std::uint8_t* p = pack + i * L::bytes;
      const std::uint8_t* qb = q + 256 * i;
      const kernels::KqBlock& b = k[i];
      if constexpr (std::is_same_v<L, KqX86PackLayout>) {
        for (int s = 0; s < 128; ++s) {
          const std::int16_t sc = b.sc[s / 8];
          const std::int16_t pair[2] = {static_cast<std::int16_t>(qb[2 * s] * sc),
                                        static_cast<std::int16_t>(qb[2 * s + 1] * sc)};
          std::memcpy(p + L::w16 + s * 64 + o * 4, pair, 4);
        }
      } else {
        for (int c = 0; c < 64; ++c) std::memcpy(p + L::q + c * 64 + o * 4, qb + 4 * c, 4);
        for (int g = 0; g < 16; ++g) {
          const std::int32_t sc = b.sc[g];
          std::memcpy(p + L::sc + g * 64 + o * 4, &sc, 4);
        }
      }
      for (int g = 0; g < 8; ++g) {
        std::memcpy(p + L::bias + g * 64 + o * 4, &b.bias[2 * g], 4);
        std::memcpy(p + L::mn + g * 64 + o * 4, &b.mn[2 * g], 4);
      }
      std::memcpy(p + L::d + o * 4, &b.d, 4);
      std::memcpy(p + L::dmin + o * 4, &b.dmin, 4);
    }
  }
}

// R Q8_K activation rows (a16: their quants as int16, 256 per super-block; xq: the blocks, for
// d and bsums) · the packed tile of a format with ggml's x86 order (K: q2_k, q4_k, q5_k, q6_k) →
// y[r·ldy + o] for the lanes of `mask`, bit for bit the format's dot_x86: per super-block 8
// integer lanes per output, lane m the 4-value groups 8c + m (two vpdpwssd each on the
// pre-scaled pairs; Q6_K's −32 offset per lane pair of groups), then ggml's float steps
// (detail::kq::dot_qk_asym_x86, Q2_K::dot_x86, Q6_K::dot_x86). The lanes are taken one at a
// time, so that each weight load serves the R rows.
template <kernels::KqKind K, int R>
DSV4_CPU_VNNI_FN HWY_INLINE void KqTileX86R(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                            const std::int16_t* HWY_RESTRICT a16,
                                            const std::uint8_t* HWY_RESTRICT xq,
                                            float* HWY_RESTRICT y, std::size_t ldy,
                                            __mmask16 mask) {
  using L = KqX86PackLayout;
  using kernels::KqKind;
  constexpr std::size_t kBytes = 292;
  constexpr bool kQ45 = K == KqKind::q4_k || K == KqKind::q5_k;
  const std::size_t row_bytes = nb * kBytes;
  __m512 acc[R][8];
  __m512 accm[R][4];
  __m512 summs[R];
  for (int r = 0; r < R; ++r) {
    for (auto& v : acc[r]) v = _mm512_setzero_ps();
    for (auto& v : accm[r]) v = _mm512_setzero_ps();
    summs[r] = _mm512_setzero_ps();
  }
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* p = pack + i * L::bytes;
    const std::uint8_t* a = xq + i * kBytes;
    const std::uint8_t* a2 = reinterpret_cast<const std::uint8_t*>(a16 + 256 * i);
    __m512 d[R];
    __m512 dmin[R];
    for (int r = 0; r < R; ++r) {
      float da;
      std::memcpy(&da, a + r * row_bytes, sizeof da);
      d[r] = _mm512_mul_ps(_mm512_set1_ps(da), _mm512_loadu_ps(p + L::d));
      dmin[r] = _mm512_mul_ps(_mm512_set1_ps(-da), _mm512_loadu_ps(p + L::dmin));
    }
    for (int m = 0; m < 8; ++m) {
      // the mins' integer lane m: mn[2m]·bsums[2m] + mn[2m + 1]·bsums[2m + 1] (Q2_K: first)
      if constexpr (K == KqKind::q2_k) {
        const __m512i mv = _mm512_loadu_si512(p + L::mn + 64 * m);
        for (int r = 0; r < R; ++r) {
          const __m512i mg = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mv,
                                                 Bcast4(a + r * row_bytes + 260 + 4 * m));
          acc[r][m] = _mm512_fmadd_ps(dmin[r], _mm512_cvtepi32_ps(mg), acc[r][m]);
        }
      }
      __m512i lane[R];
      for (int r = 0; r < R; ++r) lane[r] = _mm512_setzero_si512();
      for (int c = 0; c < 8; ++c) {
        const int g = 8 * c + m;  // values 4g .. 4g + 3: pairs 2g and 2g + 1
        const __m512i w0 = _mm512_loadu_si512(p + L::w16 + 64 * (2 * g));
        const __m512i w1 = _mm512_loadu_si512(p + L::w16 + 64 * (2 * g + 1));
        for (int r = 0; r < R; ++r) {
          const std::uint8_t* ar = a2 + static_cast<std::size_t>(r) * nb * 512 + 8 * g;
          lane[r] = _mm512_dpwssd_epi32(lane[r], w0, Bcast4(ar));
          lane[r] = _mm512_dpwssd_epi32(lane[r], w1, Bcast4(ar + 4));
        }
      }
      if constexpr (K == KqKind::q6_k) {
        const __m512i bv = _mm512_loadu_si512(p + L::bias + 64 * m);
        for (int r = 0; r < R; ++r)
          lane[r] = _mm512_dpwssd_epi32(lane[r], bv, Bcast4(a + r * row_bytes + 260 + 4 * m));
      }
      for (int r = 0; r < R; ++r)
        acc[r][m] = _mm512_fmadd_ps(d[r], _mm512_cvtepi32_ps(lane[r]), acc[r][m]);
    }
    if constexpr (kQ45) {
      // the min term: prod[k] = mg[2k] + mg[2k + 1] of the pairs' lanes
      for (int r = 0; r < R; ++r) {
        __m512i mg[8];
        for (int g = 0; g < 8; ++g)
          mg[g] =
              _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(p + L::mn + 64 * g),
                                  Bcast4(a + r * row_bytes + 260 + 4 * g));
        if constexpr (K == KqKind::q5_k) {
          __m512i total = _mm512_setzero_si512();
          for (int g = 0; g < 8; ++g) total = _mm512_add_epi32(total, mg[g]);
          summs[r] = _mm512_add_ps(summs[r], _mm512_mul_ps(dmin[r], _mm512_cvtepi32_ps(total)));
        } else {
          for (int k = 0; k < 4; ++k)
            accm[r][k] = _mm512_fmadd_ps(
                dmin[r], _mm512_cvtepi32_ps(_mm512_add_epi32(mg[2 * k], mg[2 * k + 1])),
                accm[r][k]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512* l = acc[r];
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l[0], l[4]), _mm512_add_ps(l[2], l[6])),
                               _mm512_add_ps(_mm512_add_ps(l[1], l[5]), _mm512_add_ps(l[3], l[7])));
    if constexpr (K == KqKind::q4_k) {
      sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(accm[r][0], accm[r][2]),
                                             _mm512_add_ps(accm[r][1], accm[r][3])));
    } else if constexpr (K == KqKind::q5_k) {
      sum = _mm512_add_ps(sum, summs[r]);
    }
    _mm512_mask_storeu_ps(y + r * ldy, mask, sum);
  }
}

template <kernels::KqKind K>
DSV4_CPU_VNNI_FN void KqTileX86Rows(const std::uint8_t* pack, std::size_t nb,
                                    const std::int16_t* a16, const std::uint8_t* xq,
                                    std::size_t rows, float* y, std::size_t ldy, __mmask16 mask) {
#define DSV4_CPU_KQX_STEP(R, r) \
  KqTileX86R<K, R>(pack, nb, a16 + (r)*nb * 256, xq + (r)*nb * 292, y + (r)*ldy, ldy, mask)
  DSV4_CPU_FOR_TILE_ROWS(rows, DSV4_CPU_KQX_STEP);
#undef DSV4_CPU_KQX_STEP
}

template <int kGroup, bool kBias, bool kMin>
DSV4_CPU_VNNI_FN void KqTileRows(const std::uint8_t* pack, std::size_t nb, const std::uint8_t* xq,
                                 std::size_t rows, float* y, std::size_t ldy, __mmask16 mask) {
#define DSV4_CPU_KQ_STEP(R, r) \
  KqTileR<R, kGroup, kBias, kMin>(pack, nb, xq + (r)*nb * 292, y + (r)*ldy, ldy, mask)
  DSV4_CPU_FOR_TILE_ROWS(rows, DSV4_CPU_KQ_STEP);
#undef DSV4_CPU_KQ_STEP
}

#endif  // DSV4_CPU_QG_VNNI

// n weight rows of 32-value format `kind` (nb blocks each, rows contiguous) · `rows` Q8_0
// activation rows → y[r·ldy + o] (kernels::b32_tile): packed tiles of 16 rows, or the row kernel.
HWY_INLINE void B32Tile(kernels::B32Kind kind, const std::uint8_t* w, std::size_t n, std::size_t nb,
                        const std::uint8_t* xq, const float* xd, const std::int32_t* asum,
                        std::size_t rows, float* y, std::size_t ldy, std::int8_t* q, float* wsc) {
  using kernels::B32Kind;
  const std::size_t w_row_bytes = nb * B32Bytes(kind);
#if DSV4_CPU_QG_VNNI
  if (rows >= kernels::kTileRows && asum != nullptr && PackedAllowed()) {
    ScratchBuffer<std::uint8_t> pack(nb * kB32PackBytes);
    for (std::size_t o = 0; o < n; o += 16) {
      const std::size_t m = n - o < 16 ? n - o : 16;
      const std::uint8_t* wt = w + o * w_row_bytes;
      switch (kind) {
        case B32Kind::q8_0:
          B32TileK<B32Kind::q8_0>(wt, m, nb, xq, xd, asum, rows, y + o, ldy, pack.data());
          break;
        case B32Kind::q4_0:
          B32TileK<B32Kind::q4_0>(wt, m, nb, xq, xd, asum, rows, y + o, ldy, pack.data());
          break;
        case B32Kind::q5_0:
          B32TileK<B32Kind::q5_0>(wt, m, nb, xq, xd, asum, rows, y + o, ldy, pack.data());
          break;
        case B32Kind::iq4_nl:
          B32TileK<B32Kind::iq4_nl>(wt, m, nb, xq, xd, asum, rows, y + o, ldy, pack.data());
          break;
        case B32Kind::mxfp4:
          B32TileK<B32Kind::mxfp4>(wt, m, nb, xq, xd, asum, rows, y + o, ldy, pack.data());
          break;
      }
    }
    return;
  }
#else
  (void)asum;
#endif
  for (std::size_t o = 0; o < n; ++o)
    B32Row(kind, w + o * w_row_bytes, nb, xq, xd, rows, y + o, ldy, q, wsc);
}

// The bytes of a k-quant super-block.
HWY_INLINE std::size_t KqBytes(kernels::KqKind kind) {
  using kernels::KqKind;
  switch (kind) {
    case KqKind::q2_k:
      return sizeof(dsv4::Q2_K::block_type);
    case KqKind::q3_k:
      return sizeof(dsv4::Q3_K::block_type);
    case KqKind::q4_k:
      return sizeof(dsv4::Q4_K::block_type);
    case KqKind::q5_k:
      return sizeof(dsv4::Q5_K::block_type);
    case KqKind::q6_k:
      return sizeof(dsv4::Q6_K::block_type);
    case KqKind::iq4_xs:
      return sizeof(dsv4::IQ4_XS::block_type);
  }
  return 0;
}

// n k-quant weight rows (nb super-blocks each, rows contiguous) · `rows` Q8_K activation rows →
// y[r·ldy + o] (kernels::kq_tile): packed tiles of 16 rows, or the row kernel.
HWY_INLINE void KqTile(kernels::KqKind kind, const std::uint8_t* w, std::size_t n, std::size_t nb,
                       const std::uint8_t* xq, const std::int16_t* a16, std::size_t rows, float* y,
                       std::size_t ldy, std::uint8_t* q, kernels::KqBlock* k) {
  using kernels::KqKind;
  const std::size_t w_row_bytes = nb * KqBytes(kind);
#if DSV4_CPU_QG_VNNI
  const bool x86 =
      kind == KqKind::q2_k || kind == KqKind::q4_k || kind == KqKind::q5_k || kind == KqKind::q6_k;
  // the x86-order kernels read the activation quants widened to int16 (kernels::q8_k_widen)
  if (rows >= kernels::kTileRows && PackedAllowed() && (a16 != nullptr || !x86)) {
    ScratchBuffer<std::uint8_t> pack(nb * (x86 ? KqX86PackLayout::bytes : KqPackLayout::bytes));
    for (std::size_t o = 0; o < n; o += 16) {
      const std::size_t m = n - o < 16 ? n - o : 16;
      if (x86) {
        PackKq<KqX86PackLayout>(kind, w + o * w_row_bytes, m, nb, w_row_bytes, pack.data(), q, k);
      } else {
        PackKq<KqPackLayout>(kind, w + o * w_row_bytes, m, nb, w_row_bytes, pack.data(), q, k);
      }
      const auto mask = static_cast<__mmask16>((1u << m) - 1);
      switch (kind) {
        case KqKind::q2_k:
          KqTileX86Rows<KqKind::q2_k>(pack.data(), nb, a16, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::q3_k:
          KqTileRows<16, true, false>(pack.data(), nb, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::q6_k:
          KqTileX86Rows<KqKind::q6_k>(pack.data(), nb, a16, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::q4_k:
          KqTileX86Rows<KqKind::q4_k>(pack.data(), nb, a16, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::q5_k:
          KqTileX86Rows<KqKind::q5_k>(pack.data(), nb, a16, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::iq4_xs:
          KqTileRows<32, true, false>(pack.data(), nb, xq, rows, y + o, ldy, mask);
          break;
      }
    }
    return;
  }
#else
  (void)a16;
#endif
  // decode: four weight rows at a time where a kernel for that exists, then one at a time
  std::size_t o = rows == 1 ? KqGemv(kind, w, n, nb, w_row_bytes, xq, y) : 0;
  for (; o < n; ++o) KqRow(kind, w + o * w_row_bytes, nb, xq, rows, y + o, ldy, q, k);
}

// The quants of n_blocks Q8_K blocks as int16 (kernels::q8_k_widen).
HWY_INLINE void Q8_KWiden(const std::uint8_t* HWY_RESTRICT xq, std::size_t n_blocks,
                          std::int16_t* HWY_RESTRICT out) {
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const auto* qs = reinterpret_cast<const std::int8_t*>(xq + 292 * i + 4);
    for (int j = 0; j < 256; ++j) out[256 * i + static_cast<std::size_t>(j)] = qs[j];
  }
}

// 128·Σ of each 4-value group of n_blocks Q8_0 blocks, 8 per block (kernels::q8_0_offsets).
HWY_INLINE void Q8_0Offsets(const std::uint8_t* HWY_RESTRICT xq, std::size_t n_blocks,
                            std::int32_t* HWY_RESTRICT out) {
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const auto* qs = reinterpret_cast<const std::int8_t*>(xq + 34 * i + 2);
    for (int c = 0; c < 8; ++c)
      out[8 * i + c] = 128 * (qs[4 * c] + qs[4 * c + 1] + qs[4 * c + 2] + qs[4 * c + 3]);
  }
}

}  // namespace dsv4::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#undef DSV4_CPU_QG_VNNI
#undef DSV4_CPU_VNNI_FN
#undef DSV4_CPU_FOR_TILE_ROWS

#endif  // include guard
