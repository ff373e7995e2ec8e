// dsv4::cuda: the CUDA backend. Host-callable entry points; kernels live in
// include/dsv4/cuda/kernels/*.cuh so that a user's .cu file can include them.
#pragma once

#include <cstddef>
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

}  // namespace dsv4::cuda
