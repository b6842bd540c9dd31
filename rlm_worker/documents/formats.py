"""Which reader a file needs: its extension first, then its first bytes, else an attempt as text."""

from __future__ import annotations

import posixpath

EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
    ".jsonl": "json",
    ".txt": "text",
}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


def detect_format(name: str, head: bytes) -> str:
    """`pdf`, `docx`, ..., `archive`, or `text` (a guess: the text reader refuses binary data)."""
    lowered = name.lower()
    if lowered.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    found = EXTENSIONS.get(posixpath.splitext(lowered)[1])
    if found:
        return found
    if head.startswith(b"%PDF-"):
        return "pdf"
    if is_archive_bytes(head):
        return "archive"
    return "text"


def is_archive_bytes(head: bytes) -> bool:
    """Zip, or a compressed stream (tar.gz and friends), or a plain tar ('ustar' at offset 257)."""
    return head.startswith((ZIP_MAGIC, GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC)) or head[257:262] == b"ustar"
