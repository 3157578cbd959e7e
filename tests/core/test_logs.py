"""JSON log lines (:mod:`idgraph.core.logs`): the fields of a record and of an exception, one
line per record whatever the message holds, the ``[log]`` settings, and the set-up the CLI
makes (its own handler replaced, someone else's left alone, warnings and uncaught
exceptions as records)."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from idgraph.core import logs
from idgraph.core.errors import ConfigError
from idgraph.core.logs import JsonFormatter, LogSettings, configure_logging, error_line
from idgraph.settings import load_settings

REQUIRED = {"ts", "level", "logger", "message", "process", "host", "thread"}


def parse_json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object with the required fields (fails otherwise,
    naming the line)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(entry, dict) and REQUIRED <= entry.keys(), line
        assert entry["ts"].endswith("Z"), line
        datetime.fromisoformat(entry["ts"])  # ISO 8601
        entries.append(entry)
    return entries


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "idgraph_log", False)]


@contextmanager
def _without_pytest_capture():
    """The root logger without the handlers pytest adds for the test's call (put back
    after), so :func:`configure_logging` sees only its own."""
    root = logging.getLogger()
    theirs = [h for h in root.handlers if h not in _ours(root)]
    for handler in theirs:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in theirs:
            root.addHandler(handler)


@pytest.fixture()
def json_log():
    """JSON logs at DEBUG into a buffer, set up by :func:`configure_logging` as the CLI
    does. The root's handlers of the moment (pytest's capture) are taken off first, since
    the set-up adds none beside someone else's; the hooks go back to text afterwards."""
    root = logging.getLogger()
    level = root.level
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    buf = io.StringIO()
    configure_logging(LogSettings(format="json", level="DEBUG"), stream=buf)
    try:
        yield buf
    finally:
        for handler in _ours(root):
            root.removeHandler(handler)
        logging.captureWarnings(False)
        sys.excepthook, threading.excepthook = sys.__excepthook__, threading.__excepthook__
        logs._active_format = "text"
        root.setLevel(level)


def test_a_record_is_one_json_line_with_every_field():
    before = datetime.now(UTC)
    record = logging.LogRecord("idgraph.stream.delivery", logging.WARNING, __file__, 1,
                               "dead-lettered %s[%d]@%d: %s",
                               ("t", 1, 7, "invalid JSON:\nline 2 ünïcode"), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    (entry,) = parse_json_lines(line)
    assert entry == {
        "ts": entry["ts"], "level": "WARNING", "logger": "idgraph.stream.delivery",
        "message": "dead-lettered t[1]@7: invalid JSON:\nline 2 ünïcode",
        "process": record.process, "host": socket.gethostname(),
        "thread": threading.current_thread().name}
    ts = datetime.fromisoformat(entry["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) < ts < datetime.now(UTC) + timedelta(seconds=1)


def test_an_exception_adds_its_type_and_traceback():
    class StoreDown(Exception):
        pass

    try:
        try:
            raise KeyError("k")
        except KeyError as exc:
            raise StoreDown("profile store: disk I/O error") from exc
    except StoreDown:
        record = logging.LogRecord("idgraph", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    (entry,) = parse_json_lines(JsonFormatter().format(record))
    assert entry["exc_type"] == f"{__name__}.{StoreDown.__qualname__}"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'k'" in entry["exc"]
    assert entry["exc"].endswith("StoreDown: profile store: disk I/O error")
    builtin = logging.LogRecord("x", logging.ERROR, "", 0, "m", None,
                                (ValueError, ValueError("v"), None))
    assert json.loads(JsonFormatter().format(builtin))["exc_type"] == "ValueError"


def test_a_value_json_cannot_hold_is_written_as_text():
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s", ({1, 2},), None)
    record.stack_info = "Stack (most recent call last):\n  here"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "{1, 2}" and entry["stack"].endswith("here")


def test_the_settings_default_to_text_and_the_commands_level(monkeypatch):
    assert LogSettings() == LogSettings(format="text", level=None)
    monkeypatch.setenv("IDGRAPH_LOG__FORMAT", "json")
    monkeypatch.setenv("IDGRAPH_LOG__LEVEL", "debug")
    assert load_settings().log == LogSettings(format="json", level="DEBUG")


@pytest.mark.parametrize("name, value", [("FORMAT", "xml"), ("LEVEL", "LOUD")])
def test_an_invalid_log_setting_names_the_field_and_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(f"IDGRAPH_LOG__{name}", value)
    with pytest.raises(ConfigError, match=rf"log\.{name.lower()}: .*"
                                          rf"\(environment variable IDGRAPH_LOG__{name}\)"):
        load_settings()


def test_configure_replaces_its_own_handler_and_sets_the_level(json_log):
    root = logging.getLogger()
    assert root.level == logging.DEBUG and len(_ours(root)) == 1
    logging.getLogger("faust.worker").debug("a %s", "debug line")
    again = io.StringIO()
    with _without_pytest_capture():
        configure_logging(LogSettings(format="json"), default_level="info", stream=again)
        assert len(_ours(root)) == 1 and root.level == logging.INFO
    logging.getLogger("mode").debug("not written")
    logging.getLogger("aiokafka").info("written")
    assert [e["message"] for e in parse_json_lines(json_log.getvalue())] == ["a debug line"]
    assert [(e["logger"], e["message"]) for e in parse_json_lines(again.getvalue())] == [
        ("aiokafka", "written")]


def test_someone_elses_handler_is_left_alone(json_log):
    root = logging.getLogger()
    theirs = logging.NullHandler()
    with _without_pytest_capture():
        for handler in _ours(root):
            root.removeHandler(handler)
        root.addHandler(theirs)
        try:
            configure_logging(LogSettings(format="json"), stream=io.StringIO())
            assert root.handlers == [theirs]
        finally:
            root.removeHandler(theirs)


def test_warnings_and_uncaught_exceptions_are_json_records(json_log, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # catch_warnings put the original display back
        warnings.warn("deprecated knob", DeprecationWarning, stacklevel=1)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    thread = threading.Thread(target=lambda: 1 / 0, name="engine-1")
    thread.start()
    thread.join()
    (warning,) = parse_json_lines(json_log.getvalue())
    assert warning["logger"] == "py.warnings" and "deprecated knob" in warning["message"]
    main, in_thread = parse_json_lines(capsys.readouterr().err)
    assert (main["level"], main["message"], main["exc_type"]) == (
        "CRITICAL", "uncaught exception", "RuntimeError")
    assert in_thread["message"] == "uncaught exception in thread engine-1"
    assert in_thread["exc_type"] == "ZeroDivisionError"


def test_the_error_line_is_a_record_in_json_and_itself_in_text(json_log):
    (entry,) = parse_json_lines(error_line("idgraph: not found: email:x"))
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR", "idgraph", "idgraph: not found: email:x")
    logs._active_format = "text"
    assert error_line("idgraph: oops") == "idgraph: oops"
