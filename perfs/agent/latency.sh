#!/usr/bin/env bash
# First-read latency with and without the agent's prefetch, chunks coming from a slow S3 backend.
#
# What it measures: a mounted PerOS store kept in S3 (SeaweedFS `weed mini` on 127.0.0.1) behind
# perfs/agent/slow_proxy.py, a latency emulator that adds DELAY_MS to every S3 request (this
# sandbox has no `tc netem`). A "session" (one python3 process) reads a fixed sequence of 30
# opens over 40 documents of 256 KiB–2 MiB in 4 folders (going through folders, 2 repeats),
# sleeping THINK_MS between files. For each open it times open() → first 4 KiB returned
# ("first-read latency") and open() → EOF ("whole file").
#   1. training: TRAIN sessions in one mount (prefetch on), so the access log holds the pattern
#      (the agent reloads it at every mount);
#   2. measured runs, each cold: unmount, delete the disk cache of sealed objects
#      (PEROS_HOME/cache/objects; nothing pending), mount (the decrypted-chunk cache is per
#      process), run one session. Configurations alternate a,b,a,b…: (a) [agent] prefetch = false,
#      (b) prefetch = true, REPEATS times each;
#   3. if BASELINE=1, one more a,b pair with the proxy's delay set to 0 (loopback S3).
# Prints a summary and writes perfs/results/agent-latency-DATE.md (medians, p90, means, the
# ratio prefetch/no-prefetch, the prefetcher's counters per run from `peros agent stats --json`).
# Not part of the test suite. Takes ~2 min. Needs root (FUSE), python3, curl.
#
# Usage:  bash perfs/agent/latency.sh
#         DELAY_MS=80 THINK_MS=50 REPEATS=5 bash perfs/agent/latency.sh
# Env knobs (defaults):
#   DELAY_MS=30      delay the proxy adds to each S3 request (and to each new connection)
#   RATE_MB_S=0      bandwidth cap of the proxy, server → client, MiB/s (0: none)
#   THINK_MS=100     pause between two files of a session
#   REPEATS=3        measured runs per configuration
#   TRAIN=3          training sessions before the measured runs
#   BASELINE=1       also one pair of runs with no injected delay (0: skip)
#   SEED=42          seed of the generated documents
#   PEROS=…          peros binary (default $CARGO_TARGET_DIR/debug/peros, built if missing)
#   PEROS_WEED=…     SeaweedFS binary (default /var/cache/peros/venv/bin/weed)
#   OUT=…            results file (default perfs/results/agent-latency-$(date +%F).md)
#   KEEP=1           keep the work directory (/var/tmp/peros-latency.*: home, logs, raw data)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
PEROS="${PEROS:-$CARGO_TARGET_DIR/debug/peros}"
WEED="${PEROS_WEED:-/var/cache/peros/venv/bin/weed}"
DELAY_MS="${DELAY_MS:-30}"
RATE_MB_S="${RATE_MB_S:-0}"
THINK_MS="${THINK_MS:-100}"
REPEATS="${REPEATS:-3}"
TRAIN="${TRAIN:-3}"
BASELINE="${BASELINE:-1}"
SEED="${SEED:-42}"
KEEP="${KEEP:-0}"
OUT="${OUT:-$ROOT/perfs/results/agent-latency-$(date +%F).md}"

if [ ! -x "$PEROS" ]; then
    echo "building peros (cargo build -p peros)…" >&2
    cargo build -q -p peros --manifest-path "$ROOT/Cargo.toml"
fi
[ -x "$WEED" ] || { echo "SeaweedFS not found ($WEED): run scripts/setup.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/peros-latency.XXXXXX")"
HOME_DIR="$WORK/home"
MNT="$WORK/mnt"
RAW="$WORK/raw"
mkdir -p "$MNT" "$RAW" "$WORK/weed-data"
WEED_PID=""
PROXY_PID=""
PORTS=()

