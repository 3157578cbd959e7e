"""Mailchimp Transactional (Mandrill) webhook events (one element of ``mandrill_events``).

Mandrill POSTs a form field ``mandrill_events``: a JSON array of events, each
``{"event", "ts", "msg": {...}}``.

- An inbound event (``"event": "inbound"``, an email received on an inbound route) -> one
  :class:`IdentityRecord` about the message's SENDER, keyed ``mandrill:<msg.from_email>``
  (normalised). Identifiers: ``email`` (``msg.from_email``) and ``message`` for each
  Message-ID in the ``In-Reply-To`` header: a reply to an email we sent names that email,
  whose recipient (a SendGrid ``smtp-id``) is then the sender. Nothing else is read for
  identifiers: not ``References`` (a thread names other people's messages), not the
  recipients, not the text/html body (an out-of-office reply naming a colleague's address
  must not add it). Attributes: ``email`` and the name parts of ``msg.from_name`` when it
  looks like a person's. Event ID: ``mandrill:<Message-Id>`` (normalised), or, without a
  usable one, ``mandrill:sha256:<32 hex>`` of the time, sender and subject.
- A message event (``send``, ``deferral``, ``hard_bounce``, ``soft_bounce``,
  ``delivered``, ``open``, ``click``, ``spam``, ``unsub``, ``reject``) -> one record about
  the recipient ``msg.email``, keyed ``mandrill:<msg.email>``, with the identifiers
  ``msg.metadata`` names (read like SendGrid custom arguments,
  :func:`~idgraph.resolver.adapters._common.custom_args`). ``unsub`` and ``spam`` withdraw
  email consent. Event ID ``mandrill:<_id>:<event>:<ts>``.

Headers are matched case-insensitively (``Message-Id``/``Message-ID``); a header Mandrill
received more than once is a list of strings. Other event kinds (allowlist/denylist sync
events) raise :class:`InvalidPayloadError` on ``event``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.adapters._common import (
    RecordBuilder,
    custom_args,
    opt_str,
    person_name,
    req_dict,
    req_str,
    req_unix_time,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "mandrill"

INBOUND = "inbound"
#: Message events (Mandrill's names; its docs also write ``hard-bounce``, read the same).
MESSAGE_EVENTS = frozenset(
    {
        "send",
        "deferral",
        "hard_bounce",
        "soft_bounce",
        "delivered",
        "open",
        "click",
        "spam",
        "unsub",
        "reject",
    }
)
_CONSENT = {"unsub": False, "spam": False}
_MSG_ID_RE = re.compile(r"<[^<>]*>")


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    if payload.get("event") is None and "type" in payload:
        raise InvalidPayloadError(
            SOURCE, "event", "missing (a sync event: allowlist/denylist changes name no message)"
        )
    event = req_str(SOURCE, payload, "event", "event").lower().replace("-", "_")
    if event != INBOUND and event not in MESSAGE_EVENTS:
        raise InvalidPayloadError(
            SOURCE,
            "event",
            f"unsupported event type; expected {INBOUND} or one of "
            f"{', '.join(sorted(MESSAGE_EVENTS))}",
        )
    event_time = req_unix_time(SOURCE, payload, "ts", "ts")
    msg = req_dict(SOURCE, payload, "msg", "msg")
    if event == INBOUND:
        return [_inbound(msg, event_time, norm)]
    return [_message_event(payload, msg, event, event_time, norm)]


def _inbound(msg: dict, event_time: datetime, norm: Normalizer) -> IdentityRecord:
    """The record about the sender of an inbound email."""
    b = RecordBuilder(SOURCE, norm)
    email = b.email(req_str(SOURCE, msg, "from_email", "msg.from_email"), "msg.from_email")
    if email is None:
        raise b.key_error("msg.from_email")
    b.attr("email", email)
    headers = msg.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise InvalidPayloadError(SOURCE, "msg.headers", "not an object")
    headers = headers or {}

    for path, value in _header(headers, "In-Reply-To"):
        for token in _msg_ids(value):
            b.typed("message", token, path)
    for key, value in person_name(opt_str(SOURCE, msg, "from_name", "msg.from_name"), norm).items():
        b.attr(key, value)

    event_id = None
    for _, value in _header(headers, "Message-Id")[:1]:
        tokens = _msg_ids(value)
        if tokens:
            try:
                event_id = f"{SOURCE}:{norm.message_id(tokens[0])}"
            except InvalidIdentifierError:
                pass  # a malformed Message-Id: the content hash below identifies the event
    if event_id is None:
        subject = opt_str(SOURCE, msg, "subject", "msg.subject") or ""
        event_id = _hashed(event_time, email, subject)
    return b.build(email, event_id, event_time, INBOUND, "msg.from_email")


def _message_event(
    payload: dict, msg: dict, event: str, event_time: datetime, norm: Normalizer
) -> IdentityRecord:
    """The record about the recipient of a message Mandrill sent."""
    b = RecordBuilder(SOURCE, norm)
    email = b.email(req_str(SOURCE, msg, "email", "msg.email"), "msg.email")
    if email is None:
        raise b.key_error("msg.email")
    b.attr("email", email)
    metadata = msg.get("metadata")
    if isinstance(metadata, dict):
        custom_args(b, metadata, "msg.metadata.")
    elif metadata not in (None, []):  # an empty list: how PHP encodes an empty object
        raise InvalidPayloadError(SOURCE, "msg.metadata", "not an object")
    consent = _CONSENT.get(event)
    if consent is not None:
        b.consent["email"] = consent

    message_id = opt_str(SOURCE, payload, "_id", "_id") or opt_str(SOURCE, msg, "_id", "msg._id")
    if message_id is not None:
        event_id = f"{SOURCE}:{message_id.strip()}:{event}:{payload['ts']}"
    else:
        event_id = _hashed(event_time, email, event)
    return b.build(email, event_id, event_time, event, "msg.email")


def _header(headers: dict, name: str) -> list[tuple[str, str]]:
    """``(field path, value)`` of each value of header ``name`` (matched case-insensitively;
    a repeated header is a list of strings)."""
    wanted = name.lower()
    out: list[tuple[str, str]] = []
    for key, value in headers.items():
        if not isinstance(key, str) or key.lower() != wanted:
            continue
        path = f"msg.headers.{key}"
        if isinstance(value, str):
            out.append((path, value))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise InvalidPayloadError(SOURCE, f"{path}[{i}]", "not a string")
                out.append((path, item))
        elif value is not None:
            raise InvalidPayloadError(SOURCE, path, "not a string or a list of strings")
    return out


def _msg_ids(value: str) -> list[str]:
    """The ``<...>`` message IDs in a header value (comments and other text around them are
    skipped); a value without angle brackets is taken as one bare ID."""
    found = _MSG_ID_RE.findall(value)
    if found:
        return found
    text = value.strip()
    return [text] if text else []


def _hashed(event_time: datetime, email: str, detail: str) -> str:
    """A stable event ID from the event's content, for events without a message ID."""
    text = f"{event_time.isoformat()}\x1f{email}\x1f{detail}"
    return f"{SOURCE}:sha256:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
