#!/usr/bin/env bash
# fuzz/run_nightly.sh [SECONDS_PER_TARGET] [TARGET...] - coverage-guided fuzzing with cargo-fuzz.
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Without them use fuzz/run_stable.sh.
# Builds without a sanitizer (-s none: the targets are safe Rust; much faster) but with debug
# assertions (-a: overflow checks). Corpus in fuzz/corpus/<target>, crashes in fuzz/artifacts/.
# Appends one line per target to $PEROS_FUZZ_REPORT when set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    TARGETS=(query text_chunks extract crypto_open key_file meta_records meta_db)
fi
export CARGO_TARGET_DIR=${PEROS_FUZZ_TARGET_DIR:-/var/tmp/peros-fuzz-target}
cargo +nightly fuzz build -O -a -s none
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    # Seeds: the regression inputs and any seed files.
    for d in "fuzz/regressions/$t" "fuzz/seeds/$t"; do
        [[ -d $d ]] && cp -n "$d"/* "fuzz/corpus/$t/" 2>/dev/null || true
    done
    extra=()
    case $t in
        extract) cp -n examples/invoice-MH-24-0931.pdf examples/solar-proposal.docx examples/garden-club.html "fuzz/corpus/$t/" ;;
        meta_db) extra=(-max_len=200000) ;;
    esac
    log=$(mktemp)
    rc=0
    cargo +nightly fuzz run -O -a -s none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=4096 "${extra[@]}" 2>"$log" || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    line="$t: libFuzzer, $SECS s, $execs execs, coverage $cov edges, corpus $corpus inputs, exit $rc"
    [[ $rc -ne 0 ]] && line="$line: $(grep -m1 -E 'panicked|ERROR: libFuzzer' "$log" || true)"
    echo "$line"
    [[ -n ${PEROS_FUZZ_REPORT:-} ]] && echo "$line" >> "$PEROS_FUZZ_REPORT"
    rm -f "$log"
done
