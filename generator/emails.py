"""People's true email addresses: canonical form, one owner per mailbox, local-part patterns.

Contract: :func:`canonical_email` mirrors ``resolver.normalize.Normalizer.email`` under the
default settings (the form record keys use when no normaliser is given); an
:class:`EmailRegistry` hands each canonical address to one person only, so no two people of a
dataset ever share a mailbox; :func:`email_local` draws a local part from the
``random.Random`` it is given (the number and order of draws is part of the output for a seed).

How source systems then misspell these addresses is :mod:`idgraph.generator.variation`.
"""

from __future__ import annotations

import random
import unicodedata

__all__ = [
    "DOT_INSENSITIVE_DOMAINS",
    "PLUS_TAG_DOMAINS",
    "EmailRegistry",
    "canonical_email",
    "email_local",
    "slug",
]

#: Personal-mail domains treated specially by the default normaliser settings.
DOT_INSENSITIVE_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
PLUS_TAG_DOMAINS = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "icloud.com", "fastmail.com"}
)

_GERMAN_FOLD = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)
_SLUG_CACHE: dict[tuple[str, bool], str] = {}


def slug(text: str, german: bool = False) -> str:
    """ASCII letters/digits of ``text`` in lower case ("Müller" -> "muller"/"mueller")."""
    key = (text, german)
    out = _SLUG_CACHE.get(key)
    if out is None:
        t = text.translate(_GERMAN_FOLD) if german else text.replace("ß", "ss")
        t = unicodedata.normalize("NFKD", t)
        out = "".join(ch for ch in t.lower() if ch.isascii() and ch.isalnum())
        _SLUG_CACHE[key] = out
    return out


def canonical_email(raw: str) -> str:
    """The normalised form under the default settings (what record keys use).

    Mirrors ``resolver.normalize.Normalizer.email`` with default settings: trim, lower-case,
    ``googlemail.com`` -> ``gmail.com``, drop ``+tag`` on plus-tag domains and dots on
    Gmail. Used only when no normaliser is passed to :func:`idgraph.generator.generate`.
    """
    e = raw.strip().lower()
    local, _, domain = e.rpartition("@")
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain in PLUS_TAG_DOMAINS and "+" in local:
        local = local.split("+", 1)[0]
    if domain in DOT_INSENSITIVE_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


class EmailRegistry:
    """Canonical email -> owner, so no two people ever share a mailbox."""

    def __init__(self, canon=canonical_email) -> None:
        self.owner: dict[str, str] = {}
        self.canon = canon

    def claim(self, email: str, person_id: str) -> bool:
        key = self.canon(email)
        cur = self.owner.get(key)
        if cur is None:
            self.owner[key] = person_id
            return True
        return cur == person_id


def email_local(
    rng: random.Random, given: str, family: str, german: bool, personal: bool, birth_year: int
) -> str:
    """A local part for ``given family``: work addresses follow company patterns
    (``first.last``, ``flast``...), personal ones add years, numbers and hobbies."""
    f = slug(given.split()[0], german)
    fam = family.split()[-1] if " " in family and not family[0].islower() else family
    if family.split()[0] in ("van", "de", "van der", "van den"):
        fam = family  # Dutch: "dejong", "vandenberg"
    if " " in family and family.split()[0][0].isupper():
        fam = family.split()[0]  # Spanish double surname: first one
    la = slug(fam, german) or "x"
    f = f or "x"
    if not personal:
        pattern = rng.random()
        if pattern < 0.55:
            return f"{f}.{la}"
        if pattern < 0.75:
            return f"{f[0]}{la}"
        if pattern < 0.85:
            return f"{f}"
        if pattern < 0.93:
            return f"{f}{la}"
        return f"{f}_{la}"
    pattern = rng.random()
    yy = f"{birth_year % 100:02d}"
    if pattern < 0.3:
        return f"{f}.{la}"
    if pattern < 0.45:
        return f"{f}{la}"
    if pattern < 0.6:
        return f"{f}.{la}{yy}"
    if pattern < 0.72:
        return f"{f}{la}{rng.randrange(1, 100)}"
    if pattern < 0.8:
        return f"{f[0]}{la}{rng.randrange(1, 1000)}"
    if pattern < 0.88:
        return f"{la}.{f}"
    if pattern < 0.94:
        return f"{f}_{la}{birth_year}"
    return f"{f}{rng.choice(('', '.', '_'))}{rng.choice(('music', 'runner', 'travel', 'dev', 'photo', 'chef'))}{rng.randrange(1, 100)}"
