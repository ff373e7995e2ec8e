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

/// The Q8_0 × Q8_0 dot of one weight row (nb blocks at w) with `rows` activation rows (nb blocks
/// each, contiguous at xq): out[r·out_stride], bit for bit Q8_0::dot (exact integer block sums).
void q8_0_rows(const void* w, const void* xq, std::size_t rows, std::size_t nb, float* out,
               std::size_t out_stride);

/// Dots of unpacked 32-value weight blocks (int8 values q [nb·32], block scales wsc [nb]) with
/// `rows` Q8_0 activation rows at xq: out[r·out_stride] = Σ_i float(Σ_j q·a) · (wsc_i · d_a,i),
/// block order (the Q4_0 / Q5_0 / IQ4_NL / MXFP4 dots bit for bit).
void i8_block_rows(const std::int8_t* q, const float* wsc, const void* xq, std::size_t rows,
                   std::size_t nb, float* out, std::size_t out_stride);

/// The integer lanes of the k-quant dots: for super-block i < nb, lanes[8i + l] =
/// Σ_{e ≡ l (mod 8)} sc16[16i + e/16] · a[i·a_stride + e] · q[256i + e] (exact int32).
void kq_lanes(const std::int8_t* q, const std::int8_t* a, std::size_t a_stride,
              const std::int32_t* sc16, std::size_t nb, std::int32_t* lanes);

/// One (query, head) of sparse attention (ops::sparse_attention_head's algorithm: chunks of 64
/// slots, online softmax, sink in the denominator, P rounded to bf16 when round_p) with the dots
/// and P·V vectorised; out[d] unrounded, acc: [d] scratch. Indices are not checked.
void sparse_attention_head(const float* q, const float* kv, const std::int32_t* idx, std::size_t k,
                           std::size_t d, float sink, float scale, bool round_p, float* out,
                           float* acc);

/// The number of physical cores of the machine (at least 1).
int physical_cores();

}  // namespace dsv4::cpu::kernels
