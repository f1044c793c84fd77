#!/usr/bin/env bash
# perfs/crash/crash_loop.sh [RUNS] [IMPORT_RUNS] - the crash harness at full length.
#
# Runs tests/tests/crash.rs (the same code CI runs with 5 runs) with:
#   RUNS         kill -9 of the daemon under two fsync'ing writers (default 100)
#   IMPORT_RUNS  kill -9 during `peros import`, each with and without a daemon (default 10)
# plus the indexing-backlog crash, and writes perfs/results/crash-<date>.md.
# PEROS_CRASH_SEED=N replays a sequence of kill moments and workloads.
# Needs root (FUSE), /dev/fuse, fusermount3, and the model for the indexing part (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RUNS=${1:-100}
IMPORT_RUNS=${2:-10}
# shellcheck disable=SC1091
source "${PEROS_CACHE:-/var/cache/peros}/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
cargo build -p peros
cargo test -p peros-tests --test crash --no-run
# A private copy of the binary: others rebuilding in the shared target dir must not pull it
# from under a 20-minute run.
bin_copy=$(mktemp /var/tmp/peros-crash-bin.XXXXXX)
cp "$CARGO_TARGET_DIR/debug/peros" "$bin_copy"
chmod 755 "$bin_copy"
export PEROS_BIN=$bin_copy
date=$(date +%Y-%m-%d)
out=perfs/results/crash-$date.md
summary=$(mktemp)
log=$(mktemp)
t0=$SECONDS
status=ok
PEROS_CRASH_RUNS=$RUNS PEROS_CRASH_IMPORT_RUNS=$IMPORT_RUNS PEROS_CRASH_REPORT=$summary \
    cargo test -p peros-tests --test crash -- --nocapture --test-threads=1 2>&1 | tee "$log" || status=FAILED
secs=$((SECONDS - t0))
{
    echo "# Crash harness, $date"
    echo
    echo "\`perfs/crash/crash_loop.sh $RUNS $IMPORT_RUNS\` (tests/tests/crash.rs), commit $(git rev-parse --short HEAD),"
    echo "$(uname -r), $(nproc) cores, $secs s in all. Result: **$status**."
    echo
    echo "## Summary"
    echo
    sed 's/^/    /' "$summary"
    echo
    echo "## Per run"
    echo
    grep -E '^(run [0-9]+|index (before|after))' "$log" | sed 's/^/    /' || true
    echo
    echo "## Test result"
    echo
    grep -E '^test |^test result' "$log" | sed 's/^/    /' || true
} > "$out"
rm -f "$summary" "$log" "$bin_copy"
echo "wrote $out ($status)"
[[ $status == ok ]]
