#!/usr/bin/env python3
"""Write the seed corpora of the reader fuzz targets (fuzz/corpus/<target>/).

Seeds are small (a few KB, the largest 16 KB) valid files, so that the fuzzer starts from
inputs that reach deep into each reader, plus a few malformed ones (each a different early
rejection). Python standard library only; deterministic (fixed random seed).

  safetensors_header/  files with every dtype (scalars, empty tensors, F4, __metadata__), with
                       and without the 8-byte header padding, and malformed ones
  gguf/                the header of tests/data/llamacpp/models/dsv4-tiny-f32.gguf (every key/value,
                       the tokenizer included) with its first small tensors only; a file with every
                       value type and tensors in many ggml types (version 3 and 2); malformed ones
  config_json/         tests/data/configs/{tiny,tiny_fp8_hf,tiny_fp8_reference}.json, a wrapped
                       {"model_args": ...} config and malformed ones
  checkpoint_index/    model.safetensors.index.json files for the two shards the checkpoint_index
                       target writes (fuzz/checkpoint_index_fuzz.cpp), and malformed ones
  chat_json/           tests/data/tokenizer/chat_request.json, a few conversations of
                       tests/data/tokenizer/chat.jsonl (tools, developer, tasks, an unfinished
                       reply, a continuation) and its generated replies, good and malformed

Usage (from the repository root): python3 tools/gen_fuzz_seeds.py [OUT_DIR (default fuzz/corpus)]
Inputs that once crashed a reader are kept beside these seeds (named crash-*, found by the
fuzzers) and are not written by this script.
"""

import json
import pathlib
import random
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
rng = random.Random(20240427)


