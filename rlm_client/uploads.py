"""Files and folders as the multipart parts `POST /api/execute` and `POST /api/sessions` accept.

A file is sent as it is (the server converts PDF, Office, HTML and text itself). A folder is sent
as one zip made in memory, with paths relative to the folder, so the documents keep the names the
root model cites; hidden files and links are left out, as the server would skip them anyway.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

#: One multipart part: (field name, (file name, bytes, media type)).
Part = tuple[str, tuple[str, bytes, str]]
PathLike = str | os.PathLike[str]


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def zip_folder(folder: Path) -> bytes:
    """The folder's regular files, hidden ones and links left out, as a deflated zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                relative = path.relative_to(folder)
                if path.is_symlink() or not path.is_file() or _hidden(relative):
                    continue
                archive.write(path, relative.as_posix())
    return buffer.getvalue()


def context_parts(paths: PathLike | Iterable[PathLike]) -> list[Part]:
    """`context` parts for a path or several: each file as it is, each folder as a zip."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    parts: list[Part] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            parts.append(
                ("context", (f"{path.resolve().name or 'folder'}.zip", zip_folder(path), "application/zip"))
            )
        elif path.is_file():
            parts.append(("context", (path.name, path.read_bytes(), "application/octet-stream")))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not parts:
        raise ValueError("no files to upload")
    return parts
