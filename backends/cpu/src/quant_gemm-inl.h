// Per-target kernels of quant_dot.cc, continued: the prefill GEMM of the quantized formats over
// a tile of up to 16 weight rows (kernels::b32_tile / kq_tile). Re-included once per SIMD target
// by hwy/foreach_target.h, after quant_dot-inl.h (whose block decoders it uses).
//
// On AVX-512 targets whose CPU has VNNI the tile is repacked once per call into 16-lane form:
// four consecutive values of each of the 16 weight rows side by side, so that one `vpdpbusd`
// multiplies four values of 16 weight rows by the same four activation values (a broadcast) and
// adds the products into 16 int32 lanes, one per output. The weights are the unsigned operand:
// the 32-value formats' signed values are stored with +128 and 128·Σ a is subtracted per block,
// the k-quants' unpacked quants are unsigned already. Every lane is one output, its integer block
// sums exact and its blocks accumulated in block order, so a result does not depend on the tile
// it falls in, the thread split or the rows computed beside it. For the 32-value formats the
// arithmetic is the formats' own dot (F::dot: Σ in block order of float(Σq·a)·(d_w·d_a)), bit for
// bit. Other targets (and fewer than kTileRows activation rows) run the row kernels per output,
// all n rows of a call inside one dispatched function.
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

