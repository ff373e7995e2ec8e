// The native DeepSeek-V4 checkpoint formats as QuantFormat policies: FP8_B128 (E4M3 weights with
// one E8M0 scale per 128x128 block), FP4_G32 (E2M1 weights packed two per byte with one E8M0 scale
// per 32 inputs of a row) and their activation partner FP8_ACT128 (the GEMM-input quantiser:
// E4M3 codes with one power-of-two scale per 128 values of a row).
//
// Spec: spec/formats.md §9.1 (E4M3, E2M1, E8M0, nibble order), §9.3 (FP8 weights), §9.4 (FP4
// experts), §9.5 (act_quant), §9.6 (fp8_gemm / fp4_gemm); the release's weight quantisation as the
// golden reference data set's README describes it (section "tiny_fp8"). Reference symbols:
// `act_quant`, `fp8_gemm`, `fp4_gemm` (inference/kernel_tilelang.py). ops/quant.hpp and
// ops/gemm_native.hpp hold the matrix-level kernels; the dots here give the same bits.
//
// Blocks versus the checkpoint layout. The checkpoint stores a native weight as two tensors, the
// codes and the scales (`PlanarFormat`, concepts.hpp); the QuantFormat concept wants
// self-contained blocks (codes plus the scale that decodes them). A native block is therefore one
// row segment together with its scale:
//  * FP8_B128: the 128 codes of row n, columns [128·b, 128·b + 128), with the scale
//    S[n / 128][b] of the 128x128 tile they lie in. The 128 rows of a band share that scale, so a
//    block is the tile restricted to one row; `quantize` of a lone block is the 1-row case of the
//    2-D rule, and `quantize_matrix` takes the maximum over whole (edge: partial) tiles.
//  * FP4_G32: 32 codes of one row with their own scale (the checkpoint's scale is per row already).
// `load_block` assembles a block from the two tensors, which is how Linear<F> (formats/linear.hpp)
// reads a zero-copy view of a checkpoint; format_info's block_bytes is the size of these
// assembled blocks (129 and 17 bytes), not a storage size of the checkpoint.
//
// Quantisation (the release's rule): s = 2^ceil(log2(amax · fp32(1/qmax))) from the fp32 bits
// (ue8m0::ceil_pow2, formats.md §9.5), qmax = 448 (E4M3) resp. 6 (E2M1), then each code is the
// round-to-nearest-even of w/s (exact division by a power of two), saturating at ±qmax. An
// all-zero block gets the smallest scale, 2^-127, and zero codes.
//
// Dots: per block, the exact dot product of the codes (E4M3·E4M3 and E2M1·E4M3 products and sums
// of 128 of them are exact in double) rounded once to fp32, times the fp32 product of the two
// power-of-two scales, added to an fp32 accumulator in ascending block order (§9.6).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"
#include "dsv4/core/macros.hpp"
#include "dsv4/core/numeric.hpp"
#include "dsv4/core/tensor.hpp"
#include "dsv4/formats/concepts.hpp"
#include "dsv4/ops/quant.hpp"

