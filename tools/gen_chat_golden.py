#!/usr/bin/env python3
"""Writes tests/data/tokenizer/chat.jsonl: DeepSeek-V4 chat prompts rendered by the official
encoder, with their token ids, for tests/unit/chat_format_test.cpp.

The official encoder is `encoding/encoding_dsv4.py` of the DeepSeek-V4 release (not part of this
repository): pass the folder that holds it with --encoding-dir. Token ids come from Hugging Face
`tokenizers` with tests/data/tokenizer/tokenizer.json.

Each line is one of
  {"kind": "prompt", "name", "mode", "drop_thinking", "messages", "prompt", "ids"}
      mode: non-think (thinking_mode="chat"), think-high (thinking_mode="thinking",
      reasoning_effort="high") or think-max (thinking_mode="thinking", reasoning_effort="max");
      conversations with tools, tool calls and results, the developer role, quick-instruction
      tasks, response formats and unfinished replies (wo_eos) in OpenAI's message format;
  {"kind": "continuation", "name", "mode", "drop_thinking", "context", "messages", "prompt"}
      encode_messages(messages, context=context): the text that continues an encoded context;
  {"kind": "completion", "mode", "text", "reasoning", "content", "tool_calls"}
      parse_message_from_completion_text on well-formed generated text (tool calls in OpenAI
      format, arguments as the JSON text the parser builds);
  {"kind": "bad_completion", "mode", "text", "error"}
      generated text the official parser rejects (its exception message).

Usage: pip install tokenizers
       python3 tools/gen_chat_golden.py --encoding-dir DIR [tests/data/tokenizer]
"""
import argparse
import json
import pathlib
import sys

import tokenizers

MODES = {
    "non-think": ("chat", None),
    "think-high": ("thinking", "high"),
    "think-max": ("thinking", "max"),
}

