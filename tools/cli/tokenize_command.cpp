// `dsv4 tokenize [-m MODEL | --tokenizer FILE] [--chat MODE] [--system TEXT] [TEXT|-]`: the token
// ids of TEXT (or of the chat prompt asking TEXT in a reasoning mode), comma-separated; `dsv4
// detokenize IDS`: the text of comma- or space-separated ids (text/tokenizer.hpp, text/chat.hpp).
//
// -m MODEL uses the tokenizer of a model (inside a GGUF file, or a checkpoint directory's
// tokenizer.json). Without -m or --tokenizer the embedded default model's tokenizer is used, and
// when there is none the DeepSeek-V4 tokenizer.json shipped with dsv4: installed as
// <prefix>/share/dsv4/tokenizer.json next to <prefix>/bin/dsv4, or the source tree's copy when the
// program runs from its build folder. Without TEXT (or with '-') the text is read from stdin.
#include <fmt/core.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <dsv4/core/check.hpp>
#include <dsv4/text/chat.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "commands.hpp"
#include "model_files.hpp"

namespace dsv4::cli {
namespace {

std::vector<fs::path> default_tokenizer_candidates() {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path().parent_path() / "share" / "dsv4" / "tokenizer.json");
    out.push_back(exe.parent_path() / "share" / "dsv4" / "tokenizer.json");
  }
#ifdef DSV4_SOURCE_TOKENIZER
  out.emplace_back(DSV4_SOURCE_TOKENIZER);
#endif
  return out;
}

text::Tokenizer open_tokenizer(const std::string& path, const std::string& model) {
  DSV4_CHECK(path.empty() || model.empty(), InputError, "--tokenizer and -m are exclusive");
  if (!model.empty()) return open_model_tokenizer(model).tokenizer;
  if (!path.empty()) return text::Tokenizer::load(path);
  // The embedded model's tokenizer, else the DeepSeek-V4 tokenizer.json shipped with dsv4.
  try {
    return open_model_tokenizer(default_model_path()).tokenizer;
  } catch (const InputError&) {
  }
  std::string tried;
  for (const fs::path& p : default_tokenizer_candidates()) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return text::Tokenizer::load(p);
    tried += fmt::format("{}{}", tried.empty() ? "" : ", ", p.string());
  }
  throw FormatError(fmt::format(
      "no DeepSeek-V4 tokenizer.json found (looked for {}); pass one with --tokenizer FILE",
      tried.empty() ? std::string("nothing") : tried));
}

std::vector<text::TokenId> parse_ids(const std::vector<std::string>& args) {
  std::vector<text::TokenId> ids;
  for (const std::string& arg : args) {
    std::size_t i = 0;
    while (i < arg.size()) {
      if (arg[i] == ',' || arg[i] == ' ' || arg[i] == '\t' || arg[i] == '\n') {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < arg.size() && arg[j] != ',' && arg[j] != ' ' && arg[j] != '\t' && arg[j] != '\n') {
        ++j;
      }
      const std::string item = arg.substr(i, j - i);
      std::int64_t v = 0;
      const auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), v);
      DSV4_CHECK(err == std::errc() && end == item.data() + item.size() && v >= 0 && v <= INT32_MAX,
                 InputError,
                 "'{}' is not a token id (expected non-negative integers separated "
                 "by commas or spaces)",
                 item);
      ids.push_back(static_cast<text::TokenId>(v));
      i = j;
    }
  }
  return ids;
}

/// TEXT, or stdin when it is absent or "-".
std::string text_or_stdin(const std::string& text, bool given) {
  if (given && text != "-") return text;
  return read_text_file("-", "stdin");
}

struct TokenizeOptions {
  std::string tokenizer;
  std::string model;
  std::string chat;
  std::string system;
  std::string text;
  bool text_given = false;
};

struct DetokenizeOptions {
  std::string tokenizer;
  std::string model;
  std::vector<std::string> ids;
  bool skip_special = false;
};

void run_tokenize(const TokenizeOptions& o) {
  const std::string body = text_or_stdin(o.text, o.text_given);
  std::string input = body;
  if (!o.chat.empty()) {
    const text::ReasoningMode mode = text::parse_reasoning_mode(o.chat);
    std::vector<text::ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back({text::Role::system, o.system, ""});
    msgs.push_back({text::Role::user, body, ""});
    input = text::build_prompt(msgs, mode);
  } else {
    DSV4_CHECK(o.system.empty(), InputError, "--system needs --chat MODE");
  }
  const text::Tokenizer tok = open_tokenizer(o.tokenizer, o.model);
  const auto ids = tok.encode(input);
  fmt::print("{}\n", fmt::join(ids, ","));
}

void run_detokenize(const DetokenizeOptions& o) {
  const text::Tokenizer tok = open_tokenizer(o.tokenizer, o.model);
  std::vector<std::string> args = o.ids;
  if (args.empty() || (args.size() == 1 && args[0] == "-")) args = {read_text_file("-", "stdin")};
  fmt::print("{}\n", tok.decode(parse_ids(args), o.skip_special));
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto tk = std::make_shared<TokenizeOptions>();
  CLI::App* t = app.add_subcommand("tokenize", "Print the DeepSeek-V4 token ids of a text");
  t->add_option("--tokenizer", tk->tokenizer,
                "tokenizer.json to use (default: the DeepSeek-V4 tokenizer shipped with dsv4)");
  t->add_option("--chat", tk->chat,
                "tokenize the chat prompt that asks TEXT in this reasoning mode: non-think, "
                "think-high or think-max");
  t->add_option("--system", tk->system, "system prompt of the --chat prompt");
  t->add_option("-m,--model", tk->model,
                "use the tokenizer of this model (a GGUF file's tokenizer.ggml keys, or a "
                "checkpoint directory's tokenizer.json)");
  t->add_option("TEXT", tk->text, "the text (UTF-8; absent or '-': read stdin)");
  t->callback([tk, t] {
    tk->text_given = t->count("TEXT") > 0;
    run_tokenize(*tk);
  });

  auto dk = std::make_shared<DetokenizeOptions>();
  CLI::App* d = app.add_subcommand("detokenize", "Print the text of DeepSeek-V4 token ids");
  d->add_option("--tokenizer", dk->tokenizer,
                "tokenizer.json to use (default: the DeepSeek-V4 tokenizer shipped with dsv4)");
  d->add_flag("--skip-special", dk->skip_special, "leave out special tokens (BOS, EOS, ...)");
  d->add_option("-m,--model", dk->model,
                "use the tokenizer of this model (a GGUF file's tokenizer.ggml keys, or a "
                "checkpoint directory's tokenizer.json)");
  d->add_option("IDS", dk->ids, "token ids separated by commas or spaces (absent or '-': stdin)");
  d->callback([dk] { run_detokenize(*dk); });
}

}  // namespace dsv4::cli
