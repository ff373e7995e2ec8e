// Generation with a DeepSeek-V4 checkpoint: greedy decoding, the same with the MTP block drafting
// one token ahead (speculative decoding: identical tokens, fewer trunk calls when drafts are
// accepted), and seeded temperature/top-p sampling.
//
//   example_generate <checkpoint dir> [prompt token ids...]
//   example_generate <config.json> <weights.safetensors> [prompt token ids...]
//
// A checkpoint directory holds config.json and safetensors shards in the reference's names; the
// second form names the two files (tests/data/reference/tiny_a/config.json and
// weights.safetensors are a tiny model with random weights: its MTP drafts are rarely right).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/model/model.hpp>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

void report(const char* what, const dsv4::GenerateResult& r) {
  fmt::print("{}: {}\n  stop: {}, trunk calls: {}", what, fmt::join(r.tokens, " "),
             dsv4::stop_reason_name(r.stop), r.trunk_calls);
  if (r.drafted > 0) {
    fmt::print(", drafts accepted: {} of {} ({:.0f}%)", r.accepted, r.drafted,
               100.0 * r.acceptance_rate());
  }
  fmt::print("\n");
}

int run(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr,
               "usage: {0} <checkpoint dir> [prompt token ids...]\n"
               "       {0} <config.json> <weights.safetensors> [prompt token ids...]\n",
               argv[0]);
    return 2;
  }
  // The reference backend with the official reference's numerics (bf16 activations, FP8/FP4
  // activation simulation); dsv4::Model<Backend, Numerics, ...> picks others.
  using Model = dsv4::Model<dsv4::ReferenceBackend, dsv4::ReferenceNumerics>;
  int next = 2;
  const Model model = [&] {
    if (std::filesystem::is_directory(argv[1])) return Model::load(argv[1]);
    if (argc < 3) throw dsv4::InputError("a config.json needs a weights file after it");
    ++next;
    return Model::load(dsv4::io::Checkpoint(argv[1], {argv[2]}));
  }();
  std::vector<std::int32_t> prompt;
  for (int i = next; i < argc; ++i) prompt.push_back(static_cast<std::int32_t>(std::atoi(argv[i])));
  if (prompt.empty()) prompt = {0, 17, 42, 99, 3};

  dsv4::GenerateOptions opt;
  opt.max_new_tokens = 32;
  opt.stop_tokens = {1};  // the V4 end-of-sentence token
  const auto greedy = dsv4::generate(model, prompt, opt);
  report("greedy", greedy);

  opt.speculative = model.config().n_mtp_layers > 0;
  if (opt.speculative) {
    const auto spec = dsv4::generate(model, prompt, opt);
    report("greedy, MTP speculative", spec);
    if (spec.tokens != greedy.tokens) {
      fmt::print(stderr, "speculative decoding changed the greedy tokens\n");
      return 1;
    }
  }

  opt.sampling = {0.8f, 0.95f, /*seed=*/1};
  report(opt.speculative ? "sampled (temperature 0.8, top-p 0.95, seed 1), MTP speculative"
                         : "sampled (temperature 0.8, top-p 0.95, seed 1)",
         dsv4::generate(model, prompt, opt));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "generate: {}\n", e.what());
    return 1;
  }
}
