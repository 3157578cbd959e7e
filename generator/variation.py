"""How source systems write a person's data: spelling variants, typos and placeholder junk.

Contract: a :class:`Variation` turns a :class:`~idgraph.generator.model.Person`'s true values
into what one record of a source holds: names with nicknames, case changes and typos; the same
mailbox in another case, with whitespace, Gmail dots or ``+tags``; now and then a genuinely
different address one letter off (:meth:`Variation.email_typo`: claimed in the dataset's
:class:`~idgraph.generator.emails.EmailRegistry`, so it never belongs to anyone else, and
remembered in ``typo_emails`` for the mailing lists) or the placeholder :data:`JUNK_EMAIL`;
phone numbers in national and international styles (international whenever the record gives
no country to parse a national number with); company and country name variants. It draws from
the stream's ``random.Random`` only, in a fixed order that is part of the output for a seed.
"""

from __future__ import annotations

from idgraph.generator.emails import EmailRegistry, canonical_email
from idgraph.generator.events import EventStream
from idgraph.generator.model import Company, Person
from idgraph.generator.phones import Phone

__all__ = ["JUNK_EMAIL", "Variation", "email_caps"]

#: The placeholder address some records carry instead of a real one; it must link nothing.
JUNK_EMAIL = "test@test.com"

_COUNTRY_VARIANTS: dict[str, tuple[str, ...]] = {
    "US": (
        "United States",
        "United States",
        "United States",
        "USA",
        "US",
        "United States of America",
    ),
    "CA": ("Canada", "Canada", "Canada", "CA"),
    "GB": ("United Kingdom", "United Kingdom", "United Kingdom", "UK", "GB"),
    "DE": ("Germany", "Germany", "Germany", "DE", "Deutschland"),
    "FR": ("France", "France", "France", "FR"),
    "ES": ("Spain", "Spain", "Spain", "ES", "España"),
    "NL": ("Netherlands", "Netherlands", "Netherlands", "NL", "The Netherlands", "Nederland"),
    "JP": ("Japan", "Japan", "Japan", "JP"),
    "AU": ("Australia", "Australia", "Australia", "AU"),
    "SG": ("Singapore", "Singapore", "Singapore", "SG"),
}

_PHONE_STYLES_KNOWN = (
    "e164",
    "e164",
    "intl",
    "intl",
    "intl",
    "national",
    "national",
    "national",
    "national",
    "national_dash",
    "national_compact",
    "intl_dash",
    "intl_trunk",
)
_PHONE_STYLES_US = _PHONE_STYLES_KNOWN + ("national_dot",)
_PHONE_STYLES_UNKNOWN = ("e164", "e164", "intl", "intl", "intl_dash")

_DOMAIN_TYPOS = {
    "gmail.com": ("gmial.com", "gmai.com", "gmail.co", "gnail.com"),
    "yahoo.com": ("yaho.com", "yahooo.com"),
    "hotmail.com": ("hotmial.com", "hotmai.com"),
    "outlook.com": ("outlok.com", "outloo.com"),
    "icloud.com": ("iclod.com",),
    "web.de": ("wbe.de",),
    "gmx.de": ("gmx.com",),
}
_PLUS_TAGS = ("crm", "news", "shop", "sf", "hubspot", "work", "promo", "spam", "2024")


