"""The records of a converted input: documents, the files skipped, the limits, the one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class InputError(ValueError):
    """An input that cannot be used as given; the message names the file and says why."""


class InputTooLarge(InputError):
    """An input past its limits (files, expanded bytes, archive nesting): a zip bomb ends here."""


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one input may expand to. Sizes are counted as bytes are read, never taken
    from an archive's own headers, so a zip bomb stops at `max_bytes` instead of filling memory."""

    max_files: int = 10_000
    max_bytes: int = 200_000_000
    max_archive_depth: int = 2
    convert_seconds: float = 60.0  # one file's parser, wall clock (and CPU)
    convert_memory_bytes: int = 1 << 30  # one file's parser, address space

    @classmethod
    def from_settings(cls, settings: Any) -> InputLimits:
        return cls(
            settings.input_max_files,
            settings.input_max_bytes,
            settings.input_max_archive_depth,
            settings.input_convert_seconds,
            settings.input_convert_memory_mb << 20,
        )


@dataclass(frozen=True)
class Document:
    """One file's text. `name` is its path inside the folder or archive; `format` how it was read."""

    name: str
    format: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "format": self.format, "text": self.text}


@dataclass(frozen=True)
class Skipped:
    """A file inside a folder or archive that was not read, and why."""

    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


@dataclass
class ConvertedInput:
    """What an input became: one text (a single file) or several documents (a folder, an archive,
    several uploads), plus the files skipped on the way."""

    documents: list[Document]
    many: bool
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def context(self) -> str | list[dict[str, str]]:
        """The engine's `context`: a str for one file, else a list of document dicts."""
        if not self.many:
            return self.documents[0].text
        return [doc.as_dict() for doc in self.documents]

    @property
    def skipped_dicts(self) -> list[dict[str, str]]:
        return [item.as_dict() for item in self.skipped]
