#!/usr/bin/env bash
# Runs the same fio jobs (perfs/fio/*.fio), the metadata script (perfs/fio/metadata.py) and the
# application workloads (perfs/fio/workloads.py: `tar x` of a source tree, `git clone` + `git
# status` of a real repository, SQLite inserts in transactions, rollback journal and WAL) on
#   1. a plain directory,  2. a gocryptfs mount,  3. a PerOS mount
# in one run, all backed by one loop-mounted ext4 image under BENCH_ROOT, and prints a Markdown
# table (MiB/s, IOPS or seconds, ratios PerOS/gocryptfs and PerOS/plain). The table is also
# written to perfs/results/fio-<date>.md; raw fio JSON stays in BENCH_ROOT/out-<stamp>/.
#
# Needs root (loop mount, /proc/sys/vm/drop_caches), /dev/fuse, fio, gocryptfs, fuse3, git, tar,
# python3 (installed with apt-get when missing), and a python3 with sqlite3 (PEROS_PYTHON,
# default /usr/bin/python3: Debian's; a pyenv build may lack the module).
#
# Environment (defaults):
#   BENCH_SIZE=256M        file size for the fio jobs
#   BENCH_RUNTIME=10       seconds for the runtime-bounded jobs (random read/write)
#   BENCH_REPS=1           repetitions; the table shows medians
#   BENCH_FILES=10000      files for the metadata job (4 KiB each)
#   BENCH_TREE=            directories (space-separated, one parent) that make the source tree
#                          for `tar x`; default: a fixed set of crates from ~/.cargo/registry/src
#   BENCH_GIT_REPO=<repo>  repository cloned by the git job (via a bare copy in BENCH_ROOT/src)
#   BENCH_SQLITE_ROWS=10000, BENCH_SQLITE_TX=100   SQLite rows and transactions
#   BENCH_FS="plain gocryptfs peros"   which targets to run
#   BENCH_ROOT=/var/tmp/peros-fio-bench    image, mount points, raw results
#   BENCH_IMAGE_SIZE=16G   sparse ext4 image size
#   BENCH_KEEP=0           1: keep the image file afterwards
#   PEROS_BIN              peros binary (default: build with cargo into
#                          ${CARGO_TARGET_DIR:-<repo>/target}/release/peros)
#
# Cold jobs: `sync; echo 3 > /proc/sys/vm/drop_caches` first, and gocryptfs and PerOS are
# unmounted and mounted again (PerOS keeps decrypted chunks in memory). Warm jobs run after
# a full read pass (warmup.fio) with invalidate=0. Each step runs on every target before the
# next step starts, so that load from elsewhere on the machine affects all targets alike.
# seq-verify.fio checks the crc32c of every block written, after a remount; the workloads check
# what they wrote (tree digest, git status and fsck, integrity_check) and a failed check is
# marked in the table. About 5 minutes per repetition at the defaults on 2 CPUs.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
JOBS=$HERE/fio

export BENCH_SIZE=${BENCH_SIZE:-256M}
export BENCH_RUNTIME=${BENCH_RUNTIME:-10}
BENCH_REPS=${BENCH_REPS:-1}
BENCH_FILES=${BENCH_FILES:-10000}
BENCH_FS=${BENCH_FS:-plain gocryptfs peros}
BENCH_ROOT=${BENCH_ROOT:-/var/tmp/peros-fio-bench}
BENCH_IMAGE_SIZE=${BENCH_IMAGE_SIZE:-16G}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_TREE=${BENCH_TREE:-}
BENCH_GIT_REPO=${BENCH_GIT_REPO:-$REPO}
BENCH_SQLITE_ROWS=${BENCH_SQLITE_ROWS:-10000}
BENCH_SQLITE_TX=${BENCH_SQLITE_TX:-100}
PY=${PEROS_PYTHON:-/usr/bin/python3}

IMG=$BENCH_ROOT/disk.img
DISK=$BENCH_ROOT/disk
MNT=$BENCH_ROOT/mnt
SRC=$BENCH_ROOT/src # workload sources, outside the image and the mounts
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$BENCH_ROOT/out-$STAMP
export PEROS_HOME=$DISK/peros-home
GOCRYPT_CIPHER=$DISK/gocryptfs-cipher
GOCRYPT_PASS=$DISK/gocryptfs.pass
JOB_TIMEOUT=$((BENCH_RUNTIME * 6 + 600))

