// The DeepSeek-V4 chat format against the official encoder (tests/data/tokenizer/chat.jsonl,
// made by tools/gen_chat_golden.py): the prompt text and ids of 14 conversations in the three
// reasoning modes with reasoning dropped or kept, and the split of generated text.
#include <doctest/doctest.h>

#include <dsv4/text/chat.hpp>
#include <dsv4/text/tokenizer.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_data.hpp"

namespace {

using namespace dsv4::text;

std::vector<nlohmann::json> chat_rows(const char* kind) {
  std::ifstream in(dsv4::test::data_path("tokenizer/chat.jsonl"));
  REQUIRE(in.good());
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    if (row["kind"] == kind) rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<ChatMessage> messages_of(const nlohmann::json& list) {
  std::vector<ChatMessage> out;
  for (const auto& m : list) {
    out.push_back({parse_role(m["role"].get<std::string>()), m.value("content", ""),
                   m.value("reasoning_content", "")});
  }
  return out;
}

}  // namespace

TEST_CASE("prompts equal the official encoder's, text and ids, in every reasoning mode") {
  const Tokenizer tok = Tokenizer::load(dsv4::test::data_path("tokenizer/tokenizer.json"));
  const auto rows = chat_rows("prompt");
  REQUIRE(rows.size() >= 60);
  for (const auto& row : rows) {
    const auto mode = parse_reasoning_mode(row["mode"].get<std::string>());
    ChatOptions options;
    options.drop_thinking = row["drop_thinking"].get<bool>();
    CAPTURE(row["name"].get<std::string>());
    CAPTURE(row["mode"].get<std::string>());
    CAPTURE(options.drop_thinking);
    const std::string prompt = build_prompt(messages_of(row["messages"]), mode, options);
    CHECK(prompt == row["prompt"].get<std::string>());
    CHECK(tok.encode(prompt) == row["ids"].get<std::vector<TokenId>>());
  }
}

TEST_CASE("a documented example: one question in each mode") {
  const std::vector<ChatMessage> msgs{{Role::system, "You are a helpful assistant.", ""},
                                      {Role::user, "What is 2+2?", ""}};
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
    CHECK(c.finished);
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

TEST_CASE("unknown modes and roles are InputErrors") {
  CHECK(parse_reasoning_mode("think-max") == ReasoningMode::think_max);
  CHECK(parse_reasoning_mode("chat") == ReasoningMode::non_think);
  CHECK_THROWS_WITH_AS(parse_reasoning_mode("think-ultra"), doctest::Contains("think-ultra"),
                       dsv4::InputError);
  CHECK_THROWS_WITH_AS(parse_role("tool"), doctest::Contains("'tool'"), dsv4::InputError);
  CHECK(reasoning_mode_name(ReasoningMode::think_high) == "think-high");
}
