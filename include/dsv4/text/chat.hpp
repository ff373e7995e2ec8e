// The DeepSeek-V4 chat format: the prompt text for a conversation in one of the three reasoning
// modes, and the split of generated text into reasoning and answer.
//
// Spec: spec/architecture.md, "Chat encoding (encoding_dsv4.py)". Reference: encode_messages and
// parse_message_from_completion_text in the release's encoding/encoding_dsv4.py, which this
// header equals on every conversation it renders (tests/unit/chat_format_test.cpp): the roles
// system, developer, user, assistant, tool and latest_reminder; reasoning kept or dropped; the
// Think Max preamble; tool schemas in the system or developer message, tool calls in DSML markup,
// tool results folded into user turns in the order of the calls; response formats; the
// quick-instruction tasks; unfinished assistant replies; continuation of an encoded context.
// Reading conversations from OpenAI-style JSON: text/chat_json.hpp.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/text/json_text.hpp"

namespace dsv4::text {

/// The three reasoning modes of the model card: Non-think answers at once (the prompt closes the
/// thinking block), Think High reasons first, Think Max reasons first after an instruction to be
/// exhaustive.
enum class ReasoningMode { non_think, think_high, think_max };

/// "non-think", "think-high" or "think-max" (also "chat", "thinking", "high", "max").
inline ReasoningMode parse_reasoning_mode(std::string_view name) {
  if (name == "non-think" || name == "chat" || name == "none") return ReasoningMode::non_think;
  if (name == "think-high" || name == "thinking" || name == "high")
    return ReasoningMode::think_high;
  if (name == "think-max" || name == "max") return ReasoningMode::think_max;
  throw InputError(fmt::format(
      "unknown reasoning mode '{}': expected non-think, think-high or think-max", name));
}

inline std::string_view reasoning_mode_name(ReasoningMode m) noexcept {
  switch (m) {
    case ReasoningMode::non_think:
      return "non-think";
    case ReasoningMode::think_high:
      return "think-high";
    case ReasoningMode::think_max:
      return "think-max";
  }
  return "?";
}

namespace chat {

inline constexpr std::string_view bos_token = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view eos_token = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view user_token = "<｜User｜>";
inline constexpr std::string_view assistant_token = "<｜Assistant｜>";
inline constexpr std::string_view latest_reminder_token = "<｜latest_reminder｜>";
inline constexpr std::string_view think_start_token = "<think>";
inline constexpr std::string_view think_end_token = "</think>";
inline constexpr std::string_view dsml_token = "｜DSML｜";
/// What opens the tool calls of a reply (after its text; then ">\n") and what closes them.
inline constexpr std::string_view tool_calls_start = "\n\n<｜DSML｜tool_calls";
inline constexpr std::string_view tool_calls_end = "</｜DSML｜tool_calls>";

/// The instruction that Think Max puts before everything else (after BOS).
inline constexpr std::string_view reasoning_effort_max =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n";

/// The section that a system or developer message with tools gets after its text (and a blank
/// line); the schemas, one JSON object per line, go between `tools_head` and `tools_tail`.
inline constexpr std::string_view tools_head =
    "## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke tools "
    "by writing a \"<｜DSML｜tool_calls>\" block like the following:\n\n"
    "<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE"
    "</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other types "
    "(numbers, booleans, arrays, objects), pass the value in JSON format and set "
    "`string=\"false\"`.\n\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning "
    "inside <think>...</think> BEFORE any tool calls or final response.\n\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n";
inline constexpr std::string_view tools_tail =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke "
    "tool calls.\n";

/// What a system or developer message with a response format gets after its text (and a blank
/// line), followed by the schema as JSON.
inline constexpr std::string_view response_format_head =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

}  // namespace chat

enum class Role { system, developer, user, assistant, tool, latest_reminder };

/// The quick-instruction tasks: a user message with a task asks for a short classification or
/// extraction instead of a reply; its task token ends the prompt.
enum class Task { action, query, authority, domain, title, read_url };

inline std::string_view role_name(Role r) noexcept {
  switch (r) {
    case Role::system:
      return "system";
    case Role::developer:
      return "developer";
    case Role::user:
      return "user";
    case Role::assistant:
      return "assistant";
    case Role::tool:
      return "tool";
    case Role::latest_reminder:
      return "latest_reminder";
  }
  return "?";
}

inline Role parse_role(std::string_view name) {
  for (const Role r : {Role::system, Role::developer, Role::user, Role::assistant, Role::tool,
                       Role::latest_reminder}) {
    if (name == role_name(r)) return r;
  }
  throw InputError(
      fmt::format("unknown chat role '{}': expected system, developer, user, assistant, tool or "
                  "latest_reminder",
                  name));
}

inline std::string_view task_name(Task t) noexcept {
  switch (t) {
    case Task::action:
      return "action";
    case Task::query:
      return "query";
    case Task::authority:
      return "authority";
    case Task::domain:
      return "domain";
    case Task::title:
      return "title";
    case Task::read_url:
      return "read_url";
  }
  return "?";
}

/// The special token of a task: <｜action｜>, <｜query｜>, ...
inline std::string task_token(Task t) { return fmt::format("<｜{}｜>", task_name(t)); }

inline Task parse_task(std::string_view name) {
  for (const Task t :
       {Task::action, Task::query, Task::authority, Task::domain, Task::title, Task::read_url}) {
    if (name == task_name(t)) return t;
  }
  throw InputError(fmt::format(
      "unknown task '{}': expected action, query, authority, domain, title or read_url", name));
}

/// One call of a tool. `arguments` is the JSON text of an object (OpenAI's form); text that is
/// not JSON is passed on as one string parameter named "arguments", as the official encoder does.
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

/// One message. `reasoning` is an assistant turn's reasoning content (thinking modes only).
struct ChatMessage {
  Role role = Role::user;
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;  // assistant: the calls it made
  std::string tool_call_id;          // tool: the call this is the result of
  std::vector<std::string> tools;    // system, developer: each tool's function schema (JSON)
  std::string response_format;       // system, developer: a schema the reply must follow (JSON)
  std::optional<Task> task;          // a quick-instruction task (user, usually)
  bool wo_eos = false;               // assistant: a reply still being written (no EOS)

