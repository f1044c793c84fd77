#!/usr/bin/env bash
# OCR and extraction benchmarks (issue "What personal files really are"), release build:
#
#   1. OCR_PAGES scans rendered with ImageMagick from the first 60 lines of man pages of the
#      perfs/search corpus (A4 at 300 dpi, DejaVu Sans Mono 30 px, rotated ±1°, Gaussian noise):
#      `ocr-bench --pages` prints pages/min and character accuracy of PerOS's OCR path (one and
#      two at a time) next to plain `tesseract` on the same pages (the baseline).
#   2. Time to a searchable scan on a real mount: a scan and a plain-text twin of another page
#      are written into the mount; each is timed from the end of the copy until
#      `peros search --mode text` lists it in its top 5 for four of its words. The text file is the
#      baseline of the same run.
#   3. Extraction throughput per format: `ocr-bench --extract` over the samples of
#      scripts/make-format-samples.sh (LibreOffice, Python's email) and the man-page text.
#
# Writes perfs/results/ocr-DATE.md. Env (defaults): OCR_PAGES=12 OCR_ROOT=/var/tmp/peros-ocr
#   SEARCH_CORPUS=/var/tmp/peros-search-corpus PEROS_BIN
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck disable=SC1091
[ -f /var/cache/peros/env.sh ] && source /var/cache/peros/env.sh
OCR_PAGES=${OCR_PAGES:-12}
OCR_ROOT=${OCR_ROOT:-/var/tmp/peros-ocr}
CORPUS=${SEARCH_CORPUS:-/var/tmp/peros-search-corpus}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/peros-target}"
PEROS_BIN=${PEROS_BIN:-$CARGO_TARGET_DIR/release/peros}
BENCH=$CARGO_TARGET_DIR/release/ocr-bench
OUT=${OUT:-$REPO/perfs/results/ocr-$(date +%F).md}

