#!/usr/bin/env bash
# The prefetcher live in a mount, next to the simulator on the same traces.
#
# For each trace (default: the recorded photos-browse and docs-read traces of record.sh, and
# the build and python traces of traces.sh):
#   1. a fresh store (local backend) holding a tree built from the trace: every file the trace
#      opens, at its path under /t, of its size (random bytes; files over 4 MiB cut to their
#      first 4 MiB chunk, the part prefetched and compared), imported and indexed;
#   2. `[store] cache_mb` = 10 % of the trace's unique first-chunk bytes (CACHE_FRAC; at least
#      4 MiB, the store's minimum), the [agent] defaults otherwise, planner off;
#   3. the backend bandwidth measured: a mount with the agent off, page cache dropped, the
#      first chunks of the 16 largest files read one after the other;
#   4. one mount, PASSES (3) replays of the trace by replay.py (the trace's gaps between opens
#      × THINK_SCALE, each open reading the first chunk as the program did), the kernel page
#      cache dropped before each (echo 3 > /proc/sys/vm/drop_caches), `peros agent stats
#      --json` read before and after each pass;
#   5. agent-bench on the same trace with the same cache, the same passes and the measured
#      bandwidth: LRU, last successor, Markov top-1 and top-2 and the PerOS model, with
#      instant fetches and with fetch time modelled.
# Writes perfs/results/agent-live-DATE.md (OUT). Root (FUSE, drop_caches). Release build of
# peros and agent-bench (built if missing). ~10 min with the default traces.
#
# Usage: bash perfs/agent/live.sh [TRACE...]
# Env: THINK_SCALE=1 PASSES=3 CACHE_FRAC=0.10 PEROS=… BENCH=… OUT=… KEEP=1
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
PEROS="${PEROS:-$CARGO_TARGET_DIR/release/peros}"
BENCH="${BENCH:-$CARGO_TARGET_DIR/release/agent-bench}"
THINK_SCALE="${THINK_SCALE:-1}"
PASSES="${PASSES:-3}"
CACHE_FRAC="${CACHE_FRAC:-0.10}"
KEEP="${KEEP:-0}"
OUT="${OUT:-$ROOT/perfs/results/agent-live-$(date +%F).md}"
[ "$(id -u)" = 0 ] || { echo "live.sh needs root (FUSE mounts, drop_caches)" >&2; exit 1; }
if [ ! -x "$PEROS" ] || [ ! -x "$BENCH" ]; then
    echo "building peros and agent-bench (release)…" >&2
    cargo build -q --release -p peros -p peros-perfs-agent --manifest-path "$ROOT/Cargo.toml"