  static ChatMessage of(Role role, std::string content, std::string reasoning = {}) {
    ChatMessage m;
    m.role = role;
    m.content = std::move(content);
    m.reasoning = std::move(reasoning);
    return m;
  }
};

struct ChatOptions {
  bool add_bos = true;
  /// Thinking modes: drop the reasoning of assistant turns before the last user message (the
  /// reference default), and developer messages before it. When false, or when any message
  /// defines tools, every assistant turn keeps its reasoning and every user turn opens a
  /// thinking block.
  bool drop_thinking = true;
};

namespace detail_chat {

/// A message after tool results are folded into user turns: a user turn is a list of parts,
/// text or tool results.
struct Part {
  bool tool_result = false;
  std::string text;
  std::string call_id;
};
struct Turn {
  ChatMessage msg;
  std::vector<Part> parts;  // user turns
  bool reasoning_dropped = false;
};

/// Tool messages become user turns of tool results (consecutive ones one turn); a user message
/// right after a user turn without a task joins it.
inline std::vector<Turn> fold_tool_results(std::span<const ChatMessage> messages) {
  std::vector<Turn> out;
  out.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    const bool after_user = !out.empty() && out.back().msg.role == Role::user;
    if (m.role == Role::tool) {
      Part p{true, m.content, m.tool_call_id};
      if (after_user) {
        out.back().parts.push_back(std::move(p));
      } else {
        Turn t;
        t.msg.role = Role::user;
        t.parts.push_back(std::move(p));
        out.push_back(std::move(t));
      }
    } else if (m.role == Role::user) {
      Part p{false, m.content, {}};
      if (after_user && !out.back().msg.task) {
        out.back().parts.push_back(std::move(p));
      } else {
        Turn t;
        t.msg = m;
        t.parts.push_back(std::move(p));
        out.push_back(std::move(t));
      }
    } else {
      out.push_back(Turn{m, {}, false});
    }
  }
  return out;
}

/// The tool results of each user turn in the order of the calls of the last assistant turn
/// with calls before it (results whose call is unknown count as the first call; ties keep their
/// order).
inline void order_tool_results(std::vector<Turn>& turns) {
  std::vector<std::pair<std::string, std::size_t>> order;  // call id -> position
  for (Turn& t : turns) {
    if (t.msg.role == Role::assistant && !t.msg.tool_calls.empty()) {
      order.clear();
      for (std::size_t i = 0; i < t.msg.tool_calls.size(); ++i) {
        const std::string& id = t.msg.tool_calls[i].id;
        if (id.empty()) continue;
        const auto it =
            std::find_if(order.begin(), order.end(), [&](const auto& e) { return e.first == id; });
        if (it != order.end()) {
          it->second = i;
        } else {
          order.emplace_back(id, i);
        }
      }
    } else if (t.msg.role == Role::user && !order.empty()) {
      std::vector<Part> results;
      for (const Part& p : t.parts) {
        if (p.tool_result) results.push_back(p);
      }
      if (results.size() < 2) continue;
      const auto rank = [&](const Part& p) {
        const auto it = std::find_if(order.begin(), order.end(),
                                     [&](const auto& e) { return e.first == p.call_id; });
        return it == order.end() ? std::size_t{0} : it->second;
      };
      std::stable_sort(results.begin(), results.end(),
                       [&](const Part& a, const Part& b) { return rank(a) < rank(b); });
      std::size_t next = 0;
      for (Part& p : t.parts) {
        if (p.tool_result) p = std::move(results[next++]);
      }
    }
  }
}

inline std::ptrdiff_t last_user_turn(std::span<const Turn> turns) {
  for (std::size_t i = turns.size(); i-- > 0;) {
    const Role r = turns[i].msg.role;
    if (r == Role::user || r == Role::developer) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

/// Before the last user (or developer) turn: assistant turns lose their reasoning and
/// developer turns are left out.
inline std::vector<Turn> drop_old_thinking(std::span<const Turn> turns) {
  const std::ptrdiff_t last = last_user_turn(turns);
  std::vector<Turn> out;
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const Turn& t = turns[i];
    if (static_cast<std::ptrdiff_t>(i) >= last || t.msg.role != Role::developer) {
      out.push_back(t);
      if (static_cast<std::ptrdiff_t>(i) < last && t.msg.role == Role::assistant) {
        out.back().msg.reasoning.clear();
      }
    }
  }
  return out;
}

template <class Json = nlohmann::ordered_json>
Json parse_embedded_json(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception&) {
    throw InputError(fmt::format("{} is not valid JSON: '{}'", what,
                                 text.substr(0, std::min<std::size_t>(text.size(), 80))));
  }
}

/// "\n\n## Tools ..." (or "## Response Format ...") after a system or developer message's text.
inline void append_tools_and_format(std::string& out, const ChatMessage& m) {
  if (!m.tools.empty()) {
    out += "\n\n";
    out += chat::tools_head;
    for (std::size_t i = 0; i < m.tools.size(); ++i) {
      if (i > 0) out += '\n';
      out += python_json(parse_embedded_json(m.tools[i], "a tool schema"));
    }
    out += chat::tools_tail;
  }
  if (!m.response_format.empty()) {
    out += "\n\n";
    out += chat::response_format_head;
    out += python_json(parse_embedded_json(m.response_format, "a response format"));
  }
}

/// The DSML parameters of a call: string values as they are, the others as JSON.
inline std::string call_parameters(const ToolCall& call) {
  nlohmann::ordered_json args;
  try {
    args = nlohmann::ordered_json::parse(call.arguments);
  } catch (const nlohmann::json::exception&) {
    args = nlohmann::ordered_json::object({{"arguments", call.arguments}});
  }
  DSV4_CHECK(args.is_object(), InputError,
             "the arguments of a call of tool '{}' are not a JSON object: '{}'", call.name,
             call.arguments.substr(0, 80));
  std::string out;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!out.empty()) out += '\n';
    const bool is_string = it.value().is_string();
    out += fmt::format("<{}parameter name=\"{}\" string=\"{}\">", chat::dsml_token, it.key(),
                       is_string ? "true" : "false");
    out += is_string ? it.value().template get_ref<const std::string&>() : python_json(it.value());
    out += fmt::format("</{}parameter>", chat::dsml_token);
  }
  return out;
}

