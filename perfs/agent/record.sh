#!/usr/bin/env bash
# Records the photo-browsing and document-reading traces replayed by live.sh and agent-bench
# (perfs/agent/README.md says how they were made). Output, in $OUT (default perfs/agent/traces):
#   photos-browse.trace  strace of viewer.py going through 4 folders of photos and thumbnails
#   docs-read.trace      strace of reader.py reading a book's chapters with figures and papers
# Lines "STREAM<TAB>SIZE<TAB>PATH<TAB>T_MS" (T_MS: time of the open, ms since the first).
#
# The files are generated (random bytes of photo-like sizes: the prefetcher sees names, sizes
# and order, never pixels): photos 150 KB–2.3 MB (log-uniform), thumbnails 8–40 KB in a
# thumbs/ folder next to them; chapters 8–120 KB, figures 150 KB–1.5 MB, papers 0.3–2.5 MB.
# The programs are real processes doing real opens and reads under strace -f -ttt; what they
# open next is decided by a seeded user model (SEED), the same on every run:
#   viewer: next photo 78 %, back one 7 %, skip ahead 2–4 8 %, jump to an earlier folder 3 %
#           (and browse on from there), next folder at a folder's end; the thumbnail strip
#           (8 thumbnails) is read on entering a folder and scrolls one thumbnail per move;
#           think time per photo log-normal, median 350 ms.
#   reader: chapters in order, each chapter's figures (2 per chapter, in the figure folder in
#           chapter order) when reading it, its cited paper 25 %, back to the previous
#           chapter 12 %; think time per file log-normal, median 600 ms.
# Usage: bash perfs/agent/record.sh        (≈ 2–3 min; needs strace, python3)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/traces}"
SEED="${SEED:-19}"
command -v strace >/dev/null || { echo "strace is needed (apt-get install strace)" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/peros-record.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---------- the files ----------
python3 - "$WORK" "$SEED" <<'PY'
import math, os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
def logu(lo, hi):
    return int(math.exp(r.uniform(math.log(lo), math.log(hi))))
def put(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(r.randbytes(n))
for folder in ["2023-07-coast", "2024-02-alps", "2024-09-city", "2025-05-family"]:
    for i in range(40):
        put(f"{root}/photos/{folder}/IMG_{i:04d}.jpg", logu(150_000, 2_300_000))
        put(f"{root}/photos/{folder}/thumbs/IMG_{i:04d}.jpg", logu(8_000, 40_000))
for c in range(1, 21):
    put(f"{root}/docs/book/ch{c:02d}.md", logu(8_000, 120_000))
    for k in range(2):
        put(f"{root}/docs/book/figures/fig{c:02d}-{k}.png", logu(150_000, 1_500_000))
for p in range(12):
    put(f"{root}/docs/papers/paper{p:02d}.pdf", logu(300_000, 2_500_000))
PY

# ---------- the programs ----------
cat > "$WORK/viewer.py" <<'PY'
"""A minimal image viewer: a thumbnail strip and one photo at a time, driven by a seeded user."""
import math, os, random, sys, time
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
folders = sorted(os.listdir(root))
listing = {f: sorted(n for n in os.listdir(f"{root}/{f}") if n.endswith(".jpg")) for f in folders}
def read(path):
    with open(path, "rb") as fh:
        while fh.read(1 << 20):
            pass
def think():
    time.sleep(min(3.0, r.lognormvariate(math.log(0.35), 0.5)))
views, limit = 0, 240
fi, i = 0, 0
strip = set()
while views < limit and fi < len(folders):
    f = folders[fi]
    names = listing[f]
    if i >= len(names):
        fi, i, strip = fi + 1, 0, set()
        continue
    # The strip shows thumbnails i-3 .. i+4; the newly visible ones are read.
    for t in range(max(0, i - 3), min(len(names), i + 5)):
        if t not in strip:
            strip.add(t)
            read(f"{root}/{f}/thumbs/{names[t]}")
    read(f"{root}/{f}/{names[i]}")
    views += 1
    think()
    x = r.random()
    if x < 0.07 and i > 0:
        i -= 1
    elif x < 0.15:
        i += r.randint(2, 4)
    elif x < 0.18 and fi > 0:
        fi, i, strip = r.randrange(fi), r.randrange(20), set()
    else:
        i += 1
PY
cat > "$WORK/reader.py" <<'PY'
"""A document reader going through a book: chapters, their figures, the papers they cite."""
import math, os, random, sys, time
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
chapters = sorted(os.listdir(f"{root}/book"))
chapters = [c for c in chapters if c.endswith(".md")]
papers = sorted(os.listdir(f"{root}/papers"))
def read(path):
    with open(path, "rb") as fh:
        while fh.read(1 << 20):
            pass
def think():
    time.sleep(min(4.0, r.lognormvariate(math.log(0.6), 0.5)))
c = 0
while c < len(chapters):
    read(f"{root}/book/{chapters[c]}")
    think()
    for k in range(2):
        read(f"{root}/book/figures/fig{c + 1:02d}-{k}.png")
        think()
    if r.random() < 0.25:
        read(f"{root}/papers/{papers[(c * 5) % len(papers)]}")
        think()
    if r.random() < 0.12 and c > 0:
        c -= 1
    else:
        c += 1
PY

# strace -f -ttt -e trace=openat,execve output → STREAM SIZE PATH T_MS (regular files under
# the directory $2, the program's data).
parse() {
    python3 - "$1" "$2" <<'PY'
import os, re, stat, sys
under = sys.argv[2].rstrip("/") + "/"
comm, out, t0 = {}, [], None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r'^(?:\[pid\s+)?(\d+)\]?\s+(\d+\.\d+)\s+(.*)$', line)
    if not m:
        continue
    pid, t, rest = m.groups()
    e = re.match(r'execve\("([^"]+)"', rest)
    if e and "= 0" in rest:
        comm[pid] = os.path.basename(e.group(1))
        continue
    o = re.match(r'openat\([^,]+, "([^"]+)", [^)]*\) = (\d+)', rest)
    if not o:
        continue
    path = o.group(1)
    if not os.path.abspath(path).startswith(under):
        continue
    try:
        st = os.stat(path)
    except OSError:
        continue
    if not stat.S_ISREG(st.st_mode):
        continue
    t = float(t) * 1e3
    t0 = t if t0 is None else t0
    out.append(f"{comm.get(pid, pid)}\t{st.st_size}\t{os.path.abspath(path)}\t{t - t0:.1f}")
print("\n".join(out))
PY
}

strace -f -qq -ttt -e trace=openat,execve -o "$WORK/photos.strace" \
    python3 "$WORK/viewer.py" "$WORK/photos" "$SEED"
parse "$WORK/photos.strace" "$WORK/photos" | sed "s|$WORK/|/|" > "$OUT/photos-browse.trace"
strace -f -qq -ttt -e trace=openat,execve -o "$WORK/docs.strace" \
    python3 "$WORK/reader.py" "$WORK/docs" "$SEED"
parse "$WORK/docs.strace" "$WORK/docs" | sed "s|$WORK/|/|" > "$OUT/docs-read.trace"
wc -l "$OUT/photos-browse.trace" "$OUT/docs-read.trace"
