#!/usr/bin/env python3
"""Helpers of perfs/s3_puts.sh (standard library only).

  ports N                         N free TCP ports on 127.0.0.1, one a line
  metrics URL OUT                 SeaweedFS's S3 request counters (SeaweedFS_s3_request_total,
                                  summed over buckets and codes, by request type) as JSON
  count FILER BUCKET PREFIX       objects under BUCKET/PREFIX, by the filer's listing (recursive)
  write DIR N SIZE OUT            mkdir DIR, N files of SIZE bytes in it, distinct contents; times create+write+close
  verify DIR N SIZE               every file reads back as written (exit 1 otherwise)
  report OUT_DIR                  the Markdown table of a run, on stdout
"""
import json
import os
import socket
import sys
import time
import urllib.parse
import urllib.request


def content(i, size):
    head = i.to_bytes(8, "little")
    return (head * (size // 8 + 1))[:size]


def ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
    for s in socks:
        s.close()


def metrics(url, out):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    by_type, by_code = {}, {}
    for line in text.splitlines():
        if not line.startswith("SeaweedFS_s3_request_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        fields = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1:-1].split(","))
        t = fields.get("type", '""').strip('"')
        code = fields.get("code", '""').strip('"')
        by_type[t] = by_type.get(t, 0) + int(float(value))
        by_code["%s %s" % (t, code)] = by_code.get("%s %s" % (t, code), 0) + int(float(value))
    with open(out, "w") as f:
        json.dump({"by_type": by_type, "by_code": by_code}, f, indent=1)


def list_dir(filer, path):
    """Entries of one filer directory: (name, is_dir)."""
    entries, last = [], ""
    while True:
        q = urllib.parse.urlencode({"limit": 1000, "lastFileName": last})
        req = urllib.request.Request("%s%s/?%s" % (filer, urllib.parse.quote(path), q),
                                     headers={"Accept": "application/json"})
        try:
            j = json.load(urllib.request.urlopen(req, timeout=30))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return entries
            raise
        page = j.get("Entries") or []
        for e in page:
            name = e["FullPath"].rsplit("/", 1)[-1]
            # Directories have mode bit 0x80000000 (Go's os.ModeDir) in the filer's JSON.
            entries.append((name, bool(e.get("Mode", 0) & 0x80000000)))
        if not j.get("ShouldDisplayLoadMore") or not page:
            return entries
        last = j.get("LastFileName") or page[-1]["FullPath"].rsplit("/", 1)[-1]


def count(filer, bucket, prefix):
    total, by_top = 0, {}
    stack = ["/buckets/%s/%s" % (bucket, prefix.strip("/"))]
    root = stack[0]
    while stack:
        d = stack.pop()
        for name, is_dir in list_dir(filer, d):
            p = d + "/" + name
            if is_dir:
                stack.append(p)
            else:
                total += 1
                top = p[len(root) + 1:].split("/", 1)[0]
                by_top[top] = by_top.get(top, 0) + 1
    print(json.dumps({"objects": total, "by_top": by_top}))


def write(d, n, size, out):
    os.mkdir(d)
    t = time.perf_counter()
    for i in range(n):
        fd = os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        data = content(i, size)
        if os.write(fd, data) != len(data):
            sys.exit("short write")
        os.close(fd)
    with open(out, "w") as f:
        json.dump({"files": n, "size": size, "create_s": time.perf_counter() - t}, f)


def verify(d, n, size):
    bad = [i for i in range(n) if open(os.path.join(d, "f%06d" % i), "rb").read() != content(i, size)]
    extra = len(os.listdir(d)) - n
    if bad or extra:
        sys.exit("%d files differ (e.g. %s), %d unexpected entries" % (len(bad), bad[:5], extra))


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def report(out):
    env = dict(line.rstrip("\n").partition("=")[::2] for line in open(os.path.join(out, "env.txt")))
    modes = env.get("modes", "pack nopack").split()
    label = {"pack": "packing on (default)", "nopack": "packing off (`pack_small_files = false`)"}
    r = {}
    for m in modes:
        d = os.path.join(out, m)
        before, after = load(os.path.join(d, "metrics-before.json"), {}), load(os.path.join(d, "metrics-after.json"), {})

        def delta(key, t):
            if not before or not after:
                return None
            return after[key].get(t, 0) - before[key].get(t, 0)

        types = sorted(set((after or {}).get("by_type", {})) | set((before or {}).get("by_type", {})))
        r[m] = {
            "write": load(os.path.join(d, "write.json"), {}),
            "times": load(os.path.join(d, "times.json"), {}),
            "status": load(os.path.join(d, "status.json"), {}),
            "before": load(os.path.join(d, "count-before.json"), {}),
            "after": load(os.path.join(d, "count-after.json"), {}),
            "puts": delta("by_type", "PUT"),
            "types": {t: delta("by_type", t) for t in types},
            "verify": open(os.path.join(d, "verify.txt")).read().strip() if os.path.exists(
                os.path.join(d, "verify.txt")) else "not run",
            "pending": open(os.path.join(d, "pending.txt")).read().strip() if os.path.exists(
                os.path.join(d, "pending.txt")) else "?",
        }

    def num(v, fmt="{:,}"):
        return "—" if v is None else fmt.format(v)

    def sec(v):
        return "—" if v is None else "%.2f s" % v

    files = next((r[m]["write"].get("files") for m in modes if r[m]["write"]), None)
    size = next((r[m]["write"].get("size") for m in modes if r[m]["write"]), None)
    print("# S3 PUTs for %s small files (%s B each) on SeaweedFS (%s)" % (num(files), num(size), env.get("date", "?")))
    print()
    print("Commit %s · %s · kernel %s · %s CPUs · `perfs/s3_puts.sh` · store `s3://%s/<mode>` on one local "
          "`weed mini` (data on %s)" % (env.get("commit", "?"), env.get("weed", "?"), env.get("kernel", "?"),
                                        env.get("cpus", "?"), env.get("bucket", "?"), env.get("data_fs", "?")))
    print()
    print("Per mode: a fresh store, mounted; the files are written into the mount (create + write + close, "
          "one after another); `peros status` (through the daemon, so everything buffered is committed) "
          "gives PerOS's own object count; then `peros umount`, which returns once the daemon has "
          "committed, uploaded and exited (`cache/pending/` of the home is checked empty after). PUTs are "
          "counted by the server: the difference of SeaweedFS's Prometheus counter "
          "`SeaweedFS_s3_request_total{type=\"PUT\"}` (all buckets and codes) from just after the mount "
          "to just after the daemon exited; they include the metadata snapshot pushes (every 2 s while "
          "something changed) and lease renewals. Objects are counted by listing the prefix through the "
          "filer. Afterwards the store is mounted again and every file is read back and compared.")
    print()
    head = ["", *[label[m] for m in modes]] + (["off / on"] if len(modes) == 2 else [])
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))

    def add(title, key_fn, fmt_fn, ratio=True):
        vals = [key_fn(r[m]) for m in modes]
        cells = [fmt_fn(v) for v in vals]
        if len(modes) == 2:
            a, b = vals
            cells.append("—" if not ratio or not a or b is None else "%.1f×" % (b / a))
        print("| %s | %s |" % (title, " | ".join(cells)))

    add("PUT requests (server's count)", lambda x: x["puts"], num)
    add("new objects in the bucket (listing after − before)",
        lambda x: None if not x["after"] or not x["before"] else x["after"]["objects"] - x["before"]["objects"], num)
    add("other PUTs (snapshot pushes, lease renewals, overwrites)",
        lambda x: None if x["puts"] is None or not x["after"] or not x["before"]
        else x["puts"] - (x["after"]["objects"] - x["before"]["objects"]), num)
    add("objects PerOS counts (`peros status`)", lambda x: x["status"].get("stats", {}).get("objects"), num)
    add("create+write+close of the files, s", lambda x: x["write"].get("create_s"), sec)
    add("`peros umount` (commit, upload the rest, exit), s", lambda x: x["times"].get("umount_s"), sec)
    add("total until everything is on S3, s", lambda x: x["times"].get("total_s"), sec)
    add("uploads pending after the daemon exited", lambda x: x["pending"], str, ratio=False)
    add("every file read back after a remount", lambda x: x["verify"], str, ratio=False)
    print()
    types = sorted({t for m in modes for t in r[m]["types"]})
    if types:
        print("All S3 requests in the same interval, by type (server's count): "
              + "; ".join("%s: %s" % (label[m].split(" (")[0],
                                      ", ".join("%s %s" % (t, num(r[m]["types"].get(t))) for t in types
                                                if r[m]["types"].get(t)))
                          for m in modes) + ".")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ports":
        ports(int(args[0]))
    elif cmd == "metrics":
        metrics(args[0], args[1])
    elif cmd == "count":
        count(args[0], args[1], args[2])
    elif cmd == "write":
        write(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "verify":
        verify(args[0], int(args[1]), int(args[2]))
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
