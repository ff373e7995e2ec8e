// Official configurations as plain functions (gemma.cpp's configs.cc): V4-Pro, V4-Flash and the
// tiny test model. Spec: spec/architecture.md §1.1, §1.3, §1.6; values from spec/configs/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/config.hpp"

namespace dsv4::presets {

namespace detail {
/// n_layers trunk ratios: `head` for the first blocks, then 4 on even and 128 on odd indices,
/// plus `mtp` for each MTP block (spec §1.3).
inline std::vector<int> alternating_ratios(int n_layers, std::vector<int> head, int n_mtp,
                                           int mtp) {
  std::vector<int> r = std::move(head);
  for (int i = static_cast<int>(r.size()); i < n_layers; ++i) r.push_back(i % 2 == 0 ? 4 : 128);
  for (int j = 0; j < n_mtp; ++j) r.push_back(mtp);
  return r;
}
}  // namespace detail

/// DeepSeek-V4-Pro (1.6T total / 49B active parameters).
inline ModelConfig v4_pro() {
  ModelConfig c;  // the ModelConfig defaults are V4-Pro's
  c.compress_ratios = detail::alternating_ratios(61, {128, 128}, 1, 0);
  return c;
}

/// DeepSeek-V4-Flash (284B total / 13B active parameters).
inline ModelConfig v4_flash() {
  ModelConfig c;
  c.dim = 4096;
  c.moe_inter_dim = 2048;
  c.n_layers = 43;
  c.n_heads = 64;
  c.n_routed_experts = 256;
  c.route_scale = 1.5;
  c.q_lora_rank = 1024;
  c.o_groups = 8;
  c.index_topk = 512;
  c.compress_ratios = detail::alternating_ratios(43, {0, 0}, 1, 0);
  return c;
}

/// The tiny test configuration of spec §1.6 (spec/configs/tiny.json): full V4 structure,
/// ~7.5M parameters, FP8/FP4-compatible shapes.
inline ModelConfig tiny() {
  ModelConfig c;
  c.max_batch_size = 2;
  c.max_seq_len = 128;
  c.vocab_size = 512;
  c.dim = 128;
  c.moe_inter_dim = 128;
  c.n_layers = 5;
  c.n_hash_layers = 3;
  c.n_mtp_layers = 1;
  c.n_heads = 4;
  c.n_routed_experts = 16;
  c.n_activated_experts = 2;
  c.route_scale = 1.5;
  c.swiglu_limit = 2.0;
  c.q_lora_rank = 128;
  c.head_dim = 192;
  c.rope_head_dim = 64;
  c.o_groups = 2;
  c.o_lora_rank = 64;
  c.window_size = 8;
  c.compress_ratios = {0, 16, 4, 16, 4, 0};
  c.index_n_heads = 16;
  c.index_head_dim = 128;
  c.index_topk = 8;
  return c;
}

/// The names `by_name` accepts.
inline constexpr std::string_view preset_names[] = {"v4-pro", "v4-flash", "tiny"};

/// A preset by name ("v4-pro", "v4-flash", "tiny"; '_' may stand for '-'); ConfigError otherwise.
inline ModelConfig by_name(std::string_view name) {
  std::string n(name);
  for (char& ch : n)
    if (ch == '_') ch = '-';
  if (n == "v4-pro") return v4_pro();
  if (n == "v4-flash") return v4_flash();
  if (n == "tiny") return tiny();
  throw ConfigError(fmt::format("unknown preset \"{}\" (known: v4-pro, v4-flash, tiny)", name));
}

}  // namespace dsv4::presets
