#!/usr/bin/env python3
"""Second oracle for dsv4: golden logits made by Hugging Face transformers' DeepSeek-V4 model.

The first oracle (tests/data/reference/) is DeepSeek's official inference code. This script builds the
independent Hugging Face implementation (`transformers.DeepseekV4ForCausalLM`, transformers 5.23) on
tiny configurations with seeded random weights, runs it in float32 on the CPU and writes, per
configuration, into OUT/<name>/:

  config.json            the configuration as transformers writes it (`DeepseekV4Config.save_pretrained`)
  reference_config.json  the same model in the reference's ModelArgs field names
  model.safetensors      the weights under the HF model's own parameter names (its `state_dict()`),
                         in the dtypes the model has when loaded with dtype=bfloat16
  weights.safetensors    the same weights under the reference's names (inference/model.py
                         `Transformer.state_dict()`), in that module's dtypes
  name_map.json          reference name -> HF name (and the slice of a merged expert tensor)
  golden.safetensors     tokens, logits of every prefill position, prefix-then-decode logits
                         (with the HF cache), the last block's output and the routing selections

tools/golden/README.md documents every key. The weights are loaded into the HF model through
transformers' own checkpoint conversion (the release-name loader), and the script asserts that this
gives exactly the tensors of the explicit name map, so the map is the one transformers uses.

Usage:
  python3 tools/golden/make_hf_golden.py --out tests/data/hf             # write hf_a and hf_b
  python3 tools/golden/make_hf_golden.py --compare-reference tests/data/reference/tiny_a
      # run the HF model on a reference configuration's weights and compare with its golden_fp32
      # (prints numbers, writes nothing)

Requirements: torch (CPU build is enough), transformers==5.23.*, safetensors; see README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save

try:
    import transformers
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
except ImportError as exc:  # pragma: no cover - environment problem, explained to the user
    sys.exit(f"transformers with DeepSeek-V4 support is required (pip install 'transformers==5.23.*'): {exc}")

# --------------------------------------------------------------------------------------------------
# Configurations (reference ModelArgs field names). Both keep every V4 part the HF model has:
# sliding-window (SWA), CSA (ratio 4, overlapping compressor + lightning indexer) and HCA layers,
# hash-routed and score-routed MoE with a shared expert, hyper-connections (mHC), YaRN on the
# compressed layers. The HF model has a single HCA ratio per model and no MTP block.

COMMON = {
    "max_batch_size": 1,
    "dtype": "bf16",
    "scale_fmt": "ue8m0",
    "expert_dtype": None,
    "scale_dtype": "fp8",
    "n_mtp_layers": 0,
    "n_shared_experts": 1,
    "score_func": "sqrtsoftplus",
    "norm_eps": 1e-6,
    "compress_rope_theta": 160000.0,
    "original_seq_len": 65536,
    "rope_theta": 10000.0,
    "rope_factor": 16.0,
    "beta_fast": 32,
    "beta_slow": 1,
    "hc_mult": 4,
    "hc_sinkhorn_iters": 20,
    "hc_eps": 1e-6,
    "max_seq_len": 128,
}

CONFIGS = {
    # SWA+hash, CSA+hash, HCA(8)+scored, CSA+scored.
    "hf_a": dict(
        COMMON,
        vocab_size=256, dim=64, moe_inter_dim=16, n_layers=4, n_hash_layers=2, n_heads=2,
        n_routed_experts=8, n_activated_experts=2, route_scale=2.5, swiglu_limit=1.5,
        q_lora_rank=32, head_dim=96, rope_head_dim=32, o_groups=2, o_lora_rank=16, window_size=8,
        compress_ratios=[0, 4, 8, 4], index_n_heads=16, index_head_dim=64, index_topk=4,
    ),
    # CSA in a hash layer, HCA(16) in a hash layer, SWA+scored, CSA+scored, HCA(16)+scored;
    # 3 of 12 experts, 4 heads in 2 output groups, a window of 16.
    "hf_b": dict(
        COMMON,
        vocab_size=192, dim=48, moe_inter_dim=16, n_layers=5, n_hash_layers=2, n_heads=4,
        n_routed_experts=12, n_activated_experts=3, route_scale=1.5, swiglu_limit=2.0,
        q_lora_rank=32, head_dim=96, rope_head_dim=32, o_groups=2, o_lora_rank=16, window_size=16,
        compress_ratios=[4, 16, 0, 4, 16], index_n_heads=16, index_head_dim=64, index_topk=6,
    ),
}

RUNS = {  # weight seed, sequence length, decode prefixes, gate-bias std
    "hf_a": dict(seed=5115, n_tokens=64, decode_from=[5, 37], gate_bias_std=0.5),
    "hf_b": dict(seed=5219, n_tokens=96, decode_from=[13, 70], gate_bias_std=1.0),
}

# --------------------------------------------------------------------------------------------------
# Output


def save_file(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch.save_file with the header's metadata in sorted order (the library writes it
    in hash order), so that a rerun reproduces every file byte for byte."""
    blob = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > n:
        raise AssertionError("safetensors header grew")
    with open(path, "wb") as f:
        f.write(blob[:8] + text + b" " * (n - len(text)) + blob[8 + n :])


