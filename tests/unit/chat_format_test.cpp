// The DeepSeek-V4 chat format against the official encoder (tests/data/tokenizer/chat.jsonl,
// made by tools/gen_chat_golden.py): the prompt text and ids of 26 conversations in the three
// reasoning modes with reasoning dropped or kept (tools, tool calls and results, the developer
// role, tasks, response formats, unfinished replies), continuations of encoded contexts, and
// generated text read back into reasoning, answer and tool calls.
#include <doctest/doctest.h>

#include <dsv4/text/chat.hpp>
#include <dsv4/text/chat_json.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using namespace dsv4::text;

// Rows keep their keys' order: tool schemas are rendered in it.
std::vector<nlohmann::ordered_json> chat_rows(const char* kind) {
  std::ifstream in(dsv4::test::data_path("tokenizer/chat.jsonl"));
  REQUIRE(in.good());
  std::vector<nlohmann::ordered_json> rows;
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::ordered_json::parse(line);
    if (row["kind"] == kind) rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<ChatMessage> messages_of(const nlohmann::ordered_json& list) {
  return chat_messages_from_json(list, "chat.jsonl");
}

/// A prompt row's reasoning mode and options.
struct RowMode {
  ReasoningMode mode;
  ChatOptions options;
};
RowMode mode_of(const nlohmann::ordered_json& row) {
  RowMode r{parse_reasoning_mode(row["mode"].get<std::string>()), {}};
  r.options.drop_thinking = row["drop_thinking"].get<bool>();
  return r;
}

}  // namespace

TEST_CASE("prompts equal the official encoder's, text and ids, in every reasoning mode") {
  const Tokenizer tok = Tokenizer::load(dsv4::test::data_path("tokenizer/tokenizer.json"));
  const auto rows = chat_rows("prompt");
  REQUIRE(rows.size() >= 130);
  for (const auto& row : rows) {
    const auto [mode, options] = mode_of(row);
    CAPTURE(row.dump());
    const std::string prompt = build_prompt(messages_of(row["messages"]), mode, options);
    CHECK(prompt == row["prompt"].get<std::string>());
    CHECK(tok.encode(prompt) == row["ids"].get<std::vector<TokenId>>());
  }
}

TEST_CASE("continuations of an encoded context equal the official encoder's") {
  const auto rows = chat_rows("continuation");
  REQUIRE(rows.size() >= 20);
  for (const auto& row : rows) {
    const auto [mode, options] = mode_of(row);
    CAPTURE(row.dump());
    const auto context = messages_of(row["context"]);
    const auto messages = messages_of(row["messages"]);
    CHECK(build_prompt(messages, context, mode, options) == row["prompt"].get<std::string>());
    // With reasoning kept, the encoded context and its continuation are the whole
    // conversation's prompt (what lets a chat resume from its KV cache).
    if (!options.drop_thinking) {
      std::vector<ChatMessage> all = context;
      all.insert(all.end(), messages.begin(), messages.end());
      CHECK(build_prompt(context, mode, options) + build_prompt(messages, context, mode, options) ==
            build_prompt(all, mode, options));
    }
  }
}

TEST_CASE("a documented example: one question in each mode") {
  const std::vector<ChatMessage> msgs{ChatMessage::of(Role::system, "You are a helpful assistant."),
                                      ChatMessage::of(Role::user, "What is 2+2?")};
  const std::string head =
      "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜>";
  CHECK(build_prompt(msgs, ReasoningMode::non_think) == head + "</think>");
  CHECK(build_prompt(msgs, ReasoningMode::think_high) == head + "<think>");
  const std::string max = build_prompt(msgs, ReasoningMode::think_max);
  CHECK(max.rfind("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum", 0) == 0);
  CHECK(max.size() ==
        head.size() + std::string("<think>").size() + chat::reasoning_effort_max.size());
  ChatOptions no_bos;
  no_bos.add_bos = false;
  CHECK(build_prompt(msgs, ReasoningMode::think_high, no_bos).rfind("You are", 0) == 0);
}

