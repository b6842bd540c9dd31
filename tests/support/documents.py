"""Input files of every supported format, made on the spot (no fixture is fetched or committed)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path


def pdf_bytes(pages: list[str]) -> bytes:
    """A PDF with a text layer, one page per string (fpdf2, a dev dependency)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes(slides: list[str]) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for text in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[6])
        slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(2)).text_frame.text = text
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def zip_bomb(expanded_bytes: int) -> bytes:
    """A small zip whose one member inflates to `expanded_bytes` zeros (its header says so too:
    the reader must stop on the bytes it counts, whatever the header claims)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros.txt", "w", force_zip64=True) as member:
            block = b"0" * (1 << 20)
            for _ in range(expanded_bytes >> 20):
                member.write(block)
    return out.getvalue()


def zip_with_symlink(files: dict[str, bytes], link: str, target: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo(link)
        info.external_attr = (0o120777 << 16) | 0
        info.create_system = 3
        zf.writestr(info, target)
    return out.getvalue()


def tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None, mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return out.getvalue()


LATIN1_TEXT = "Le café du marché ouvre à sept heures. Crème brûlée, façade, garçon, où, déjà vu.\n" * 3
UTF16_TEXT = "Zürich–Genève: 3 Züge täglich; Grüße aus Köln. Übermorgen fährt der Zug um 7:15.\n" * 3
HTML_PAGE = (
    "<html><head><title>Notice</title><style>p{color:red}</style><script>var secret=1;</script></head>"
    "<body><h1>Harbour notice</h1><p>The pier closes on <b>4 May</b>.</p>"
    "<table><tr><th>Berth</th><th>Ship</th></tr><tr><td>B7</td><td>Northern Tern</td></tr></table></body></html>"
)


def write_mixed_folder(root: Path) -> dict[str, str]:
    """A folder of every format, one fact each; returns name -> the fact its text must hold."""
    facts = {
        "contracts/lease.pdf": "The lease ends on 30 June 2031.",
        "contracts/terms.docx": "Payment is due within 45 days.",
        "deck.pptx": "Revenue grew 12 percent.",
        "figures.xlsx": "Oslo",
        "notes/cafe.txt": "café",
        "notes/zug.txt": "Zürich",
        "page.html": "# Harbour notice",
        "readme.md": "# Read me",
        "data.json": '"port": "Bergen"',
        "table.csv": "Trondheim,42",
    }
    files = {
        "contracts/lease.pdf": pdf_bytes(["Preamble.", "The lease ends on 30 June 2031."]),
        "contracts/terms.docx": docx_bytes(["Terms.", "Payment is due within 45 days."]),
        "deck.pptx": pptx_bytes(["Results", "Revenue grew 12 percent."]),
        "figures.xlsx": xlsx_bytes({"Ports": [["city", "calls"], ["Oslo", 3]]}),
        "notes/cafe.txt": LATIN1_TEXT.encode("latin-1"),
        "notes/zug.txt": UTF16_TEXT.encode("utf-16"),
        "page.html": HTML_PAGE.encode(),
        "readme.md": b"# Read me\n\nSee the contracts folder.\n",
        "data.json": b'{"port": "Bergen"}\n',
        "table.csv": b"city,calls\nTrondheim,42\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return facts


def pdf_flate_bomb(pages: int = 20, inflated_bytes: int = 60_000_000, operator: bytes = b" ") -> bytes:
    """The red team's PDF (issue 30): `pages` pages whose FlateDecode content streams inflate to
    `inflated_bytes` each, about 1.2 MB on disk for 20 of 60 MB of spaces. With an `operator`
    (`b"0 0 m "`) the parser has that many operations to build, not just bytes to skip."""
    import zlib

    stream = zlib.compress(operator * (inflated_bytes // len(operator)), 9)
    resources = "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for i in range(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {resources} /Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.writelines(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
