// Element-wise conversion kernels, written on the host's number types (core/numeric.hpp).
#pragma once

#include <cstddef>
#include <dsv4/core/numeric.hpp>

namespace dsv4::cuda::kernels {

/// out[i] = float(in[i]); one thread per element.
__global__ void bf16_to_f32(const bf16* __restrict__ in, float* __restrict__ out, std::size_t n) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i].to_float();
}

}  // namespace dsv4::cuda::kernels
