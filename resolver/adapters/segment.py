"""Segment spec events: identify, track, page, screen, group and alias.

One event -> one :class:`IdentityRecord` keyed ``segment:<userId>`` (or
``segment:<anonymousId>`` for anonymous visitors). Identifiers: ``user:segment:<userId>``,
``cookie:<anonymousId>``, ``device:<context.device.id>``, the advertising ID (``idfa`` on
iOS, ``gaid`` on Android), and the email/phone traits. So an ``identify`` carrying both
``userId`` and ``anonymousId`` links the anonymous history to the known user. Legacy apps
use the user's email address as ``userId``: a ``userId`` that is a valid email address is
also an ``email`` identifier (and the ``email`` attribute when no trait names one).

Event type and properties (the profile's timeline, what segments count): a ``track`` keeps
its ``event`` name (``Order Completed``) as ``event_name``, so its timeline type is that
name; ``page`` and ``screen`` stay ``page``/``screen``. Properties of ``track``, ``page``
and ``screen`` calls, read from ``properties`` (``name`` and ``category`` also from the
call itself, as ``page``/``screen`` carry them): first the spec's own names, amounts as
numbers (``revenue``, ``total``, ``amount``, ``value``, ``price``; a numeric string counts)
and then ``currency``, ``order_id``, ``product_id``, ``category``, ``name``, ``url``,
``path``; then the call's other properties whose values are text, numbers or booleans, in
payload order (names ending in ``_id``/``Id`` keep numbers as text), until the record's
bound (:data:`~idgraph.resolver.model.MAX_EVENT_PROPERTIES`). Objects and lists (an order's
``products``) are not kept. ``identify``, ``group`` and ``alias`` carry no properties.

Region evidence besides ``traits.address.country`` (:mod:`idgraph.resolver.regions`): the
phone trait, ``context.locale`` (``en-GB``) and ``context.timezone`` (``Europe/Berlin``) of
every call; a value that is not text is ignored.

Traits are customer-defined: a trait of an unexpected type is skipped (an identifier trait
is recorded in ``rejected``) instead of failing the event. Envelope fields (``type``,
``messageId``, IDs, timestamps, ``context``) are checked strictly.
"""

from __future__ import annotations

