// `dsv4 generate [-m MODEL] [-p PROMPT | -f FILE|-] [-n N] [--temp T] [--top-p P] [--seed S]
// [-t N] [--no-speculative] [--json]`: the prompt and the text the model continues it with,
// streamed to stdout as it is produced; then, on stderr, prompt and generation speeds and the MTP
// acceptance rate. --json prints one JSON object at the end instead. Without -m the embedded
// default model is used (model_files.hpp).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/check.hpp>
#include <dsv4/model/generate.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"
#include "model_files.hpp"

namespace dsv4::cli {
namespace {

struct GenerateCliOptions {
  std::string model;
  std::string prompt = "Once upon a time";
  std::string prompt_file;
  std::size_t n = 128;
  float temp = 0.8f;
  float top_p = 0.95f;
  std::int64_t seed = -1;
  BackendChoice backend;
  bool no_speculative = false;
  bool json = false;
};

void run_generate(const GenerateCliOptions& o) {
  std::string prompt = o.prompt;
  if (!o.prompt_file.empty()) {
    prompt = read_text_file(o.prompt_file, "-f");
    if (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
  }
  const auto m = open_model(model_path_or_default(o.model), o.backend);
  const auto ids = prompt_ids(m.tok, prompt);
  DSV4_CHECK(!ids.empty(), InputError, "the prompt is empty (and the tokenizer adds no BOS)");

  GenerateOptions g;
  g.max_new_tokens = o.n;
  g.sampling.temperature = o.temp;
  g.sampling.top_p = o.top_p;
  g.sampling.seed = o.seed >= 0 ? static_cast<std::uint64_t>(o.seed) : std::random_device{}();
  g.speculative = !o.no_speculative && m.model.config().n_mtp_layers > 0;
  if (m.tok.eos) g.stop_tokens.push_back(*m.tok.eos);
  g.prefill_chunk = 64;
  Progress prefill("prefill", "tokens");
  g.on_prefill = [&](std::size_t done, std::size_t total) { prefill.update(done, total); };
  Utf8Stream stream;
  if (!o.json) {
    fmt::print("{}", prompt);
    std::fflush(stdout);
    g.on_token = [&](std::int32_t t) {
      prefill.finish();
      fmt::print("{}", stream.push(m.tok.tokenizer.decoded_bytes(t)));
      std::fflush(stdout);
    };
  }
  const GenerateResult r = generate(m.model, std::span<const std::int32_t>(ids), g);
  prefill.finish();
  const double acceptance = r.acceptance_rate();
  if (o.json) {
    nlohmann::json j;
    j["text"] = m.tok.tokenizer.decode(r.tokens);
    j["tokens"] = r.tokens.size();
    j["prompt_tps"] = r.prompt_tps();
    j["gen_tps"] = r.gen_tps();
    j["acceptance_rate"] = r.drafted > 0 ? nlohmann::json(acceptance) : nlohmann::json(nullptr);
    j["token_ids"] = r.tokens;
    j["prompt_tokens"] = ids.size();
    j["drafted"] = r.drafted;
    j["accepted"] = r.accepted;
    j["stop"] = stop_reason_name(r.stop);
    j["seed"] = g.sampling.seed;
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}\n", stream.flush());
  std::fflush(stdout);
  fmt::print(stderr, "prompt: {} tokens, {:.1f} tokens/s; generation: {} tokens, {:.1f} tokens/s",
             ids.size(), r.prompt_tps(), r.tokens.size(), r.gen_tps());
  if (g.speculative) {
    fmt::print(stderr, "; MTP acceptance {:.1f}% ({} of {} drafts)\n", 100 * acceptance, r.accepted,
               r.drafted);
  } else {
    fmt::print(stderr, "; no speculative decoding\n");
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Continue a text prompt with a model (default: the embedded model)");
  cmd->add_option("-m,--model", o->model,
                  "a deepseek4 GGUF file or a checkpoint directory (default: the embedded model)");
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "the prompt text")->capture_default_str();
  cmd->add_option("-f,--file", o->prompt_file, "read the prompt from a file ('-': stdin)")
      ->excludes(p);
  cmd->add_option("-n,--n-predict", o->n, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--temp", o->temp, "sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (default: a random one)");
  add_backend_options(cmd, o->backend);
  cmd->add_flag("--no-speculative", o->no_speculative,
                "decode one token per step instead of drafting with the MTP block");
  cmd->add_flag("--json", o->json,
                "print one JSON object at the end (text, tokens, prompt_tps, gen_tps, "
                "acceptance_rate, ...) instead of streaming");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace dsv4::cli