# --------------------------------------------------------------------------------------------------
# Configuration conversion


def layer_type(ratio: int) -> str:
    if ratio == 0:
        return "sliding_attention"
    if ratio == 4:
        return "compressed_sparse_attention"
    return "heavily_compressed_attention"


def hf_config(ref: dict) -> DeepseekV4Config:
    """The DeepseekV4Config of a reference ModelArgs dict (only what the HF model can express)."""
    n = ref["n_layers"]
    ratios = ref["compress_ratios"][:n]
    hca = sorted({r for r in ratios if r not in (0, 4)})
    if len(hca) > 1:
        raise ValueError(f"the HF model supports one HCA ratio per model, this config has {hca}")
    if ref["score_func"] != "sqrtsoftplus" or ref["n_shared_experts"] != 1:
        raise ValueError("only sqrtsoftplus routing with one shared expert is set up here")
    return DeepseekV4Config(
        vocab_size=ref["vocab_size"],
        hidden_size=ref["dim"],
        moe_intermediate_size=ref["moe_inter_dim"],
        num_hidden_layers=n,
        num_attention_heads=ref["n_heads"],
        num_key_value_heads=1,
        head_dim=ref["head_dim"],
        q_lora_rank=ref["q_lora_rank"],
        partial_rotary_factor=ref["rope_head_dim"] / ref["head_dim"],
        num_experts_per_tok=ref["n_activated_experts"],
        n_routed_experts=ref["n_routed_experts"],
        n_shared_experts=ref["n_shared_experts"],
        scoring_func=ref["score_func"],
        norm_topk_prob=True,
        routed_scaling_factor=ref["route_scale"],
        max_position_embeddings=ref["max_seq_len"],
        rope_theta=ref["rope_theta"],
        compress_rope_theta=ref["compress_rope_theta"],
        layer_types=[layer_type(r) for r in ratios],
        compress_rates={
            "compressed_sparse_attention": 4,
            "heavily_compressed_attention": hca[0] if hca else 128,
        },
        mlp_layer_types=["hash_moe"] * ref["n_hash_layers"] + ["moe"] * (n - ref["n_hash_layers"]),
        hc_mult=ref["hc_mult"],
        hc_sinkhorn_iters=ref["hc_sinkhorn_iters"],
        hc_eps=ref["hc_eps"],
        swiglu_limit=ref["swiglu_limit"],
        sliding_window=ref["window_size"],
        o_groups=ref["o_groups"],
        o_lora_rank=ref["o_lora_rank"],
        index_n_heads=ref["index_n_heads"],
        index_head_dim=ref["index_head_dim"],
        index_topk=ref["index_topk"],
        num_nextn_predict_layers=ref["n_mtp_layers"],
        rms_norm_eps=ref["norm_eps"],
        rope_parameters={
            "rope_type": "yarn",
            "factor": ref["rope_factor"],
            "original_max_position_embeddings": ref["original_seq_len"],
            "beta_fast": ref["beta_fast"],
            "beta_slow": ref["beta_slow"],
        },
        tie_word_embeddings=False,
    )


