// Host entry points of the native-format linear kernels (kernels/native.cuh).
#include <cuda_runtime.h>

#include <cstdint>
#include <dsv4/cuda/backend.hpp>
#include <dsv4/cuda/kernels/native.cuh>
#include <string>

namespace dsv4::cuda {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw CudaError(std::string("cuda: ") + what + " failed: " + cudaGetErrorString(err));
  }
}

/// Device memory of n bytes, freed when it goes out of scope.
class DeviceBytes {
 public:
  explicit DeviceBytes(std::size_t n) { check(cudaMalloc(&p_, n == 0 ? 1 : n), "cudaMalloc"); }
  DeviceBytes(const void* host, std::size_t n) : DeviceBytes(n) {
    if (n != 0) check(cudaMemcpy(p_, host, n, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  ~DeviceBytes() { cudaFree(p_); }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

enum class Native { fp8_b128, fp4_g32 };

void native_linear(Native kind, const void* codes, std::size_t code_bytes, const void* scales,
                   std::size_t scale_bytes, std::size_t out, std::size_t in, const void* xq,
                   std::size_t rows, float* y) {
  if (out == 0 || rows == 0) return;
  if (in == 0 || in % 128 != 0) {
    throw ShapeError(
        "cuda: a native-format linear needs in_features a positive multiple of 128, "
        "got " +
        std::to_string(in));
  }
  if (out > 0x7fffffffu || rows > 65535) {
    throw ShapeError("cuda: a native-format linear of " + std::to_string(out) + " outputs and " +
                     std::to_string(rows) + " rows exceeds the launch grid");
  }
  const DeviceBytes d_codes(codes, code_bytes);
  const DeviceBytes d_scales(scales, scale_bytes);
  const DeviceBytes d_x(xq, rows * (in / 128) * 129);
  const DeviceBytes d_y(rows * out * sizeof(float));
  const dim3 grid(static_cast<unsigned>(out), static_cast<unsigned>(rows));
  if (kind == Native::fp8_b128) {
    kernels::fp8_b128_linear<<<grid, 128>>>(d_codes.as<std::uint8_t>(), d_scales.as<std::uint8_t>(),
                                            out, in, d_x.as<std::uint8_t>(), d_y.as<float>());
  } else {
    kernels::fp4_g32_linear<<<grid, 128>>>(d_codes.as<std::uint8_t>(), d_scales.as<std::uint8_t>(),
                                           out, in, d_x.as<std::uint8_t>(), d_y.as<float>());
  }
  check(cudaGetLastError(), "the native linear kernel's launch");
  check(cudaMemcpy(y, d_y.as<float>(), rows * out * sizeof(float), cudaMemcpyDeviceToHost),
        "cudaMemcpy from the device");
}

}  // namespace

void fp8_b128_linear(const fp8_e4m3* codes, const ue8m0* scales, std::size_t out, std::size_t in,
                     const void* xq, std::size_t rows, float* y) {
  native_linear(Native::fp8_b128, codes, out * in, scales, ((out + 127) / 128) * (in / 128), out,
                in, xq, rows, y);
}

void fp4_g32_linear(const std::uint8_t* codes, const ue8m0* scales, std::size_t out, std::size_t in,
                    const void* xq, std::size_t rows, float* y) {
  native_linear(Native::fp4_g32, codes, out * (in / 2), scales, out * (in / 32), out, in, xq, rows,
                y);
}

}  // namespace dsv4::cuda
