"""One root exception and a few meaningful subclasses.

Each error that can reach a caller carries the name of the status it maps to (``status``,
one of gRPC's code names such as ``"NOT_FOUND"``), so one interceptor in ``service/``
translates domain errors without knowing every class, and nothing below the service needs
grpc: this module imports nothing but the standard library.
Messages never contain raw identifier values or attribute values (no PII in logs).
"""

from __future__ import annotations


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
