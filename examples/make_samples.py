#!/usr/bin/env python3
"""Generate the binary sample files of examples/: a PDF invoice and a DOCX proposal.

The generated files are committed; run this only to change them:

    python3 examples/make_samples.py

It needs fpdf2 and python-docx (pinned below). When they are not importable it creates a venv
under ~/.cache/peros/samples-venv, installs them from PyPI and re-runs itself there. The output is
reproducible: fixed dates in the document metadata and fixed timestamps inside the DOCX zip.
"""

import os
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

PINS = ["fpdf2==2.8.9", "python-docx==1.2.0"]
HERE = Path(__file__).resolve().parent
FIXED = datetime(2024, 11, 20, 9, 30, tzinfo=timezone.utc)


def ensure_deps() -> None:
    try:
        import docx  # noqa: F401
        import fpdf  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("PEROS_SAMPLES_VENV"):
        sys.exit("make_samples.py: fpdf2/python-docx still missing inside the venv")
    venv = Path.home() / ".cache" / "peros" / "samples-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    subprocess.check_call([str(venv / "bin" / "pip"), "install", "--quiet", *PINS])
    env = dict(os.environ, PEROS_SAMPLES_VENV="1")
    os.execve(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), __file__], env)


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED)
    pdf.set_title("Invoice MH-24-0931")
    pdf.set_author("Meyer Haustechnik GmbH")
    pdf.set_subject("Boiler service, October 2024")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Meyer Haustechnik GmbH", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, "Heating - Plumbing - Solar\nKieler Strasse 88, 22769 Hamburg\n"
                         "Phone 040 555 0190 - info@meyer-haustechnik.example")
    pdf.ln(8)
    pdf.multi_cell(0, 5, "Jonas Becker\nLindenstrasse 14, Apt. 3\n20257 Hamburg")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "INVOICE MH-24-0931", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 5, "Invoice date: 9 August 2024    Service date: 6 August 2024    Customer no. 40-1187",
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    rows = [
        ("Pos.", "Description", "Qty", "Unit price", "Amount"),
        ("1", "Annual boiler service, gas condensing boiler", "1", "95.00", "95.00"),
        ("2", "Exhaust gas measurement", "1", "35.00", "35.00"),
        ("3", "Replacement ignition electrode", "1", "18.82", "18.82"),
        ("4", "Travel flat rate Hamburg", "1", "10.00", "10.00"),
    ]
    widths = (12, 98, 14, 30, 30)
    for i, row in enumerate(rows):
        pdf.set_font("Helvetica", "B" if i == 0 else "", 10)
        for w, text in zip(widths, row):
            pdf.cell(w, 7, text, border=1, align="R" if w in (14, 30) and i else "L")
        pdf.ln()
    pdf.ln(2)
    for label, amount in (("Net amount", "158.82 EUR"), ("VAT 19 %", "30.18 EUR"),
                          ("Total", "189.00 EUR")):
        pdf.cell(154, 6, label, align="R")
        pdf.cell(30, 6, amount, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.multi_cell(0, 5, "The labour costs included in this invoice (166.60 EUR incl. VAT) can be claimed as household "
                         "services for the 2024 tax return. Please pay within 14 days to IBAN "
                         "DE00 2005 0550 0000 1234 56, reference MH-24-0931. Thank you for your order!")
    pdf.output(str(path))


def make_docx(path: Path) -> None:
    import docx
    from docx.shared import Pt

    doc = docx.Document()
    props = doc.core_properties
    props.author = "Priya Raman"
    props.title = "Proposal: solar panels on the community centre roof"
    props.created = props.modified = FIXED.replace(tzinfo=None)
    props.last_modified_by = "Priya Raman"
    props.revision = 1

    doc.add_heading("Proposal: solar panels on the community centre roof", 0)
    p = doc.add_paragraph("Prepared for the neighbourhood association meeting of ")
    p.add_run("14 January 2025").bold = True
    p.add_run(" by Priya Raman and the energy working group.")

    doc.add_heading("Summary", 1)
    doc.add_paragraph(
        "We propose a 24 kWp photovoltaic system on the south-facing roof of the community centre. "
        "It would cover about 70 % of the centre's electricity use, save roughly 4,800 EUR a year and "
        "avoid 9 tonnes of CO2 emissions annually. The investment of 31,000 EUR pays back in about "
        "seven years, helped by the city's climate fund grant.")

    doc.add_heading("Costs and funding", 1)
    table = doc.add_table(rows=1, cols=2)
    table.style = "Light Grid Accent 1"
    table.rows[0].cells[0].text = "Item"
    table.rows[0].cells[1].text = "EUR"
    for item, eur in (("Panels and inverter", "22,500"), ("Mounting and installation", "6,000"),
                      ("Roof survey and permit", "2,500"), ("City climate fund grant", "-9,000"),
                      ("Association reserves", "-5,000"), ("Community loan (members)", "-17,000")):
        cells = table.add_row().cells
        cells[0].text = item
        cells[1].text = eur

    doc.add_heading("Timeline", 1)
    for step in ("February 2025: roof survey by a structural engineer",
                 "March 2025: apply for the climate fund grant (deadline 31 March)",
                 "May 2025: installation, about one week, centre stays open",
                 "June 2025: grid connection and first monthly yield report"):
        doc.add_paragraph(step, style="List Bullet")

    doc.add_heading("Decision requested", 1)
    para = doc.add_paragraph(
        "The board is asked to approve the roof survey (2,500 EUR) and the grant application. "
        "Members who want to contribute to the community loan can reply to energy@elmstreet.example.")
    para.runs[0].font.size = Pt(11)
    doc.save(str(path))
    normalize_zip(path)


def normalize_zip(path: Path) -> None:
    """Rewrites a zip with fixed entry timestamps so that re-running gives identical bytes."""
    with zipfile.ZipFile(path) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)


def main() -> None:
    ensure_deps()
    outputs = [(HERE / "invoice-MH-24-0931.pdf", make_pdf),
               (HERE / "solar-proposal.docx", make_docx)]
    for path, make in outputs:
        make(path)
        size = path.stat().st_size
        if size > 50 * 1024:
            sys.exit(f"make_samples.py: {path.name} is {size} bytes, over the 50 KB limit")
        print(f"wrote {path.relative_to(HERE.parent)} ({size} bytes)")


if __name__ == "__main__":
    main()
