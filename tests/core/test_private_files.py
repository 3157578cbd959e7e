"""Owner-only files and directories (idgraph.core.private_files): created private, existing
ones narrowed, SQLite's side files private through the database file's mode, and a mode
that cannot be set is an error naming the path."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from idgraph.core.errors import ConfigError, PrivateFileError
from idgraph.core.private_files import (
    make_private_dir,
    make_private_file,
    make_private_sqlite,
    open_private,
    open_private_fd,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    """The common umask (022: new files 0644): what the helpers must not rely on."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_directory_is_0700_and_an_existing_one_is_narrowed(tmp_path):
    fresh = make_private_dir(tmp_path / "a" / "data")
    assert mode(fresh) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    assert mode(existing) == 0o755
    assert make_private_dir(existing) == existing
    assert mode(existing) == 0o700


def test_a_new_file_is_0600_from_its_creation(tmp_path, monkeypatch):
    seen = []
    real_open = os.open

    def watching_open(path, flags, mode_=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode_, *args, **kwargs)
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))  # before any chmod could run
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    with open_private(tmp_path / "out.jsonl", "a", encoding="utf-8") as fh:
        fh.write("x\n")
    assert seen == [0o600]
    assert mode(tmp_path / "out.jsonl") == 0o600


@pytest.mark.parametrize("how", ["open_private", "open_private_fd", "make_private_file"])
def test_an_existing_file_readable_by_others_is_narrowed(tmp_path, how):
    path = tmp_path / "old.csv"
    path.write_text("kept\n")
    path.chmod(0o644)
    if how == "open_private":
        with open_private(path, "a", encoding="utf-8") as fh:
            fh.write("more\n")
        assert path.read_text() == "kept\nmore\n"
    elif how == "open_private_fd":
        os.close(open_private_fd(path))
    else:
        make_private_file(path)
        assert path.read_text() == "kept\n"
    assert mode(path) == 0o600


@pytest.mark.parametrize("journal", ["WAL", "DELETE"])
def test_sqlite_gives_its_side_files_the_database_files_mode(tmp_path, journal):
    """The reason make_private_sqlite only creates the database file: SQLite creates -wal,
    -shm and -journal with the database file's permissions (a file SQLite creates itself
    gets 0644 under this umask, and so do its side files)."""
    db_path = make_private_sqlite(tmp_path / "p.sqlite")
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES ('sendgrid:jane@example.com')")
    sides = {"WAL": ["-wal", "-shm"], "DELETE": ["-journal"]}[journal]
    try:
        for suffix in sides:
            assert mode(tmp_path / f"p.sqlite{suffix}") == 0o600, suffix
        assert mode(db_path) == 0o600
    finally:
        db.execute("COMMIT")
        db.close()


def test_sqlite_side_files_left_readable_by_an_older_release_are_narrowed(tmp_path):
    db_path = tmp_path / "p.sqlite"
    db = sqlite3.connect(db_path, isolation_level=None)  # as before: 0644 under this umask
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")  # keeps -wal and -shm while the connection is open
    try:
        assert {mode(db_path), mode(tmp_path / "p.sqlite-wal"),
                mode(tmp_path / "p.sqlite-shm")} == {0o644}
        make_private_sqlite(db_path)
        assert mode(db_path) == mode(tmp_path / "p.sqlite-wal") == 0o600
        assert mode(tmp_path / "p.sqlite-shm") == 0o600
    finally:
        db.close()


@pytest.mark.parametrize("target", ["dir", "file", "sqlite side file"])
def test_a_mode_that_cannot_be_set_is_an_error_naming_the_path(tmp_path, monkeypatch, target):
    """As for a path owned by someone else (these tests may run as root, who may chmod
    anything) or on a read-only file system."""
    if target == "dir":
        path = tmp_path / "data"
        path.mkdir(mode=0o755)
        wanted, call = "0700", lambda: make_private_dir(path)
    elif target == "file":
        path = tmp_path / "dead-letters.jsonl"
        path.write_text("")  # 0644
        wanted, call = "0600", lambda: open_private(path, "a")
    else:
        os.close(os.open(tmp_path / "p.sqlite", os.O_CREAT | os.O_WRONLY, 0o600))
        path = tmp_path / "p.sqlite-wal"
        path.write_bytes(b"")  # 0644
        wanted, call = "0600", lambda: make_private_sqlite(tmp_path / "p.sqlite")

    def refused(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refused)
    monkeypatch.setattr(os, "fchmod", refused)
    with pytest.raises(PrivateFileError) as caught:
        call()
    assert isinstance(caught.value, ConfigError)  # the CLI reports it and exits 2
    message = str(caught.value)
    assert str(path) in message and wanted in message and "Operation not permitted" in message
