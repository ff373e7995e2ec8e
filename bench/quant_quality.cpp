// The quantized-model quality table: a tiny DeepSeek-V4 with its projections quantized to each
// weight format (and to llama-quantize's mixed recipes and the official release's FP8+FP4 split)
// runs a prefill, and its logits are compared with those of the unquantized model (fp32
// activations, no FP8/FP4 activation simulation, weights as stored). docs/quantization.md shows
// and explains the table.
//
// Usage: bench_quant_quality [--model DIR] [--tokens N] [--sequences S] [--seed SEED]
//   --model DIR    a checkpoint directory (config.json + safetensors; a directory holding
//                  weights.safetensors, like the golden reference folders, reads only that file).
//                  Default: a random checkpoint of the tiny256 config
//                  (model/random_checkpoint.hpp), where every format applies to every projection.
//   --tokens N     prompt length (default 64, at most the config's max_seq_len)
//   --sequences S  prompts, each with its own seeded random tokens (default 4)
//   --seed SEED    weights (tiny256) and token seed (default 20260807)
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <dsv4/model/quantized_load.hpp>
#include <dsv4/model/random_checkpoint.hpp>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace d = dsv4;
namespace fs = std::filesystem;
using Model = d::QuantizedModel<>;

struct Options {
  std::optional<fs::path> model;
  std::size_t tokens = 64;
  std::size_t sequences = 4;
  std::uint64_t seed = 20260807;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(fmt::format("{} needs a value", a));
      return argv[++i];
    };
    if (a == "--model") {
      o.model = value();
    } else if (a == "--tokens") {
      o.tokens = std::stoull(value());
    } else if (a == "--sequences") {
      o.sequences = std::stoull(value());
    } else if (a == "--seed") {
      o.seed = std::stoull(value());
    } else {
      throw std::runtime_error(fmt::format(
          "unknown argument '{}' (usage: bench_quant_quality [--model DIR] [--tokens N] "
          "[--sequences S] [--seed SEED])",
          a));
    }
  }
  return o;
}

d::io::Checkpoint open_checkpoint(const fs::path& dir) {
  if (fs::exists(dir / "weights.safetensors")) {
    return {dir / "config.json", {dir / "weights.safetensors"}};
  }
  return d::io::Checkpoint::open(dir);
}

/// Prefill logits of every prompt (concatenated) and each prompt's routing trace.
struct Run {
  std::vector<float> logits;
  std::vector<d::ForwardTrace> traces;
};

Run run(const Model& m, const std::vector<std::vector<std::int32_t>>& prompts) {
  Run r;
  for (const auto& p : prompts) {
    auto st = m.new_state();
    d::ForwardTrace trace;
    const auto o = m.forward(p, 0, st, true, &trace);
    r.logits.insert(r.logits.end(), o.logits.begin(), o.logits.end());
    trace.block_in.clear();  // keep the routing only
    r.traces.push_back(std::move(trace));
  }
  return r;
}

/// Agreement of the score-routed blocks' expert sets over all prompts (of equal length).
double routing_agreement(const Run& got, const Run& want, std::size_t hash_layers) {
  double sum = 0;
  for (std::size_t i = 0; i < want.traces.size(); ++i)
    sum += d::routing_agreement(got.traces[i], want.traces[i], hash_layers);
  return want.traces.empty() ? 1.0 : sum / static_cast<double>(want.traces.size());
}

/// A directory removed when the program leaves main (normally or by an exception).
struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

