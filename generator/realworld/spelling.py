"""How records write a real person's name, work phone and addresses: the spelling traps.

Contract: :class:`Spelling` draws only from the stream's ``random.Random`` (through the
:class:`~idgraph.generator.variation.Variation` it wraps), in a fixed order that is part of
the output for a seed. Each method returns the text and the names of the traps
(:data:`~idgraph.generator.realworld.traps.TRAPS`) it put in, for the caller to tally when the
record is queued (:class:`~idgraph.generator.realworld.ledger.Marks`).

Names: nicknames (Bob, Liz, Katja, Sascha, Beppe...), typos, accents folded the German way
(``Müller`` -> ``Mueller``) or stripped (``Muller``, ``Jose``), given and family name swapped,
the given name as an initial (``J.``). Work phones: the company switchboard, alone or with
the person's extension written ``ext. 204``, ``x204``, ``Durchwahl 204`` or ``-204``.
"""

from __future__ import annotations

import unicodedata

from idgraph.generator.emails import canonical_email
from idgraph.generator.realworld.ledger import Marks
from idgraph.generator.realworld.world import Human, Org
from idgraph.generator.variation import Variation

__all__ = ["Spelling", "fold_accents"]

_GERMAN_FOLD = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)
_GMAIL = ("gmail.com", "googlemail.com")


def fold_accents(text: str, german: bool) -> str:
    """``Müller`` -> ``Mueller`` (``german``) or ``Muller``; ``José`` -> ``Jose``."""
    if german:
        text = text.translate(_GERMAN_FOLD)
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


class Spelling:
    """Names, phones and addresses as one record writes them."""

    def __init__(self, vary: Variation, typo_rate: float = 0.03) -> None:
        self.vary = vary
        self.rng = vary.rng
        self.typo_rate = typo_rate

    # ---- names -----------------------------------------------------------------------

    def name(self, h: Human, marks: Marks, nickname_rate: float = 0.25) -> tuple[str, str]:
        """(first name, last name) as a CRM record holds them."""
        rng = self.rng
        p = h.p
        given, family = p.given_name, p.family_name
        if p.nickname and rng.random() < nickname_rate:
            given = p.nickname
            marks.add("nickname")
        if rng.random() < self.typo_rate:
            if rng.random() < 0.4:
                new = self.vary.typo(given)
                changed, given = new != given, new
            else:
                new = self.vary.typo(family)
                changed, family = new != family, new
            if changed:
                marks.add("name_typo")
        if not (given + family).isascii() and rng.random() < 0.4:
            german = p.country == "DE" and rng.random() < 0.6
            given, family = fold_accents(given, german), fold_accents(family, german)
            marks.add("accent_folded")
        r = rng.random()
        if r < 0.015:
            given, family = family, given
            marks.add("name_swapped")
        elif r < 0.04:
            given = f"{given[0]}."
            marks.add("initials")
        elif r < 0.055:
            given, family = given.upper(), family.upper()
        elif r < 0.065:
            given, family = given.lower(), family.lower()
        return given, family

    def display_name(self, h: Human, marks: Marks) -> str:
        """A display name (calendar attendee, mail From): ``First Last`` or ``Last, First``."""
        given, family = self.name(h, marks, nickname_rate=0.3)
        if self.rng.random() < 0.12 and not given.endswith("."):
            return f"{family}, {given}"
        return f"{given} {family}"

    # ---- phones ----------------------------------------------------------------------

    def office_phone(
        self, h: Human, org: Org, ms: int, country_known: bool, marks: Marks
    ) -> str | None:
        """The Phone field of a work record: the switchboard (maybe with the person's
        extension), the person's own mobile, or nothing."""
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            if country_known and org.company.country == h.p.country:
                base = self.vary.phone_text(org.switchboard, True)
            else:  # a foreign employer's number is written internationally
                base = org.switchboard.format(rng.choice(("e164", "intl", "intl", "intl_dash")))
            marks.share("switchboard_phone", org.switchboard.e164, h.entity)
            ext = h.extension_at(ms)
            if ext is None or rng.random() >= 0.4:
                return base
            marks.add("phone_extension")
            style = org.ext_style
            if style == "x":
                return f"{base} x{ext}"
            if style == "durchwahl":
                return f"{base} Durchwahl {ext}" if rng.random() < 0.7 else f"{base} DW {ext}"
            if style == "dash":
                return f"{base}-{ext}"
            return f"{base} ext. {ext}" if rng.random() < 0.7 else f"{base} ext {ext}"
        mobile = next((x for x in h.p.phones if x.mobile), None)
        if r < 0.75 and mobile is not None:
            return self.vary.phone_text(mobile, country_known)
        return None

    # ---- addresses -------------------------------------------------------------------

    def email(self, email: str, marks: Marks) -> str:
        """``email`` as a record writes it (case, whitespace, Gmail dots and +tags)."""
        written = self.vary.email_variant(email)
        low = written.strip().lower()
        gmail = low.rpartition("@")[2] in _GMAIL
        if gmail and low != email.lower() and canonical_email(low) == canonical_email(email):
            marks.add("gmail_dot_plus_variant")
        return written