namespace dsv4 {

namespace detail::native {

/// fp32 value of an E2M1 code (formats.md §9.1); a function-local table so that device code
/// can use it too.
DSV4_HOST_DEVICE constexpr float e2m1_value(std::uint8_t code) noexcept {
  constexpr float values[16] = {0.f,  0.5f,  1.f,  1.5f,  2.f,  3.f,  4.f,  6.f,
                                -0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};
  return values[code & 0x0F];
}

/// The release's weight scale for a block with largest magnitude `amax`:
/// 2^ceil(log2(amax · fp32(1/qmax))), at least 2^-127 (the E8M0 minimum; amax = 0 gives it too).
inline ue8m0 weight_scale(float amax, float qmax) noexcept {
  const float v = amax * (1.0f / qmax);
  // ceil_pow2 reads the fp32 bits; below the normal range it returns 2^-126, an upper bound.
  return v == 0.f ? ue8m0::from_bits(0) : ue8m0::ceil_pow2(v);
}

/// Exact Σ a_j·w_j of n E4M3 pairs, rounded once to fp32.
DSV4_HOST_DEVICE inline float e4m3_dot(const fp8_e4m3* a, const fp8_e4m3* w,
                                       std::size_t n) noexcept {
  double sum = 0.0;
  for (std::size_t j = 0; j < n; ++j) {
    sum += static_cast<double>(a[j].to_float()) * static_cast<double>(w[j].to_float());
  }
  return static_cast<float>(sum);
}

/// E2M1 code of element j of a packed run (element 2k: low nibble of byte k, 2k+1: high nibble).
DSV4_HOST_DEVICE constexpr std::uint8_t e2m1_code(const std::uint8_t* packed,
                                                  std::size_t j) noexcept {
  return static_cast<std::uint8_t>(j % 2 == 0 ? packed[j / 2] & 0x0F : packed[j / 2] >> 4);
}

}  // namespace detail::native

/// FP8_ACT128: the GEMM input of every FP8/FP4-weight linear (act_quant, block 128, ue8m0 scales;
/// formats.md §9.5): 128 E4M3 codes and one power-of-two scale, value = e4m3(q)·2^(scale-127)
/// (129 bytes per 128 values). Activation-only.
struct Fp8Act128 {
  struct block_type {
    ue8m0 scale;       ///< power-of-two scale of the block
    fp8_e4m3 qs[128];  ///< codes
  };
  static_assert(sizeof(block_type) == 129);
  static constexpr FormatId id = FormatId::fp8_act128;
  static constexpr std::string_view name = "FP8_ACT128";
  static constexpr std::size_t block_elems = 128;

  /// out[128] = e4m3(q)·s (exact).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float s = b.scale.to_float();
    for (std::size_t j = 0; j < 128; ++j) out[j] = b.qs[j].to_float() * s;
  }

  /// in[128] → one block, bit for bit ops::act_quant_row (amax floored at 1e-4,
  /// s = 2^ceil(log2(amax·fp32(1/448))), q = e4m3(clamp(x/s, ±448))).
  static void quantize(const float* in, block_type& b) noexcept {
    float s = 0.f;
    ops::act_quant_row(in, 128, 128, ops::ScaleFmt::ue8m0, b.qs, &s);
    b.scale = ue8m0::ceil_pow2(s);  // s is a power of two ≥ 2^-22: exact
  }
};

/// FP8_B128: E4M3 weights with one E8M0 scale per 128x128 tile (formats.md §9.3). A block is 128
/// codes of one row with the scale of its tile (see the file comment), value =
/// e4m3(q)·2^(scale-127); the checkpoint holds codes [N, K] and scales [ceil(N/128), ceil(K/128)].
struct Fp8B128 {
  struct block_type {
    ue8m0 scale;       ///< scale of the 128x128 tile the segment lies in
    fp8_e4m3 qs[128];  ///< codes of 128 consecutive inputs of one row
  };
  static_assert(sizeof(block_type) == 129);
  static constexpr FormatId id = FormatId::fp8_b128;
  static constexpr std::string_view name = "FP8_B128";
  static constexpr std::size_t block_elems = 128;
  using activation = Fp8Act128;

  // Checkpoint layout (PlanarFormat).
  using code_type = fp8_e4m3;
  using scale_type = ue8m0;
  static constexpr std::size_t block_codes = 128;  ///< code_type elements per block
  static constexpr std::size_t block_rows = 128;   ///< rows that share one scale
  static constexpr std::size_t codes_per_row(std::size_t k) noexcept { return k; }
  static constexpr std::size_t scale_rows(std::size_t n) noexcept { return (n + 127) / 128; }
  static constexpr std::size_t scale_cols(std::size_t k) noexcept { return (k + 127) / 128; }
  /// Block from its 128 codes and its tile's scale.
  static void load_block(const fp8_e4m3* codes, const ue8m0* scale, block_type& b) noexcept {
    b.scale = *scale;
    std::memcpy(b.qs, codes, sizeof b.qs);
  }

