#!/usr/bin/env bash
# PUTs on S3 for many small files, with and without packing (the write path issue: "far fewer
# PUTs on S3, count them on SeaweedFS").
#
# Starts one SeaweedFS (`weed mini`, $PEROS_WEED, as tests/src/seaweed.rs does) on free ports
# with its Prometheus metrics on, then for each mode (`pack`: the default; `nopack`: `[store]
# pack_small_files = false`) a fresh PerOS store in s3://peros/<mode>, mounted, S3P_FILES files
# of S3P_SIZE bytes written into it, `peros umount` (returns once everything is uploaded), and
# the store mounted again to read every file back. The PUTs are the server's count
# (SeaweedFS_s3_request_total{type="PUT"}); objects are counted by listing the bucket. Writes
# perfs/results/s3-puts-<date>.md; raw results stay in S3P_ROOT/out-<stamp>/.
#
# Environment (defaults):
#   S3P_FILES=10000   S3P_SIZE=4096   S3P_MODES="pack nopack"
#   S3P_ROOT=/var/tmp/peros-s3-puts   (server data, stores, mounts, raw results)
#   PEROS_BIN         peros binary (default: cargo build --release into
#                     ${CARGO_TARGET_DIR:-<repo>/target}/release/peros)
#   PEROS_WEED        the weed binary (scripts/setup.sh installs it; env.sh exports the path)
# Needs /dev/fuse and fusermount3. About 2 minutes on 2 CPUs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
HELP=$HERE/s3/puts.py
# shellcheck source=s3/weed.sh
source "$HERE/s3/weed.sh"

S3P_FILES=${S3P_FILES:-10000}
S3P_SIZE=${S3P_SIZE:-4096}
S3P_MODES=${S3P_MODES:-pack nopack}
S3P_ROOT=${S3P_ROOT:-/var/tmp/peros-s3-puts}
WEED=${PEROS_WEED:-/var/cache/peros/venv/bin/weed}
BUCKET=peros
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$S3P_ROOT/out-$STAMP

