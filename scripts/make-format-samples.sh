#!/usr/bin/env bash
# make-format-samples.sh OUTDIR: real documents of every format the text extractor reads,
# made on this machine by LibreOffice (headless) and Python's `email` package, each holding a
# distinctive known phrase per page/sheet/slide/chapter/attachment/message. The integration
# test tests/tests/formats.rs searches for them.
#
# Needs: soffice (Debian: libreoffice-writer-nogui, libreoffice-calc-nogui,
# libreoffice-impress-nogui; tested with LibreOffice 7.4) and python3.
#
# The samples and their phrases (OUTDIR/phrases.tsv lists them too: file, phrase, location,
# where an empty location means the format has no sections):
#
#   sample.odt   "the amber lighthouse keeper"                (no sections)
#   sample.docx  "the brass orchard lantern"                  (no sections)
#   sample.rtf   "the woolen canal ferryman"                  (no sections)
#   sample.epub  "the silver fox almanac"                     chapter 1
#                "the quarterly heron census"                 chapter 2
#   sample.ods   "the copper kettle ledger"                   sheet Budget
#                "the violet marmalade stock"                 sheet Inventory
#   sample.xlsx  "the granite tulip invoice"                  sheet Expenses
#                "the hazel comet tally"                      sheet Totals
#   sample.odp   "the opening walrus banner"                  slide 1
#                "the midnight glacier survey"                slide 2
#                "the crimson otter finale"                   slide 3
#   sample.pptx  "the saffron beacon agenda"                  slide 1
#                "the quarterly puffin forecast"              slide 2
#                "the cobalt tortoise summary"                slide 3
#   sample.eml   "the lavender drone inspection"              (the body: no section)
#                "the juniper bicycle manifest"               attachment manifest.txt
#   sample.mbox  "the tangerine harbor schedule"              message 1: Harbor schedule
#                "the obsidian pelican minutes"               message 2: Pelican minutes
#                "the maple lantern festival"                 message 3: Festival plans
#
# The document title is "Format Sample <FORMAT>" and the author "Sample Author" where the
# format has them. LibreOffice runs with a private profile (-env:UserInstallation) in a
# temporary directory, so parallel runs do not clash; running as root is fine.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

SOFFICE=${SOFFICE:-soffice}
if ! command -v "$SOFFICE" >/dev/null 2>&1; then
    echo "$0: soffice (LibreOffice) is not installed: apt-get install libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui" >&2
    exit 1
fi
PYTHON=${PEROS_PYTHON:-python3}

