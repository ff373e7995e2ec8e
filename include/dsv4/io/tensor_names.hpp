// Tensor names of DeepSeek checkpoints: the Hugging Face file names and the reference code's
// names, both ways.
//
// Spec: spec/formats.md §10.1 (official names), §10.2 (what inference/convert.py renames). The
// official V4 release already stores the reference's names, so for it the mapping is the
// identity; convert.py also accepts older spellings, and so does dsv4, by the same rules:
//  1. a leading "model." is removed;
//  2. MTP-local copies of the shared embedding and head (an "mtp.*" name containing "emb" or
//     ending in "head.weight") are dropped: the MTP block uses the trunk's tensors;
//  3. the containers `self_attn` and `mlp` become `attn` and `ffn`, the suffix `weight_scale_inv`
//     becomes `scale` and `e_score_correction_bias` becomes `bias`;
//  4. the DeepSeek-V3 module names become the reference's (`embed_tokens` -> `embed`,
//     `input_layernorm` -> `attn_norm`, `post_attention_layernorm` -> `ffn_norm`, `q_a_proj` ->
//     `wq_a`, `q_a_layernorm` -> `q_norm`, `q_b_proj` -> `wq_b`, `kv_a_layernorm` -> `kv_norm`,
//     `gate_proj` / `down_proj` / `up_proj` -> `w1` / `w2` / `w3`, `lm_head` -> `head`, and the V3
//     attention's `q_proj`, `kv_a_proj_with_mqa`, `kv_b_proj`, `o_proj`, which V4 does not have).
//     The renamed component is the module holding the tensor: the one before the last, or the last
//     for the parameters stored without ".weight" (names containing `hc`, `attn_sink`, `ape`).
// `legacy_name` goes the other way (reference -> the V3-style spelling that rules 1-4 read back),
// for tests and for writing checkpoints that older tools expect.
//
// Hugging Face transformers' own DeepSeek-V4 module tree (`q_a_norm`, `kv_proj`, `o_a_proj`,
// merged `experts.gate_up_proj`, ...) is a different layout, not covered by these rules.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsv4::io {

namespace detail::names {

/// V3-style module names and the reference's names (rule 4), one pair per module.
inline constexpr std::array<std::pair<std::string_view, std::string_view>, 15> kLegacyModules = {{
    {"embed_tokens", "embed"},
    {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
    {"q_proj", "wq"},
    {"q_a_proj", "wq_a"},
    {"q_a_layernorm", "q_norm"},
    {"q_b_proj", "wq_b"},
    {"kv_a_proj_with_mqa", "wkv_a"},
    {"kv_a_layernorm", "kv_norm"},
    {"kv_b_proj", "wkv_b"},
    {"o_proj", "wo"},
    {"gate_proj", "w1"},
    {"down_proj", "w2"},
    {"up_proj", "w3"},
    {"lm_head", "head"},
}};

/// Whole-component renames (rule 3): {file spelling, reference spelling}.
inline constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kComponents = {{
    {"self_attn", "attn"},
    {"mlp", "ffn"},
    {"weight_scale_inv", "scale"},
    {"e_score_correction_bias", "bias"},
}};

inline std::vector<std::string> split(std::string_view name) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    parts.emplace_back(name.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

inline std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += '.';
    out += parts[i];
  }
  return out;
}

/// Index of the module component rule 4 renames: the last component for the parameters stored
/// without ".weight", otherwise the one before the last.
inline std::size_t module_component(std::string_view name, std::size_t n_parts) {
  const bool bare = name.find("hc") != std::string_view::npos ||
                    name.find("attn_sink") != std::string_view::npos ||
                    name.find("tid2eid") != std::string_view::npos ||
                    name.find("ape") != std::string_view::npos;
  return bare || n_parts < 2 ? n_parts - 1 : n_parts - 2;
}

}  // namespace detail::names

/// The reference's name of a tensor stored as `stored` (rules 1-4 above), or nullopt when the
/// reference drops it (an MTP-local copy of the embedding or head).
inline std::optional<std::string> reference_name(std::string_view stored) {
  using namespace detail::names;
  if (stored.substr(0, 6) == "model.") stored.remove_prefix(6);
  if (stored.substr(0, 4) == "mtp." &&
      (stored.find("emb") != std::string_view::npos ||
       (stored.size() >= 11 && stored.substr(stored.size() - 11) == "head.weight"))) {
    return std::nullopt;
  }
  std::vector<std::string> parts = split(stored);
  for (std::string& p : parts) {
    for (const auto& [file, ref] : kComponents) {
      if (p == file) p = ref;
    }
  }
  std::string& module = parts[module_component(stored, parts.size())];
  for (const auto& [legacy, ref] : kLegacyModules) {
    if (module == legacy) module = ref;
  }
  return join(parts);
}

/// The V3-style Hugging Face spelling of reference name `ref` ("layers.0.attn.wq_a.scale" ->
/// "model.layers.0.self_attn.q_a_proj.weight_scale_inv", "head.weight" -> "lm_head.weight"):
/// reference_name(legacy_name(r)) == r for every tensor of a V4 checkpoint.
inline std::string legacy_name(std::string_view ref) {
  using namespace detail::names;
  std::vector<std::string> parts = split(ref);
  std::string& module = parts[module_component(ref, parts.size())];
  for (const auto& [legacy, reference] : kLegacyModules) {
    if (module == reference) {
      module = legacy;
      break;
    }
  }
  for (std::string& p : parts) {
    for (const auto& [file, reference] : kComponents) {
      if (p == reference) {
        p = file;
        break;
      }
    }
  }
  std::string out = join(parts);
  return out.substr(0, 8) == "lm_head." ? out : "model." + out;
}

}  // namespace dsv4::io
