"""The real-world population: people, their employers and households, and the shared things
they use (switchboards, role and household mailboxes, meeting rooms, NAT IPs, devices).

Contract: :func:`build_world` draws only from the stream's ``random.Random``, in a fixed order
that is part of the output for a seed. Entity IDs: ``person-NNNNNN`` (``NNNNNN`` is the
index in :attr:`World.humans`; also the ``Person.person_id``), ``mailbox-NNNNNN`` and
``room-NNNNNN`` in creation order. Every address anyone owns is claimed once in
:attr:`World.registry` (canonical form -> entity ID), so :meth:`World.owner` answers who a
record about an address belongs to: the person, or the shared mailbox or room itself.

Deliberately present (see :mod:`~idgraph.generator.realworld.traps`): companies with a
switchboard number and extensions, role mailboxes in the company's language and rooms (Google
resources or plain user accounts), households with a landline and sometimes a household
mailbox, same-name colleagues at one company, namesakes whose non-Gmail addresses differ by a
dot, job changes, out-of-office periods, family tablets, browsers shared without ``reset()``,
all-zero advertising IDs and legacy apps that use the email address as the user ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import phonenumbers

from idgraph.generator import addresses
from idgraph.generator.countries import (
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_CUM_WEIGHTS,
    PERSONAL_DOMAIN_TABLES,
    City,
)
from idgraph.generator.devices import draw_devices, draw_ip, share_household_devices
from idgraph.generator.emails import DOT_INSENSITIVE_DOMAINS, EmailRegistry, email_local, slug
from idgraph.generator.events import DAY_MS, EventStream
from idgraph.generator.ids import hex_id
from idgraph.generator.model import Company, Device, Person
from idgraph.generator.names import (
    JOB_TITLES,
    MIDDLE_NAMES_EN,
    NAME_POOLS,
    NICKNAMES,
    family_name,
    promoted_title,
)
from idgraph.generator.people import PeopleFactory
from idgraph.generator.phones import Phone

__all__ = [
    "NICKNAMES_REAL",
    "Household",
    "Human",
    "JobChange",
    "Mailbox",
    "Org",
    "Room",
    "World",
    "build_world",
]

#: Formal given name -> nicknames (the generic table plus the pairs real data is full of).
NICKNAMES_REAL: dict[str, tuple[str, ...]] = {
    **NICKNAMES,
    "Robert": ("Bob", "Rob", "Bobby"),
    "William": ("Bill", "Will"),
    "Elizabeth": ("Liz", "Beth"),
    "Katharina": ("Katja", "Kathi"),
    "Alexander": ("Sasha", "Alex"),
    "Giuseppe": ("Beppe", "Peppe"),
    "Johannes": ("Hannes", "Hans"),
}
_NICKNAMES_BY_POOL = {("de", "Alexander"): ("Sascha", "Alex")}

#: Given names drawn more often than the pools would, so nicknames and accents show up.
_TRAP_GIVEN: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("Robert", "m"), ("William", "m"), ("Elizabeth", "f"), ("Alexander", "m")),
    "de": (("Katharina", "f"), ("Alexander", "m"), ("Johannes", "m")),
    "es": (("José", "m"), ("María", "f")),
    "fr": (("François", "m"), ("Hélène", "f")),
}
_ITALIAN_FAMILY = ("Russo", "Esposito", "Romano", "Colombo", "Ricci", "Bianchi")

#: Role/team mailbox local parts in the company's language (the first is the most common).
_ROLE_LOCALS: dict[str, tuple[str, ...]] = {
    "en": ("info", "sales", "support", "hello", "team", "office", "contact", "accounts"),
    "de": ("info", "kontakt", "vertrieb", "office", "team", "buchhaltung"),
    "fr": ("contact", "info", "bureau", "commercial", "equipe"),
    "es": ("info", "ventas", "contacto", "oficina", "equipo"),
    "nl": ("info", "verkoop", "kantoor", "team"),
    "ja": ("info", "sales", "support"),
    "sg": ("sales", "enquiries", "info", "hello"),
}
#: Household mailbox patterns ({f}: the family name as a mail local part, {fs}: its plural).
_HOUSEHOLD_LOCALS: dict[str, tuple[str, ...]] = {
    "en": ("the{fs}", "{f}family", "the{f}family"),
    "de": ("familie.{f}", "fam.{f}", "familie{f}"),
    "fr": ("famille.{f}", "famille{f}"),
    "es": ("familia.{f}", "familia{f}"),
    "nl": ("fam.{f}", "familie{f}"),
    "ja": ("{f}family", "{f}.family"),
    "sg": ("{f}family", "the{f}family"),
}
_PLURAL_ES = ("s", "x", "z", "ch", "sh")
#: Fixed-line ranges (leading digits, further digits, display groups) for the countries whose
#: plan in :mod:`idgraph.generator.phones` has mobiles only: switchboards and home landlines.
#: Every draw is checked with ``phonenumbers.is_valid_number``.
_FIXED_LINES: dict[str, tuple[tuple[tuple[str, ...], int, tuple[int, ...]], ...]] = {
    "GB": ((("203", "207", "208"), 7, (2, 4, 4)), (("161",), 7, (3, 3, 4))),
    "ES": ((("91", "93", "95", "96"), 7, (3, 3, 3)),),
    "NL": ((("10", "20", "30", "40"), 7, (2, 3, 4)),),
    "AU": ((("28", "29", "38", "39", "73"), 7, (1, 4, 4)),),
    "SG": ((("6",), 7, (4, 4)),),
}
_ROOM_NAMES = ("Everest", "Kilimanjaro", "Fuji", "Matterhorn", "Denali", "Elbrus", "Olympus",
               "Aconcagua", "Mont Blanc", "Zugspitze", "Table Mountain", "Ben Nevis")
#: Rooms set up as plain user accounts: (local part, display name) per language.
_ROOM_ACCOUNTS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("boardroom", "Boardroom"), ("meetingroom", "Meeting Room"),
           ("conference.room", "Conference Room 1")),
    "de": (("besprechungsraum", "Besprechungsraum 2. OG"), ("konferenzraum", "Konferenzraum")),
    "fr": (("salle.reunion", "Salle de réunion"),),
    "es": (("sala.reuniones", "Sala de reuniones"),),
    "nl": (("vergaderruimte", "Vergaderruimte"),),
    "ja": (("kaigishitsu", "Kaigishitsu A"),),
    "sg": (("meetingroom", "Meeting Room"),),
}


@dataclass(slots=True, eq=False)
class Mailbox:
    """A mailbox several people read: a role/team address or a household address."""

    entity_id: str
    address: str
    kind: str  # "role" | "household"
    readers: list[Human] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Room:
    """A meeting room: a Google resource, or a plain user account used as one."""

    entity_id: str
    address: str
    name: str
    resource: bool


@dataclass(slots=True, eq=False)
class Org:
    """An employer with its shared things."""

    company: Company
    city: City
    switchboard: Phone
    ext_style: str  # "ext" | "x" | "durchwahl" | "dash": how its people write extensions
    nat_ip: str  # the office's public IP (every employee's office traffic)
    google_mail: bool  # Google Workspace: opens of work mail go through GoogleImageProxy
    roles: list[Mailbox] = field(default_factory=list)
    rooms: list[Room] = field(default_factory=list)
    staff: list[Human] = field(default_factory=list)  # everyone who ever worked there
    extensions: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Household:
    household_id: str
    members: list[Human]
    landline: Phone | None = None
    mailbox: Mailbox | None = None


@dataclass(slots=True, eq=False)
class JobChange:
    at: int  # ms: the first day at the new employer
    org: Org
    work_email: str
    title: str
    bounce_at: int  # ms: the old work address bounces from then on
    extension: str


@dataclass(slots=True, eq=False)
class Human:
    """A person (the ground truth) and what real life adds to the :class:`Person` values."""

    p: Person
    org: Org | None  # the employer at the start of the window
    extension: str | None  # own extension at the switchboard
    household: Household | None = None
    job: JobChange | None = None
    away: tuple[int, int] | None = None  # an out-of-office period (ms)
    cover: Human | None = None  # the colleague an out-of-office reply names
    apple_mail: bool = False  # reads mail in Apple Mail with Privacy Protection
    legacy_user_id: bool = False  # the app's userId is the email address
    home_ip: str = ""

    @property
    def entity(self) -> str:
        return self.p.person_id

    def org_at(self, ms: int) -> Org | None:
        return self.job.org if self.job is not None and ms >= self.job.at else self.org

    def work_email_at(self, ms: int) -> str | None:
        return self.job.work_email if self.job is not None and ms >= self.job.at else (
            self.p.work_email
        )

    def title_at(self, ms: int) -> str | None:
        return self.job.title if self.job is not None and ms >= self.job.at else self.p.job_title

    def extension_at(self, ms: int) -> str | None:
        return self.job.extension if self.job is not None and ms >= self.job.at else (
            self.extension
        )

    @property
    def personal_emails(self) -> list[str]:
        return self.p.personal_emails


@dataclass(slots=True, eq=False)
class World:
    humans: list[Human]
    orgs: list[Org]
    households: list[Household]
    mailboxes: list[Mailbox]
    rooms: list[Room]
    registry: EmailRegistry
    carrier_ips: dict[str, list[str]]  # country -> carrier-grade NAT addresses
    no_reset: list[tuple[Device, Human, Human]]  # browser, its owner, the second user

    def owner(self, email: str) -> str:
        """The entity an address belongs to (KeyError: nobody's)."""
        return self.registry.owner[self.registry.canon(email)]

    def entities(self) -> dict[str, str]:
        out = {h.entity: "person" for h in self.humans}
        out.update((m.entity_id, "shared_mailbox") for m in self.mailboxes)
        out.update((r.entity_id, "room") for r in self.rooms)
        return out

    def human(self, entity: str) -> Human:
        return self.humans[int(entity.rsplit("-", 1)[1])]


def build_world(stream: EventStream, n_people: int) -> World:
    """Draw the population: companies, people, households, app accounts, careers."""
    return _Builder(stream).build(n_people)


class _Builder:
    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.rng = stream.rng
        self.registry = EmailRegistry()
        self.factory = PeopleFactory(self.rng, self.registry)
        self.orgs: list[Org] = []
        self.by_country: dict[str, list[Org]] = {}
        self.humans: list[Human] = []
        self.households: list[Household] = []
        self.mailboxes: list[Mailbox] = []
        self.rooms: list[Room] = []
        self.employed: list[Human] = []  # candidates for a same-name colleague
        self.dotted: list[tuple[Human, str]] = []  # dotted non-Gmail personal addresses
        self.suffix: dict[tuple[str, str], int] = {}
        self.no_reset: list[tuple[Device, Human, Human]] = []
        self.fixed: set[str] = set()  # fixed-line numbers drawn here

    # ---- helpers ---------------------------------------------------------------------

    def claim(self, local: str, domain: str, owner: str) -> str:
        """``local@domain``, or with the first free number appended."""
        email = f"{local}@{domain}"
        if self.registry.claim(email, owner):
            return email
        k = self.suffix.get((local, domain), 2)
        while not self.registry.claim(f"{local}{k}@{domain}", owner):
            k += 1
        self.suffix[(local, domain)] = k + 1
        return f"{local}{k}@{domain}"

    def mailbox(self, local: str, domain: str, kind: str) -> Mailbox:
        mid = f"mailbox-{len(self.mailboxes):06d}"
        mb = Mailbox(mid, self.claim(local, domain, mid), kind)
        self.mailboxes.append(mb)
        return mb

    def room(self, org: Org, plain: bool) -> Room:
        rng = self.rng
        rid = f"room-{len(self.rooms):06d}"
        pool = COUNTRIES[org.company.country].name_pool
        if plain:
            local, name = rng.choice(_ROOM_ACCOUNTS[pool])
            address = self.claim(local, org.company.domain, rid)
        else:
            name = (
                f"{org.city.name}-{self.stream.ri(1, 9)}-{rng.choice(_ROOM_NAMES)} "
                f"({rng.choice((4, 6, 8, 12))})"
            )
            address = f"c_188{hex_id(rng, 20)}@resource.calendar.google.com"
            self.registry.claim(address, rid)
        r = Room(rid, address, name, resource=not plain)
        self.rooms.append(r)
        return r

    def landline(self, country: str, city: City) -> Phone:
        """A fixed-line number nobody has yet (a switchboard, a home or own landline)."""
        plans = _FIXED_LINES.get(country)
        if plans is None:  # US/CA area codes, DE/FR/JP landline plans
            return self.factory.phone(country, city, mobile=False)
        rng = self.rng
        code = COUNTRIES[country].calling_code
        while True:
            leads, further, groups = rng.choice(plans)
            nsn = rng.choice(leads) + f"{rng.randrange(10**further):0{further}d}"
            if nsn in self.fixed or nsn.startswith("2079460"):  # 020 7946 0xxx: drama range
                continue
            if phonenumbers.is_valid_number(phonenumbers.parse(f"+{code}{nsn}")):
                self.fixed.add(nsn)
                return Phone(country, nsn, groups, mobile=False)

    def extension(self, org: Org) -> str:
        while True:
            ext = str(self.stream.ri(100, 900))
            if ext not in org.extensions:
                org.extensions.add(ext)
                return ext

    # ---- build -----------------------------------------------------------------------

    def build(self, n_people: int) -> World:
        for c in self.factory.make_companies(max(3, n_people // 14)):
            self._org(c)
        for i in range(n_people):
            self.humans.append(self._human(i))
        self._households()
        self._apps()
        self._careers()
        carrier: dict[str, list[str]] = {}
        ri = self.stream.ri
        for code in COUNTRY_CODES:
            carrier[code] = [
                f"100.{ri(64, 128)}.{ri(256)}.{ri(1, 255)}" for _ in range(max(2, n_people // 150))
            ]
        return World(
            humans=self.humans,
            orgs=self.orgs,
            households=self.households,
            mailboxes=self.mailboxes,
            rooms=self.rooms,
            registry=self.registry,
            carrier_ips=carrier,
            no_reset=self.no_reset,
        )

    def _org(self, c: Company) -> None:
        rng = self.rng
        cc = COUNTRIES[c.country]
        city = rng.choice(cc.cities)
        styles = ("durchwahl", "dash", "ext") if c.country == "DE" else ("ext", "ext", "x")
        org = Org(
            company=c,
            city=city,
            switchboard=self.landline(c.country, city),
            ext_style=rng.choice(styles),
            nat_ip=draw_ip(rng),
            google_mail=rng.random() < 0.45,
        )
        locals_ = _ROLE_LOCALS[cc.name_pool]
        k = min(len(locals_), 1 + (rng.random() < 0.6) + (rng.random() < 0.3))
        for local in [locals_[0], *rng.sample(locals_[1:], k - 1)]:
            org.roles.append(self.mailbox(local, c.domain, "role"))
        plain = rng.random() < 0.25
        for _ in range(rng.choice((0, 1, 2, 2, 3))):
            org.rooms.append(self.room(org, plain))
        self.orgs.append(org)
        self.by_country.setdefault(c.country, []).append(org)

    def _pick_org(self, country: str, avoid: Org | None = None) -> Org:
        rng = self.rng
        local = [o for o in self.by_country.get(country, ()) if o is not avoid]
        if local and rng.random() < 0.85:
            return rng.choice(local)
        while True:
            org = rng.choice(self.orgs)
            if org is not avoid:
                return org

    def _human(self, i: int) -> Human:
        rng = self.rng
        eid = f"person-{i:06d}"
        head: Human | None = None
        if self.humans and rng.random() < 0.17:
            cand = self.humans[rng.randrange(len(self.humans))]
            if cand.household is None or len(cand.household.members) < 4:
                head = cand
        twin: Human | None = None  # same full name, same company
        namesake: tuple[Human, str] | None = None  # same name, dot-variant personal address
        if head is None:
            r = rng.random()
            if r < 0.016 and self.employed:
                twin = rng.choice(self.employed)
            elif r < 0.028 and self.dotted:
                namesake = rng.choice(self.dotted)
        model = head or twin or (namesake[0] if namesake else None)
        if model is not None:
            cc = COUNTRIES[model.p.country]
        else:
            cc = COUNTRIES[rng.choices(COUNTRY_CODES, cum_weights=COUNTRY_CUM_WEIGHTS)[0]]
        pool = cc.name_pool
        male, female, fam = NAME_POOLS[pool]

        same = twin or (namesake[0] if namesake else None)
        if same is not None:
            given, family, gender = same.p.given_name, same.p.family_name, same.p.gender
        else:
            gender = "f" if rng.random() < 0.5 else "m"
            given = rng.choice(female if gender == "f" else male)
            family = ""
            r = rng.random()
            if r < 0.004:
                given, gender, family = "Giuseppe", "m", rng.choice(_ITALIAN_FAMILY)
            elif r < 0.07 and pool in _TRAP_GIVEN:
                given, gender = rng.choice(_TRAP_GIVEN[pool])
            if not family:
                if head is not None and rng.random() < 0.75:
                    family = head.p.family_name
                elif pool == "de" and rng.random() < 0.07:
                    family = "Müller"
                else:
                    family = family_name(rng, cc.code, fam)
        middle = None
        if pool == "en" and rng.random() < 0.3:
            middle = rng.choice(MIDDLE_NAMES_EN)
        birth = date(2024, 1, 1) - timedelta(days=self.stream.ri(19 * 365, 72 * 365))
        locale = cc.locales[0] if len(cc.locales) == 1 or rng.random() < 0.8 else (
            rng.choice(cc.locales)
        )
        city, street, city_name, state, postal = addresses.home(
            rng, cc, head.p if head is not None else None
        )

        german = cc.code == "DE"
        org: Org | None = None
        if twin is not None:
            org = twin.org
        elif rng.random() < 0.85:
            org = self._pick_org(cc.code)
        work = None
        emails: list[str] = []
        if org is not None:
            if twin is not None:
                local = self._twin_local(twin, given, family, german)
            else:
                local = email_local(rng, given, family, german, False, birth.year)
            work = self.claim(local, org.company.domain, eid)
            emails.append(work)
        n_personal = 1 if rng.random() < 0.75 else 2
        if org is not None and rng.random() < 0.18:
            n_personal = 0
        if namesake is not None or org is None:
            n_personal = max(1, n_personal)
        table = PERSONAL_DOMAIN_TABLES[cc.code]
        for k in range(n_personal):
            if k == 0 and namesake is not None:
                local, _, domain = namesake[1].partition("@")
                variant = f"{local.replace('.', '')}@{domain}"
                if self.registry.claim(variant, eid):
                    emails.append(variant)
                    continue
            domain = rng.choice(table)
            local = email_local(rng, given, family, german, True, birth.year)
            emails.append(self.claim(local, domain, eid))
        if org is None or rng.random() < 0.4:
            emails.sort(key=lambda e: e == work)

        phones: list[Phone] = []
        if rng.random() < 0.88:
            phones.append(self.factory.phone(cc.code, city, mobile=True))
        if rng.random() < 0.2:
            phones.append(self.landline(cc.code, city))
        nicks = _NICKNAMES_BY_POOL.get((pool, given)) or NICKNAMES_REAL.get(given)
        p = Person(
            person_id=eid,
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
            company=org.company if org is not None else None,
            job_title=rng.choice(JOB_TITLES) if org is not None else None,
            emails=emails,
            work_email=work,
            phones=phones,
            # the best-known short form mostly (Bob, Bill, Liz, Katja, Sasha, Beppe)
            nickname=(nicks[0] if rng.random() < 0.7 else rng.choice(nicks)) if nicks else None,
        )
        draw_devices(rng, p)
        h = Human(p=p, org=org, extension=self.extension(org) if org is not None else None)
        h.home_ip = p.devices[0].ip if p.devices else draw_ip(rng)
        if org is not None:
            org.staff.append(h)
            org.company.employees.append(eid)
            self.employed.append(h)
        if head is not None:
            hh = head.household
            if hh is None:
                hh = Household(f"household-{head.entity[7:]}", [head])
                head.household = hh
                head.p.household_id = hh.household_id
                self.households.append(hh)
            hh.members.append(h)
            h.household = hh
            p.household_id = hh.household_id
        for e in p.personal_emails:
            local, _, domain = e.partition("@")
            if "." in local and domain not in DOT_INSENSITIVE_DOMAINS:
                self.dotted.append((h, e))
        return h

    def _twin_local(self, twin: Human, given: str, family: str, german: bool) -> str:
        """A same-name colleague's local part: the other one's without (or with) its dot, a
        number appended, or initial + family name."""
        rng = self.rng
        assert twin.p.work_email is not None
        other = twin.p.work_email.partition("@")[0]
        f = slug(given.split()[0], german) or "x"
        last = slug(family.split()[0] if family[0].isupper() else family, german) or "x"
        r = rng.random()
        if "." in other and r < 0.55:
            return other.replace(".", "")
        if "." not in other and other == f"{f}{last}" and r < 0.55:
            return f"{f}.{last}"
        return rng.choice((f"{other}2", f"{f[0]}{last}", f"{f}.{last}2"))

    def _households(self) -> None:
        rng = self.rng
        for hh in self.households:
            head = hh.members[0].p
            cc = COUNTRIES[head.country]
            if rng.random() < 0.45:
                city = next((c for c in cc.cities if c.name == head.city), cc.cities[0])
                hh.landline = self.landline(cc.code, city)
            if rng.random() < 0.3:
                fam = slug(head.family_name.split()[-1], cc.code == "DE") or "home"
                fs = fam + ("es" if fam.endswith(_PLURAL_ES) else "s")  # thesmiths, thejoneses
                local = rng.choice(_HOUSEHOLD_LOCALS[cc.name_pool]).format(f=fam, fs=fs)
                mb = self.mailbox(local, rng.choice(PERSONAL_DOMAIN_TABLES[cc.code]), "household")
                mb.readers.extend(hh.members)
                hh.mailbox = mb
        for org in self.orgs:
            for mb in org.roles:
                mb.readers.extend(org.staff)

    def _apps(self) -> None:
        rng = self.rng
        n_devices = 0
        for h in self.humans:
            p = h.p
            n_devices += len(p.devices)
            if p.devices and rng.random() < 0.82:
                personal = p.personal_emails
                p.app_email = personal[0] if personal and rng.random() < 0.6 else p.emails[0]
                if rng.random() < 0.06:
                    h.legacy_user_id = True
                    p.user_id = p.app_email
                else:
                    p.user_id = hex_id(rng, 13)
            for d in p.devices:
                if d.kind != "web" and not d.ad_tracking:
                    d.zero_idfa = rng.random() < (0.45 if d.kind == "ios" else 0.35)
        # family tablets: a household member's phone/tablet the other one logs in on too
        households = {hh.household_id: [m.p for m in hh.members] for hh in self.households}
        share_household_devices(rng, households, n_devices, 0.025)
        # browsers two people use without the app calling reset() on logout
        for h in self.humans:
            if h.p.user_id is None:
                continue
            for d in h.p.devices:
                if d.kind != "web" or rng.random() >= 0.06:
                    continue
                others: list[Human] = []
                if h.household is not None and rng.random() < 0.6:
                    others = [m for m in h.household.members if m is not h]
                elif h.org is not None:
                    others = [m for m in h.org.staff if m is not h]
                others = [m for m in others if m.p.user_id is not None]
                if others:
                    other = rng.choice(others)
                    d.shared_with.append(other.entity)
                    self.no_reset.append((d, h, other))

    def _careers(self) -> None:
        rng = self.rng
        stream = self.stream
        for h in self.humans:
            p = h.p
            ios = any(d.kind == "ios" for d in p.devices)
            h.apple_mail = rng.random() < (0.55 if ios else 0.15)
            if h.org is None:
                continue
            if rng.random() < 0.08 and len(self.orgs) > 1:
                at = stream.when(0.2, 0.75)
                new = self._pick_org(h.org.company.country, avoid=h.org)
                german = p.country == "DE"
                local = email_local(
                    rng, p.given_name, p.family_name, german, False, p.birth_date.year
                )
                h.job = JobChange(
                    at=at,
                    org=new,
                    work_email=self.claim(local, new.company.domain, h.entity),
                    title=promoted_title(rng, p.job_title),
                    bounce_at=at + stream.ri(2 * DAY_MS, 21 * DAY_MS),
                    extension=self.extension(new),
                )
                new.staff.append(h)
            elif rng.random() < 0.4:  # away for a while; a colleague covers
                colleagues = [m for m in h.org.staff if m is not h]
                if colleagues:
                    start = stream.when(0.02, 0.9)
                    h.away = (start, start + stream.ri(5 * DAY_MS, 22 * DAY_MS))
                    h.cover = rng.choice(colleagues)
