"""What `rlm run` reads: a file, a folder, an archive or standard input, converted to a context."""

from __future__ import annotations

import sys
from typing import Any

import click

from rlm_worker.documents import ConvertedInput, InputError, InputLimits, read_path, read_uploads

EXIT_USAGE = 2
SKIPPED_SHOWN = 20


def fail(message: str) -> None:
    """One line on stderr and the usage exit code: a bad input is the caller's to fix."""
    click.echo(f"rlm: {message}", err=True)
    sys.exit(EXIT_USAGE)


def read_input(source: str, settings: Any) -> ConvertedInput:
    """The context of `source` (`-` is standard input); a bad input ends the command with one line."""
    limits = InputLimits.from_settings(settings)
    try:
        if source == "-":
            return read_uploads([("stdin", sys.stdin.buffer.read())], limits)
        return read_path(source, limits)
    except InputError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None


def check_question(question: str) -> str:
    if not question.strip():
        fail("the question (-q) is empty")
    return question.strip()


def report_skipped(converted: ConvertedInput) -> None:
    """The files of a folder or archive that were not read, on stderr (all of them are in --json)."""
    for item in converted.skipped[:SKIPPED_SHOWN]:
        click.echo(f"rlm: skipped {item.name}: {item.reason}", err=True)
    if len(converted.skipped) > SKIPPED_SHOWN:
        more = len(converted.skipped) - SKIPPED_SHOWN
        click.echo(f"rlm: skipped {more} more files (the record's options.skipped lists them all)", err=True)