class Variation:
    """Source-side variants of people's values, drawn from ``stream.rng``."""

    def __init__(
        self, stream: EventStream, registry: EmailRegistry, typo_rate: float, junk_rate: float
    ) -> None:
        self.rng = stream.rng
        self.ri = stream.ri
        self.registry = registry
        self.typo_rate = typo_rate
        self.junk_rate = junk_rate
        self.typo_emails: dict[str, list[str]] = {}  # person id -> typo'd addresses seen

    # ---- names, emails, phones, companies, countries ----------------------------------

    def typo(self, s: str) -> str:
        """Swap, drop or duplicate one inner letter."""
        rng = self.rng
        if len(s) < 4:
            return s
        i = self.ri(1, len(s) - 1)
        r = rng.random()
        if r < 0.4 and s[i].isalpha() and s[i + 1].isalpha():
            return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        if r < 0.7 and s[i].isalpha():
            return s[:i] + s[i + 1 :]
        return s[:i] + s[i] + s[i:]

    def name_variant(self, p: Person, given: bool) -> str:
        rng = self.rng
        if given:
            name = p.given_name
            if p.nickname and rng.random() < 0.1:
                name = p.nickname
        else:
            name = p.family_name
        if rng.random() < self.typo_rate:
            name = self.typo(name)
        r = rng.random()
        if r < 0.02:
            name = name.lower()
        elif r < 0.035:
            name = name.upper()
        return name

    def email_variant(self, email: str) -> str:
        """The same mailbox written differently (case, whitespace, Gmail dots, +tags)."""
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            return email
        local, _, domain = email.partition("@")
        if r < 0.72:
            parts = local.replace("_", ".").split(".")
            if len(parts) > 1 and "_" not in local:
                local = ".".join(x.capitalize() for x in parts)
            else:
                local = local.capitalize()
            return f"{local}@{domain.capitalize()}"
        if r < 0.76:
            return email.upper()
        if r < 0.82:
            return rng.choice(("  ", " ", "")) + email + rng.choice((" ", "  ", "\t"))
        if domain == "gmail.com":
            if rng.random() < 0.5:
                if "." in local:
                    local = local.replace(".", "")
                elif len(local) > 3:
                    i = self.ri(1, len(local) - 1)
                    local = local[:i] + "." + local[i:]
            else:
                local = f"{local}+{rng.choice(_PLUS_TAGS)}"
            if rng.random() < 0.15:
                domain = "googlemail.com"
            return f"{local}@{domain}"
        if domain in ("outlook.com", "hotmail.com", "icloud.com"):
            return f"{local}+{rng.choice(_PLUS_TAGS)}@{domain}"
        return email

    def email_typo(self, p: Person, email: str) -> str | None:
        """A genuinely different address (one letter off) that nobody else owns."""
        rng = self.rng
        local, _, domain = email.partition("@")
        for _ in range(4):
            if domain in _DOMAIN_TYPOS and rng.random() < 0.35:
                cand = f"{local}@{rng.choice(_DOMAIN_TYPOS[domain])}"
            else:
                idx = [i for i, ch in enumerate(local) if ch.isalpha()]
                if len(idx) < 3:
                    return None
                i = rng.choice(idx[1:])
                r = rng.random()
                if r < 0.4 and i + 1 < len(local) and local[i + 1].isalpha():
                    new = local[:i] + local[i + 1] + local[i] + local[i + 2 :]
                elif r < 0.7:
                    new = local[:i] + local[i + 1 :]
                else:
                    new = local[:i] + local[i] + local[i:]
                cand = f"{new}@{domain}"
            cand_key = canonical_email(cand)
            if cand_key == canonical_email(email) or any(
                canonical_email(e) == cand_key for e in p.emails
            ):
                continue
            if self.registry.claim(cand, p.person_id):
                self.typo_emails.setdefault(p.person_id, []).append(cand)
                return cand
        return None

    def crm_email(self, p: Person, prefer_work: float) -> str:
        rng = self.rng
        if rng.random() < self.junk_rate:
            return JUNK_EMAIL
        if p.work_email and rng.random() < prefer_work:
            email = p.work_email
        else:
            personal = p.personal_emails
            email = rng.choice(personal) if personal else p.emails[0]
        if rng.random() < self.typo_rate / 3:
            typo = self.email_typo(p, email)
            if typo is not None:
                return typo
        return self.email_variant(email)

    def phone_text(self, phone: Phone, country_known: bool) -> str:
        rng = self.rng
        if not country_known and phone.country not in ("US",):
            style = rng.choice(_PHONE_STYLES_UNKNOWN)
        elif phone.country in ("US", "CA"):
            style = rng.choice(_PHONE_STYLES_US)
        else:
            style = rng.choice(_PHONE_STYLES_KNOWN)
        return phone.format(style)

    def company_variant(self, c: Company) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return c.legal_name
        if r < 0.65:
            return c.name
        if r < 0.72:
            return c.name.upper()
        if r < 0.85:
            return c.short
        if r < 0.95:
            return f"{c.name} {c.legal_suffix.rstrip('.').replace(',', '')}"
        return c.name.lower()

    def country_text(self, code: str) -> str:
        return self.rng.choice(_COUNTRY_VARIANTS[code])

    # ---- run --------------------------------------------------------------------------

    # ---- CRM fields -------------------------------------------------------------------

    def address_fields(self, p: Person, presence: float) -> tuple[dict, bool]:
        """(street/city/state/postal/country values or None, whether country is given)."""
        rng = self.rng
        if rng.random() < presence:
            return {
                "street": p.street if rng.random() < 0.9 else None,
                "city": p.city,
                "state": p.state if rng.random() < 0.8 else None,
                "postal": p.postal_code,
                "country": self.country_text(p.country),
            }, True
        if rng.random() < 0.4:
            return {
                "street": None,
                "city": None,
                "state": None,
                "postal": None,
                "country": self.country_text(p.country),
            }, True
        return {"street": None, "city": None, "state": None, "postal": None, "country": None}, False

    def phone_fields(self, p: Person, country_known: bool) -> tuple[str | None, str | None]:
        """(Phone, MobilePhone) field values."""
        rng = self.rng
        mobile = next((x for x in p.phones if x.mobile), None)
        landline = next((x for x in p.phones if not x.mobile), None)
        office = landline or (p.phones[1] if len(p.phones) > 1 else None)
        phone = mob = None
        if mobile is not None and rng.random() < 0.7:
            mob = self.phone_text(mobile, country_known)
        if office is not None and rng.random() < 0.8:
            phone = self.phone_text(office, country_known)
        elif mobile is not None and mob is None and rng.random() < 0.6:
            phone = self.phone_text(mobile, country_known)
        return phone, mob


def email_caps(email: str) -> str:
    """``email`` with the first letter of its local part upper-cased."""
    local, _, domain = email.partition("@")
    return f"{local[:1].upper()}{local[1:]}@{domain}"
