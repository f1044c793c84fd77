#!/usr/bin/env python3
"""Metadata benchmark: N small files in one directory.

Phases, each timed on its own (wall-clock seconds):
  create  open(O_CREAT|O_EXCL|O_WRONLY) + write 4 KiB + close, N times
  stat    os.stat of every file
  ls      `ls -l DIR` (output discarded)
  read    open + read + close of every file, contents checked
  rm      unlink of every file, then rmdir

Usage: metadata.py DIR [--files N] [--size BYTES] [--json OUT]
Every file gets distinct contents (its index in the first 8 bytes), so a mismatch is caught.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def content(i, size):
    head = i.to_bytes(8, "little")
    return (head * (size // 8 + 1))[:size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--json")
    a = ap.parse_args()

    d = os.path.join(a.dir, "meta-bench")
    os.mkdir(d)
    names = [os.path.join(d, "f%06d" % i) for i in range(a.files)]
    out = {"files": a.files, "size": a.size}
    errors = []

    t = time.perf_counter()
    for i, p in enumerate(names):
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        data = content(i, a.size)
        n = os.write(fd, data)
        if n != len(data):
            errors.append("short write on %s: %d" % (p, n))
        os.close(fd)
    out["create_s"] = time.perf_counter() - t

    t = time.perf_counter()
    for p in names:
        st = os.stat(p)
        if st.st_size != a.size:
            errors.append("%s has size %d" % (p, st.st_size))
    out["stat_s"] = time.perf_counter() - t

    t = time.perf_counter()
    r = subprocess.run(["ls", "-l", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out["ls_s"] = time.perf_counter() - t
    listed = r.stdout.count(b"\n") - 1  # minus the "total" line
    if r.returncode != 0 or listed != a.files:
        errors.append("ls -l: rc %d, %d entries, %s" % (r.returncode, listed, r.stderr[:200]))

    t = time.perf_counter()
    for i, p in enumerate(names):
        fd = os.open(p, os.O_RDONLY)
        data = os.read(fd, a.size + 1)
        os.close(fd)
        if data != content(i, a.size):
            errors.append("content mismatch in %s" % p)
    out["read_s"] = time.perf_counter() - t

    t = time.perf_counter()
    for p in names:
        os.unlink(p)
    os.rmdir(d)
    out["rm_s"] = time.perf_counter() - t

    out["errors"] = errors[:20]
    out["error_count"] = len(errors)
    text = json.dumps(out, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
