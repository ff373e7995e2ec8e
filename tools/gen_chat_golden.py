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
  {"kind": "completion", "mode", "text", "reasoning", "content"}
      parse_message_from_completion_text on well-formed generated text.

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
}

COMPLETIONS = [
    ("think-high", "Simple arithmetic.</think>2 + 2 = 4.<｜end▁of▁sentence｜>"),
    ("think-max", "Let me think.\nStep 1...\n\nDone.</think>\n\nThe answer is **42**.<｜end▁of▁sentence｜>"),
    ("think-high", "</think>No reasoning.<｜end▁of▁sentence｜>"),
    ("non-think", "Direct answer.<｜end▁of▁sentence｜>"),
    ("non-think", "<｜end▁of▁sentence｜>"),
    ("think-high", "推理。</think>答案。<｜end▁of▁sentence｜>"),
]


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
    for mode, text in COMPLETIONS:
        parsed = enc.parse_message_from_completion_text(text, thinking_mode=MODES[mode][0])
        lines.append({"kind": "completion", "mode": mode, "text": text,
                      "reasoning": parsed["reasoning_content"], "content": parsed["content"]})
    with open(out / "chat.jsonl", "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{len(lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