// R activation rows (Q8_0 blocks xq, scales xd, nb per row; asum: 128·Σ of each 4-value group,
// 8 per block) · the packed tile → y[r·ldy + o] for the lanes of `mask`, in ggml's x86 order
// (the formats' dot_x86): each 4-value group's integer sum is its own lane of ggml's kernel, so
// every group g gets one vpdpbusd started from −asum and its own fp32 accumulator (FMA with the
// block's scale product), the 8 accumulators added at the end as hsum_float_8 adds its lanes.
// kPaired (IQ4_NL, MXFP4): even and odd blocks in two sets of accumulators, an odd count's last
// block added to the sum as d·float(Σ).
template <int R, bool kPaired>
DSV4_CPU_VNNI_FN HWY_INLINE void B32TileR(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                          const std::uint8_t* HWY_RESTRICT xq,
                                          const float* HWY_RESTRICT xd,
                                          const std::int32_t* HWY_RESTRICT asum,
                                          float* HWY_RESTRICT y, std::size_t ldy, __mmask16 mask) {
  constexpr std::size_t kBytes = 34;
  constexpr int kSets = kPaired ? 2 : 1;
  const std::size_t row_bytes = nb * kBytes;
  const std::size_t lanes_end = kPaired ? nb & ~std::size_t{1} : nb;
  __m512 acc[R][kSets][8];
  for (auto& a : acc)
    for (auto& b : a)
      for (auto& c : b) c = _mm512_setzero_ps();
  for (std::size_t i = 0; i < lanes_end; ++i) {
    const std::uint8_t* p = pack + i * kB32PackBytes;
    const __m512 wd = _mm512_loadu_ps(p + 8 * 64);
    const int set = kPaired ? static_cast<int>(i & 1) : 0;
    for (int r = 0; r < R; ++r) {
      const __m512 d = _mm512_mul_ps(wd, _mm512_set1_ps(xd[static_cast<std::size_t>(r) * nb + i]));
      for (int c = 0; c < 8; ++c)
        acc[r][set][c] =
            _mm512_fmadd_ps(d,
                            _mm512_cvtepi32_ps(B32Group(p, xq + r * row_bytes + i * kBytes + 2,
                                                        asum + 8 * (r * nb + i), c)),
                            acc[r][set][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512 l[8];
    for (int c = 0; c < 8; ++c)
      l[c] = kPaired ? _mm512_add_ps(acc[r][0][c], acc[r][kSets - 1][c]) : acc[r][0][c];
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l[0], l[4]), _mm512_add_ps(l[2], l[6])),
                               _mm512_add_ps(_mm512_add_ps(l[1], l[5]), _mm512_add_ps(l[3], l[7])));
    if (lanes_end < nb) {
      const std::uint8_t* p = pack + lanes_end * kB32PackBytes;
      __m512i s = _mm512_setzero_si512();
      for (int c = 0; c < 8; ++c)
        s = _mm512_add_epi32(s, B32Group(p, xq + r * row_bytes + lanes_end * kBytes + 2,
                                         asum + 8 * (r * nb + lanes_end), c));
      const __m512 d =
          _mm512_mul_ps(_mm512_loadu_ps(p + 8 * 64),
                        _mm512_set1_ps(xd[static_cast<std::size_t>(r) * nb + lanes_end]));
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
  // two activation rows per pass (16 accumulators), one where the paired formats need 16 alone
  std::size_t r = 0;
  if constexpr (!kPaired) {
    for (; r + 2 <= rows; r += 2)
      B32TileR<2, false>(pack, nb, xq + r * nb * 34, xd + r * nb, asum + 8 * r * nb, y + r * ldy,
                         ldy, mask);
  }
  for (; r < rows; ++r)
    B32TileR<1, kPaired>(pack, nb, xq + r * nb * 34, xd + r * nb, asum + 8 * r * nb, y + r * ldy,
                         ldy, mask);
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

HWY_INLINE void PackKq(kernels::KqKind kind, const std::uint8_t* HWY_RESTRICT w, std::size_t n,
                       std::size_t nb, std::size_t w_row_bytes, std::uint8_t* HWY_RESTRICT pack,
                       std::uint8_t* HWY_RESTRICT q, kernels::KqBlock* HWY_RESTRICT k) {
  using L = KqPackLayout;
  std::memset(pack, 0, nb * L::bytes);
  for (std::size_t o = 0; o < n; ++o) {
    UnpackKq(kind, w + o * w_row_bytes, nb, q, k);
    for (std::size_t i = 0; i < nb; ++i) {
      std::uint8_t* p = pack + i * L::bytes;
      const std::uint8_t* qb = q + 256 * i;
      for (int c = 0; c < 64; ++c) std::memcpy(p + L::q + c * 64 + o * 4, qb + 4 * c, 4);
      const kernels::KqBlock& b = k[i];
      for (int g = 0; g < 16; ++g) {
        const std::int32_t sc = b.sc[g];
        std::memcpy(p + L::sc + g * 64 + o * 4, &sc, 4);
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

// One Q8_K activation row · the packed tile of a format with ggml's x86 order (K: q2_k, q4_k,
// q5_k, q6_k) → y[o] for the lanes of `mask`, bit for bit the format's dot_x86: per super-block
// 8 integer lanes per output, lane m the 4-value groups 8c + m (one vpdpbusd each, times the
// scale of its 16-value group; Q6_K's −32 offset per lane pair of groups), then ggml's float
// steps (detail::kq::dot_qk_asym_x86, Q2_K::dot_x86, Q6_K::dot_x86).
template <kernels::KqKind K>
DSV4_CPU_VNNI_FN void KqTileX86(const std::uint8_t* HWY_RESTRICT pack, std::size_t nb,
                                const std::uint8_t* HWY_RESTRICT xq, float* HWY_RESTRICT y,
                                __mmask16 mask) {
  using L = KqPackLayout;
  using kernels::KqKind;
  constexpr bool kQ45 = K == KqKind::q4_k || K == KqKind::q5_k;
  __m512 acc[8];
  __m512 accm[4];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (auto& v : accm) v = _mm512_setzero_ps();
  __m512 summs = _mm512_setzero_ps();
  for (std::size_t i = 0; i < nb; ++i) {
    const std::uint8_t* p = pack + i * L::bytes;
    const std::uint8_t* a = xq + i * 292;
    float da;
    std::memcpy(&da, a, sizeof da);
    __m512i lane[8];
    for (auto& v : lane) v = _mm512_setzero_si512();
    for (int g = 0; g < 64; ++g) {
      const __m512i t = _mm512_dpbusd_epi32(
          _mm512_setzero_si512(), _mm512_loadu_si512(p + L::q + 64 * g), Bcast4(a + 4 + 4 * g));
      lane[g % 8] = _mm512_add_epi32(
          lane[g % 8], _mm512_mullo_epi32(t, _mm512_loadu_si512(p + L::sc + 64 * (g / 4))));
    }
    if constexpr (K == KqKind::q6_k) {
      for (int m = 0; m < 8; ++m)
        lane[m] = _mm512_dpwssd_epi32(lane[m], _mm512_loadu_si512(p + L::bias + 64 * m),
                                      Bcast4(a + 260 + 4 * m));
    }
    // the mins' integer lanes: mn[2g]·bsums[2g] + mn[2g + 1]·bsums[2g + 1]
    __m512i mg[8];
    if constexpr (K != KqKind::q6_k) {
      for (int g = 0; g < 8; ++g)
        mg[g] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(p + L::mn + 64 * g),
                                    Bcast4(a + 260 + 4 * g));
    }
    const __m512 dmin = _mm512_mul_ps(_mm512_set1_ps(-da), _mm512_loadu_ps(p + L::dmin));
    if constexpr (K == KqKind::q2_k) {
      for (int m = 0; m < 8; ++m) acc[m] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(mg[m]), acc[m]);
    }
    const __m512 d = _mm512_mul_ps(_mm512_set1_ps(da), _mm512_loadu_ps(p + L::d));
    for (int m = 0; m < 8; ++m) acc[m] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lane[m]), acc[m]);
    if constexpr (kQ45) {
      __m512i prod[4];
      for (int k = 0; k < 4; ++k) prod[k] = _mm512_add_epi32(mg[2 * k], mg[2 * k + 1]);
      if constexpr (K == KqKind::q5_k) {
        const __m512i total = _mm512_add_epi32(_mm512_add_epi32(prod[0], prod[1]),
                                               _mm512_add_epi32(prod[2], prod[3]));
        summs = _mm512_add_ps(summs, _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(total)));
      } else {
        for (int k = 0; k < 4; ++k)
          accm[k] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(prod[k]), accm[k]);
      }
    }
  }
  __m512 sum =
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[4]), _mm512_add_ps(acc[2], acc[6])),
                    _mm512_add_ps(_mm512_add_ps(acc[1], acc[5]), _mm512_add_ps(acc[3], acc[7])));
  if constexpr (K == KqKind::q4_k) {
    sum = _mm512_add_ps(
        sum, _mm512_add_ps(_mm512_add_ps(accm[0], accm[2]), _mm512_add_ps(accm[1], accm[3])));
  } else if constexpr (K == KqKind::q5_k) {
    sum = _mm512_add_ps(sum, summs);
  }
  _mm512_mask_storeu_ps(y, mask, sum);
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
                       const std::uint8_t* xq, std::size_t rows, float* y, std::size_t ldy,
                       std::uint8_t* q, kernels::KqBlock* k) {
  using kernels::KqKind;
  const std::size_t w_row_bytes = nb * KqBytes(kind);
#if DSV4_CPU_QG_VNNI
  if (rows >= kernels::kTileRows && PackedAllowed()) {
    ScratchBuffer<std::uint8_t> pack(nb * KqPackLayout::bytes);
    for (std::size_t o = 0; o < n; o += 16) {
      const std::size_t m = n - o < 16 ? n - o : 16;
      PackKq(kind, w + o * w_row_bytes, m, nb, w_row_bytes, pack.data(), q, k);
      const auto mask = static_cast<__mmask16>((1u << m) - 1);
      // the formats with ggml's x86 order one activation row at a time
      const auto x86 = [&](auto kernel) {
        for (std::size_t r = 0; r < rows; ++r)
          kernel(pack.data(), nb, xq + r * nb * 292, y + o + r * ldy, mask);
      };
      switch (kind) {
        case KqKind::q2_k:
          x86(KqTileX86<KqKind::q2_k>);
          break;
        case KqKind::q3_k:
          KqTileRows<16, true, false>(pack.data(), nb, xq, rows, y + o, ldy, mask);
          break;
        case KqKind::q6_k:
          x86(KqTileX86<KqKind::q6_k>);
          break;
        case KqKind::q4_k:
          x86(KqTileX86<KqKind::q4_k>);
          break;
        case KqKind::q5_k:
          x86(KqTileX86<KqKind::q5_k>);
          break;
        case KqKind::iq4_xs:
          KqTileRows<32, true, false>(pack.data(), nb, xq, rows, y + o, ldy, mask);
          break;
      }
    }
    return;
  }
#endif
  // decode: four weight rows at a time where a kernel for that exists, then one at a time
  std::size_t o = rows == 1 ? KqGemv(kind, w, n, nb, w_row_bytes, xq, y) : 0;
  for (; o < n; ++o) KqRow(kind, w + o * w_row_bytes, nb, xq, rows, y + o, ldy, q, k);
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
