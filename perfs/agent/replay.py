"""Replays an access trace in a PerOS mount (live.sh): opens each file of the trace in turn and
reads its first chunk, as the traced program did, with the trace's gaps between opens.

Usage: python3 replay.py TRACE ROOT THINK_SCALE OUT_JSONL

- TRACE: lines STREAM<TAB>SIZE<TAB>PATH[<TAB>T_MS]; file PATH is opened as ROOT + PATH.
- The thread takes the name STREAM before each open (prctl PR_SET_NAME): the agent tells
  streams apart by the opener's /proc/TID/comm, as it tells make from cc1.
- Reads at most 2 MiB − 4 KiB of each file: all of the first 4 MiB chunk's data that the
  prefetcher warms for files up to that size, and short of the half-chunk point where the
  mount's read-ahead would fetch the second chunk (which no strategy compared here models).
- Sleeps (T_MS − previous T_MS) × THINK_SCALE before each open (at most 10 s).
"""

import ctypes
import json
import os
import sys
import time

READ_MAX = (2 << 20) - 4096
PR_SET_NAME = 15


def main():
    trace, root, scale, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    libc = ctypes.CDLL(None, use_errno=True)
    rows = []
    for n, line in enumerate(open(trace)):
        f = line.rstrip("\n").split("\t")
        if len(f) < 3:
            continue
        t = float(f[3]) if len(f) > 3 and f[3] else 0.0
        rows.append((f[0], int(f[1]), f[2], t))
    name = None
    prev = rows[0][3] if rows else 0.0
    with open(out, "w") as log:
        for i, (stream, size, path, t) in enumerate(rows):
            gap = min(10.0, max(0.0, (t - prev) / 1e3 * scale))
            prev = t
            if gap > 0:
                time.sleep(gap)
            if stream != name:
                name = stream
                libc.prctl(PR_SET_NAME, ctypes.c_char_p(stream.encode()[:15]), 0, 0, 0)
            p = root + path
            t0 = time.perf_counter()
            fd = os.open(p, os.O_RDONLY)
            try:
                first = os.read(fd, 4096)
                t1 = time.perf_counter()
                got = len(first)
                want = min(size, READ_MAX)
                while got < want:
                    b = os.read(fd, min(1 << 20, want - got))
                    if not b:
                        break
                    got += len(b)
            finally:
                os.close(fd)
            t2 = time.perf_counter()
            log.write(json.dumps({"i": i, "bytes": got, "first_ms": (t1 - t0) * 1e3,
                                  "read_ms": (t2 - t0) * 1e3}) + "\n")


if __name__ == "__main__":
    main()
