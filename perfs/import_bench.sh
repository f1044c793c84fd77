#!/usr/bin/env bash
# Import/export throughput of `peros` against `cp -r`, in one run on the same disk.
#
#   1. builds the release binary (cargo build --release -p peros)
#   2. generates a tree of about BENCH_MB MiB of incompressible data: a few hundred files from
#      4 KiB to 64 MiB in 16 directories (kept and reused across runs of the same size)
#   3. times `cp -r TREE COPY; sync`
#   4. times `peros import TREE /bench; sync` into a fresh PEROS_HOME (--no-passphrase)
#   5. times `peros export /bench OUT; sync`, then checks OUT against TREE (diff -r, untimed)
#   6. prints MB/s for each, the ratio peros/cp, and the store overhead
#      (stored_bytes / logical_bytes from `peros status --json`)
#
# Environment (defaults):
#   BENCH_DIR=/var/tmp/peros-bench   work directory (the tree, copies and store go in
#                                    $BENCH_DIR/import/)
#   BENCH_MB=1024                    size of the tree in MiB
#   BENCH_COLD=0                     1: `echo 3 > /proc/sys/vm/drop_caches` before each timed
#                                    step (root only; the source is then read from disk)
#   BENCH_KEEP=0                     1: keep the copy, the store and the export afterwards
#   CARGO_TARGET_DIR=/var/tmp/peros-target
#   PEROS_BIN                        binary to measure (default: the release build above)
#
# MB are 10^6 bytes. Timings include a final `sync`, so data is on disk in every case.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/peros-bench}
BENCH_MB=${BENCH_MB:-1024}
BENCH_COLD=${BENCH_COLD:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}

WORK=$BENCH_DIR/import
TREE=$WORK/tree-v2-${BENCH_MB}M  # bump vN when the generator changes
COPY=$WORK/cp-copy
STORE=$WORK/peros-home
OUT=$WORK/export

log() { printf '==> %s\n' "$*" >&2; }

if [[ -z ${PEROS_BIN:-} ]]; then
    log "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release -p peros)
    PEROS_BIN=$CARGO_TARGET_DIR/release/peros
fi
[[ -x $PEROS_BIN ]] || { echo "no peros binary at $PEROS_BIN" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is needed to generate the data" >&2; exit 1; }

mkdir -p "$WORK"

# ----- the tree -----
# Sizes: 80% log-uniform in 4 KiB..1 MiB, 20% log-uniform in 1..64 MiB, until BENCH_MB is
# reached (the last file is cut to fit). Content: AES-128-CTR keystream, one key per file.
gen_sizes() {
    awk -v total=$((BENCH_MB * 1024 * 1024)) 'BEGIN {
        srand(20261127); left = total
        while (left > 0) {
            if (rand() < 0.8) { lo = log(4096); hi = log(1048576) }
            else { lo = log(1048576); hi = log(67108864) }
            s = int(exp(lo + rand() * (hi - lo)))
            if (s > left) s = left
            print s; left -= s
        }
    }'
}

if [[ ! -f $TREE/.complete ]]; then
    log "generating $BENCH_MB MiB of random data in $TREE"
    rm -rf "$TREE"
    mkdir -p "$TREE"
    i=0
    while read -r size; do
        dir=$TREE/d$((i % 16))
        mkdir -p "$dir"
        head -c "$size" /dev/zero |
            openssl enc -aes-128-ctr -nosalt -pbkdf2 -iter 1 -pass "pass:peros-bench-$i" \
                >"$dir/f$(printf '%04d' "$i").bin"
        i=$((i + 1))
    done < <(gen_sizes)
    touch "$TREE/.complete"
fi
FILES=$(find "$TREE" -type f -name '*.bin' | wc -l)
BYTES=$(find "$TREE" -type f -name '*.bin' -printf '%s\n' | awk '{s += $1} END {print s}')
log "tree: $FILES files, $BYTES bytes"

# ----- timing helpers -----
prepare() {
    sync
    if [[ $BENCH_COLD == 1 ]]; then
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

# timed VAR CMD...: runs CMD then sync, stores the seconds in VAR.
timed() {
    local var=$1 t0 t1
    shift
    prepare
    t0=$(date +%s.%N)
    "$@"
    sync
    t1=$(date +%s.%N)
    printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
}

rm -rf "$COPY" "$STORE" "$OUT"

log "cp -r"
timed T_CP cp -r "$TREE" "$COPY"

log "peros import"
export PEROS_HOME=$STORE
unset PEROS_PASSPHRASE
"$PEROS_BIN" init --no-passphrase >/dev/null
timed T_IMPORT "$PEROS_BIN" -q import "$TREE" /bench >/dev/null

STATUS=$("$PEROS_BIN" status --json)
read -r LOGICAL STORED OBJECTS < <(printf '%s' "$STATUS" | python3 -c '
import json, sys
s = json.load(sys.stdin)["stats"]
print(s["logical_bytes"], s["stored_bytes"], s["objects"])')

log "peros export"
timed T_EXPORT "$PEROS_BIN" -q export /bench "$OUT" >/dev/null

log "checking the export against the tree"
if ! diff -r -q "$TREE" "$OUT" >/dev/null; then
    echo "EXPORT DIFFERS FROM THE SOURCE TREE" >&2
    diff -r -q "$TREE" "$OUT" | head >&2
    exit 1
fi

# ----- report -----
mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.0f", b / 1e6 / t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
CP_MBPS=$(mbps "$BYTES" "$T_CP")
IMPORT_MBPS=$(mbps "$BYTES" "$T_IMPORT")
EXPORT_MBPS=$(mbps "$BYTES" "$T_EXPORT")

echo
echo "import benchmark: $FILES files, $(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1e6}') MB, $(nproc) cores, source cache $([[ $BENCH_COLD == 1 ]] && echo cold || echo warm), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '| %-20s | %9s | %8s | %10s |\n' step seconds "MB/s" "vs cp -r"
printf '|%s|%s|%s|%s|\n' ---------------------- ----------: ---------: -----------:
printf '| %-20s | %9s | %8s | %10s |\n' "cp -r + sync" "$T_CP" "$CP_MBPS" "1.00"
printf '| %-20s | %9s | %8s | %10s |\n' "peros import + sync" "$T_IMPORT" "$IMPORT_MBPS" "$(ratio "$IMPORT_MBPS" "$CP_MBPS")"
printf '| %-20s | %9s | %8s | %10s |\n' "peros export + sync" "$T_EXPORT" "$EXPORT_MBPS" "$(ratio "$EXPORT_MBPS" "$CP_MBPS")"
echo
echo "peros/cp throughput ratio (import): $(ratio "$IMPORT_MBPS" "$CP_MBPS")"
echo "store overhead: stored_bytes/logical_bytes = $STORED/$LOGICAL = $(awk -v s="$STORED" -v l="$LOGICAL" 'BEGIN {printf "%.5f", s / l}') ($OBJECTS objects)"

if [[ $BENCH_KEEP != 1 ]]; then
    rm -rf "$COPY" "$STORE" "$OUT"
fi
