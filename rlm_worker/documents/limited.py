"""Parsers run in a child process with a memory cap, a CPU cap and a wall-clock kill.

PDF, Office and HTML parsers are large third-party libraries fed untrusted bytes; a crafted file
(a PDF whose content streams inflate to gigabytes, a spreadsheet of a million empty cells) can make
one run for minutes and take gigabytes. Run in the web process, that takes the API down with it.
Here each conversion runs in `python -m rlm_worker.documents.limited`: the child sets its own
rlimits (address space, CPU seconds) before it reads a byte, the parent kills it when the wall
clock runs out, and either ends as InputTooLarge (413 at the API) naming the limit. The text that
comes back counts against the input's byte budget like any expansion.

Plain text formats (text, CSV, Markdown, JSON) need no parser and are decoded in-process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from rlm_worker.documents.converters import ConversionFailed, convert
from rlm_worker.documents.model import InputLimits, InputTooLarge

#: Formats read by a third-party parser: these run in the limited child.
PARSED_FORMATS = frozenset({"pdf", "docx", "pptx", "xlsx", "html"})
#: Where `rlm_worker` lives, so the child imports this very code (installed or a checkout).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
MEMORY_EXIT = 3
TOO_MUCH_TEXT_EXIT = 4


def convert_limited(fmt: str, data: bytes, limits: InputLimits, name: str) -> str:
    """`convert(fmt, data)` within the limits; ConversionFailed for a broken file, InputTooLarge
    when the parser passes the memory, time or text limit."""
    if fmt not in PARSED_FORMATS:
        return convert(fmt, data)
    command = [sys.executable, "-m", "rlm_worker.documents.limited", fmt]
    command += [str(limits.convert_memory_bytes), str(int(limits.convert_seconds) + 1), str(limits.max_bytes)]
    env = {"PYTHONPATH": PACKAGE_ROOT, "PATH": os.defpath, "LANG": "C.UTF-8"}  # no secrets in the child
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=limits.convert_seconds, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise InputTooLarge(
            f"{name}: took more than {limits.convert_seconds:g} s to read (INPUT_CONVERT_SECONDS); refused"
        ) from None
    if done.returncode == MEMORY_EXIT or done.returncode == -9 or b"MemoryError" in done.stderr[-2000:]:
        raise InputTooLarge(
            f"{name}: needs more than {limits.convert_memory_bytes // 2**20:,} MiB to read "
            "(INPUT_CONVERT_MEMORY_MB); refused"
        )
    if done.returncode == TOO_MUCH_TEXT_EXIT or done.returncode == -24:  # -24: SIGXCPU
        raise InputTooLarge(_too_large(name, limits, done.returncode))
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise ConversionFailed(f"not a readable {fmt.upper()} file (the reader stopped)") from None
    if "failed" in result:
        raise ConversionFailed(result["failed"])
    return result["text"]


def _too_large(name: str, limits: InputLimits, code: int) -> str:
    if code == TOO_MUCH_TEXT_EXIT:
        return f"{name}: its text is more than {limits.max_bytes:,} bytes (INPUT_MAX_BYTES); refused"
    return f"{name}: took more than {limits.convert_seconds:g} s of CPU to read (INPUT_CONVERT_SECONDS); refused"


def _child(fmt: str, memory: int, cpu_seconds: int, max_bytes: int) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # a parser has no file to write
    try:
        text = convert(fmt, sys.stdin.buffer.read())
    except MemoryError:
        return MEMORY_EXIT
    except ConversionFailed as exc:
        sys.stdout.write(json.dumps({"failed": str(exc)}))
        return 0
    if len(text) > max_bytes:  # characters: at least as many bytes once encoded
        return TOO_MUCH_TEXT_EXIT
    sys.stdout.write(json.dumps({"text": text}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    except MemoryError:
        os._exit(MEMORY_EXIT)
