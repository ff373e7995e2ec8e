// dsv4::cpu: the SIMD CPU backend (Highway kernels with run-time dispatch, oneTBB threads).
//
// Kernels take plain pointers and sizes (STYLE.md §1.1: nothing SIMD crosses the dispatch).
// Every kernel here is tested against the scalar reference on every compiled SIMD target
// (tests/cpu/).
#pragma once

#include <cstddef>
#include <dsv4/core/numeric.hpp>

#include "dsv4/cpu/threads.hpp"

namespace dsv4::cpu {

/// Name of the SIMD target the dispatcher picks on this machine (e.g. "AVX2").
const char* simd_target_name();

/// out[i] = float(in[i]) for i < n.
void bf16_to_f32(const bf16* in, float* out, std::size_t n);

/// out[i] = bf16(in[i]) (round to nearest even, NaN kept) for i < n.
void f32_to_bf16(const float* in, bf16* out, std::size_t n);

/// Σ a[i]·b[i] in fp32 (lane-parallel partial sums, so the summation order is not sequential).
float dot(const float* a, const float* b, std::size_t n);

}  // namespace dsv4::cpu
