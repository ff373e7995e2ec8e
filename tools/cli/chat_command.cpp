// `dsv4 chat [-m MODEL] [--think none|high|max] [--system TEXT] [--tools FILE.json] [-n N]
// [--temp T] [--top-p P] [--seed S] [-t N] [--no-speculative]`: a conversation in DeepSeek-V4's
// chat format (text/chat.hpp), one user message per line of stdin. The model's reasoning (thinking
// modes) is shown apart from its answer. The KV cache continues across turns: each turn prefills
// only its own tokens (the reply's last token and end-of-sentence, the user message and the
// assistant prefix), the model state resuming at its last position. `/reset` starts a new
// conversation, `/exit` (or the end of stdin) quits. Works with stdin a pipe: each turn ends with
// a statistics line on stderr. A model with an MTP block drafts with it in every turn (MTP
// speculative decoding continues across turns); --no-speculative turns that off.
//
// --tools FILE.json (an OpenAI tool list, or an object with "tools") gives the model tools: their
// schemas go into the system message, the calls a reply makes are parsed from its DSML markup and
// shown one per line as `[tool call N] NAME ARGUMENTS-JSON`, and `/tool RESULT` lines give their
// results in call order; the next turn starts when every call has one (or at the next message).
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
#include <dsv4/io/json_parse.hpp>
#include <dsv4/model/generate.hpp>
#include <dsv4/text/chat.hpp>
#include <dsv4/text/chat_json.hpp>
#include <iostream>
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

struct ChatCliOptions {
  std::string model;
  std::string think = "none";
  std::string system;
  std::string tools;
  std::size_t n = 512;
  float temp = 0.8f;
  float top_p = 0.95f;
  std::int64_t seed = -1;
  bool no_speculative = false;
  BackendChoice backend;
};

/// The function schemas of a --tools file.
std::vector<std::string> read_tools(const std::string& path) {
  using Json = nlohmann::ordered_json;
  const Json doc = io::parse_json_text<InputError, Json>(read_text_file(path, "--tools"), path);
  if (doc.is_object() && doc.contains("tools")) return text::tools_from_json(doc["tools"], path);
  return text::tools_from_json(doc, path);
}