inline std::string render_turn(std::span<const Turn> turns, std::size_t index, bool thinking,
                               bool drop, bool max_effort) {
  using namespace chat;
  const ChatMessage& m = turns[index].msg;
  const std::ptrdiff_t last_user = last_user_turn(turns);
  const auto idx = static_cast<std::ptrdiff_t>(index);
  std::string out;
  if (index == 0 && thinking && max_effort) out += reasoning_effort_max;
  switch (m.role) {
    case Role::system:
      out += m.content;
      append_tools_and_format(out, m);
      break;
    case Role::developer:
      DSV4_CHECK(!m.content.empty(), InputError, "a developer message needs a content");
      out += user_token;
      out += m.content;
      append_tools_and_format(out, m);
      break;
    case Role::user:
      out += user_token;
      for (std::size_t i = 0; i < turns[index].parts.size(); ++i) {
        const Part& p = turns[index].parts[i];
        if (i > 0) out += "\n\n";
        if (p.tool_result) out += "<tool_result>";
        out += p.text;
        if (p.tool_result) out += "</tool_result>";
      }
      break;
    case Role::latest_reminder:
      out += latest_reminder_token;
      out += m.content;
      break;
    case Role::tool:  // folded into user turns before rendering
      break;
    case Role::assistant: {
      // A task's answer carries no thinking block; in a thinking mode the turns after the last
      // user turn (or all of them when reasoning is kept) carry their reasoning, closed by
      // </think>, the others none (their </think> follows the assistant prefix).
      const bool answers_task = index > 0 && turns[index - 1].msg.task.has_value();
      if (thinking && !answers_task && (!drop || idx > last_user)) {
        out += m.reasoning;
        out += think_end_token;
      }
      out += m.content;
      if (!m.tool_calls.empty()) {
        out += "\n\n<";
        out += dsml_token;
        out += "tool_calls>\n";
        for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
          const ToolCall& c = m.tool_calls[i];
          if (i > 0) out += '\n';
          out += fmt::format("<{}invoke name=\"{}\">\n{}\n</{}invoke>", dsml_token, c.name,
                             call_parameters(c), dsml_token);
        }
        out += '\n';
        out += tool_calls_end;
      }
      if (!m.wo_eos) out += eos_token;
      break;
    }
  }
  // What comes next: nothing when another turn follows that is not an assistant or reminder
  // turn, else the task token or the assistant prefix and thinking marker.
  if (index + 1 < turns.size() && turns[index + 1].msg.role != Role::assistant &&
      turns[index + 1].msg.role != Role::latest_reminder) {
    return out;
  }
  if (m.task) {
    if (*m.task == Task::action) {
      out += assistant_token;
      out += thinking ? think_start_token : think_end_token;
    }
    out += task_token(*m.task);
  } else if (m.role == Role::user || m.role == Role::developer) {
    out += assistant_token;
    out += thinking && (!drop || idx >= last_user) ? think_start_token : think_end_token;
  }
  return out;
}

