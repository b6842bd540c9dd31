"""Bytes to text in whatever common encoding they are in: detected (charset-normalizer), not assumed."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"))
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: Tie-breakers between equally plausible readings: the single-byte encodings most text is in.
PREFERRED = ("cp1252", "latin_1")
PLAUSIBLE_CHAOS = 0.1


def decode_text(data: bytes) -> str | None:
    """The text these bytes spell, or None when they are not text (binary, or no encoding fits).

    Valid UTF-8 without NUL bytes is taken as UTF-8 (the common case, and a reliable test); a byte
    order mark decides outright; anything else goes to charset-normalizer's detection."""
    text = _by_bom(data)
    if text is None and b"\x00" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is None:
        text = _detected(data)
    if text is None or "\x00" in text:
        return None
    return text


def _detected(data: bytes) -> str | None:
    """charset-normalizer's reading; among readings about as plausible as its best, the one a common
    Western encoding gives (short Latin-1 text otherwise often reads as a Baltic or Mac code page)."""
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    plausible = [m for m in matches if m.chaos <= best.chaos + PLAUSIBLE_CHAOS]
    for encoding in PREFERRED:
        for match in plausible:
            if encoding in match.could_be_from_charset:
                return data.decode(encoding)
    return str(best)


def _by_bom(data: bytes) -> str | None:
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return _strict(data, encoding)
    if data.startswith(UTF16_BOMS):  # after UTF-32 LE, whose mark starts with UTF-16 LE's
        return _strict(data, "utf-16")
    return None


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
