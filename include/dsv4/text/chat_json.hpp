// Conversations in the JSON form of OpenAI's chat API (what the official encoder takes): a list
// of messages, or a request object with "messages" and optionally "tools", "context",
// "thinking_mode" ("chat" / "thinking"), "reasoning_effort" ("high" / "max"), "drop_thinking" and
// "add_default_bos_token". Every message field the V4 chat format uses is read:
//
//   {"role": "system" | "developer" | "user" | "assistant" | "tool" | "latest_reminder",
//    "content": "..." | null | [{"type": "text", "text": "..."}, ...],
//    "reasoning_content": "...",                                   (assistant)
//    "tool_calls": [{"id": "...", "type": "function",
//                    "function": {"name": "...", "arguments": "{...}"}}],   (assistant)
//    "tool_call_id": "...",                                        (tool)
//    "tools": [{"type": "function", "function": {...}}],           (system, developer)
//    "response_format": {...},                                     (system, developer)
//    "task": "action" | "query" | "authority" | "domain" | "title" | "read_url",
//    "wo_eos": true}                                               (assistant)
//
// Content given as a list of parts is joined by blank lines, parts that are not text becoming
// "[Unsupported TYPE]" (the official encoder's rendering of tool results). Tool-call arguments
// given as a JSON object instead of a string are rendered as the official encoder renders them:
// one parameter named "arguments". Request-level "tools" go to the first message when it is a
// system message, else to a new, empty system message in front. Anything else is an InputError
// naming the message and field.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/io/json_parse.hpp"
#include "dsv4/text/chat.hpp"
#include "dsv4/text/json_text.hpp"

namespace dsv4::text {

/// A conversation read from JSON and how the request asks to render it.
struct ChatRequest {
  std::vector<ChatMessage> messages;
  std::vector<ChatMessage> context;   // already encoded (build_prompt continues it)
  std::optional<ReasoningMode> mode;  // from thinking_mode and reasoning_effort, when given
  ChatOptions options;
};

namespace detail_chat_json {

using Json = nlohmann::ordered_json;

inline const Json* field(const Json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline std::string string_field(const Json& obj, const char* key, std::string_view where) {
  const Json* v = field(obj, key);
  if (v == nullptr) return {};
  DSV4_CHECK(v->is_string(), InputError, "{}: \"{}\" must be a string, not {}", where, key,
             v->type_name());
  return v->get<std::string>();
}

/// A string, or a list of parts joined by blank lines.
inline std::string content_of(const Json& msg, std::string_view where) {
  const Json* v = field(msg, "content");
  if (v == nullptr) return {};
  if (v->is_string()) return v->get<std::string>();
  DSV4_CHECK(v->is_array(), InputError,
             "{}: \"content\" must be a string or a list of parts, not {}", where, v->type_name());
  std::string out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const Json& part = (*v)[i];
    DSV4_CHECK(part.is_object(), InputError, "{}: content part {} is not an object", where, i);
    if (i > 0) out += "\n\n";
    const std::string type = string_field(part, "type", where);
    if (type == "text") {
      out += string_field(part, "text", where);
    } else {
      out += fmt::format("[Unsupported {}]", type.empty() ? "None" : type);
    }
  }
  return out;
}

}  // namespace detail_chat_json

/// The function schemas (JSON text) of an OpenAI tool list: [{"type": "function", "function":
/// {...}}, ...]. A bare schema (an object with a "name") is taken as it is.
inline std::vector<std::string> tools_from_json(const nlohmann::ordered_json& list,
                                                std::string_view where) {
  DSV4_CHECK(list.is_array(), InputError, "{}: \"tools\" must be a list, not {}", where,
             list.type_name());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& t = list[i];
    const auto* fn = t.is_object() ? detail_chat_json::field(t, "function") : nullptr;
    if (fn == nullptr && t.is_object() && t.contains("name")) fn = &t;
    DSV4_CHECK(fn != nullptr && fn->is_object(), InputError,
               "{}: tool {} has no \"function\" object (expected {{\"type\": \"function\", "
               "\"function\": {{\"name\": ..., \"parameters\": ...}}}})",
               where, i);
    out.push_back(fn->dump());
  }
  return out;
}

