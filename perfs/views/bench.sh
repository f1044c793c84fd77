#!/usr/bin/env bash
# perfs/views/bench.sh — how fast views are to browse, and how fast they follow changes.
#
#   bash perfs/views/bench.sh            # N=10000 files, report in perfs/results/views-<date>.md
#
# Measures, in one run on the same machine (ratios matter, not absolute times):
#   1. `ls -l` of a view with N matches, warm (median of 7 runs after one warm-up), next to
#      `ls -l` of the same N files as a stored directory in the same mount, and `ls -l` of a
#      plain directory of N symlinks on the local disk (the floor any FUSE listing is held to).
#   2. How long a new matching file takes to appear in the view (write through the mount, poll
#      with stat every 10 ms): a filter view (ext:) and a keyword view, 5 files each.
#   3. How long the first full listing took after mount (initial evaluation of N matches).
#
# Environment: N (default 10000), PEROS_BIN (default: release build in $CARGO_TARGET_DIR),
# BENCH_DIR (default /var/tmp/peros-views-bench), BENCH_EMBED=1 to keep the embedding model on
# (default off: the keyword view is then ranked by text only, and no embedding backlog competes
# for the 2 CPUs during the timing runs; views follow the text index either way).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${N:-10000}
BENCH_DIR=${BENCH_DIR:-/var/tmp/peros-views-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh
if [ -z "${PEROS_BIN:-}" ]; then
    PEROS_BIN=$CARGO_TARGET_DIR/release/peros
    echo "building peros (cargo build --release -p peros)" >&2
    (cd "$REPO" && cargo build --release -q -p peros)
fi
[ -x "$PEROS_BIN" ] || { echo "no peros binary at $PEROS_BIN" >&2; exit 1; }

MNT=$BENCH_DIR/mnt
if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u -z "$MNT" || true; fi
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/src/flat" "$MNT" "$BENCH_DIR/links"
export PEROS_HOME=$BENCH_DIR/home
cleanup() {
    "$PEROS_BIN" umount "$MNT" >/dev/null 2>&1 || fusermount3 -u -z "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

echo "generating $N files" >&2
python3 - "$BENCH_DIR/src/flat" "$N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(root, f"note-{i:05d}.txt"), "w") as f:
        f.write(f"Note {i}: invoice number {i * 7919 % 100003} for consulting work.\n")
EOF
for f in "$BENCH_DIR"/src/flat/*; do ln -s "../src/flat/${f##*/}" "$BENCH_DIR/links/${f##*/}"; done

"$PEROS_BIN" init --no-passphrase >/dev/null
if [ "${BENCH_EMBED:-0}" != 1 ]; then
    sed -i "s|^\[index\]\$|[index]\nmodel_dir = \"$BENCH_DIR/no-model\"|" "$PEROS_HOME/config.toml"
fi
cat >"$PEROS_HOME/views.toml" <<EOF
[views]
all = { query = "ext:txt", limit = 100000 }
invoices = { query = "invoice", limit = 100000 }
EOF
t0=$(date +%s.%N)
"$PEROS_BIN" -q import "$BENCH_DIR/src/flat" /flat >/dev/null
t_import=$(echo "$(date +%s.%N) - $t0" | bc)
t0=$(date +%s.%N)
"$PEROS_BIN" mount "$MNT" >/dev/null
until [ "$(ls "$MNT/@views/all" | wc -l)" -ge "$N" ]; do sleep 0.1; done
t_first=$(echo "$(date +%s.%N) - $t0" | bc)
until [ "$(ls "$MNT/@views/invoices" | wc -l)" -ge "$N" ]; do sleep 0.1; done
t_first_kw=$(echo "$(date +%s.%N) - $t0" | bc)

# median_ms CMD...: one warm-up, then the median of 7 runs, in ms.
median_ms() {
    python3 - "$@" <<'EOF'
import subprocess, sys, time, statistics
cmd = sys.argv[1:]
subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
ts = []
for _ in range(7):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    ts.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(ts):.1f} {min(ts):.1f} {max(ts):.1f}")
EOF
}
read -r v_med v_min v_max < <(median_ms ls -l "$MNT/@views/all")
read -r k_med k_min k_max < <(median_ms ls -l "$MNT/@views/invoices")
read -r d_med d_min d_max < <(median_ms ls -l "$MNT/flat")
read -r p_med p_min p_max < <(median_ms ls -l "$BENCH_DIR/links")
read -r f_med f_min f_max < <(median_ms find -L "$MNT/@views/all" -type f)
# What a file manager does per entry: lstat + readlink (no xattrs), via os.scandir.
SCAN='import os,sys
n=0
for e in os.scandir(sys.argv[1]):
    e.stat(follow_symlinks=False)
    if e.is_symlink(): os.readlink(e.path)
    n+=1'
read -r sv_med sv_min sv_max < <(median_ms python3 -c "$SCAN" "$MNT/@views/all")
read -r sd_med sd_min sd_max < <(median_ms python3 -c "$SCAN" "$MNT/flat")
read -r sp_med sp_min sp_max < <(median_ms python3 -c "$SCAN" "$BENCH_DIR/links")

# appear_ms VIEW FILE CONTENT: ms from the write until the entry is visible.
appear_ms() {
    python3 - "$MNT" "$1" "$2" "$3" <<'EOF'
import os, sys, time
mnt, view, name, content = sys.argv[1:]
t = time.perf_counter()
with open(os.path.join(mnt, "flat", name), "w") as f:
    f.write(content)
entry = os.path.join(mnt, "@views", view, name)
while not os.path.lexists(entry):
    if time.perf_counter() - t > 60:
        sys.exit(f"{entry} did not appear within 60 s")
    time.sleep(0.01)
print(f"{(time.perf_counter() - t) * 1000:.0f}")
EOF
}
a_all=(); a_kw=()
for i in 1 2 3 4 5; do
    a_all+=("$(appear_ms all "new-$i.txt" "plain note $i")")
    sleep 1
    a_kw+=("$(appear_ms invoices "inv-$i.md" "invoice for the new job $i")")
    sleep 1
done
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$(head -1 "$PEROS_HOME/daemon.pid")/status")
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%d (min %d, max %d)", a[int((NR+1)/2)], a[1], a[NR]}'; }

DATE=$(date +%Y-%m-%d)
OUT=$REPO/perfs/results/views-$DATE.md
{
    echo "# Views benchmark, $DATE"
    echo
    echo "Machine: $(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Binary: \`$PEROS_BIN\`."
    echo "Corpus: $N one-line text files in one directory, imported with \`peros import\` (${t_import%.*} s)."
    echo "Embedding model: $([ "${BENCH_EMBED:-0}" = 1 ] && echo on || echo "off (keyword view ranked by text)")."
    echo
    echo "## Browsing (warm; median of 7 after a warm-up, ms)"
    echo
    echo "| listing | entries | median | min | max | vs plain symlink dir |"
    echo "|---|---:|---:|---:|---:|---:|"
    for row in "ls -l @views/all (ext:txt)|$v_med|$v_min|$v_max" "ls -l @views/invoices (keyword)|$k_med|$k_min|$k_max" \
        "ls -l of the stored directory, same mount|$d_med|$d_min|$d_max" "find -L @views/all -type f|$f_med|$f_min|$f_max" \
        "ls -l of $N symlinks on local ext4 (baseline)|$p_med|$p_min|$p_max" \
        "scandir + lstat + readlink of @views/all|$sv_med|$sv_min|$sv_max" \
        "scandir + lstat (+ readlink) of the stored directory|$sd_med|$sd_min|$sd_max" \
        "scandir + lstat + readlink of $N local symlinks|$sp_med|$sp_min|$sp_max"; do
        IFS='|' read -r name med min max <<<"$row"
        echo "| $name | $N | $med | $min | $max | $(echo "scale=2; $med / $p_med" | bc)× |"
    done
    echo
    echo "Goal: \`ls -l\` of a 10,000-entry view under 50 ms warm. GNU \`ls -l\` asks every entry for"
    echo "its \`security.selinux\` xattr; on any FUSE file system that is one round trip to the daemon per"
    echo "entry (attributes and link targets come from the kernel's caches after readdirplus), so the"
    echo "stored directory row is the fair comparison; the scandir rows are what a file manager does."
    echo
    echo "## Following changes"
    echo
    echo "| what | ms (median of 5) |"
    echo "|---|---|"
    echo "| new file written through the mount → listed in the ext:txt view | $(stats "${a_all[@]}") |"
    echo "| new file written → listed in the keyword view | $(stats "${a_kw[@]}") |"
    echo "| mount → first full listing of the $N-entry filter view | $(printf '%.0f' "$(echo "$t_first * 1000" | bc)") |"
    echo "| mount → first full listing of the $N-entry keyword view | $(printf '%.0f' "$(echo "$t_first_kw * 1000" | bc)") |"
    echo
    echo "Daemon RSS at the end: $((rss_kb / 1024)) MiB."
} | tee "$OUT"
echo "report: $OUT" >&2
