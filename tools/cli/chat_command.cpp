// `dsv4 chat [-m MODEL] [--think none|high|max] [--system TEXT] [-n N] [--temp T] [--top-p P]
// [--seed S] [-t N]`: a conversation in DeepSeek-V4's chat format (text/chat.hpp), one user
// message per line of stdin. The model's reasoning (thinking modes) is shown apart from its
// answer. The KV cache continues across turns: each turn prefills only its own tokens (the
// reply's last token and end-of-sentence, the user message and the assistant prefix), the model
// state resuming at its last position. `/reset` starts a new conversation, `/exit` (or the end
// of stdin) quits. Works with stdin a pipe: each turn ends with a statistics line on stderr.
//
// The conversation keeps the reasoning of earlier turns in its context (what the model saw when
// it wrote them): the chat format with drop_thinking off, which is what lets the cache continue.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <dsv4/backend/reference.hpp>
#include <dsv4/core/check.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/text/chat.hpp>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend_choice.hpp"
#include "commands.hpp"
#include "model_files.hpp"

namespace dsv4::cli {
namespace {

struct ChatCliOptions {
  std::string model;
  std::string think = "none";
  std::string system;
  std::size_t n = 512;
  float temp = 0.8f;
  float top_p = 0.95f;
  std::int64_t seed = -1;
  BackendChoice backend;
};

void run_chat(const ChatCliOptions& o) {
  const text::ReasoningMode mode = text::parse_reasoning_mode(o.think);
  const bool thinking = mode != text::ReasoningMode::non_think;
  const auto m = open_model(model_path_or_default(o.model), o.backend);
  const text::Tokenizer& tok = m.tok.tokenizer;
  const text::TokenId eos = tok.special_id(text::chat::eos_token);
  const text::TokenId think_end = tok.special_id(text::chat::think_end_token);
  (void)tok.special_id(text::chat::user_token);
  (void)tok.special_id(text::chat::assistant_token);
  const bool tty_in = ::isatty(STDIN_FILENO) != 0;
  const bool tty_out = ::isatty(STDOUT_FILENO) != 0;

  GenerateOptions g;
  g.max_new_tokens = o.n;
  g.sampling.temperature = o.temp;
  g.sampling.top_p = o.top_p;
  g.sampling.seed = o.seed >= 0 ? static_cast<std::uint64_t>(o.seed) : std::random_device{}();
  g.stop_tokens = {eos};
  g.prefill_chunk = 64;

  auto st = m.model.new_state();
  std::vector<std::int32_t> unfed;  // tokens of the conversation the model has not read yet
  std::size_t turn = 0;
  if (tty_in) {
    fmt::print(stderr, "dsv4 chat ({}): one message per line; /reset, /exit\n",
               text::reasoning_mode_name(mode));
  }
  for (std::string line;;) {
    if (tty_in) {
      fmt::print(stderr, "> ");
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      st = m.model.new_state();
      unfed.clear();
      turn = 0;
      fmt::print(stderr, "[conversation reset]\n");
      continue;
    }
    if (line.empty()) continue;

    // The text this turn adds: the whole prompt for the first turn, else the user message and the
    // assistant prefix after the last reply (build_prompt with drop_thinking off, turn by turn).
    std::string added;
    if (st.next_pos == 0 && unfed.empty()) {
      std::vector<text::ChatMessage> msgs;
      if (!o.system.empty()) msgs.push_back({text::Role::system, o.system, ""});
      msgs.push_back({text::Role::user, line, ""});
      added = text::build_prompt(msgs, mode, {true, false});
    } else {
      added = std::string(text::chat::user_token) + line +
              std::string(text::chat::assistant_token) +
              std::string(thinking ? text::chat::think_start_token : text::chat::think_end_token);
    }
    std::vector<std::int32_t> feed = unfed;
    tok.encode(added, feed);
    const std::int64_t resumed_at = st.next_pos;
    if (static_cast<std::int64_t>(feed.size()) + st.next_pos + 1 >= m.model.config().max_seq_len) {
      fmt::print(stderr, "[the conversation is longer than the context; use /reset]\n");
      continue;
    }
    ++turn;

    // Stream: reasoning first (thinking modes), then the answer.
    Utf8Stream stream;
    bool in_reasoning = thinking;
    const char* dim = tty_out ? "\033[2m" : "";
    const char* plain = tty_out ? "\033[0m" : "";
    if (in_reasoning) fmt::print("{}[reasoning]\n", dim);
    Progress prefill("prefill", "tokens");
    g.on_prefill = [&](std::size_t done, std::size_t total) { prefill.update(done, total); };
    g.on_token = [&](std::int32_t t) {
      prefill.finish();
      if (in_reasoning && t == think_end) {
        fmt::print("{}{}\n[answer]\n", stream.flush(), plain);
        in_reasoning = false;
      } else {
        fmt::print("{}", stream.push(tok.decoded_bytes(t)));
      }
      std::fflush(stdout);
    };
    const GenerateResult r = generate(m.model, st, std::span<const std::int32_t>(feed), g);
    prefill.finish();
    fmt::print("{}{}\n", stream.flush(), in_reasoning ? plain : "");
    std::fflush(stdout);

    // What the model has not read yet: the reply's tokens after st.next_pos, and EOS.
    const auto fed_of_reply =
        static_cast<std::size_t>(st.next_pos - resumed_at - static_cast<std::int64_t>(feed.size()));
    unfed.assign(r.tokens.begin() + static_cast<std::ptrdiff_t>(fed_of_reply), r.tokens.end());
    unfed.push_back(eos);
    fmt::print(stderr,
               "[turn {}: prefilled {} tokens at position {}; {} tokens, {:.1f} tokens/s; "
               "context {}]\n",
               turn, feed.size(), resumed_at, r.tokens.size(), r.gen_tps(),
               st.next_pos + static_cast<std::int64_t>(unfed.size()));
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Talk with a model in DeepSeek-V4's chat format (one message per line of stdin)");
  cmd->add_option("-m,--model", o->model,
                  "a deepseek4 GGUF file or a checkpoint directory (default: the embedded model)");
  cmd->add_option("--think", o->think, "reasoning: none, high or max")->capture_default_str();
  cmd->add_option("--system", o->system, "a system prompt");
  cmd->add_option("-n,--n-predict", o->n, "tokens per reply at most")->capture_default_str();
  cmd->add_option("--temp", o->temp, "sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (default: a random one)");
  add_backend_options(cmd, o->backend);
  cmd->callback([o] { run_chat(*o); });
}

}  // namespace dsv4::cli
