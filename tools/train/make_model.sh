#!/usr/bin/env bash
# Rebuilds the embedded model models/dsv4-tiny-kjv.gguf from scratch (see tools/train/README.md):
# corpus -> tokenizer -> training -> checkpoint + reference logits -> GGUF.
#   tools/train/make_model.sh [MINUTES]     (default 35; run from the repository root)
# Needs: the `bible` program (Debian package bible-kjv), Python with
# tools/train/requirements.txt, and a built dsv4 CLI (DSV4=path, default build/ci/dsv4).
set -euo pipefail
MINUTES="${1:-35}"
PY="${PYTHON:-python3}"
DSV4="${DSV4:-build/ci/dsv4}"
W=build/train
mkdir -p "$W"
"$PY" tools/train/prepare_corpus.py --out "$W/corpus"
"$PY" tools/train/train_tokenizer.py --v4 tests/data/tokenizer/tokenizer.json --corpus "$W/corpus" \
  --vocab 4096 --out "$W/tokenizer.json"
"$PY" tools/train/check_tokenizer.py --dsv4 "$DSV4" --tokenizer "$W/tokenizer.json" --corpus "$W/corpus"
nice -n 19 "$PY" tools/train/train.py --corpus "$W/corpus" --tokenizer "$W/tokenizer.json" \
  --out "$W/run" --minutes "$MINUTES"
"$PY" tools/train/export.py --run "$W/run" --tokenizer "$W/tokenizer.json" --out "$W/checkpoint" \
  --logits tests/data/trained --corpus "$W/corpus"
cp "$W/tokenizer.json" tests/data/trained/tokenizer.json
mkdir -p models
"$DSV4" convert "$W/checkpoint" models/dsv4-tiny-kjv.gguf --type F16 --name "dsv4 tiny KJV" \
  --meta "general.description=A small DeepSeek-V4 (mHC; sliding-window, CSA and HCA attention; hash-routed and sqrt-softplus MoE with a shared expert; MTP) trained from scratch by dsv4's tools/train on the King James Version of the Bible" \
  --meta "general.license=public-domain" \
  --meta "general.dataset.0.name=King James Version of the Bible (1611), Debian package bible-kjv-text" \
  --meta "general.dataset.0.description=Public domain text; 1130 chapters for training, every 20th chapter (59) held out" \
  --meta-u32 "general.dataset.count=1"
cp "$W/run/loss.csv" docs/model-card-loss.csv
