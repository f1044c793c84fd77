#!/usr/bin/env bash
# Generates the access traces replayed by agent-bench (perfs/agent/README.md).
# Output: one file per workload in $OUT (default perfs/agent/traces), lines
# "STREAM<TAB>SIZE<TAB>PATH<TAB>T_MS" (T_MS: time of the open, ms since the trace's first open;
# the synthetic sessions get a fixed 400 ms (photos) or 800 ms (docs) between opens).
# record.sh records the photo-browsing and document-reading traces of real processes.
#   build   — strace of `make` building a generated 60-file C tree, 3 clean builds (real tools)
#   python  — strace of 4 starts of python3 importing a set of stdlib modules (real tools)
#   photos  — a photo-browsing order over 150 photos, 4 sessions (synthetic, seeded)
#   docs    — editing a working set within 40 documents, 6 sessions (synthetic, seeded)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/traces}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# strace -f -ttt -e trace=openat,execve output → STREAM SIZE PATH T_MS (regular files that opened).
parse() {
    python3 - "$1" <<'PY'
import os, re, sys
comm = {}
out = []
t0 = None
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
    if path.startswith(("/proc", "/sys", "/dev", "/etc/ld.so")):
        continue
    try:
        st = os.stat(path)
    except OSError:
        continue
    import stat
    if not stat.S_ISREG(st.st_mode):
        continue
    t = float(t) * 1e3
    t0 = t if t0 is None else t0
    out.append(f"{comm.get(pid, pid)}\t{st.st_size}\t{os.path.abspath(path)}\t{t - t0:.1f}")
print("\n".join(out))
PY
}

# --- build: a generated C tree, built three times from clean with make -j1 ---
SRC="$WORK/tree"
mkdir -p "$SRC/include" "$SRC/src"
for i in $(seq 0 19); do
    printf '#pragma once\n#include <stdio.h>\nstatic inline int h%d(int x){return x*%d;}\n' "$i" "$i" > "$SRC/include/h$i.h"
done
for i in $(seq 0 59); do
    {
        printf '#include "h%d.h"\n#include "h%d.h"\n#include "h%d.h"\n#include <string.h>\n' $((i % 20)) $(((i * 7) % 20)) $(((i * 3 + 1) % 20))
        printf 'int f%d(int x){ char b[8]; memset(b,0,8); return h%d(x)+b[0]; }\n' "$i" $((i % 20))
    } > "$SRC/src/f$i.c"
done
printf 'int main(void){return 0;}\n' > "$SRC/src/main.c"
cat > "$SRC/Makefile" <<'MK'
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:.c=.o)
app: $(OBJS)
	$(CC) -o $@ $(OBJS)
%.o: %.c
	$(CC) -O0 -Iinclude -c $< -o $@
clean:
	rm -f $(OBJS) app
MK
: > "$WORK/build.strace"
for n in 1 2 3; do
    make -s -C "$SRC" clean >/dev/null
    strace -f -qq -ttt -e trace=openat,execve -o "$WORK/b$n" make -s -C "$SRC" -j1 >/dev/null
    cat "$WORK/b$n" >> "$WORK/build.strace"
done
parse "$WORK/build.strace" > "$OUT/build.trace"

# --- python: interpreter starts importing the same modules ---
: > "$WORK/py.strace"
for n in 1 2 3 4; do
    strace -f -qq -ttt -e trace=openat,execve -o "$WORK/p$n" \
        python3 -c 'import json, email.parser, http.client, xml.dom.minidom, csv, sqlite3, decimal, argparse' || true
    cat "$WORK/p$n" >> "$WORK/py.strace"
done
parse "$WORK/py.strace" > "$OUT/python.trace"

# --- photos and docs: seeded synthetic sessions ---
python3 - "$OUT" <<'PY'
import random, sys
out = sys.argv[1]
r = random.Random(7)
photos = [(f"/photos/2024/IMG_{i:04d}.jpg", r.randint(2_000_000, 6_000_000)) for i in range(150)]
lines = []
for session in range(4):
    i = r.randint(0, 10)
    while i < len(photos):
        lines.append(f"eog\t{photos[i][1]}\t{photos[i][0]}\t{len(lines) * 400}")
        x = r.random()
        if x < 0.08:
            i = max(0, i - 1)          # back one
        elif x < 0.15:
            i += 2                     # skip one
        else:
            i += 1
open(f"{out}/photos.trace", "w").write("\n".join(lines) + "\n")

r = random.Random(11)
docs = [(f"/docs/thesis/ch{i:02d}.md", r.randint(8_000, 120_000)) for i in range(12)] + \
       [(f"/docs/refs/paper{i:02d}.pdf", r.randint(300_000, 3_000_000)) for i in range(28)]
lines = []
for session in range(6):
    chapter = r.randint(0, 11)
    for step in range(40):
        ch = docs[chapter]
        lines.append(f"vim\t{ch[1]}\t{ch[0]}\t{len(lines) * 800}")
        # Each chapter cites the same few papers.
        for k in range(r.randint(0, 2)):
            p = docs[12 + (chapter * 3 + k) % 28]
            lines.append(f"evince\t{p[1]}\t{p[0]}\t{len(lines) * 800}")
        if r.random() < 0.3:
            chapter = (chapter + 1) % 12
open(f"{out}/docs.trace", "w").write("\n".join(lines) + "\n")
PY
wc -l "$OUT"/*.trace