TEST_CASE("generated text splits into reasoning and answer as the official parser does") {
  for (const auto& row : chat_rows("completion")) {
    const auto mode = parse_reasoning_mode(row["mode"].get<std::string>());
    CAPTURE(row["text"].get<std::string>());
    const Completion c = split_completion(row["text"].get<std::string>(), mode);
    CHECK(c.reasoning == row["reasoning"].get<std::string>());
    CHECK(c.answer == row["content"].get<std::string>());
    CHECK(c.reasoning_done);
    CHECK(c.calls_started ==
          (row["text"].get<std::string>().find("<｜DSML｜tool_calls>") != std::string::npos));
    CHECK(c.finished ==
          (row["text"].get<std::string>().find("<｜end▁of▁sentence｜>") != std::string::npos));
    const ParsedReply p = parse_completion(row["text"].get<std::string>(), mode);
    CHECK(p.reasoning == row["reasoning"].get<std::string>());
    CHECK(p.content == row["content"].get<std::string>());
    REQUIRE(p.tool_calls.size() == row["tool_calls"].size());
    for (std::size_t i = 0; i < p.tool_calls.size(); ++i) {
      CHECK(p.tool_calls[i].name == row["tool_calls"][i]["name"].get<std::string>());
      CHECK(p.tool_calls[i].arguments == row["tool_calls"][i]["arguments"].get<std::string>());
    }
  }
  // Text cut short: still reasoning, or answering without EOS yet.
  const Completion thinking = split_completion("Let me see", ReasoningMode::think_max);
  CHECK(thinking.reasoning == "Let me see");
  CHECK_FALSE(thinking.reasoning_done);
  CHECK(thinking.answer.empty());
  const Completion answering = split_completion("ok</think>The ans", ReasoningMode::think_high);
  CHECK(answering.reasoning_done);
  CHECK_FALSE(answering.finished);
  CHECK(answering.answer == "The ans");
  CHECK(split_completion("a</think>b", ReasoningMode::non_think).answer == "a</think>b");
}

TEST_CASE("generated text the official parser rejects is an InputError") {
  const auto rows = chat_rows("bad_completion");
  REQUIRE(rows.size() >= 12);
  for (const auto& row : rows) {
    const auto mode = parse_reasoning_mode(row["mode"].get<std::string>());
    CAPTURE(row["text"].get<std::string>());
    CAPTURE(row["error"].get<std::string>());
    CHECK_THROWS_WITH_AS(parse_completion(row["text"].get<std::string>(), mode),
                         doctest::Contains("not a well-formed reply"), dsv4::InputError);
  }
}

TEST_CASE("a reply's tool calls feed the next turn: calls rendered, results in call order") {
  // What a chat does with a reply: parse its calls, run them, append the results.
  const std::string reply =
      "Checking.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"add\">\n"
      "<｜DSML｜parameter name=\"a\" string=\"false\">2</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"b\" string=\"false\">3.5</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"echo\">\n"
      "<｜DSML｜parameter name=\"s\" string=\"true\">x \"y\"</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
  ParsedReply p = parse_completion(reply, ReasoningMode::non_think);
  REQUIRE(p.tool_calls.size() == 2);
  CHECK(p.tool_calls[0].arguments == R"({"a": 2, "b": 3.5})");
  CHECK(p.tool_calls[1].arguments == R"({"s": "x \"y\""})");
  ChatMessage assistant = ChatMessage::of(Role::assistant, p.content);
  assistant.tool_calls = p.tool_calls;
  assistant.tool_calls[0].id = "c0";
  assistant.tool_calls[1].id = "c1";
  // Rendering the parsed reply gives back the generated text.
  const std::vector<ChatMessage> context{ChatMessage::of(Role::user, "go"), assistant};
  const std::string head = build_prompt(context, ReasoningMode::non_think);
  CHECK(head.ends_with("</think>" + reply));
  ChatMessage r1 = ChatMessage::of(Role::tool, "x \"y\"");
  r1.tool_call_id = "c1";
  ChatMessage r0 = ChatMessage::of(Role::tool, "5.5");
  r0.tool_call_id = "c0";
  const std::vector<ChatMessage> results{r1, r0};
  CHECK(build_prompt(results, context, ReasoningMode::non_think) ==
        "<｜User｜><tool_result>5.5</tool_result>\n\n<tool_result>x \"y\"</tool_result>"
        "<｜Assistant｜></think>");
}

