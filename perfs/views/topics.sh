#!/usr/bin/env bash
# perfs/views/topics.sh — topic clustering quality, names, time and memory (issue 17;
# method in docs/TOPICS.md).
#
#   bash perfs/views/topics.sh        # report in perfs/results/topics-<date>.md
#
# 1. The embedded man pages of perfs/search (the PEROS_HOME relevance.sh builds, copied to
#    $WORK/home so a running bench keeps its own; built here the same way if absent), labelled
#    by Debian package (`dpkg -S` of each page).
# 2. topics-bench: purity/NMI per corpus size against a shuffled-label baseline, and the names.
# 3. topics-bench --synthetic 10000 / 100000, each in its own process (peak RSS = VmHWM).
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/peros-target), WORK (default
# /var/tmp/peros-topics), RELEVANCE_HOME (default /var/tmp/peros-relevance/home), OUT.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
WORK=${WORK:-/var/tmp/peros-topics}
SRC_HOME=${RELEVANCE_HOME:-/var/tmp/peros-relevance/home}
OUT=${OUT:-$REPO/perfs/results/topics-$(date -u +%F).md}
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh

(cd "$REPO" && cargo build --release -q -p peros -p peros-perfs-views)
BENCH=$CARGO_TARGET_DIR/release/topics-bench
mkdir -p "$WORK"
if [ ! -e "$WORK/home/keys/identity.age" ]; then
    if [ ! -e "$SRC_HOME/keys/identity.age" ]; then
        WORK=$WORK/relevance bash "$HERE/relevance.sh" >/dev/null
        SRC_HOME=$WORK/relevance/home
    fi
    cp -a "$SRC_HOME" "$WORK/home"
fi
LABELS=$WORK/labels.tsv
: > "$LABELS"
while read -r page; do
    pkg=$(dpkg -S "/usr/share/man/$page.gz" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$pkg" ] && printf '/%s\t%s\n' "$page" "$pkg" >> "$LABELS"
done < "$REPO/perfs/search/pages.txt"
echo "$(wc -l < "$LABELS") labelled pages" >&2

nice "$BENCH" --home "$WORK/home" --labels "$LABELS" --out "$WORK/quality.md"
{
    cat "$WORK/quality.md"
    echo
    echo "## Time and memory of clustering (synthetic vectors)"
    echo
    echo "384-d unit vectors in 50 blobs (this machine has no 100k embedded files). *full*: the topic"
    echo "clustering (HDBSCAN on an even sample of 2,000, the rest assigned); *assign*: the incremental"
    echo "path over the same vectors (every file to its nearest admitting topic), the baseline measured"
    echo "in the same process. *admit*: 1,000 new files of the same blobs judged by the incremental rule"
    echo "(\`Predictor\`: nearest clustered neighbours, against every clustered file). Peak RSS: VmHWM of"
    echo "a fresh process per size."
    echo
    echo "| files | full ms | assign ms | full / assign | admit 1,000 new ms | admitted | topics | purity | NMI | peak RSS MiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in 10000 100000; do
        nice "$BENCH" --synthetic "$n" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("| %d | %.0f | %.0f | %.1f | %.0f | %d | %d | %.3f | %.3f | %.0f |" % (r["n"], r["full_ms"], r["assign_ms"], r["full_ms"] / max(r["assign_ms"], 1e-3), r["predict_ms"], r["admitted"], r["topics"], r["purity"], r["nmi"], r["peak_rss_kb"] / 1024))'
    done
} > "$OUT"
echo "wrote $OUT" >&2
