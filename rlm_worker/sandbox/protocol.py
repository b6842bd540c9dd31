"""The wire between the worker and the sandbox process: length-prefixed JSON frames over two pipes.

Why: the sandbox runs untrusted code, so the worker treats every byte it sends as hostile. Frames
are a 4-byte big-endian length and a UTF-8 JSON object (never pickle, never eval); their size is
capped; and every message the worker receives is checked against an allow-list of ops, each with
exact field names and types, before anything acts on it. The user's `print` output never touches
these pipes: it is collected in a buffer and sent inside a `result` frame.

Worker -> sandbox: init, exec, get_variables, response, call_error. A str context follows `init`
as one raw UTF-8 frame (no JSON escaping of ten million characters).
Sandbox -> worker: ready, call, result, variables (validated by `validate_child_message`).

The JSON codec of the frames (`dumps`, `loads`) is bound here, at import, before any cell runs:
the C encoder and scanner of `_json` with hooks of our own, never the `json` module's functions
or classes looked up at call time. Nothing a cell does to `json` can then forge or read a frame.
Both directions accept strict JSON only: numbers must be finite however they are spelled
(`NaN`, `Infinity`, and `1e999`, which parses to an infinite float, are all refused).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024

#: The functions the sandbox may ask the worker to run (the REPL API of `rlm_worker.engine`).
CALL_FUNCTIONS = frozenset(
    {
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "rank_passages",
        "rank_by_meaning",
        "memory_read",
        "memory_set",
        "memory_append",
        "memory_replace",
        "memory_blocks",
        "tool",  # a custom tool of the worker's, by name (engine/tools.py)
    }
)

_STR_OR_NONE = (str, type(None))

#: op -> {field: allowed exact types}; every field is required and no other field is allowed.
CHILD_MESSAGES: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {"op": (str,), "pid": (int,)},
    "call": {"op": (str,), "fn": (str,), "args": (dict,)},
    "result": {
        "op": (str,),
        "stdout": (str,),
        "stderr": (str,),
        "error": _STR_OR_NONE,
        "final": _STR_OR_NONE,
        "limit_hit": _STR_OR_NONE,
    },
    "variables": {"op": (str,), "variables": (dict,), "dropped": (list,)},
}


class ProtocolError(Exception):
    """A frame that is malformed, too large, or not an allowed message."""


class ChannelClosed(Exception):
    """The other end closed its pipe (the sandbox process exited)."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


class NonFiniteNumber(ProtocolError, ValueError):
    """A number that is not finite (`NaN`, `Infinity`, `1e999`): not JSON, whatever the spelling."""


# -- the frames' JSON codec, bound at import ---------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"number {text[:40]} is out of the range of a float")
    return value


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _finite_repr(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


_c_make_encoder = json.encoder.c_make_encoder
_py_make_encoder = json.encoder._make_iterencode
_escape_text = json.encoder.encode_basestring
_escape_ascii = json.encoder.encode_basestring_ascii
#: The scanner keeps the hooks it was made with; `loads` calls it directly, not `JSONDecoder.decode`.
_scan_once = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant).scan_once
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def dumps(value: Any, ascii_only: bool = False) -> str:
    """Strict, compact JSON: ValueError for a non-finite float, TypeError for a non-JSON type."""
    escape = _escape_ascii if ascii_only else _escape_text
    if _c_make_encoder is not None:
        encode = _c_make_encoder({}, _not_json, escape, None, ":", ",", False, False, False)
    else:  # an interpreter built without _json
        encode = _py_make_encoder({}, _not_json, escape, None, _finite_repr, ":", ",", False, False, True)
    return "".join(encode(value, 0))


