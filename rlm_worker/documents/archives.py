"""Folders and zip/tar archives read as a stream of (name, bytes) entries, within limits.

Every byte is counted as it is decompressed, against one budget for the whole input: an archive's
own size fields are never trusted, so a zip bomb ends in an InputError after `max_bytes`, with at
most one file's bytes in memory. Entries that name a place outside the archive (`../`, absolute
paths) refuse the whole archive; links are skipped, never followed.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rlm_worker.documents.model import InputError, InputLimits, InputTooLarge, Skipped

CHUNK = 1 << 20
ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, NotImplementedError, ValueError)
Entry = tuple[str, bytes] | Skipped


class Budget:
    """Files and bytes one input has used so far, shared by every folder and archive inside it."""

    def __init__(self, limits: InputLimits, label: str) -> None:
        self.limits = limits
        self.label = label
        self.files = 0
        self.bytes = 0

    def count_file(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise InputTooLarge(
                f"{self.label}: more than {self.limits.max_files:,} files (INPUT_MAX_FILES); refused"
            )

    def read(self, stream: BinaryIO) -> bytes:
        """All of `stream`, counted; InputTooLarge as soon as the input passes `max_bytes`."""
        parts = []
        while chunk := stream.read(CHUNK):
            self.count(len(chunk))
            parts.append(chunk)
        return b"".join(parts)

    def drain(self, stream: BinaryIO) -> None:
        """Count `stream` without keeping it (checks an office file's zip before a parser opens it)."""
        while chunk := stream.read(CHUNK):
            self.count(len(chunk))

    def count(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise InputTooLarge(
                f"{self.label}: expands to more than {self.limits.max_bytes:,} bytes "
                "(INPUT_MAX_BYTES; a zip bomb?); refused"
            )


class NotRegularFile(OSError):
    """A FIFO, a device or a socket: opening one can block forever or read without end."""


def open_regular_file(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file. Opened without blocking first and checked
    on the open descriptor, so a FIFO swapped in after a check cannot hang the reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_ignored(name: str) -> bool:
    """Hidden files and folders (`.git/`, `.DS_Store`) and macOS resource forks are not documents."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def safe_member_name(raw: str, archive: str) -> str:
    """The entry's path inside the archive; InputError if it would land outside it."""
    name = raw.replace("\\", "/")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        raise InputError(f"{archive}: the entry {raw!r} points outside the archive (path traversal); refused")
    return posixpath.join(*parts) if parts else ""


def archive_entries(data: bytes, archive: str, budget: Budget) -> Iterator[Entry]:
    """The files of a zip or tar (gzip, bzip2, xz) archive held in `data`, in archive order."""
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            yield from _zip_entries(data, archive, budget)
        else:
            yield from _tar_entries(data, archive, budget)
    except InputError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise InputError(
            f"{archive}: not a readable zip or tar archive ({exc or type(exc).__name__})"
        ) from None


def _zip_entries(data: bytes, archive: str, budget: Budget) -> Iterator[Entry]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name = safe_member_name(info.filename, archive)
            if info.is_dir() or not name or is_ignored(name):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                yield Skipped(name, "a symbolic link (links are not followed)")
                continue
            budget.count_file()
            if info.flag_bits & 0x1:
                yield Skipped(name, "encrypted with a password")
                continue
            with zf.open(info) as member:
                yield name, budget.read(member)


def _tar_entries(data: bytes, archive: str, budget: Budget) -> Iterator[Entry]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tf:
        for member in tf:
            name = safe_member_name(member.name, archive)
            if member.isdir() or not name or is_ignored(name):
                continue
            if member.issym() or member.islnk():
                yield Skipped(name, "a link (links are not followed)")
                continue
            if not member.isfile():
                yield Skipped(name, "not a regular file")
                continue
            budget.count_file()
            stream = tf.extractfile(member)
            assert stream is not None  # a regular file always has one
            yield name, budget.read(stream)


def check_zip_expansion(data: bytes, budget: Budget) -> None:
    """A DOCX/PPTX/XLSX is a zip its parser inflates whole: count what it inflates to first."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                with zf.open(info) as member:
                    budget.drain(member)
    except InputError:
        raise
    except ARCHIVE_ERRORS:
        return  # not a zip at all: the format's parser gives the clearer reason


def folder_entries(root: Path, budget: Budget) -> Iterator[Entry]:
    """The files under `root`, sorted by path; links are skipped, never followed."""
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        kept = []
        for name in sorted(dirs):
            relative = (here / name).relative_to(root).as_posix()
            if is_ignored(name):
                continue
            if (here / name).is_symlink():
                yield Skipped(relative + "/", "a symbolic link (links are not followed)")
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if is_ignored(name):
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                yield Skipped(relative, "a symbolic link (links are not followed)")
                continue
            if not stat.S_ISREG(info.st_mode):
                yield Skipped(relative, "not a regular file")
                continue
            budget.count_file()
            try:
                with open_regular_file(path) as stream:
                    data = budget.read(stream)
            except NotRegularFile:
                yield Skipped(relative, "not a regular file")
                continue
            except OSError as exc:
                yield Skipped(relative, f"cannot be read ({exc.strerror or exc})")
                continue
            yield relative, data
