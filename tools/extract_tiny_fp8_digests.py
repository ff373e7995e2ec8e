#!/usr/bin/env python3
"""Writes the SHA-256 of every tensor of the tiny_fp8 reference weights (runtime layout).

The golden reference data set's `tiny_fp8/weights.safetensors` (7.8 MB) holds the 790 tensors the
official reference runs after convert.py: FP8 e4m3 + 128x128 e8m0 scales, FP4 e2m1 (dtype F4) +
per-32 scales, `wo_a` multiplied out to BF16, RMSNorm/compressor/head weights widened to F32,
`tid2eid` as I32. Rather than committing the file, the tests compare the release-layout shards of
`tiny_fp8/hf/` against these digests: name -> [dtype, shape, sha256 of the raw tensor bytes].
Standard library only:

    python3 tools/extract_tiny_fp8_digests.py GOLDEN/reference/tiny_fp8/weights.safetensors \
        tests/data/reference/tiny_fp8/runtime_digests.json
"""
import hashlib
import json
import pathlib
import struct
import sys


def main() -> None:
    src = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    digests = {}
    for name in sorted(header):
        if name == "__metadata__":
            continue
        info = header[name]
        begin, end = info["data_offsets"]
        digests[name] = [info["dtype"], info["shape"], hashlib.sha256(body[begin:end]).hexdigest()]
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(digests.items())]
    out.write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