from typing import Any

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.adapters._common import (
    RecordBuilder,
    opt_dict,
    opt_str,
    parse_time,
    property_value,
    req_str,
    split_person_name,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "segment"

_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
_IOS = frozenset({"ios", "ipados", "iphone os", "tvos"})
_ANDROID = frozenset({"android"})
#: Segment consent categories -> consent purposes.
_CONSENT_PURPOSES = {"advertising": "ads", "marketing": "marketing", "analytics": "analytics"}
#: Calls whose properties become event properties.
_PROPERTY_CALLS = frozenset({"track", "page", "screen"})
#: Spec properties read first: amounts (numbers), then text.
_AMOUNT_PROPERTIES = ("revenue", "total", "amount", "value", "price")
_TEXT_PROPERTIES = ("currency", "order_id", "product_id", "category", "name", "url", "path")


def _opt_id(payload: dict, key: str) -> str | None:
    """userId / anonymousId / previousId: a string (or a number, which some libraries send)."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidPayloadError(SOURCE, key, "not a string")
    text = str(value).strip()
    return text or None


def _email_user_id(user_id: str, norm: Normalizer) -> str | None:
    """The normalised email when ``userId`` is a valid email address, else None (a userId
    that is not one is no rejected email: it is an opaque ID)."""
    if "@" not in user_id:
        return None
    try:
        return norm.email(user_id)
    except InvalidIdentifierError:
        return None


def _trait_str(traits: dict, *keys: str) -> Any:
    """First present trait among ``keys`` (strings as-is; numbers as text; else None)."""
    for key in keys:
        value = traits.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return None
    return None


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    typ_raw = req_str(SOURCE, payload, "type", "type")
    typ = typ_raw.lower()
    if typ not in _TYPES:
        raise InvalidPayloadError(
            SOURCE, "type", f"unsupported event type; expected one of {', '.join(sorted(_TYPES))}"
        )
    message_id = req_str(SOURCE, payload, "messageId", "messageId")
    user_id = _opt_id(payload, "userId")
    anonymous_id = _opt_id(payload, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidPayloadError(SOURCE, "userId/anonymousId", "one of them is required")

    for key in ("timestamp", "receivedAt", "sentAt", "originalTimestamp"):
        stamp = opt_str(SOURCE, payload, key, key)
        if stamp is not None:
            event_time = parse_time(SOURCE, key, stamp)
            break
    else:
        raise InvalidPayloadError(SOURCE, "timestamp", "missing (and no receivedAt or sentAt)")

    context = opt_dict(SOURCE, payload, "context", "context") or {}
    b = RecordBuilder(SOURCE, norm)
    b.region_hints(context.get("locale"), context.get("timezone"))
    id_field = "userId"
    user_email = None
    if user_id is not None:
        b.namespaced("user:segment", user_id, "userId")
        user_email = _email_user_id(user_id, norm)
        if user_email is not None:
            b.add("email", user_email)
    if typ == "alias":
        previous_id = _opt_id(payload, "previousId")
        if previous_id is None:
            raise InvalidPayloadError(SOURCE, "previousId", "missing")
        if user_id is None:
            raise InvalidPayloadError(SOURCE, "userId", "missing (alias needs userId)")
        # analytics.js aliases the anonymous ID by default: that one stays a cookie.
        if previous_id != anonymous_id:
            b.namespaced("user:segment", previous_id, "previousId")
    if anonymous_id is not None:
        if user_id is None:
            id_field = "anonymousId"
        b.cookie(anonymous_id, "anonymousId")

    # Device and advertising IDs.
    device = opt_dict(SOURCE, context, "device", "context.device")
    if device is not None:
        b.device(opt_str(SOURCE, device, "id", "context.device.id"), "context.device.id")
        ad_id = opt_str(SOURCE, device, "advertisingId", "context.device.advertisingId")
        if ad_id is not None:
            os_info = opt_dict(SOURCE, context, "os", "context.os") or {}
            dtype = (opt_str(SOURCE, device, "type", "context.device.type") or "").lower()
            os_name = (opt_str(SOURCE, os_info, "name", "context.os.name") or "").lower()
            if dtype in _IOS or os_name in _IOS:
                b.advertising_id(ad_id, "idfa", "context.device.advertisingId")
            elif dtype in _ANDROID or os_name in _ANDROID:
                b.advertising_id(ad_id, "gaid", "context.device.advertisingId")
            else:
                b.reject(
                    "advertising_id",
                    "context.device.advertisingId",
                    "advertising_id: unknown device platform (neither iOS nor Android)",
                )
        tracking = device.get("adTrackingEnabled")
        if isinstance(tracking, bool):
            b.consent["ads"] = tracking

    consent_ctx = context.get("consent")
    if isinstance(consent_ctx, dict):
        prefs = consent_ctx.get("categoryPreferences")
        if isinstance(prefs, dict):
            for category, granted in prefs.items():
                purpose = _CONSENT_PURPOSES.get(str(category).lower())
                if purpose is not None and isinstance(granted, bool):
                    b.consent.setdefault(purpose, granted)

    # Traits: identify carries them at the top level; other calls in context.traits.
    ctx_traits = context.get("traits")
    traits: dict = ctx_traits if isinstance(ctx_traits, dict) else {}
    traits_field = "context.traits"
    if typ == "identify":
        top = opt_dict(SOURCE, payload, "traits", "traits")
        if top:
            traits = {**traits, **top} if traits else top
            traits_field = "traits"
    if traits:
        _apply_traits(b, norm, traits, traits_field, context)
    b.attr("email", user_email)
    if typ in _PROPERTY_CALLS:
        _event_properties(b, payload, typ)

    source_record_id = user_id if user_id is not None else anonymous_id
    return [b.build(source_record_id, message_id, event_time, typ, id_field)]  # type: ignore[arg-type]


def _event_properties(b: RecordBuilder, payload: dict, typ: str) -> None:
    """The call's event name and properties (module docstring); never fails the event."""
    if typ == "track":
        name = property_value(payload.get("event"), max_chars=b.max_property_chars)
        if isinstance(name, str):
            b.event_name = name
    props = payload.get("properties")
    props = props if isinstance(props, dict) else {}
    for key in _AMOUNT_PROPERTIES:
        b.prop(key, props.get(key), number=True)
    for key in _TEXT_PROPERTIES:
        b.prop(key, props.get(key), text=True)
        if key in ("name", "category") and typ != "track":
            b.prop(key, payload.get(key), text=True)
    for key, value in props.items():
        if (isinstance(key, str) and isinstance(value, (str, int, float, bool))
                and key not in _AMOUNT_PROPERTIES):  # an amount that is no number: dropped
            b.prop(key, value, text=key.endswith(("_id", "Id")))


def _apply_traits(
    b: RecordBuilder, norm: Normalizer, traits: dict, field: str, context: dict
) -> None:
    address = traits.get("address")
    address = address if isinstance(address, dict) else {}
    country = norm.country(_trait_str(address, "country"))
    region = country
    if region is None:
        location = context.get("location")
        if isinstance(location, dict):
            region = norm.country(_trait_str(location, "country"))
    if region is None:
        locale = context.get("locale")
        if isinstance(locale, str) and len(locale) >= 5 and locale[2] in "-_":
            region = norm.country(locale[3:5])

    raw_email = traits.get("email")
    if raw_email is not None and not isinstance(raw_email, str):
        b.reject("email", f"{field}.email", "email: not a string")
    else:
        b.attr("email", b.email(raw_email, f"{field}.email"))
    raw_phone = _trait_str(traits, "phone")
    if raw_phone is None and traits.get("phone") is not None:
        b.reject("phone", f"{field}.phone", "phone: not a string")
    b.attr("phone", b.phone(raw_phone, f"{field}.phone", region))

    given = _trait_str(traits, "firstName", "first_name")
    family = _trait_str(traits, "lastName", "last_name")
    if given is None and family is None:
        for key, value in split_person_name(norm.name(_trait_str(traits, "name"))).items():
            b.attr(key, value)
    else:
        b.name_attrs(given, None, family)

    company = traits.get("company")
    if isinstance(company, dict):
        company = company.get("name")
    b.text_attr("company", company if isinstance(company, str) else None)
    b.text_attr("job_title", _trait_str(traits, "title"))
    b.birth_date(_trait_str(traits, "birthday"))
    if address:
        b.text_attr("street", _trait_str(address, "street"))
        b.text_attr("city", _trait_str(address, "city"))
        b.text_attr("state", _trait_str(address, "state"))
        b.attr("postal_code", norm.postal_code(_trait_str(address, "postalCode", "postal_code")))
    b.attr("country", country)
