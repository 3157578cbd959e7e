"""SendGrid Event Webhook events (one element of the JSON array the webhook POSTs).

One event -> one :class:`IdentityRecord` about the recipient, keyed ``sendgrid:<email>``.
Identifiers: the recipient's ``email``; the sent message's Message-ID from ``smtp-id``
(``message``, so a reply quoting it in ``In-Reply-To`` finds the recipient); and the
sender's custom arguments that name a user or CRM record. SendGrid puts ``custom_args``
(``unique_args`` in the legacy APIs) as extra top-level fields of each event: every field
that is not one of SendGrid's documented event fields is a custom argument, read by
:func:`~idgraph.resolver.adapters._common.custom_args` (``user_id`` -> ``user:segment``,
``salesforce_id`` or a Contact/Lead ID value -> ``crm:salesforce``...). A nested
``unique_args``/``custom_args`` object is read the same way.

Event properties (the timeline's, what segments count), by SendGrid's field names:
``category`` (a string, or a list joined with ``,`` in its order: ``["newsletter",
"spring"]`` -> ``"newsletter,spring"``, so ``category contains "spring"`` finds it),
``campaign`` and ``campaign_id`` (``marketing_campaign_name``/``marketing_campaign_id``;
a Single Send's ``singlesend_name``/``singlesend_id`` when there is no campaign),
``url`` (the link of a ``click``) and ``template`` (``sg_template_name``). The event type is
SendGrid's ``event`` (``delivered``, ``open``, ``click``, ``bounce``...).

Unsubscribes and spam reports withdraw email consent; a group resubscribe grants it. The
client IP and user agent are deliberately not kept.
"""

from __future__ import annotations

from idgraph.resolver.adapters._common import (
    RecordBuilder,
    custom_args,
    opt_str,
    req_str,
    req_unix_time,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "sendgrid"

_CONSENT = {
    "unsubscribe": False,
    "group_unsubscribe": False,
    "spamreport": False,
    "group_resubscribe": True,
}

#: Fields SendGrid documents for Event Webhook events (delivery, engagement and account
#: events, Marketing Campaigns and Single Sends): never custom arguments.
EVENT_FIELDS = frozenset(
    {
        "email",
        "timestamp",
        "event",
        "smtp-id",
        "sg_event_id",
        "sg_message_id",
        "sg_user_id",
        "category",
        "useragent",
        "ip",
        "url",
        "url_offset",
        "reason",
        "status",
        "response",
        "attempt",
        "type",
        "bounce_classification",
        "asm_group_id",
        "marketing_campaign_id",
        "marketing_campaign_name",
        "marketing_campaign_version",
        "marketing_campaign_split_id",
        "post_type",
        "pool",
        "tls",
        "cert_err",
        "sg_machine_open",
        "sg_template_id",
        "sg_template_name",
        "sg_content_type",
        "singlesend_id",
        "singlesend_name",
        "template_id",
        "template_version_id",
        "template_hash",
        "mc_stats",
        "phase_id",
        "send_at",
        "ab_variation_id",
        "ab_phase_id",
        "newsletter",
        "unique_args",
        "custom_args",
    }
)
#: Nested custom-argument objects some senders' events carry.
_NESTED_ARGS = ("unique_args", "custom_args")


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    event = req_str(SOURCE, payload, "event", "event")
    event_id = req_str(SOURCE, payload, "sg_event_id", "sg_event_id")
    event_time = req_unix_time(SOURCE, payload, "timestamp", "timestamp")
    raw_email = req_str(SOURCE, payload, "email", "email")

    b = RecordBuilder(SOURCE, norm)
    email = b.email(raw_email, "email")
    if email is None:
        raise b.key_error("email")
    b.attr("email", email)
    b.typed("message", opt_str(SOURCE, payload, "smtp-id", "smtp-id"), "smtp-id")
    custom_args(b, payload, "", skip=EVENT_FIELDS)
    for key in _NESTED_ARGS:
        nested = payload.get(key)
        if isinstance(nested, dict):
            custom_args(b, nested, f"{key}.")
    b.prop("category", payload.get("category"))
    b.prop("campaign", payload.get("marketing_campaign_name") or payload.get("singlesend_name"))
    b.prop("campaign_id", payload.get("marketing_campaign_id") or payload.get("singlesend_id"),
           text=True)
    b.prop("url", payload.get("url"))
    b.prop("template", payload.get("sg_template_name"))
    consent = _CONSENT.get(event)
    if consent is not None:
        b.consent["email"] = consent
    return [b.build(email, event_id, event_time, event, "email")]
