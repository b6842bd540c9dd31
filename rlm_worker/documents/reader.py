"""An input (a path, or uploaded files) to a ConvertedInput, with one rule for unreadable files:

what the user named (one file, each of several uploads) must be readable, else InputError naming
it; what a folder or an archive holds is read when it can be and otherwise listed in `skipped`
with the reason, while the rest is used. An input with nothing readable left is an InputError.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlm_worker.documents.archives import (
    Budget,
    Entry,
    NotRegularFile,
    archive_entries,
    check_zip_expansion,
    folder_entries,
    open_regular_file,
    safe_member_name,
)
from rlm_worker.documents.converters import OFFICE_FORMATS, ConversionFailed
from rlm_worker.documents.formats import detect_format
from rlm_worker.documents.limited import PARSED_FORMATS, convert_limited
from rlm_worker.documents.model import (
    ConvertedInput,
    Document,
    InputError,
    InputLimits,
    InputTooLarge,
    Skipped,
)
from rlm_worker.documents.pdf_streams import count_pdf_streams

HEAD_BYTES = 512


def read_path(path: str | Path, limits: InputLimits | None = None) -> ConvertedInput:
    """A file (one document, or an archive's documents) or a folder (its documents)."""
    path = Path(path)
    label = str(path)
    budget = Budget(limits or InputLimits(), label)
    if path.is_dir():
        return _collect(label, folder_entries(path, budget), budget, depth=0, required=True)
    try:
        with open_regular_file(path) as stream:
            data = Budget(budget.limits, label).read(stream)  # the file itself is not expansion
    except FileNotFoundError:
        raise InputError(f"{label}: no such file or folder") from None
    except NotRegularFile:
        raise InputError(f"{label}: not a regular file (a FIFO, a device or a socket); refused") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return _single(path.name, label, data, budget)


def read_uploads(files: Iterable[tuple[str, bytes]], limits: InputLimits | None = None) -> ConvertedInput:
    """Uploaded files, each `(file name, bytes)`: one file reads as `read_path` would; several
    become one list of documents (an archive among them adds its documents under its own name)."""
    files = [(_upload_name(name), data) for name, data in files]
    if not files:
        raise InputError("no file was uploaded")
    budget = Budget(limits or InputLimits(), files[0][0] if len(files) == 1 else f"{len(files)} uploads")
    for _ in files:
        budget.count_file()
    if len(files) == 1:
        name, data = files[0]
        return _single(name, name, data, budget)
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for name, data in files:
        if detect_format(name, data[:HEAD_BYTES]) == "archive":
            nested = _collect(name, _prefixed(name, archive_entries(data, name, budget)), budget, depth=1)
            documents.extend(nested.documents)
            skipped.extend(nested.skipped)
        else:
            documents.append(_required(name, data, budget))
    return ConvertedInput(documents, many=True, skipped=skipped)


def _single(name: str, label: str, data: bytes, budget: Budget) -> ConvertedInput:
    if detect_format(name, data[:HEAD_BYTES]) == "archive":
        return _collect(label, archive_entries(data, label, budget), budget, depth=1, required=True)
    return ConvertedInput([_required(name, data, budget)], many=False)


def _required(name: str, data: bytes, budget: Budget) -> Document:
    """A file the user named: its document, or an InputError saying why there is none."""
    result = _document(name, data, budget)
    if isinstance(result, Skipped):
        raise InputError(f"{name}: {result.reason}")
    return result


def _document(name: str, data: bytes, budget: Budget) -> Document | Skipped:
    fmt = detect_format(name, data[:HEAD_BYTES])
    if not data.strip():
        return Skipped(name, "empty")
    if fmt in OFFICE_FORMATS:
        check_zip_expansion(data, budget)
    elif fmt == "pdf":
        count_pdf_streams(data, budget.count)
    try:
        text = convert_limited(fmt, data, budget.limits, name).replace("\x00", "")
    except ConversionFailed as exc:
        return Skipped(name, str(exc))
    if fmt in PARSED_FORMATS:
        budget.count(len(text))  # what a parser made of the file is expansion too
    if not text.strip():
        return Skipped(name, "no text in it")
    return Document(name, fmt, text)


def _collect(
    label: str, entries: Iterator[Entry], budget: Budget, depth: int, required: bool = False
) -> ConvertedInput:
    """Documents from a folder's or an archive's entries; archives inside are opened up to the
    depth limit, unreadable files are skipped. InputError when nothing readable is left."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for entry in entries:
        if isinstance(entry, Skipped):
            skipped.append(Skipped(_printable(entry.name), entry.reason))
            continue
        name, data = _printable(entry[0]), entry[1]
        if detect_format(name, data[:HEAD_BYTES]) == "archive":
            if depth + 1 > budget.limits.max_archive_depth:
                raise InputTooLarge(
                    f"{label}: {name} nests archives more than {budget.limits.max_archive_depth} deep "
                    "(INPUT_MAX_ARCHIVE_DEPTH); refused"
                )
            nested = _collect(label, _prefixed(name, archive_entries(data, name, budget)), budget, depth + 1)
            documents.extend(nested.documents)
            skipped.extend(nested.skipped)
            continue
        result = _document(name, data, budget)
        (skipped if isinstance(result, Skipped) else documents).append(result)
    if not documents and required:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3]) or "it holds no files"
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        raise InputError(f"{label}: nothing readable in it ({reasons}{more})")
    return ConvertedInput(documents, many=True, skipped=skipped)


def _prefixed(prefix: str, entries: Iterator[Entry]) -> Iterator[Entry]:
    for entry in entries:
        if isinstance(entry, Skipped):
            yield Skipped(f"{prefix}/{entry.name}", entry.reason)
        else:
            yield f"{prefix}/{entry[0]}", entry[1]


def _upload_name(name: str) -> str:
    """An upload's file name; a relative path (a browser's folder upload) is kept when it stays
    inside, anything else is cut to its last part."""
    try:
        return safe_member_name(name, "upload") or "upload"
    except InputError:
        return posixpath.basename(name.replace("\\", "/")) or "upload"


def _printable(name: str) -> str:
    """A path whose bytes were not UTF-8 (kept by the OS or tarfile as lone surrogates) with those
    bytes shown as U+FFFD, so the name can be stored and printed."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate surrogateescape did not make
        return name.encode("utf-8", "replace").decode("utf-8")
