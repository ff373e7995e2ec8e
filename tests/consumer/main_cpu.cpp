// Links the installed SIMD CPU backend.
#include <cstdio>
#include <dsv4/cpu/backend.hpp>
#include <vector>

int main() {
  std::vector<float> a(100, 0.5f), b(100, 2.0f);
  const float d = dsv4::cpu::dot(a.data(), b.data(), a.size());
  std::printf("dot = %g on %s\n", static_cast<double>(d), dsv4::cpu::simd_target_name());
  return d == 100.0f ? 0 : 1;
}