S = {"role": "system", "content": "You are a helpful assistant."}
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
            "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            "units": {"type": ["string", "null"], "enum": ["C", "F", None]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current time (ünïcödé, 時間).",
        "parameters": {"type": "object", "properties": {}}}},
]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is 2+2?"}],
    "system_user": [S, {"role": "user", "content": "Hello"}],
    "empty_system": [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}],
    "two_turns": [
        S,
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "reasoning_content": "The user said hello, I should greet back.",
         "content": "Hi there! How can I help you?"},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "two_turns_answered": [
        S,
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "reasoning_content": "The user said hello, I should greet back.",
         "content": "Hi there! How can I help you?"},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "reasoning_content": "The capital of France is Paris.",
         "content": "The capital of France is Paris."},
    ],
    "three_turns_chinese": [
        {"role": "system", "content": "该助手为DeepSeek，由深度求索公司创造。"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "reasoning_content": "用户在打招呼。", "content": "你好！有什么可以帮你？"},
        {"role": "user", "content": "1+1等于几？"},
        {"role": "assistant", "reasoning_content": "简单的算术。", "content": "等于2。"},
        {"role": "user", "content": "谢谢！\n再见。"},
    ],
    "latest_reminder": [
        {"role": "system", "content": "You are DeepSeek."},
        {"role": "latest_reminder", "content": "2026-02-21, Saturday, Paris, App, English"},
        {"role": "user", "content": "What day is it?"},
    ],
    "reminder_after_user": [
        {"role": "user", "content": "Question one"},
        {"role": "latest_reminder", "content": "reminder"},
        {"role": "user", "content": "Question two"},
    ],
    "consecutive_users": [
        S,
        {"role": "user", "content": "First part."},
        {"role": "user", "content": "Second part."},
    ],
    "assistant_without_reasoning": [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "Again, in code:\n```python\nprint('hi')\n```"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "reasoning_content": "Easy.", "content": "1, 2, 3"},
    ],
    "system_only": [S],
    "special_text_in_content": [
        {"role": "user", "content": "What does <think> mean? And <｜User｜>?"},
    ],
    "whitespace_content": [
        {"role": "system", "content": "  padded system  \n"},
        {"role": "user", "content": "\ttabbed\r\nwindows lines  "},
    ],
    # --- tools, tool calls and tool results (OpenAI message format) ---
    "tools_system": [
        {"role": "system", "content": "You are a helpful assistant.", "tools": TOOLS},
        {"role": "user", "content": "What's the weather in Paris?"},
    ],
    "tools_call_and_results": [
        {"role": "system", "content": "Use the tools.", "tools": TOOLS},
        {"role": "user", "content": "Weather in Paris and Tokyo, and the time in Paris?"},
        {"role": "assistant", "reasoning_content": "I need three calls.", "content": "",
         "tool_calls": [
             {"id": "call_a", "type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}},
             {"id": "call_b", "type": "function",
              "function": {"name": "get_weather",
                           "arguments": "{\"city\": \"東京\", \"units\": null, \"detail\": {\"hourly\": true, \"fields\": [\"temp\", 1.5e-7, 100.0]}}"}},
             {"id": "call_c", "type": "function",
              "function": {"name": "get_time", "arguments": "{}"}},
         ]},
        # results out of call order: the encoder orders them like the calls
        {"role": "tool", "tool_call_id": "call_c", "content": "14:05"},
        {"role": "tool", "tool_call_id": "call_a", "content": "Sunny, 21 C"},
        {"role": "tool", "tool_call_id": "call_b",
         "content": [{"type": "text", "text": "Rain"}, {"type": "image", "url": "x"},
                     {"type": "text", "text": "12 C"}]},
        {"role": "user", "content": "Thanks; summarise."},
    ],
    "tools_answered": [
        {"role": "system", "content": "", "tools": TOOLS[:1]},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [{"id": "1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "not json at all"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "Cloudy"},
        {"role": "assistant", "reasoning_content": "Cloudy it is.", "content": "It is cloudy."},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tool_call_arguments_array": [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"type": "function", "function": {
             "name": "run", "arguments": "{\"argv\": [\"ls\", \"-l\"], \"env\": {}, \"shell\": false, \"n\": -3, \"s\": \"a\\\"b\\\\c\\n\"}"}}]},
        {"role": "tool", "content": "ok"},
    ],
    # --- the developer role ---
    "developer": [
        {"role": "system", "content": "You are DeepSeek."},
        {"role": "developer", "content": "Answer in French.", "tools": TOOLS[1:],
         "response_format": {"type": "json_object"}},
        {"role": "user", "content": "Hello"},
    ],
    "developer_earlier": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "reasoning_content": "greet", "content": "Hi."},
        {"role": "developer", "content": "Now be verbose."},
    ],
    "response_format_system": [
        {"role": "system", "content": "Reply in JSON.",
         "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {
             "type": "object", "properties": {"answer": {"type": "string"}}}}}},
        {"role": "user", "content": "2+2?"},
    ],
    # --- quick-instruction tasks ---
    "task_action": [
        {"role": "user", "content": "Find flights to Rome", "task": "action"},
    ],
    "task_query": [
        {"role": "user", "content": "best pizza in Naples", "task": "query"},
        {"role": "assistant", "content": "pizza Naples best"},
    ],
    "task_each": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a", "task": "authority"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "b", "task": "domain"},
        {"role": "assistant", "content": "y"},
        {"role": "user", "content": "c", "task": "title"},
        {"role": "assistant", "content": "z"},
        {"role": "user", "content": "https://example.com/page", "task": "read_url"},
    ],
    "task_then_user": [
        {"role": "user", "content": "q1", "task": "query"},
        {"role": "user", "content": "q2"},
    ],
    # --- an unfinished reply (wo_eos): the prompt continues it ---
    "assistant_prefix": [
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "reasoning_content": "Five, seven, five.", "content": "Autumn moon",
         "wo_eos": True},
    ],
}

