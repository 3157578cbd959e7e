"""Owner-only directories and files, for everything the product writes that holds personal
data (profiles, identifiers, record keys such as ``sendgrid:<email>``).

* :func:`make_private_dir` creates a directory ``0700`` and narrows an existing one to
  ``0700`` (``mkdir(mode=...)`` leaves an existing directory as it is);
* :func:`open_private` and :func:`open_private_fd` open a file for writing, creating it
  ``0600`` through ``os.open`` (so it is never readable by others, not even until a later
  ``chmod``) and narrowing an existing file to ``0600``;
* :func:`make_private_sqlite` creates a SQLite database file ``0600`` before SQLite opens
  it. SQLite creates the database's ``-wal``, ``-shm`` and ``-journal`` files with the
  permissions of the database file, so they are owner-only too (tested); ones left by an
  older release are narrowed.

The process umask is left alone: it is process-wide, and other threads and libraries have
their own files. A mode that cannot be set (a path owned by someone else, a read-only file
system) raises :class:`PrivateFileError` naming the path and the mode wanted; it is never
ignored. Failing to create a path raises the ``OSError`` as it is (it names the path).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import IO, Any

from idgraph.core.errors import ConfigError, PrivateFileError

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database ``path`` (``path`` + suffix)."""

_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
}


def make_private_dir(path: str | PathLike[str]) -> Path:
    """Create ``path`` (and missing parents, as ``mkdir -p`` would) with mode ``0700``, or
    narrow an existing directory to ``0700``; returns it as a Path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _restrict(path, DIR_MODE, os.stat(path).st_mode, lambda mode: os.chmod(path, mode))
    return path


def open_private_fd(path: str | PathLike[str],
                    flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open(path, flags)`` creating the file ``0600``; an existing file readable or
    writable by others is narrowed to ``0600`` before anything is written. Returns the
    descriptor (the caller closes it)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        _restrict(path, FILE_MODE, os.fstat(fd).st_mode, lambda mode: os.fchmod(fd, mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: str | PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode, **kwargs)`` for writing (``mode`` one of ``w``, ``a``, ``a+``,
    with or without ``b``), the file created or narrowed as by :func:`open_private_fd`."""
    flags = _FLAGS.get(mode.replace("b", ""))
    if flags is None:
        raise ValueError(f"open_private: mode {mode!r} is not one of w, a, a+ (with b)")
    fd = open_private_fd(path, flags)
    try:
        return open(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def make_private_file(path: str | PathLike[str]) -> Path:
    """Create ``path`` empty with mode ``0600``, or narrow an existing file to ``0600``
    (its contents are kept); returns it as a Path."""
    os.close(open_private_fd(path, os.O_RDONLY | os.O_CREAT))
    return Path(path)


def make_private_sqlite(path: str | PathLike[str]) -> Path:
    """Make the SQLite database ``path`` owner-only before SQLite opens it: the file is
    created ``0600`` (SQLite then creates its ``-wal``, ``-shm`` and ``-journal`` with that
    mode) and existing ones, with the sidecars present, are narrowed. Returns it as a Path."""
    path = make_private_file(path)
    for suffix in SQLITE_SIDECARS:
        sidecar = path.with_name(path.name + suffix)
        try:
            current = os.stat(sidecar).st_mode
            _restrict(sidecar, FILE_MODE, current, lambda mode, p=sidecar: os.chmod(p, mode))
        except FileNotFoundError:
            continue  # none, or SQLite removed it meanwhile (the last connection closed)
    return path


def _restrict(path: str | PathLike[str], wanted: int, current: int,
              chmod: Callable[[int], None]) -> None:
    """Set ``wanted`` when group or others have any access (``current`` is a st_mode)."""
    if not stat.S_IMODE(current) & 0o077:
        return
    try:
        chmod(wanted)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PrivateFileError(
            f"cannot make {os.fspath(path)} private: mode {wanted:04o} wanted, it is "
            f"{stat.S_IMODE(current):04o} ({exc.strerror or type(exc).__name__}); it holds "
            "personal data: change its owner or mode") from exc


def read_secret(path: Path, setting: str) -> bytes:
    """The secret in the file ``path`` (surrounding whitespace stripped); ConfigError
    naming ``setting`` and the path when it cannot be read."""
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {str(path)!r}: {exc.strerror}") from None


def read_or_create_secret(path: Path, setting: str, nbytes: int = 32) -> bytes:
    """The secret in ``path``, first created (``0600``, ``nbytes`` random bytes as hex)
    when missing. The new file is written to a private temporary file and linked into
    place, so another process sees either no file or a whole one; when two create it at
    once, both use the one linked first."""
    path = Path(path)
    if not path.exists():
        make_private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_hex(nbytes).encode("ascii"))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: use theirs
                pass
        finally:
            tmp.unlink(missing_ok=True)
    return read_secret(path, setting)
