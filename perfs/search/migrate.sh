#!/usr/bin/env bash
# Node migration: time to the first semantic answer on a new node against the original
# indexing time (the semantic index issue: "the index travels with the tenant").
#
#   1. one SeaweedFS (perfs/s3/weed.sh) on 127.0.0.1;
#   2. node A: `peros init --store s3://peros/mig` (passphrase-wrapped key, so node B needs only
#      the passphrase), `peros import` of the first MIG_PAGES pages of the man-page corpus
#      (perfs/search/corpus.sh), `peros index --wait`: the original indexing, text + vectors;
#   3. node B, a fresh PEROS_HOME on the same machine: `peros init --from s3://peros/mig`,
#      `peros index --wait` (the text index is rebuilt from the store; vectors come sealed from
#      the bucket), then one semantic `peros search`: the time to the first semantic answer;
#   4. both nodes answer MIG_QUERIES labelled questions about pages of the subset: the top hits
#      must be the same, and node B must have embedded nothing.
# Every step is a separate CLI process (cold process, warm page cache: both homes are on the
# same disk). Writes perfs/results/migrate-DATE.md. Release build of peros (built if missing).
#
# Env (defaults): MIG_PAGES=120 MIG_QUERIES=20 MIG_ROOT=/var/tmp/peros-migrate
#   SEARCH_CORPUS=/var/tmp/peros-search-corpus PEROS_BIN PEROS_WEED
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh
# shellcheck source=../s3/weed.sh
source "$REPO/perfs/s3/weed.sh"
MIG_PAGES=${MIG_PAGES:-120}
MIG_QUERIES=${MIG_QUERIES:-20}
MIG_ROOT=${MIG_ROOT:-/var/tmp/peros-migrate}
CORPUS=${SEARCH_CORPUS:-/var/tmp/peros-search-corpus}
WEED=${PEROS_WEED:-/var/cache/peros/venv/bin/weed}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
PEROS_BIN=${PEROS_BIN:-$CARGO_TARGET_DIR/release/peros}
OUT=${OUT:-$REPO/perfs/results/migrate-$(date +%F).md}

log() { printf '[migrate %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$WEED" ] || die "no weed binary at $WEED: run scripts/setup.sh"
[ -d "$CORPUS/man1" ] || die "no corpus at $CORPUS: run perfs/search/corpus.sh"
if [ ! -x "$PEROS_BIN" ]; then
    log "building peros (release)"
    cargo build -q --release -p peros --manifest-path "$REPO/Cargo.toml"
fi
rm -rf "$MIG_ROOT"
mkdir -p "$MIG_ROOT/pages/man1" "$MIG_ROOT/pages/man8"
trap weed_stop EXIT
weed_start "$MIG_ROOT/weed" peros "$MIG_ROOT/weed.log" || die "SeaweedFS did not start"
log "SeaweedFS on $S3_PORT"

# The subset: the first MIG_PAGES pages of pages.txt that are rendered here, and the labelled
# questions about them.
: >"$MIG_ROOT/subset.txt"
n=0
while read -r p && [ "$n" -lt "$MIG_PAGES" ]; do
    case $p in '#'* | '') continue ;; esac
    [ -f "$CORPUS/$p" ] || continue
    echo "$p" >>"$MIG_ROOT/subset.txt"
    n=$((n + 1))
done <"$HERE/pages.txt"
while read -r p; do cp "$CORPUS/$p" "$MIG_ROOT/pages/$p"; done <"$MIG_ROOT/subset.txt"
python3 - "$HERE/questions.tsv" "$MIG_ROOT/subset.txt" "$MIG_QUERIES" >"$MIG_ROOT/questions.tsv" <<'PY'
import sys
names = {l.strip().split("/", 1)[1] for l in open(sys.argv[2]) if l.strip()}
out = []
for line in open(sys.argv[1]):
    if line.startswith("#") or "\t" not in line:
        continue
    q, page = line.rstrip("\n").split("\t")[:2]
    if page in names:
        out.append(f"{q}\t{page}")
print("\n".join(out[: int(sys.argv[3])]))
PY
bytes=$(du -sb "$MIG_ROOT/pages" | cut -f1)
nq=$(wc -l <"$MIG_ROOT/questions.tsv")
log "$(wc -l <"$MIG_ROOT/subset.txt") pages, $bytes bytes, $nq questions"

export PEROS_PASSPHRASE="migration benchmark"
now() { date +%s.%N; }
URL=s3://peros/mig

