// Fuzzes the chat format's readers of untrusted text (text/chat_json.hpp, text/chat.hpp): any
// text either becomes a conversation or is rejected with a dsv4::Error naming the input; an
// accepted conversation renders in every reasoning mode, reasoning dropped or kept, without an
// error. The same text read as a generated reply is either parsed or rejected with an InputError,
// and a reply that parses without calls renders back into the text it was read from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dsv4/core/error.hpp"
#include "dsv4/text/chat.hpp"
#include "dsv4/text/chat_json.hpp"
#include "fuzz_util.hpp"

namespace {

constexpr std::string_view kLabel = "fuzz/chat.json";

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dsv4::text;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr ReasoningMode modes[] = {ReasoningMode::non_think, ReasoningMode::think_high,
                                     ReasoningMode::think_max};
  try {
    const ChatRequest r = parse_chat_request(text, kLabel);
    for (const ReasoningMode mode : modes) {
      for (const bool drop : {true, false}) {
        ChatOptions o = r.options;
        o.drop_thinking = drop;
        dsv4::fuzz::keep(build_prompt(r.messages, r.context, mode, o).size());
      }
    }
  } catch (const dsv4::Error& e) {
    dsv4::fuzz::check_rejection(e, kLabel);
  }
  for (const ReasoningMode mode : modes) {
    ParsedReply p;
    try {
      p = parse_completion(text, mode);
    } catch (const dsv4::InputError&) {
      continue;
    }
    dsv4::fuzz::keep(split_completion(text, mode).answer.size());
    if (mode != ReasoningMode::non_think || text.find(chat::tool_calls_start) != text.npos) {
      continue;
    }
    // A reply without calls is its text and EOS.
    ChatMessage m = ChatMessage::of(Role::assistant, p.content);
    require(build_prompt({&m, 1}, ReasoningMode::non_think, {false, true}) == text);
  }
  return 0;
}