inline bool defines_tools(std::span<const Turn> turns) {
  return std::any_of(turns.begin(), turns.end(),
                     [](const Turn& t) { return !t.msg.tools.empty(); });
}

}  // namespace detail_chat

/// The prompt text that continues `context` (a conversation already encoded, e.g. in a model's
/// KV cache) with `messages`. An empty context starts a conversation (with BOS when
/// options.add_bos). When the messages end with a user (or developer) message the text ends
/// with the assistant prefix and the thinking marker, ready for generation.
inline std::string build_prompt(std::span<const ChatMessage> messages,
                                std::span<const ChatMessage> context, ReasoningMode mode,
                                const ChatOptions& options = {}) {
  using namespace detail_chat;
  std::vector<Turn> ctx = fold_tool_results(context);
  std::vector<Turn> full = ctx;
  {
    std::vector<Turn> added = fold_tool_results(messages);
    full.insert(full.end(), std::make_move_iterator(added.begin()),
                std::make_move_iterator(added.end()));
  }
  order_tool_results(full);
  const bool thinking = mode != ReasoningMode::non_think;
  const bool drop = options.drop_thinking && !defines_tools(full);
  std::size_t first = ctx.size();
  if (thinking && drop) {
    full = drop_old_thinking(full);
    first = drop_old_thinking(ctx).size();
  }
  std::string prompt = options.add_bos && context.empty() ? std::string(chat::bos_token) : "";
  for (std::size_t i = first; i < full.size(); ++i) {
    prompt += render_turn(full, i, thinking, drop, mode == ReasoningMode::think_max);
  }
  return prompt;
}

