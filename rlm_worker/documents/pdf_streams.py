"""What a PDF's compressed streams inflate to, counted before any parser opens the file.

A PDF is a small file of zlib (FlateDecode) streams; pypdf caps each stream (75 MB) but not their
sum, so twenty pages of 60 MB each read as 1.2 GB from a 1.2 MB upload. Every `stream` keyword is
tried here as the start of a zlib stream and inflated a chunk at a time, its output counted against
the input's byte budget and thrown away: a bomb ends in InputTooLarge after `max_bytes`, with one
chunk in memory. Streams in other encodings are left to the limited parser (`limited.py`).
"""

from __future__ import annotations

import re
import zlib

CHUNK = 1 << 20
STREAM_START = re.compile(rb"(?<!end)stream\r?\n")


def count_pdf_streams(data: bytes, count) -> None:
    """Call `count(n)` for every `n` bytes the PDF's zlib streams inflate to (it raises at the limit)."""
    position = 0
    while match := STREAM_START.search(data, position):
        position = _inflate(data, match.end(), count)


def _inflate(data: bytes, start: int, count) -> int:
    """Inflate the zlib stream at `start`, counting; where the scan goes on (after it, or after the
    keyword when the bytes there are not zlib)."""
    inflater = zlib.decompressobj()
    position, pending = start, b""
    try:
        while not inflater.eof:
            if not pending:
                if position >= len(data):
                    break
                pending = data[position : position + CHUNK]
                position += len(pending)
            out = inflater.decompress(pending, CHUNK)
            pending = inflater.unconsumed_tail
            count(len(out))
    except zlib.error:
        return start
    if not inflater.eof:
        return position
    # At the end of the stream zlib keeps what follows it (from what it was fed) in unused_data.
    return max(start, position - len(inflater.unused_data))
