#!/usr/bin/env bash
# scripts/test.sh - builds the workspace and runs every test (CI runs this through .ci/run).
#
# 1. scripts/setup.sh installs what the tests need (FUSE, SeaweedFS, ONNX Runtime, the model; cached,
#    about a second on a re-run) and writes $PEROS_CACHE/env.sh, which is sourced here.
# 2. cargo build --workspace --all-targets
# 3. cargo test --workspace -- --test-threads=2   (FUSE tests mount for real: run as root; this
#    includes the whole pjdfstest suite on a --allow-other mount, about 4 minutes:
#    tests/tests/pjdfstest.rs, built by setup from tests/pjdfstest/)
# 4. the round-trip and mount tests again with PEROS_TEST_BACKEND=s3 (stores in a local SeaweedFS)
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/peros-target), PEROS_CACHE (default /var/cache/peros),
# PEROS_SETUP_LLM (default 1 here): build llama-server and the Qwen2.5-Coder model in setup (about
# 20 minutes the first time, cached after), and set PEROS_REQUIRE_LLM=1 so that the real-LLM tests
# fail rather than skip. PEROS_SETUP_LLM=0 runs without them (those tests then say SKIPPED).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
STEP=start
T0=$SECONDS
trap 'rc=$?; if [[ $rc -ne 0 ]]; then printf "\ntest.sh: FAILED at step \"%s\" (exit code %d)\n" "$STEP" "$rc" >&2; fi' EXIT

# run NAME CMD...: prints the command, runs it, names it on failure, prints its time on success.
run() {
    STEP=$1
    shift
    local t=$SECONDS
    printf '==> %s: %s\n' "$STEP" "$*"
    "$@"
    printf '==> %s: ok (%ds)\n' "$STEP" "$((SECONDS - t))"
}

export PEROS_SETUP_LLM=${PEROS_SETUP_LLM:-1}
if [[ "$PEROS_SETUP_LLM" == 1 ]]; then export PEROS_REQUIRE_LLM=1; fi
run setup bash scripts/setup.sh
STEP="source env.sh"
# shellcheck disable=SC1091
source "${PEROS_CACHE:-/var/cache/peros}/env.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
echo "==> environment: CARGO_TARGET_DIR=$CARGO_TARGET_DIR ORT_DYLIB_PATH=$ORT_DYLIB_PATH PEROS_MODEL_DIR=$PEROS_MODEL_DIR PEROS_WEED=$PEROS_WEED"

run build cargo build --workspace --all-targets
run test cargo test --workspace --no-fail-fast -- --test-threads=2
# Second pass: the store and mount tests again, every store in S3 (one SeaweedFS per test binary).
run test-s3 env PEROS_TEST_BACKEND=s3 cargo test -p peros-tests --test roundtrip --test mount -- --test-threads=2
STEP=done
printf '==> all steps passed in %ds\n' "$((SECONDS - T0))"