def loads(text: str) -> Any:
    """Strict JSON: ValueError for anything else, NonFiniteNumber for a number that is not finite."""
    try:
        value, end = _scan_once(text, _WHITESPACE.match(text).end())
    except StopIteration as exc:
        raise ValueError(f"not JSON at character {exc.value}") from None
    if _WHITESPACE.match(text, end).end() != len(text):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def encode_frame(message: dict[str, Any], max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Header + JSON body. Raises ValueError/TypeError for non-JSON values, ProtocolError if too big."""
    try:
        body = dumps(message).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        body = dumps(message, ascii_only=True).encode("ascii")
    return frame_bytes(body, max_bytes)


def frame_bytes(body: bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    if len(body) > max_bytes:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {max_bytes}-byte frame limit")
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes | bytearray) -> dict[str, Any]:
    """Parse one frame body into a dict with a str `op`; anything else is a ProtocolError."""
    try:
        message = loads(body.decode("utf-8", "surrogatepass"))
    except ProtocolError:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {type(exc).__name__}") from None
    if type(message) is not dict or type(message.get("op")) is not str:
        raise ProtocolError("frame is not a JSON object with an op")
    return message


def validate_child_message(message: dict[str, Any]) -> dict[str, Any]:
    """Check a message from the sandbox against CHILD_MESSAGES; return it or raise ProtocolError."""
    op = message.get("op")
    schema = CHILD_MESSAGES.get(op) if type(op) is str else None
    if schema is None:
        raise ProtocolError(f"unknown op {str(op)[:40]!r}")
    if message.keys() != schema.keys():
        raise ProtocolError(f"{op}: fields {sorted(message)[:10]} do not match {sorted(schema)}")
    for field, kinds in schema.items():
        if type(message[field]) not in kinds:
            raise ProtocolError(f"{op}: field {field} has type {type(message[field]).__name__}")
    if op == "call" and message["fn"] not in CALL_FUNCTIONS:
        raise ProtocolError(f"call: unknown function {message['fn'][:40]!r}")
    if op == "call" and not all(type(k) is str for k in message["args"]):
        raise ProtocolError("call: argument names must be str")
    if op == "variables":
        if not all(type(k) is str for k in message["variables"]):
            raise ProtocolError("variables: names must be str")
        if not all(type(n) is str for n in message["dropped"]):
            raise ProtocolError("variables: dropped names must be str")
    return message


class WorkerChannel:
    """The worker's end: non-blocking pipes, every read and write bounded by a deadline."""

    def __init__(self, read_fd: int, write_fd: int, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_frame_bytes = max_frame_bytes
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._buffer = bytearray()
        self._reader = select.poll()
        self._reader.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._writer = select.poll()
        self._writer.register(write_fd, select.POLLOUT | select.POLLHUP | select.POLLERR)

    def send(self, message: dict[str, Any], timeout: float) -> None:
        self.send_bytes(encode_frame(message, self.max_frame_bytes), timeout)

    def send_bytes(self, data: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.write_fd, view[: 1 << 20])
            except BlockingIOError:
                written = 0
            except OSError:  # EPIPE: the sandbox exited
                raise ChannelClosed("the sandbox closed its input") from None
            view = view[written:]
            if view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout("timed out writing to the sandbox")
                self._writer.poll(min(remaining, 1.0) * 1000)

    def _frame_from_buffer(self) -> dict[str, Any] | None:
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        if size > self.max_frame_bytes:
            raise ProtocolError(f"frame of {size} bytes exceeds the {self.max_frame_bytes}-byte limit")
        end = HEADER.size + size
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        return validate_child_message(decode_body(body))

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next validated message; ChannelTimeout after `timeout` s, ChannelClosed on EOF."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            message = self._frame_from_buffer()
            if message is not None:
                return message
            try:
                chunk = os.read(self.read_fd, 1 << 20)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout("no message from the sandbox in time") from None
                self._reader.poll(remaining * 1000)
                continue
            except OSError:
                raise ChannelClosed("the sandbox's output pipe failed") from None
            if not chunk:
                raise ChannelClosed("the sandbox closed its output")
            self._buffer += chunk


class ChildChannel:
    """The sandbox's end: plain blocking reads and writes (the worker enforces all deadlines)."""

    def __init__(self, read_fd: int, write_fd: int, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._in = io.FileIO(read_fd, "rb", closefd=False)
        self.write_fd = write_fd
        self.max_frame_bytes = max_frame_bytes

    def _read_exact(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        done = 0
        while done < size:
            count = self._in.readinto(view[done:])
            if not count:
                raise ChannelClosed("the worker closed the pipe")
            done += count
        return buffer

    def receive_raw(self) -> bytearray:
        """One frame's body as bytes (a str context travels this way, without JSON)."""
        (size,) = HEADER.unpack(self._read_exact(HEADER.size))
        if size > self.max_frame_bytes:
            raise ProtocolError("frame too large")
        return self._read_exact(size)

    def receive(self) -> dict[str, Any]:
        return decode_body(self.receive_raw())

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(encode_frame(message, self.max_frame_bytes))
