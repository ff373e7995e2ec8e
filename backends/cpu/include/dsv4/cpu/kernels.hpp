// The compiled kernels of the CPU backend (Highway, dispatched at run time to the best SIMD
// target of the machine). Plain pointers and sizes only; cpu::Backend (cpu/cpu_backend.hpp)
// calls them on the ranges its threads own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <dsv4/core/numeric.hpp>

namespace dsv4::cpu::kernels {

/// y[r·ldy + o] = Σ_k x[r·ldx + k] · w[o·ldw + k] for r < rows, o in [o0, o1), k < in; fp32
/// lane-parallel accumulation. Each output is computed the same way whatever [o0, o1) is.
void gemm(const float* x, std::size_t ldx, std::size_t rows, const float* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy);
void gemm(const float* x, std::size_t ldx, std::size_t rows, const bf16* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy);
void gemm(const float* x, std::size_t ldx, std::size_t rows, const f16* w, std::size_t ldw,
          std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy);

/// As gemm, each output in llama.cpp's x86 float GEMM order, bit for bit F32::dot_x86 /
/// F16::dot_x86 (16 FMA lanes, reduced as `_mm512_reduce_add_ps`); in must be a multiple of 16.
void gemm_ggml(const float* x, std::size_t ldx, std::size_t rows, const float* w, std::size_t ldw,
               std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy);
void gemm_ggml(const float* x, std::size_t ldx, std::size_t rows, const f16* w, std::size_t ldw,
               std::size_t o0, std::size_t o1, std::size_t in, float* y, std::size_t ldy);

/// The quantized weight × quantized activation dots (quant_dot.cc). Integer sums are exact. The
/// 32-value formats (b32_*, q451_row) are the formats' dot_x86 bit for bit on every target
/// (ggml's x86 order: 8 lanes of 4-value sums, each accumulated with an FMA, added once); the
/// k-quants accumulate each block's scaled sum into fp32 lanes added once per output, so they
/// differ from the formats' own dots (block order, one scalar sum) by fp32 rounding.

/// The 32-value-block weight formats b32_row reads (partner Q8_0).
enum class B32Kind : std::uint8_t { q8_0, q4_0, q5_0, iq4_nl, mxfp4 };

/// One weight row of `kind` (nb blocks) · `rows` Q8_0 activation rows (xq, nb blocks each, their
/// scales as float in xd [rows·nb]) → y[r·ldy], bit for bit the format's dot_x86. Scratch
/// (targets without the fused kernels): q [nb·32], wsc [nb].
void b32_row(B32Kind kind, const void* w, std::size_t nb, const void* xq, const float* xd,
             std::size_t rows, float* y, std::size_t ldy, std::int8_t* q, float* wsc);

/// One Q4_1 (q5_1 false) or Q5_1 weight row (nb blocks) · `rows` Q8_1 activation rows (xq, nb
/// blocks each) → y[r·ldy]: Σ_i d_i·a.d_i·Σ_j q·a.qs (exact integer sums, fp32 lanes) plus
/// Σ_i m_i·a.s_i, bit for bit the format's dot_x86.
void q451_row(bool q5_1, const void* w, std::size_t nb, const void* xq, std::size_t rows, float* y,
              std::size_t ldy);

/// The super-block weight formats kq_row reads (the k-quants and IQ4_XS).
enum class KqKind : std::uint8_t { q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs };

/// One unpacked k-quant super-block (with its unsigned quants q [256] kept apart): its dot with a
/// Q8_K block a is d·a.d·(Σ_g sc[g]·Σ_{e∈g} q[e]·a.qs[e] + Σ_g bias[g]·a.bsums[g]) −
/// dmin·a.d·Σ_g mn[g]·a.bsums[g] over the 16-value groups g (bias: the signed formats' offset,
/// e.g. −32·sc for Q6_K; mn: the mins of Q2_K / Q4_K / Q5_K).
struct KqBlock {
  float d;
  float dmin;
  std::int16_t sc[16];
  std::int16_t bias[16];
  std::int16_t mn[16];
};

/// One k-quant weight row (nb super-blocks of `kind`) · `rows` Q8_K activation rows (xq, nb
/// blocks each) → y[r·ldy]. Scratch (formats and targets without the fused kernels): q [nb·256],
/// k [nb].
void kq_row(KqKind kind, const void* w, std::size_t nb, const void* xq, std::size_t rows, float* y,
            std::size_t ldy, std::uint8_t* q, KqBlock* k);

/// The formats llama.cpp's CPU backend repacks at load time (repacked_row).
enum class RepackKind : std::uint8_t { q4_0, q2_k, q4_k };

/// One weight row of `kind` (nb blocks) · `rows` activation rows (Q8_0 for Q4_0, with their
/// scales as float in xd [rows·nb]; Q8_K for the k-quants, xd unused) → y[r·ldy] in the orders of
/// llama.cpp's repacked kernels, bit for bit F::dot_repacked: rows below gemm_rows with
/// RepackKernel::gemm, the rest with RepackKernel::gemv. Scratch: q [nb·256] and k [nb] (Q4_0
/// keeps its signed quants in q and its block scales in k[i].d).
void repacked_row(RepackKind kind, const void* w, std::size_t nb, const void* xq, const float* xd,
                  std::size_t rows, std::size_t gemm_rows, float* y, std::size_t ldy,
                  std::uint8_t* q, KqBlock* k);

/// b32_row / kq_row over n consecutive weight rows of w (nb blocks each) in one call → y[r·ldy + o]
/// for o < n, with the prefill GEMM (quant_gemm-inl.h): on AVX-512 targets whose CPU has VNNI,
/// and from kTileRows activation rows on, each tile of 16 weight rows is repacked once so that
/// one `vpdpbusd` serves 16 outputs; elsewhere the row kernels above run per weight row (q, wsc,
/// k: their scratch). Every output's arithmetic is independent of the tile it falls in.
inline constexpr std::size_t kTileRows = 8;

/// asum: q8_0_offsets of the activation (may be null below kTileRows rows). Every path is the
/// format's dot_x86 bit for bit.
void b32_tile(B32Kind kind, const void* w, std::size_t n, std::size_t nb, const void* xq,
              const float* xd, const std::int32_t* asum, std::size_t rows, float* y,
              std::size_t ldy, std::int8_t* q, float* wsc);

/// Q2_K, Q4_K, Q5_K, Q6_K: every path is the format's dot_x86 bit for bit; Q3_K and IQ4_XS: exact
/// integer super-block sums in block order (not F::dot's fp32 order).
void kq_tile(KqKind kind, const void* w, std::size_t n, std::size_t nb, const void* xq,
             const std::int16_t* a16, std::size_t rows, float* y, std::size_t ldy, std::uint8_t* q,
             KqBlock* k);

/// The quants of n_blocks Q8_K blocks (292 bytes each) widened to int16, 256 per block: kq_tile's
/// a16 (may be null below kTileRows rows; the packed kernels of the formats with ggml's x86 order
/// read it).
void q8_k_widen(const void* xq, std::size_t n_blocks, std::int16_t* out);

/// out[8i + c] = 128·Σ_{j<4} qs[4c + j] of Q8_0 block i (34 bytes each) for i < n_blocks, c < 8:
/// the offsets b32_tile's packed kernel removes (it stores the weights' values + 128 as its
/// unsigned operand and keeps each 4-value group's sum apart, as ggml's x86 lanes).
void q8_0_offsets(const void* xq, std::size_t n_blocks, std::int32_t* out);

/// Whether b32_tile / kq_tile may use their packed kernels (default true; tests and benchmarks
/// switch them off to compare).
bool packed_gemm_allowed();
void allow_packed_gemm(bool allowed);

/// Whether the dispatched target and this CPU run the packed kernels (and they are allowed).
bool packed_gemm_active();

/// The native V4 weight formats native_row reads.
enum class NativeKind : std::uint8_t { fp8_b128, fp4_g32 };

/// One weight row of `kind` as the checkpoint stores it (codes: 128 E4M3 bytes per block, resp.
/// 16 packed E2M1 bytes per group of 32; scales: one E8M0 byte per block, the row's entries of
/// the scale tensor) · `rows` FP8_ACT128 activation rows, given as their codes' fp32 values
/// a [r·lda + k] (e4m3_to_f32) and their block scales as [r·(K/128) + b] → y[r·ldy], bit for bit
/// Fp8B128::dot / Fp4G32::dot (exact block sums in double lanes, the blocks accumulated in the
/// reference's order). nb: blocks (FP4: groups) per row. Scratch: wbuf [nb·block_elems].
void native_row(NativeKind kind, const void* codes, const void* scales, std::size_t nb,
                const float* a, std::size_t lda, const float* as, std::size_t rows, float* y,
                std::size_t ldy, float* wbuf);

/// out[i] = the fp32 value of the E4M3 code codes[i] (exact; NaN codes give NaN) for i < n.
void e4m3_to_f32(const void* codes, std::size_t n, float* out);

/// n_blocks Q8_0 blocks of x [32·n_blocks] into out (bit for bit Q8_0::quantize_x86, what
/// llama.cpp's CPU backend feeds its dots on x86), and their scales as float into xd [n_blocks].
void quantize_q8_0(const float* x, std::size_t n_blocks, void* out, float* xd);

/// n_blocks Q8_K blocks of x [256·n_blocks] into out (bit for bit Q8_K::quantize).
void quantize_q8_k(const float* x, std::size_t n_blocks, void* out);

/// The lightning indexer's q·key dots of one query: dots[h·ldd + j] = Σ_e q[h·di + e]·keys[j·ldk +
/// e] for h < heads, j < n; fp32 lanes, the tiles' lane sums reduced together. Each output is
/// computed the same way whatever n is and wherever the caller starts the keys.
void index_dots(const float* q, std::size_t heads, std::size_t di, const float* keys,
                std::size_t ldk, std::size_t n, float* dots, std::size_t ldd);

/// All heads of one query of sparse attention (ops::sparse_attention_head's algorithm per head:
/// chunks of 64 slots, online softmax, sink in the denominator, P rounded to bf16 when round_p)
/// with the dots (four heads sharing each key load) and P·V vectorised; q, out: [heads, d], out
/// unrounded; sinks: [heads]; acc: [heads·d] scratch. Indices are not checked.
void sparse_attention_heads(const float* q, std::size_t heads, const float* kv,
                            const std::int32_t* idx, std::size_t k, std::size_t d,
                            const float* sinks, float scale, bool round_p, float* out, float* acc);

/// The partial RoPE rotation of n_vec vectors of vec_len values at x (their last rope_dim values,
/// (re, im) pairs; rope_dim even): x[2i] = x[2i]·cdup[2i] + x[2i+1]·salt[2i] and x[2i+1] =
/// x[2i+1]·cdup[2i+1] + x[2i]·salt[2i+1], every product and sum rounded once; with round_bf16 each
/// result rounded to bf16 (ties to even). With cdup = (c_i, c_i) and salt = (−s_i, s_i) this is
/// Rope::apply's rotation bit for bit. ggml_fma: ggml's rotation instead (Rope::apply under
/// ggml_order): x[2i] = fma(x[2i], cdup[2i], x[2i+1]·salt[2i]) and x[2i+1] = fma(x[2i],
/// salt[2i+1], x[2i+1]·cdup[2i+1]).
void rope_rotate(float* x, std::size_t n_vec, std::size_t vec_len, std::size_t rope_dim,
                 const float* cdup, const float* salt, bool round_bf16, bool ggml_fma = false);

/// The four-stream hyper-connections' post in llama.cpp's order, bit for bit
/// HyperConnection<4>::post under ggml_order: out[t][j][c] = post[t][j]·f[t][c] followed by one FMA
/// of comb[t][i][j]· res[t][i][c] for each i < 4, for t < tokens, c < d. f: [tokens, d]; res, out:
/// [tokens, 4, d] (may alias); post: [tokens, 4]; comb: [tokens, 4, 4].
void hc_post_ggml(const float* f, const float* res, const float* post, const float* comb,
                  std::size_t tokens, std::size_t d, float* out);

/// The compressor's pooling (ref::Backend::softmax_pool's order, each channel a lane): y_f =
/// Σ_k kv[k][f]·(e_k,f / Σ_j e_j,f), e = exp(score − max), with Highway's exp (a few ulp from
/// std::exp, so results differ from the reference's by rounding).
void softmax_pool(const float* const* kv, const float* const* score, std::size_t m, std::size_t d,
                  float* y);

/// The block formats dequantize_blocks reads.
enum class DequantKind : std::uint8_t {
  q8_0 = 0,
  q4_k = 1,
  q6_k = 2,
  q5_k = 3,
  q4_0 = 4,
  q4_1 = 5,
  q5_0 = 6,
  q5_1 = 7,
  q2_k = 8,
  q3_k = 9,
  iq4_nl = 10,
  iq4_xs = 11,
  mxfp4 = 12
};

/// n_blocks consecutive blocks of `kind` at w dequantised into out (32 values a block for Q8_0,
/// Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and MXFP4, 256 for the k-quants and IQ4_XS), bit for bit the
/// format's own dequantize (the same products, in lanes).
void dequantize_blocks(DequantKind kind, const void* w, std::size_t n_blocks, float* out);

/// Runs `iters` steps of 12 independent vector multiply-add chains on the dispatched target and
/// returns the floating-point operations done (the FMA-peak probe of bench_kernels).
double fma_probe(std::size_t iters);

/// The number of physical cores of the machine (at least 1).
int physical_cores();

}  // namespace dsv4::cpu::kernels