log() { printf '[fio_bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_mounted() { # DIR: listed in mountinfo (also true for a stale FUSE mount)
    local d
    d=$(realpath -m "$1")
    awk -v d="$d" '{ gsub(/\\040/, " ", $5); if ($5 == d) f = 1 } END { exit !f }' /proc/self/mountinfo
}

# ---------------------------------------------------------------- requirements
[ "$(id -u)" = 0 ] || die "run as root (loop mount and drop_caches need it)"
[ -e /dev/fuse ] || die "/dev/fuse is missing (modprobe fuse)"
missing=()
command -v fio >/dev/null || missing+=(fio)
command -v gocryptfs >/dev/null || missing+=(gocryptfs)
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v git >/dev/null || missing+=(git)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi
command -v python3 >/dev/null || die "python3 is needed"
"$PY" -c 'import sqlite3' 2>/dev/null || die "$PY has no sqlite3 module: set PEROS_PYTHON (Debian's /usr/bin/python3 has it)"

mkdir -p "$BENCH_ROOT"
exec 9>"$BENCH_ROOT/lock"
flock -n 9 || die "another fio_bench.sh run holds $BENCH_ROOT/lock"

if [[ " $BENCH_FS " == *" peros "* ]]; then
    if [ -z "${PEROS_BIN:-}" ]; then
        PEROS_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/peros
        log "building peros (cargo build --release -p peros)"
        (cd "$REPO" && cargo build --release -q -p peros) || die "cargo build failed"
    fi
    [ -x "$PEROS_BIN" ] || die "no peros binary at $PEROS_BIN"
    # A private copy: a rebuild during the run (shared target dir) must not change the remounts.
    mkdir -p "$BENCH_ROOT/bin"
    cp "$PEROS_BIN" "$BENCH_ROOT/bin/peros.new" && mv "$BENCH_ROOT/bin/peros.new" "$BENCH_ROOT/bin/peros" ||
        die "copying $PEROS_BIN"
    PEROS_BIN=$BENCH_ROOT/bin/peros
fi
peros() { "$PEROS_BIN" "$@"; }


# ---------------------------------------------------------------- mounts and cleanup
peros_daemon_pid() {
    local pid
    pid=$(head -n1 "$PEROS_HOME/daemon.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q peros "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

fuse_unmount() { # DIR: plain unmount, then lazy
    is_mounted "$1" || return 0
    fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null ||
        umount -l "$1" 2>/dev/null
    ! is_mounted "$1"
}

peros_unmount() {
    local dir=$MNT/peros pid
    if is_mounted "$dir"; then
        timeout 300 "$PEROS_BIN" umount "$dir" >/dev/null 2>&1 || log "peros umount failed: see $PEROS_HOME/logs/daemon.log"
        fuse_unmount "$dir" || log "could not unmount $dir"
    fi
    # The daemon exits after unmounting; wait for it (it flushes), then stop it if it hangs.
    pid=$(peros_daemon_pid) || return 0
    for _ in $(seq 1 300); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
    log "PerOS daemon $pid still running 30 s after unmount: sending TERM"
    kill "$pid" 2>/dev/null
    sleep 2
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "cleaning up"
    [ -n "${PEROS_BIN:-}" ] && peros_unmount
    fuse_unmount "$MNT/gocryptfs" || log "could not unmount $MNT/gocryptfs"
    if [ -d "$OUT" ] && [ -f "$PEROS_HOME/logs/daemon.log" ]; then
        cp "$PEROS_HOME/logs/daemon.log" "$OUT/peros-daemon.log"
    fi
    if is_mounted "$DISK"; then
        sync
        umount "$DISK" 2>/dev/null || { sleep 2; umount "$DISK" 2>/dev/null; } || umount -l "$DISK" ||
            log "could not unmount $DISK"
    fi
    if [ "$BENCH_KEEP" != 1 ] && ! is_mounted "$DISK"; then rm -f "$IMG"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

mount_fs() { # NAME
    case $1 in
    plain) ;;
    gocryptfs) gocryptfs -q -nosyslog -passfile "$GOCRYPT_PASS" "$GOCRYPT_CIPHER" "$MNT/gocryptfs" || die "gocryptfs mount failed" ;;
    peros) peros mount "$MNT/peros" >/dev/null || die "peros mount failed: see $PEROS_HOME/logs/daemon.log" ;;
    esac
}

