// The storage number types: exact round-to-nearest-even conversions, saturation as a policy.
#include <fmt/core.h>

#include <dsv4/core/numeric.hpp>

int main() {
  const float x = 3.3f;
  const auto e4m3 = dsv4::fp8_e4m3::from_float(x);
  const auto e2m1 = dsv4::fp4_e2m1::from_float(x);
  fmt::print("{} -> bf16 {} | f16 {} | e4m3 {} (0x{:02x}) | e2m1 {} (0x{:x})\n", x,
             dsv4::bf16(x).to_float(), dsv4::f16(x).to_float(), e4m3.to_float(), e4m3.bits,
             e2m1.to_float(), e2m1.bits);
  // 1000 saturates to 448 by default; the plain cast semantics (PyTorch, ml_dtypes) give NaN
  fmt::print("e4m3(1000): saturating {}, ieee {}\n", dsv4::fp8_e4m3::from_float(1000.0f).to_float(),
             dsv4::fp8_e4m3::from_float<dsv4::Overflow::ieee>(1000.0f).to_float());
  // the activation quantisers' power-of-two scales
  fmt::print("ue8m0 scale for amax 3.3 / 448: 2^{}\n",
             static_cast<int>(dsv4::ue8m0::ceil_pow2(x / 448.0f).bits) - 127);
  return 0;
}
