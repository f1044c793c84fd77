#!/usr/bin/env bash
# perfs/views/relevance.sh — do views list what their names ask for, and does hybrid ranking beat
# both signals? (issue 15; method and results in docs/RELEVANCE.md)
#
#   bash perfs/views/relevance.sh        # report in perfs/results/relevance-<date>.md
#
# 1. A PEROS_HOME ($WORK/home, kept between runs: embedding the corpus takes ~15 min here) with
#    the rendered man pages of perfs/search (corpus.sh, pages.txt) imported as /man1 and /man8 and
#    embedded with the real model (`peros index --wait`).
# 2. relevance-bench (in process, daemon not running): every labelled view of views.tsv
#    (odd lines tune, even lines held out) with per-view recall/precision, the parameter sweep
#    on the tuning half; then the questions of perfs/search/questions.tsv (odd tune the hybrid
#    weight, even are reported): recall@5, MRR@10, p50/p99 of text, semantic and hybrid.
# 3. The same views through a real mount: views.toml declares them all, and for each the `ls`
#    time of @views/<name> (warm: median of 5 after one) and whether the mount lists exactly
#    what the benchmark computed.
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/peros-target), WORK (default
# /var/tmp/peros-relevance), SEARCH_CORPUS (default /var/tmp/peros-search-corpus), OUT,
# CHUNK_TOKENS (passage length in model tokens for a new home, default: the shipped 256; use a
# separate WORK per length, e.g. `WORK=/var/tmp/rel-128 CHUNK_TOKENS=128`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
export SEARCH_CORPUS=${SEARCH_CORPUS:-/var/tmp/peros-search-corpus}
WORK=${WORK:-/var/tmp/peros-relevance}
OUT=${OUT:-$REPO/perfs/results/relevance-$(date -u +%F).md}
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh

(cd "$REPO" && cargo build --release -q -p peros -p peros-perfs-views)
PEROS=$CARGO_TARGET_DIR/release/peros
BENCH=$CARGO_TARGET_DIR/release/relevance-bench
"$REPO/perfs/search/corpus.sh" "$SEARCH_CORPUS" >&2

export PEROS_HOME=$WORK/home
MNT=$WORK/mnt
mkdir -p "$WORK" "$MNT"
if mountpoint -q "$MNT"; then "$PEROS" umount "$MNT" || fusermount3 -u -z "$MNT"; fi
if [ ! -e "$PEROS_HOME/keys/identity.age" ]; then
    "$PEROS" init --no-passphrase >/dev/null
    if [ -n "${CHUNK_TOKENS:-}" ]; then
        sed -i "s/^\[index\]$/[index]\nchunk_tokens = $CHUNK_TOKENS/" "$PEROS_HOME/config.toml"
        grep -q "^chunk_tokens = $CHUNK_TOKENS" "$PEROS_HOME/config.toml" ||
            { echo "could not set chunk_tokens in $PEROS_HOME/config.toml" >&2; exit 1; }
    fi
    "$PEROS" -q import "$SEARCH_CORPUS/man1" /man1 >/dev/null
    "$PEROS" -q import "$SEARCH_CORPUS/man8" /man8 >/dev/null
fi
t0=$(date +%s)
"$PEROS" -q index --wait --timeout 7200 >/dev/null
echo "index ready ($(( $(date +%s) - t0 )) s)" >&2

"$BENCH" --home "$PEROS_HOME" --views "$HERE/views.tsv" \
    --questions "$REPO/perfs/search/questions.tsv" --second-stage --out "$WORK/bench.md" --json "$WORK/members.json"

# 3. Through the mount.
python3 - "$HERE/views.tsv" "$PEROS_HOME/views.toml" <<'EOF'
import sys, json
names = [l.split("\t")[0] for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
with open(sys.argv[2], "w") as f:
    f.write("[views]\n")
    for n in names:
        f.write(f"{json.dumps(n)} = {json.dumps(n)}\n")
EOF
"$PEROS" mount "$MNT" >/dev/null
trap '"$PEROS" umount "$MNT" >/dev/null 2>&1 || fusermount3 -u -z "$MNT" || true' EXIT
python3 - "$MNT" "$WORK/members.json" "$PEROS" >"$WORK/mount.md" <<'EOF'
import json, os, statistics, subprocess, sys, time
mnt, members, peros = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
def show(name):
    out = subprocess.run([peros, "views", "show", name, "--json"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}
deadline = time.time() + 600
for v in members["views"]:
    while show(v["name"]).get("mode") != "hybrid":
        if time.time() > deadline:
            sys.exit(f"view {v['name']!r} not evaluated with hybrid ranking within 600 s")
        time.sleep(0.5)
print("## Views through the mount: `ls` time and agreement\n")
print("`ls -l @views/<name>` (warm: median of 5 after one warm-up, ms); *same* = the mount lists exactly the")
print("members relevance-bench computed (one rule for views, @search and the bench).\n")
print("| view | half | entries | ls -l ms (median) | min | max | same |")
print("|---|---|---:|---:|---:|---:|---|")
for v in members["views"]:
    d = os.path.join(mnt, "@views", v["name"])
    subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL, check=True)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL, check=True)
        ts.append((time.perf_counter() - t) * 1000)
    listed = sorted(os.listdir(d))
    same = listed == sorted(v["members"])
    print(f"| {v['name']} | {'tune' if v['tune'] else 'held-out'} | {len(listed)} | {statistics.median(ts):.1f} | {min(ts):.1f} | {max(ts):.1f} | {'yes' if same else 'NO'} |")
EOF
{
    echo "Machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg). Binary: \`$PEROS\`, commit $(git -C "$REPO" rev-parse --short HEAD)."
    echo
    cat "$WORK/bench.md"
    echo
    cat "$WORK/mount.md"
} >"$OUT"
echo "report: $OUT" >&2
