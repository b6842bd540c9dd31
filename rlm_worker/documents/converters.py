"""One function per format, bytes to text, each built on the library that knows the format.

Pages stay visible where the format has them (`[page 3]`, `[slide 2]`, `[sheet Totals]`), so an
answer can cite them. A parser's own exception is turned into a short reason here: third-party
parsers raise anything on a broken file, and the caller names the file.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator

from rlm_worker.documents.text import decode_text

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about damaged files are not ours to print


class ConversionFailed(Exception):
    """This file could not be turned into text; the message says why (without the file's name)."""


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise ConversionFailed("the PDF is encrypted with a password")
    pages = [
        f"[page {number}]\n{page.extract_text() or ''}".rstrip()
        for number, page in enumerate(reader.pages, 1)
    ]
    if not any(line for page in pages for line in page.splitlines()[1:] if line.strip()):
        raise ConversionFailed("the PDF has no text layer (a scan? OCR it first)")
    return "\n\n".join(pages)


def docx_text(data: bytes) -> str:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    parts: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
        elif block.text.strip():
            parts.append(block.text)
    return "\n".join(parts)


def pptx_text(data: bytes) -> str:
    from pptx import Presentation

    slides = []
    for number, slide in enumerate(Presentation(io.BytesIO(data)).slides, 1):
        lines = [f"[slide {number}]"]
        for shape in slide.shapes:
            lines.extend(_shape_lines(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"Notes: {notes}")
        slides.append("\n".join(lines))
    return "\n\n".join(slides)


def _shape_lines(shape) -> Iterator[str]:
    if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        yield shape.text_frame.text
    if getattr(shape, "has_table", False):
        for row in shape.table.rows:
            yield " | ".join(cell.text.strip() for cell in row.cells)
    for child in getattr(shape, "shapes", ()):  # a group
        yield from _shape_lines(child)


def xlsx_text(data: bytes) -> str:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets = []
        for sheet in workbook.worksheets:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            for row in sheet.iter_rows(values_only=True):
                if any(value is not None for value in row):
                    writer.writerow(["" if value is None else value for value in row])
            sheets.append(f"[sheet {sheet.title}]\n{out.getvalue().rstrip()}")
        return "\n\n".join(sheets)
    finally:
        workbook.close()


def html_text(data: bytes) -> str:
    """Markdown, so headings, lists, links and tables survive; scripts and styles are dropped."""
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(data, "html.parser")  # detects the encoding from the meta tag or the bytes
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    # The <title> is inline text to markdownify: it ran into whatever came next (the navigation).
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    markdown = MarkdownConverter(heading_style="ATX").convert_soup(soup)
    body = "\n".join(line.rstrip() for line in markdown.splitlines()).strip()
    return f"{title}\n\n{body}".strip() if title else body


def plain_text(data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise ConversionFailed("not text, and not a format this reader knows")
    return text


CONVERTERS: dict[str, Callable[[bytes], str]] = {
    "pdf": pdf_text,
    "docx": docx_text,
    "pptx": pptx_text,
    "xlsx": xlsx_text,
    "html": html_text,
    "csv": plain_text,
    "markdown": plain_text,
    "json": plain_text,
    "text": plain_text,
}
OFFICE_FORMATS = ("docx", "pptx", "xlsx")  # zip files inside: checked for expansion before parsing


def convert(fmt: str, data: bytes) -> str:
    """The text of `data` read as `fmt`; ConversionFailed with a short reason if it cannot be."""
    try:
        return CONVERTERS[fmt](data)
    except (ConversionFailed, MemoryError):  # MemoryError: the limited child's cap, reported as such
        raise
    except Exception as exc:  # a broken file: the parser's message is the reason
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConversionFailed(f"not a readable {fmt.upper()} file ({detail})") from None
