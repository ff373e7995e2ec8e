// The native DeepSeek-V4 weight formats' linear layers (FP8_B128 and FP4_G32 weights times
// FP8_ACT128 activations), bit for bit the formats' own dots (formats/native.hpp): every product
// of two E4M3 values, or of an E4M3 and an E2M1 value, is exact in fp32, and the products of one
// block (128 resp. 32 values) sum exactly in double in any order; each block's sum is rounded once
// to fp32, scaled and accumulated in ascending block order by one thread, as the reference does.
// One CUDA block of 128 threads per (output, activation row); thread j holds element j of the
// current 128-value activation block. Built with --fmad=false (no contraction of the scaled
// accumulation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <dsv4/core/numeric.hpp>

namespace dsv4::cuda::kernels {

/// The exact sum of v over a warp (lane 0 holds it).
__device__ inline double warp_sum(double v) {
  for (int s = 16; s > 0; s >>= 1) v += __shfl_down_sync(0xffffffffu, v, s);
  return v;
}

/// y[r·out + o] for FP8_B128 weights: codes [out, in] E4M3, scales [ceil(out/128), in/128] E8M0;
/// xq: [rows, in/128] FP8_ACT128 blocks of 129 bytes (scale, 128 codes). Grid (out, rows),
/// 128 threads.
__global__ void fp8_b128_linear(const std::uint8_t* __restrict__ codes,
                                const std::uint8_t* __restrict__ scales, std::size_t out,
                                std::size_t in, const std::uint8_t* __restrict__ xq,
                                float* __restrict__ y) {
  const std::size_t o = blockIdx.x, r = blockIdx.y, j = threadIdx.x;
  const std::size_t nb = in / 128;
  __shared__ double part[4];
  float acc = 0.0f;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* ab = xq + (r * nb + b) * 129;
    const float a = fp8_e4m3::from_bits(ab[1 + j]).to_float();
    const float w = fp8_e4m3::from_bits(codes[o * in + b * 128 + j]).to_float();
    const double s = warp_sum(static_cast<double>(a * w));
    if (j % 32 == 0) part[j / 32] = s;
    __syncthreads();
    if (j == 0) {
      const double sum = (part[0] + part[1]) + (part[2] + part[3]);
      const float sc = ue8m0::from_bits(ab[0]).to_float() *
                       ue8m0::from_bits(scales[(o / 128) * nb + b]).to_float();
      acc += static_cast<float>(sum) * sc;
    }
    __syncthreads();
  }
  if (j == 0) y[r * out + o] = acc;
}

/// y[r·out + o] for FP4_G32 weights: codes [out, in/2] packed E2M1 (element 2k in the low
/// nibble of byte k), scales [out, in/32] E8M0; xq as above. Grid (out, rows), 128 threads: warp
/// g of the block holds weight group 4·b + g.
__global__ void fp4_g32_linear(const std::uint8_t* __restrict__ codes,
                               const std::uint8_t* __restrict__ scales, std::size_t out,
                               std::size_t in, const std::uint8_t* __restrict__ xq,
                               float* __restrict__ y) {
  constexpr float kE2m1[16] = {0.f,  0.5f,  1.f,  1.5f,  2.f,  3.f,  4.f,  6.f,
                               -0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};
  const std::size_t o = blockIdx.x, r = blockIdx.y, j = threadIdx.x;
  const std::size_t nb = in / 128;
  __shared__ double part[4];
  float acc = 0.0f;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* ab = xq + (r * nb + b) * 129;
    const float a = fp8_e4m3::from_bits(ab[1 + j]).to_float();
    const std::size_t k = b * 128 + j;  // element of the row
    const std::uint8_t byte = codes[o * (in / 2) + k / 2];
    const float w = kE2m1[(k % 2 == 0 ? byte : byte >> 4) & 0x0F];
    const double s = warp_sum(static_cast<double>(a * w));
    if (j % 32 == 0) part[j / 32] = s;
    __syncthreads();
    if (j == 0) {
      const float sa = ue8m0::from_bits(ab[0]).to_float();
      for (std::size_t g = 0; g < 4; ++g) {
        const float sw = ue8m0::from_bits(scales[o * (in / 32) + b * 4 + g]).to_float();
        acc += static_cast<float>(part[g]) * (sa * sw);
      }
    }
    __syncthreads();
  }
  if (j == 0) y[r * out + o] = acc;
}

}  // namespace dsv4::cuda::kernels
