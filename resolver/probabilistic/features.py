"""The matching row of a record: the columns the probabilistic model compares.

One function, :func:`match_row`, turns a record's canonical attributes and identifiers
into the row that both Splink (training, batch resolution) and the real-time scorer see,
so the two can only disagree about how they compare values, never about the values.

Columns (``None`` when absent; every text value is a matching key: case-folded, accents
stripped, punctuation dropped):

* ``given_name``, ``family_name``: name keys (``Zoë O'Brien`` -> ``zoe`` / ``obrien``);
* ``birth_date`` (``YYYY-MM-DD``) and ``birth_year``;
* ``email`` (normalised address), ``email_user`` (its local part), ``email_domain``;
* ``phone`` (E.164);
* ``company``: company key without legal-form suffixes (``ACME Inc.`` -> ``acme``);
* ``street``, ``city``, ``state``: keys; ``postal_code`` (upper case, no spaces);
  ``country`` (ISO alpha-2);
* ``national_id``: letters and digits only (a social-security or tax number, when a file
  given to ``idgraph resolve`` maps one; the event adapters never fill it).

A record with none of the person columns (names, birth date, email, phone) gets no row:
an anonymous device record has nothing a model can weigh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from resolver.normalize import Normalizer

#: Columns of a matching row, in the order Splink tables use.
COLUMNS = (
    "given_name", "family_name", "birth_date", "birth_year", "email", "email_user",
    "email_domain", "phone", "company", "street", "postal_code", "city", "state", "country",
    "national_id",
)
_PERSON_COLUMNS = ("given_name", "family_name", "birth_date", "email", "phone", "national_id")

#: Legal-form and filler words dropped from company keys.
_COMPANY_SUFFIXES = frozenset({
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "llp",
    "plc", "gmbh", "ag", "kg", "se", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "ab",
    "as", "aps", "kk", "pty", "pte", "group", "holding", "holdings", "the",
})


def company_key(raw: str | None) -> str | None:
    """Matching key of a company name: name key without legal forms (``ACME, Inc.`` -> ``acme``)."""
    if not raw:
        return None
    words = [w for w in Normalizer.name_key(raw).split() if w not in _COMPANY_SUFFIXES]
    return " ".join(words) or None


def _key(raw: str | None) -> str | None:
    if not raw:
        return None
    return Normalizer.name_key(raw) or None


def _alnum(raw: str | None) -> str | None:
    if not raw:
        return None
    return "".join(c for c in raw if c.isalnum()).upper() or None


def match_row(attributes: Mapping[str, str], identifiers: Iterable[str] = ()) -> dict | None:
    """The matching row of one record, or None when it has no person columns.

    ``attributes`` are canonical attribute values (:data:`resolver.model.CANONICAL_ATTRIBUTES`);
    ``identifiers`` are canonical ``TYPE:VALUE`` keys, used for the email and phone when the
    attributes name none.
    """
    get = attributes.get
    email = get("email")
    phone = get("phone")
    if email is None or phone is None:
        for ident in identifiers:
            if email is None and ident.startswith("email:"):
                email = ident[6:]
            elif phone is None and ident.startswith("phone:"):
                phone = ident[6:]
    user = domain = None
    if email:
        user, _, domain = email.partition("@")
    postal = get("postal_code")
    row = {
        "given_name": _key(get("given_name")),
        "family_name": _key(get("family_name")),
        "birth_date": get("birth_date") or None,
        "birth_year": get("birth_year") or None,
        "email": email or None,
        "email_user": user or None,
        "email_domain": domain or None,
        "phone": phone or None,
        "company": company_key(get("company")),
        "street": _key(get("street")),
        "postal_code": postal.replace(" ", "").upper() if postal else None,
        "city": _key(get("city")),
        "state": _key(get("state")),
        "country": get("country") or None,
        "national_id": _alnum(get("national_id")),
    }
    if not any(row[c] for c in _PERSON_COLUMNS):
        return None
    return row
