#!/usr/bin/env python3
"""Training text for the embedded model: the King James Version of the Bible (1611, public domain),
as shipped by Debian's `bible-kjv-text` package (read through its `bible` program, package
`bible-kjv`).

Writes into OUT/:
  train.txt     the chapters used for training
  heldout.txt   every 20th chapter (5 %), never trained on: the held-out split
  chat.txt      a few training chapters again, rendered as V4 chat turns (so the chat format's
                special tokens are seen in training; see README.md)

Each chapter becomes one document: its title line ("Genesis 1"), an empty line, then one verse per
line without the verse numbers. Documents are separated by an empty line in the text files; the
trainer puts BOS before and EOS after every document.

Usage:
  apt-get install bible-kjv
  python3 tools/train/prepare_corpus.py --out build/train/corpus
  (or --raw FILE: the output of `bible -l10000 Gen1:1-Rev22:21` saved earlier)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

HELDOUT_EVERY = 20  # chapter k (0-based) is held out when k % 20 == 19
CHAT_EVERY = 8  # every 8th training chapter is also written as a chat turn


def chapters(raw: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    title, verses = None, []
    for line in raw.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^\s+\d+ (.*)$", line)
        if m:
            if title is None:
                raise SystemExit(f"verse before any chapter title: {line!r}")
            verses.append(m.group(1).strip())
        elif re.match(r"^\S.* \d+$", line):
            if title is not None:
                out.append((title, verses))
            title, verses = line.strip(), []
        else:
            raise SystemExit(f"unexpected line in the bible output: {line!r}")
    if title is not None:
        out.append((title, verses))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--raw", type=Path, help="saved output of `bible -l10000 Gen1:1-Rev22:21`")
    a = ap.parse_args()
    if a.raw:
        raw = a.raw.read_text()
    else:
        raw = subprocess.run(["bible", "-l10000", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    ch = chapters(raw)
    if len(ch) != 1189:
        raise SystemExit(f"expected the 1189 chapters of the KJV, got {len(ch)}")
    a.out.mkdir(parents=True, exist_ok=True)
    train, held, chat = [], [], []
    for k, (title, verses) in enumerate(ch):
        doc = title + "\n\n" + "\n".join(verses)
        if k % HELDOUT_EVERY == HELDOUT_EVERY - 1:
            held.append(doc)
        else:
            train.append(doc)
            if len(train) % CHAT_EVERY == 0:
                chat.append({"user": f"Read {title}.", "assistant": "\n".join(verses)})
    (a.out / "train.txt").write_text("\n\n".join(train) + "\n")
    (a.out / "heldout.txt").write_text("\n\n".join(held) + "\n")
    (a.out / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chat))
    for name in ("train.txt", "heldout.txt", "chat.jsonl"):
        print(f"{name}: {(a.out / name).stat().st_size} bytes")
    print(f"{len(train)} training chapters, {len(held)} held out, {len(chat)} chat turns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
