// `dsv4 eval MODEL --tokens 1,2,3 | --tokens-file F.i32 [--numerics NAME] [--decode-from N |
// --step] [--out logits.npy|logits.f32] [--backend cpu|reference] [-t N]`: runs a model (a
// llama.cpp deepseek4 GGUF file, a checkpoint directory, or one reference-named .safetensors file
// with config.json beside it) on token ids and prints the top-1 id of every position; with --out it
// also writes the logits [T][vocab], as a NumPy .npy array (float32, little-endian) when the name
// ends in .npy and as raw little-endian float32 otherwise. Numerics (model_choice.hpp; default
// `llama.cpp` for a GGUF file, `reference` for a checkpoint): `reference`
// (bf16 activations as PyTorch 2, FP8/FP4 activation simulation; GGUF weights as fp32 dots of their
// dequantized values), `reference-torch1` (bf16 as PyTorch 1.x rounds a bf16 mean),
// `reference-fp32` (fp32 activations, simulation on), `fp32` (no simulation) and `llama.cpp` (fp32
// activations without the simulation, GGUF weights with llama.cpp's CPU dot products: the
// activation quantized to the format's vec_dot partner). `--decode-from N` prefills the first N
// tokens and decodes the rest one at a time
// (`--step` is `--decode-from 0`).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dsv4/core/check.hpp>
#include <dsv4/core/error.hpp>
#include <dsv4/io/npy.hpp>
#include <dsv4/io/output_file.hpp>
#include <dsv4/model/any_model.hpp>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"
#include "model_choice.hpp"
#include "model_loader.hpp"

namespace dsv4::cli {
namespace {

struct EvalCliOptions {
  std::string model;
  std::string tokens;
  std::string tokens_file;
  std::string numerics;  ///< empty: default_numerics(model)
  std::string out;
  bool step = false;
  std::int64_t decode_from = -1;  ///< -1: prefill everything
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

/// Logits [T][vocab] of `tokens`: one prefill of the first `decode_from` tokens (all of them
/// when decode_from >= T), then one decode call per remaining token.
std::vector<float> eval_logits(const AnyModel& model, std::span<const std::int32_t> tokens,
                               std::size_t decode_from) {
  auto st = model.new_state();
  std::vector<float> logits;
  const std::size_t n_prefill = std::min(decode_from, tokens.size());
  if (n_prefill > 0) logits = model.prefill(tokens.first(n_prefill), st).logits;
  for (std::size_t i = n_prefill; i < tokens.size(); ++i) {
    const auto out = model.decode(tokens[i], st);
    logits.insert(logits.end(), out.logits.begin(), out.logits.end());
  }
  return logits;
}

/// Writes logits [T][vocab]: .npy for a name ending in .npy, raw float32 otherwise; atomically
/// (a failure leaves no file; the error names the cause).
void write_logits(const std::string& path, const std::vector<float>& logits, std::size_t rows,
                  std::size_t vocab) {
  const bool npy = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
  try {
    if (npy) {
      const std::uint64_t shape[] = {rows, vocab};
      io::write_npy_f32(path, logits, shape);
    } else {
      io::AtomicOutputFile f(path);
      f.write(std::as_bytes(std::span<const float>(logits)));
      f.commit();
    }
  } catch (const Error& e) {
    throw Error(fmt::format("--out {}: {}", path, e.what()));
  }
}

std::string mode_name(std::size_t decode_from, std::size_t n) {
  if (decode_from >= n) return "prefill";
  if (decode_from == 0) return "token by token";
  return fmt::format("prefill of {}, then token by token", decode_from);
}

void run_eval(const EvalCliOptions& o) {
  DSV4_CHECK(o.tokens.empty() != o.tokens_file.empty(), InputError,
             "give the token ids with exactly one of --tokens and --tokens-file");
  DSV4_CHECK(!(o.step && o.decode_from >= 0), InputError,
             "--step and --decode-from: give one (--step is --decode-from 0)");
  DSV4_CHECK(o.decode_from >= -1, InputError, "--decode-from {}: expected a count >= 0",
             o.decode_from);
  const auto tokens =
      o.tokens.empty() ? read_token_file(o.tokens_file) : parse_token_list(o.tokens);
  DSV4_CHECK(!tokens.empty(), InputError, "no token ids to evaluate");
  DSV4_CHECK(o.decode_from <= static_cast<std::int64_t>(tokens.size()), InputError,
             "--decode-from {}: only {} token ids", o.decode_from, tokens.size());
  const std::size_t decode_from = o.step               ? 0
                                  : o.decode_from >= 0 ? static_cast<std::size_t>(o.decode_from)
                                                       : tokens.size();
  const std::string numerics = o.numerics.empty() ? default_numerics(o.model) : o.numerics;
  const AnyModel model = load_any_model(o.model, o.backend, numerics);
  const ModelConfig& cfg = model.config();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    DSV4_CHECK(tokens[i] >= 0 && tokens[i] < cfg.vocab_size, InputError,
               "token {} (position {}) is outside the vocabulary [0, {})", tokens[i], i,
               cfg.vocab_size);
  }
  DSV4_CHECK(static_cast<std::int64_t>(tokens.size()) <= cfg.max_seq_len, InputError,
             "{} tokens: more than the model's max_seq_len {}", tokens.size(), cfg.max_seq_len);
  const auto logits = eval_logits(model, tokens, decode_from);
  const auto vocab = static_cast<std::size_t>(cfg.vocab_size);
  const std::string mode = mode_name(decode_from, tokens.size());
  fmt::print("top-1 ({} numerics, {}):", numerics, mode);
  for (std::size_t p = 0; p < tokens.size(); ++p) {
    const float* row = logits.data() + p * vocab;
    fmt::print(" {}", std::max_element(row, row + vocab) - row);
  }
  fmt::print("\n");
  if (!o.out.empty()) {
    write_logits(o.out, logits, tokens.size(), vocab);
    fmt::print("{}: {} x {} float32 logits ({} numerics, {})\n", o.out, tokens.size(), vocab,
               numerics, mode);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Run a model (GGUF file or checkpoint directory) on token ids; print or write logits");
  cmd->add_option("MODEL", o->model,
                  "a deepseek4 GGUF file, a checkpoint directory, or a reference-named "
                  ".safetensors file with config.json beside it")
      ->required();
  cmd->add_option("--tokens", o->tokens, "token ids separated by commas");
  cmd->add_option("--tokens-file", o->tokens_file, "token ids as raw little-endian int32");
  std::string numerics_help =
      "numerics policy (default: llama.cpp for a GGUF file, reference for a checkpoint):";
  for (const auto& n : numerics_names) {
    numerics_help += fmt::format("\n  {}: {}", n.name, n.help);
  }
  cmd->add_option("--numerics", o->numerics, numerics_help);
  cmd->add_option("--out", o->out,
                  "also write the logits [T][vocab]: a NumPy float32 array for a name ending in "
                  ".npy, raw little-endian float32 otherwise");
  cmd->add_flag("--step", o->step, "one token per forward call instead of one prefill");
  add_backend_options(cmd, o->backend);
  cmd->add_option("--decode-from", o->decode_from,
                  "prefill the first N tokens, then decode the rest one at a time");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace dsv4::cli