/// The prompt text of the conversation `messages`.
inline std::string build_prompt(std::span<const ChatMessage> messages, ReasoningMode mode,
                                const ChatOptions& options = {}) {
  return build_prompt(messages, {}, mode, options);
}

/// Generated text split into its parts, for text still being generated.
struct Completion {
  std::string reasoning;        // thinking modes: the text before </think>
  std::string answer;           // the text after it (all of it in Non-think), up to EOS or calls
  bool reasoning_done = false;  // </think> was generated (always true in Non-think)
  bool calls_started = false;   // the tool-call block has begun
  bool finished = false;        // EOS was generated
};

/// Splits text generated after a prompt of build_prompt in `mode` (the prompt's closing thinking
/// marker is not part of it). Text that is still reasoning (no </think> yet) is all reasoning.
/// The answer stops where tool calls begin (parse_completion reads them).
inline Completion split_completion(std::string_view text, ReasoningMode mode) {
  using namespace chat;
  Completion c;
  if (mode == ReasoningMode::non_think) {
    c.reasoning_done = true;
  } else {
    const auto end = text.find(think_end_token);
    if (end == std::string_view::npos) {
      c.reasoning = std::string(text);
      return c;
    }
    c.reasoning = std::string(text.substr(0, end));
    c.reasoning_done = true;
    text.remove_prefix(end + think_end_token.size());
  }
  const auto eos = text.find(eos_token);
  c.finished = eos != std::string_view::npos;
  const auto calls = text.substr(0, eos).find(tool_calls_start);
  c.calls_started = calls != std::string_view::npos;
  c.answer = std::string(text.substr(0, c.calls_started ? calls : eos));
  return c;
}

/// A complete reply: its reasoning, its text and the tool calls it made (arguments as the JSON
/// text of an object: string parameters as JSON strings, the others as written).
struct ParsedReply {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;
};

namespace detail_chat {

/// The text from `pos` to the first of `stops` (all of it when none occurs); `pos` moves past
/// the stop. Returns the index of the stop found, or -1.
inline int read_until(std::string_view text, std::size_t& pos, std::string& out,
                      std::initializer_list<std::string_view> stops) {
  std::size_t best = text.size();
  int which = -1;
  int i = 0;
  for (const std::string_view s : stops) {
    const std::size_t at = text.find(s, pos);
    if (at != std::string_view::npos && at < best) {
      best = at;
      which = i;
    }
    ++i;
  }
  out.assign(text.substr(pos, best - pos));
  pos = which < 0 ? text.size() : best + std::data(stops)[which].size();
  return which;
}

[[noreturn]] inline void bad_reply(std::string_view what) {
  throw InputError(fmt::format("generated text is not a well-formed reply: {}", what));
}

inline std::string quoted(std::string_view s) {
  return python_json_string(s.substr(0, std::min<std::size_t>(s.size(), 80)));
}

/// `text` with a trailing `tail`, or with `tail` and one newline (a `$` in a Python regular
/// expression): what precedes it, or nullopt.
inline std::optional<std::string_view> before_tail(std::string_view text, std::string_view tail) {
  for (const std::string_view end : {std::string_view("\n"), std::string_view()}) {
    if (text.size() >= tail.size() + end.size() && text.ends_with(end) &&
        text.substr(0, text.size() - end.size()).ends_with(tail)) {
      return text.substr(0, text.size() - end.size() - tail.size());
    }
  }
  return std::nullopt;
}

/// ` name="X">\n` after "<｜DSML｜invoke": X.
inline std::string invoke_name(std::string_view s) {
  const std::string_view whole = s;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  const auto name = s.starts_with("name=\"") ? before_tail(s.substr(6), "\">\n") : std::nullopt;
  if (!name) bad_reply(fmt::format("tool name format error: {}", quoted(whole)));
  return std::string(*name);
}

/// ` name="K" string="true|false">V<` before "/｜DSML｜parameter": K, V and the flag.
struct Param {
  std::string name, value;
  bool is_string;
};
inline Param parameter(std::string_view s) {
  const std::string_view whole = s;
  if (s.starts_with(" name=\"")) {
    s.remove_prefix(7);
    for (std::size_t at = 0; (at = s.find("\" string=\"", at)) != std::string_view::npos; ++at) {
      const std::string_view rest = s.substr(at + 10);
      for (const std::string_view flag : {std::string_view("true"), std::string_view("false")}) {
        if (!rest.starts_with(flag) || rest.substr(flag.size()).substr(0, 2) != "\">") continue;
        if (const auto value = before_tail(rest.substr(flag.size() + 2), "<")) {
          return {std::string(s.substr(0, at)), std::string(*value), flag == "true"};
        }
      }
    }
  }
  bad_reply(fmt::format("parameter format error: {}", quoted(whole)));
}

}  // namespace detail_chat

