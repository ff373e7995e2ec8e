#!/usr/bin/env python3
"""Continues a prompt with a model trained by train.py, in PyTorch (no cache), with the weights
rounded to float16 as export.py writes them (the GGUF's values): greedy with --temp 0, else
sampled at that temperature from a generator seeded with --seed.

Usage:
  python3 tools/train/sample.py --run build/train/run --tokenizer build/train/tokenizer.json \
      -p "In the beginning" -n 48 --temp 0.8 --seed 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import export  # noqa: E402
import train as trainer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="train.py's output folder")
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("-p", "--prompt", required=True)
    ap.add_argument("-n", type=int, default=48, help="tokens to generate")
    ap.add_argument("--temp", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    from tokenizers import Tokenizer

    torch.set_num_threads(1)
    trainer.transformers.utils.logging.set_verbosity_error()
    tok = Tokenizer.from_file(str(a.tokenizer))
    saved = torch.load(a.run / "model.pt", weights_only=False)
    model = trainer.TinyV4(saved["config"])
    model.load_state_dict(saved["state"])
    model.eval()
    export.round_f16(model)
    bos, eos = tok.token_to_id("<｜begin▁of▁sentence｜>"), tok.token_to_id("<｜end▁of▁sentence｜>")
    ids = [bos] + tok.encode(a.prompt).ids
    g = torch.Generator().manual_seed(a.seed)
    with torch.no_grad():
        for _ in range(a.n):
            logits, _ = model(torch.tensor([ids]), mtp=False)
            row = logits[0, -1].float()
            if a.temp <= 0:
                nxt = int(row.argmax())
            else:
                nxt = int(torch.multinomial(torch.softmax(row / a.temp, -1), 1, generator=g))
            ids.append(nxt)
            if nxt == eos:
                break
    print(tok.decode(ids[1:], skip_special_tokens=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
