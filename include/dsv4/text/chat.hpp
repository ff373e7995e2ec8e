// The DeepSeek-V4 chat format: the prompt text for a conversation in one of the three reasoning
// modes, and the split of generated text into reasoning and answer.
//
// Spec: spec/architecture.md, "Chat encoding (encoding_dsv4.py)". Reference: encode_messages and
// parse_message_from_completion_text in the release's encoding/encoding_dsv4.py. Covered here:
// the roles system, user, assistant and latest_reminder, reasoning kept or dropped, the Think Max
// preamble. Not covered: tools (DSML tool calls, tool results), the developer role, quick
// instruction tasks and prompt continuation from an encoded context.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsv4/core/check.hpp"

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

/// The instruction that Think Max puts before everything else (after BOS).
inline constexpr std::string_view reasoning_effort_max =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n";

}  // namespace chat

enum class Role { system, user, assistant, latest_reminder };

/// One message. `reasoning` is an assistant turn's reasoning content (thinking modes only).
struct ChatMessage {
  Role role = Role::user;
  std::string content;
  std::string reasoning;
};

inline Role parse_role(std::string_view name) {
  if (name == "system") return Role::system;
  if (name == "user") return Role::user;
  if (name == "assistant") return Role::assistant;
  if (name == "latest_reminder") return Role::latest_reminder;
  throw InputError(fmt::format(
      "unsupported chat role '{}': expected system, user, assistant or latest_reminder (tool "
      "and developer messages are not supported)",
      name));
}

struct ChatOptions {
  bool add_bos = true;
  /// Thinking modes: drop the reasoning of assistant turns before the last user message (the
  /// reference default). When false every assistant turn keeps its reasoning and every user
  /// turn opens a thinking block.
  bool drop_thinking = true;
};

/// The prompt text of `messages` in `mode`. When the conversation ends with a user message the
/// prompt ends with the assistant prefix and the thinking marker, ready for generation.
inline std::string build_prompt(std::span<const ChatMessage> messages, ReasoningMode mode,
                                const ChatOptions& options = {}) {
  using namespace chat;
  // Consecutive user messages form one user turn, their texts joined by a blank line.
  std::vector<ChatMessage> msgs;
  msgs.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    if (m.role == Role::user && !msgs.empty() && msgs.back().role == Role::user) {
      msgs.back().content += "\n\n";
      msgs.back().content += m.content;
    } else {
      msgs.push_back(m);
    }
  }
  const bool thinking = mode != ReasoningMode::non_think;
  const bool drop = options.drop_thinking;
  std::ptrdiff_t last_user = -1;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].role == Role::user) last_user = static_cast<std::ptrdiff_t>(i);
  }

  std::string prompt = options.add_bos ? std::string(bos_token) : std::string();
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    const auto idx = static_cast<std::ptrdiff_t>(i);
    if (i == 0 && mode == ReasoningMode::think_max) prompt += reasoning_effort_max;
    switch (m.role) {
      case Role::system:
        prompt += m.content;
        break;
      case Role::user:
        prompt += user_token;
        prompt += m.content;
        break;
      case Role::latest_reminder:
        prompt += latest_reminder_token;
        prompt += m.content;
        break;
      case Role::assistant:
        // In a thinking mode the turns after the last user message (or all of them when
        // reasoning is kept) carry their reasoning, closed by </think>; the others carry none,
        // their </think> having been written after the assistant prefix.
        if (thinking && (!drop || idx > last_user)) {
          prompt += m.reasoning;
          prompt += think_end_token;
        }
        prompt += m.content;
        prompt += eos_token;
        break;
    }
    const bool next_continues = i + 1 < msgs.size() && msgs[i + 1].role != Role::assistant &&
                                msgs[i + 1].role != Role::latest_reminder;
    if (next_continues || m.role != Role::user) continue;
    prompt += assistant_token;
    prompt += thinking && (!drop || idx >= last_user) ? think_start_token : think_end_token;
  }
  return prompt;
}

/// Generated text split into its parts.
struct Completion {
  std::string reasoning;        // thinking modes: the text before </think>
  std::string answer;           // the text after it (all of it in Non-think), up to EOS
  bool reasoning_done = false;  // </think> was generated (always true in Non-think)
  bool finished = false;        // EOS was generated
};

/// Splits text generated after a prompt of build_prompt in `mode` (the prompt's closing thinking
/// marker is not part of it). Text that is still reasoning (no </think> yet) is all reasoning.
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
  c.answer = std::string(c.finished ? text.substr(0, eos) : text);
  return c;
}

}  // namespace dsv4::text
