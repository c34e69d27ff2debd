"""Structured logs: every line a reconcile writes names its controller and key, as JSON or as key=value text.

A log line that says "register failed: Conflict" is useless when four controllers reconcile hundreds of keys at once;
the hazard is context lost across awaits and across code that never heard of the key (the Nomad client, a library).
The Operator opens a `log_context(controller=..., key=...)` around each reconcile; it lives in contextvars, so it
follows the reconcile through every await and never leaks into another worker's task. `ContextFilter` copies it onto
each record that passes the handler, and the formatters write it out with any `extra=` fields.

Nothing here adds secrets: the formatters print the message, the context and the explicit extras, never the request
or settings objects that a message might have been built from.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

LOG_FORMAT_JSON: Final = "json"
LOG_FORMAT_TEXT: Final = "text"
LOG_FORMATS: Final = (LOG_FORMAT_JSON, LOG_FORMAT_TEXT)
DEFAULT_LOG_FORMAT: Final = LOG_FORMAT_TEXT
DEFAULT_LOG_LEVEL: Final = "INFO"
CONTEXT_FIELDS: Final = ("controller", "key")
"""Record attributes that the context provides; an explicit `extra=` of the same name wins."""

_controller: ContextVar[str | None] = ContextVar("nomad_operator_log_controller", default=None)
_key: ContextVar[str | None] = ContextVar("nomad_operator_log_key", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` (or from our filter).
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime", "taskName"}
)


@contextmanager
def log_context(*, controller: str | None = None, key: str | None = None) -> Iterator[None]:
    """Name the controller and key of every record logged inside the block (in this task, across awaits)."""
    tokens = []
    if controller is not None:
        tokens.append((_controller, _controller.set(controller)))
    if key is not None:
        tokens.append((_key, _key.set(key)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def current_log_context() -> dict[str, str]:
    """The controller and key in effect here (absent ones left out)."""
    context = {"controller": _controller.get(), "key": _key.get()}
    return {name: value for name, value in context.items() if value is not None}


class ContextFilter(logging.Filter):
    """Copies the current `log_context` onto each record; attach it to a handler, not a logger, so that records
    propagated from every library logger get it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_log_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context and `extra=` fields of a record, context first, in a stable order."""
    extras = {name: value for name, value in record.__dict__.items() if name not in _STANDARD_ATTRIBUTES}
    ordered: dict[str, Any] = {name: extras.pop(name) for name in CONTEXT_FIELDS if name in extras}
    ordered.update(sorted(extras.items()))
    return ordered


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the context and extra fields, then the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class KeyValueFormatter(logging.Formatter):
    """`time=... level=INFO logger=... controller=gitops key=Job/default/web msg="..."`: grep-able and readable."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"time={_timestamp(record)}", f"level={record.levelname}", f"logger={record.name}"]
        parts.extend(f"{name}={_quote(value)}" for name, value in record_fields(record).items())
        parts.append(f"msg={_quote(record.getMessage())}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(char in text for char in ' "=\n\t'):
        return text
    return orjson.dumps(text).decode()


def configure_logging(
    *, level: int | str = DEFAULT_LOG_LEVEL, log_format: str = DEFAULT_LOG_FORMAT, stream: TextIO | None = None
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `log_format`; calling it again replaces our handler.

    Raises ValueError for an unknown format or level, naming the accepted ones.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    if isinstance(level, str):
        resolved = logging.getLevelNamesMapping().get(level.upper())
        if resolved is None:
            raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = resolved
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == LOG_FORMAT_JSON else KeyValueFormatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _OWNED_MARK, True)
    root = logging.getLogger()
    for old in [existing for existing in root.handlers if getattr(existing, _OWNED_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


_OWNED_MARK: Final = "_nomad_operator_handler"