log() { printf '[ocr %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for t in convert tesseract pdftocairo; do
    command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh"
done
[ -d "$CORPUS/man1" ] || "$REPO/perfs/search/corpus.sh" "$CORPUS"
(cd "$REPO" && cargo build --release -q -p peros -p peros-perfs-search --bin ocr-bench --bin peros)

rm -rf "$OCR_ROOT"
mkdir -p "$OCR_ROOT/pages" "$OCR_ROOT/samples"
log "rendering $OCR_PAGES scans"
n=0
for f in $(ls "$CORPUS/man1" | awk 'NR % 7 == 3'); do
    [ "$n" -ge "$OCR_PAGES" ] && break
    # ImageMagick reads % and @ in drawn text as escapes: the source is kept without them.
    src=$(head -n 60 "$CORPUS/man1/$f" | grep -v '^[[:space:]]*$' | head -n 45 | tr -d '%@\\')
    [ "$(printf '%s' "$src" | wc -c)" -gt 1200 ] || continue
    n=$((n + 1))
    id=$(printf '%03d' "$n")
    printf '%s\n' "$src" > "$OCR_ROOT/pages/$id.txt"
    angle=$(awk -v n="$n" 'BEGIN { printf "%.1f", (n % 2 ? 1 : -1) * (0.4 + (n % 3) * 0.3) }')
    # One -annotate per line: a long label or caption trips ImageMagick's size limits.
    draw=(); y=200
    while IFS= read -r line; do draw+=(-annotate "+150+$y" "$line"); y=$((y + 66)); done \
        < "$OCR_ROOT/pages/$id.txt"
    convert -size 2480x3508 xc:white -fill black -font DejaVu-Sans-Mono -pointsize 30 \
        "${draw[@]}" -rotate "$angle" -background white -gravity center -extent 2480x3508 \
        -attenuate 0.25 +noise Gaussian -colorspace Gray -depth 8 "png:$OCR_ROOT/pages/$id.png"
done
[ "$n" -gt 0 ] || die "no page long enough in $CORPUS/man1"

{
    echo "# OCR and extraction — $(date -u '+%F %H:%M') UTC"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(tesseract --version 2>&1 | head -1), release build. Reproduce: \`bash perfs/ocr/run.sh\`."
    echo
} > "$OUT.tmp"

log "OCR throughput and accuracy"
"$BENCH" --pages "$OCR_ROOT/pages" >> "$OUT.tmp"

log "time to a searchable scan on a mount"
export PEROS_HOME="$OCR_ROOT/home"
MNT="$OCR_ROOT/mnt"
mkdir -p "$MNT"
"$PEROS_BIN" init --no-passphrase >/dev/null
"$PEROS_BIN" mount "$MNT" >/dev/null
trap '"$PEROS_BIN" umount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null || true' EXIT
# Four long words of a page that no other page of the two has.
words_of() { tr -cs 'A-Za-z' '\n' < "$1" | awk 'length >= 7' | sort | uniq -c | sort -k1,1n -k2 \
    | awk '{print $2}' | head -n 4 | tr '\n' ' '; }
time_to_found() { # FILE-IN-MOUNT WORDS -> seconds
    local want=$1 words=$2 t0 top
    t0=$(date +%s.%N)
    for _ in $(seq 1 1200); do
        top=$("$PEROS_BIN" search --json --mode text --limit 5 -- "$words" 2>/dev/null \
            | python3 -c 'import json,sys; print("\n".join(h["path"] for h in json.load(sys.stdin)["hits"]))' || true)
        if printf '%s\n' "$top" | grep -qxF "$want"; then
            awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
            return
        fi
        sleep 0.1
    done
    echo "timeout"
}
cp "$OCR_ROOT/pages/002.txt" "$MNT/twin.txt"
t_text=$(time_to_found /twin.txt "$(words_of "$OCR_ROOT/pages/002.txt")")
cp "$OCR_ROOT/pages/001.png" "$MNT/scan.png"
t_scan=$(time_to_found /scan.png "$(words_of "$OCR_ROOT/pages/001.txt")")
# A second copy of the same scan: its text comes from the OCR cache.
cp "$OCR_ROOT/pages/001.png" "$MNT/scan-copy.png"
t_copy=$(time_to_found /scan-copy.png "$(words_of "$OCR_ROOT/pages/001.txt")")
{
    echo "### Time to a searchable file on a mount (write → in the top 5 of \`peros search --mode text\` for four of its words)"
    echo
    echo "| file | seconds | × the text file |"
    echo "|---|---:|---:|"
    echo "| plain text page (baseline) | $t_text | 1.00 |"
    echo "| scanned page (PNG, OCR in the background) | $t_scan | $(awk -v a="$t_scan" -v b="$t_text" 'BEGIN { if (b > 0 && a != "timeout") printf "%.1f", a / b; else print "–" }') |"
    echo "| a copy of that scan (OCR cache) | $t_copy | $(awk -v a="$t_copy" -v b="$t_text" 'BEGIN { if (b > 0 && a != "timeout") printf "%.1f", a / b; else print "–" }') |"
    echo
    echo "Each poll is a separate \`peros search\` process (about 0.1 s apart), so the figures include up"
    echo "to one poll of latency. Cold: the OCR process and its model files start for each page."
    echo
} >> "$OUT.tmp"
"$PEROS_BIN" umount "$MNT" >/dev/null
trap - EXIT

log "extraction throughput"
if [ -x "$REPO/scripts/make-format-samples.sh" ]; then
    bash "$REPO/scripts/make-format-samples.sh" "$OCR_ROOT/samples" >/dev/null
fi
if command -v soffice >/dev/null && ls "$OCR_ROOT/samples"/*.odt >/dev/null 2>&1; then
    mkdir -p "$OCR_ROOT/samples/pdf"
    soffice -env:UserInstallation="file://$OCR_ROOT/lo-profile" --headless --convert-to pdf \
        --outdir "$OCR_ROOT/samples/pdf" "$OCR_ROOT/samples"/*.odt "$OCR_ROOT/samples"/*.docx >/dev/null 2>&1 || true
fi
# Large documents: 40 man pages (about 300 KB of text) written by LibreOffice as each format,
# and a 20,000-row table as XLSX and ODS, so that MB/s measures parsing, not opening a file.
if command -v soffice >/dev/null; then
    mkdir -p "$OCR_ROOT/large" "$OCR_ROOT/samples/large"
    ls "$CORPUS/man1" | head -n 40 | while read -r f; do cat "$CORPUS/man1/$f"; echo; done \
        | tr -d '\000-\010\013\014\016-\037' > "$OCR_ROOT/large/manual.txt"
    awk 'BEGIN { print "id,name,amount,date,note"; for (i = 1; i <= 20000; i++)
        printf "%d,item %d,%.2f,2024-%02d-%02d,note about item %d\n", i, i, i * 1.37, i % 12 + 1, i % 28 + 1, i }' \
        > "$OCR_ROOT/large/table.csv"
    for fmt in odt docx rtf epub pdf; do
        soffice -env:UserInstallation="file://$OCR_ROOT/lo-profile" --headless --convert-to "$fmt" \
            --outdir "$OCR_ROOT/samples/large" "$OCR_ROOT/large/manual.txt" >/dev/null 2>&1 || true
    done
    for fmt in xlsx ods; do
        soffice -env:UserInstallation="file://$OCR_ROOT/lo-profile" --headless --convert-to "$fmt" \
            --outdir "$OCR_ROOT/samples/large" "$OCR_ROOT/large/table.csv" >/dev/null 2>&1 || true
    done
fi
mkdir -p "$OCR_ROOT/samples/text"
ls "$CORPUS/man1" | head -n 50 | while read -r f; do cp "$CORPUS/man1/$f" "$OCR_ROOT/samples/text/$f.txt"; done
"$BENCH" --extract "$OCR_ROOT/samples" --repeat 5 >> "$OUT.tmp"
echo "Rows without \"(large)\" are the one-page samples of make-format-samples.sh: per-file costs (opening the zip, parsing the XML) dominate them, so read their \"ms per file\". \"(large)\" rows are 40 man pages (about 300 KB of text) or a 20,000-row table written by LibreOffice: their MB/s is parsing. Plain text (50 man pages) is the baseline of the same run; the text budget is 2 MiB per file." >> "$OUT.tmp"

mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
cat "$OUT"
