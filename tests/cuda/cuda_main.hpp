// The main() of the CUDA backend's test executables: runs the doctest cases on a machine with a
// GPU, returns 77 (CTest's SKIP_RETURN_CODE) when the machine has no GPU or no CUDA driver, and
// fails on any other runtime or driver error.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <dsv4/cuda/backend.hpp>

namespace dsv4::test {

inline int run_cuda_tests(int argc, char** argv) {
  int devices = 0;
  try {
    devices = dsv4::cuda::device_count();
  } catch (const dsv4::cuda::CudaError& e) {
    std::fprintf(stderr, "CUDA runtime or driver error (not a missing GPU): %s\n", e.what());
    return 1;
  }
  if (devices == 0) {
    std::puts("no CUDA device or driver: skipping the CUDA backend tests");
    return 77;
  }
  std::printf("CUDA device: %s\n", dsv4::cuda::device_name(0).c_str());
  doctest::Context ctx(argc, argv);
  return ctx.run();
}

}  // namespace dsv4::test
