#!/bin/sh
# The side-by-side table of docs/performance.md: dsv4 and llama.cpp's llama-bench on the very same
# GGUF files (the V4-shaped benchmark model of bench/configs/medium.json, written by dsv4 with
# seeded random weights), interleaved per test, plus the machine's read bandwidth.
#
#   bench/side_by_side.sh [OUT_DIR]
#
# Environment: DSV4 (default build/release/dsv4), LLAMA_BENCH (default llama-bench on PATH),
# BANDWIDTH (default build/release/bench/bench_bandwidth), TYPES (default "Q8_0 Q4_K_M"),
# THREADS (default "1 2"), REPS (default 5), PROMPT (512), GEN (128), DEPTHS (default "0"),
# LLAMA_FLAGS (extra llama-bench flags, e.g. "--repack 0" where its weight repacking aborts),
# DSV4_FLAGS (extra dsv4 bench flags; "--no-warmup" in both skips the warm-up runs, which at
# depth repeat the whole untimed prefill), DROP_CACHES (1: before each model's runs, write back
# and drop the page cache, as root, so that the file is read afresh: a file just written is cached
# in pages dsv4 cannot map as 2 MiB pages; see io/mmap.hpp).
# Writes OUT_DIR/{bandwidth.md,dsv4.jsonl,llama.jsonl}; the GGUFs stay in OUT_DIR for reruns.
set -eu
OUT=${1:-bench-out}
DSV4=${DSV4:-build/release/dsv4}
LLAMA_BENCH=${LLAMA_BENCH:-llama-bench}
BANDWIDTH=${BANDWIDTH:-build/release/bench/bench_bandwidth}
TYPES=${TYPES:-"Q8_0 Q4_K_M"}
THREADS=${THREADS:-"1 2"}
REPS=${REPS:-5}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
DEPTHS=${DEPTHS:-0}
LLAMA_FLAGS=${LLAMA_FLAGS:-}
DSV4_FLAGS=${DSV4_FLAGS:-}
DROP_CACHES=${DROP_CACHES:-0}
mkdir -p "$OUT"
: > "$OUT/dsv4.jsonl"
: > "$OUT/llama.jsonl"

"$BANDWIDTH" 1024 2 5 > "$OUT/bandwidth.md"
cat "$OUT/bandwidth.md"

for type in $TYPES; do
  f="$OUT/medium-$type.gguf"
  if [ ! -f "$f" ]; then
    "$DSV4" bench --random bench/configs/medium.json --type "$type" --random-out "$f" -p 0 -n 0
  fi
  if [ "$DROP_CACHES" = 1 ]; then
    sync
    echo 1 > /proc/sys/vm/drop_caches
  fi
  for t in $THREADS; do
    for d in $DEPTHS; do
      echo "== $type, $t threads, depth $d" >&2
      # shellcheck disable=SC2086
      "$DSV4" bench -m "$f" -p "$PROMPT" -n "$GEN" -d "$d" -t "$t" -r "$REPS" -o jsonl \
        $DSV4_FLAGS >> "$OUT/dsv4.jsonl"
      # shellcheck disable=SC2086
      "$LLAMA_BENCH" -m "$f" -p "$PROMPT" -n "$GEN" -d "$d" -t "$t" -r "$REPS" -o jsonl \
        $LLAMA_FLAGS >> "$OUT/llama.jsonl"
    done
  done
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def rows(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.strip()]
def key(r):
    test = f"pp{r['n_prompt']}" if r['n_prompt'] else f"tg{r['n_gen']}"
    if r.get('n_depth'):
        test += f" @ d{r['n_depth']}"
    return (os.path.basename(r['model_filename']), r['n_threads'], test)
d = {key(r): r for r in rows('dsv4.jsonl')}
l = {key(r): r for r in rows('llama.jsonl')}
print("| model | threads | test | llama.cpp t/s | dsv4 t/s | dsv4 / llama.cpp |")
print("|---|---:|---|---:|---:|---:|")
for k in sorted(d):
    a, b = l.get(k), d[k]
    la = f"{a['avg_ts']:.2f} ± {a['stddev_ts']:.2f}" if a else "-"
    ratio = f"{b['avg_ts'] / a['avg_ts']:.2f}" if a else "-"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {la} | {b['avg_ts']:.2f} ± {b['stddev_ts']:.2f} | {ratio} |")
PY
