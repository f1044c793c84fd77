#!/usr/bin/env python3
"""Application workloads for perfs/fio_bench.sh, beyond the synthetic small files of metadata.py.

  prepare SRC_DIR [--tree DIR ...] [--repo REPO]
      Once per run, outside the mounts: SRC_DIR/tree.tar (a real source tree: the given
      directories, by default a fixed set of crates from the cargo registry), SRC_DIR/tree.json
      (its file count, bytes and a digest of every path, mode and content) and SRC_DIR/repo.git
      (a bare clone of REPO, a real repository with history).
  tar DIR SRC_DIR --json OUT      time `tar -xf` of tree.tar into DIR, check the extracted tree
                                  against tree.json, then time `rm -rf` of it
  git DIR SRC_DIR --json OUT      time `git clone --no-hardlinks` of repo.git into DIR, then
                                  `git status`; check: status clean, HEAD as in the source,
                                  `git fsck --full` clean
  sqlite DIR --journal delete|wal [--rows N] [--tx N] --json OUT
                                  time N rows inserted in N/tx-sized transactions
                                  (synchronous=FULL), then `PRAGMA integrity_check` and a row check

Every command writes a JSON document with its timings, "errors" (empty when every check passed)
and exits 1 if a check failed. Sources are read into memory before the clock starts, so every
target gets them from the same place.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

# Crates from the cargo registry that make the default source tree (about 2,300 files, 40 MB).
DEFAULT_CRATES = ["fuser-*", "hyper*", "redb-*", "regex*", "rustls*", "serde*", "tantivy*", "tokio*"]


def registry_src():
    home = os.environ.get("CARGO_HOME") or os.path.join(os.path.expanduser("~"), ".cargo")
    dirs = sorted(glob.glob(os.path.join(home, "registry", "src", "*")))
    if not dirs:
        sys.exit("no cargo registry sources under %s/registry/src: pass --tree DIR" % home)
    return dirs[0]


def digest_entry(h, rel, kind, mode, data):
    h.update(b"%s\0%s\0%o\0" % (rel.encode(), kind, mode & 0o7777))
    h.update(hashlib.sha256(data).digest())


def tree_digest(root):
    """Files, bytes and digest of the tree under root (paths relative to it, sorted)."""
    entries = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, name)
            entries.append((os.path.relpath(p, root), p))
    entries.sort()
    h = hashlib.sha256()
    files = size = 0
    for rel, p in entries:
        st = os.lstat(p)
        if os.path.islink(p):
            digest_entry(h, rel, b"l", 0, os.readlink(p).encode())
        else:
            with open(p, "rb") as f:
                data = f.read()
            files += 1
            size += len(data)
            digest_entry(h, rel, b"f", st.st_mode, data)
    return {"files": files, "bytes": size, "digest": h.hexdigest()}


def tar_digest(path):
    """The same digest, computed from the tarball itself (independent of any file system)."""
    entries = []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.isfile():
                entries.append((os.path.normpath(m.name), b"f", m.mode, t.extractfile(m).read()))
            elif m.issym():
                entries.append((os.path.normpath(m.name), b"l", 0, m.linkname.encode()))
    entries.sort(key=lambda e: e[0])
    h = hashlib.sha256()
    for rel, kind, mode, data in entries:
        digest_entry(h, rel, kind, mode, data)
    files = [e for e in entries if e[1] == b"f"]
    return {"files": len(files), "bytes": sum(len(e[3]) for e in files), "digest": h.hexdigest()}


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def git(*args, cwd=None):
    # safe.directory: the mounts may report another owner than the one running the benchmark.
    return run(["git", "-c", "safe.directory=*", *args], cwd=cwd)


def prepare(a):
    os.makedirs(a.src, exist_ok=True)
    tar = os.path.join(a.src, "tree.tar")
    if a.tree:
        base, names = None, []
        for t in a.tree:
            t = os.path.abspath(t)
            base = base or os.path.dirname(t)
            if os.path.dirname(t) != base:
                sys.exit("--tree directories must share one parent")
            names.append(os.path.basename(t))
    else:
        base = registry_src()
        names = sorted({os.path.basename(p) for g in DEFAULT_CRATES for p in glob.glob(os.path.join(base, g))})
    if not names:
        sys.exit("no source tree found")
    tmp = tar + ".tmp"
    r = run(["tar", "-cf", tmp, "--sort=name", "-C", base, "--transform", "s,^,tree/,", *names])
    if r.returncode != 0:
        sys.exit("tar -c: %s" % r.stderr.decode(errors="replace"))
    os.replace(tmp, tar)
    info = tar_digest(tar)
    info["source"] = base
    info["dirs"] = names
    with open(os.path.join(a.src, "tree.json"), "w") as f:
        json.dump(info, f, indent=1)

    bare = os.path.join(a.src, "repo.git")
    shutil.rmtree(bare, ignore_errors=True)
    r = git("clone", "-q", "--bare", "--no-hardlinks", a.repo, bare)
    if r.returncode != 0:
        sys.exit("git clone --bare %s: %s" % (a.repo, r.stderr.decode(errors="replace")))
    head = git("rev-parse", "HEAD", cwd=bare).stdout.decode().strip()
    commits = git("rev-list", "--count", "HEAD", cwd=bare).stdout.decode().strip()
    files = git("ls-tree", "-r", "--name-only", "HEAD", cwd=bare).stdout.count(b"\n")
    with open(os.path.join(a.src, "repo.json"), "w") as f:
        json.dump({"source": os.path.abspath(a.repo), "head": head, "commits": int(commits), "files": files}, f,
                  indent=1)
    print(json.dumps({"tree": info["files"], "tree_bytes": info["bytes"], "repo_commits": commits}))


def warm(root):
    """Reads every file under root, so that the source comes from memory for every target."""
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def bench_tar(a, out, errors):
    with open(os.path.join(a.src, "tree.json")) as f:
        want = json.load(f)
    with open(os.path.join(a.src, "tree.tar"), "rb") as f:
        data = f.read()
    dest = os.path.join(a.dir, "tar-bench")
    os.mkdir(dest)
    out.update(files=want["files"], bytes=want["bytes"])
    t = time.perf_counter()
    r = run(["tar", "-xf", "-", "-C", dest], input=data)
    out["tar_s"] = time.perf_counter() - t
    if r.returncode != 0:
        errors.append("tar -x: rc %d: %s" % (r.returncode, r.stderr[:300].decode(errors="replace")))
    got = tree_digest(dest)
    for k in ("files", "bytes", "digest"):
        if got[k] != want[k]:
            errors.append("extracted tree: %s %s, source %s" % (k, got[k], want[k]))
    t = time.perf_counter()
    r = run(["rm", "-rf", dest])
    out["rm_s"] = time.perf_counter() - t
    if r.returncode != 0 or os.path.exists(dest):
        errors.append("rm -rf: rc %d: %s" % (r.returncode, r.stderr[:300].decode(errors="replace")))


def bench_git(a, out, errors):
    with open(os.path.join(a.src, "repo.json")) as f:
        want = json.load(f)
    bare = os.path.join(a.src, "repo.git")
    warm(bare)
    dest = os.path.join(a.dir, "git-bench")
    out.update(commits=want["commits"], files=want["files"])
    t = time.perf_counter()
    r = git("clone", "-q", "--no-hardlinks", bare, dest)
    out["clone_s"] = time.perf_counter() - t
    if r.returncode != 0:
        errors.append("git clone: rc %d: %s" % (r.returncode, r.stderr[:300].decode(errors="replace")))
        return
    t = time.perf_counter()
    r = git("status", "--porcelain", cwd=dest)
    out["status_s"] = time.perf_counter() - t
    if r.returncode != 0 or r.stdout.strip():
        errors.append("git status: rc %d, not clean: %s %s"
                      % (r.returncode, r.stdout[:300].decode(errors="replace"), r.stderr[:300].decode(errors="replace")))
    head = git("rev-parse", "HEAD", cwd=dest).stdout.decode().strip()
    if head != want["head"]:
        errors.append("HEAD of the clone is %s, source %s" % (head, want["head"]))
    r = git("fsck", "--full", "--no-progress", cwd=dest)
    if r.returncode != 0:
        errors.append("git fsck: rc %d: %s" % (r.returncode, r.stderr[:300].decode(errors="replace")))
    shutil.rmtree(dest, ignore_errors=True)
    if os.path.exists(dest):
        errors.append("could not remove the clone")


def bench_sqlite(a, out, errors):
    import sqlite3  # here: the other commands run with any python3

    db = os.path.join(a.dir, "sqlite-bench-%s.db" % a.journal)
    per_tx = a.rows // a.tx
    out.update(rows=per_tx * a.tx, tx=a.tx, journal=a.journal, sqlite=sqlite3.sqlite_version)

    def body(i):
        return hashlib.sha256(b"%d" % i).hexdigest() * 3

    c = sqlite3.connect(db, isolation_level=None)
    mode = c.execute("PRAGMA journal_mode=%s" % a.journal).fetchone()[0]
    if mode.lower() != a.journal:
        errors.append("journal_mode is %s, asked for %s" % (mode, a.journal))
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL)")
    c.execute("CREATE INDEX t_name ON t(name)")
    t = time.perf_counter()
    i = 0
    for _ in range(a.tx):
        c.execute("BEGIN")
        for _ in range(per_tx):
            c.execute("INSERT INTO t (id, name, body) VALUES (?, ?, ?)", (i, "row-%06d" % i, body(i)))
            i += 1
        c.execute("COMMIT")
    out["insert_s"] = time.perf_counter() - t
    c.close()

    # Checked on a fresh connection: what another process would find.
    t = time.perf_counter()
    c = sqlite3.connect(db, isolation_level=None)
    check = c.execute("PRAGMA integrity_check").fetchall()
    out["check_s"] = time.perf_counter() - t
    if check != [("ok",)]:
        errors.append("integrity_check: %s" % check[:5])
    n, s = c.execute("SELECT count(*), sum(id) FROM t").fetchone()
    if n != i or s != i * (i - 1) // 2:
        errors.append("%s rows (id sum %s), %d inserted" % (n, s, i))
    bad = sum(1 for r, b in c.execute("SELECT id, body FROM t") if b != body(r))
    if bad:
        errors.append("%d rows with wrong contents" % bad)
    c.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("src")
    p.add_argument("--tree", action="append")
    p.add_argument("--repo", required=True)
    for name in ("tar", "git"):
        p = sub.add_parser(name)
        p.add_argument("dir")
        p.add_argument("src")
        p.add_argument("--json")
    p = sub.add_parser("sqlite")
    p.add_argument("dir")
    p.add_argument("--journal", choices=["delete", "wal"], default="delete")
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--tx", type=int, default=100)
    p.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a)
        return 0

    out, errors = {}, []
    try:
        {"tar": bench_tar, "git": bench_git, "sqlite": bench_sqlite}[a.cmd](a, out, errors)
    except Exception as e:  # a failing call on the mount is a result, not a crash
        errors.append("%s: %s" % (type(e).__name__, e))
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
