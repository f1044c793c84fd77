#!/usr/bin/env python3
"""Turns the raw output of perfs/fio_bench.sh (OUT/<target>/<job>-<rep>.json) into Markdown.

Usage: report.py OUT_DIR   (prints the report on stdout)
Medians over repetitions; MiB/s = 2^20 bytes per second; ratios PerOS/gocryptfs and PerOS/plain.
"""
import collections
import json
import os
import statistics
import sys

TARGETS = ["plain", "gocryptfs", "peros"]
LABEL = {"plain": "plain", "gocryptfs": "gocryptfs", "peros": "PerOS"}

# (job file, title, metric, target ratio PerOS/gocryptfs or None)
FIO_ROWS = [
    ("seq-write", "seq write 1M (end_fsync)", "write_bw", 1.5),
    ("seq-read-cold", "seq read 1M cold", "read_bw", None),
    ("seq-read-warm", "seq read 1M warm", "read_bw", 2.0),
    ("rand-read-cold", "rand read 4k cold", "read_iops", None),
    ("rand-read-warm-1pass", "rand read 4k warm, one pass", "read_iops", 5.0),
    ("rand-read-warm", "rand read 4k warm, %s s" , "read_iops", 5.0),
    ("rand-write", "rand write 4k (end_fsync)", "write_iops", None),
]
# (key, title, target time ratio PerOS/gocryptfs (lower is better) or None)
META_ROWS = [
    ("create_s", "create+write+close", 0.5),
    ("stat_s", "stat all", None),
    ("ls_s", "ls -l", None),
    ("read_s", "open+read+close all", None),
    ("rm_s", "unlink all", None),
]
# Application workloads (perfs/fio/workloads.py): (result name, key, title; {} filled from the
# results). Time, lower is better.
WORK_ROWS = [
    ("tar", "tar_s", "source tree ({files} files, {mib} MiB): `tar x`"),
    ("tar", "rm_s", "source tree: `rm -rf`"),
    ("git", "clone_s", "git repository ({commits} commits, {files} files): `git clone`"),
    ("git", "status_s", "git repository: `git status` after the clone"),
    ("sqlite-delete", "insert_s", "SQLite: {rows} rows in {tx} transactions, rollback journal, synchronous=FULL"),
    ("sqlite-wal", "insert_s", "SQLite: {rows} rows in {tx} transactions, WAL, synchronous=FULL"),
]


def load_json(path):
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    start = text.find("{")
    return json.loads(text[start:])


def fio_runs(out, target, job):
    runs = []
    d = os.path.join(out, target)
    if not os.path.isdir(d):
        return runs
    for name in sorted(os.listdir(d)):
        if name.startswith(job + "-") and name.endswith(".json") and name[len(job) + 1:-5].isdigit():
            try:
                j = load_json(os.path.join(d, name))["jobs"][0]
            except (ValueError, KeyError, IndexError):
                runs.append(None)
                continue
            runs.append(j)
    return runs


def metric(j, m):
    if j is None or j.get("error"):
        return None
    side, kind = m.split("_")
    if kind == "bw":
        return j[side]["bw_bytes"] / 2**20
    return j[side]["iops"]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, kind):
    if v is None:
        return "—"
    if kind == "s":
        return "%.2f s" % v if v < 100 else "%.0f s" % v
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    if r is None:
        return "—"
    return "%.2f×" % r if r >= 0.1 else "%.3f×" % r


