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
# 3. topics-bench --synthetic 10000 / 100000, each in its own process (peak RSS = VmHWM): in
#    the order drawn, in turns of blobs (--periodic), and shuffled with seeds 1-5 (other samples).
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
SYN=$WORK/synthetic.jsonl
: > "$SYN"
for n in 10000 100000; do
    nice "$BENCH" --synthetic "$n" >> "$SYN"
    nice "$BENCH" --synthetic "$n" --periodic >> "$SYN"
    for s in 1 2 3 4 5; do nice "$BENCH" --synthetic "$n" --shuffle "$s" >> "$SYN"; done
done
{
    cat "$WORK/quality.md"
    echo
    echo "## Time and memory of clustering (synthetic vectors)"
    echo
    echo "384-d unit vectors in 50 blobs, each vector's blob drawn at random (this machine has no 100k"
    echo "embedded files; \`synthetic\` in topics_bench.rs: a direction shared by all, blob centres in"
    echo "10 families, blob spreads from tight to loose). *random*: the vectors in the order drawn;"
    echo "*periodic*: the same vectors in turns of blobs (0, 1, …, 49, 0, 1, …), the order an even"
    echo "sample aliases with. *full*: the topic clustering (HDBSCAN on a fixed pseudo-random sample of"
    echo "2,000, the rest assigned); *assign*: the centroid assignment over the same vectors (every file"
    echo "to its nearest admitting topic), the baseline measured in the same process. Purity counts"
    echo "outliers as one more cluster. *Admit*: 1,000 new files of the same blobs judged by the"
    echo "incremental rule (\`Predictor\`: nearest clustered neighbours among all clustered files):"
    echo "*build* makes the predictor (the topics' floors), then the same files one at a time"
    echo "(\`predict\`, the path before) and in blocks of 64 (\`predict_all\`, the incremental pass's"
    echo "path; the run checks that the answers are identical). Peak RSS: VmHWM of a fresh process per"
    echo "row."
    echo
    echo "| files | order | full ms | assign ms | topics | outliers | purity | NMI | admit: build ms | one at a time ms | blocked ms | one / blocked | admitted | peak RSS MiB |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    python3 - "$SYN" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r["shuffle"] is not None:
        continue
    print("| %d | %s | %.0f | %.0f | %d | %d | %.3f | %.3f | %.0f | %.0f | %.0f | %.1f | %d | %.0f |" % (
        r["n"], r["order"], r["full_ms"], r["assign_ms"], r["topics"], r["outliers"], r["purity"],
        r["nmi"], r["build_ms"], r["admit_one_ms"], r["admit_block_ms"],
        r["admit_one_ms"] / max(r["admit_block_ms"], 1e-3), r["admitted"], r["peak_rss_kb"] / 1024))
r = rows[0]
print()
print("Cosine of two synthetic vectors (200,000 pairs of the first row, mean ± standard deviation): "
      "%.3f ± %.3f in one blob, %.3f ± %.3f in different blobs." % (
          r["cos_within"], r["cos_within_sd"], r["cos_between"], r["cos_between_sd"]))
print()
print("Other samples of the same vectors: the *random* rows and the same vectors shuffled with seeds "
      "1–5 before clustering (the sample is chosen by position, so each clusters another 2,000).")
print()
print("| files | samples | topics | outliers | purity | NMI |")
print("|---:|---:|---|---|---|---|")
for n in sorted({r["n"] for r in rows}):
    rs = [r for r in rows if r["n"] == n and r["order"] == "random"]
    span = lambda k, f: "%s–%s" % (f % min(r[k] for r in rs), f % max(r[k] for r in rs))
    print("| %d | %d | %s | %s | %s | %s |" % (n, len(rs), span("topics", "%d"),
          span("outliers", "%d"), span("purity", "%.3f"), span("nmi", "%.3f")))
EOF
} > "$OUT"
echo "wrote $OUT" >&2