/// The messages of a JSON list.
inline std::vector<ChatMessage> chat_messages_from_json(const nlohmann::ordered_json& list,
                                                        std::string_view what) {
  using detail_chat_json::field;
  using detail_chat_json::Json;
  using detail_chat_json::string_field;
  DSV4_CHECK(list.is_array(), InputError, "{}: the messages must be a list, not {}", what,
             list.type_name());
  std::vector<ChatMessage> out;
  out.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& j = list[i];
    const std::string where = fmt::format("{}: message {}", what, i);
    DSV4_CHECK(j.is_object(), InputError, "{} is not an object", where);
    DSV4_CHECK(field(j, "role") != nullptr, InputError, "{} has no \"role\"", where);
    ChatMessage m;
    try {
      m.role = parse_role(string_field(j, "role", where));
      if (field(j, "task") != nullptr) m.task = parse_task(string_field(j, "task", where));
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}: {}", where, e.what()));
    }
    m.content = detail_chat_json::content_of(j, where);
    m.reasoning = string_field(j, "reasoning_content", where);
    m.tool_call_id = string_field(j, "tool_call_id", where);
    if (const auto* tools = field(j, "tools")) m.tools = tools_from_json(*tools, where);
    if (const auto* rf = field(j, "response_format")) m.response_format = rf->dump();
    if (const auto* w = field(j, "wo_eos")) {
      DSV4_CHECK(w->is_boolean(), InputError, "{}: \"wo_eos\" must be true or false", where);
      m.wo_eos = w->get<bool>();
    }
    if (const auto* calls = field(j, "tool_calls")) {
      DSV4_CHECK(calls->is_array(), InputError, "{}: \"tool_calls\" must be a list", where);
      for (std::size_t k = 0; k < calls->size(); ++k) {
        const auto& c = (*calls)[k];
        const std::string cw = fmt::format("{}, tool call {}", where, k);
        DSV4_CHECK(c.is_object(), InputError, "{} is not an object", cw);
        const auto* fn = field(c, "function");
        if (fn == nullptr && c.contains("name")) fn = &c;
        DSV4_CHECK(fn != nullptr && fn->is_object(), InputError,
                   "{} has no \"function\" object with a \"name\"", cw);
        ToolCall call;
        call.id = string_field(c, "id", cw);
        if (call.id.empty()) call.id = string_field(*fn, "id", cw);
        call.name = string_field(*fn, "name", cw);
        DSV4_CHECK(!call.name.empty(), InputError, "{} has no function name", cw);
        if (const auto* a = field(*fn, "arguments")) {
          call.arguments = a->is_string()
                               ? a->get<std::string>()
                               : python_json(nlohmann::ordered_json::object({{"arguments", *a}}));
        } else {
          call.arguments = "{}";
        }
        // Text that is JSON must be an object (other text is passed on as one string).
        const auto args = Json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
        DSV4_CHECK(args.is_discarded() || args.is_object(), InputError,
                   "{}: the arguments are JSON but not an object: '{}'", cw,
                   call.arguments.substr(0, 80));
        m.tool_calls.push_back(std::move(call));
      }
    }
    DSV4_CHECK(m.role != Role::developer || !m.content.empty(), InputError,
               "{}: a developer message needs a content", where);
    out.push_back(std::move(m));
  }
  return out;
}

/// A conversation from JSON text: a list of messages or a request object (see the top).
inline ChatRequest parse_chat_request(std::string_view json_text, std::string_view what) {
  using Json = nlohmann::ordered_json;
  using detail_chat_json::field;
  const Json doc = io::parse_json_text<InputError, Json>(json_text, what);
  ChatRequest r;
  if (doc.is_array()) {
    r.messages = chat_messages_from_json(doc, what);
    return r;
  }
  DSV4_CHECK(doc.is_object() && doc.contains("messages"), InputError,
             "{}: expected a list of messages or an object with \"messages\"", what);
  r.messages = chat_messages_from_json(doc["messages"], what);
  if (const auto* ctx = field(doc, "context")) {
    r.context = chat_messages_from_json(*ctx, fmt::format("{} (context)", what));
  }
  if (const auto* tools = field(doc, "tools")) {
    std::vector<ChatMessage>& first = r.context.empty() ? r.messages : r.context;
    if (first.empty() || first.front().role != Role::system) {
      first.insert(first.begin(), ChatMessage::of(Role::system, ""));
    }
    first.front().tools = tools_from_json(*tools, what);
  }
  const std::string where(what);
  const std::string thinking = detail_chat_json::string_field(doc, "thinking_mode", where);
  const std::string effort = detail_chat_json::string_field(doc, "reasoning_effort", where);
  if (thinking == "chat") {
    r.mode = ReasoningMode::non_think;
  } else if (thinking == "thinking") {
    DSV4_CHECK(effort.empty() || effort == "high" || effort == "max", InputError,
               "{}: unknown reasoning_effort '{}': expected high or max", what, effort);
    r.mode = effort == "max" ? ReasoningMode::think_max : ReasoningMode::think_high;
  } else {
    DSV4_CHECK(thinking.empty(), InputError,
               "{}: unknown thinking_mode '{}': expected chat or thinking", what, thinking);
  }
  for (const auto& [key, flag] : {std::pair{"drop_thinking", &r.options.drop_thinking},
                                  std::pair{"add_default_bos_token", &r.options.add_bos}}) {
    if (const auto* v = field(doc, key)) {
      DSV4_CHECK(v->is_boolean(), InputError, "{}: \"{}\" must be true or false", what, key);
      *flag = v->get<bool>();
    }
  }
  return r;
}

}  // namespace dsv4::text
