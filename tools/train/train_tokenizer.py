#!/usr/bin/env python3
"""Byte-level BPE tokenizer for the embedded model, in DeepSeek-V4's tokenizer.json form.

The normalizer, pre-tokenizer (digits in groups of 1-3, CJK runs, V4's word regex, ByteLevel
without prefix space), post-processor and decoder are copied from V4's own tokenizer.json, so the
tokenizer splits text exactly as V4's does (llama.cpp's "deepseek-v3" pre-tokenizer) and only the
BPE vocabulary and merges are new. The ids:

  0, 1, 2            <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>, <｜▁pad▁｜> (as in V4)
  3 ... 49           V4's other added tokens of ids 128800-128846 (User, Assistant, <think>,
                     </think>, the tool-call and DSML markers, ...), with V4's flags, in V4's order
  50 ... VOCAB-1     the 256 byte tokens and the learned merges

Usage:
  python3 tools/train/train_tokenizer.py --v4 tests/data/tokenizer/tokenizer.json \
      --corpus build/train/corpus --vocab 4096 --out build/train/tokenizer.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer, pre_tokenizers, trainers


def v4_added(v4: dict) -> list[dict]:
    """V4's added tokens that the small model keeps: BOS, EOS, pad and ids 128800-128846."""
    keep = [a for a in v4["added_tokens"] if a["id"] <= 2 or 128800 <= a["id"] <= 128846]
    assert [a["id"] for a in keep[:3]] == [0, 1, 2]
    return keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v4", type=Path, required=True, help="DeepSeek-V4's tokenizer.json")
    ap.add_argument("--corpus", type=Path, required=True, help="folder with train.txt (prepare_corpus.py)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    v4 = json.loads(a.v4.read_text())
    added = v4_added(v4)
    skeleton = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": v4["normalizer"],
        "pre_tokenizer": v4["pre_tokenizer"],
        "post_processor": v4["post_processor"],
        "decoder": v4["decoder"],
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": {}, "merges": []},
    }
    tok = Tokenizer.from_str(json.dumps(skeleton))
    trainer = trainers.BpeTrainer(
        vocab_size=a.vocab,
        min_frequency=2,
        show_progress=False,
        special_tokens=[t["content"] for t in added],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    text = (a.corpus / "train.txt").read_text()
    docs = text.split("\n\n")
    tok.train_from_iterator(docs, trainer=trainer)

    j = json.loads(tok.to_str())
    # V4's flags for each added token (the trainer makes every one special and non-normalized).
    flags = {t["content"]: t for t in added}
    for t in j["added_tokens"]:
        src = flags[t["content"]]
        for k in ("single_word", "lstrip", "rstrip", "normalized", "special"):
            t[k] = src[k]
    # Every added token also keeps its entry in the BPE vocabulary (V4 lists only BOS, EOS and pad
    # there, but its other added ids lie above the vocabulary; here they lie inside it, and
    # `tokenizers` renumbers an added token whose id is free in the vocabulary).
    vocab = j["model"]["vocab"]
    ids = sorted(set(vocab.values()) | {t["id"] for t in j["added_tokens"]})
    assert ids == list(range(len(ids))), "ids are not contiguous"
    if len(ids) != a.vocab:
        print(f"note: the corpus gives {len(ids)} ids, fewer than --vocab {a.vocab}")
    for k, t in enumerate(j["added_tokens"]):
        assert t["id"] == k and t["content"] == added[k]["content"]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(j, ensure_ascii=False, indent=1) + "\n")
    print(f"{a.out}: {len(ids)} ids ({len(j['added_tokens'])} added tokens, {len(j['model']['merges'])} merges)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
