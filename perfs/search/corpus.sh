#!/usr/bin/env bash
# The labeled corpus of perfs/search: Debian man pages rendered to plain text.
#
#   corpus.sh --select   re-derive pages.txt from this machine's /usr/share/man (the rule below)
#   corpus.sh [DIR]      render every page of pages.txt into DIR (default $SEARCH_CORPUS,
#                        else /var/tmp/peros-search-corpus) as DIR/man1/NAME, DIR/man8/NAME
#                        (NAME = the file name without .gz, e.g. man1/scp.1)
#
# Selection rule (deterministic for a given set of installed packages):
#   1. regular files (symlinks skipped: they are aliases) matching /usr/share/man/man1/*.gz
#      and /usr/share/man/man8/*.gz;
#   2. minus gcloud* (the Google Cloud SDK installs ~16 600 generated pages of one CLI that
#      would be 95 % of the corpus);
#   3. compressed size > 1500 bytes (skips `.so` redirect stubs and near-empty pages);
#   4. sorted by path in the C locale, every 2nd one starting with the first.
# pages.txt is committed, so a run on another machine uses the same list (pages missing
# there are skipped, and so are the questions about them: search-bench says how many).
#
# Rendering: MANWIDTH=80 man --nh --nj -l FILE | col -bx (no hyphenation, no justification,
# no overstrike, tabs expanded). Needs man-db and groff-base (apt-get install man-db groff-base).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIST="$HERE/pages.txt"
export LC_ALL=C

if [[ "${1:-}" == "--select" ]]; then
    find /usr/share/man/man1 /usr/share/man/man8 -maxdepth 1 -type f -name '*.gz' \
        ! -name 'gcloud*' -size +1500c -printf '%p\n' \
        | sort | awk 'NR % 2 == 1' | sed -e 's|^/usr/share/man/||' -e 's|\.gz$||' > "$LIST"
    echo "$(wc -l < "$LIST") pages -> $LIST"
    exit 0
fi

OUT=${1:-${SEARCH_CORPUS:-/var/tmp/peros-search-corpus}}
command -v man >/dev/null && command -v col >/dev/null || {
    echo "man/col missing: apt-get install man-db groff-base bsdextrautils" >&2; exit 1; }
mkdir -p "$OUT/man1" "$OUT/man8"
n=0; missing=0
while read -r page; do
    src="/usr/share/man/$page.gz"
    dst="$OUT/$page"
    if [[ ! -f "$src" ]]; then missing=$((missing + 1)); continue; fi
    if [[ ! -s "$dst" || "$src" -nt "$dst" ]]; then
        MANWIDTH=80 man --nh --nj -l "$src" 2>/dev/null | col -bx > "$dst.tmp"
        mv "$dst.tmp" "$dst"
    fi
    n=$((n + 1))
done < "$LIST"
echo "corpus: $n pages rendered in $OUT ($missing listed pages missing on this machine)"
