"""Rows of a person/contact file (CSV, Parquet) given to ``idgraph resolve`` or ``train``.

The caller maps file columns to canonical attribute names
(:data:`idgraph.resolver.model.CANONICAL_ATTRIBUTES`); one row -> one :class:`IdentityRecord`
keyed ``SOURCE:RECORD_ID``. Emails and phones become identifiers (so the deterministic
rules apply to them) and attributes; everything else is an attribute. A row may carry no
identifier at all: it is then matched by the probabilistic model only.

The event ID is derived from the row's content, so resolving the same file again is a
no-op and a changed row is a new event.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.model import (
    CANONICAL_ATTRIBUTES,
    Identifier,
    IdentityRecord,
    RejectedIdentifier,
)
from idgraph.resolver.normalize import Normalizer

_NAME_ATTRS = ("given_name", "middle_name", "family_name")
_TEXT_ATTRS = ("street", "city", "state", "job_title")
_BIRTH_PARTS = ("birth_year", "birth_month", "birth_day")


def check_mapping(mapping: Mapping[str, str]) -> None:
    """Raise naming the first canonical name that does not exist."""
    for canonical in mapping:
        if canonical not in CANONICAL_ATTRIBUTES:
            raise InvalidPayloadError(
                "file", f"--map {canonical}", "unknown canonical attribute; known: "
                + ", ".join(CANONICAL_ATTRIBUTES))


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):  # a missing cell read by pandas
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def adapt_row(source: str, record_id: str, values: Mapping[str, object], norm: Normalizer,
              event_time: datetime) -> IdentityRecord:
    """One file row (canonical name -> raw value) as a record."""
    if not record_id:
        raise InvalidPayloadError(source, "record id", "empty")
    raw = {k: t for k, v in values.items() if (t := _text(v)) is not None}
    attrs: dict[str, str] = {}
    idents: list[Identifier] = []
    rejected: list[RejectedIdentifier] = []
    country = norm.country(raw.get("country"))
    if country:
        attrs["country"] = country
    if "email" in raw:
        try:
            email = norm.email(raw["email"])
            idents.append(Identifier("email", email))
            attrs["email"] = email
        except InvalidIdentifierError as exc:
            rejected.append(RejectedIdentifier("email", "email", str(exc)))
    if "phone" in raw:
        try:
            phone = norm.phone(raw["phone"], country)
            idents.append(Identifier("phone", phone))
            attrs["phone"] = phone
        except InvalidIdentifierError as exc:
            rejected.append(RejectedIdentifier("phone", "phone", str(exc)))
    for name in _NAME_ATTRS:
        if (v := norm.name(raw.get(name))) is not None:
            attrs[name] = v
    for name in _TEXT_ATTRS:
        if (v := norm.text(raw.get(name))) is not None:
            attrs[name] = v
    if (v := norm.company(raw.get("company"))) is not None:
        attrs["company"] = v
    if (v := norm.postal_code(raw.get("postal_code"))) is not None:
        attrs["postal_code"] = v
    if "birth_date" in raw:
        attrs.update(norm.birth_date(raw["birth_date"]))
    elif "birth_year" in raw:
        parts = [raw.get(p) for p in _BIRTH_PARTS]
        text = "-".join(p.zfill(2) if i else p for i, p in enumerate(parts) if p)
        attrs.update(norm.birth_date(text) if all(parts) else norm.birth_date(parts[0]))
    if "national_id" in raw:
        attrs["national_id"] = raw["national_id"]
    digest = hashlib.sha256(repr(sorted(raw.items())).encode()).hexdigest()[:16]
    return IdentityRecord(
        source=source, source_record_id=record_id, event_id=f"{source}:{record_id}:{digest}",
        event_time=event_time, identifiers=tuple(idents), attributes=attrs,
        event_type="row", rejected=tuple(rejected),
    )