def rand_bytes(n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


# ---- safetensors ---------------------------------------------------------------------------------

ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
            "I8": 1, "U8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True) -> bytes:
    """tensors: [(name, dtype, shape, data)]; data offsets follow the list order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def tensor(name, dtype, shape):
    n = 1
    for d in shape:
        n *= d
    size = n // 2 if dtype == "F4" else n * ST_SIZES[dtype]
    if dtype == "BOOL":
        return (name, dtype, shape, bytes(rng.randrange(2) for _ in range(size)))
    return (name, dtype, shape, rand_bytes(size))


def safetensors_seeds():
    mixed = [tensor("a.f64", "F64", [2]), tensor("b.f32", "F32", [2, 3]),
             tensor("c.f16", "F16", [3]), tensor("d.bf16", "BF16", [2, 2]),
             tensor("e.fp8", "F8_E4M3", [4, 2]), tensor("e.scale", "F8_E8M0", [1, 2]),
             tensor("f.e5m2", "F8_E5M2", [3]), tensor("g.fp4", "F4", [2, 4]),
             tensor("h.i8", "I8", [2]), tensor("i.u8", "U8", [0, 5]), tensor("j.i16", "I16", [1]),
             tensor("k.i32", "I32", [2, 1]), tensor("l.i64", "I64", []),
             tensor("m.bool", "BOOL", [3])]
    valid = safetensors(mixed, {"format": "pt"})
    yield "mixed.safetensors", valid
    yield "unpadded.safetensors", safetensors(mixed[1:6], pad=False)
    yield "one_tensor.safetensors", safetensors([tensor("w", "BF16", [4, 4])])
    yield "empty.safetensors", safetensors([], {})
    yield "truncated.safetensors", valid[: len(valid) - 5]
    yield "header_past_end.safetensors", struct.pack("<Q", 1 << 40) + b"{}"
    overlap = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    yield "overlap.safetensors", struct.pack("<Q", len(overlap)) + overlap + bytes(12)
    bad = json.dumps({"a": {"dtype": "F32", "shape": [1 << 62, 8],
                            "data_offsets": [0, 4]}}).encode()
    yield "shape_overflow.safetensors", struct.pack("<Q", len(bad)) + bad + bytes(4)


# ---- GGUF ----------------------------------------------------------------------------------------

GGUF_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}
# ggml type id -> (block elements, block bytes) of the types the seeds use
GGML_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
               8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
               13: (256, 176), 14: (256, 210), 15: (256, 292), 20: (32, 18), 23: (256, 136),
               30: (1, 2), 39: (32, 17)}


def gguf_string(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype: int, value) -> bytes:
    if vtype == 8:
        return gguf_string(value)
    if vtype == 9:
        etype, items = value
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(gguf_value(etype, v) for v in items)
    return struct.pack("<" + GGUF_FIXED[vtype], value)


def gguf(kvs, tensors, version=3, alignment=32) -> bytes:
    """kvs: [(key, type, value)] or [(key, raw type+value bytes)]; tensors: [(name, ne, type,
    data)] laid out in order at the alignment."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for kv in kvs:
        out += gguf_string(kv[0])
        out += kv[1] if len(kv) == 2 else struct.pack("<I", kv[1]) + gguf_value(kv[1], kv[2])
    offset = 0
    data = b""
    for name, ne, ggml_type, blob in tensors:
        out += gguf_string(name) + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<q", d) for d in ne)
        out += struct.pack("<IQ", ggml_type, offset)
        pad = -len(blob) % alignment
        data += blob + bytes(pad)
        offset += len(blob) + pad
    out += bytes(-len(out) % alignment)
    return out + data


def gguf_tensor(name, ne, ggml_type):
    elems, size = GGML_BLOCKS[ggml_type]
    n = 1
    for d in ne:
        n *= d
    blob = rand_bytes(n // elems * size)
    if ggml_type == 0:  # finite F32 values
        blob = b"".join(struct.pack("<f", rng.uniform(-2, 2)) for _ in range(n))
    return (name, ne, ggml_type, blob)


def read_gguf(path: pathlib.Path):
    """The key/values (raw encodings) and tensor infos of a GGUF file, and the data section."""
    buf = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def skip_value(vtype):
        nonlocal pos
        if vtype == 8:
            n = take("Q")
            pos += n
        elif vtype == 9:
            etype, count = take("IQ")
            for _ in range(count):
                skip_value(etype)
        else:
            pos += struct.calcsize("<" + GGUF_FIXED[vtype])

    assert take("I") == 0x46554747 and take("I") == 3
    n_tensors, n_kv = take("QQ")
    kvs = []
    for _ in range(n_kv):
        n = take("Q")
        key = buf[pos: pos + n].decode()
        pos += n
        start = pos
        skip_value(take("I"))
        kvs.append((key, buf[start:pos]))
    infos = []
    for _ in range(n_tensors):
        n = take("Q")
        name = buf[pos: pos + n].decode()
        pos += n
        ne = [take("q") for _ in range(take("I"))]
        ggml_type, offset = take("IQ")
        infos.append((name, ne, ggml_type, offset))
    data_offset = pos + (-pos % 32)
    return kvs, infos, buf[data_offset:]


def gguf_seeds():
    kvs, infos, data = read_gguf(ROOT / "tests/data/llamacpp/models/dsv4-tiny-f32.gguf")
    small = []
    for name, ne, ggml_type, offset in infos:
        elems, size = GGML_BLOCKS[ggml_type]
        n = 1
        for d in ne:
            n *= d
        nbytes = n // elems * size
        if nbytes <= 2048:
            small.append((name, ne, ggml_type, data[offset: offset + nbytes]))
        if len(small) == 4:
            break
    tiny = gguf(kvs, small)
    yield "tiny_header.gguf", tiny

    values = [("u8", 0, 7), ("i8", 1, -7), ("u16", 2, 700), ("i16", 3, -700), ("u32", 4, 70000),
              ("i32", 5, -70000), ("f32", 6, 1.5), ("bool", 7, True), ("str", 8, "value"),
              ("u64", 10, 1 << 40), ("i64", 11, -(1 << 40)), ("f64", 12, 2.25),
              ("arr.i32", 9, (5, [0, 4, 128, 4, 128])), ("arr.str", 9, (8, ["a", "", "bc"])),
              ("arr.bool", 9, (7, [True, False])), ("arr.f32", 9, (6, [])),
              ("general.alignment", 4, 64)]
    types = [gguf_tensor("f32", [8, 2], 0), gguf_tensor("f16", [4], 1),
             gguf_tensor("bf16", [2, 2, 2], 30), gguf_tensor("q4_0", [32, 2], 2),
             gguf_tensor("q4_1", [32], 3), gguf_tensor("q5_0", [32], 6),
             gguf_tensor("q5_1", [32], 7), gguf_tensor("q8_0", [64], 8),
             gguf_tensor("q2_k", [256], 10), gguf_tensor("q3_k", [256], 11),
             gguf_tensor("q4_k", [256], 12), gguf_tensor("q5_k", [256], 13),
             gguf_tensor("q6_k", [256], 14), gguf_tensor("q8_k", [256], 15),
             gguf_tensor("iq4_nl", [32], 20), gguf_tensor("iq4_xs", [256], 23),
             gguf_tensor("mxfp4", [32, 1, 1, 2], 39), gguf_tensor("empty", [0, 3], 0)]
    yield "all_types.gguf", gguf(values, types, alignment=64)
    yield "version2.gguf", gguf(values[:12], types[:4], version=2)
    yield "no_tensors.gguf", gguf(values[:3], [])
    yield "truncated.gguf", tiny[:5000]
    yield "bad_magic.gguf", b"GGUG" + tiny[4:200]
    yield "huge_counts.gguf", b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1 << 60) + bytes(64)
    yield "bad_value_type.gguf", gguf([("k", struct.pack("<I", 13) + bytes(8))], [])


# ---- config.json ---------------------------------------------------------------------------------

def config_seeds():
    for name in ("tiny.json", "tiny_fp8_hf.json", "tiny_fp8_reference.json"):
        yield name, (ROOT / "tests/data/configs" / name).read_bytes()
    tiny = json.loads((ROOT / "tests/data/configs/tiny.json").read_text())
    yield "wrapped.json", json.dumps({"model_args": tiny}).encode()
    bf16 = dict(tiny, dtype="bf16", expert_dtype=None, compress_ratios=[0, 128, 0, 128, 0, 0])
    yield "bf16_hca.json", json.dumps(bf16).encode()
    yield "wrong_type.json", json.dumps(dict(tiny, n_layers="5")).encode()
    yield "unknown_key.json", json.dumps(dict(tiny, n_experts=3)).encode()
    yield "not_json.json", b'{"dim": 128,'


# ---- model.safetensors.index.json ----------------------------------------------------------------

# The tensors of the two shards that fuzz/checkpoint_index_fuzz.cpp writes, and their bytes.
INDEX_SHARDS = {"model-00001-of-00002.safetensors": {"embed.weight": 64, "norm.weight": 16},
                "model-00002-of-00002.safetensors": {"head.weight": 64,
                                                     "layers.0.attn_norm.weight": 16}}


def index_seeds():
    weight_map = {t: f for f, ts in INDEX_SHARDS.items() for t in ts}
    total = sum(n for ts in INDEX_SHARDS.values() for n in ts.values())
    yield "valid.json", json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                   indent=2).encode()
    yield "no_metadata.json", json.dumps({"weight_map": weight_map}).encode()
    yield "extra_metadata.json", json.dumps({"metadata": {"total_size": total, "format": "pt",
                                                          "n": [1, 2]},
                                             "weight_map": weight_map}).encode()
    wrong_shard = dict(weight_map, **{"head.weight": "model-00001-of-00002.safetensors"})
    yield "wrong_shard.json", json.dumps({"weight_map": wrong_shard}).encode()
    yield "missing_shard.json", json.dumps({"weight_map": dict(weight_map, x="other.safetensors")
                                            }).encode()
    yield "wrong_total.json", json.dumps({"metadata": {"total_size": total + 1},
                                          "weight_map": weight_map}).encode()
    yield "repeated.json", (b'{"weight_map": {"embed.weight": "model-00001-of-00002.safetensors",'
                            b' "embed.weight": "model-00001-of-00002.safetensors"}}')
    yield "path_in_name.json", json.dumps({"weight_map": {"embed.weight": "../x.safetensors"}
                                           }).encode()


