#!/usr/bin/env python3
"""Checks that dsv4's tokenizer gives the ids of Hugging Face `tokenizers` with the trained
tokenizer.json, on every held-out chapter, on the chat prompt and on a few hard strings.

Usage:
  python3 tools/train/check_tokenizer.py --dsv4 build/ci/dsv4 --tokenizer build/train/tokenizer.json \
      --corpus build/train/corpus
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from tokenizers import Tokenizer

EXTRA = [
    "In the beginning God created the heaven and the earth.",
    "<｜begin▁of▁sentence｜><｜User｜>Read Genesis 1.<｜Assistant｜></think>In the beginning",
    "<think>reasoning</think>answer<｜end▁of▁sentence｜>",
    "numbers 1234567 and 3.14159, dates 2026-12-03, x=42;",
    "Unicode: naïve café, Ελληνικά, русский, 中文字符, 日本語のテキスト, emoji 🙂👍\n\n\ttabs  and   spaces  ",
    "  leading spaces\r\nwindows line\rold mac\n",
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{}<｜tool▁call▁end｜>",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsv4", required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    a = ap.parse_args()
    tok = Tokenizer.from_file(str(a.tokenizer))
    texts = [d for d in (a.corpus / "heldout.txt").read_text().split("\n\n") if d.strip()] + EXTRA
    bad = 0
    n_ids = 0
    for text in texts:
        want = tok.encode(text).ids
        out = subprocess.run([a.dsv4, "tokenize", "--tokenizer", str(a.tokenizer), text], check=True,
                             capture_output=True, text=True).stdout.strip()
        got = [int(x) for x in out.split(",")] if out else []
        n_ids += len(want)
        if got != want:
            bad += 1
            print(f"MISMATCH on {text[:60]!r}: dsv4 {got[:20]} vs tokenizers {want[:20]}")
        back = tok.decode(want, skip_special_tokens=False)
        if back != text:
            print(f"note: decode does not round-trip {text[:40]!r}")
    print(f"{len(texts) - bad}/{len(texts)} texts ({n_ids} ids) identical")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
