#!/usr/bin/env bash
# scripts/demo.sh - the main job on embedded defaults: one encrypted store in a local directory,
# the sample files of examples/ imported into it, listed, read back, checked, then served as a
# mounted file system, which stays mounted at the end (it prints what to try next and how to
# unmount; a re-run unmounts it first).
#
#   bash scripts/demo.sh
#
# Environment: PEROS_HOME (default ~/.local/share/peros-demo; created with `init --no-passphrase`
# when it holds no store yet), PEROS_MNT (default /tmp/peros-demo-mnt), PEROS_DEMO_MOUNT=0 to skip
# the mount part, CARGO_TARGET_DIR (default /var/tmp/peros-target), PEROS_CACHE (setup's cache).
# Re-running is fine: the import then records new versions of changed files.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STEP=start
trap 'rc=$?; if [[ $rc -ne 0 ]]; then printf "\ndemo.sh: FAILED at step \"%s\" (exit code %d)\n" "$STEP" "$rc" >&2; fi' EXIT

# Bold headings on a terminal, plain text otherwise or with NO_COLOR.
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '\n==> %s\n' "$*"; }
fi
# show CMD...: prints the command as a user would type it, then runs it.
show() { printf '$ %s\n' "$*"; "$@"; }

STEP=setup
say "setup (system packages, caches; fast on a re-run)"
bash scripts/setup.sh
# shellcheck disable=SC1091
source "${PEROS_CACHE:-/var/cache/peros}/env.sh"

STEP=build
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
say "cargo build --release -p peros"
cargo build --release -p peros
peros() { "$CARGO_TARGET_DIR/release/peros" "$@"; }

export PEROS_HOME=${PEROS_HOME:-$HOME/.local/share/peros-demo}
say "store in PEROS_HOME=$PEROS_HOME"

STEP=init
# `peros init` puts the key at $PEROS_HOME/keys/identity.age: no key, no store yet.
if [[ ! -e "$PEROS_HOME/keys/identity.age" ]]; then
    show peros init --no-passphrase
else
    echo "(already initialized: keeping the existing store)"
fi

STEP=import
say "import the sample files: examples/ becomes /examples in the store"
show peros import examples/ /examples

STEP=ls
say "list them"
show peros ls -l /examples

STEP=cat
say "read one back (decrypted from the sealed chunks)"
show peros cat /examples/taxes-2024.md

STEP=log
say "changes are recorded as versions (peros log, peros restore)"
show peros log /examples/taxes-2024.md

STEP=fsck
say "check the store: every chunk present and decryptable"
show peros fsck

STEP=status
say "status"
show peros status

STEP=objects
say "what the object store sees: opaque names, sealed bytes"
objects="$PEROS_HOME/objects"
if [[ -d "$objects" ]]; then
    find "$objects" -type f | head -n 3 | while read -r f; do
        printf '%s  %s bytes\n' "${f#"$objects"/}" "$(stat -c %s "$f")"
    done
    if grep -rqs "invoice" "$objects"; then
        echo "plaintext found in the objects: this must not happen" >&2
        exit 1
    fi
    echo "(grep -r invoice $objects finds nothing)"
fi

# --- mount -----------------------------------------------------------------------------------
# The store as a real file system: any program reads and writes it. While mounted, the other
# commands (ls, cat, status ...) run inside the mount's daemon through its control socket.
# Search and ask: through the mount's daemon when mounted, else the CLI indexes by itself.
search_and_ask() {
    STEP=index
    say "index (text is searchable at once; embeddings follow in the background)"
    show peros index --wait
    STEP=search
    say "hybrid search: words plus meaning"
    show peros search 'invoice 2024'
    show peros search 'who repairs the boiler' --mode semantic --limit 3
    say "filters: only PDFs, only Markdown changed after 2024-06-01"
    show peros search 'ext:pdf'
    show peros search 'ext:md modified:>2024-06-01'
    STEP=ask
    say "ask a question: the answer cites file and byte offset"
    show peros ask 'When is the tax filing deadline?'
}

if [[ "${PEROS_DEMO_MOUNT:-1}" != 1 ]]; then
    search_and_ask
fi

if [[ "${PEROS_DEMO_MOUNT:-1}" == 1 ]]; then
    STEP=mount
    MNT=${PEROS_MNT:-/tmp/peros-demo-mnt}
    mkdir -p "$MNT"
    # A previous run left it mounted (on purpose): start from a fresh daemon.
    peros umount "$MNT" >/dev/null 2>&1 || true
    say "mount at $MNT"
    show peros mount "$MNT"
    # On failure unmount; on success the store stays mounted for you to explore.
    trap 'rc=$?; if [[ $rc -ne 0 ]]; then peros umount "$MNT" >/dev/null 2>&1 || fusermount3 -u "$MNT" 2>/dev/null || true;
          printf "\ndemo.sh: FAILED at step \"%s\" (exit code %d)\n" "$STEP" "$rc" >&2; fi' EXIT
    show ls -l "$MNT/examples"
    show grep -l -i invoice -r "$MNT/examples"
    show sh -c "echo 'Call the chimney sweep about the 2024 invoice.' >> '$MNT/examples/taxes-2024.md'"
    show tail -n 2 "$MNT/examples/taxes-2024.md"
    search_and_ask
    STEP=views
    say "views: directories whose contents are a query, live as files change"
    show peros views add money 'invoice OR tax OR expenses' --replace
    sleep 1
    show ls -l "$MNT/@views/money"
    show mkdir -p "$MNT/@views/ext:md"
    show ls "$MNT/@views/ext:md"
    show cat "$MNT/@views/money/invoice-MH-24-0931.pdf" >/dev/null
    say "any name under @search is a query (not saved)"
    show ls "$MNT/@search/who repairs the boiler"
    show peros views list
    STEP=agent
    say "the agent: proposes views and tags from what you use; every action is journaled and undoable"
    show peros agent run --once || echo "(the agent run failed: see the message above)"
    show peros agent log
    show peros log /examples/taxes-2024.md
    STEP=doctor
    say "doctor: what this machine has and lacks (warnings are fine for a demo)"
    show peros doctor || true
    show peros status
fi

STEP=done
if [[ "${PEROS_DEMO_MOUNT:-1}" == 1 ]]; then
    say "done: your store is mounted at $MNT (and stays mounted)"
    cat <<EOF
Try next (in your shell first: export PEROS_HOME=$PEROS_HOME PATH=$CARGO_TARGET_DIR/release:\$PATH):
  ls $MNT/@views                    browse the views (also in any file manager)
  ls "$MNT/@search/boiler repair"   any name under @search runs as a query
  cp -r ~/Documents $MNT/           your own files: indexed within seconds
  peros search 'invoice 2024'        peros ask 'When is the tax filing deadline?'
  peros agent log                    peros agent undo     (the agent's journal and undo)
  peros doctor                       what is missing on this machine, and the fix
Unmount (flushes everything, stops the daemon):
  peros umount $MNT
Start over: peros umount $MNT; rm -rf $PEROS_HOME
EOF
else
    say "done: the store is in $PEROS_HOME (remove it to start over)"
fi