/// Reads a complete reply generated after a prompt of build_prompt in `mode` (up to and with
/// its EOS, which may be missing after tool calls), as the official parser does; malformed text
/// is an InputError that names what is wrong.
inline ParsedReply parse_completion(std::string_view text, ReasoningMode mode) {
  using namespace chat;
  using detail_chat::bad_reply;
  using detail_chat::read_until;
  ParsedReply r;
  std::size_t pos = 0;
  std::string piece;
  if (mode != ReasoningMode::non_think) {
    if (read_until(text, pos, r.reasoning, {think_end_token, tool_calls_start}) != 0) {
      bad_reply("the reasoning is not closed by </think>");
    }
  }
  const int stop = read_until(text, pos, r.content, {eos_token, tool_calls_start});
  if (stop < 0) bad_reply("no end-of-sentence token");
  if (stop == 1) {
    const std::string invoke = fmt::format("<{}invoke", dsml_token);
    const std::string invoke_end = fmt::format("</{}invoke", dsml_token);
    const std::string param = fmt::format("<{}parameter", dsml_token);
    const std::string param_end = fmt::format("/{}parameter", dsml_token);
    int s = -1;
    while (pos < text.size()) {
      s = read_until(text, pos, piece, {invoke, tool_calls_end});
      if (piece != ">\n") {
        bad_reply(
            fmt::format("expected '>\\n' in the tool calls, found {}", detail_chat::quoted(piece)));
      }
      if (s == 1) break;
      if (s < 0) bad_reply("the tool calls are not closed");
      s = read_until(text, pos, piece, {param, invoke_end});
      ToolCall call;
      call.name = detail_chat::invoke_name(piece);
      std::string args;
      std::vector<std::string> seen;
      while (s == 0) {
        read_until(text, pos, piece, {param_end});
        detail_chat::Param p = detail_chat::parameter(piece);
        if (std::find(seen.begin(), seen.end(), p.name) != seen.end()) {
          bad_reply(fmt::format("parameter '{}' given twice", p.name));
        }
        seen.push_back(p.name);
        if (!args.empty()) args += ", ";
        args += python_json_string(p.name);
        args += ": ";
        args += p.is_string ? python_json_string(p.value) : p.value;
        s = read_until(text, pos, piece, {param, invoke_end});
        if (piece != ">\n") {
          bad_reply(fmt::format("expected '>\\n' after a parameter, found {}",
                                detail_chat::quoted(piece)));
        }
      }
      call.arguments = "{" + args + "}";
      r.tool_calls.push_back(std::move(call));
    }
    read_until(text, pos, piece, {eos_token});
    if (!piece.empty()) bad_reply("text after the tool calls");
  }
  if (pos != text.size()) bad_reply("text after the end-of-sentence token");
  for (const std::string_view special :
       {bos_token, eos_token, think_start_token, think_end_token, dsml_token}) {
    if (r.content.find(special) != std::string::npos ||
        r.reasoning.find(special) != std::string::npos) {
      bad_reply(fmt::format("special token '{}' inside the text", special));
    }
  }
  return r;
}

}  // namespace dsv4::text