is_mounted() { awk -v d="$MNT" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }

stop_pid() { # pid: TERM, wait up to 15 s, then KILL
    local pid="$1" i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    set +e
    if is_mounted; then
        PEROS_HOME="$HOME_DIR" "$PEROS" umount "$MNT" >/dev/null 2>&1
        is_mounted && fusermount3 -u -z "$MNT" 2>/dev/null
    fi
    [ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID"
    [ -n "$WEED_PID" ] && stop_pid "$WEED_PID"
    for p in "${PORTS[@]}"; do
        rm -f /tmp/seaweedfs-*-"$p".sock
    done
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------- SeaweedFS (the command line of tests/src/seaweed.rs) ----------
read -r -a PORTS < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(11)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
S3_PORT="${PORTS[6]}"
PROXY_PORT="${PORTS[10]}"
cat > "$WORK/s3.json" <<'EOF'
{"identities":[{"name":"admin","credentials":[{"accessKey":"testkey","secretKey":"testsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
"$WEED" mini -dir="$WORK/weed-data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.config="$WORK/s3.json" -bucket=peros \
    -master.port="${PORTS[0]}" -master.port.grpc="${PORTS[1]}" \
    -volume.port="${PORTS[2]}" -volume.port.grpc="${PORTS[3]}" \
    -filer.port="${PORTS[4]}" -filer.port.grpc="${PORTS[5]}" \
    -s3.port="${PORTS[6]}" -s3.port.grpc="${PORTS[7]}" \
    -admin.port="${PORTS[8]}" -admin.port.grpc="${PORTS[9]}" \
    </dev/null >"$WORK/weed.log" 2>&1 &
WEED_PID=$!
ready=""
for _ in $(seq 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' \
        "http://127.0.0.1:${PORTS[4]}/buckets/peros/" 2>/dev/null || true)
    if [ "$code" = 200 ]; then ready=1; break; fi
    kill -0 "$WEED_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ready" ] || { echo "SeaweedFS did not start:" >&2; tail -20 "$WORK/weed.log" >&2; exit 1; }

start_proxy() { # delay_ms
    python3 "$HERE/slow_proxy.py" --listen "$PROXY_PORT" --target "$S3_PORT" \
        --delay-ms "$1" --rate-mb-s "$RATE_MB_S" --port-file "$WORK/proxy.port" \
        </dev/null >>"$WORK/proxy.log" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.05; done
    [ -s "$WORK/proxy.port" ] || { echo "proxy did not start" >&2; cat "$WORK/proxy.log" >&2; exit 1; }
}
stop_proxy() { stop_pid "$PROXY_PID"; PROXY_PID=""; rm -f "$WORK/proxy.port"; }
start_proxy "$DELAY_MS"

# ---------- the store, through the proxy ----------
export PEROS_HOME="$HOME_DIR" NO_COLOR=1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT" AWS_ACCESS_KEY_ID=testkey \
    AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
unset PEROS_PASSPHRASE PEROS_LOG XDG_CONFIG_HOME XDG_DATA_HOME
"$PEROS" -q init --no-passphrase --store s3://peros/latency >/dev/null
grep -q "^endpoint = \"http://127.0.0.1:$PROXY_PORT\"" "$HOME_DIR/config.toml" \
    || { echo "the store's endpoint is not the proxy:" >&2; cat "$HOME_DIR/config.toml" >&2; exit 1; }
cat >> "$HOME_DIR/config.toml" <<'EOF'

[agent]
schedule_minutes = 0
prefetch = true
EOF
set_prefetch() { sed -i "s/^prefetch = .*/prefetch = $1/" "$HOME_DIR/config.toml"; }

# Documents: 4 folders × 10 files of 256 KiB–2 MiB, random bytes (incompressible; extensions
# with no text extractor, so the indexer reads them once after import and never again).
python3 - "$WORK/docs" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
for d, stem, ext in [("projects", "deck", "pptx"), ("finance", "sheet", "xlsx"),
                     ("papers", "paper", "odt"), ("photos", "photo", "jpg")]:
    os.makedirs(f"{root}/{d}", exist_ok=True)
    for i in range(10):
        with open(f"{root}/{d}/{stem}-{i:02d}.{ext}", "wb") as f:
            f.write(r.randbytes(r.randint(256 << 10, 2 << 20)))
EOF
"$PEROS" -q import "$WORK/docs" /docs >/dev/null
"$PEROS" -q index --wait >/dev/null 2>&1 || true

cache_objects() { find "$HOME_DIR/cache/objects" -type f 2>/dev/null | wc -l; }
pending_objects() { find "$HOME_DIR/cache/pending" -type f 2>/dev/null | wc -l; }

# Everything written must be in the bucket before the disk cache is emptied.
wait_uploaded() {
    local i
    for i in $(seq 600); do [ "$(pending_objects)" = 0 ] && return 0; sleep 0.1; done
    echo "uploads still pending after 60 s" >&2; exit 1
}

# The session: one python3 process (the agent's model is per process name).
SEQ="$WORK/sequence.txt"
{
    for i in 00 01 02 03 04 05 06 07; do echo "docs/projects/deck-$i.pptx"; done
    for i in 00 01 02 03 04 05 06; do echo "docs/finance/sheet-$i.xlsx"; done
    echo "docs/projects/deck-03.pptx"
    for i in 00 01 02 03 04 05 06 07; do echo "docs/papers/paper-$i.odt"; done
    echo "docs/finance/sheet-02.xlsx"
    for i in 00 01 02 03 04; do echo "docs/photos/photo-$i.jpg"; done
} > "$SEQ"
cat > "$WORK/session.py" <<'EOF'
import json, os, sys, time
mnt, seq, think_ms, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
paths = [l.strip() for l in open(seq) if l.strip()]
seen = set()
with open(out, "w") as f:
    for i, rel in enumerate(paths):
        p = os.path.join(mnt, rel)
        t0 = time.perf_counter()
        fd = os.open(p, os.O_RDONLY)
        first = os.read(fd, 4096)
        t1 = time.perf_counter()
        n = len(first)
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            n += len(b)
        t2 = time.perf_counter()
        os.close(fd)
        f.write(json.dumps({"i": i, "path": rel, "bytes": n, "repeat": rel in seen,
                            "first_ms": (t1 - t0) * 1e3, "whole_ms": (t2 - t0) * 1e3}) + "\n")
        seen.add(rel)
        time.sleep(think_ms / 1e3)
EOF

stats_json() { "$PEROS" agent stats --json 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prefetch"]))'; }

mount_store() {
    "$PEROS" -q mount "$MNT" >/dev/null
    is_mounted || { echo "mount failed" >&2; tail -20 "$HOME_DIR/logs/daemon.log" >&2; exit 1; }
}
umount_store() { "$PEROS" -q umount "$MNT" >/dev/null; }

# cold_run LABEL PREFETCH(true|false) DELAY_MS
cold_run() {
    local label="$1" pf="$2" delay="$3" before after objs_at_start
    set_prefetch "$pf"
    wait_uploaded
    find "$HOME_DIR/cache/objects" -type f -delete
    before="$(stats_json)"
    mount_store
    sleep 2 # let the daemon settle (lease, agent threads; the prefetch token bucket fills in 1 s)
    objs_at_start="$(cache_objects)"
    python3 "$WORK/session.py" "$MNT" "$SEQ" "$THINK_MS" "$RAW/$label.jsonl"
    local objs_at_end
    objs_at_end="$(cache_objects)"
    umount_store
    after="$(stats_json)"
    python3 - "$RAW/$label.meta.json" "$label" "$pf" "$delay" "$objs_at_start" "$objs_at_end" "$before" "$after" <<'EOF'
import json, sys
out, label, pf, delay, o0, o1, before, after = sys.argv[1:]
b, a = json.loads(before), json.loads(after)
delta = {k: a.get(k, 0) - b.get(k, 0) for k in a if k != "depth"}
delta["depth_end"] = a.get("depth")
json.dump({"label": label, "prefetch": pf == "true", "delay_ms": float(delay),
           "objects_at_start": int(o0), "objects_at_end": int(o1), "stats": delta}, open(out, "w"))
EOF
    python3 - "$RAW/$label.jsonl" "$label" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f = [r["first_ms"] for r in rows if not r["repeat"]]
print(f"  {sys.argv[2]:<22} first read (new files): median {statistics.median(f):6.1f} ms, "
      f"mean {statistics.mean(f):6.1f} ms, max {max(f):6.1f} ms")
EOF
}

T0=$(date +%s)
echo "PerOS first-read latency: S3 (SeaweedFS) behind a ${DELAY_MS} ms/request latency emulator; work dir $WORK"

# ---------- training ----------
echo "training: $TRAIN sessions in one mount (prefetch on)"
set_prefetch true
wait_uploaded
find "$HOME_DIR/cache/objects" -type f -delete
mount_store
sleep 2
for t in $(seq "$TRAIN"); do
    python3 "$WORK/session.py" "$MNT" "$SEQ" "$THINK_MS" "$RAW/train-$t.jsonl"
done
umount_store

# ---------- measured runs ----------
for r in $(seq "$REPEATS"); do
    cold_run "noprefetch-$r" false "$DELAY_MS"
    cold_run "prefetch-$r" true "$DELAY_MS"
done
if [ "$BASELINE" = 1 ]; then
    stop_proxy
    start_proxy 0
    cold_run "baseline-noprefetch" false 0
    cold_run "baseline-prefetch" true 0
    stop_proxy
    start_proxy "$DELAY_MS"
fi
ELAPSED=$(( $(date +%s) - T0 ))

# ---------- report ----------
mkdir -p "$(dirname "$OUT")"
python3 - "$RAW" "$OUT" "$WORK/docs" "$SEQ" <<EOF
import glob, json, os, statistics, sys
raw, out, docs, seq = sys.argv[1:]
DELAY, THINK, REPEATS, TRAIN = float("$DELAY_MS"), float("$THINK_MS"), int("$REPEATS"), int("$TRAIN")
RATE, ELAPSED = float("$RATE_MB_S"), int("$ELAPSED")
commit = os.popen("git -C '$ROOT' rev-parse --short HEAD 2>/dev/null").read().strip() or "?"
dirty = os.popen("git -C '$ROOT' status --porcelain --untracked-files=no 2>/dev/null").read().strip()
binary = "$PEROS"
bin_time = __import__("datetime").datetime.fromtimestamp(os.path.getmtime(binary)).strftime("%Y-%m-%d %H:%M")
load = open("/proc/loadavg").read().split()[:3]

sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(docs) for f in fs]
paths = [l.strip() for l in open(seq) if l.strip()]

def load_runs(prefix):
    runs = []
    for meta in sorted(glob.glob(f"{raw}/{prefix}*.meta.json")):
        m = json.load(open(meta))
        m["rows"] = [json.loads(l) for l in open(meta[: -len(".meta.json")] + ".jsonl")]
        runs.append(m)
    return runs

def p90(v):
    return statistics.quantiles(v, n=10, method="inclusive")[8] if len(v) > 1 else v[0]

def summary(runs, new_only):
    rows = [r for m in runs for r in m["rows"] if not (new_only and r["repeat"])]
    f = [r["first_ms"] for r in rows]
    w = [r["whole_ms"] for r in rows]
    return {"n": len(rows), "median": statistics.median(f), "p90": p90(f), "mean": statistics.mean(f),
            "w_median": statistics.median(w), "w_p90": p90(w), "w_mean": statistics.mean(w)}

L = []
L.append(f"# Agent prefetch: first-read latency from a slow S3 backend, {__import__('time').strftime('%Y-%m-%d %H:%M UTC', __import__('time').gmtime())}")
L.append("")
L.append("Produced by \`bash perfs/agent/latency.sh\` (header of the script: method and knobs).")
L.append("")
L.append("## Setup")
L.append("")
L.append(f"- Backend: S3 store (\`peros init --store s3://peros/latency\`) on SeaweedFS \`weed mini\` (127.0.0.1), "
         f"reached through perfs/agent/slow_proxy.py, a TCP latency emulator: **+{DELAY:g} ms per S3 request** "
         f"(client→server data held {DELAY:g} ms, new connections held {DELAY:g} ms)"
         + (f", server→client capped at {RATE:g} MiB/s" if RATE > 0 else ", no bandwidth cap") + ".")
L.append(f"- Documents: {len(sizes)} files in 4 folders, random bytes, {min(sizes)/1024:.0f} KiB – {max(sizes)/1048576:.2f} MiB "
         f"(mean {statistics.mean(sizes)/1048576:.2f} MiB, total {sum(sizes)/1048576:.1f} MiB); each is one chunk (< 4 MiB).")
L.append(f"- Session: one python3 process opens {len(paths)} files ({len(set(paths))} distinct, {len(paths)-len(set(paths))} repeats) "
         f"going through the folders in order, **think time {THINK:g} ms** between files. Per open: "
         "first-read latency = open() → first 4 KiB returned (O_RDONLY, read(4096), time.perf_counter); whole file = open() → EOF.")
L.append(f"- Training: {TRAIN} sessions in one mount with prefetch on (the agent reloads the access log at each mount).")
L.append(f"- Measured runs, each cold: unmount, delete PEROS_HOME/cache/objects (no uploads pending), mount, wait 2 s, one session. "
         f"Alternating (a) \`prefetch = false\`, (b) \`prefetch = true\`, {REPEATS} runs each; [agent] defaults otherwise "
         "(prefetch_chunks 1, max_depth 4, min_p 0.3, budget 64 MiB, 64 MiB/s), schedule_minutes = 0.")
L.append(f"- Machine: {os.cpu_count()} cores shared with other builds (load average at the end {' '.join(load)}). "
         f"peros: debug build ({binary}, built {bin_time}; tree at {commit}{', with uncommitted changes' if dirty else ''}). "
         f"Whole benchmark: {ELAPSED} s.")
L.append("")

main = {"no prefetch": load_runs("noprefetch-"), "prefetch": load_runs("prefetch-")}
base = {"no prefetch": load_runs("baseline-noprefetch"), "prefetch": load_runs("baseline-prefetch")}

def table(groups, new_only, title):
    L.append(f"### {title}")
    L.append("")
    L.append("| configuration | opens | first read median (ms) | p90 | mean | whole file median (ms) | p90 | mean |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    s = {}
    for name, runs in groups.items():
        if not runs:
            continue
        s[name] = x = summary(runs, new_only)
        L.append(f"| {name} | {x['n']} | {x['median']:.1f} | {x['p90']:.1f} | {x['mean']:.1f} | "
                 f"{x['w_median']:.1f} | {x['w_p90']:.1f} | {x['w_mean']:.1f} |")
    if len(s) == 2:
        a, b = s["no prefetch"], s["prefetch"]
        L.append(f"| **ratio prefetch / no prefetch** | | **{b['median']/a['median']:.2f}** | **{b['p90']/a['p90']:.2f}** | "
                 f"**{b['mean']/a['mean']:.2f}** | {b['w_median']/a['w_median']:.2f} | {b['w_p90']/a['w_p90']:.2f} | {b['w_mean']/a['w_mean']:.2f} |")
    L.append("")
    return s

L.append(f"## Results: +{DELAY:g} ms per request ({REPEATS} cold runs per configuration, pooled)")
L.append("")
headline = table(main, True, f"Files not yet read in the mount ({len(set(paths))} opens per run)")
table(main, False, f"All opens, repeats included ({len(paths)} per run; a repeat is in memory in both configurations)")

L.append("### Per run (new files only)")
L.append("")
L.append("| run | first read median (ms) | p90 | mean | whole file mean (ms) | objects in disk cache at start → end |")
L.append("|---|---:|---:|---:|---:|---|")
order = sorted(main["no prefetch"] + main["prefetch"], key=lambda m: (int(m["label"].rsplit("-", 1)[1]), m["prefetch"]))
for m in order + base["no prefetch"] + base["prefetch"]:
    x = summary([m], True)
    L.append(f"| {m['label']} | {x['median']:.1f} | {x['p90']:.1f} | {x['mean']:.1f} | {x['w_mean']:.1f} | "
             f"{m['objects_at_start']} → {m['objects_at_end']} |")
L.append("")

L.append("### Prefetcher counters per run (\`peros agent stats --json\`, difference over the run)")
L.append("")
L.append("opens = regular-file opens seen; hits = opens whose first chunk was already decrypted in memory; "
         "prefetch_hits = hits on files the prefetcher had warmed; wasted_bytes = prefetched bytes of files "
         "opened while their first chunk was not (yet) in memory (a prefetch still in flight counts here) "
         "or not opened within 5 min (never within a run this short).")
L.append("")
keys = ["opens", "hits", "misses", "prefetch_hits", "prefetched_files", "prefetched_bytes", "wasted_bytes", "dropped_events", "depth_end"]
L.append("| run | " + " | ".join(keys) + " |")
L.append("|---|" + "---:|" * len(keys))
tot = {k: 0 for k in keys}
for m in order + base["no prefetch"] + base["prefetch"]:
    L.append(f"| {m['label']} | " + " | ".join(str(m['stats'].get(k, '')) for k in keys) + " |")
    if m in main["prefetch"]:
        for k in keys[:-1]:
            tot[k] += m["stats"].get(k, 0)
L.append("| **sum of prefetch-1..%d** | " % REPEATS + " | ".join(str(tot[k]) for k in keys[:-1]) + " | |")
L.append("")

if base["no prefetch"] and base["prefetch"]:
    L.append("## Baseline: no injected delay (loopback SeaweedFS), one cold run each")
    L.append("")
    table(base, True, f"Files not yet read in the mount ({len(set(paths))} opens per run)")

L.append("## Notes")
L.append("")
L.append("- The first file of every session cannot be predicted (nothing opened before it in this mount), so each "
         "prefetch run keeps at least one cold miss; repeats within a session are in memory in both configurations.")
L.append("- Raw per-open timings are not committed; run with KEEP=1 to keep them (work directory raw/*.jsonl).")
open(out, "w").write("\n".join(L) + "\n")

a, b = headline["no prefetch"], headline["prefetch"]
print()
print(f"first read, new files, +{DELAY:g} ms/request, {REPEATS} cold runs each:")
print(f"  no prefetch: median {a['median']:.1f} ms  p90 {a['p90']:.1f} ms  mean {a['mean']:.1f} ms  (whole file median {a['w_median']:.1f} ms)")
print(f"  prefetch:    median {b['median']:.1f} ms  p90 {b['p90']:.1f} ms  mean {b['mean']:.1f} ms  (whole file median {b['w_median']:.1f} ms)")
print(f"  ratio prefetch/no prefetch: median {b['median']/a['median']:.2f}  p90 {b['p90']/a['p90']:.2f}  mean {b['mean']/a['mean']:.2f}")
print(f"  prefetch counters (sum over prefetch runs): " + ", ".join(f"{k} {tot[k]}" for k in ["opens", "hits", "prefetch_hits", "prefetched_files", "wasted_bytes"]))
EOF
echo "$OUT"