  /// out[128] = e4m3(q)·s (exact).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float s = b.scale.to_float();
    for (std::size_t j = 0; j < 128; ++j) out[j] = b.qs[j].to_float() * s;
  }

  /// in[128] → one block: the release's rule applied to a 1x128 tile.
  static void quantize(const float* in, block_type& b) noexcept {
    b.scale = detail::native::weight_scale(ops::detail::block_amax(in, 128, 0.f), 448.f);
    const float s = b.scale.to_float();
    for (std::size_t j = 0; j < 128; ++j) b.qs[j] = fp8_e4m3::from_float(in[j] / s);
  }

  /// Quantises a whole matrix the way the release stores it: one scale per 128x128 tile (edge
  /// tiles partial), from the largest magnitude over the tile.
  /// w: [N, K]; codes: [N, K] (row stride K); scales: [ceil(N/128), ceil(K/128)].
  static void quantize_matrix(ConstView2<float> w, fp8_e4m3* codes, ue8m0* scales) noexcept {
    const std::size_t n = w.rows, k = w.cols, sc = scale_cols(k);
    for (std::size_t rb = 0; rb < scale_rows(n); ++rb) {
      const std::size_t r0 = rb * 128, r1 = std::min(n, r0 + 128);
      for (std::size_t cb = 0; cb < sc; ++cb) {
        const std::size_t c0 = cb * 128, c1 = std::min(k, c0 + 128);
        float amax = 0.f;
        for (std::size_t r = r0; r < r1; ++r) {
          amax = std::fmax(amax, ops::detail::block_amax(w.row(r) + c0, c1 - c0, 0.f));
        }
        const ue8m0 scale = detail::native::weight_scale(amax, 448.f);
        scales[rb * sc + cb] = scale;
        const float s = scale.to_float();
        for (std::size_t r = r0; r < r1; ++r) {
          for (std::size_t c = c0; c < c1; ++c)
            codes[r * k + c] = fp8_e4m3::from_float(w(r, c) / s);
        }
      }
    }
  }

  /// out[N, K] = e4m3(codes)·scale of the tile. codes: [N, K]; scales: [ceil(N/128), ceil(K/128)].
  static void dequantize_matrix(const fp8_e4m3* codes, const ue8m0* scales,
                                View2<float> out) noexcept {
    const std::size_t sc = scale_cols(out.cols);
    for (std::size_t r = 0; r < out.rows; ++r) {
      for (std::size_t c = 0; c < out.cols; ++c) {
        out(r, c) =
            codes[r * out.cols + c].to_float() * scales[(r / 128) * sc + c / 128].to_float();
      }
    }
  }

  /// Σ_b fp32(Σ_j q_a·q_w)·(s_a·s_w) in ascending b with an fp32 accumulator: one output of
  /// ops::fp8_gemm, bit for bit before its bf16 rounding. w, a: [n_blocks].
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Fp8Act128::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float acc = 0.f;
    for (std::size_t i = 0; i < n_blocks; ++i) {
      const float s = a[i].scale.to_float() * w[i].scale.to_float();
      acc += detail::native::e4m3_dot(a[i].qs, w[i].qs, 128) * s;
    }
    return acc;
  }
};

/// FP4_G32: E2M1 weights with one E8M0 scale per 32 inputs of a row (formats.md §9.4), value =
/// e2m1(code)·2^(scale-127) (17 bytes per 32 values as a block). Codes are packed as the
/// checkpoint packs them: element 2k in the low nibble of byte k, 2k+1 in the high nibble (not
/// ggml's MXFP4 order). The checkpoint holds packed codes [N, K/2] (I8 in the release, F4 in
/// safetensors' own naming) and scales [N, K/32].
struct Fp4G32 {
  struct block_type {
    ue8m0 scale;          ///< scale of the 32 values
    std::uint8_t qs[16];  ///< packed E2M1 codes, see above
  };
  static_assert(sizeof(block_type) == 17);
  static constexpr FormatId id = FormatId::fp4_g32;
  static constexpr std::string_view name = "FP4_G32";
  static constexpr std::size_t block_elems = 32;
  /// The activation is quantised in blocks of 128 (act_quant): one activation block spans four
  /// weight blocks, so row lengths must be multiples of 128 for a dot.
  using activation = Fp8Act128;

  // Checkpoint layout (PlanarFormat).
  using code_type = std::uint8_t;
  using scale_type = ue8m0;
  static constexpr std::size_t block_codes = 16;  ///< packed bytes per block
  static constexpr std::size_t block_rows = 1;    ///< the scale is per row
  static constexpr std::size_t codes_per_row(std::size_t k) noexcept { return k / 2; }
  static constexpr std::size_t scale_rows(std::size_t n) noexcept { return n; }
  static constexpr std::size_t scale_cols(std::size_t k) noexcept { return k / 32; }
  /// Block from its 16 packed bytes and its scale.
  static void load_block(const std::uint8_t* codes, const ue8m0* scale, block_type& b) noexcept {
    b.scale = *scale;
    std::memcpy(b.qs, codes, sizeof b.qs);
  }

