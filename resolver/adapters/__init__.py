"""Source adapters: one raw payload (as the source system delivers it) -> identity records.

``adapt(source, payload, normalizer)`` dispatches on the source kind (:data:`SOURCES`).
Each adapter checks the fields it uses (a required field missing or of the wrong type
raises :class:`InvalidPayloadError` naming the source and the dotted field path), normalises
identifiers through the :class:`~idgraph.resolver.normalize.Normalizer` (an identifier that fails
normalisation is dropped and listed in ``record.rejected``, it does not fail the record),
maps attributes to :data:`~idgraph.resolver.model.CANONICAL_ATTRIBUTES` and converts times to aware
UTC. ``region`` is left None for the engine's region policy.

``files.iter_payloads`` reads the export/batch files those systems hand out.
"""

from __future__ import annotations

from collections.abc import Callable

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.adapters import (
    google_calendar,
    hubspot,
    mandrill,
    salesforce,
    segment,
    sendgrid,
)
from idgraph.resolver.model import SOURCES, IdentityRecord
from idgraph.resolver.normalize import Normalizer

__all__ = ["ADAPTERS", "adapt"]

Adapter = Callable[[dict, Normalizer], list[IdentityRecord]]

#: Source kind -> adapter function ``(payload, normalizer) -> records``.
ADAPTERS: dict[str, Adapter] = {
    "salesforce": salesforce.adapt,
    "hubspot": hubspot.adapt,
    "sendgrid": sendgrid.adapt,
    "segment": segment.adapt,
    "google_calendar": google_calendar.adapt,
    "mandrill": mandrill.adapt,
}

_default_normalizer: Normalizer | None = None


def adapt(source: str, payload: dict, normalizer: Normalizer | None = None) -> list[IdentityRecord]:
    """Turn one raw ``payload`` of ``source`` into identity records (usually one; a
    Google Calendar event gives one per person, possibly none; a Mandrill payload is one
    element of ``mandrill_events``).

    Raises :class:`InvalidPayloadError` for an unknown source, a payload that is not a JSON
    object (field ``$``), a missing/mistyped required field, or a record left without any
    usable identifier.
    """
    fn = ADAPTERS.get(source)
    if fn is None:
        raise InvalidPayloadError(
            str(source), "source", f"unknown source kind; known: {', '.join(SOURCES)}"
        )
    if not isinstance(payload, dict):
        raise InvalidPayloadError(source, "$", "not a JSON object")
    if normalizer is None:
        global _default_normalizer
        if _default_normalizer is None:
            _default_normalizer = Normalizer()
        normalizer = _default_normalizer
    return fn(payload, normalizer)