def chat_seeds():
    yield "request.json", (ROOT / "tests/data/tokenizer/chat_request.json").read_bytes()
    rows = [json.loads(line) for line in
            (ROOT / "tests/data/tokenizer/chat.jsonl").read_text(encoding="utf-8").splitlines()]
    seen = set()
    for r in rows:
        if r["kind"] == "prompt" and r["name"] not in seen and r["name"] in (
                "tools_call_and_results", "developer", "task_each", "assistant_prefix"):
            seen.add(r["name"])
            yield f"{r['name']}.json", json.dumps(r["messages"], ensure_ascii=False).encode()
        if r["kind"] == "continuation" and "continuation" not in seen:
            seen.add("continuation")
            yield "continuation.json", json.dumps(
                {"context": r["context"], "messages": r["messages"], "thinking_mode": "thinking"},
                ensure_ascii=False).encode()
    replies = [r["text"] for r in rows if r["kind"] in ("completion", "bad_completion")]
    for i, text in enumerate(replies):
        yield f"reply_{i}.txt", text.encode()


def imatrix_seeds():
    """llama-imatrix's two forms, small: a legacy .dat (entries, chunk count, dataset name) and a
    GGUF (in_sum2 / counts pairs, one with two experts, and the three metadata keys)."""
    def dat(entries, chunks=4, dataset=b"text.txt"):
        out = struct.pack("<i", len(entries))
        for name, ncall, values in entries:
            out += struct.pack("<i", len(name)) + name + struct.pack("<ii", ncall, len(values))
            out += b"".join(struct.pack("<f", v) for v in values)
        return out + struct.pack("<ii", chunks, len(dataset)) + dataset

    vals = [rng.uniform(0, 3) for _ in range(64)]
    yield "legacy.dat", dat([(b"blk.0.ffn_up.weight", 10, vals),
                             (b"blk.0.attn_q_a.weight", 0, vals[:32])])
    yield "legacy_no_tail.dat", dat([(b"output.weight", 3, vals[:32])])[:-16]

    def f32(values):
        return b"".join(struct.pack("<f", v) for v in values)

    kvs = [("imatrix.datasets", 9, (8, ["text.txt"])), ("imatrix.chunk_count", 4, 16),
           ("imatrix.chunk_size", 4, 128)]
    tensors = [("blk.0.ffn_up.weight.in_sum2", [64, 1], 0, f32(vals)),
               ("blk.0.ffn_up.weight.counts", [1, 1], 0, f32([10.0])),
               ("blk.0.ffn_gate_exps.weight.in_sum2", [32, 2], 0, f32(vals)),
               ("blk.0.ffn_gate_exps.weight.counts", [1, 2], 0, f32([4.0, 0.0]))]
    yield "imatrix.gguf", gguf(kvs, tensors)
    yield "imatrix_unpaired.gguf", gguf(kvs, tensors[:3])


def main() -> None:
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz/corpus"
    for target, seeds in (("safetensors_header", safetensors_seeds()), ("gguf", gguf_seeds()),
                          ("config_json", config_seeds()), ("checkpoint_index", index_seeds()),
                          ("chat_json", chat_seeds()), ("imatrix", imatrix_seeds())):
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for name, blob in seeds:
            assert len(blob) < 100_000, (target, name, len(blob))
            (d / name).write_bytes(blob)
            print(f"{d / name}: {len(blob)} bytes")


if __name__ == "__main__":
    main()
