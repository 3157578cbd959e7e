"""One root exception and a few meaningful subclasses.

Each error that can reach a caller carries the name of the status it maps to (``status``,
one of gRPC's code names such as ``"NOT_FOUND"``), so one interceptor in ``service/``
translates domain errors without knowing every class, and nothing below the service needs
grpc: this module imports nothing but the standard library.
Messages never contain raw identifier values or attribute values (no PII in logs).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar


class IdGraphError(Exception):
    """Root of every error raised by this project."""

    status: str = "INTERNAL"
    """Name of the status a caller gets (gRPC's code names; INTERNAL hides the message)."""


class InvalidPayloadError(IdGraphError):
    """A raw source payload cannot be turned into identity records.

    ``source`` names the source kind, ``field`` the payload field (dotted path) and
    ``problem`` what is wrong with it. The message names all three.
    """

    status = "INVALID_ARGUMENT"

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: field {field!r}: {problem}")


class InvalidIdentifierError(IdGraphError):
    """A typed identifier string cannot be parsed or normalised (bad type or value)."""

    status = "INVALID_ARGUMENT"


class NotFoundError(IdGraphError):
    """No profile answers the given identifier or profile ID (in the served regions)."""

    status = "NOT_FOUND"


class ResidencyError(IdGraphError):
    """A read or write touched a region this store or server is not configured for."""

    status = "PERMISSION_DENIED"


class ConfigError(IdGraphError):
    """Settings are invalid; the message names the setting."""

    status = "FAILED_PRECONDITION"


class BackendError(IdGraphError):
    """A storage backend failed; the message names the operation (never the PII key)."""

    status = "UNAVAILABLE"


class PrivateFileError(ConfigError):
    """A file or directory that holds personal data cannot be made readable by its owner
    only (not ours to change, a read-only file system); the message names the path and the
    mode wanted (see :mod:`idgraph.core.private_files`)."""


class DriverErrorBoundary:
    """Mixin of a seam's backend base class (one per seam): each backend names its driver's
    exception classes in ``driver_errors`` and, optionally, how to describe one
    (``describe_driver_error``); every public method of the seam then raises
    :class:`BackendError` for them (:func:`translate_driver_errors`). The seam's base class
    sets ``seam_name``; its public methods and its bases' are the seam's methods."""

    seam_name: ClassVar[str] = ""
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    @staticmethod
    def describe_driver_error(exc: BaseException) -> str:
        """What failed, without keys or values (default: the exception's class)."""
        return type(exc).__name__

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.driver_errors:
            return
        seam = next(c for c in cls.__mro__ if "seam_name" in vars(c))
        methods = {name for c in seam.__mro__ if c not in (DriverErrorBoundary, object)
                   for name, value in vars(c).items()
                   if callable(value) and not name.startswith("_")}
        translate_driver_errors(cls, seam.seam_name, methods)


def translate_driver_errors(cls: type, seam: str, method_names: Iterable[str]) -> None:
    """Make the seam methods of backend class ``cls`` raise :class:`BackendError` for the
    driver's own exceptions: the one place a backend's driver errors are turned into this
    project's (Splink's ``DatabaseAPI`` does the same at its boundary).

    ``cls.driver_errors`` names the driver's exception classes (none: nothing is wrapped)
    and ``cls.describe_driver_error(exc)`` says what failed without keys or values (driver
    messages can quote the statement's parameters, which are identifiers). The message is
    ``"<seam>: <method> failed: <description>"``. Errors of this project pass unchanged, so
    methods that call each other are translated once. Generator methods are translated
    while they are iterated."""
    errors: tuple[type[BaseException], ...] = getattr(cls, "driver_errors", ())
    if not errors:
        return
    describe: Callable[[BaseException], str] = cls.describe_driver_error  # type: ignore[attr-defined]
    for name in method_names:
        method = getattr(cls, name, None)
        if method is None or getattr(method, "__translates_driver_errors__", False):
            continue
        setattr(cls, name, _translating(method, f"{seam}: {name}", errors, describe))


def _translating(method: Callable, what: str, errors: tuple[type[BaseException], ...],
                 describe: Callable[[BaseException], str]) -> Callable:
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(*args: object, **kwargs: object) -> Iterator:
            try:
                yield from method(*args, **kwargs)
            except IdGraphError:
                raise
            except errors as exc:
                raise BackendError(f"{what} failed: {describe(exc)}") from exc

        wrapper: Callable = generator
    else:
        @functools.wraps(method)
        def call(*args: object, **kwargs: object) -> object:
            try:
                return method(*args, **kwargs)
            except IdGraphError:
                raise
            except errors as exc:
                raise BackendError(f"{what} failed: {describe(exc)}") from exc

        wrapper = call
    wrapper.__translates_driver_errors__ = True  # type: ignore[attr-defined]
    return wrapper
