// Uses the installed header-only core: number types, presets and the cost sheet.
#include <cstdio>
#include <dsv4/dsv4.hpp>

int main() {
  const dsv4::ModelConfig cfg = dsv4::presets::v4_pro();
  const float x = dsv4::bf16(3.140625f).to_float();
  std::printf("V4-Pro: %d layers, bf16(3.140625) = %g\n", cfg.n_layers, static_cast<double>(x));
  return cfg.n_layers == 61 && x == 3.140625f ? 0 : 1;
}
