// CUDA backend: kernels agree with the host implementation bit for bit. Skips (exit 77) only
// when the machine has no GPU or no CUDA driver; any other runtime or driver error fails.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dsv4/cuda/backend.hpp>
#include <vector>

#include "cuda_main.hpp"

TEST_CASE("bf16 -> f32 on the device equals the host conversion for every code") {
  std::vector<dsv4::bf16> in(65536);
  for (std::uint32_t c = 0; c < 65536; ++c)
    in[c] = dsv4::bf16::from_bits(static_cast<std::uint16_t>(c));
  std::vector<float> out(in.size());
  dsv4::cuda::bf16_to_f32(in.data(), out.data(), in.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const float want = in[i].to_float();
    if (std::memcmp(&want, &out[i], sizeof(float)) != 0) ++mismatches;
  }
  CHECK(mismatches == 0);
}

int main(int argc, char** argv) { return dsv4::test::run_cuda_tests(argc, argv); }
