"""The ground-truth population: :class:`PeopleFactory` draws companies and people.

Everything is hand-rolled (no Faker): name pools per locale (:mod:`~idgraph.generator.names`),
street and city tables per country (:mod:`~idgraph.generator.countries`,
:mod:`~idgraph.generator.addresses`), phone numbering plans whose ranges were checked against
``phonenumbers.is_valid_number`` (:mod:`~idgraph.generator.phones`), email patterns
(:mod:`~idgraph.generator.emails`) and devices (:mod:`~idgraph.generator.devices`).

Contract: :class:`PeopleFactory` draws only from the ``random.Random`` it is given (nothing
touches the global random state), so a seed fully determines the population; the order of its
draws is part of that output. Within one factory no two people share an email address
(canonical form) or a phone number, households (``household_id``) have at most four members
who share an address, and ``make_person(i)`` returns ``person-{i:07d}``.

This module also re-exports the names it defined before the split (``COUNTRIES``, ``Phone``,
``Person``, ``canonical_email``...), so ``from idgraph.generator.people import X`` keeps
working; new code may import them from their own modules.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from idgraph.generator import addresses
from idgraph.generator.countries import (
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_CUM_WEIGHTS,
    COUNTRY_WEIGHTS,
    PERSONAL_DOMAIN_TABLES,
    City,
    Country,
    weighted_table,
)
from idgraph.generator.devices import (
    ANDROID_MODELS,
    ANDROID_VERSIONS,
    IOS_MODELS,
    IOS_VERSIONS,
    draw_devices,
)
from idgraph.generator.emails import (
    DOT_INSENSITIVE_DOMAINS,
    PLUS_TAG_DOMAINS,
    EmailRegistry,
    canonical_email,
    email_local,
    slug,
)
from idgraph.generator.ids import hex_id, uuid4_str
from idgraph.generator.model import Company, Device, Person
from idgraph.generator.names import (
    COMPANY_HEADS,
    COMPANY_SECTORS,
    COMPANY_TAILS,
    JOB_TITLES,
    MIDDLE_NAMES_EN,
    NAME_POOLS,
    NICKNAMES,
    family_name,
    promoted_title,
)
from idgraph.generator.phones import (
    INTERNATIONAL_STYLES,
    LANDLINE_COUNTRIES,
    MOBILE_PLANS,
    NATIONAL_STYLES,
    Phone,
    draw_phone,
)

__all__ = [
    "ANDROID_MODELS",
    "ANDROID_VERSIONS",
    "COUNTRIES",
    "COUNTRY_CODES",
    "COUNTRY_CUM_WEIGHTS",
    "COUNTRY_WEIGHTS",
    "DOT_INSENSITIVE_DOMAINS",
    "INTERNATIONAL_STYLES",
    "IOS_MODELS",
    "IOS_VERSIONS",
    "JOB_TITLES",
    "LANDLINE_COUNTRIES",
    "MOBILE_PLANS",
    "NAME_POOLS",
    "NATIONAL_STYLES",
    "NICKNAMES",
    "PLUS_TAG_DOMAINS",
    "City",
    "Company",
    "Country",
    "Device",
    "EmailRegistry",
    "PeopleFactory",
    "Person",
    "Phone",
    "canonical_email",
    "hex_id",
    "promoted_title",
    "slug",
    "uuid4_str",
    "weighted_table",
]


class PeopleFactory:
    """Draws companies and people from one ``random.Random``."""

    def __init__(self, rng: random.Random, registry: EmailRegistry | None = None) -> None:
        self.rng = rng
        self.registry = registry or EmailRegistry()
        self.companies: list[Company] = []
        self._company_names: set[str] = set()
        self._domains: set[str] = set()
        self._households: dict[str, list[Person]] = {}
        self._by_country: dict[str, list[Company]] = {}
        self._phones: set[str] = set()
        self._suffix: dict[tuple[str, str], int] = {}

    # ---- companies -------------------------------------------------------------------

    def make_companies(self, n: int) -> list[Company]:
        rng = self.rng
        for _ in range(n):
            country = COUNTRIES[rng.choices(COUNTRY_CODES, cum_weights=COUNTRY_CUM_WEIGHTS)[0]]
            for _attempt in range(50):
                head = rng.choice(COMPANY_HEADS)
                tail = rng.choice(COMPANY_TAILS)
                brand = head + tail
                name = f"{brand} {rng.choice(COMPANY_SECTORS)}" if rng.random() < 0.6 else brand
                if name not in self._company_names:
                    break
            else:
                name = f"{name} {len(self.companies)}"
            self._company_names.add(name)
            base = slug(name)
            if " " in name and rng.random() < 0.5:
                base = "-".join(slug(w) for w in name.split())
            tld = rng.choice(country.company_tlds)
            domain = base + tld
            k = 2
            while domain in self._domains:
                domain = f"{base}{k}{tld}"
                k += 1
            self._domains.add(domain)
            c = Company(
                name=name,
                short=brand,
                legal_suffix=rng.choice(country.legal_suffixes),
                domain=domain,
                country=country.code,
            )
            self.companies.append(c)
            self._by_country.setdefault(country.code, []).append(c)
        return self.companies

    # ---- phones ----------------------------------------------------------------------

    # ---- phones ----------------------------------------------------------------------

    def phone(self, country: str, city: City | None = None, mobile: bool = True) -> Phone:
        """A number nobody drawn by this factory has yet (see :func:`draw_phone`)."""
        while True:
            p = draw_phone(self.rng, country, city, mobile)
            if p.nsn not in self._phones:
                self._phones.add(p.nsn)
                return p

    # ---- people ----------------------------------------------------------------------

    def _pick_company(self, country: str) -> Company:
        rng = self.rng
        local = self._by_country.get(country)
        if local and rng.random() < 0.85:
            return rng.choice(local)
        return rng.choice(self.companies)

    def _unique_email(self, local: str, domain: str, person_id: str) -> str:
        email = f"{local}@{domain}"
        if self.registry.claim(email, person_id):
            return email
        base = (local, domain)
        k = self._suffix.get(base, 2)
        while True:
            email = f"{local}{k}@{domain}"
            k += 1
            if self.registry.claim(email, person_id):
                self._suffix[base] = k
                return email

    def make_person(
        self, index: int, *, household_rate: float = 0.15, prior: list[Person] | None = None
    ) -> Person:
        rng = self.rng
        pid = f"person-{index:07d}"
        head: Person | None = None
        if prior and rng.random() < household_rate:
            cand = prior[rng.randrange(len(prior))]
            hid = cand.household_id or f"household-{cand.person_id[7:]}"
            members = self._households.setdefault(hid, [cand])
            if len(members) < 4:
                head = cand
                cand.household_id = hid
        if head is not None:
            cc = COUNTRIES[head.country]
        else:
            cc = COUNTRIES[rng.choices(COUNTRY_CODES, cum_weights=COUNTRY_CUM_WEIGHTS)[0]]
        male, female, fam = NAME_POOLS[cc.name_pool]
        gender = "f" if rng.random() < 0.5 else "m"
        given = rng.choice(female if gender == "f" else male)
        if head is not None and rng.random() < 0.75:
            family = head.family_name
        else:
            family = family_name(rng, cc.code, fam)
        middle = None
        if cc.name_pool == "en" and rng.random() < 0.35:
            middle = rng.choice(MIDDLE_NAMES_EN)
        elif cc.name_pool in ("de", "fr") and rng.random() < 0.12:
            middle = rng.choice(female if gender == "f" else male)
            if middle == given:
                middle = None
        age_days = rng.randrange(19 * 365, 72 * 365)
        birth = date(2024, 1, 1) - timedelta(days=age_days)
        locale = (
            cc.locales[0] if len(cc.locales) == 1 or rng.random() < 0.8 else rng.choice(cc.locales)
        )

        city, street, city_name, state, postal = addresses.home(rng, cc, head)

        german = cc.code == "DE"
        employed = rng.random() < 0.85
        company = self._pick_company(cc.code) if employed else None
        title = rng.choice(JOB_TITLES) if company else None
        emails: list[str] = []
        work = None
        if company is not None:
            local = email_local(rng, given, family, german, False, birth.year)
            work = self._unique_email(local, company.domain, pid)
            emails.append(work)
            company.employees.append(pid)
        n_personal = 1 if rng.random() < 0.75 else 2
        if company is not None and rng.random() < 0.2:
            n_personal = 0  # only a work address
        if not emails and n_personal == 0:
            n_personal = 1
        table = PERSONAL_DOMAIN_TABLES[cc.code]
        used_domains: set[str] = set()
        for _ in range(n_personal):
            domain = rng.choice(table)
            if domain in used_domains:
                domain = "gmail.com" if "gmail.com" not in used_domains else "outlook.com"
            used_domains.add(domain)
            local = email_local(rng, given, family, german, True, birth.year)
            emails.append(self._unique_email(local, domain, pid))
        if company is None or rng.random() < 0.4:
            # personal address first for people who mostly use it
            emails.sort(key=lambda e: e == work)

        phones: list[Phone] = []
        r = rng.random()
        n_phones = 0 if r < 0.15 else (1 if r < 0.75 else 2)
        for k in range(n_phones):
            phones.append(
                self.phone(cc.code, city, mobile=(k == 0 or cc.code not in LANDLINE_COUNTRIES))
            )

        nickname = None
        nicks = NICKNAMES.get(given)
        if nicks:
            nickname = rng.choice(nicks)

        person = Person(
            person_id=pid,
            given_name=given,
            middle_name=middle,
            family_name=family,
            gender=gender,
            birth_date=birth,
            country=cc.code,
            locale=locale,
            timezone=cc.timezone,
            street=street,
            city=city_name,
            state=state,
            postal_code=postal,
            company=company,
            job_title=title,
            emails=emails,
            work_email=work,
            phones=phones,
            nickname=nickname,
        )
        if head is not None:
            person.household_id = head.household_id
            self._households[head.household_id].append(person)
        draw_devices(rng, person)
        return person

    def households(self) -> dict[str, list[Person]]:
        return self._households