  /// out[32] = e2m1(code)·s (exact).
  DSV4_HOST_DEVICE static void dequantize(const block_type& b, float* out) noexcept {
    const float s = b.scale.to_float();
    for (std::size_t j = 0; j < 32; ++j) {
      out[j] = detail::native::e2m1_value(detail::native::e2m1_code(b.qs, j)) * s;
    }
  }

  /// in[32] → one block (the release's rule: s = 2^ceil(log2(amax·fp32(1/6))), code =
  /// e2m1_rne(x/s), saturating at ±6).
  static void quantize(const float* in, block_type& b) noexcept {
    b.scale = detail::native::weight_scale(ops::detail::block_amax(in, 32, 0.f), 6.f);
    const float s = b.scale.to_float();
    for (std::size_t k = 0; k < 16; ++k) {
      const std::uint8_t lo = fp4_e2m1::from_float(in[2 * k] / s).bits;
      const std::uint8_t hi = fp4_e2m1::from_float(in[2 * k + 1] / s).bits;
      b.qs[k] = static_cast<std::uint8_t>(lo | hi << 4);
    }
  }

  /// Quantises a matrix as the release stores it. w: [N, K] with K a multiple of 32;
  /// codes: [N, K/2] packed; scales: [N, K/32].
  static void quantize_matrix(ConstView2<float> w, std::uint8_t* codes, ue8m0* scales) {
    DSV4_CHECK(w.cols % 32 == 0, ShapeError,
               "Fp4G32::quantize_matrix: the input dimension must be a multiple of 32, got {}",
               w.cols);
    block_type b{};
    for (std::size_t r = 0; r < w.rows; ++r) {
      for (std::size_t g = 0; g < w.cols / 32; ++g) {
        quantize(w.row(r) + 32 * g, b);
        scales[r * (w.cols / 32) + g] = b.scale;
        std::memcpy(codes + r * (w.cols / 2) + 16 * g, b.qs, sizeof b.qs);
      }
    }
  }

  /// out[N, K] = e2m1(code)·scale. codes: [N, K/2]; scales: [N, K/32]; K a multiple of 32.
  static void dequantize_matrix(const std::uint8_t* codes, const ue8m0* scales,
                                View2<float> out) noexcept {
    for (std::size_t r = 0; r < out.rows; ++r) {
      const std::uint8_t* row = codes + r * (out.cols / 2);
      for (std::size_t c = 0; c < out.cols; ++c) {
        out(r, c) = detail::native::e2m1_value(detail::native::e2m1_code(row, c)) *
                    scales[r * (out.cols / 32) + c / 32].to_float();
      }
    }
  }

  /// Σ_g fp32(Σ_j q_a·e2m1_w)·(s_a·s_w) over 32-value groups g in ascending order with an fp32
  /// accumulator: one output of ops::fp4_gemm, bit for bit before its bf16 rounding.
  /// w: [n_blocks] (a multiple of 4); a: [n_blocks / 4] (one activation block per 4 groups).
  DSV4_HOST_DEVICE static float dot(const block_type* w, const Fp8Act128::block_type* a,
                                    std::size_t n_blocks) noexcept {
    float acc = 0.f;
    for (std::size_t g = 0; g < n_blocks; ++g) {
      const Fp8Act128::block_type& ab = a[g / 4];
      const fp8_e4m3* aq = ab.qs + 32 * (g % 4);
      double sum = 0.0;
      for (std::size_t j = 0; j < 32; ++j) {
        sum +=
            static_cast<double>(aq[j].to_float()) *
            static_cast<double>(detail::native::e2m1_value(detail::native::e2m1_code(w[g].qs, j)));
      }
      acc += static_cast<float>(sum) * (ab.scale.to_float() * w[g].scale.to_float());
    }
    return acc;
  }
};

static_assert(QuantizableFormat<Fp8Act128>);
static_assert(QuantizableFormat<Fp8B128> && DotFormat<Fp8B128> && PlanarFormat<Fp8B128>);
static_assert(QuantizableFormat<Fp4G32> && DotFormat<Fp4G32> && PlanarFormat<Fp4G32>);

}  // namespace dsv4
