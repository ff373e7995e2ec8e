// dsv4::cuda: the CUDA backend. Host-callable entry points; kernels live in
// include/dsv4/cuda/kernels/*.cuh so that a user's .cu file can include them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <dsv4/core/error.hpp>
#include <dsv4/core/numeric.hpp>
#include <string>

namespace dsv4::cuda {

/// A CUDA runtime call failed.
class CudaError : public Error {
 public:
  using Error::Error;
};

/// Number of CUDA devices usable by this process: 0 when the machine has no GPU
/// (cudaErrorNoDevice) or no CUDA driver at all (cudaErrorInsufficientDriver with no driver
/// loaded). Any other failure (a driver too old for the runtime, a broken installation, a device
/// in a bad state) is not "no GPU" and throws CudaError with the runtime's message.
int device_count();

/// Name and compute capability of device `index`, e.g. "NVIDIA H100 (sm_90)".
std::string device_name(int index);

/// Converts n bf16 values to float on the current device (host buffers in, host buffers out).
void bf16_to_f32(const bf16* host_in, float* host_out, std::size_t n);

/// y [rows, out] = x · Wᵀ on the current device for an FP8_B128 weight as the release stores it
/// (codes [out, in] E4M3, scales [ceil(out/128), in/128] E8M0) and activations xq quantised to
/// FP8_ACT128 ([rows, in/128] blocks of Fp8Act128::block_type, formats/native.hpp): each output
/// bit for bit Fp8B128::dot. Host buffers in and out; in a positive multiple of 128 (ShapeError
/// otherwise).
void fp8_b128_linear(const fp8_e4m3* codes, const ue8m0* scales, std::size_t out, std::size_t in,
                     const void* xq, std::size_t rows, float* y);

/// As fp8_b128_linear for an FP4_G32 weight (codes [out, in/2] packed E2M1, scales [out, in/32]
/// E8M0): each output bit for bit Fp4G32::dot.
void fp4_g32_linear(const std::uint8_t* codes, const ue8m0* scales, std::size_t out, std::size_t in,
                    const void* xq, std::size_t rows, float* y);

}  // namespace dsv4::cuda
