#!/usr/bin/env python3
"""Trains the embedded default model: a small DeepSeek-V4 with every architectural part, on CPU.

The model is Hugging Face transformers' `DeepseekV4ForCausalLM` (transformers 5.23, the
implementation dsv4 is checked against in float32, docs/oracles.md) plus the one part it lacks,
an MTP block built exactly as spec/architecture.md §8 describes it (e_proj/h_proj/enorm/hnorm,
one V4 decoder block, its own norm, the trunk's hc_head, embedding and head), trained with the
MTP loss. Every V4 part is present:

  * mHC, 4 streams, Sinkhorn-projected mixing (every block, the head, the MTP block)
  * sliding-window (SWA), CSA (ratio 4: overlapping compressor + lightning indexer) and HCA
    (ratio 128) attention layers, with attention sinks and the grouped low-rank output projection
  * hash-routed MoE in the first layers (fixed random token -> experts table), sqrt-softplus scored
    top-k routing after, a shared expert everywhere, the clamped SwiGLU
  * an MTP block (one, SWA, score-routed; it shares the trunk's hc_head, as llama.cpp's GGUF
    layout has it)

Optimiser: Muon (Newton-Schulz orthogonalised momentum; `torch.optim.Muon` for the 2-D matrices,
the same update batched over experts for the 3-D expert tensors) for every hidden weight matrix,
AdamW for the embedding, the head, norms, mHC biases and scales, attention sinks and compressor
position biases. Score-routed layers are balanced without an auxiliary loss, as in V3/V4: after
each step the per-expert selection bias moves by a fixed step towards equal load.

Writes into OUT/:
  model.pt           the trained state (HF names + mtp.*), float32
  loss.csv           step, tokens, seconds, train loss, train MTP loss, held-out loss, MTP held-out loss
  run.json           the configuration, the data sizes and the final figures
  optim.pt           the optimisers' state (for --resume)

--resume RUN_DIR continues a run: the weights (and the optimisers' state where RUN_DIR has an
optim.pt; else fresh optimisers) from RUN_DIR/model.pt, a new warm-up (--warmup-resume steps) and
cosine schedule over the new budget, new random windows, and RUN_DIR's loss.csv continued into
OUT/loss.csv (steps, tokens and seconds counted on from RUN_DIR's).

Usage (see README.md):
  python3 tools/train/train.py --corpus build/train/corpus --tokenizer build/train/tokenizer.json \
      --out build/train/run --minutes 35
  python3 tools/train/train.py --corpus build/train/corpus --tokenizer build/train/tokenizer.json \
      --out build/train/run2 --minutes 25 --resume build/train/run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

try:
    import transformers
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
    from transformers.masking_utils import create_sliding_window_causal_mask
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import (
        DeepseekV4DecoderLayer,
        DeepseekV4HyperHead,
        DeepseekV4RMSNorm,
        DeepseekV4TopKRouter,
    )
except ImportError as exc:  # pragma: no cover - environment problem, explained to the user
    sys.exit(f"transformers with DeepSeek-V4 support is required (pip install 'transformers==5.23.*'): {exc}")

# --------------------------------------------------------------------------------------------------
# The model (reference ModelArgs names, as config.json of the exported checkpoint)

MODEL = {
    "vocab_size": 4096,
    "dim": 128,
    "moe_inter_dim": 128,
    "n_layers": 5,
    "n_hash_layers": 2,
    "n_mtp_layers": 1,
    "n_heads": 2,
    "head_dim": 96,
    "rope_head_dim": 32,
    "q_lora_rank": 64,
    "o_groups": 2,
    "o_lora_rank": 64,
    "window_size": 64,
    # SWA+hash, CSA+hash, HCA+scored, CSA+scored, SWA+scored; MTP block: SWA+scored
    "compress_ratios": [0, 4, 128, 4, 0, 0],
    "n_routed_experts": 8,
    "n_activated_experts": 2,
    "n_shared_experts": 1,
    "score_func": "sqrtsoftplus",
    "route_scale": 1.5,
    "swiglu_limit": 10.0,
    "index_n_heads": 4,
    "index_head_dim": 64,
    "index_topk": 16,
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "hc_eps": 1e-6,
    "norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "compress_rope_theta": 160000.0,
    "original_seq_len": 65536,
    "rope_factor": 16.0,
    "beta_fast": 32,
    "beta_slow": 1,
    "max_seq_len": 4096,
    "max_batch_size": 1,
    "dtype": "bf16",
    "expert_dtype": None,
    "scale_fmt": "ue8m0",
    "scale_dtype": "fp8",
}


def layer_type(ratio: int) -> str:
    if ratio == 0:
        return "sliding_attention"
    if ratio == 4:
        return "compressed_sparse_attention"
    return "heavily_compressed_attention"


def hf_config(c: dict, with_mtp: bool = False) -> DeepseekV4Config:
    """The DeepseekV4Config of reference fields `c` (as tools/golden/make_hf_golden.py builds it).
    `with_mtp` lists the MTP blocks in layer_types / mlp_layer_types too (for building them)."""
    n = c["n_layers"]
    total = n + (c["n_mtp_layers"] if with_mtp else 0)
    ratios = c["compress_ratios"][:total]
    hca = sorted({r for r in ratios if r not in (0, 4)})
    assert len(hca) <= 1, "the HF model supports one HCA ratio per model"
    return DeepseekV4Config(
        vocab_size=c["vocab_size"],
        hidden_size=c["dim"],
        moe_intermediate_size=c["moe_inter_dim"],
        num_hidden_layers=total,
        num_attention_heads=c["n_heads"],
        num_key_value_heads=1,
        head_dim=c["head_dim"],
        q_lora_rank=c["q_lora_rank"],
        partial_rotary_factor=c["rope_head_dim"] / c["head_dim"],
        num_experts_per_tok=c["n_activated_experts"],
        n_routed_experts=c["n_routed_experts"],
        n_shared_experts=c["n_shared_experts"],
        scoring_func=c["score_func"],
        norm_topk_prob=True,
        routed_scaling_factor=c["route_scale"],
        max_position_embeddings=c["max_seq_len"],
        rope_theta=c["rope_theta"],
        compress_rope_theta=c["compress_rope_theta"],
        layer_types=[layer_type(r) for r in ratios],
        compress_rates={
            "compressed_sparse_attention": 4,
            "heavily_compressed_attention": hca[0] if hca else 128,
        },
        mlp_layer_types=["hash_moe"] * c["n_hash_layers"] + ["moe"] * (total - c["n_hash_layers"]),
        hc_mult=c["hc_mult"],
        hc_sinkhorn_iters=c["hc_sinkhorn_iters"],
        hc_eps=c["hc_eps"],
        swiglu_limit=c["swiglu_limit"],
        sliding_window=c["window_size"],
        o_groups=c["o_groups"],
        o_lora_rank=c["o_lora_rank"],
        index_n_heads=c["index_n_heads"],
        index_head_dim=c["index_head_dim"],
        index_topk=c["index_topk"],
        num_nextn_predict_layers=0,
        rms_norm_eps=c["norm_eps"],
        rope_parameters={
            "rope_type": "yarn",
            "factor": c["rope_factor"],
            "original_max_position_embeddings": c["original_seq_len"],
            "beta_fast": c["beta_fast"],
            "beta_slow": c["beta_slow"],
        },
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
    )


class MtpBlock(nn.Module):
    """spec/architecture.md §8: x = e_proj(enorm(Embed[n])) + h_proj(hnorm(Xh)) per stream, one V4
    block, then the block's own norm and the trunk's hc_head and head."""

    def __init__(self, c: dict):
        super().__init__()
        d = c["dim"]
        cfg = hf_config(c, with_mtp=True)
        self.e_proj = nn.Linear(d, d, bias=False)
        self.h_proj = nn.Linear(d, d, bias=False)
        self.enorm = DeepseekV4RMSNorm(d, eps=c["norm_eps"])
        self.hnorm = DeepseekV4RMSNorm(d, eps=c["norm_eps"])
        self.norm = DeepseekV4RMSNorm(d, eps=c["norm_eps"])
        self.block = DeepseekV4DecoderLayer(cfg, c["n_layers"])

    def forward(self, model: "TinyV4", hidden: torch.Tensor, next_tokens: torch.Tensor) -> torch.Tensor:
        e = self.e_proj(self.enorm(model.lm.model.embed_tokens(next_tokens)))
        x = e.unsqueeze(2) + self.h_proj(self.hnorm(hidden))
        pos_emb, pos_ids, mask = model.positions(x[:, :, 0])
        x = self.block(x, position_embeddings=pos_emb, position_ids=pos_ids, attention_mask=mask, input_ids=next_tokens)
        # the trunk's hc_head: a llama.cpp GGUF stores no MTP-local hc_head (its MTP head uses the
        # trunk's output_hc_*), so the block is trained with the shared one
        return model.lm.lm_head(self.norm(model.lm.model.hc_head(x)))


class TinyV4(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.c = c
        self.lm = DeepseekV4ForCausalLM(hf_config(c))
        self.mtp = nn.ModuleList([MtpBlock(c) for _ in range(c["n_mtp_layers"])])
        self._hidden = None
        self.lm.model.hc_head.register_forward_pre_hook(self._keep_hidden)

    def _keep_hidden(self, mod, args):
        self._hidden = args[0]

    def positions(self, embeds: torch.Tensor):
        m = self.lm.model
        pos = torch.arange(embeds.shape[1]).unsqueeze(0)
        mask = create_sliding_window_causal_mask(config=m.config, inputs_embeds=embeds, attention_mask=None,
                                                 past_key_values=None, position_ids=pos)
        pe = {"main": m.rotary_emb(embeds, position_ids=pos, layer_type="main"),
              "compress": m.rotary_emb(embeds, position_ids=pos, layer_type="compress")}
        return pe, pos, mask

    def forward(self, tokens: torch.Tensor, mtp: bool = True):
        """tokens [B, S] -> trunk logits [B, S, V] and MTP logits [B, S-1, V] (row i predicts
        token i+2 from the trunk state at i and token i+1)."""
        logits = self.lm(input_ids=tokens, use_cache=False).logits
        hidden = self._hidden
        self._hidden = None
        if not mtp or not len(self.mtp):
            return logits, None
        return logits, self.mtp[0](self, hidden[:, :-1], tokens[:, 1:])


def init_model(c: dict, seed: int) -> TinyV4:
    torch.manual_seed(seed)
    model = TinyV4(c)
    std = 0.02
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() >= 2 and name.endswith(("o_b_proj.weight", "down_proj", "down_proj.weight")):
                p.normal_(0.0, std / math.sqrt(2 * (c["n_layers"] + 1)), generator=g)
    # hash routing: a fixed random table token -> distinct experts (V4: seeded hash)
    for layer in list(model.lm.model.layers) + [m.block for m in model.mtp]:
        gate = layer.mlp.gate
        if hasattr(gate, "tid2eid"):
            rows = [torch.randperm(c["n_routed_experts"], generator=g)[: c["n_activated_experts"]]
                    for _ in range(c["vocab_size"])]
            gate.tid2eid.copy_(torch.stack(rows))
    # MTP norms/hc: the HF initialiser only ran on the HF model
    for m in model.mtp:
        for mod in m.modules():
            model.lm._init_weights(mod)
        nn.init.normal_(m.e_proj.weight, 0.0, std, generator=g)
        nn.init.normal_(m.h_proj.weight, 0.0, std, generator=g)
    return model


# --------------------------------------------------------------------------------------------------
# Muon for 3-D (stacked expert) tensors: the same update as torch.optim.Muon, per matrix


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    tr = x.size(-2) > x.size(-1)
    if tr:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        m = x @ x.mT
        x = a * x + (b * m + c * m @ m) @ x
    return x.mT if tr else x


class BatchedMuon(torch.optim.Optimizer):
    """Muon over the last two dimensions of each parameter (leading dimensions: independent
    matrices), Nesterov momentum, learning rate adjusted as torch.optim.Muon's "original"."""

    def __init__(self, params, lr=0.02, momentum=0.95, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "buf" not in st:
                    st["buf"] = torch.zeros_like(p)
                buf = st["buf"]
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"])
                u = newton_schulz(g)
                rows, cols = p.shape[-2], p.shape[-1]
                scale = math.sqrt(max(1.0, rows / cols))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(u.to(p.dtype), alpha=-group["lr"] * scale)


def make_optimizers(model: TinyV4, muon_lr: float, adam_lr: float):
    muon2, muon3, adam_decay, adam_plain = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() >= 2 and not name.endswith(("embed_tokens.weight", "lm_head.weight", "position_bias")):
            (muon3 if p.dim() == 3 else muon2).append(p)
        elif p.dim() >= 2:
            adam_decay.append(p)
        else:
            adam_plain.append(p)
    opts = []
    if hasattr(torch.optim, "Muon"):
        opts.append(torch.optim.Muon(muon2, lr=muon_lr, momentum=0.95, nesterov=True, weight_decay=0.01,
                                     adjust_lr_fn="original"))
    else:
        opts.append(BatchedMuon(muon2, lr=muon_lr, weight_decay=0.01))
    opts.append(BatchedMuon(muon3, lr=muon_lr, weight_decay=0.01))
    opts.append(torch.optim.AdamW([{"params": adam_decay, "weight_decay": 0.01},
                                   {"params": adam_plain, "weight_decay": 0.0}],
                                  lr=adam_lr, betas=(0.9, 0.95), eps=1e-8))
    return opts, dict(muon_2d=len(muon2), muon_3d=len(muon3), adamw=len(adam_decay) + len(adam_plain),
                      muon_impl="torch.optim.Muon" if hasattr(torch.optim, "Muon") else "BatchedMuon")


class BiasBalancer:
    """Auxiliary-loss-free balancing of the score-routed layers: after each step, the selection bias
    of an expert chosen more often than average goes down by `rate`, of one chosen less goes up."""

    def __init__(self, model: TinyV4, rate: float):
        self.rate = rate
        self.counts: dict[nn.Module, torch.Tensor] = {}
        for mod in model.modules():
            if isinstance(mod, DeepseekV4TopKRouter):
                self.counts[mod] = torch.zeros(mod.num_experts)
                mod.register_forward_hook(self._hook)

    def _hook(self, mod, args, out):
        if mod.training:
            self.counts[mod] += torch.bincount(out[2].reshape(-1), minlength=mod.num_experts).float()

    @torch.no_grad()
    def step(self):
        for mod, cnt in self.counts.items():
            if cnt.sum() > 0:
                mod.e_score_correction_bias += self.rate * torch.sign(cnt.mean() - cnt)
            cnt.zero_()


# --------------------------------------------------------------------------------------------------
# Data


def encode_corpus(tok, corpus: Path, bos: int, eos: int):
    def docs(path: Path):
        return [d for d in path.read_text().split("\n\n") if d.strip()]

    def join_docs(texts):
        # chapters: title, empty line, verses (prepare_corpus.py wrote "title\n\nverses")
        out = []
        for k in range(0, len(texts) - 1, 2):
            out.append(texts[k] + "\n\n" + texts[k + 1])
        return out

    train_docs = join_docs(docs(corpus / "train.txt"))
    held_docs = join_docs(docs(corpus / "heldout.txt"))
    chat = [json.loads(line) for line in (corpus / "chat.jsonl").read_text().splitlines() if line.strip()]
    chat_docs = ["<｜User｜>" + c["user"] + "<｜Assistant｜></think>" + c["assistant"] for c in chat]

    def stream(texts):
        ids = []
        for enc in tok.encode_batch(texts):
            ids += [bos] + enc.ids + [eos]
        return torch.tensor(ids, dtype=torch.long)

    return stream(train_docs + chat_docs), stream(held_docs), len(train_docs), len(held_docs), len(chat_docs)


def batches(data: torch.Tensor, batch: int, seq: int, g: random.Random):
    while True:
        starts = [g.randrange(0, data.numel() - seq - 1) for _ in range(batch)]
        yield torch.stack([data[s : s + seq + 1] for s in starts])


def losses(model: TinyV4, x: torch.Tensor):
    logits, mtp = model(x[:, :-1])
    v = logits.shape[-1]
    main = F.cross_entropy(logits.reshape(-1, v).float(), x[:, 1:].reshape(-1))
    # MTP row i (position i, fed token i+1) predicts token i+2
    extra = F.cross_entropy(mtp.reshape(-1, v).float(), x[:, 2:].reshape(-1)) if mtp is not None else torch.zeros(())
    return main, extra


@torch.no_grad()
def evaluate(model: TinyV4, data: torch.Tensor, seq: int, max_windows: int) -> tuple[float, float]:
    """Mean loss over consecutive non-overlapping windows of the held-out stream."""
    model.eval()
    n = min(max_windows, (data.numel() - 1) // (seq + 1))
    tot, tot_mtp = 0.0, 0.0
    for k in range(n):
        x = data[k * (seq + 1) : (k + 1) * (seq + 1)].unsqueeze(0)
        a, b = losses(model, x)
        tot += a.item()
        tot_mtp += b.item()
    model.train()
    return tot / n, tot_mtp / n


@torch.no_grad()
def greedy(model: TinyV4, tok, prompt: str, n: int, bos: int) -> str:
    model.eval()
    ids = [bos] + tok.encode(prompt).ids
    for _ in range(n):
        logits, _ = model(torch.tensor([ids]), mtp=False)
        ids.append(int(logits[0, -1].argmax()))
    model.train()
    return tok.decode(ids[1:], skip_special_tokens=False)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=35.0, help="wall-clock training budget")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--muon-lr", type=float, default=0.02)
    ap.add_argument("--adam-lr", type=float, default=3e-3)
    ap.add_argument("--mtp-weight", type=float, default=0.3)
    ap.add_argument("--eval-every", type=int, default=40)
    ap.add_argument("--eval-windows", type=int, default=8)
    ap.add_argument("--final-eval-windows", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1,
                    help="1 is fastest on a loaded machine (OpenMP threads wait for each other)")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--dry-steps", type=int, default=0, help="time this many steps and stop")
    ap.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                    help="continue the run in RUN_DIR (model.pt, optim.pt if present, loss.csv)")
    ap.add_argument("--warmup-resume", type=int, default=10,
                    help="warm-up steps of a resumed run with fresh optimisers")
    a = ap.parse_args()

    from tokenizers import Tokenizer

    torch.set_num_threads(a.threads)
    transformers.utils.logging.set_verbosity_error()
    tok = Tokenizer.from_file(str(a.tokenizer))
    c = dict(MODEL, vocab_size=tok.get_vocab_size())
    bos, eos = tok.token_to_id("<｜begin▁of▁sentence｜>"), tok.token_to_id("<｜end▁of▁sentence｜>")
    train, held, n_train, n_held, n_chat = encode_corpus(tok, a.corpus, bos, eos)
    print(f"data: {train.numel()} training tokens ({n_train} chapters + {n_chat} chat turns), "
          f"{held.numel()} held-out tokens ({n_held} chapters)", flush=True)

    model = init_model(c, a.seed)
    step0, tokens0, seconds0, prev_rows, prev_info = 0, 0, 0.0, [], {}
    resumed_opt = False
    if a.resume is not None:
        ck = torch.load(a.resume / "model.pt", map_location="cpu")
        if ck["config"] != c:
            sys.exit(f"{a.resume / 'model.pt'}: its model configuration differs from this script's")
        model.load_state_dict(ck["state"])
        if (a.resume / "run.json").exists():
            prev_info = json.loads((a.resume / "run.json").read_text())
        with open(a.resume / "loss.csv", newline="") as f:
            prev_rows = list(csv.reader(f))[1:]
        last = prev_rows[-1]
        step0, tokens0, seconds0 = int(last[0]), int(last[1]), float(last[2])
        print(f"resumed {a.resume}: step {step0}, {tokens0} tokens, {seconds0:.0f} s", flush=True)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_mtp = sum(p.numel() for p in model.mtp.parameters())
    print(f"model: {n_params} parameters ({n_mtp} in the MTP block)", flush=True)
    opts, opt_info = make_optimizers(model, a.muon_lr, a.adam_lr)
    if a.resume is not None and (a.resume / "optim.pt").exists():
        for o, sd in zip(opts, torch.load(a.resume / "optim.pt", map_location="cpu")):
            o.load_state_dict(sd)
        resumed_opt = True
    for o in opts:
        for gr in o.param_groups:
            gr["base_lr"] = gr["lr"]
    balancer = BiasBalancer(model, rate=1e-3)
    # a resumed run draws new windows
    g = random.Random(a.seed + step0)
    it = batches(train, a.batch, a.seq, g)

    a.out.mkdir(parents=True, exist_ok=True)
    log = open(a.out / "loss.csv", "w", newline="")
    w = csv.writer(log)
    w.writerow(["step", "tokens", "seconds", "train_loss", "train_mtp_loss", "heldout_loss", "heldout_mtp_loss"])
    for row in prev_rows:  # the run resumed, its closing full evaluation included
        w.writerow(row)
    budget = a.minutes * 60.0
    warmup = 30 if a.resume is None else (1 if resumed_opt else a.warmup_resume)
    t0 = time.time() - seconds0
    step, tokens = step0, tokens0
    ema = ema_mtp = None
    held_loss = held_mtp = float("nan")
    while step < a.max_steps:
        elapsed = time.time() - t0 - seconds0
        if a.dry_steps and step - step0 >= a.dry_steps:
            break
        if not a.dry_steps and elapsed > budget:
            break
        # schedule by time: linear warm-up, then cosine to 10 % at the end of the budget
        frac = min(1.0, elapsed / budget)
        mult = min(1.0, (step - step0 + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for o in opts:
            for gr in o.param_groups:
                gr["lr"] = gr["base_lr"] * mult
        x = next(it)
        main_loss, mtp_loss = losses(model, x)
        loss = main_loss + a.mtp_weight * mtp_loss
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for o in opts:
            o.step()
        balancer.step()
        step += 1
        tokens += a.batch * a.seq
        ema = main_loss.item() if ema is None else 0.9 * ema + 0.1 * main_loss.item()
        ema_mtp = mtp_loss.item() if ema_mtp is None else 0.9 * ema_mtp + 0.1 * mtp_loss.item()
        if step % a.eval_every == 0 or step == 1 or step == step0 + 1:
            held_loss, held_mtp = evaluate(model, held, a.seq, a.eval_windows)
            print(f"step {step:5d}  {time.time() - t0:7.1f} s  train {ema:.3f} (mtp {ema_mtp:.3f})  "
                  f"held-out {held_loss:.3f} (mtp {held_mtp:.3f})  lr x{mult:.2f}", flush=True)
            w.writerow([step, tokens, f"{time.time() - t0:.1f}", f"{main_loss.item():.4f}", f"{mtp_loss.item():.4f}",
                        f"{held_loss:.4f}", f"{held_mtp:.4f}"])
            torch.save({"config": c, "state": model.state_dict(), "step": step}, a.out / "model.pt")
        else:
            w.writerow([step, tokens, f"{time.time() - t0:.1f}", f"{main_loss.item():.4f}", f"{mtp_loss.item():.4f}", "", ""])
        log.flush()
        if a.dry_steps:
            print(f"step {step}: {time.time() - t0:.2f} s, loss {main_loss.item():.3f} / mtp {mtp_loss.item():.3f}", flush=True)
    seconds = time.time() - t0
    full_windows = min(a.final_eval_windows, (held.numel() - 1) // (a.seq + 1))
    held_loss, held_mtp = evaluate(model, held, a.seq, full_windows)
    w.writerow([step, tokens, f"{seconds:.1f}", "", "", f"{held_loss:.4f}", f"{held_mtp:.4f}"])
    log.close()
    print(f"done: {step} steps, {tokens} tokens, {seconds:.0f} s; held-out loss {held_loss:.4f} "
          f"(perplexity {math.exp(held_loss):.2f}), MTP held-out loss {held_mtp:.4f}", flush=True)
    torch.save({"config": c, "state": model.state_dict(), "step": step}, a.out / "model.pt")
    torch.save([o.state_dict() for o in opts], a.out / "optim.pt")
    for prompt in ["In the beginning", "And the LORD said unto Moses,"]:
        print(f"greedy: {greedy(model, tok, prompt, 40, bos)!r}", flush=True)
    info = {
        "config": c, "parameters": n_params, "mtp_parameters": n_mtp, "steps": step, "tokens": tokens,
        "seconds": round(seconds, 1), "batch": a.batch, "seq": a.seq, "muon_lr": a.muon_lr, "adam_lr": a.adam_lr,
        "mtp_weight": a.mtp_weight, "seed": a.seed, "optimizers": opt_info,
        "train_tokens": int(train.numel()), "heldout_tokens": int(held.numel()),
        "heldout_loss": held_loss, "heldout_mtp_loss": held_mtp, "heldout_windows": full_windows,
        "torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
    }
    if a.resume is not None:
        info["resumed"] = {"from_step": step0, "from_tokens": tokens0, "from_seconds": seconds0,
                           "from_heldout_loss": prev_info.get("heldout_loss"), "optimizer_state": resumed_opt,
                           "warmup": warmup, "minutes": a.minutes, "threads": a.threads}
    (a.out / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