umount_fs() { # NAME
    case $1 in
    plain) ;;
    gocryptfs) fuse_unmount "$MNT/gocryptfs" || die "could not unmount gocryptfs" ;;
    peros) peros_unmount; is_mounted "$MNT/peros" && die "could not unmount PerOS" ;;
    esac
}

dir_of() { # NAME -> the directory the jobs run in
    case $1 in
    plain) echo "$DISK/plain" ;;
    gocryptfs) echo "$MNT/gocryptfs" ;;
    peros) echo "$MNT/peros" ;;
    esac
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

go_cold() { # NAME: unmount (FUSE targets), drop the page cache, mount again
    umount_fs "$1"
    drop_caches
    mount_fs "$1"
}

# ---------------------------------------------------------------- setup
# Leftovers of an interrupted earlier run.
if is_mounted "$MNT/peros" || is_mounted "$MNT/gocryptfs" || is_mounted "$DISK"; then
    log "clearing mounts left by an earlier run"
    [ -n "${PEROS_BIN:-}" ] && peros_unmount
    fuse_unmount "$MNT/gocryptfs"
    is_mounted "$DISK" && { umount "$DISK" || umount -l "$DISK"; }
fi
rm -f "$IMG"
mkdir -p "$DISK" "$MNT/gocryptfs" "$MNT/peros" "$OUT"
truncate -s "$BENCH_IMAGE_SIZE" "$IMG" || die "truncate $IMG"
mkfs.ext4 -q -F "$IMG" || die "mkfs.ext4"
mount -o loop "$IMG" "$DISK" || die "loop mount of $IMG"

# The workload sources, made once per run outside the mounts (not timed).
# shellcheck disable=SC2086 # BENCH_TREE is a list
"$PY" "$JOBS/workloads.py" prepare "$SRC" --repo "$BENCH_GIT_REPO" $(for t in $BENCH_TREE; do printf -- '--tree %s ' "$t"; done) \
    >"$OUT/workloads-prepare.json" || die "preparing the workload sources in $SRC"
cp "$SRC/tree.json" "$SRC/repo.json" "$OUT/"

for fs in $BENCH_FS; do
    case $fs in
    plain) mkdir -p "$DISK/plain" ;;
    gocryptfs)
        mkdir -p "$GOCRYPT_CIPHER"
        echo "fio-bench-passphrase" >"$GOCRYPT_PASS"
        gocryptfs -init -q -passfile "$GOCRYPT_PASS" "$GOCRYPT_CIPHER" >/dev/null || die "gocryptfs -init"
        ;;
    peros)
        mkdir -p "$PEROS_HOME"
        peros init --no-passphrase >/dev/null || die "peros init"
        ;;
    *) die "unknown target $fs (BENCH_FS takes plain, gocryptfs, peros)" ;;
    esac
    mount_fs "$fs"
done

