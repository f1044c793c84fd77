#!/usr/bin/env bash
# fuzz/run_stable.sh [SECONDS_PER_TARGET] [TARGET,...] - the fuzz targets on the stable
# toolchain: random mutations of the seeds (not coverage-guided), see tests/tests/fuzz_stable.rs.
# CI runs the same test for 4 s per target. PEROS_FUZZ_SEED=N replays a run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PEROS_FUZZ_SECS=${1:-60}
[[ -n ${2:-} ]] && export PEROS_FUZZ_TARGETS=$2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/peros-target}
exec cargo test -p peros-tests --test fuzz_stable -- --nocapture
