// The cost sheet as a C++ API: parameters, bytes and cache of a custom configuration derived
// from V4-Flash (here: twice the experts), without any weights.
#include <fmt/core.h>

#include <dsv4/core/presets.hpp>
#include <dsv4/model/plan.hpp>

int main() {
  dsv4::ModelConfig cfg = dsv4::presets::v4_flash();
  cfg.n_routed_experts = 512;

  const auto params = dsv4::plan::count_parameters(cfg);
  const auto kv = dsv4::plan::kv_cache(cfg, 1 << 17, dsv4::plan::KvStorage::fp8);
  fmt::print("V4-Flash with 512 experts: {:.1f}B total, {:.2f}B active per token\n",
             static_cast<double>(params.total_params()) / 1e9,
             static_cast<double>(params.active_params()) / 1e9);
  fmt::print("release size {:.1f} GB, KV cache at 128K tokens {:.2f} GiB\n",
             static_cast<double>(dsv4::plan::release_bytes(cfg)) / 1e9,
             static_cast<double>(kv.total()) / (1 << 30));
  return params.total_params() > 0 ? 0 : 1;
}