def main():
    out = sys.argv[1]
    env = {}
    try:
        for line in open(os.path.join(out, "env.txt")):
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    except OSError:
        pass
    present = [t for t in TARGETS if t in env.get("targets", " ".join(TARGETS)).split()]
    notes = []

    print("# fio: plain vs gocryptfs vs PerOS (%s)" % env.get("date", "?"))
    print()
    print(
        "Commit %s · kernel %s · %s CPUs · %s · %s · %s · size %s · runtime %s s · %s rep(s), medians · "
        "load %s → %s · total %s"
        % (
            env.get("commit", "?"), env.get("kernel", "?"), env.get("cpus", "?"), env.get("mem", "?"),
            env.get("fio", "?"), env.get("gocryptfs", "?"), env.get("size", "?"), env.get("runtime", "?"),
            env.get("reps", "?"), env.get("load_before", "?"), env.get("load_after", "?"),
            env.get("elapsed", "?"),
        )
    )
    print()
    print("All stores on one loop-mounted ext4 image. psync, numjobs=1. Cold = page cache dropped and "
          "FUSE file systems remounted; warm = after a full read pass, invalidate=0. MiB/s or IOPS: "
          "higher is better; seconds: lower is better.")
    print()
    print("Warm random read is shown two ways. *One pass*: every 4 KiB block read once after the "
          "warm-up (what a cache that survives open() is worth: gocryptfs does not set "
          "FOPEN_KEEP_CACHE, so the kernel drops its page cache at every open and each read goes to "
          "the daemon). *Time-based*: the brief's job; during its first seconds gocryptfs refills "
          "the page cache, after which both serve from it, so the ratio tends to ~1.")
    print()
    cols = [LABEL[t] for t in present]
    head = ["Job", "Unit"] + cols
    if "peros" in present and "gocryptfs" in present:
        head.append("PerOS/gocryptfs")
    if "peros" in present and "plain" in present:
        head.append("PerOS/plain")
    head += ["Target (vs gocryptfs)", "Met"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 4) + ["---", "---"]) + "|")

    lat_rows = []
    for job, title, m, target in FIO_ROWS:
        if "%s" in title:
            title = title % env.get("runtime", "?")
        vals = {}
        for t in present:
            runs = fio_runs(out, t, job)
            for i, j in enumerate(runs):
                if j is None:
                    notes.append("%s %s run %d: no parsable fio output" % (LABEL[t], job, i + 1))
                elif j.get("error"):
                    notes.append("%s %s run %d: fio error %d" % (LABEL[t], job, i + 1, j["error"]))
            vals[t] = med(metric(j, m) for j in runs)
            good = [j for j in runs if j and not j.get("error")]
            if good:
                side = m.split("_")[0]
                pct = good[len(good) // 2][side]["clat_ns"].get("percentile", {})
                lat_rows.append((title, LABEL[t], pct))
        unit = "MiB/s" if m.endswith("bw") else "IOPS"
        row = [title, unit] + [fmt(vals.get(t), unit) for t in present]
        rg = ratio(vals.get("peros"), vals.get("gocryptfs"))
        if "peros" in present and "gocryptfs" in present:
            row.append(fmt_ratio(rg))
        if "peros" in present and "plain" in present:
            row.append(fmt_ratio(ratio(vals.get("peros"), vals.get("plain"))))
        row.append("≥ %.1f×" % target if target else "")
        row.append("" if not target or rg is None else ("yes" if rg >= target else "**no**"))
        print("| " + " | ".join(row) + " |")

    for key, title, target in META_ROWS:
        vals = {}
        files = None
        for t in present:
            d = os.path.join(out, t)
            vs = []
            for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if name.startswith("metadata-") and name.endswith(".json"):
                    r = load_json(os.path.join(d, name))
                    files = r.get("files", files)
                    if r.get("error_count"):
                        notes.append("%s metadata %s: %d errors, e.g. %s"
                                     % (LABEL[t], name, r["error_count"], r["errors"][:2]))
                    vs.append(r.get(key))
            vals[t] = med(vs)
        row = ["%s files: %s" % ("{:,}".format(files) if files else "?", title), "s"]
        row += [fmt(vals.get(t), "s") for t in present]
        rg = ratio(vals.get("peros"), vals.get("gocryptfs"))
        if "peros" in present and "gocryptfs" in present:
            row.append(fmt_ratio(rg))
        if "peros" in present and "plain" in present:
            row.append(fmt_ratio(ratio(vals.get("peros"), vals.get("plain"))))
        row.append("≤ %.1f× time" % target if target else "")
        row.append("" if not target or rg is None else ("yes" if rg <= target else "**no**"))
        print("| " + " | ".join(row) + " |")

    failed_work = {}
    for name, key, title in WORK_ROWS:
        vals, info, bad = {}, {}, set()
        for t in present:
            d = os.path.join(out, t)
            vs = []
            for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if f.startswith(name + "-") and f.endswith(".json") and f[len(name) + 1:-5].isdigit():
                    try:
                        r = load_json(os.path.join(d, f))
                    except ValueError:
                        r = {"error_count": 1, "errors": ["unparsable result"]}
                    for k in ("files", "bytes", "commits", "rows", "tx"):
                        if k in r:
                            info[k] = r[k]
                    if r.get("error_count"):
                        bad.add(t)
                        failed_work.setdefault((t, name), []).append(
                            "%s %s %s: %d failed check(s), e.g. %s"
                            % (LABEL[t], name, f[:-5], r["error_count"], r.get("errors", [])[:2]))
                    vs.append(r.get(key))
            vals[t] = med(vs)
        if "bytes" in info:
            info["mib"] = "%.0f" % (info["bytes"] / 2**20)
        for k in ("files", "rows"):
            if isinstance(info.get(k), int):
                info[k] = "{:,}".format(info[k])
        title = title.format_map(collections.defaultdict(lambda: "?", info))
        row = [title, "s"]
        for t in present:
            cell = fmt(vals.get(t), "s")
            row.append(cell + " **FAILED**" if t in bad else cell)
        rg = ratio(vals.get("peros"), vals.get("gocryptfs"))
        if "peros" in present and "gocryptfs" in present:
            row.append(fmt_ratio(rg))
        if "peros" in present and "plain" in present:
            row.append(fmt_ratio(ratio(vals.get("peros"), vals.get("plain"))))
        row += ["", ""]
        print("| " + " | ".join(row) + " |")
    for msgs in failed_work.values():
        notes.extend(msgs)

    # Data integrity: the crc32c check after the remount.
    print()
    checks = []
    for t in present:
        runs = fio_runs(out, t, "seq-verify")
        if not runs:
            checks.append("%s: not run" % LABEL[t])
        elif all(j is not None and not j.get("error") for j in runs):
            checks.append("%s: OK" % LABEL[t])
        else:
            checks.append("%s: **FAILED**" % LABEL[t])
            err = os.path.join(out, t)
            for name in sorted(os.listdir(err)):
                if name.startswith("seq-verify-") and name.endswith(".json"):
                    with open(os.path.join(err, name)) as f:
                        lines = [l for l in f if "verify failed" in l or "Expected" in l or "Received" in l]
                    notes.extend("%s: %s" % (LABEL[t], l.strip()) for l in lines[:6])
    print("Data check (crc32c of every 1 MiB block written by seq write, read back after a remount): "
          + ", ".join(checks) + ".")
    print()
    print("Workload checks (a failed one is marked **FAILED** in its row and listed in the notes): "
          "`tar x` — file count, bytes and a SHA-256 digest of every path, mode and content equal "
          "the tarball's; `git clone` — `git status --porcelain` empty, HEAD as in the source, "
          "`git fsck --full` clean; SQLite — `PRAGMA integrity_check` ok on a new connection, every "
          "row present with its contents. The sources (tarball, bare repository) are read into "
          "memory before the clock starts. Workloads: "
          + ", ".join("%s: %s" % (LABEL[t], "**FAILED**" if any(k[0] == t for k in failed_work) else "OK")
                      for t in present) + ".")

    for t in present:
        d = os.path.join(out, t)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.endswith(".rc"):
                with open(os.path.join(d, name)) as f:
                    rc = f.read().strip()
                notes.append("%s %s exited with %s%s" % (LABEL[t], name[:-3], rc,
                                                          " (timed out)" if rc == "124" else ""))

    print()
    print("Completion latency percentiles (µs, median run): p50 / p99 / p99.9")
    print()
    print("| Job | Target | p50 | p99 | p99.9 |")
    print("|---|---|---:|---:|---:|")
    for title, label, pct in lat_rows:
        def p(k):
            v = pct.get(k)
            return "—" if v is None else "{:,.0f}".format(v / 1000) if v >= 100000 else "%.1f" % (v / 1000)
        print("| %s | %s | %s | %s | %s |" % (title, label, p("50.000000"), p("99.000000"), p("99.900000")))

    if notes:
        print()
        print("Notes:")
        print()
        for n in sorted(set(notes)):
            print("- " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
