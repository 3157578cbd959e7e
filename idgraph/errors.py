"""One root exception and a few meaningful subclasses.

Each error that can reach a gRPC client carries the status code it maps to, so one
interceptor in ``service/`` translates domain errors without knowing every class.
Messages never contain raw identifier values or attribute values (no PII in logs).
"""

from __future__ import annotations

import grpc


class IdGraphError(Exception):
    """Root of every error raised by this project."""

    grpc_status: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidPayloadError(IdGraphError):
    """A raw source payload cannot be turned into identity records.

    ``source`` names the source kind, ``field`` the payload field (dotted path) and
    ``problem`` what is wrong with it. The message names all three.
    """

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: field {field!r}: {problem}")


class InvalidIdentifierError(IdGraphError):
    """A typed identifier string cannot be parsed or normalised (bad type or value)."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(IdGraphError):
    """No profile answers the given identifier or profile ID (in the served regions)."""

    grpc_status = grpc.StatusCode.NOT_FOUND


class ResidencyError(IdGraphError):
    """A read or write touched a region this store or server is not configured for."""

    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class ConfigError(IdGraphError):
    """Settings are invalid; the message names the setting."""

    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class BackendError(IdGraphError):
    """A storage backend failed; the message names the operation (never the PII key)."""

    grpc_status = grpc.StatusCode.UNAVAILABLE