log() { printf '[s3_puts %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -e /dev/fuse ] || die "/dev/fuse is missing"
command -v fusermount3 >/dev/null || die "fusermount3 is missing (apt-get install fuse3)"
[ -x "$WEED" ] || die "no weed binary at $WEED: run scripts/setup.sh and source /var/cache/peros/env.sh"
mkdir -p "$S3P_ROOT"
exec 9>"$S3P_ROOT/lock"
flock -n 9 || die "another s3_puts.sh run holds $S3P_ROOT/lock"

if [ -z "${PEROS_BIN:-}" ]; then
    PEROS_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/peros
    log "building peros (cargo build --release -p peros)"
    (cd "$REPO" && cargo build --release -q -p peros) || die "cargo build failed"
fi
[ -x "$PEROS_BIN" ] || die "no peros binary at $PEROS_BIN"
# A private copy: a rebuild during the run must not change the binary between mounts.
mkdir -p "$S3P_ROOT/bin"
cp "$PEROS_BIN" "$S3P_ROOT/bin/peros.new" && mv "$S3P_ROOT/bin/peros.new" "$S3P_ROOT/bin/peros" || die "copying $PEROS_BIN"
PEROS_BIN=$S3P_ROOT/bin/peros

# Leftovers of an earlier run (only this script's directories).
for d in "$S3P_ROOT"/out-*/*/mnt; do
    [ -d "$d" ] && mountpoint -q "$d" && { fusermount3 -u "$d" 2>/dev/null || fusermount3 -uz "$d"; }
done
rm -rf "$S3P_ROOT/weed"
mkdir -p "$OUT" "$S3P_ROOT/weed/data"

MNT_NOW=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$MNT_NOW" ] && mountpoint -q "$MNT_NOW"; then
        timeout 120 "$PEROS_BIN" umount "$MNT_NOW" >/dev/null 2>&1 || fusermount3 -uz "$MNT_NOW"
    fi
    weed_stop
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

weed_start "$S3P_ROOT/weed" "$BUCKET" "$OUT/weed.log" || die "SeaweedFS did not start"
log "weed mini (pid $WEED_PID): S3 on $S3_PORT, metrics on $METRICS"

{
    echo "date=$(date -Iseconds)"
    echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- . ':!perfs' 2>/dev/null || echo '+dirty')"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "weed=SeaweedFS $("$WEED" version 2>/dev/null | head -1 | cut -d' ' -f2-3)"
    echo "data_fs=$(df -T "$S3P_ROOT" | awk 'NR == 2 {print $2}')"
    echo "bucket=$BUCKET"
    echo "modes=$S3P_MODES"
} >"$OUT/env.txt"

daemon_wait() { # HOME: wait (up to 5 min) for the home's daemon to exit
    local pid
    pid=$(head -n1 "$1/daemon.pid" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    for _ in $(seq 1 3000); do
        [ -d "/proc/$pid" ] && grep -q peros "/proc/$pid/cmdline" 2>/dev/null || return 0
        sleep 0.1
    done
    log "daemon $pid still running 5 min after umount"
    return 1
}

FAILED=0
for mode in $S3P_MODES; do
    d=$OUT/$mode
    export PEROS_HOME=$d/home
    mnt=$d/mnt
    mkdir -p "$d" "$mnt"
    log "$mode: init s3://$BUCKET/$mode"
    "$PEROS_BIN" init --no-passphrase --store "s3://$BUCKET/$mode" >"$d/init.log" 2>&1 || die "peros init: $(tail -3 "$d/init.log")"
    grep -q '^pack_small_files = true$' "$PEROS_HOME/config.toml" || die "config.toml has no pack_small_files = true"
    case $mode in
    pack) ;;
    nopack) sed -i 's/^pack_small_files = true$/pack_small_files = false/' "$PEROS_HOME/config.toml" ;;
    *) die "unknown mode $mode (pack, nopack)" ;;
    esac
    python3 "$HELP" count "$FILER" "$BUCKET" "$mode" >"$d/count-before.json" || die "listing the bucket"
    "$PEROS_BIN" mount "$mnt" >"$d/mount.log" 2>&1 || die "peros mount: $(tail -3 "$d/mount.log")"
    MNT_NOW=$mnt
    python3 "$HELP" metrics "$METRICS" "$d/metrics-before.json" || die "reading $METRICS"
    t0=$(date +%s.%N)
    python3 "$HELP" write "$mnt/small" "$S3P_FILES" "$S3P_SIZE" "$d/write.json" || die "$mode: writing the files failed"
    "$PEROS_BIN" status --json >"$d/status.json" 2>"$d/status.err" || log "$mode: peros status failed"
    t1=$(date +%s.%N)
    timeout 600 "$PEROS_BIN" umount "$mnt" >"$d/umount.log" 2>&1 || die "$mode: peros umount failed: $(tail -3 "$d/umount.log")"
    daemon_wait "$PEROS_HOME" || FAILED=1
    t2=$(date +%s.%N)
    MNT_NOW=
    python3 "$HELP" metrics "$METRICS" "$d/metrics-after.json" || die "reading $METRICS"
    pending=$(find "$PEROS_HOME/cache/pending" -type f 2>/dev/null | wc -l)
    echo "$pending" >"$d/pending.txt"
    [ "$pending" = 0 ] || { FAILED=1; log "$mode: $pending uploads still pending after the daemon exited"; }
    python3 - "$t0" "$t1" "$t2" >"$d/times.json" <<'EOF'
import json, sys
t0, t1, t2 = map(float, sys.argv[1:])
print(json.dumps({"write_status_s": t1 - t0, "umount_s": t2 - t1, "total_s": t2 - t0}))
EOF
    python3 "$HELP" count "$FILER" "$BUCKET" "$mode" >"$d/count-after.json" || die "listing the bucket"
    log "$mode: $(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); print("PUTs", a["by_type"].get("PUT",0)-b["by_type"].get("PUT",0))' "$d/metrics-after.json" "$d/metrics-before.json"), objects $(cat "$d/count-after.json")"

    # Read back (after the PUTs are counted: this only GETs).
    "$PEROS_BIN" mount "$mnt" >>"$d/mount.log" 2>&1 || die "peros mount (read back): $(tail -3 "$d/mount.log")"
    MNT_NOW=$mnt
    if python3 "$HELP" verify "$mnt/small" "$S3P_FILES" "$S3P_SIZE" 2>"$d/verify.err"; then
        echo OK >"$d/verify.txt"
    else
        echo "**FAILED**: $(head -c 300 "$d/verify.err")" >"$d/verify.txt"
        FAILED=1
    fi
    timeout 600 "$PEROS_BIN" umount "$mnt" >>"$d/umount.log" 2>&1 || log "$mode: umount after the read back failed"
    daemon_wait "$PEROS_HOME"
    MNT_NOW=
    cp "$PEROS_HOME/logs/daemon.log" "$d/daemon.log" 2>/dev/null
done

mkdir -p "$REPO/perfs/results"
RESULT=$REPO/perfs/results/s3-puts-$(date +%Y-%m-%d).md
[ -e "$RESULT" ] && RESULT=$REPO/perfs/results/s3-puts-$(date +%Y-%m-%d-%H%M).md
python3 "$HELP" report "$OUT" >"$OUT/report.md" || die "report failed (raw results in $OUT)"
cp "$OUT/report.md" "$RESULT"
cat "$OUT/report.md"
log "table written to $RESULT; raw results in $OUT"
exit $FAILED
