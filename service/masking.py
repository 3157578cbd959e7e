"""The marketer's view of a profile: enough to see who a segment reaches (kinds of
identifiers, sources, counts, company, country, consent) without reading who the person
is.

Masked: every identifier's value (its type stays: ``email:j***@example.com``,
``phone:***78``, anything else ``device:***``), every attribute named in
``auth.personal_attributes`` (value ``***``), every record key (``sendgrid:***``) and
the matched identifier of a lookup. Profile IDs, aliases, sources, counts, times, other
attributes and consent stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from idgraph.proto.idgraph.v1 import profiles_pb2 as pb

MASK = "***"


def mask_identifier(identifier: str) -> str:
    """``email:j***@example.com`` for ``email:jane@example.com``, ``phone:***78`` for a
    phone number, ``type:***`` for the rest (the domain of an email address is kept: it
    names a company or a mail provider, not a person)."""
    kind, sep, value = identifier.partition(":")
    if not sep:
        return MASK
    if kind == "email" and "@" in value:
        local, _, domain = value.rpartition("@")
        return f"email:{local[:1]}{MASK}@{domain}"
    if kind == "phone" and len(value) > 4:
        return f"phone:{MASK}{value[-2:]}"
    return f"{kind}:{MASK}"


def mask_record_key(key: str) -> str:
    """``hubspot:***`` for ``hubspot:501``: the source stays, its record ID goes (a
    record ID can be an e-mail address or a phone number)."""
    source, sep, _ = key.partition(":")
    return f"{source}:{MASK}" if sep else MASK


def mask_profile(profile: pb.Profile, personal: Iterable[str]) -> pb.Profile:
    """A masked copy of ``profile`` (module docstring); ``profile`` is not changed."""
    masked = pb.Profile()
    masked.CopyFrom(profile)
    personal = frozenset(personal)
    for ident in masked.identifiers:
        ident.identifier = mask_identifier(ident.identifier)
    for name, value in masked.attributes.items():
        if name in personal:
            value.value = MASK
        if value.record_key:
            value.record_key = mask_record_key(value.record_key)
    return masked


def mask_lookup(response: pb.LookupResponse, personal: Iterable[str]) -> pb.LookupResponse:
    """A masked copy of a lookup's answer (its profile and matched identifier)."""
    masked = pb.LookupResponse()
    masked.CopyFrom(response)
    masked.profile.CopyFrom(mask_profile(response.profile, personal))
    if masked.matched_identifier:
        masked.matched_identifier = mask_identifier(masked.matched_identifier)
    return masked
