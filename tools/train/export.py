#!/usr/bin/env python3
"""Exports a model trained by train.py as a checkpoint directory that `dsv4 convert` reads, and the
trainer's logits on held-out text for dsv4's test.

Every float weight is rounded to float16 first (the exported model *is* the rounded one), so the
F16 GGUF that `dsv4 convert DIR OUT --type F16` writes holds exactly these values and the logits
written here are the ones dsv4 must reproduce from that file; only float32 arithmetic differs.

Writes:
  DIR/config.json          reference ModelArgs fields (n_mtp_layers 1)
  DIR/weights.safetensors  reference names (inference/model.py), float32 values that are float16
                           exact, ffn.gate.tid2eid int32
  DIR/tokenizer.json       the tokenizer (convert writes it as tokenizer.ggml.* keys)
  LOGITS/                  (with --logits) heldout.tokens.i32, heldout.logits.f32 and friends, see
                           tests/data/README.md

Usage:
  python3 tools/train/export.py --run build/train/run --tokenizer build/train/tokenizer.json \
      --out build/train/checkpoint --logits tests/data/trained --corpus build/train/corpus
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "golden"))

import train as trainer  # noqa: E402
from make_hf_golden import name_map, save_file  # noqa: E402

MTP_EXTRA = {
    "e_proj.weight": "e_proj.weight",
    "h_proj.weight": "h_proj.weight",
    "enorm.weight": "enorm.weight",
    "hnorm.weight": "hnorm.weight",
    "norm.weight": "norm.weight",
}
# the MTP block's hc_head is the trunk's (train.py); the reference layout stores a copy
MTP_SHARED = {
    "hc_head_fn": "lm.model.hc_head.hc_fn",
    "hc_head_base": "lm.model.hc_head.hc_base",
    "hc_head_scale": "lm.model.hc_head.hc_scale",
}


def reference_weights(c: dict, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trained state (keys lm.<HF name>, mtp.J.<...>) under the reference's names."""

    def take(hf: str, spec: dict) -> torch.Tensor:
        t = state[hf]
        if "expert" in spec:
            t = t[spec["expert"]]
            if "rows" in spec:
                t = t[spec["rows"][0] : spec["rows"][1]]
        return t

    out: dict[str, torch.Tensor] = {}
    for ref, spec in name_map(c).items():
        out[ref] = take("lm." + spec["hf"], spec)
    n = c["n_layers"]
    for j in range(c["n_mtp_layers"]):
        # the MTP block's own Block: the trunk's name map of a model one block longer
        c2 = dict(c, n_layers=n + 1 + j)
        for ref, spec in name_map(c2).items():
            if ref.startswith(f"layers.{n + j}."):
                hf = spec["hf"].replace(f"model.layers.{n + j}.", f"mtp.{j}.block.")
                out[f"mtp.{j}." + ref[len(f"layers.{n + j}.") :]] = take(hf, spec)
        for ref, mine in MTP_EXTRA.items():
            out[f"mtp.{j}.{ref}"] = state[f"mtp.{j}.{mine}"]
        for ref, trunk in MTP_SHARED.items():
            out[f"mtp.{j}.{ref}"] = state[trunk].clone()
    result = {}
    for k, v in out.items():
        if v.dtype in (torch.int64, torch.int32):
            result[k] = v.to(torch.int32).contiguous()
        else:
            result[k] = v.to(torch.float32).contiguous()
    return result


def round_f16(model: torch.nn.Module) -> float:
    """Rounds every float parameter and buffer to float16 values (kept in float32); returns the
    largest change."""
    worst = 0.0
    with torch.no_grad():
        for t in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            r = t.to(torch.float16).to(t.dtype)
            worst = max(worst, (r - t).abs().max().item())
            t.copy_(r)
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="train.py's output folder")
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    ap.add_argument("--logits", type=Path, help="folder for the held-out logits (tests/data/trained)")
    ap.add_argument("--corpus", type=Path, help="prepare_corpus.py's folder (held-out text), with --logits")
    ap.add_argument("--tokens", type=int, default=256, help="held-out sequence length for --logits")
    a = ap.parse_args()

    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    saved = torch.load(a.run / "model.pt", weights_only=False)
    c = saved["config"]
    model = trainer.TinyV4(c)
    model.load_state_dict(saved["state"])
    model.eval()
    worst = round_f16(model)
    print(f"weights rounded to float16: largest change {worst:.3g}")
    state = model.state_dict()
    w = reference_weights(c, state)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "config.json").write_text(json.dumps(c, indent=2) + "\n")
    save_file(w, a.out / "weights.safetensors", metadata={"format": "pt", "generator": "tools/train/export.py"})
    shutil.copyfile(a.tokenizer, a.out / "tokenizer.json")
    print(f"{a.out}: {len(w)} tensors, {sum(v.numel() for v in w.values())} values")

    if a.logits:
        tok = Tokenizer.from_file(str(a.tokenizer))
        bos = tok.token_to_id("<｜begin▁of▁sentence｜>")
        text = (a.corpus / "heldout.txt").read_text()
        # the first held-out chapter that is long enough, from its title on
        ids = [bos] + tok.encode(text).ids[: a.tokens - 1]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits, mtp = model(x)
        logits, mtp = logits[0].float(), mtp[0].float()
        t = len(ids)
        rows = [p for p in range(t) if p % 16 == 15]
        nxt = torch.tensor(ids[1:] + [0])
        logp = torch.log_softmax(logits, -1).gather(1, nxt[:, None])[:, 0]
        a.logits.mkdir(parents=True, exist_ok=True)
        np.asarray(ids, dtype=np.int32).tofile(a.logits / "heldout.tokens.i32")
        np.asarray(rows, dtype=np.int32).tofile(a.logits / "heldout.rows.i32")
        logits[rows].numpy().astype(np.float32).tofile(a.logits / "heldout.logits.f32")
        logp[:-1].numpy().astype(np.float32).tofile(a.logits / "heldout.logprob.f32")
        mrows = [p for p in rows if p < t - 1]
        mtp[mrows].numpy().astype(np.float32).tofile(a.logits / "heldout.mtp_logits.f32")
        loss = -logp[:-1].mean().item()
        # greedy draft agreement: the MTP block's argmax at i (token i+2) against the trunk's
        # argmax at i+1, on held-out text (what greedy speculative decoding would accept)
        agree = (mtp.argmax(-1) == logits[1:].argmax(-1)).float().mean().item()
        print(f"MTP draft = trunk's greedy token on {agree:.1%} of the {t - 1} held-out positions")
        print(f"{a.logits}: {t} tokens, logits of {len(rows)} rows, MTP logits of {len(mrows)} rows; "
              f"loss on them {loss:.4f}")
        print("text:", repr(tok.decode(ids[1:])[:200]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
