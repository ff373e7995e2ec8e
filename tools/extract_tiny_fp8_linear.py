#!/usr/bin/env python3
"""Copies a few native-format weights of the tiny_fp8 reference checkpoint into one small file.

The golden reference data set's `tiny_fp8/` folder holds the runtime weights (`weights.safetensors`:
FP8 e4m3 + 128x128 e8m0 scales, FP4 e2m1 (dtype F4) + per-32 scales, `wo_a` already dequantised
to BF16) and the release layout (`hf/`: `wo_a` still FP8 + scale, experts as I8 packed bytes).
The tests of Linear<Fp8B128> / Linear<Fp4G32> need only a handful of them, copied byte for byte
(no conversion, standard library only):

    python3 tools/extract_tiny_fp8_linear.py GOLDEN/reference/tiny_fp8 \
        tests/data/reference/tiny_fp8/linear_weights.safetensors

Names are kept; tensors taken from `hf/` get the prefix `hf.`.
"""
import json
import pathlib
import struct
import sys

RUNTIME = [
    "layers.0.attn.wo_a.weight",  # BF16 [128, 384] = convert.py's q * s
    "layers.0.attn.wkv.weight",  # F8_E4M3 [192, 128]: a partial second row band
    "layers.0.attn.wkv.scale",
    "layers.0.attn.wq_b.weight",  # F8_E4M3 [768, 128]: six row bands
    "layers.0.attn.wq_b.scale",
    "layers.0.ffn.experts.0.w1.weight",  # F4 [128, 128] (64 bytes per row)
    "layers.0.ffn.experts.0.w1.scale",
    "layers.0.ffn.experts.0.w2.weight",
    "layers.0.ffn.experts.0.w2.scale",
    "layers.0.ffn.experts.0.w3.weight",
    "layers.0.ffn.experts.0.w3.scale",
]
RELEASE = [
    "layers.0.attn.wo_a.weight",  # F8_E4M3 [128, 384]
    "layers.0.attn.wo_a.scale",  # F8_E8M0 [1, 3]
    "layers.0.ffn.experts.0.w1.weight",  # I8 [128, 64]: the same bytes as the F4 tensor
]
ALIGN = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "BF16": 2, "F16": 2, "I16": 2}


def read(path: pathlib.Path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return header, data[8 + n:]


def take(header, body, name):
    info = header[name]
    begin, end = info["data_offsets"]
    return info["dtype"], info["shape"], body[begin:end]


def main() -> None:
    src = pathlib.Path(sys.argv[1])
    out_path = pathlib.Path(sys.argv[2])
    tensors = {}
    header, body = read(src / "weights.safetensors")
    for name in RUNTIME:
        tensors[name] = take(header, body, name)
    index = json.loads((src / "hf" / "model.safetensors.index.json").read_text())
    for name in RELEASE:
        h, b = read(src / "hf" / index["weight_map"][name])
        tensors["hf." + name] = take(h, b, name)

    # Widest alignment first, so that every tensor starts aligned to its element size.
    order = sorted(tensors, key=lambda k: (-ALIGN.get(tensors[k][0], 1), k))
    out_header = {"__metadata__": {"source": "golden reference data set, tiny_fp8"}}
    offset = 0
    for name in order:
        dtype, shape, raw = tensors[name]
        out_header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(tensors[name][2])


if __name__ == "__main__":
    main()
