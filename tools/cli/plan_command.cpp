// `dsv4 plan`: prints the cost sheet of a configuration (model/plan.hpp) and its comparison with
// DeepSeek-V3.2 (model/v32.hpp). docs/cost-sheet.md explains every line.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <dsv4/core/presets.hpp>
#include <dsv4/io/config_json.hpp>
#include <dsv4/model/plan.hpp>
#include <dsv4/model/v32.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"

namespace dsv4::cli {
namespace {

struct PlanOptions {
  std::string preset = "v4-pro";
  std::string config;
  std::int64_t context = 1048576;
  bool json = false;
};

std::string human_count(double v) {
  if (v >= 1e12) return fmt::format("{:.3f} T", v / 1e12);
  if (v >= 1e9) return fmt::format("{:.3f} B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.3f} M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.3f} K", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string human_bytes(double v) {
  if (v >= 1099511627776.0) return fmt::format("{:.2f} TiB", v / 1099511627776.0);
  if (v >= 1073741824.0) return fmt::format("{:.2f} GiB", v / 1073741824.0);
  if (v >= 1048576.0) return fmt::format("{:.2f} MiB", v / 1048576.0);
  if (v >= 1024.0) return fmt::format("{:.2f} KiB", v / 1024.0);
  return fmt::format("{:.0f} B", v);
}

std::string with_commas(std::int64_t v) {
  const std::string digits = fmt::format("{}", v < 0 ? -v : v);
  std::string out = v < 0 ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void run_plan(const PlanOptions& o) {
  const ModelConfig cfg = o.config.empty() ? presets::by_name(o.preset) : load_config(o.config);
  const std::string source = o.config.empty() ? "preset " + o.preset : o.config;
  const std::int64_t L = o.context;
  DSV4_CHECK(L >= 1, InputError, "--context must be at least 1 token, got {}", L);

  const plan::ParamSheet params = plan::count_parameters(cfg);
  const std::int64_t release = plan::release_bytes(cfg);
  const std::int64_t bf16 = plan::bf16_bytes(cfg);
  const plan::KvSheet kv_ref = plan::kv_cache(cfg, L, plan::KvStorage::reference);
  const plan::KvSheet kv_fp8 = plan::kv_cache(cfg, L, plan::KvStorage::fp8);
  const plan::FlopSheet flops = plan::decode_flops(cfg, L);
  const v32::Config v = v32::v3_2();
  const plan::KvSheet v_ref = v32::kv_cache(v, L, plan::KvStorage::reference);
  const plan::KvSheet v_fp8 = v32::kv_cache(v, L, plan::KvStorage::fp8);
  const plan::FlopSheet v_flops = v32::decode_flops(v, L);
  struct GgufRow {
    const char* name;
    plan::GgufSheet sheet;
  };
  std::vector<GgufRow> gguf_rows;
  for (const char* name : {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q2_K", "MXFP4_MOE"})
    gguf_rows.push_back({name, plan::gguf_bytes(cfg, *gguf::file_type_from_name(name))});

  if (o.json) {
    nlohmann::json j;
    j["source"] = source;
    j["context"] = L;
    for (int i = 0; i < kNumComponents; ++i) {
      const auto c = static_cast<Component>(i);
      j["parameters"]["components"][std::string(component_name(c))] = {
          {"total", params.of(c)}, {"active", params.active_of(c)}};
    }
    j["parameters"]["total"] = params.total_params();
    j["parameters"]["total_with_mtp"] = params.total_with_mtp();
    j["parameters"]["active"] = params.active_params();
    j["weight_bytes"] = {{"bf16", bf16}, {"release_fp8_fp4", release}};
    for (const GgufRow& r : gguf_rows) {
      nlohmann::json types = nlohmann::json::array();
      for (const auto& t : r.sheet.by_type) {
        nlohmann::json comps = nlohmann::json::array();
        for (Component c : t.components) comps.push_back(std::string(component_name(c)));
        types.push_back({{"type", std::string(gguf::type_name(t.type))},
                         {"tensors", t.tensors},
                         {"params", t.params},
                         {"bytes", t.bytes},
                         {"components", comps}});
      }
      j["weight_bytes"]["gguf"][r.name] = {{"bytes", r.sheet.bytes},
                                           {"bits_per_weight", r.sheet.bits_per_weight()},
                                           {"types", types}};
    }
    const auto kv_json = [](const plan::KvSheet& k) {
      return nlohmann::json{{"window", k.window},
                            {"compressed", k.compressed},
                            {"indexer", k.indexer},
                            {"compressor_state", k.compressor_state},
                            {"total", k.total()}};
    };
    j["kv_cache"] = {{"reference", kv_json(kv_ref)}, {"fp8", kv_json(kv_fp8)}};
    j["decode_flops"] = {{"attention_core", flops.attention_core},
                         {"indexer", flops.indexer},
                         {"projections", flops.projections},
                         {"total", flops.total()}};
    j["v3_2"] = {{"kv_cache", {{"reference", kv_json(v_ref)}, {"fp8", kv_json(v_fp8)}}},
                 {"decode_flops",
                  {{"attention_core", v_flops.attention_core},
                   {"indexer", v_flops.indexer},
                   {"projections", v_flops.projections},
                   {"total", v_flops.total()}}}};
    fmt::print("{}\n", j.dump(2));
    return;
  }

  fmt::print("dsv4 cost sheet: {} ({} blocks + {} MTP, d={}, {} routed experts, top-{})\n\n",
             source, cfg.n_layers, cfg.n_mtp_layers, cfg.dim, cfg.n_routed_experts,
             cfg.n_activated_experts);
  fmt::print("Parameters                     total                 active per token\n");
  for (int i = 0; i < kNumComponents; ++i) {
    const auto c = static_cast<Component>(i);
    fmt::print("  {:<16} {:>20} {:>10}  {:>18} {:>10}\n", component_name(c),
               with_commas(params.of(c)), human_count(static_cast<double>(params.of(c))),
               with_commas(params.active_of(c)),
               human_count(static_cast<double>(params.active_of(c))));
  }
  fmt::print("  {:<16} {:>20} {:>10}  {:>18} {:>10}\n", "TOTAL (no MTP)",
             with_commas(params.total_params()),
             human_count(static_cast<double>(params.total_params())),
             with_commas(params.active_params()),
             human_count(static_cast<double>(params.active_params())));
  fmt::print("  {:<16} {:>20} {:>10}\n", "with MTP", with_commas(params.total_with_mtp()),
             human_count(static_cast<double>(params.total_with_mtp())));
  fmt::print("  (active excludes the embedding table, a lookup, and the MTP blocks)\n\n");

  fmt::print("Weight bytes\n");
  fmt::print("  {:<34} {:>20}  {:>10}\n", "BF16 (FP8/FP4 widened)", with_commas(bf16),
             human_bytes(static_cast<double>(bf16)));
  const std::string release_name =
      fmt::format("release: {} dense + {} experts", weight_dtype_name(cfg.dtype),
                  weight_dtype_name(cfg.expert_dtype));
  fmt::print("  {:<34} {:>20}  {:>10}\n", release_name, with_commas(release),
             human_bytes(static_cast<double>(release)));
  for (const GgufRow& r : gguf_rows) {
    std::string mix;
    for (const auto& t : r.sheet.by_type) {
      if (t.params == 0) continue;  // the I32 hash-routing table
      if (!mix.empty()) mix += ", ";
      const double share =
          100.0 * static_cast<double>(t.params) / static_cast<double>(r.sheet.params);
      mix += share < 0.05 ? fmt::format("{} <0.1%", gguf::type_name(t.type))
                          : fmt::format("{} {:.1f}%", gguf::type_name(t.type), share);
    }
    fmt::print("  {:<34} {:>20}  {:>10}  {:.2f} bits/weight: {}\n", fmt::format("GGUF {}", r.name),
               with_commas(r.sheet.bytes), human_bytes(static_cast<double>(r.sheet.bytes)),
               r.sheet.bits_per_weight(), mix);
  }
  fmt::print(
      "  (GGUF: llama-quantize's per-tensor choice for deepseek4, MTP block included; shares are "
      "of\n"
      "   parameters. 1-D tensors (norms, biases, sinks, hc scales and bases) and the router gate\n"
      "   stay F32; the _M mixes give the head and the expert down projections of some layers "
      "Q6_K:\n"
      "   `--json` lists each type's components, docs/cost-sheet.md the rules)\n\n");

  fmt::print("Per-sequence cache at {} tokens           reference (bf16)   FP8 entries\n",
             with_commas(L));
  const auto kv_row = [](const char* name, std::int64_t a, std::int64_t b) {
    fmt::print("  {:<38} {:>14}  {:>12}\n", name, human_bytes(static_cast<double>(a)),
               human_bytes(static_cast<double>(b)));
  };
  kv_row("sliding-window rings", kv_ref.window, kv_fp8.window);
  kv_row("compressed entries (CSA + HCA)", kv_ref.compressed, kv_fp8.compressed);
  kv_row("indexer keys (CSA)", kv_ref.indexer, kv_fp8.indexer);
  kv_row("compressor state (fp32)", kv_ref.compressor_state, kv_fp8.compressor_state);
  kv_row("TOTAL", kv_ref.total(), kv_fp8.total());
  kv_row("DeepSeek-V3.2 (MLA latent + indexer)", v_ref.total(), v_fp8.total());
  fmt::print("  {:<38} {:>13.1f}%  {:>11.1f}%\n\n", "ratio to V3.2",
             100.0 * static_cast<double>(kv_ref.total()) / static_cast<double>(v_ref.total()),
             100.0 * static_cast<double>(kv_fp8.total()) / static_cast<double>(v_fp8.total()));

  fmt::print(
      "FLOPs per decoded token at {} tokens           this model     DeepSeek-V3.2   ratio\n",
      with_commas(L));
  const auto flop_row = [](const char* name, double a, double b) {
    fmt::print("  {:<44} {:>12}  {:>12}  {:>6.1f}%\n", name, human_count(a), human_count(b),
               100.0 * a / b);
  };
  flop_row("attention core (q.k, p.v)", flops.attention_core, v_flops.attention_core);
  flop_row("indexer scores", flops.indexer, v_flops.indexer);
  flop_row("attention (core + indexer)", flops.attention(), v_flops.attention());
  flop_row("projections (2 x active parameters)", flops.projections, v_flops.projections);
  flop_row("TOTAL", flops.total(), v_flops.total());
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto opts = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Cost sheet from a configuration alone: parameters, weight bytes, KV cache, FLOPs");
  auto* preset =
      cmd->add_option("--preset", opts->preset, "v4-pro, v4-flash or tiny")->capture_default_str();
  cmd->add_option("--config", opts->config, "config.json (Hugging Face or reference field names)")
      ->excludes(preset)
      ->check(CLI::ExistingFile);
  cmd->add_option("--context", opts->context, "context length in tokens")->capture_default_str();
  cmd->add_flag("--json", opts->json, "print JSON instead of tables");
  cmd->callback([opts] { run_plan(*opts); });
}

}  // namespace dsv4::cli