WORK=$(mktemp -d /tmp/peros-format-samples.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PROFILE="file://$WORK/profile"

# convert TARGET INPUT: LibreOffice converts INPUT to OUTDIR/<input base>.TARGET.
convert() {
    local target=$1 input=$2 log="$WORK/soffice.log"
    if ! timeout 180 "$SOFFICE" --headless --norestore "-env:UserInstallation=$PROFILE" \
        --convert-to "$target" --outdir "$OUT" "$input" >"$log" 2>&1; then
        echo "$0: soffice failed converting $input to $target:" >&2
        cat "$log" >&2
        exit 1
    fi
    local want
    want="$OUT/$(basename "${input%.*}").${target%%:*}"
    if [ ! -s "$want" ]; then
        echo "$0: soffice made no $want:" >&2
        cat "$log" >&2
        exit 1
    fi
}

NS_OFFICE='xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.2"'

meta() {
    echo "<office:meta><dc:title>Format Sample $1</dc:title><meta:initial-creator>Sample Author</meta:initial-creator><dc:creator>Sample Author</dc:creator></office:meta>"
}

# text_doc FORMAT CHAPTER_PHRASE...: a flat ODF text document, one heading and paragraph per
# chapter, each chapter after the first on a new page (EPUB export splits there).
text_doc() {
    local fmt=$1
    shift
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<office:document $NS_OFFICE office:mimetype=\"application/vnd.oasis.opendocument.text\">"
    meta "$fmt"
    echo '<office:styles><style:style style:name="Heading_20_1" style:display-name="Heading 1" style:family="paragraph" style:default-outline-level="1"/></office:styles>'
    echo '<office:automatic-styles><style:style style:name="P1" style:family="paragraph" style:parent-style-name="Heading_20_1"><style:paragraph-properties fo:break-before="page"/></style:style></office:automatic-styles>'
    echo '<office:body><office:text>'
    local n=0 phrase
    for phrase in "$@"; do
        n=$((n + 1))
        local style=Heading_20_1
        [ $n -gt 1 ] && style=P1
        echo "<text:h text:style-name=\"$style\" text:outline-level=\"1\">Part $n</text:h>"
        echo "<text:p>In this part we describe $phrase in some detail, with a few more ordinary words around it.</text:p>"
    done
    echo '</office:text></office:body></office:document>'
}

# sheet_doc FORMAT NAME PHRASE [NAME PHRASE…]: a flat ODF spreadsheet, one sheet per pair.
sheet_doc() {
    local fmt=$1
    shift
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<office:document $NS_OFFICE office:mimetype=\"application/vnd.oasis.opendocument.spreadsheet\">"
    meta "$fmt"
    echo '<office:body><office:spreadsheet>'
    while [ $# -ge 2 ]; do
        echo "<table:table table:name=\"$1\">"
        echo '<table:table-row><table:table-cell office:value-type="string"><text:p>item</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>amount</text:p></table:table-cell></table:table-row>'
        echo "<table:table-row><table:table-cell office:value-type=\"string\"><text:p>$2</text:p></table:table-cell><table:table-cell office:value-type=\"float\" office:value=\"42.5\"><text:p>42.5</text:p></table:table-cell></table:table-row>"
        echo '</table:table>'
        shift 2
    done
    echo '</office:spreadsheet></office:body></office:document>'
}

# slide_doc FORMAT PHRASE...: a flat ODF presentation, one slide per phrase.
slide_doc() {
    local fmt=$1
    shift
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<office:document $NS_OFFICE office:mimetype=\"application/vnd.oasis.opendocument.presentation\">"
    meta "$fmt"
    echo '<office:body><office:presentation>'
    local n=0 phrase
    for phrase in "$@"; do
        n=$((n + 1))
        echo "<draw:page draw:name=\"page$n\"><draw:frame svg:x=\"2cm\" svg:y=\"2cm\" svg:width=\"24cm\" svg:height=\"4cm\"><draw:text-box><text:p>Slide $n: $phrase</text:p></draw:text-box></draw:frame></draw:page>"
    done
    echo '</office:presentation></office:body></office:document>'
}

mkdir -p "$WORK"/{odt,docx,rtf,epub,ods,xlsx,odp,pptx}
text_doc ODT "the amber lighthouse keeper" >"$WORK/odt/sample.fodt"
text_doc DOCX "the brass orchard lantern" >"$WORK/docx/sample.fodt"
text_doc RTF "the woolen canal ferryman" >"$WORK/rtf/sample.fodt"
text_doc EPUB "the silver fox almanac" "the quarterly heron census" >"$WORK/epub/sample.fodt"
sheet_doc ODS Budget "the copper kettle ledger" Inventory "the violet marmalade stock" \
    >"$WORK/ods/sample.fods"
sheet_doc XLSX Expenses "the granite tulip invoice" Totals "the hazel comet tally" \
    >"$WORK/xlsx/sample.fods"
slide_doc ODP "the opening walrus banner" "the midnight glacier survey" "the crimson otter finale" \
    >"$WORK/odp/sample.fodp"
slide_doc PPTX "the saffron beacon agenda" "the quarterly puffin forecast" \
    "the cobalt tortoise summary" >"$WORK/pptx/sample.fodp"

convert odt "$WORK/odt/sample.fodt"
convert docx "$WORK/docx/sample.fodt"
convert rtf "$WORK/rtf/sample.fodt"
convert epub "$WORK/epub/sample.fodt"
convert ods "$WORK/ods/sample.fods"
convert xlsx "$WORK/xlsx/sample.fods"
convert odp "$WORK/odp/sample.fodp"
convert pptx "$WORK/pptx/sample.fodp"

OUT="$OUT" "$PYTHON" - <<'PY'
import mailbox, os
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone

out = os.environ["OUT"]

m = EmailMessage()
m["From"] = "Sample Sender <sender@example.org>"
m["To"] = "Reader One <one@example.org>"
m["Cc"] = "two@example.org"
m["Subject"] = "Drone inspection report"
m["Date"] = format_datetime(datetime(2024, 3, 5, 9, 30, tzinfo=timezone.utc))
m.set_content("Hello,\n\nthis message is about the lavender drone inspection of last week.\n")
m.add_attachment(
    "Attached list: the juniper bicycle manifest, with three entries.\n",
    subtype="plain",
    filename="manifest.txt",
)
m.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream",
                 filename="blob.bin")
with open(os.path.join(out, "sample.eml"), "wb") as f:
    f.write(bytes(m))

path = os.path.join(out, "sample.mbox")
if os.path.exists(path):
    os.remove(path)
box = mailbox.mbox(path)
for i, (subject, phrase, sender) in enumerate([
    ("Harbor schedule", "the tangerine harbor schedule", "harbor@example.org"),
    ("Pelican minutes", "the obsidian pelican minutes", "pelican@example.org"),
    ("Festival plans", "the maple lantern festival", "harbor@example.org"),
]):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "club@example.org"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2024, 4, 1 + i, 12, 0, tzinfo=timezone.utc))
    msg.set_content(f"Dear club,\n\nplease find {phrase} below.\nFrom the board.\n")
    box.add(msg)
box.flush()
box.close()
PY

cat >"$OUT/phrases.tsv" <<'EOF'
sample.odt	the amber lighthouse keeper	
sample.docx	the brass orchard lantern	
sample.rtf	the woolen canal ferryman	
sample.epub	the silver fox almanac	chapter 1
sample.epub	the quarterly heron census	chapter 2
sample.ods	the copper kettle ledger	sheet Budget
sample.ods	the violet marmalade stock	sheet Inventory
sample.xlsx	the granite tulip invoice	sheet Expenses
sample.xlsx	the hazel comet tally	sheet Totals
sample.odp	the opening walrus banner	slide 1
sample.odp	the midnight glacier survey	slide 2
sample.odp	the crimson otter finale	slide 3
sample.pptx	the saffron beacon agenda	slide 1
sample.pptx	the quarterly puffin forecast	slide 2
sample.pptx	the cobalt tortoise summary	slide 3
sample.eml	the lavender drone inspection	
sample.eml	the juniper bicycle manifest	attachment manifest.txt
sample.mbox	the tangerine harbor schedule	message 1: Harbor schedule
sample.mbox	the obsidian pelican minutes	message 2: Pelican minutes
sample.mbox	the maple lantern festival	message 3: Festival plans
EOF

ls -l "$OUT"