struct Row {
  std::string name;
  std::function<d::WeightPlan(d::DotSemantics)> plan;
};

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  fs::path dir;
  TempDir temp;
  if (opt.model) {
    dir = *opt.model;
  } else {
    temp.path = fs::temp_directory_path() / fmt::format("dsv4_quant_quality_{}", opt.seed);
    d::write_random_checkpoint(temp.path, d::tiny256_config(), opt.seed);
    dir = temp.path;
  }
  const d::io::Checkpoint ckpt = open_checkpoint(dir);
  const d::ModelConfig& cfg = ckpt.config();
  const std::size_t t =
      std::min<std::size_t>(opt.tokens, static_cast<std::size_t>(cfg.max_seq_len));
  std::mt19937_64 rng(opt.seed + 1);
  std::vector<std::vector<std::int32_t>> prompts(opt.sequences, std::vector<std::int32_t>(t));
  for (auto& p : prompts) {
    for (auto& tok : p)
      tok = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(cfg.vocab_size));
  }

  const Model base =
      d::load_quantized<Model>(ckpt, d::uniform_plan(d::FormatId::f32, d::DotSemantics::dequant));
  const Run want = run(base, prompts);
  double scale = 0;
  for (float v : want.logits) scale += static_cast<double>(v) * v;
  scale = std::sqrt(scale / static_cast<double>(want.logits.size()));

  using F = d::FormatId;
  std::vector<Row> rows;
  for (F f :
       {F::f32, F::f16, F::bf16, F::q8_0, F::fp8_b128, F::q6_k, F::q5_1, F::q5_k, F::q5_0, F::q4_1,
        F::q4_k, F::q4_0, F::iq4_nl, F::mxfp4, F::fp4_g32, F::iq4_xs, F::q3_k, F::q2_k}) {
    rows.push_back({std::string(d::format_info(f).name),
                    [f](d::DotSemantics s) { return d::uniform_plan(f, s); }});
  }
  rows.push_back(
      {"FP8+FP4 (release)", [](d::DotSemantics s) { return d::official_release_plan(s); }});
  for (auto ft :
       {d::gguf::FileType::mxfp4_moe, d::gguf::FileType::q4_k_m, d::gguf::FileType::q2_k}) {
    rows.push_back(
        {std::string(d::gguf::file_type_name(ft)) + " (recipe)",
         [ft, &cfg](d::DotSemantics s) { return d::gguf_recipe_plan(ft, cfg, false, s); }});
  }
  // the same recipes over every tensor a GGUF file quantizes (embedding, head, wo_a, ...)
  for (auto ft :
       {d::gguf::FileType::mxfp4_moe, d::gguf::FileType::q4_k_m, d::gguf::FileType::q2_k}) {
    rows.push_back({std::string(d::gguf::file_type_name(ft)) + " (recipe, all tensors)",
                    [ft, &cfg](d::DotSemantics s) {
                      return d::gguf_recipe_plan(ft, cfg, false, s, d::RecipeScope::all_tensors);
                    }});
  }

  fmt::print(
      "model: {} (dim {}, moe_inter_dim {}, q_lora_rank {}, {} layers), {} prompts x {} "
      "tokens, fp32 activations, no activation simulation\n",
      opt.model ? dir.string()
                : std::string("tiny256 (random, seed ") + std::to_string(opt.seed) + ")",
      cfg.dim, cfg.moe_inter_dim, cfg.q_lora_rank, cfg.n_layers, prompts.size(), t);
  fmt::print("reference: unquantized weights (F32, dequant-dot); logit RMS {:.3f}\n\n", scale);
  fmt::print(
      "| format | bits/weight | formats used | partner-dot max | mean | rel-L2 | top-1 "
      "| same experts | dequant-dot max | mean | rel-L2 | top-1 | same experts |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    d::LogitDistance dist[2];
    double experts[2] = {1, 1};
    d::QuantizationReport report;
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < 2; ++s) {
      const auto sem = s == 0 ? d::DotSemantics::partner : d::DotSemantics::dequant;
      d::QuantizationReport rep;
      const Model m = d::load_quantized<Model>(ckpt, r.plan(sem), &rep);
      if (s == 0) report = rep;
      const Run got = run(m, prompts);
      dist[s] =
          d::logit_distance(got.logits, want.logits, static_cast<std::size_t>(cfg.vocab_size));
      experts[s] = routing_agreement(got, want, static_cast<std::size_t>(cfg.n_hash_layers));
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(
        "| {} | {:.4g} | {} | {:.3g} | {:.3g} | {:.3g} | {:.3f} | {:.3f} | {:.3g} | {:.3g} | "
        "{:.3g} | {:.3f} | {:.3f} |\n",
        r.name, report.bits_per_weight(), report.format_mix(), dist[0].max_abs, dist[0].mean_abs,
        dist[0].rel_l2, dist[0].top1, experts[0], dist[1].max_abs, dist[1].mean_abs, dist[1].rel_l2,
        dist[1].top1, experts[1]);
    std::fflush(stdout);
    if (std::getenv("DSV4_BENCH_VERBOSE") != nullptr)
      fmt::print(stderr, "{}: {:.2f} s\n", r.name, secs);
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_quant_quality: {}\n", e.what());
  return 1;
}