COMPLETIONS = [
    ("think-high", "Simple arithmetic.</think>2 + 2 = 4.<｜end▁of▁sentence｜>"),
    ("think-max", "Let me think.\nStep 1...\n\nDone.</think>\n\nThe answer is **42**.<｜end▁of▁sentence｜>"),
    ("think-high", "</think>No reasoning.<｜end▁of▁sentence｜>"),
    ("non-think", "Direct answer.<｜end▁of▁sentence｜>"),
    ("non-think", "<｜end▁of▁sentence｜>"),
    ("think-high", "推理。</think>答案。<｜end▁of▁sentence｜>"),
    # tool calls (string parameters verbatim, the others JSON)
    ("non-think", "I will look it up.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
     "<｜DSML｜parameter name=\"city\" string=\"true\">Paris \"centre\"\n2nd line</｜DSML｜parameter>\n"
     "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
     "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("think-high", "Two calls.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_time\">\n"
     "</｜DSML｜invoke>\n<｜DSML｜invoke name=\"run\">\n"
     "<｜DSML｜parameter name=\"argv\" string=\"false\">[\"ls\", \"-l\"]</｜DSML｜parameter>\n"
     "<｜DSML｜parameter name=\"opts\" string=\"false\">{\"a\": {\"b\": null}}</｜DSML｜parameter>\n"
     "<｜DSML｜parameter name=\"ünï\" string=\"true\"></｜DSML｜parameter>\n"
     "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_time\">\n</｜DSML｜invoke>\n"
     "</｜DSML｜tool_calls>"),
    ("non-think", "\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
]

# Generated text the official parser rejects.
BAD_COMPLETIONS = [
    ("think-high", "no end of reasoning<｜end▁of▁sentence｜>"),
    ("non-think", "no end of sentence"),
    ("non-think", "text<｜end▁of▁sentence｜>more"),
    ("non-think", "a <think> inside<｜end▁of▁sentence｜>"),
    ("think-high", "r</think>a </think> b<｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n"),
    ("non-think", "x\n\n<｜DSML｜tool_calls> <｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n"
     "</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke nom=\"f\">\n</｜DSML｜invoke>\n"
     "</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
     "<｜DSML｜parameter name=\"a\" string=\"maybe\">1</｜DSML｜parameter>\n"
     "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
     "<｜DSML｜parameter name=\"a\" string=\"true\">1</｜DSML｜parameter>\n"
     "<｜DSML｜parameter name=\"a\" string=\"true\">2</｜DSML｜parameter>\n"
     "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
     "<｜DSML｜parameter name=\"a\" string=\"true\">1</｜DSML｜parameter>"
     "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n"
     "</｜DSML｜tool_calls>trailing<｜end▁of▁sentence｜>"),
    ("non-think", "x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
     "<｜DSML｜parameter name=\"a\" string=\"true\">1"),
]

# (context, messages) pairs: encode_messages(messages, context=context) continues the context.
CONTINUATIONS = {
    "next_user_turn": (
        [S, {"role": "user", "content": "Hello"},
         {"role": "assistant", "reasoning_content": "greet", "content": "Hi!"}],
        [{"role": "user", "content": "How are you?"}],
    ),
    "tool_results_after_calls": (
        [{"role": "system", "content": "Use tools.", "tools": TOOLS},
         {"role": "user", "content": "Weather in Paris and Rome?"},
         {"role": "assistant", "reasoning_content": "two calls", "content": "",
          "tool_calls": [
              {"id": "p", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
              {"id": "r", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]}],
        [{"role": "tool", "tool_call_id": "r", "content": "Hot"},
         {"role": "tool", "tool_call_id": "p", "content": "Mild"}],
    ),
    "developer_after_context": (
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        [{"role": "developer", "content": "Switch to German."},
         {"role": "user", "content": "Wie geht's?"}],
    ),
    "reply_after_context": (
        [{"role": "user", "content": "Name a colour."}],
        [{"role": "assistant", "reasoning_content": "pick one", "content": "Blue."},
         {"role": "user", "content": "Another?"}],
    ),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoding-dir", required=True)
    ap.add_argument("out", nargs="?", default="tests/data/tokenizer")
    args = ap.parse_args()
    sys.path.insert(0, args.encoding_dir)
    import encoding_dsv4 as enc  # the official encoder

    out = pathlib.Path(args.out)
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    lines = []
    for name, messages in CONVERSATIONS.items():
        for mode, (thinking_mode, effort) in MODES.items():
            for drop in (True, False):
                if mode == "non-think" and not drop:
                    continue
                prompt = enc.encode_messages([dict(m) for m in messages], thinking_mode=thinking_mode,
                                             drop_thinking=drop, reasoning_effort=effort)
                lines.append({"kind": "prompt", "name": name, "mode": mode, "drop_thinking": drop,
                              "messages": messages, "prompt": prompt,
                              "ids": tok.encode(prompt, add_special_tokens=True).ids})
    for name, (context, messages) in CONTINUATIONS.items():
        for mode, (thinking_mode, effort) in MODES.items():
            for drop in (True, False):
                if mode == "non-think" and not drop:
                    continue
                prompt = enc.encode_messages([dict(m) for m in messages], thinking_mode=thinking_mode,
                                             context=[dict(m) for m in context],
                                             drop_thinking=drop, reasoning_effort=effort)
                lines.append({"kind": "continuation", "name": name, "mode": mode,
                              "drop_thinking": drop, "context": context, "messages": messages,
                              "prompt": prompt})
    for mode, text in COMPLETIONS:
        parsed = enc.parse_message_from_completion_text(text, thinking_mode=MODES[mode][0])
        calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                 for c in parsed["tool_calls"]]
        lines.append({"kind": "completion", "mode": mode, "text": text,
                      "reasoning": parsed["reasoning_content"], "content": parsed["content"],
                      "tool_calls": calls})
    for mode, text in BAD_COMPLETIONS:
        try:
            enc.parse_message_from_completion_text(text, thinking_mode=MODES[mode][0])
        except (ValueError, AssertionError) as e:
            lines.append({"kind": "bad_completion", "mode": mode, "text": text, "error": str(e)})
            continue
        raise SystemExit(f"the official parser accepted {text!r}")
    with open(out / "chat.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{len(lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