void run_chat(const ChatCliOptions& o) {
  const text::ReasoningMode mode = text::parse_reasoning_mode(o.think);
  const bool thinking = mode != text::ReasoningMode::non_think;
  const std::vector<std::string> tools =
      o.tools.empty() ? std::vector<std::string>{} : read_tools(o.tools);
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
  // MTP speculative decoding in every turn: one drafter for the conversation carries on from
  // where the last turn stopped.
  g.speculative = !o.no_speculative && m.model.config().n_mtp_layers > 0;
  MtpDrafter drafter;

  auto st = m.model.new_state();
  std::vector<std::int32_t> unfed;       // tokens of the conversation the model has not read yet
  std::vector<text::ChatMessage> said;   // the conversation the model has read (or is to read)
  std::vector<text::ChatMessage> added;  // messages of the next turn
  std::size_t calls_open = 0;            // tool calls of the last reply without a result yet
  std::size_t turn = 0;
  text::ChatOptions format;
  format.drop_thinking = false;
  const auto start_conversation = [&] {
    said.clear();
    added.clear();
    calls_open = 0;
    if (!o.system.empty() || !tools.empty()) {
      added.push_back(text::ChatMessage::of(text::Role::system, o.system));
      added.back().tools = tools;
    }
  };
  start_conversation();
  if (tty_in) {
    fmt::print(stderr, "dsv4 chat ({}{}): one message per line; {}/reset, /exit\n",
               text::reasoning_mode_name(mode),
               tools.empty() ? "" : fmt::format(", {} tools", tools.size()),
               tools.empty() ? "" : "/tool RESULT, ");
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
      drafter = MtpDrafter{};
      unfed.clear();
      turn = 0;
      start_conversation();
      fmt::print(stderr, "[conversation reset]\n");
      continue;
    }
    if (line.empty()) continue;
    if (line == "/tool" || line.starts_with("/tool ")) {
      if (calls_open == 0) {
        fmt::print(stderr, "[no tool call is waiting for a result]\n");
        continue;
      }
      const text::ChatMessage& asked = said.back();
      const std::size_t call = asked.tool_calls.size() - calls_open;
      text::ChatMessage result =
          text::ChatMessage::of(text::Role::tool, line.size() > 6 ? line.substr(6) : "");
      result.tool_call_id = asked.tool_calls[call].id;
      added.push_back(std::move(result));
      if (--calls_open > 0) continue;  // wait for the other results
    } else {
      added.push_back(text::ChatMessage::of(text::Role::user, line));
      calls_open = 0;
    }

    // The text this turn adds after what the model has read (the chat format continuing the
    // conversation, reasoning kept).
    const std::string prompt = text::build_prompt(added, said, mode, format);
    std::vector<std::int32_t> feed = unfed;
    tok.encode(prompt, feed);
    const std::int64_t resumed_at = st.next_pos;
    if (static_cast<std::int64_t>(feed.size()) + st.next_pos + 1 >= m.model.config().max_seq_len) {
      fmt::print(stderr, "[the conversation is longer than the context; use /reset]\n");
      added.clear();
      calls_open = 0;
      continue;
    }
    said.insert(said.end(), added.begin(), added.end());
    added.clear();
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
    const GenerateResult r = generate(m.model, st, std::span<const std::int32_t>(feed), g, drafter);
    prefill.finish();
    fmt::print("{}{}\n", stream.flush(), in_reasoning ? plain : "");
    std::fflush(stdout);

    // The reply as a message of the conversation, and the tool calls it makes.
    std::string reply = tok.decode(r.tokens);
    if (r.stop == StopReason::stop_token) reply += text::chat::eos_token;
    text::ChatMessage answer = text::ChatMessage::of(text::Role::assistant, "");
    if (tools.empty()) {
      const text::Completion c = text::split_completion(reply, mode);
      answer.reasoning = c.reasoning;
      answer.content = c.answer;
    } else {
      try {
        text::ParsedReply p = text::parse_completion(
            r.stop == StopReason::stop_token ? reply : reply + std::string(text::chat::eos_token),
            mode);
        answer.reasoning = std::move(p.reasoning);
        answer.content = std::move(p.content);
        answer.tool_calls = std::move(p.tool_calls);
      } catch (const InputError& e) {
        fmt::print(stderr, "[the reply's tool calls could not be read: {}]\n", e.what());
      }
      for (std::size_t i = 0; i < answer.tool_calls.size(); ++i) {
        text::ToolCall& c = answer.tool_calls[i];
        c.id = fmt::format("call_{}_{}", turn, i);
        fmt::print("[tool call {}] {} {}\n", i + 1, c.name, c.arguments);
      }
      calls_open = answer.tool_calls.size();
      if (calls_open > 0) {
        fmt::print(stderr, "[{} tool call{}: give each result with /tool RESULT]\n", calls_open,
                   calls_open == 1 ? "" : "s");
      }
    }
    said.push_back(std::move(answer));

    // What the model has not read yet: the reply's tokens after st.next_pos, and EOS (unless
    // a verified draft fed it).
    const auto fed =
        static_cast<std::size_t>(st.next_pos - resumed_at - static_cast<std::int64_t>(feed.size()));
    const std::size_t fed_of_reply = fed - (r.stop_token_fed ? 1 : 0);
    unfed.assign(r.tokens.begin() + static_cast<std::ptrdiff_t>(fed_of_reply), r.tokens.end());
    if (!r.stop_token_fed) unfed.push_back(eos);
    const std::string drafts =
        r.drafted == 0 ? std::string()
                       : fmt::format("; MTP acceptance {:.1f}% ({} of {} drafts)",
                                     100.0 * r.acceptance_rate(), r.accepted, r.drafted);
    fmt::print(stderr,
               "[turn {}: prefilled {} tokens at position {}; {} tokens, {:.1f} tokens/s{}; "
               "context {}]\n",
               turn, feed.size(), resumed_at, r.tokens.size(), r.gen_tps(), drafts,
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
  cmd->add_option("--tools", o->tools,
                  "tools the model may call: a JSON file with an OpenAI tool list (calls are "
                  "shown parsed; answer them with /tool RESULT)");
  cmd->add_option("-n,--n-predict", o->n, "tokens per reply at most")->capture_default_str();
  cmd->add_option("--temp", o->temp, "sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (default: a random one)");
  cmd->add_flag("--no-speculative", o->no_speculative,
                "decode one token per step instead of drafting with the MTP block");
  add_backend_options(cmd, o->backend);
  cmd->callback([o] { run_chat(*o); });
}

}  // namespace dsv4::cli
