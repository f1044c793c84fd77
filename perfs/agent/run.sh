#!/usr/bin/env bash
# Prefetch benchmark in the simulator: generate traces (traces.sh, record.sh), replay them
# (agent-bench, release build), write perfs/results/agent-DATE.md.
# Usage: bash perfs/agent/run.sh        (BANDWIDTH_MB_S=200: the fetch-time model's bandwidth)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
BW="${BANDWIDTH_MB_S:-200}"
[ -f "$HERE/traces/build.trace" ] || bash "$HERE/traces.sh" >/dev/null
[ -f "$HERE/traces/photos-browse.trace" ] || bash "$HERE/record.sh" >/dev/null
cargo build -q --release -p peros-perfs-agent --manifest-path "$ROOT/Cargo.toml"
OUT="${OUT:-$ROOT/perfs/results/agent-$(date +%Y-%m-%d).md}"
{
    echo "# Prefetch benchmark (simulator), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Produced by \`bash perfs/agent/run.sh\`. Traces: perfs/agent/traces.sh (build, python: strace of"
    echo "real runs; photos, docs: seeded synthetic sessions) and perfs/agent/record.sh (photos-browse,"
    echo "docs-read: strace of a scripted viewer and reader on generated files; see perfs/agent/README.md)."
    echo "Replay through peros_agent::sim: a hit is an open whose first chunk (file size capped at 4 MiB)"
    echo "is in an LRU cache of decrypted chunks; wasted = prefetched bytes evicted or never opened."
    echo "Each trace is replayed 3 times in a row and passes 2–3 are counted. First table of each trace:"
    echo "prefetches complete before the next open; second: a fetch takes bytes / ${BW} MiB/s on one of 4"
    echo "fetchers, the reader follows the trace's gaps and waits for its misses, and an open whose"
    echo "prefetch is still downloading is an in-flight hit (not a hit). Cache = 10 % of the trace's"
    echo "distinct first-chunk bytes (at least 4 MiB); PerOS budget = min(64 MiB, cache / 2)."
    "$CARGO_TARGET_DIR/release/agent-bench" --cache-frac 0.10 --passes 3 --bandwidth-mb-s "$BW" \
        "$HERE"/traces/photos-browse.trace "$HERE"/traces/docs-read.trace \
        "$HERE"/traces/build.trace "$HERE"/traces/python.trace \
        "$HERE"/traces/photos.trace "$HERE"/traces/docs.trace
} > "$OUT"
echo "$OUT"
