"""SendGrid Event Webhook events (one element of the JSON array the webhook POSTs).

One event -> one :class:`IdentityRecord` about the recipient, keyed ``sendgrid:<email>``.
Unsubscribes and spam reports withdraw email consent; a group resubscribe grants it. The
client IP and user agent are deliberately not kept.
"""

from __future__ import annotations

from datetime import UTC, datetime

from idgraph.core.errors import InvalidPayloadError
from idgraph.resolver.adapters._common import RecordBuilder, req_str
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "sendgrid"

_CONSENT = {
    "unsubscribe": False,
    "group_unsubscribe": False,
    "spamreport": False,
    "group_resubscribe": True,
}


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    event = req_str(SOURCE, payload, "event", "event")
    event_id = req_str(SOURCE, payload, "sg_event_id", "sg_event_id")
    ts = payload.get("timestamp")
    if ts is None:
        raise InvalidPayloadError(SOURCE, "timestamp", "missing")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise InvalidPayloadError(SOURCE, "timestamp", "not a number (unix seconds)")
    try:
        event_time = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidPayloadError(SOURCE, "timestamp", "out of range") from None
    raw_email = req_str(SOURCE, payload, "email", "email")

    b = RecordBuilder(SOURCE, norm)
    email = b.email(raw_email, "email")
    b.attr("email", email)
    consent = _CONSENT.get(event)
    if consent is not None:
        b.consent["email"] = consent
    record = b.build(email or "", event_id, event_time, event, "email")
    return [record]