# --------------------------------------------------------------------------------------------------
# Reference parameter list (names, shapes, dtypes of inference/model.py's state_dict) and weights

BF16, F32, I32 = torch.bfloat16, torch.float32, torch.int32


def reference_params(c: dict) -> list[tuple[str, tuple[int, ...], torch.dtype, str]]:
    """(name, shape, dtype, init kind) in state_dict order, MTP excluded."""
    d, hc = c["dim"], c["hc_mult"]
    mix = (2 + hc) * hc
    hd, ih = c["head_dim"], c["index_head_dim"]
    inter, e = c["moe_inter_dim"], c["n_routed_experts"]
    out: list = [("embed.weight", (c["vocab_size"], d), BF16, "embed")]
    for i in range(c["n_layers"]):
        p = f"layers.{i}."
        ratio = c["compress_ratios"][i]
        out += [
            (p + "attn.attn_sink", (c["n_heads"],), F32, "sink"),
            (p + "attn.wq_a.weight", (c["q_lora_rank"], d), BF16, "linear"),
            (p + "attn.q_norm.weight", (c["q_lora_rank"],), F32, "norm"),
            (p + "attn.wq_b.weight", (c["n_heads"] * hd, c["q_lora_rank"]), BF16, "linear"),
            (p + "attn.wkv.weight", (hd, d), BF16, "linear"),
            (p + "attn.kv_norm.weight", (hd,), F32, "norm"),
            (p + "attn.wo_a.weight", (c["o_groups"] * c["o_lora_rank"], c["n_heads"] * hd // c["o_groups"]), BF16, "linear"),
            (p + "attn.wo_b.weight", (d, c["o_groups"] * c["o_lora_rank"]), BF16, "linear_out"),
        ]
        if ratio:
            coff = 2 if ratio == 4 else 1
            out += [
                (p + "attn.compressor.ape", (ratio, coff * hd), F32, "ape"),
                (p + "attn.compressor.wkv.weight", (coff * hd, d), F32, "linear"),
                (p + "attn.compressor.wgate.weight", (coff * hd, d), F32, "linear"),
                (p + "attn.compressor.norm.weight", (hd,), F32, "norm"),
            ]
            if ratio == 4:
                out += [
                    (p + "attn.indexer.wq_b.weight", (c["index_n_heads"] * ih, c["q_lora_rank"]), BF16, "linear"),
                    (p + "attn.indexer.weights_proj.weight", (c["index_n_heads"], d), BF16, "linear"),
                    (p + "attn.indexer.compressor.ape", (ratio, 2 * ih), F32, "ape"),
                    (p + "attn.indexer.compressor.wkv.weight", (2 * ih, d), F32, "linear"),
                    (p + "attn.indexer.compressor.wgate.weight", (2 * ih, d), F32, "linear"),
                    (p + "attn.indexer.compressor.norm.weight", (ih,), F32, "norm"),
                ]
        out.append((p + "ffn.gate.weight", (e, d), BF16, "linear"))
        if i < c["n_hash_layers"]:
            out.append((p + "ffn.gate.tid2eid", (c["vocab_size"], c["n_activated_experts"]), I32, "tid2eid"))
        else:
            out.append((p + "ffn.gate.bias", (e,), F32, "gate_bias"))
        for j in range(e):
            q = f"{p}ffn.experts.{j}."
            out += [
                (q + "w1.weight", (inter, d), BF16, "linear"),
                (q + "w2.weight", (d, inter), BF16, "linear_out"),
                (q + "w3.weight", (inter, d), BF16, "linear"),
            ]
        out += [
            (p + "ffn.shared_experts.w1.weight", (inter, d), BF16, "linear"),
            (p + "ffn.shared_experts.w2.weight", (d, inter), BF16, "linear_out"),
            (p + "ffn.shared_experts.w3.weight", (inter, d), BF16, "linear"),
            (p + "attn_norm.weight", (d,), F32, "norm"),
            (p + "ffn_norm.weight", (d,), F32, "norm"),
            (p + "hc_attn_fn", (mix, hc * d), F32, "hc_fn"),
            (p + "hc_ffn_fn", (mix, hc * d), F32, "hc_fn"),
            (p + "hc_attn_base", (mix,), F32, "hc_base"),
            (p + "hc_ffn_base", (mix,), F32, "hc_base"),
            (p + "hc_attn_scale", (3,), F32, "hc_scale"),
            (p + "hc_ffn_scale", (3,), F32, "hc_scale"),
        ]
    out += [
        ("norm.weight", (d,), F32, "norm"),
        ("head.weight", (c["vocab_size"], d), F32, "head"),
        ("hc_head_fn", (hc, hc * d), F32, "hc_fn"),
        ("hc_head_base", (hc,), F32, "hc_base"),
        ("hc_head_scale", (1,), F32, "hc_scale"),
    ]
    return out


def make_weights(c: dict, seed: int, gate_bias_std: float) -> dict[str, torch.Tensor]:
    """Seeded random weights (the golden reference data set's recipe), every value bf16-exact."""
    g = torch.Generator().manual_seed(seed)
    d = c["dim"]
    w = {}
    for name, shape, dtype, kind in reference_params(c):
        if kind == "tid2eid":
            rows = [torch.randperm(c["n_routed_experts"], generator=g)[: c["n_activated_experts"]] for _ in range(shape[0])]
            w[name] = torch.stack(rows).to(I32)
            continue
        n = torch.randn(shape, generator=g)
        if kind == "embed":
            t = n
        elif kind in ("linear", "linear_out"):
            t = n / math.sqrt(shape[1]) * (0.3 if kind == "linear_out" else 1.0)
        elif kind == "head":
            t = n * 2.0 / math.sqrt(d)
        elif kind == "norm":
            t = 1.0 + 0.1 * n
        elif kind == "sink":
            t = n
        elif kind == "ape":
            t = 0.5 * n
        elif kind == "hc_fn":
            t = n / math.sqrt(shape[1])
        elif kind == "hc_base":
            t = 0.5 * n
        elif kind == "hc_scale":
            t = 0.5 + torch.rand(shape, generator=g)
        elif kind == "gate_bias":
            t = gate_bias_std * n
        else:
            raise AssertionError(kind)
        w[name] = t.to(BF16).to(dtype).contiguous()
    return w


# --------------------------------------------------------------------------------------------------
# Name mapping reference -> HF (what transformers' DeepSeek-V4 checkpoint conversion does)

_LAYER_RENAMES = [
    ("attn.attn_sink", "self_attn.sinks"),
    ("attn.wq_a.weight", "self_attn.q_a_proj.weight"),
    ("attn.q_norm.weight", "self_attn.q_a_norm.weight"),
    ("attn.wq_b.weight", "self_attn.q_b_proj.weight"),
    ("attn.wkv.weight", "self_attn.kv_proj.weight"),
    ("attn.kv_norm.weight", "self_attn.kv_norm.weight"),
    ("attn.wo_a.weight", "self_attn.o_a_proj.weight"),
    ("attn.wo_b.weight", "self_attn.o_b_proj.weight"),
    ("attn.compressor.ape", "self_attn.compressor.position_bias"),
    ("attn.compressor.wkv.weight", "self_attn.compressor.kv_proj.weight"),
    ("attn.compressor.wgate.weight", "self_attn.compressor.gate_proj.weight"),
    ("attn.compressor.norm.weight", "self_attn.compressor.kv_norm.weight"),
    ("attn.indexer.wq_b.weight", "self_attn.compressor.indexer.q_b_proj.weight"),
    ("attn.indexer.weights_proj.weight", "self_attn.compressor.indexer.scorer.weights_proj.weight"),
    ("attn.indexer.compressor.ape", "self_attn.compressor.indexer.position_bias"),
    ("attn.indexer.compressor.wkv.weight", "self_attn.compressor.indexer.kv_proj.weight"),
    ("attn.indexer.compressor.wgate.weight", "self_attn.compressor.indexer.gate_proj.weight"),
    ("attn.indexer.compressor.norm.weight", "self_attn.compressor.indexer.kv_norm.weight"),
    ("ffn.gate.weight", "mlp.gate.weight"),
    ("ffn.gate.tid2eid", "mlp.gate.tid2eid"),
    ("ffn.gate.bias", "mlp.gate.e_score_correction_bias"),
    ("ffn.shared_experts.w1.weight", "mlp.shared_experts.gate_proj.weight"),
    ("ffn.shared_experts.w2.weight", "mlp.shared_experts.down_proj.weight"),
    ("ffn.shared_experts.w3.weight", "mlp.shared_experts.up_proj.weight"),
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("hc_attn_fn", "attn_hc.fn"),
    ("hc_attn_base", "attn_hc.base"),
    ("hc_attn_scale", "attn_hc.scale"),
    ("hc_ffn_fn", "ffn_hc.fn"),
    ("hc_ffn_base", "ffn_hc.base"),
    ("hc_ffn_scale", "ffn_hc.scale"),
]
_TOP_RENAMES = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "head.weight": "lm_head.weight",
    "hc_head_fn": "model.hc_head.hc_fn",
    "hc_head_base": "model.hc_head.hc_base",
    "hc_head_scale": "model.hc_head.hc_scale",
}


def name_map(c: dict) -> dict[str, dict]:
    """reference name -> {"hf": HF name[, "expert": e, "rows": [a, b]]}.

    Routed experts are merged by HF: gate_up_proj[e] = cat(w1, w3) along the output rows
    ([2*inter, dim]: rows 0..inter-1 = w1, inter..2*inter-1 = w3); down_proj[e] = w2 ([dim, inter]).
    """
    inter = c["moe_inter_dim"]
    m: dict[str, dict] = {}
    for name, _, _, _ in reference_params(c):
        if name in _TOP_RENAMES:
            m[name] = {"hf": _TOP_RENAMES[name]}
            continue
        _, layer, rest = name.split(".", 2)
        p = f"model.layers.{layer}."
        if rest.startswith("ffn.experts."):
            _, _, e, which, _ = rest.split(".")
            e = int(e)
            if which == "w2":
                m[name] = {"hf": p + "mlp.experts.down_proj", "expert": e}
            else:
                a = 0 if which == "w1" else inter
                m[name] = {"hf": p + "mlp.experts.gate_up_proj", "expert": e, "rows": [a, a + inter]}
            continue
        for src, dst in _LAYER_RENAMES:
            if rest == src:
                m[name] = {"hf": p + dst}
                break
        else:
            raise KeyError(name)
    return m


def to_hf_state(c: dict, w: dict[str, torch.Tensor], dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Reference weights -> HF state_dict tensors (float tensors in `dtype`, tid2eid int64)."""
    inter, e, d = c["moe_inter_dim"], c["n_routed_experts"], c["dim"]
    out: dict[str, torch.Tensor] = {}
    for ref_name, spec in name_map(c).items():
        t = w[ref_name]
        hf = spec["hf"]
        if "expert" in spec:
            if hf not in out:
                shape = (e, 2 * inter, d) if hf.endswith("gate_up_proj") else (e, d, inter)
                out[hf] = torch.zeros(shape, dtype=dtype)
            rows = spec.get("rows")
            if rows:
                out[hf][spec["expert"], rows[0] : rows[1]] = t.to(dtype)
            else:
                out[hf][spec["expert"]] = t.to(dtype)
        elif t.dtype == I32:
            out[hf] = t.to(torch.int64)
        else:
            out[hf] = t.to(dtype)
    return out


def load_hf_model(c: dict, w: dict[str, torch.Tensor], dtype=torch.float32) -> DeepseekV4ForCausalLM:
    """Builds the HF model from reference-named weights through transformers' own loader, and checks
    that it holds exactly the tensors of `to_hf_state` (i.e. the name map is transformers' map)."""
    cfg = hf_config(c)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in w.items()}, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        model = DeepseekV4ForCausalLM.from_pretrained(tmp, dtype=dtype)
    model.eval()
    expect = to_hf_state(c, w)
    got = model.state_dict()
    if set(got) != set(expect):
        raise AssertionError(f"name map mismatch: missing {sorted(set(got) - set(expect))[:5]}, extra {sorted(set(expect) - set(got))[:5]}")
    for k, v in got.items():
        if not torch.equal(v.to(expect[k].dtype), expect[k]):
            raise AssertionError(f"tensor {k} differs between transformers' loader and the name map")
    return model


# --------------------------------------------------------------------------------------------------
# Runs


class Recorder:
    """Routing selections of a prefill (hooks; no change to the computation)."""

    def __init__(self, model: DeepseekV4ForCausalLM, c: dict):
        self.c = c
        self.data: dict[str, torch.Tensor] = {}
        self.gaps = {"moe": math.inf, "indexer": math.inf}
        self.handles = []
        for i, layer in enumerate(model.model.layers):
            self.handles.append(layer.mlp.gate.register_forward_hook(self._gate_hook(i, layer.mlp.gate)))
            comp = layer.self_attn.compressor
            if comp is not None and hasattr(comp, "indexer"):
                self.handles.append(comp.indexer.register_forward_hook(self._indexer_hook(i)))
                self.handles.append(comp.indexer.scorer.register_forward_hook(self._scorer_hook(i)))
            self.handles.append(layer.register_forward_hook(self._layer_hook(i)))

    def remove(self):
        for h in self.handles:
            h.remove()

    def _layer_hook(self, i):
        def hook(mod, args, out):
            if i == self.c["n_layers"] - 1:  # the last decoder layer's output: [B, S, hc_mult, dim]
                self.data["prefill.hidden_out"] = out[0].detach().float().clone()
        return hook

    def _gate_hook(self, i, gate):
        def hook(mod, args, out):
            logits, weights, idx = out
            order = idx.argsort(-1)
            self.data[f"prefill.layers.{i}.ffn.gate.indices"] = idx.gather(-1, order).to(torch.int32)
            self.data[f"prefill.layers.{i}.ffn.gate.weights"] = weights.gather(-1, order).float()
            if hasattr(gate, "e_score_correction_bias"):
                s = torch.nn.functional.softplus(logits.float()).sqrt() + gate.e_score_correction_bias.float()
                top = s.topk(gate.top_k + 1, dim=-1).values
                self.gaps["moe"] = min(self.gaps["moe"], (top[:, -2] - top[:, -1]).min().item())
        return hook

    def _scorer_hook(self, i):
        def hook(mod, args, out):
            self._scores = out.detach()
        return hook

    def _indexer_hook(self, i):
        def hook(mod, args, out):
            pos = args[2][0]
            ratio, k = 4, self.c["index_topk"]
            valid = (pos + 1) // ratio  # visible compressed entries per query
            sc = self._scores[0]
            for s in range(sc.shape[0]):
                n = int(valid[s])
                if n > k:
                    top = sc[s, :n].topk(k + 1).values
                    self.gaps["indexer"] = min(self.gaps["indexer"], (top[-2] - top[-1]).item())
            sel = out[0].clone()
            sel = torch.where(sel < 0, torch.full_like(sel, 1 << 30), sel).sort(-1).values
            sel = torch.where(sel == (1 << 30), torch.full_like(sel, -1), sel)
            self.data[f"prefill.layers.{i}.attn.indexer.topk_idxs"] = sel.to(torch.int32)
        return hook


@torch.no_grad()
def run_model(model, c: dict, tokens: torch.Tensor, decode_from: list[int]):
    rec = Recorder(model, c)
    logits = model(tokens[None], use_cache=False).logits[0].float()
    rec.remove()
    out = {"tokens": tokens.to(torch.int32), "prefill.logits_all": logits}
    out.update(rec.data)
    cached = model(tokens[None], use_cache=True).logits[0].float()
    if not torch.equal(cached, logits):
        raise AssertionError("prefill with and without the cache differ")
    dev = 0.0
    for p in decode_from:
        o = model(tokens[None, :p], use_cache=True)
        cache = o.past_key_values
        out[f"decode_from_{p}.prefill_logits"] = o.logits[0, -1].float()
        rows = []
        for i in range(p, tokens.numel()):
            o = model(tokens[None, i : i + 1], past_key_values=cache, use_cache=True)
            cache = o.past_key_values
            rows.append(o.logits[0, -1].float())
        out[f"decode_from_{p}.logits"] = torch.stack(rows)
        dev = max(dev, (out[f"decode_from_{p}.logits"] - logits[p:]).abs().max().item())
    return out, rec.gaps, dev


def stats(a: torch.Tensor, b: torch.Tensor) -> str:
    d = (a - b).abs()
    return (f"max {d.max().item():.3g}  mean {d.mean().item():.3g}  relL2 {((a - b).norm() / b.norm()).item():.3g}  "
            f"top1 {(a.argmax(-1) == b.argmax(-1)).float().mean().item():.3f}")


def write_config(name: str, out_dir: Path) -> None:
    c, r = CONFIGS[name], RUNS[name]
    w = make_weights(c, r["seed"], r["gate_bias_std"])
    model = load_hf_model(c, w)
    g = torch.Generator().manual_seed(r["seed"] + 1)
    tokens = torch.randint(0, c["vocab_size"], (r["n_tokens"],), generator=g)
    golden, gaps, dev = run_model(model, c, tokens, r["decode_from"])

    d = out_dir / name
    d.mkdir(parents=True, exist_ok=True)
    hf_config(c).save_pretrained(d)
    (d / "reference_config.json").write_text(json.dumps(c, indent=2) + "\n")
    meta = {
        "generator": "tools/golden/make_hf_golden.py",
        "config": name,
        "weights_seed": str(r["seed"]),
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    bf16_model_dtypes = {k: v.dtype for k, v in load_hf_model(c, w, dtype=torch.bfloat16).state_dict().items()}
    hf_state = {k: v.to(bf16_model_dtypes[k]).contiguous() for k, v in to_hf_state(c, w).items()}
    save_file(hf_state, d / "model.safetensors", metadata=meta)
    save_file(w, d / "weights.safetensors", metadata=meta)
    (d / "name_map.json").write_text(json.dumps(name_map(c), indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in golden.items()}, d / "golden.safetensors", metadata=dict(meta, mode="fp32"))
    size = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name}: {len(w)} reference tensors, {sum(v.numel() for v in w.values())} values, {size / 1e6:.2f} MB in {d}")
    print(f"  smallest top-k boundary gap: MoE {gaps['moe']:.3g}, indexer {gaps['indexer']:.3g}")
    print(f"  decode vs prefill: max |d logit| {dev:.3g}")


def compare_reference(ref_dir: Path) -> None:
    c = json.loads((ref_dir / "config.json").read_text())
    w = load_file(ref_dir / "weights.safetensors")
    g = load_file(ref_dir / "golden_fp32.safetensors")
    c_hf = dict(c, n_mtp_layers=0)
    model = load_hf_model(c_hf, {k: v for k, v in w.items() if not k.startswith("mtp.")})
    tokens = g["tokens"].long()
    decode = sorted(int(k.split("_")[2].split(".")[0]) for k in g if k.startswith("decode_from_") and k.endswith(".logits"))
    out, _, dev = run_model(model, c_hf, tokens, decode)
    print(f"{ref_dir.name}: HF (fp32) vs the reference's golden_fp32 (FP8/FP4 simulation on)")
    print("  prefill.logits_all       ", stats(out["prefill.logits_all"], g["prefill.logits_all"]))
    for p in decode:
        print(f"  decode_from_{p}.logits".ljust(28), stats(out[f"decode_from_{p}.logits"], g[f"decode_from_{p}.logits"]))
    print(f"  HF decode vs HF prefill: max |d logit| {dev:.3g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output folder (e.g. tests/data/hf)")
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--compare-reference", type=Path, metavar="DIR", help="reference configuration folder to compare with")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float32)
    transformers.utils.logging.set_verbosity_error()  # the YaRN factor notice (see docs/oracles.md)
    transformers.utils.logging.disable_progress_bar()
    if not a.out and not a.compare_reference:
        ap.error("give --out and/or --compare-reference")
    if a.out:
        for name in a.configs:
            write_config(name, a.out)
    if a.compare_reference:
        compare_reference(a.compare_reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
