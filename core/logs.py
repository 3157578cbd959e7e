"""What every ``idgraph`` command logs, and how (section ``[log]``): text or JSON lines.

``log.format = "text"`` (the default) keeps the human format: ``LEVEL logger: message``
on standard error, and Faust's own format (``[time] [pid] [LEVEL] message`` on standard
output) in ``idgraph worker``. ``log.format = "json"`` writes one JSON object per line on
standard error, for a log collector gathering several machines' workers and servers::

    {"ts": "2025-01-31T09:12:03.417Z", "level": "WARNING", "logger": "idgraph.stream.delivery",
     "message": "dead-lettered idgraph.events.crm[1]@7: invalid JSON ...", "process": 4121,
     "host": "worker-3", "thread": "MainThread"}

``ts`` is the record's time in ISO 8601, UTC, to the millisecond; ``message`` the formatted
message; ``process`` the pid, ``host`` the host name, ``thread`` the thread's name. A record
with an exception adds ``exc_type`` (its class, qualified by its module unless built in)
and ``exc`` (the traceback text); one with a stack adds ``stack``. Every library logging
through the standard :mod:`logging` (Faust, mode, aiokafka, gRPC's Python side) comes out
the same way: ``idgraph worker`` keeps this handler instead of Faust's (see
:meth:`idgraph.stream.app.StreamWorker.run`). In JSON, Python warnings, uncaught exceptions
(of any thread) and the command's final error line are JSON records too, so every line a
worker or server writes on standard error is one JSON object (``idgraph serve`` still
prints its ``serving ProfileService on port N`` line on standard output: it is the
command's output, which scripts read, not a log record).

No personal data: the project's log calls name counts, topics, offsets, types and
reference IDs, never an event's values (an event that fails gets a ``log ref`` that its
dead letter carries instead); the tests run logging code paths with JSON on and look for
the events' e-mail addresses, phone numbers and names in every line.

``log.level`` (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``, ``CRITICAL``; unset: the
command's own, ``INFO`` for ``idgraph worker`` and ``WARNING`` for the others) is the
level of the root logger.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, TextIO

from pydantic import field_validator

from idgraph.core.sections import Section

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogSettings(Section):
    """The log output of every command (module docstring)."""

    format: Literal["text", "json"] = "text"
    """``"text"``: lines for people (today's format); ``"json"``: one JSON object per line
    with ``ts``, ``level``, ``logger``, ``message``, ``process``, ``host``, ``thread`` (and
    ``exc_type``, ``exc`` for an exception). ``IDGRAPH_LOG__FORMAT=json``."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    """Lowest level written (any case); unset: ``INFO`` for ``idgraph worker``,
    ``WARNING`` for the other commands. ``IDGRAPH_LOG__LEVEL=DEBUG``."""

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (module docstring); never raises for a value that
    JSON cannot hold (it is written as its ``str``)."""

    def __init__(self) -> None:
        super().__init__()
        self.host = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
                          .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "host": self.host,
            "thread": record.threadName,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = _qualified(record.exc_info[0])
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _qualified(cls: type) -> str:
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

_active_format: str = "text"


def configure_logging(settings: LogSettings, default_level: str = "WARNING",
                      stream: TextIO | None = None) -> None:
    """Set the root logger's level (``settings.level``, else ``default_level``) and its
    handler: ``settings.format`` on ``stream`` (default: standard error).

    The handler an earlier call installed is replaced. Like :func:`logging.basicConfig`,
    none is added when the root logger has handlers of someone else's (a test's capture, a
    host application's): they stay as they are. In JSON, warnings go through logging and
    uncaught exceptions are logged (module docstring)."""
    global _active_format
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "idgraph_log", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.level or default_level.upper())
    _active_format = settings.format
    json_on = settings.format == "json"
    logging.captureWarnings(json_on)
    sys.excepthook = _log_uncaught if json_on else sys.__excepthook__
    threading.excepthook = _log_uncaught_in_thread if json_on else threading.__excepthook__
    if root.handlers:
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_on else logging.Formatter(TEXT_FORMAT))
    handler.idgraph_log = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def json_logs() -> bool:
    """Whether :func:`configure_logging` last chose JSON."""
    return _active_format == "json"


def error_line(text: str, logger: str = "idgraph") -> str:
    """``text`` as the line a command ends with: itself in text, a JSON ``ERROR`` record of
    ``logger`` when the logs are JSON (so a log collector reads it like the others)."""
    if not json_logs():
        return text
    record = logging.LogRecord(logger, logging.ERROR, "", 0, text, None, None)
    return JsonFormatter().format(record)


def _log_uncaught(exc_type: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _write_uncaught("uncaught exception", (exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    _write_uncaught(f"uncaught exception in thread {name}",
                    (args.exc_type, args.exc_value, args.exc_traceback))


def _write_uncaught(message: str, exc_info) -> None:
    """One JSON ``CRITICAL`` record on standard error, whatever handlers the root has (at
    exit they may be closed already)."""
    record = logging.LogRecord("idgraph", logging.CRITICAL, "", 0, message, None, exc_info)
    try:
        print(JsonFormatter().format(record), file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - the last resort: Python's own report
        traceback.print_exception(*exc_info)
