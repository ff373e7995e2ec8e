// Host entry points of the CUDA backend's conversion kernels.
#include <cuda_runtime.h>

#include <dsv4/cuda/backend.hpp>
#include <dsv4/cuda/kernels/convert.cuh>
#include <string>

#define DSV4_CUDA_CHECK(call)                                                                \
  do {                                                                                       \
    const cudaError_t dsv4_err_ = (call);                                                    \
    if (dsv4_err_ != cudaSuccess) {                                                          \
      throw ::dsv4::cuda::CudaError(std::string(__FILE__) + ":" + std::to_string(__LINE__) + \
                                    ": " #call " failed: " + cudaGetErrorString(dsv4_err_)); \
    }                                                                                        \
  } while (false)

namespace dsv4::cuda {

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess) return n;
  cudaGetLastError();  // clear the error the call left behind
  if (err == cudaErrorNoDevice) return 0;
  if (err == cudaErrorInsufficientDriver) {
    // The runtime reports a missing driver library like an outdated one; the driver version
    // (0 when no driver is loaded) tells them apart.
    int driver = 0;
    if (cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0) return 0;
  }
  throw CudaError(std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + ": " +
                  cudaGetErrorString(err));
}

std::string device_name(int index) {
  cudaDeviceProp p{};
  DSV4_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")";
}

void bf16_to_f32(const bf16* host_in, float* host_out, std::size_t n) {
  if (n == 0) return;
  bf16* d_in = nullptr;
  float* d_out = nullptr;
  DSV4_CUDA_CHECK(cudaMalloc(&d_in, n * sizeof(bf16)));
  DSV4_CUDA_CHECK(cudaMalloc(&d_out, n * sizeof(float)));
  DSV4_CUDA_CHECK(cudaMemcpy(d_in, host_in, n * sizeof(bf16), cudaMemcpyHostToDevice));
  constexpr unsigned kThreads = 256;
  const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  kernels::bf16_to_f32<<<blocks, kThreads>>>(d_in, d_out, n);
  DSV4_CUDA_CHECK(cudaGetLastError());
  DSV4_CUDA_CHECK(cudaMemcpy(host_out, d_out, n * sizeof(float), cudaMemcpyDeviceToHost));
  DSV4_CUDA_CHECK(cudaFree(d_in));
  DSV4_CUDA_CHECK(cudaFree(d_out));
}

}  // namespace dsv4::cuda
