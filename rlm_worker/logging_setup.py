"""Structured logs: one JSON line per event, carrying the execution and trace node it concerns.

The API (gunicorn, through `gunicorn.conf.py`), the Celery workers (through Celery's
`setup_logging` signal) and the `rlm` command configure logging here, once per process. The
execution and node ids come from the log call's `extra`, or else from the task being run. Values
of secret environment variables are masked in every line, whatever code logged them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO
from urllib.parse import urlsplit

from pythonjsonlogger.json import JsonFormatter

_execution_id: ContextVar[str | None] = ContextVar("rlm_execution_id", default=None)
_node_id: ContextVar[str | None] = ContextVar("rlm_node_id", default=None)

#: Variables whose values never appear in a log line.
SECRET_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "LLM_API_KEY",
    "API_TOKENS",
    "SECRET_KEY",
    "FLOWER_BASIC_AUTH",
    "METRICS_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
)
#: URL variables whose password part never appears in a log line.
URL_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "LLM_API_BASE")
MASK = "***"
#: Libraries that attach a stderr handler of their own at import: with ours on the root logger,
#: each of their lines would be printed twice (and theirs unmasked, in another format).
SELF_HANDLING_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(execution_id)s %(node_id)s"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Every secret string the environment holds, longest first (so no prefix is masked alone)."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        value = env.get(name) or ""
        for part in value.split(","):
            part = part.strip()
            found.add(part)
            if name == "FLOWER_BASIC_AUTH" and ":" in part:
                found.add(part.split(":", 1)[1])
    for name in URL_VARIABLES:
        try:
            password = urlsplit(env.get(name) or "").password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def mask_secrets(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ExecutionContextFilter(logging.Filter):
    """Puts `execution_id` and `node_id` on every record: from `extra`, else the running task."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            record.execution_id = _execution_id.get()
        if getattr(record, "node_id", None) is None:
            record.node_id = _node_id.get()
        return True


class _Masking:
    secrets: list[str]

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record), self.secrets)  # type: ignore[misc]


class JsonLogFormatter(_Masking, JsonFormatter):
    """One JSON object per line: time, level, logger, message, execution_id, node_id, extras."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(JSON_FIELDS, **kwargs)
        self.secrets = secret_values()


class TextLogFormatter(_Masking, logging.Formatter):
    """For a person at a terminal (`rlm serve`, `rlm run`)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self.secrets = secret_values()


def make_formatter(fmt: str) -> logging.Formatter:
    return JsonLogFormatter() if fmt == "json" else TextLogFormatter()


def configure_logging(
    level: str | int | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> None:
    """Route every logger to one stderr handler. `LOG_LEVEL` and `LOG_FORMAT` (json|text) override."""
    level = level or os.environ.get("LOG_LEVEL") or "INFO"
    fmt = fmt or os.environ.get("LOG_FORMAT") or "json"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(ExecutionContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in SELF_HANDLING_LOGGERS:
        route_through_root(name)


class _RootRoutedLogger(logging.Logger):
    """A logger that keeps no handler of its own: its lines reach the root handler only."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 -- logging's own name
        return None


def route_through_root(name: str) -> None:
    """Make `name` log through the root handler alone, whether its library is imported already
    (its handlers are dropped) or later (the handler it adds at import is refused)."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.__class__ = _RootRoutedLogger
    logger.propagate = True


@contextmanager
def bound_to(execution_id: str | None, node_id: str | None = None) -> Iterator[None]:
    """Log lines written inside this block carry these ids."""
    tokens = (_execution_id.set(execution_id), _node_id.set(node_id))
    try:
        yield
    finally:
        _node_id.reset(tokens[1])
        _execution_id.reset(tokens[0])


# -- Celery -------------------------------------------------------------------------------------
_task_tokens: dict[str, tuple[Any, Any]] = {}


def _ids_of_task(args: Any) -> tuple[str | None, str | None]:
    """The run-execution task carries an execution id; a sub-call batch carries call dicts."""
    first = args[0] if args else None
    if isinstance(first, str):
        return first, None
    if isinstance(first, list) and first and isinstance(first[0], dict):
        node = first[0].get("node_id") if len(first) == 1 else None
        return first[0].get("execution_id"), node
    return None, None


def _on_task_prerun(task_id: str | None = None, args: Any = None, **_: Any) -> None:
    execution_id, node_id = _ids_of_task(args)
    if task_id:
        _task_tokens[task_id] = (_execution_id.set(execution_id), _node_id.set(node_id))


def _on_task_postrun(task_id: str | None = None, **_: Any) -> None:
    tokens = _task_tokens.pop(task_id or "", None)
    if tokens:
        _node_id.reset(tokens[1])
        _execution_id.reset(tokens[0])


def _on_setup_logging(loglevel: Any = None, **_: Any) -> None:
    configure_logging(level=loglevel)


def install_celery_logging() -> None:
    """Workers log JSON lines, and every line inside a task carries the task's execution id."""
    from celery.signals import setup_logging, task_postrun, task_prerun

    setup_logging.connect(_on_setup_logging, weak=False, dispatch_uid="rlm-logging")
    task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="rlm-logging")
    task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="rlm-logging")


# -- gunicorn -----------------------------------------------------------------------------------
def gunicorn_logconfig_dict(level: str | None = None) -> dict[str, Any]:
    """`logconfig_dict` for gunicorn: its own and the app's loggers, as JSON lines on stderr."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    fmt = os.environ.get("LOG_FORMAT") or "json"
    for name in SELF_HANDLING_LOGGERS:  # the root handler below is the only one they get
        route_through_root(name)
    formatter = {"()": f"{__name__}.{'JsonLogFormatter' if fmt == 'json' else 'TextLogFormatter'}"}
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "rlm",
        "filters": ["execution"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"execution": {"()": f"{__name__}.ExecutionContextFilter"}},
        "formatters": {"rlm": formatter},
        "handlers": {"console": handler},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": level, "handlers": ["console"], "propagate": False},
        },
    }
