// `dsv4 tokenize [-m MODEL | --tokenizer FILE] [--chat MODE|FILE.json] [--system TEXT] [--render]
// [TEXT|-]`: the token ids of TEXT, comma-separated; with --chat, of the chat prompt that asks
// TEXT in a reasoning mode, or of a whole conversation given as JSON (text/chat_json.hpp: a list
// of OpenAI-style messages or a request object with tools, tool calls and results, developer
// messages, tasks...) — as TEXT or stdin when it starts with '[' or '{', or as the file named by
// --chat (its mode then comes from the request's thinking_mode / reasoning_effort, else
// non-think). --render prints the prompt text instead of the ids. `dsv4 detokenize IDS`: the text
// of comma- or space-separated ids (text/tokenizer.hpp, text/chat.hpp).
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
#include <dsv4/text/chat_json.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <filesystem>
#include <memory>
#include <optional>
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
  bool render = false;
};

bool is_mode_name(const std::string& s) {
  try {
    (void)text::parse_reasoning_mode(s);
    return true;
  } catch (const InputError&) {
    return false;
  }
}

/// The prompt text of `--chat`: a question in a mode, or a JSON conversation.
std::string chat_prompt(const TokenizeOptions& o) {
  std::optional<text::ReasoningMode> mode;
  std::string body;
  std::string what;
  if (is_mode_name(o.chat)) {
    mode = text::parse_reasoning_mode(o.chat);
    body = text_or_stdin(o.text, o.text_given);
    what = o.text_given && o.text != "-" ? "TEXT" : "stdin";
  } else {
    std::error_code ec;
    DSV4_CHECK(fs::is_regular_file(o.chat, ec), InputError,
               "--chat '{}' is neither a reasoning mode (expected non-think, think-high or "
               "think-max) nor a JSON conversation file",
               o.chat);
    DSV4_CHECK(!o.text_given, InputError, "TEXT and a conversation file (--chat {}) are exclusive",
               o.chat);
    body = read_text_file(o.chat, "--chat");
    what = o.chat;
  }
  const auto first = body.find_first_not_of(" \t\r\n");
  const bool json = first != std::string::npos && (body[first] == '[' || body[first] == '{');
  if (!json) {
    DSV4_CHECK(mode.has_value(), InputError, "{}: expected a JSON conversation", what);
    std::vector<text::ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back(text::ChatMessage::of(text::Role::system, o.system));
    msgs.push_back(text::ChatMessage::of(text::Role::user, body));
    return text::build_prompt(msgs, *mode);
  }
  DSV4_CHECK(o.system.empty(), InputError,
             "--system applies to a TEXT question; a JSON conversation has its own system "
             "message");
  const text::ChatRequest req = text::parse_chat_request(body, what);
  return text::build_prompt(req.messages, req.context,
                            mode.value_or(req.mode.value_or(text::ReasoningMode::non_think)),
                            req.options);
}

struct DetokenizeOptions {
  std::string tokenizer;
  std::string model;
  std::vector<std::string> ids;
  bool skip_special = false;
};

void run_tokenize(const TokenizeOptions& o) {
  std::string input;
  if (!o.chat.empty()) {
    input = chat_prompt(o);
  } else {
    DSV4_CHECK(o.system.empty(), InputError, "--system needs --chat MODE");
    DSV4_CHECK(!o.render, InputError, "--render needs --chat");
    input = text_or_stdin(o.text, o.text_given);
  }
  if (o.render) {
    fmt::print("{}", input);
    return;
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
                "tokenize a chat prompt: MODE (non-think, think-high or think-max) asks TEXT, or "
                "renders TEXT when it is a JSON conversation; FILE.json renders that "
                "conversation");
  t->add_flag("--render", tk->render, "print the --chat prompt's text instead of its token ids");
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
