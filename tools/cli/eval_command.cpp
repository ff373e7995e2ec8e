// `dsv4 eval MODEL --tokens 1,2,3 | --tokens-file F.i32 [--numerics reference|llama.cpp]
// [--out logits.f32] [--step] [--backend cpu|reference] [-t N]`: runs a model (a llama.cpp
// deepseek4 GGUF file or a checkpoint directory) on token ids and prints the top-1 id of every
// position, or writes the logits as raw little-endian float32 [T][vocab]. `reference`: the official
// reference's numerics (bf16 activations, FP8/FP4 activation simulation; GGUF weights as fp32 dots
// of their dequantized values); `llama.cpp`: fp32 activations without the simulation, GGUF weights
// with llama.cpp's CPU dot products (the activation quantized to the format's vec_dot partner).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/io/checkpoint.hpp>
#include <dsv4/io/gguf_model.hpp>
#include <dsv4/model/model.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"

namespace dsv4::cli {
namespace {

struct EvalCliOptions {
  std::string model;
  std::string tokens;
  std::string tokens_file;
  std::string numerics = "reference";
  std::string out;
  bool step = false;
  BackendChoice backend;
};

std::vector<std::int32_t> parse_token_list(const std::string& s) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ',' || s[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && s[j] != ',' && s[j] != ' ') ++j;
    const std::string word = s.substr(i, j - i);
    std::int64_t v = 0;
    bool ok = !word.empty() && word.size() <= 10;
    for (const char c : word) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) v = v * 10 + (c - '0');
    }
    DSV4_CHECK(ok && v <= INT32_MAX, InputError, "--tokens: '{}' is not a token id", word);
    ids.push_back(static_cast<std::int32_t>(v));
    i = j;
  }
  return ids;
}

std::vector<std::int32_t> read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DSV4_CHECK(in.good(), InputError, "--tokens-file {}: cannot open", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DSV4_CHECK(bytes.size() % 4 == 0, InputError,
             "--tokens-file {}: {} bytes, not a whole number of int32 ids", path, bytes.size());
  std::vector<std::int32_t> ids(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), bytes.size());
  return ids;
}

template <class N, class B, class Src>
void run_model(B backend, const Src& src, const ModelConfig& cfg,
               const std::vector<std::int32_t>& tokens, const EvalCliOptions& o) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    DSV4_CHECK(tokens[i] >= 0 && tokens[i] < cfg.vocab_size, InputError,
               "token {} (position {}) is outside the vocabulary [0, {})", tokens[i], i,
               cfg.vocab_size);
  }
  DSV4_CHECK(static_cast<std::int64_t>(tokens.size()) <= cfg.max_seq_len, InputError,
             "{} tokens: more than the model's max_seq_len {}", tokens.size(), cfg.max_seq_len);
  using M = Model<B, N, HyperConnection<4>, AnyLinear>;
  const M model = M::load(src, cfg, std::move(backend));
  auto st = model.new_state();
  std::vector<float> logits;
  if (o.step) {
    for (const std::int32_t t : tokens) {
      const auto out = model.decode(t, st);
      logits.insert(logits.end(), out.logits.begin(), out.logits.end());
    }
  } else {
    logits = model.prefill(tokens, st).logits;
  }
  const auto vocab = static_cast<std::size_t>(cfg.vocab_size);
  if (!o.out.empty()) {
    std::ofstream f(o.out, std::ios::binary);
    DSV4_CHECK(f.good(), InputError, "--out {}: cannot create", o.out);
    f.write(reinterpret_cast<const char*>(logits.data()),
            static_cast<std::streamsize>(logits.size() * sizeof(float)));
    DSV4_CHECK(f.good(), InputError, "--out {}: write failed", o.out);
    fmt::print("{}: {} x {} float32 logits ({} numerics, {})\n", o.out, tokens.size(), vocab,
               o.numerics, o.step ? "token by token" : "prefill");
    return;
  }
  fmt::print("top-1 ({} numerics, {}):", o.numerics, o.step ? "token by token" : "prefill");
  for (std::size_t p = 0; p < tokens.size(); ++p) {
    const float* row = logits.data() + p * vocab;
    fmt::print(" {}", std::max_element(row, row + vocab) - row);
  }
  fmt::print("\n");
}

void run_eval(const EvalCliOptions& o) {
  DSV4_CHECK(o.numerics == "reference" || o.numerics == "llama.cpp", InputError,
             "--numerics {}: expected reference or llama.cpp", o.numerics);
  DSV4_CHECK(o.tokens.empty() != o.tokens_file.empty(), InputError,
             "give the token ids with exactly one of --tokens and --tokens-file");
  const auto tokens =
      o.tokens.empty() ? read_token_file(o.tokens_file) : parse_token_list(o.tokens);
  DSV4_CHECK(!tokens.empty(), InputError, "no token ids to evaluate");
  const bool llama = o.numerics == "llama.cpp";
  namespace fs = std::filesystem;
  DSV4_CHECK(fs::exists(o.model), InputError, "{}: no such file or directory", o.model);
  if (fs::is_directory(o.model)) {
    const auto ckpt = io::Checkpoint::open(o.model);
    with_backend(o.backend, [&](auto b) {
      if (llama) {
        run_model<PlainFp32Numerics>(b, ckpt, ckpt.config(), tokens, o);
      } else {
        run_model<ReferenceNumerics>(b, ckpt, ckpt.config(), tokens, o);
      }
    });
    return;
  }
  const io::GgufModel src(
      o.model, llama ? io::GgufLinearSemantics::partner_dot : io::GgufLinearSemantics::dequant_dot);
  with_backend(o.backend, [&](auto b) {
    if (llama) {
      run_model<PlainFp32Numerics>(b, src, src.config(), tokens, o);
    } else {
      run_model<ReferenceNumerics>(b, src, src.config(), tokens, o);
    }
  });
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Run a model (GGUF file or checkpoint directory) on token ids; print or write logits");
  cmd->add_option("MODEL", o->model, "a deepseek4 GGUF file or a checkpoint directory")->required();
  cmd->add_option("--tokens", o->tokens, "token ids separated by commas");
  cmd->add_option("--tokens-file", o->tokens_file, "token ids as raw little-endian int32");
  cmd->add_option("--numerics", o->numerics,
                  "reference (bf16 activations, FP8/FP4 simulation; default) or llama.cpp (fp32 "
                  "activations, llama.cpp's quantized dot products)");
  cmd->add_option("--out", o->out, "write the logits as raw float32 [T][vocab] to this file");
  cmd->add_flag("--step", o->step, "one token per forward call instead of one prefill");
  add_backend_options(cmd, o->backend);
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace dsv4::cli