export PEROS_HOME=$MIG_ROOT/a
t0=$(now)
"$PEROS_BIN" init -q --store "$URL" >"$MIG_ROOT/a-init.log" 2>&1 || die "init A: $(tail -3 "$MIG_ROOT/a-init.log")"
"$PEROS_BIN" import -q "$MIG_ROOT/pages" /pages >"$MIG_ROOT/a-import.log" 2>&1 || die "import: $(tail -3 "$MIG_ROOT/a-import.log")"
"$PEROS_BIN" index -q --wait --timeout 7200 --json >"$MIG_ROOT/a-index.json" || die "index A"
t1=$(now)
log "node A indexed in $(python3 -c "print(round($t1-$t0,1))") s"

answers() { # FILE: top hit of every question, one a line
    while IFS=$'\t' read -r q _; do
        "$PEROS_BIN" search -q --json --mode semantic --limit 1 -- "$q" |
            python3 -c 'import json,sys; h=json.load(sys.stdin)["hits"]; print(h[0]["path"] if h else "-")'
    done <"$MIG_ROOT/questions.tsv" >"$1"
}
answers "$MIG_ROOT/a-answers.txt"

export PEROS_HOME=$MIG_ROOT/b
first_q=$(head -n1 "$MIG_ROOT/questions.tsv" | cut -f1)
t2=$(now)
"$PEROS_BIN" init -q --from "$URL" >"$MIG_ROOT/b-init.log" 2>&1 || die "init B: $(tail -3 "$MIG_ROOT/b-init.log")"
t3=$(now)
"$PEROS_BIN" index -q --wait --timeout 7200 --json >"$MIG_ROOT/b-index.json" || die "index B"
t4=$(now)
"$PEROS_BIN" search -q --json --mode semantic --limit 1 -- "$first_q" >"$MIG_ROOT/b-first.json" || die "search B"
t5=$(now)
answers "$MIG_ROOT/b-answers.txt"

python3 - "$MIG_ROOT" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$bytes" "$OUT" \
    "$(git -C "$REPO" rev-parse --short HEAD)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, os, sys
root = sys.argv[1]
t0, t1, t2, t3, t4, t5 = map(float, sys.argv[2:8])
nbytes, out, commit, load = int(sys.argv[8]), sys.argv[9], sys.argv[10], sys.argv[11]
a = json.load(open(f"{root}/a-index.json"))
b = json.load(open(f"{root}/b-index.json"))
first = json.load(open(f"{root}/b-first.json"))["hits"]
qa = open(f"{root}/a-answers.txt").read().split()
qb = open(f"{root}/b-answers.txt").read().split()
pages = sum(1 for _ in open(f"{root}/subset.txt"))
same = sum(x == y for x, y in zip(qa, qb))
orig, first_answer = t1 - t0, t5 - t2
ok = b.get("embedded") == 0 and b.get("vectors") == b.get("chunks") and same == len(qa) and first
L = [
    "# Node migration: time to the first semantic answer on a new node",
    "",
    f"`bash perfs/search/migrate.sh` (release build of {commit}; 2 cores; load {load}). "
    f"{pages} rendered man pages ({nbytes / 1e6:.2f} MB) of the perfs/search corpus in SeaweedFS on "
    "127.0.0.1; every step a separate `peros` process; warm page cache (both homes on one disk).",
    "",
    "| step | s |",
    "|---|---:|",
    f"| node A: init + import + index (text and {a.get('chunks')} passages embedded) | {orig:.1f} |",
    f"| node B: `init --from` | {t3 - t2:.1f} |",
    f"| node B: `index --wait` (text index rebuilt, {b.get('reused')} vectors reused, {b.get('embedded')} embedded) | {t4 - t3:.1f} |",
    f"| node B: first semantic search | {t5 - t4:.2f} |",
    f"| **node B: time to the first semantic answer** | **{first_answer:.1f}** |",
    "",
    f"Ratio first answer on the new node / original indexing: **{first_answer / orig:.3f}** "
    f"({orig / first_answer:.0f}× faster than indexing again).",
    "",
    f"Same top semantic hit on both nodes for {same} of {len(qa)} labelled questions; node B "
    f"embedded {b.get('embedded')} passages; vectors {b.get('vectors')} of {b.get('chunks')} chunks. "
    + ("Checks passed." if ok else "**CHECKS FAILED.**"),
    "",
]
open(out, "w").write("\n".join(L))
print("\n".join(L))
sys.exit(0 if ok else 1)
PY
