#!/usr/bin/env python3
"""Collects the JSON headers of a sharded safetensors checkpoint into one small file.

Used to keep the tensor listing (names, dtypes, shapes) of a checkpoint in tests/data without its
weights: python3 tools/extract_safetensors_headers.py CHECKPOINT_DIR OUT.json
"""
import json
import pathlib
import struct
import sys


def main() -> None:
    src = pathlib.Path(sys.argv[1])
    out = {}
    for shard in sorted(src.glob("*.safetensors")):
        with open(shard, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            out[name] = {"dtype": info["dtype"], "shape": info["shape"], "shard": shard.name,
                         "bytes": info["data_offsets"][1] - info["data_offsets"][0]}
    pathlib.Path(sys.argv[2]).write_text(json.dumps(out, indent=0, sort_keys=True))


if __name__ == "__main__":
    main()