TEST_CASE("JSON conversations: request fields, and bad input named") {
  const ChatRequest r = parse_chat_request(
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                     {"type": "image_url"}]}],
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
          "thinking_mode": "thinking", "reasoning_effort": "max", "drop_thinking": false})",
      "req.json");
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[0].role == Role::system);
  CHECK(r.messages[0].tools.size() == 1);
  CHECK(r.messages[1].content == "a\n\n[Unsupported image_url]");
  CHECK(r.mode == ReasoningMode::think_max);
  CHECK_FALSE(r.options.drop_thinking);
  const auto bad = [](const char* text) { return parse_chat_request(text, "bad.json"); };
  CHECK_THROWS_WITH_AS(bad(R"([{"content": "x"}])"), doctest::Contains("no \"role\""),
                       dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "robot"}])"), doctest::Contains("'robot'"),
                       dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "user", "task": "summarise"}])"),
                       doctest::Contains("'summarise'"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "user", "content": 3}])"),
                       doctest::Contains("message 0: \"content\""), dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "assistant", "tool_calls": [{"type": "function"}]}])"),
                       doctest::Contains("tool call 0"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"({"messages": [], "thinking_mode": "deep"})"),
                       doctest::Contains("'deep'"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad("[{\"role\": "), doctest::Contains("not valid JSON"), dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"({"message": []})"), doctest::Contains("\"messages\""),
                       dsv4::InputError);
  // Arguments that are JSON but not an object, and developer messages without content: named
  // by the reader, refused by build_prompt for messages made in C++.
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f",
                          "arguments": "[1]"}}]}])"),
                       doctest::Contains("bad.json: message 0, tool call 0: the arguments are JSON "
                                         "but not an object"),
                       dsv4::InputError);
  CHECK_THROWS_WITH_AS(bad(R"([{"role": "developer"}])"),
                       doctest::Contains("bad.json: message 0: a developer message needs"),
                       dsv4::InputError);
  ChatMessage call = ChatMessage::of(Role::assistant, "");
  call.tool_calls.push_back({"id", "f", "[1]"});
  CHECK_THROWS_WITH_AS(build_prompt({&call, 1}, ReasoningMode::non_think),
                       doctest::Contains("not a JSON object"), dsv4::InputError);
  const ChatMessage developer = ChatMessage::of(Role::developer, "");
  CHECK_THROWS_WITH_AS(build_prompt({&developer, 1}, ReasoningMode::non_think),
                       doctest::Contains("developer message"), dsv4::InputError);
}

TEST_CASE("JSON text as Python writes it") {
  CHECK(python_float_repr(1.5e-7) == "1.5e-07");
  CHECK(python_float_repr(100.0) == "100.0");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(123456789012345.6) == "123456789012345.6");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(-0.0) == "-0.0");
  CHECK(python_float_repr(2.5e-300) == "2.5e-300");
  CHECK(python_float_repr(0.1) == "0.1");
  CHECK(python_json(nlohmann::ordered_json::parse(R"({"z": [1, 2.0, null, true], "a": "é\n"})")) ==
        R"({"z": [1, 2.0, null, true], "a": "é\n"})");
}

TEST_CASE("unknown modes and roles are InputErrors") {
  CHECK(parse_reasoning_mode("think-max") == ReasoningMode::think_max);
  CHECK(parse_reasoning_mode("chat") == ReasoningMode::non_think);
  CHECK_THROWS_WITH_AS(parse_reasoning_mode("think-ultra"), doctest::Contains("think-ultra"),
                       dsv4::InputError);
  CHECK(parse_role("tool") == Role::tool);
  CHECK(parse_role("developer") == Role::developer);
  CHECK_THROWS_WITH_AS(parse_role("function"), doctest::Contains("'function'"), dsv4::InputError);
  CHECK(reasoning_mode_name(ReasoningMode::think_high) == "think-high");
}
