#!/usr/bin/env bash
# PerOS search benchmark: builds search-bench (release) and runs both parts, appending to one
# Markdown report, perfs/results/search-<UTC date>.md (see perfs/search/README.md).
#
#   1. corpus.sh renders the man pages of pages.txt into $SEARCH_CORPUS (kept between runs)
#   2. search-bench: quality and throughput with the real model (~30 min on 2 busy cores)
#   3. search-bench --scale $SCALE: latency at ~$SCALE chunks with the stand-in embedder
#
# Environment (defaults):
#   CARGO_TARGET_DIR=/var/tmp/peros-target
#   SEARCH_CORPUS=/var/tmp/peros-search-corpus   rendered pages
#   SCALE=100000        chunks for the scale part (0: skip it)
#   QUALITY=1           0: skip the quality part (then the scale part starts the report)
#   OUT=perfs/results/search-<date>.md
#   WORK=/var/tmp       where the temporary stores and indexes go (deleted afterwards)
# Extra arguments are passed to the quality run (e.g. --weights 0.5,0.7 --limit-pages 50).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
export SEARCH_CORPUS=${SEARCH_CORPUS:-/var/tmp/peros-search-corpus}
SCALE=${SCALE:-100000}
QUALITY=${QUALITY:-1}
WORK=${WORK:-/var/tmp}
OUT=${OUT:-$REPO/perfs/results/search-$(date -u +%F).md}
# ORT_DYLIB_PATH and PEROS_MODEL_DIR (written by scripts/setup.sh).
if [[ -f /var/cache/peros/env.sh ]]; then source /var/cache/peros/env.sh; fi

"$HERE/corpus.sh" "$SEARCH_CORPUS"
(cd "$REPO" && cargo build --release -p peros-perfs-search)
BIN="$CARGO_TARGET_DIR/release/search-bench"

append=()
if [[ "$QUALITY" != 0 ]]; then
    "$BIN" --corpus "$SEARCH_CORPUS" --work "$WORK" --out "$OUT" "$@"
    append=(--append)
fi
if [[ "$SCALE" != 0 ]]; then
    "$BIN" --scale "$SCALE" --corpus "$SEARCH_CORPUS" --work "$WORK" --out "$OUT" "${append[@]}"
fi
echo "report: $OUT"
