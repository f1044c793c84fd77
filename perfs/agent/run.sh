#!/usr/bin/env bash
# Prefetch benchmark: generate traces (traces.sh), replay them (agent-bench), write
# perfs/results/agent-DATE.md.  Usage: bash perfs/agent/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
bash "$HERE/traces.sh" >/dev/null
cargo build -q -p peros-perfs-agent --manifest-path "$ROOT/Cargo.toml"
OUT="$ROOT/perfs/results/agent-$(date +%Y-%m-%d).md"
{
    echo "# Prefetch benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Traces from perfs/agent/traces.sh (build, python: strace of real runs; photos, docs: seeded"
    echo "synthetic sessions). Replay through peros_agent::sim: a hit is an open whose first chunk"
    echo "(file size capped at 4 MiB) is in an LRU cache of decrypted chunks; prefetches complete before"
    echo "the next open; wasted = prefetched bytes evicted or never opened. Cache = 25% (then 10%) of the"
    echo "trace's distinct first-chunk bytes; the PerOS prefetcher's unused-prefetch budget = cache/4."
    for f in 0.25 0.10; do
        echo
        echo "## cache = $f × working set"
        "$CARGO_TARGET_DIR/debug/agent-bench" --cache-frac "$f" "$HERE"/traces/*.trace
    done
} > "$OUT"
echo "$OUT"
