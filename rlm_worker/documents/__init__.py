"""Inputs as people keep them (PDF, Word, slides, sheets, web pages, folders, archives) turned into
what the engine reads: one text, or a list of documents `{"name", "format", "text"}`.

Conversion runs where the input arrives (the CLI, an API upload, the dashboard form), before the
context is stored, so workers only ever see text. No Flask here: the CLI and the API both import it.
"""

from __future__ import annotations

from rlm_worker.documents.model import (
    ConvertedInput,
    Document,
    InputError,
    InputLimits,
    InputTooLarge,
    Skipped,
)
from rlm_worker.documents.reader import read_path, read_uploads

__all__ = [
    "ConvertedInput",
    "Document",
    "InputError",
    "InputLimits",
    "InputTooLarge",
    "Skipped",
    "read_path",
    "read_uploads",
]