{
    echo "date=$(date -Iseconds)"
    echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- . ':!perfs' 2>/dev/null || echo '+dirty')"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "mem=$(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "fio=$(fio --version)"
    echo "gocryptfs=$(gocryptfs --version 2>/dev/null | head -1 | cut -d' ' -f1-2 | tr -d ";")"
    echo "size=$BENCH_SIZE"
    echo "runtime=$BENCH_RUNTIME"
    echo "reps=$BENCH_REPS"
    echo "files=$BENCH_FILES"
    echo "sqlite=$("$PY" -c 'import sqlite3; print(sqlite3.sqlite_version)')"
    echo "git=$(git --version | cut -d' ' -f3)"
    echo "targets=$BENCH_FS"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"

# ---------------------------------------------------------------- jobs
FAILED=0
run_fio() { # FS REP JOB
    local fs=$1 rep=$2 job=$3 dir out rc
    dir=$(dir_of "$fs")
    out=$OUT/$fs/$job-$rep.json
    mkdir -p "$OUT/$fs"
    # From OUT: fio may leave files (e.g. verify state) in its working directory.
    (cd "$OUT" && BENCH_DIR=$dir exec timeout -k 10 "$JOB_TIMEOUT" fio --output-format=json --output="$out" "$JOBS/$job.fio" \
        2>"$OUT/$fs/$job-$rep.err")
    rc=$?
    if [ $rc -ne 0 ]; then
        FAILED=1
        log "$fs: $job FAILED (rc $rc$([ $rc = 124 ] && echo ', timed out')); see $out and ${out%.json}.err"
        echo "$rc" >"$OUT/$fs/$job-$rep.rc"
    else
        log "$fs: $job done"
    fi
    return $rc
}

run_metadata() { # FS REP
    local fs=$1 rep=$2 dir
    dir=$(dir_of "$fs")
    if ! timeout -k 10 1800 python3 "$JOBS/metadata.py" "$dir" --files "$BENCH_FILES" \
        --json "$OUT/$fs/metadata-$rep.json" >/dev/null 2>"$OUT/$fs/metadata-$rep.err"; then
        FAILED=1
        log "$fs: metadata FAILED; see $OUT/$fs/metadata-$rep.err"
        rm -rf "$dir/meta-bench"
    else
        log "$fs: metadata done"
    fi
}

run_workload() { # FS REP NAME ARGS...: one command of workloads.py, JSON in OUT/FS/NAME-REP.json
    local fs=$1 rep=$2 name=$3 dir json
    shift 3
    dir=$(dir_of "$fs")
    json=$OUT/$fs/$name-$rep.json
    mkdir -p "$OUT/$fs"
    if ! timeout -k 10 1800 "$PY" "$JOBS/workloads.py" "$@" --json "$json" >/dev/null 2>"$OUT/$fs/$name-$rep.err"; then
        FAILED=1
        log "$fs: $name FAILED; see $json and ${json%.json}.err"
        # A crash or a timeout leaves no JSON: the report marks the row failed all the same.
        [ -s "$json" ] || printf '{"errors": ["%s exited without a result; see %s"], "error_count": 1}\n' \
            "$name" "${json%.json}.err" >"$json"
        rm -rf "$dir/tar-bench" "$dir/git-bench" "$dir"/sqlite-bench-*
    else
        log "$fs: $name done"
    fi
}

# The steps run interleaved (each step on every target before the next step), so that load
# from elsewhere on the machine hits all targets alike. Each target's state depends only on
# its own earlier steps.
step() { # REP STEP
    local rep=$1 what=$2 fs
    for fs in $BENCH_FS; do
        case $what in
        clean) rm -f "$(dir_of "$fs")/bench.dat" ;;
        cold) go_cold "$fs" ;;
        metadata) run_metadata "$fs" "$rep" ;;
        tar) run_workload "$fs" "$rep" tar tar "$(dir_of "$fs")" "$SRC" ;;
        git) run_workload "$fs" "$rep" git git "$(dir_of "$fs")" "$SRC" ;;
        sqlite-*) run_workload "$fs" "$rep" "$what" sqlite "$(dir_of "$fs")" --journal "${what#sqlite-}" \
            --rows "$BENCH_SQLITE_ROWS" --tx "$BENCH_SQLITE_TX" ;;
        status) [ "$fs" = peros ] && peros status --json >"$OUT/$fs/status-$rep.json" 2>&1 ;;
        *) run_fio "$fs" "$rep" "$what" ;;
        esac
    done
}

START=$(date +%s)
for rep in $(seq 1 "$BENCH_REPS"); do
    log "=== rep $rep/$BENCH_REPS: $BENCH_FS"
    step "$rep" clean
    drop_caches
    step "$rep" seq-write
    step "$rep" cold
    step "$rep" seq-verify # the data written survives a remount
    step "$rep" cold
    step "$rep" seq-read-cold
    step "$rep" warmup
    step "$rep" seq-read-warm
    step "$rep" cold
    step "$rep" rand-read-cold
    step "$rep" warmup
    step "$rep" rand-read-warm-1pass
    step "$rep" rand-read-warm
    step "$rep" rand-write
    step "$rep" status
    step "$rep" clean
    drop_caches
    step "$rep" metadata
    drop_caches
    step "$rep" tar
    drop_caches
    step "$rep" git
    drop_caches
    step "$rep" sqlite-delete
    drop_caches
    step "$rep" sqlite-wal
done
echo "elapsed=$(($(date +%s) - START)) s" >>"$OUT/env.txt"
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"

# ---------------------------------------------------------------- report
mkdir -p "$REPO/perfs/results"
RESULT=$REPO/perfs/results/fio-$(date +%Y-%m-%d).md
[ -e "$RESULT" ] && RESULT=$REPO/perfs/results/fio-$(date +%Y-%m-%d-%H%M).md
python3 "$JOBS/report.py" "$OUT" >"$OUT/report.md" || die "report failed (raw results in $OUT)"
cp "$OUT/report.md" "$RESULT"
cat "$OUT/report.md"
log "table written to $RESULT; raw fio output in $OUT"
[ $FAILED = 0 ] || log "some jobs failed: see the notes in the table"
exit $FAILED
