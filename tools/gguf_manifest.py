#!/usr/bin/env python3
"""Write a small JSON manifest of a GGUF file: everything needed to check that another writer
produced the same file, without storing the file itself.

Used for tests/data/llamacpp/manifests/: the llama.cpp-made quantizations of the tiny
DeepSeek-V4 model (dsv4-tiny-{f32,f16,q8_0,q4_k_m,q2_k,mxfp4_moe,mtp-q8_0}.gguf, llama.cpp commit
82bb485, `llama-quantize` without an importance matrix) are described by their manifests only;
tests/unit/gguf_quantize_test.cpp quantizes the F32 file with dsv4 and compares.

The manifest holds
  * file: name, size, SHA-256 of the whole file and of its header (the bytes before the data
    section), GGUF version, alignment, data section offset;
  * kv: every key/value pair in file order: key, value type ("UINT32", "STRING", ...), for arrays
    the element type and count, the SHA-256 of the value's encoding in the file (for an array:
    element type, count and elements; for a string: length and bytes; for a scalar: its bytes),
    and the value itself when it is a scalar or a short array (for people reading the manifest);
  * tensors: every tensor in file order: name, ggml type name, ne (ne0 first), offset inside the
    data section, byte size and the SHA-256 of its bytes.

Usage: pip install gguf && python3 tools/gguf_manifest.py FILE.gguf [...] --out-dir DIR
(writes DIR/<file stem>.json for each FILE). Needs the `gguf` package from PyPI (0.19.0 was used;
it brings numpy).
"""

import argparse
import hashlib
import json
import os
import sys

import gguf
import numpy as np

SHORT_ARRAY = 8  # arrays up to this many elements are written out in full


def sha256(data) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def scalar_value(field, vtype):
    part = field.parts[field.data[0]]
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    v = part[0].item()
    if vtype == gguf.GGUFValueType.BOOL:
        return bool(v)
    return v


def kv_entry(field):
    vtype = field.types[0]
    # parts: key length, key bytes, value type, then the value's own encoding
    value_bytes = b"".join(np.asarray(p).tobytes() for p in field.parts[3:])
    entry = {"key": field.name, "type": vtype.name, "sha256": sha256(value_bytes)}
    if vtype == gguf.GGUFValueType.ARRAY:
        etype = field.types[1] if len(field.types) > 1 else gguf.GGUFValueType.UINT8
        entry["element_type"] = etype.name
        entry["count"] = len(field.data)
        if len(field.data) <= SHORT_ARRAY and etype != gguf.GGUFValueType.ARRAY:
            vals = []
            for i in field.data:
                p = field.parts[i]
                if etype == gguf.GGUFValueType.STRING:
                    vals.append(bytes(p).decode("utf-8", errors="replace"))
                elif etype == gguf.GGUFValueType.BOOL:
                    vals.append(bool(p[0]))
                else:
                    vals.append(p[0].item())
            entry["value"] = vals
    else:
        entry["value"] = scalar_value(field, vtype)
    return entry


def manifest(path: str) -> dict:
    reader = gguf.GGUFReader(path, "r")
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    data_offset = reader.data_offset
    kv = [kv_entry(f) for name, f in reader.fields.items() if not name.startswith("GGUF.")]
    tensors = []
    for t in reader.tensors:
        begin = int(t.data_offset)
        end = begin + int(t.n_bytes)
        tensors.append({
            "name": t.name,
            "type": gguf.GGMLQuantizationType(t.tensor_type).name,
            "ne": [int(d) for d in t.shape],
            "offset": begin - data_offset,
            "nbytes": int(t.n_bytes),
            "sha256": sha256(raw[begin:end]),
        })
    return {
        "file": os.path.basename(path),
        "size": int(raw.shape[0]),
        "sha256": sha256(raw),
        "header_sha256": sha256(raw[:data_offset]),
        "version": int(reader.fields["GGUF.version"].parts[-1][0]),
        "alignment": int(reader.alignment),
        "data_offset": int(data_offset),
        "kv": kv,
        "tensors": tensors,
    }


def dumps(m: dict) -> str:
    """JSON with one key/value or tensor per line (small, and diffs stay readable)."""
    lines = ["{"]
    for k, v in m.items():
        if isinstance(v, list):
            items = ",\n".join("  " + json.dumps(e, ensure_ascii=False) for e in v)
            lines.append(f' "{k}": [\n{items}\n ],')
        else:
            lines.append(f' "{k}": {json.dumps(v, ensure_ascii=False)},')
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for path in args.files:
        m = manifest(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        out = os.path.join(args.out_dir, stem + ".json")
        with open(out, "w", encoding="utf-8") as f:
            f.write(dumps(m))
        print(f"{out}: {len(m['kv'])} keys, {len(m['tensors'])} tensors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
