"""Rebuild `vescary-economy-and-culture.pdf` from its text (run once; the PDF is committed).

    .venv/bin/python examples/pdf_source/make_pdf.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).parent
DOCS = HERE.parent / "documents"
HEADINGS = {"Currency", "Economy", "Education", "Food", "The Tide Lantern Festival", "Sport", "Music"}


def main() -> None:
    lines = (HERE / "vescary-economy-and-culture.txt").read_text(encoding="utf-8").split("\n\n")
    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    pdf.set_title("Vescary: Economy and Culture")
    pdf.set_author("graftlm examples")
    pdf.add_page()
    title, *paragraphs = [p.strip() for p in lines if p.strip()]
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for para in paragraphs:
        if para in HEADINGS:
            pdf.set_font("Helvetica", "B", 14)
            pdf.ln(2)
            pdf.multi_cell(0, 8, para, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6, para.replace("\n", " "), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(DOCS / "vescary-economy-and-culture.pdf"))


if __name__ == "__main__":
    main()