fi
TRACES=("$@")
if [ ${#TRACES[@]} = 0 ]; then
    [ -f "$HERE/traces/photos-browse.trace" ] || bash "$HERE/record.sh" >&2
    [ -f "$HERE/traces/build.trace" ] || bash "$HERE/traces.sh" >&2
    TRACES=("$HERE/traces/photos-browse.trace" "$HERE/traces/docs-read.trace"
        "$HERE/traces/python.trace" "$HERE/traces/build.trace")
fi
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/peros-live.XXXXXX")"
MNT="$WORK/mnt"
mkdir -p "$MNT"
export NO_COLOR=1
unset PEROS_PASSPHRASE PEROS_LOG XDG_CONFIG_HOME XDG_DATA_HOME

is_mounted() { awk -v d="$MNT" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }
cleanup() {
    set +e
    if is_mounted; then
        "$PEROS" umount "$MNT" >/dev/null 2>&1
        is_mounted && fusermount3 -u -z "$MNT" 2>/dev/null
    fi
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stats() { "$PEROS" agent stats --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prefetch"]))'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mount_store() {
    "$PEROS" -q mount "$MNT" >/dev/null
    is_mounted || { echo "mount failed" >&2; tail -20 "$PEROS_HOME/logs/daemon.log" >&2; exit 1; }
    sleep 1.5 # the prefetch token bucket fills in 1 s
}

T0=$(date +%s)
for TRACE in "${TRACES[@]}"; do
    name="$(basename "$TRACE" .trace)"
    D="$WORK/$name"
    mkdir -p "$D"
    export PEROS_HOME="$D/home"
    # 1. the tree; 2. the cache size
    CACHE_MB=$(python3 - "$TRACE" "$D/tree" "$CACHE_FRAC" <<'PY'
import math, os, random, sys
trace, tree, frac = sys.argv[1], sys.argv[2], float(sys.argv[3])
sizes = {}
for line in open(trace):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 3:
        sizes[f[2]] = int(f[1])
r = random.Random(1)
for p, n in sizes.items():
    dest = tree + p
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as fh:
        fh.write(r.randbytes(min(n, 4 << 20)))
unique = sum(min(max(n, 1), 4 << 20) for n in sizes.values())
print(max(4, math.ceil(unique * frac / (1 << 20))))
PY
)
    "$PEROS" -q init --no-passphrase >/dev/null
    cat >> "$PEROS_HOME/config.toml" <<EOF

[agent]
enabled = false
schedule_minutes = 0
prefetch = true
EOF
    sed -i "s/^cache_mb = .*/cache_mb = $CACHE_MB/" "$PEROS_HOME/config.toml"
    grep -q "^cache_mb = $CACHE_MB$" "$PEROS_HOME/config.toml" || echo "cache_mb = $CACHE_MB" >> "$PEROS_HOME/config.toml"
    "$PEROS" -q import "$D/tree" /t >/dev/null
    "$PEROS" -q index --wait >/dev/null 2>&1 || true
    # 3. the backend's bandwidth (agent off: these reads teach it nothing)
    mount_store
    drop_caches
    BW=$(python3 - "$TRACE" "$MNT/t" <<'PY'
import sys, time
sizes = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 3:
        sizes[f[2]] = min(int(f[1]), (2 << 20) - 4096)
big = sorted(sizes, key=lambda p: -sizes[p])[:16]
t0, n = time.perf_counter(), 0
for p in big:
    with open(sys.argv[2] + p, "rb") as fh:
        n += len(fh.read(sizes[p]))
print(f"{n / (time.perf_counter() - t0) / 1048576:.1f}")
PY
)
    "$PEROS" -q umount "$MNT" >/dev/null
    sed -i "s/^enabled = false/enabled = true/" "$PEROS_HOME/config.toml"
    echo "$name: cache $CACHE_MB MiB, backend $BW MiB/s" >&2
    # 4. the passes
    mount_store
    echo "{\"trace\": \"$name\", \"cache_mb\": $CACHE_MB, \"bandwidth_mb_s\": $BW}" > "$D/meta.json"
    for p in $(seq "$PASSES"); do
        drop_caches
        stats > "$D/before-$p.json"
        python3 "$HERE/replay.py" "$TRACE" "$MNT/t" "$THINK_SCALE" "$D/pass-$p.jsonl"
        sleep 1.5 # the agent drains its queue
        stats > "$D/after-$p.json"
        echo "  pass $p: $(python3 -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); print({k: b[k]-a.get(k,0) for k in ("opens","hits","prefetch_hits","inflight_hits","wasted_bytes")})' "$D/before-$p.json" "$D/after-$p.json")" >&2
    done
    "$PEROS" -q umount "$MNT" >/dev/null
    # 5. the simulator, same trace, cache, passes and bandwidth
    "$BENCH" --cache-mb "$CACHE_MB" --passes "$PASSES" --bandwidth-mb-s "$BW" \
        --think-scale "$THINK_SCALE" --json "$D/sim.json" "$TRACE" > "$D/sim.md"
done
ELAPSED=$(( $(date +%s) - T0 ))

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK" "$OUT" "$PASSES" "$THINK_SCALE" "$ELAPSED" "$ROOT" "$PEROS" "${TRACES[@]}" <<'PY'
import json, os, sys, time
work, out, passes, scale, elapsed, root, peros = sys.argv[1:8]
traces = sys.argv[8:]
passes = int(passes)
MiB = 1048576
commit = os.popen(f"git -C '{root}' rev-parse --short HEAD").read().strip() or "?"
dirty = os.popen(f"git -C '{root}' status --porcelain --untracked-files=no").read().strip()
L = [f"# Prefetch live in a mount vs the simulator, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
L.append(f"Produced by `THINK_SCALE={scale} bash perfs/agent/live.sh` (method in the script's header and "
         "perfs/agent/README.md). Live = the daemon's counters (`peros agent stats --json`) over "
         f"passes 2–{passes} of {passes} replays of the trace in one mount, kernel page cache dropped before each "
         "pass; sim = agent-bench on the same trace, cache, passes, with instant fetches and with fetch time at "
         "the measured bandwidth. Hit = an open whose first chunk was decrypted in memory, complete; "
         "in flight = an open whose prefetch was still downloading (counted apart, not as a hit). "
         "Live wasted = prefetched bytes found evicted or expired unopened during passes 2–3, plus those "
         "still unopened at the end minus those unopened at the start of pass 2.")
L.append("")
L.append(f"peros release build ({peros}), tree at {commit}{' with uncommitted changes' if dirty else ''}; "
         f"{os.cpu_count()} cores shared with other work (load {' '.join(open('/proc/loadavg').read().split()[:3])}); {elapsed} s.")
summary = []
for tr in traces:
    name = os.path.basename(tr)[: -len(".trace")] if tr.endswith(".trace") else os.path.basename(tr)
    d = os.path.join(work, name)
    meta = json.load(open(f"{d}/meta.json"))
    a = json.load(open(f"{d}/before-2.json")) if passes > 1 else json.load(open(f"{d}/before-1.json"))
    b = json.load(open(f"{d}/after-{passes}.json"))
    delta = {k: b.get(k, 0) - a.get(k, 0) for k in ("opens", "hits", "prefetch_hits", "inflight_hits",
                                                    "prefetched_bytes", "wasted_bytes", "misses")}
    wasted = delta["wasted_bytes"] + b.get("outstanding_bytes", 0) - a.get("outstanding_bytes", 0)
    sim = json.load(open(f"{d}/sim.json"))
    n = sum(1 for l in open(tr) if l.count("\t") >= 2)
    L += ["", f"## {name}: {n} opens per pass, cache {meta['cache_mb']} MiB (10 % of unique first-chunk bytes), "
          f"backend measured at {meta['bandwidth_mb_s']} MiB/s", ""]
    L.append("| | strategy | hit rate | in flight | prefetch hits | prefetched MiB | wasted MiB |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    o = max(delta["opens"], 1)
    live_rate = delta["hits"] / o
    L.append(f"| **live** | **PerOS prefetcher (daemon)** | **{live_rate*100:.1f}%** | {delta['inflight_hits']*100/o:.1f}% | "
             f"{delta['prefetch_hits']} | {delta['prefetched_bytes']/MiB:.1f} | **{wasted/MiB:.1f}** |")
    for model in ("instant", "timed"):
        for s in sim:
            if s["model"] != model or s["strategy"] == "no cache":
                continue
            r = s["result"]
            L.append(f"| sim, {model} | {s['strategy']} | {s['hit_rate']*100:.1f}% | {r['inflight_hits']*100/max(r['opens'],1):.1f}% | "
                     f"{r['prefetch_hits']} | {r['prefetched_bytes']/MiB:.1f} | {r['wasted_bytes']/MiB:.1f} |")
    m2 = {s["model"]: s for s in sim if s["strategy"] == "LRU + Markov top-2"}
    pe = {s["model"]: s for s in sim if s["strategy"] == "LRU + PerOS prefetcher"}
    for model in ("instant", "timed"):
        m = m2[model]
        summary.append((name, model, live_rate, wasted, m["hit_rate"], m["result"]["wasted_bytes"],
                        pe[model]["hit_rate"]))
    L.append("")
    L.append(f"Live per pass (opens / hits / in flight / prefetch hits): " + "; ".join(
        (lambda x, y: f"pass {p}: {y['opens']-x['opens']} / {y['hits']-x['hits']} / {y['inflight_hits']-x.get('inflight_hits',0)} / {y['prefetch_hits']-x['prefetch_hits']}")(
            json.load(open(f"{d}/before-{p}.json")), json.load(open(f"{d}/after-{p}.json"))) for p in range(1, passes + 1)))
L += ["", "## Live PerOS against simulated top-2 Markov (passes 2–%d)" % passes, "",
      "| trace | Markov-2 model | live hit rate | Markov-2 hit rate | ratio live / Markov-2 | live wasted MiB | Markov-2 wasted MiB | sim PerOS hit rate |",
      "|---|---|---:|---:|---:|---:|---:|---:|"]
for name, model, lr, lw, mr, mw, pr in summary:
    L.append(f"| {name} | {model} | {lr*100:.1f}% | {mr*100:.1f}% | {lr/max(mr,1e-9):.2f} | {lw/MiB:.1f} | {mw/MiB:.1f} | {pr*100:.1f}% |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L[-len(summary) - 3:]))
PY
echo "$OUT"
