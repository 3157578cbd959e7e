"""Seeded synthetic multi-source data with ground truth.

:func:`generate` draws a population of :class:`~idgraph.generator.people.Person` objects and the raw
payloads five source systems would deliver about them, exactly in those systems' wire
shapes:

* ``salesforce``: REST sObject records (Contacts, duplicate Leads, later updates);
* ``hubspot``: CRM v3 contact objects (and later updates);
* ``sendgrid``: Event Webhook events (processed/delivered/open/click/bounce/unsubscribe);
* ``segment``: track/page/screen/identify events per device (anonymous first, then an
  identify, then known), including shared household tablets;
* ``google_calendar``: Calendar API v3 Event resources with 2-5 people (and meeting rooms).

The payloads carry the variation real data has: different emails of the same person per
system, case/whitespace and Gmail dot/plus variants, phone numbers in national and
international formats, name typos and nicknames, company suffix variants, occasional email
typos (genuinely different addresses), and rare placeholder junk (``test@test.com``, the
all-zero IDFA) that must never link anything.

``SyntheticDataset.truth`` maps every record key the adapters produce
(``SOURCE:SOURCE_RECORD_ID``) to the person who owns it; a shared device's anonymous
records belong to its owner (the first household member who logged in on it).

Everything is drawn from one ``random.Random(seed)`` (IDs included, no ``uuid4``), so a
seed reproduces the dataset byte for byte.
"""

from __future__ import annotations

import base64
import gc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from idgraph.generator.people import (
    ANDROID_MODELS,
    IOS_MODELS,
    Company,
    Device,
    EmailRegistry,
    PeopleFactory,
    Person,
    Phone,
    canonical_email,
    hex_id,
    promoted_title,
    uuid4_str,
)

__all__ = ["JUNK_EMAIL", "ZERO_IDFA", "SyntheticDataset", "generate"]

JUNK_EMAIL = "test@test.com"
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)

#: Approximate IdentityRecords per person before SendGrid fills up to ``n_records``.
_RECORDS_PER_PERSON = 10.0
#: Share of ``n_records`` given to calendar attendee records.
_CALENDAR_SHARE = 0.09

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MIN_MS = 60_000

_SF_API = "/services/data/v59.0"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_B32HEX = "0123456789abcdefghijklmnopqrstuv"

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

_LEAD_STATUS = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Not Converted",
    "Open - Not Contacted",
    "Working - Contacted",
)
_LEAD_SOURCE = (
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Trade Show",
    "Webinar",
    "Purchased List",
    "Other",
)

_WEB_PAGES = (
    ("/", "Brightloop – Identity for modern teams"),
    ("/pricing", "Pricing | Brightloop"),
    ("/product", "Product | Brightloop"),
    ("/blog/identity-resolution-101", "Identity resolution 101 | Brightloop Blog"),
    ("/customers", "Customers | Brightloop"),
    ("/docs/getting-started", "Getting started | Brightloop Docs"),
    ("/signup", "Sign up | Brightloop"),
    ("/contact-sales", "Contact sales | Brightloop"),
)
_REFERRERS = (
    "",
    "",
    "https://www.google.com/",
    "https://www.linkedin.com/",
    "https://news.ycombinator.com/",
    "https://t.co/",
    "https://www.bing.com/",
)
_SCREENS = ("Home", "Dashboard", "Profile", "Settings", "Search", "Product Detail", "Cart")
_TRACK_EVENTS = (
    ("Product Viewed", True),
    ("Product Added", True),
    ("Checkout Started", False),
    ("Order Completed", False),
    ("Signed In", False),
    ("Newsletter Subscribed", False),
    ("Report Exported", False),
    ("Invite Sent", False),
    ("Plan Upgraded", False),
)
_PRODUCTS = (
    ("prod_1001", "Starter plan", 29.0),
    ("prod_1002", "Growth plan", 99.0),
    ("prod_1003", "Enterprise plan", 499.0),
    ("prod_2001", "Extra seats (5)", 45.0),
    ("prod_2002", "Data retention add-on", 19.0),
)
_CURRENCY = {
    "US": "USD",
    "CA": "CAD",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "ES": "EUR",
    "NL": "EUR",
    "JP": "JPY",
    "AU": "AUD",
    "SG": "SGD",
}

_UA_WEB = (
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15"
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36"
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/123.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    ),
)
_UA_MAIL = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148"
    ),
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
)
_CAMPAIGNS = (
    ["newsletter"],
    ["newsletter", "monthly"],
    ["product_update"],
    ["webinar", "events"],
    ["promo", "spring_sale"],
    ["onboarding"],
    ["transactional", "receipt"],
    ["reengagement"],
)
_MEETING_TITLES_INTERNAL = (
    "Weekly sync",
    "1:1",
    "Sprint planning",
    "Retro",
    "Project kickoff",
    "Roadmap review",
    "Hiring debrief",
    "Budget review",
    "Standup",
    "Design review",
)
_MEETING_TITLES_EXTERNAL = (
    "Intro call: {a} <> {b}",
    "{a} / {b} – demo",
    "QBR {b}",
    "Contract review with {b}",
    "{b} onboarding",
    "Partnership chat",
    "Lunch",
    "Follow-up: {b} pilot",
)
_ROOMS = ("Everest", "Kilimanjaro", "Fuji", "Matterhorn", "Denali", "Elbrus", "Olympus")

_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    z = _ZONES.get(name)
    if z is None:
        z = _ZONES[name] = ZoneInfo(name)
    return z


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


@dataclass
class SyntheticDataset:
    """Generated payloads in stream order, plus the ground truth behind them."""

    events: list[tuple[str, dict]]
    """(source kind, raw payload), ascending by the event time the adapters read."""
    truth: dict[str, str]
    """Record key (``SOURCE:SOURCE_RECORD_ID``) -> person ID, for every record produced."""
    people: list[Person]
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """IdentityRecords the adapters will produce, per source (calendar: one per person)."""

    @property
    def n_records(self) -> int:
        return sum(self.counts.values())

    def payloads(self, source: str) -> list[dict]:
        """The payloads of one source, in event order."""
        return [p for s, p in self.events if s == source]

    def person(self, person_id: str) -> Person:
        idx = int(person_id.rsplit("-", 1)[1])
        return self.people[idx]

    def clusters(self) -> dict[str, list[str]]:
        """Person ID -> record keys (the ideal resolution)."""
        out: dict[str, list[str]] = {}
        for key, pid in self.truth.items():
            out.setdefault(pid, []).append(key)
        return out


# --------------------------------------------------------------------------------------
# Time formatting (fast; event times are integer milliseconds since the epoch)
# --------------------------------------------------------------------------------------


class _Clock:
    """ISO 8601 text of integer epoch milliseconds, caching the ``YYYY-MM-DDTHH:`` prefix."""

    __slots__ = ("_hours",)

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def _prefix(self, hour: int) -> str:
        text = self._hours.get(hour)
        if text is None:
            dt = datetime(1970, 1, 1) + timedelta(hours=hour)
            text = self._hours[hour] = dt.strftime("%Y-%m-%dT%H:")
        return text

    def z(self, ms: int) -> str:
        """``2024-05-01T10:00:00.123Z`` (Segment, HubSpot, Calendar)."""
        hour, rem = divmod(ms, _HOUR_MS)
        m, rem = divmod(rem, _MIN_MS)
        return f"{self._prefix(hour)}{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}Z"

    def sf(self, ms: int) -> str:
        """``2024-05-01T10:00:00.000+0000`` (Salesforce)."""
        hour, rem = divmod(ms, _HOUR_MS)
        m, rem = divmod(rem, _MIN_MS)
        return f"{self._prefix(hour)}{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}+0000"


# --------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------


def generate(
    n_records: int = 10_000,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    days: int = 180,
    typo_rate: float = 0.03,
    *,
    junk_rate: float = 0.005,
    shared_device_rate: float = 0.03,
    household_rate: float = 0.15,
    email_key: Callable[[str], str] | None = None,
) -> SyntheticDataset:
    """Generate about ``n_records`` identity records (adapter outputs) with ground truth.

    ``typo_rate``: chance of a typo in a name field of a CRM record (emails get typos at a
    third of it). ``junk_rate``: share of CRM records carrying ``test@test.com`` instead of a
    real address (the all-zero IDFA shows up on a few iOS devices at a similar rate).
    ``shared_device_rate``: share of devices used by a second household member.
    ``email_key`` normalises emails into record keys (default: the engine's
    ``Normalizer().email`` with default settings).
    """
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    if email_key is None:
        email_key = _default_email_key()
    b = _Builder(
        seed, start, days, typo_rate, junk_rate, shared_device_rate, household_rate, email_key
    )
    # Millions of small dicts and no reference cycles: the cyclic GC would only rescan them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return b.run(n_records)
    finally:
        if was_enabled:
            gc.enable()


def _default_email_key() -> Callable[[str], str]:
    try:
        from idgraph.resolver.normalize import Normalizer
    except ImportError:  # pragma: no cover - the resolver is part of this repo
        return canonical_email
    return Normalizer().email


class _Builder:
    def __init__(
        self,
        seed: int,
        start: datetime,
        days: int,
        typo_rate: float,
        junk_rate: float,
        shared_device_rate: float,
        household_rate: float,
        email_key: Callable[[str], str],
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.t0 = int(start.timestamp() * 1000)
        self.span = days * _DAY_MS
        self.end = self.t0 + self.span
        self.typo_rate = typo_rate
        self.junk_rate = junk_rate
        self.shared_device_rate = shared_device_rate
        self.household_rate = household_rate
        self._email_key_fn = email_key
        self._email_keys: dict[str, str] = {}
        self.clock = _Clock()
        self.registry = EmailRegistry()
        self.registry.owner[canonical_email(JUNK_EMAIL)] = ""  # nobody's address
        self.factory = PeopleFactory(self.rng, self.registry)
        # (event ms, source, payload, ((record key, person id), ...) of its records)
        self.items: list[tuple[int, str, dict, tuple[tuple[str, str], ...]]] = []
        self.people: list[Person] = []
        self.typo_emails: dict[str, list[str]] = {}  # person id -> typo'd addresses seen
        self._sg_made = 0
        self._sg_unsub_at: dict[str, int] = {}  # address key -> unsubscribe time (unix s)
        self._sf_counter = {"003": 0, "00Q": 0, "001": 0}
        self._accounts: dict[str, str] = {}
        self._hs_next = 0

    # ---- helpers ----------------------------------------------------------------------

    def email_key(self, email: str) -> str:
        k = self._email_keys.get(email)
        if k is None:
            k = self._email_keys[email] = self._email_key_fn(email)
        return k

    def emit(self, ms: int, source: str, payload: dict, key: str, person_id: str) -> None:
        """Queue a payload that yields one record, ``key``, owned by ``person_id``."""
        self.items.append((ms, source, payload, ((key, person_id),)))

    def when(self, lo: float = 0.0, hi: float = 1.0) -> int:
        """A time in [lo, hi) of the window (fractions), in ms."""
        return self.t0 + int(self.span * (lo + (hi - lo) * self.rng.random()))

    def ri(self, lo: int, hi: int | None = None) -> int:
        """Like ``randrange(lo, hi)`` (or ``randrange(lo)``) but a few times faster."""
        if hi is None:
            lo, hi = 0, lo
        return lo + int(self.rng.random() * (hi - lo))

    def sf_id(self, prefix: str) -> str:
        c = self._sf_counter[prefix]
        if c == 0:
            c = self.ri(62**5, 62**6)
        c += self.ri(1, 40)
        self._sf_counter[prefix] = c
        digits = []
        for _ in range(9):
            c, r = divmod(c, 62)
            digits.append(_B62[r])
        body = f"{prefix}5e0{''.join(reversed(digits))}"
        suffix = ""
        for i in range(3):
            chunk = body[5 * i : 5 * i + 5]
            bits = 0
            for j, ch in enumerate(chunk):
                if "A" <= ch <= "Z":
                    bits |= 1 << j
            suffix += _SF_SUFFIX[bits]
        return body + suffix

    def b64(self, n: int) -> str:
        """``n`` random URL-safe base64 characters (SendGrid event/message IDs)."""
        raw = self.rng.getrandbits(6 * n + 6).to_bytes((6 * n + 13) // 8, "little")
        return base64.urlsafe_b64encode(raw)[:n].decode()

    # ---- variation --------------------------------------------------------------------

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

    def run(self, n_records: int) -> SyntheticDataset:
        rng = self.rng
        n_people = max(3, round(n_records / _RECORDS_PER_PERSON))
        self.factory.make_companies(max(2, n_people // 18))
        people = self.people
        for i in range(n_people):
            people.append(
                self.factory.make_person(i, household_rate=self.household_rate, prior=people)
            )
        for p in people:
            if p.devices and rng.random() < 0.88:
                p.user_id = hex_id(rng, 13)
                p.app_email = (
                    p.personal_emails[0]
                    if p.personal_emails and rng.random() < 0.6
                    else p.emails[0]
                )
        self._mark_shared_devices()
        for p in people:
            self._crm(p)
        for p in people:
            for d in p.devices:
                if d.owner == p.person_id:
                    self._segment_device(p, d)
        self._calendar(int(n_records * _CALENDAR_SHARE))
        remaining = n_records - sum(len(item[3]) for item in self.items)
        if remaining > 0:
            self._sendgrid(remaining)
        items = self.items
        items.sort(key=itemgetter(0))  # stable: same-time events keep their causal order
        # Tiny datasets can overshoot (a few people already make a dozen records): drop the
        # latest events. Cutting at a time keeps every invariant (creates before updates,
        # the device owner's identify before a household member's).
        total = sum(len(item[3]) for item in items)
        while total > n_records and len(items) > 1:
            total -= len(items.pop()[3])
        events: list[tuple[str, dict]] = []
        truth: dict[str, str] = {}
        counts = {s: 0 for s in ("salesforce", "hubspot", "sendgrid", "segment", "google_calendar")}
        for _, src, payload, owners in items:
            events.append((src, payload))
            counts[src] += len(owners)
            for key, pid in owners:
                truth[key] = pid
        return SyntheticDataset(
            events=events, truth=truth, people=people, seed=self.seed, counts=counts
        )

    # ---- households -------------------------------------------------------------------

    def _mark_shared_devices(self) -> None:
        rng = self.rng
        households = self.factory.households()
        all_devices = sum(len(p.devices) for p in self.people)
        eligible: list[tuple[Device, Person]] = []
        for hid in sorted(households):
            members = households[hid]
            for p in members:
                if p.user_id is None:
                    continue
                others = [m for m in members if m is not p and m.user_id is not None]
                if not others:
                    continue
                for d in p.devices:
                    if d.kind != "web":
                        eligible.append((d, rng.choice(others)))
        want = min(len(eligible), round(all_devices * self.shared_device_rate))
        if want <= 0:
            return
        for d, other in rng.sample(eligible, want):
            d.shared_with.append(other.person_id)
            if not d.tablet and rng.random() < 0.6:  # mostly the family tablet
                models = IOS_MODELS if d.kind == "ios" else ANDROID_MODELS
                d.manufacturer, d.model, d.tablet = rng.choice([m for m in models if m[2]])

    # ---- CRM --------------------------------------------------------------------------

    def _crm(self, p: Person) -> None:
        rng = self.rng
        in_sf = rng.random() < (0.7 if p.company else 0.35)
        contact_id = None
        if in_sf:
            contact_id = self._sf_contact(p)
            if rng.random() < 0.14:
                self._sf_lead(p, converted_to=contact_id if rng.random() < 0.3 else None)
        elif rng.random() < 0.12:
            self._sf_lead(p, converted_to=None)
        if rng.random() < (0.68 if in_sf else 0.4):
            self._hubspot(p)

    def _address_fields(self, p: Person, presence: float) -> tuple[dict, bool]:
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

    def _phones_for(self, p: Person, country_known: bool) -> tuple[str | None, str | None]:
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

    def _account(self, c: Company) -> str:
        aid = self._accounts.get(c.domain)
        if aid is None:
            aid = self._accounts[c.domain] = self.sf_id("001")
        return aid

    def _created_before(self, ms: int) -> int:
        """CreatedDate of a record first seen at ``ms``: then, or up to two years earlier."""
        if self.rng.random() < 0.6:
            return ms
        return ms - self.ri(_DAY_MS, 700 * _DAY_MS)

    def _sf_contact(self, p: Person) -> str:
        rng = self.rng
        sid = self.sf_id("003")
        ms = self.when(0.0, 0.85)
        addr, known = self._address_fields(p, 0.75)
        phone, mob = self._phones_for(p, known)
        company = p.company
        account = None
        if company is not None:
            aid = self._account(company)
            account = {
                "attributes": {"type": "Account", "url": f"{_SF_API}/sobjects/Account/{aid}"},
                "Name": self.company_variant(company),
            }
        created = self._created_before(ms)
        payload = {
            "attributes": {"type": "Contact", "url": f"{_SF_API}/sobjects/Contact/{sid}"},
            "Id": sid,
            "FirstName": self.name_variant(p, True),
            "MiddleName": p.middle_name if p.middle_name and rng.random() < 0.5 else None,
            "LastName": self.name_variant(p, False),
            "Email": self.crm_email(p, 0.8),
            "Phone": phone,
            "MobilePhone": mob,
            "Title": p.job_title,
            "Birthdate": p.birth_date.isoformat() if rng.random() < 0.35 else None,
            "MailingStreet": addr["street"],
            "MailingCity": addr["city"],
            "MailingState": addr["state"],
            "MailingPostalCode": addr["postal"],
            "MailingCountry": addr["country"],
            "AccountId": self._accounts[company.domain] if company is not None else None,
            "Account": account,
            "HasOptedOutOfEmail": False,
            "CreatedDate": self.clock.sf(created),
            "LastModifiedDate": self.clock.sf(ms),
            "SystemModstamp": self.clock.sf(ms),
            "IsDeleted": False,
        }
        key = f"salesforce:{sid}"
        self.emit(ms, "salesforce", payload, key, p.person_id)
        self._sf_updates(p, payload, ms, known, key)
        return sid

    def _sf_lead(self, p: Person, converted_to: str | None) -> None:
        rng = self.rng
        sid = self.sf_id("00Q")
        ms = self.when(0.0, 0.9)
        addr, known = self._address_fields(p, 0.6)
        phone, mob = self._phones_for(p, known)
        if p.company is not None:
            company = self.company_variant(p.company)
        else:
            company = rng.choice(("[not provided]", "n/a", "Self-employed", "None", "-"))
        created = self._created_before(ms)
        payload = {
            "attributes": {"type": "Lead", "url": f"{_SF_API}/sobjects/Lead/{sid}"},
            "Id": sid,
            "FirstName": self.name_variant(p, True),
            "MiddleName": None,
            "LastName": self.name_variant(p, False),
            "Email": self.crm_email(p, 0.5),
            "Phone": phone,
            "MobilePhone": mob,
            "Title": p.job_title if rng.random() < 0.7 else None,
            "Company": company,
            "Street": addr["street"],
            "City": addr["city"],
            "State": addr["state"],
            "PostalCode": addr["postal"],
            "Country": addr["country"],
            "Status": "Closed - Converted" if converted_to else rng.choice(_LEAD_STATUS),
            "LeadSource": rng.choice(_LEAD_SOURCE),
            "IsConverted": converted_to is not None,
            "ConvertedContactId": converted_to,
            "HasOptedOutOfEmail": False,
            "CreatedDate": self.clock.sf(created),
            "LastModifiedDate": self.clock.sf(ms),
            "SystemModstamp": self.clock.sf(ms),
            "IsDeleted": False,
        }
        key = f"salesforce:{sid}"
        self.emit(ms, "salesforce", payload, key, p.person_id)
        if converted_to is None:
            self._sf_updates(p, payload, ms, known, key)

    def _sf_updates(self, p: Person, payload: dict, ms: int, known: bool, key: str) -> None:
        rng = self.rng
        n = 0 if rng.random() < 0.78 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        is_contact = payload["attributes"]["type"] == "Contact"
        for _ in range(n):
            ms += self.ri(_HOUR_MS, 60 * _DAY_MS)
            if ms >= self.end:
                return
            new = dict(prev)
            r = rng.random()
            if r < 0.35:
                new["Title"] = promoted_title(rng, prev.get("Title") or p.job_title)
            elif r < 0.6 and p.phones:
                new["MobilePhone"] = self.phone_text(rng.choice(p.phones), known)
            elif r < 0.75:
                new["Email"] = self.crm_email(p, 0.5 if is_contact else 0.3)
            elif r < 0.85:
                new["HasOptedOutOfEmail"] = True
            else:
                new["FirstName"] = p.given_name  # a typo fixed
                new["LastName"] = p.family_name
            stamp = self.clock.sf(ms)
            new["LastModifiedDate"] = stamp
            new["SystemModstamp"] = stamp
            self.emit(ms, "salesforce", new, key, p.person_id)
            prev = new

    def _hubspot(self, p: Person) -> None:
        rng = self.rng
        if self._hs_next == 0:
            self._hs_next = self.ri(1000, 90000)
        self._hs_next += self.ri(1, 60)
        hid = str(self._hs_next)
        ms = self.when(0.0, 0.85)
        addr, known = self._address_fields(p, 0.55)
        phone, mob = self._phones_for(p, known)
        email = self.crm_email(p, 0.55)
        extra = None
        others = [e for e in p.emails if canonical_email(e) != canonical_email(email)]
        if others and rng.random() < 0.3:
            extra = ";".join(self.email_variant(e) for e in others)
        created = self._created_before(ms)
        created_z, updated_z = self.clock.z(created), self.clock.z(ms)
        payload = {
            "id": hid,
            "properties": {
                "address": addr["street"],
                "city": addr["city"],
                "company": self.company_variant(p.company)
                if p.company and rng.random() < 0.85
                else None,
                "country": addr["country"],
                "createdate": created_z,
                "date_of_birth": p.birth_date.isoformat() if rng.random() < 0.25 else None,
                "email": email,
                "firstname": self.name_variant(p, True),
                "hs_additional_emails": extra,
                "hs_object_id": hid,
                "jobtitle": p.job_title if rng.random() < 0.7 else None,
                "lastmodifieddate": updated_z,
                "lastname": self.name_variant(p, False),
                "mobilephone": mob,
                "phone": phone,
                "state": addr["state"],
                "zip": addr["postal"],
            },
            "createdAt": created_z,
            "updatedAt": updated_z,
            "archived": False,
        }
        key = f"hubspot:{hid}"
        self.emit(ms, "hubspot", payload, key, p.person_id)
        n = 0 if rng.random() < 0.8 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        for _ in range(n):
            ms += self.ri(_HOUR_MS, 45 * _DAY_MS)
            if ms >= self.end:
                return
            props = dict(prev["properties"])
            r = rng.random()
            if r < 0.35:
                props["jobtitle"] = promoted_title(rng, props.get("jobtitle") or p.job_title)
            elif r < 0.6 and p.phones:
                props["phone"] = self.phone_text(rng.choice(p.phones), known)
            elif r < 0.8 and len(p.emails) > 1:
                props["hs_additional_emails"] = ";".join(p.emails[1:])
            else:
                props["firstname"] = p.given_name
                props["lastname"] = p.family_name
            z = self.clock.z(ms)
            props["lastmodifieddate"] = z
            new = {
                "id": hid,
                "properties": props,
                "createdAt": prev["createdAt"],
                "updatedAt": z,
                "archived": False,
            }
            self.emit(ms, "hubspot", new, key, p.person_id)
            prev = new

    # ---- Segment ----------------------------------------------------------------------

    def _segment_context(self, p: Person, d: Device) -> dict:
        rng = self.rng
        if d.kind == "web":
            path, title = rng.choice(_WEB_PAGES)
            return {
                "ip": d.ip,
                "library": {"name": "analytics.js", "version": "next-1.64.0"},
                "locale": p.locale,
                "page": {
                    "path": path,
                    "referrer": rng.choice(_REFERRERS),
                    "search": "",
                    "title": title,
                    "url": f"https://www.brightloop.io{path}",
                },
                "userAgent": _UA_WEB[hash_index(d.anonymous_id, len(_UA_WEB))],
                "timezone": p.timezone,
            }
        ios = d.kind == "ios"
        device = {
            "id": d.device_id,
            "manufacturer": d.manufacturer,
            "model": d.model,
            "type": d.kind,
            "adTrackingEnabled": d.ad_tracking,
        }
        if d.zero_idfa:
            device["advertisingId"] = ZERO_IDFA
        elif d.advertising_id is not None:
            device["advertisingId"] = d.advertising_id
        return {
            "app": {
                "name": "Brightloop",
                "version": "5.12.0",
                "build": "5120",
                "namespace": "io.brightloop.app",
            },
            "device": device,
            "ip": d.ip,
            "library": (
                {"name": "analytics-ios", "version": "4.1.8"}
                if ios
                else {"name": "analytics-android", "version": "4.11.3"}
            ),
            "locale": p.locale,
            "network": {"wifi": rng.random() < 0.7, "cellular": True},
            "os": {"name": "iOS" if ios else "Android", "version": d.os_version},
            "screen": (
                {"width": 820, "height": 1180} if d.tablet else {"width": 390, "height": 844}
            ),
            "timezone": p.timezone,
        }

    def _segment_event(
        self, p: Person, d: Device, ms: int, user_id: str | None, typ: str | None = None
    ) -> dict:
        rng = self.rng
        web = d.kind == "web"
        if typ is None:
            r = rng.random()
            typ = ("page" if web else "screen") if r < 0.5 else "track"
        ctx = self._segment_context(p, d)
        sent = ms + self.ri(20, 4000)
        received = sent + self.ri(30, 600)
        ev: dict = {"type": typ}
        if typ == "track":
            name, product = rng.choice(_TRACK_EVENTS)
            if not web and rng.random() < 0.3:
                name, product = "Application Opened", False
            ev["event"] = name
            if product:
                pid, pname, price = rng.choice(_PRODUCTS)
                props = {
                    "product_id": pid,
                    "name": pname,
                    "price": price,
                    "currency": _CURRENCY[p.country],
                }
            elif name == "Order Completed":
                props = {
                    "order_id": f"ord_{hex_id(rng, 10)}",
                    "total": round(rng.uniform(19, 900), 2),
                    "currency": _CURRENCY[p.country],
                }
            elif name == "Application Opened":
                props = {"from_background": rng.random() < 0.5, "version": "5.12.0"}
            else:
                props = {}
            ev["properties"] = props
        elif typ == "page":
            page = ctx["page"]
            ev["name"] = page["title"].split(" | ")[0]
            ev["properties"] = dict(page)
        elif typ == "screen":
            ev["name"] = rng.choice(_SCREENS)
            ev["properties"] = {}
        ev["anonymousId"] = d.anonymous_id
        if user_id is not None:
            ev["userId"] = user_id
        elif web:
            ev["userId"] = None
        ev["messageId"] = (
            f"ajs-next-{hex_id(rng, 32)}" if web else uuid4_str(rng, upper=d.kind == "ios")
        )
        ev["timestamp"] = self.clock.z(ms)
        ev["originalTimestamp"] = ev["timestamp"]
        ev["sentAt"] = self.clock.z(sent)
        ev["receivedAt"] = self.clock.z(received)
        ev["context"] = ctx
        ev["integrations"] = {}
        ev["channel"] = "client"
        ev["version"] = 2
        return ev

    def _identify(self, p: Person, d: Device, ms: int) -> dict:
        rng = self.rng
        ev = self._segment_event(p, d, ms, p.user_id, "identify")
        email = p.app_email or p.emails[0]
        traits: dict = {
            "email": JUNK_EMAIL if rng.random() < self.junk_rate / 2 else self.email_variant(email),
            "firstName": p.nickname if p.nickname and rng.random() < 0.15 else p.given_name,
            "lastName": p.family_name,
        }
        if p.phones and rng.random() < 0.3:
            traits["phone"] = p.phones[0].format(rng.choice(("e164", "e164", "intl")))
        if p.company is not None and rng.random() < 0.4:
            traits["company"] = {"name": self.company_variant(p.company)}
        if rng.random() < 0.2:
            traits["address"] = {"city": p.city, "country": p.country}
        traits["createdAt"] = self.clock.z(ms)
        ev["traits"] = traits
        return ev

    def _segment_device(self, p: Person, d: Device) -> None:
        rng = self.rng
        pid = p.person_id
        ms = self.when(0.0, 0.8)
        end = self.end
        key_anon = f"segment:{d.anonymous_id}"
        if d.kind == "ios" and rng.random() < self.junk_rate * 4:
            d.zero_idfa = True
        # anonymous session(s)
        n_anon = 1 + (rng.random() < 0.45) + (rng.random() < 0.2)
        for _ in range(n_anon):
            self.emit(ms, "segment", self._segment_event(p, d, ms, None), key_anon, pid)
            ms += self.ri(5_000, 15 * _MIN_MS)
        identifies = p.user_id is not None and rng.random() < (0.9 if d.kind != "web" else 0.65)
        if d.shared_with:
            identifies = p.user_id is not None
        if not identifies or ms >= end:
            if rng.random() < 0.4 and ms < end:  # a later anonymous visit
                ms += self.ri(_HOUR_MS, 20 * _DAY_MS)
                if ms < end:
                    self.emit(ms, "segment", self._segment_event(p, d, ms, None), key_anon, pid)
            return
        key_user = f"segment:{p.user_id}"
        self.emit(ms, "segment", self._identify(p, d, ms), key_user, pid)
        identify_ms = ms
        n_known = (rng.random() < 0.8) + (rng.random() < 0.5) + (rng.random() < 0.3)
        for k in range(n_known):
            ms += self.ri(5_000, 10 * _MIN_MS) if k == 0 else self.ri(_HOUR_MS, 15 * _DAY_MS)
            if ms >= end:
                break
            self.emit(ms, "segment", self._segment_event(p, d, ms, p.user_id), key_user, pid)
        # household members logging in on the same tablet/phone
        for other_id in d.shared_with:
            other = self.people[int(other_id.rsplit("-", 1)[1])]
            t = identify_ms + self.ri(_HOUR_MS, 20 * _DAY_MS)
            if t >= end:
                t = identify_ms + (end - identify_ms) // 2
                if t <= identify_ms:
                    continue
            key_other = f"segment:{other.user_id}"
            self.emit(t, "segment", self._identify(other, d, t), key_other, other.person_id)
            for _ in range(self.ri(0, 3)):
                t += self.ri(_MIN_MS, 3 * _DAY_MS)
                if t >= end:
                    break
                ev = self._segment_event(other, d, t, other.user_id)
                self.emit(t, "segment", ev, key_other, other.person_id)

    # ---- Google Calendar --------------------------------------------------------------

    def _calendar(self, budget: int) -> None:
        rng = self.rng
        people = self.people
        workers = [p for p in people if p.work_email]
        if len(workers) < 2 or budget <= 0:
            return
        by_id = {p.person_id: p for p in workers}
        made = 0
        while made < budget:
            org = rng.choice(workers)
            size = rng.choice((2, 2, 2, 3, 3, 3, 4, 4, 5))
            internal = rng.random() < 0.6
            chosen = [org]
            chosen_ids = [org.person_id]
            colleagues = org.company.employees if internal and org.company else []
            tries = 0
            while len(chosen) < size and tries < 20:
                tries += 1
                if len(colleagues) > 1 and rng.random() < 0.9:
                    cand = by_id[rng.choice(colleagues)]
                else:
                    cand = rng.choice(workers)
                if cand.person_id not in chosen_ids:
                    chosen.append(cand)
                    chosen_ids.append(cand.person_id)
            if len(chosen) < 2:
                continue
            ms = self.when(0.0, 1.0)
            payload, owners = self._calendar_event(org, chosen, ms, internal)
            self.items.append((ms, "google_calendar", payload, owners))
            made += len(owners)

    def _calendar_event(
        self, org: Person, chosen: list[Person], ms: int, internal: bool
    ) -> tuple[dict, tuple[tuple[str, str], ...]]:
        rng = self.rng
        eid = "".join(_B32HEX[rng.getrandbits(5)] for _ in range(26))
        org_email = org.work_email
        assert org_email is not None
        attendees: list[dict] = []
        keys: list[str] = []
        owners: list[tuple[str, str]] = []
        for i, p in enumerate(chosen):
            if i == 0:
                email = org_email
            elif not internal and p.personal_emails and rng.random() < 0.1:
                email = p.personal_emails[0]
            else:
                email = p.work_email or p.emails[0]
            key = self.email_key(email)
            if key in keys:
                continue
            keys.append(key)
            owners.append((f"google_calendar:{key}", p.person_id))
            if i > 0 and rng.random() < 0.08:
                email = email[:1].upper() + email[1:]
            a: dict = {"email": email}
            if i == 0:
                a["organizer"] = True
                a["self"] = True
                a["responseStatus"] = "accepted"
            else:
                if rng.random() < 0.55:
                    given = p.nickname if p.nickname and rng.random() < 0.2 else p.given_name
                    a["displayName"] = f"{given} {p.family_name}"
                a["responseStatus"] = rng.choice(
                    ("needsAction", "accepted", "accepted", "tentative", "declined")
                )
            attendees.append(a)
        if rng.random() < 0.2:
            attendees.append(
                {
                    "email": f"c_188{hex_id(rng, 20)}@resource.calendar.google.com",
                    "displayName": f"{org.city}-{self.ri(1, 9)}-{rng.choice(_ROOMS)} ({rng.choice((4, 6, 8, 12))})",
                    "resource": True,
                    "responseStatus": "accepted",
                }
            )
        tz = _zone(org.timezone)
        local = datetime.fromtimestamp(ms / 1000, tz) + timedelta(days=self.ri(1, 15))
        if local.weekday() >= 5:  # meetings happen on weekdays
            local += timedelta(days=7 - local.weekday())
        start = local.replace(
            hour=self.ri(8, 18), minute=rng.choice((0, 0, 30)), second=0, microsecond=0
        )
        start = datetime.fromtimestamp(start.timestamp(), tz)  # re-resolve the UTC offset
        end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90)))
        if internal:
            summary = rng.choice(_MEETING_TITLES_INTERNAL)
        else:
            other = next((p for p in chosen[1:] if p.company is not org.company), chosen[1])
            a_name = org.company.short if org.company else org.family_name
            b_name = other.company.short if other.company else other.family_name
            summary = rng.choice(_MEETING_TITLES_EXTERNAL).format(a=a_name, b=b_name)
        stamp = self.clock.z(ms)
        eid_b64 = base64.urlsafe_b64encode(f"{eid} {org_email}".encode()).decode().rstrip("=")
        payload = {
            "kind": "calendar#event",
            "etag": f'"{3400000000000000 + ms}"',
            "id": eid,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={eid_b64}",
            "created": stamp,
            "updated": stamp,
            "summary": summary,
            "creator": {"email": org_email, "self": True},
            "organizer": {"email": org_email, "self": True},
            "start": {"dateTime": start.isoformat(), "timeZone": org.timezone},
            "end": {"dateTime": end.isoformat(), "timeZone": org.timezone},
            "iCalUID": f"{eid}@google.com",
            "sequence": 0,
            "attendees": attendees,
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        if rng.random() < 0.6:
            code = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))
            payload["hangoutLink"] = f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"
        return payload, tuple(owners)

    # ---- SendGrid ---------------------------------------------------------------------

    def _sendgrid(self, budget: int) -> None:
        rng = self.rng
        end_s = self.end // 1000
        # recipients: (person, address as stored in the ESP list, is_typo)
        pool: list[tuple[Person, str, bool]] = []
        for p in self.people:
            for e in p.emails:
                if e == p.work_email and rng.random() < 0.5:
                    continue
                pool.append((p, e, False))
            for e in self.typo_emails.get(p.person_id, ()):
                pool.append((p, e, True))
        if not pool:
            pool = [(p, p.emails[0], False) for p in self.people]
        n_campaigns = max(3, self.span // (2 * _DAY_MS))
        campaigns = sorted((self.when(0.0, 0.98) // 1000, i) for i in range(n_campaigns))
        campaigns = [(t, _CAMPAIGNS[i % len(_CAMPAIGNS)]) for t, i in campaigns]
        # Sends are drawn up front and played in time order, so nothing reaches an address
        # after its unsubscribe. About 2.5 events per send; a top-up batch (without
        # unsubscribes) fills whatever the first batch left of the budget.
        self._sg_made = 0
        self._sg_unsub_at: dict[str, int] = {}
        n_sends = max(1, round(budget / 2.5))
        for allow_unsub in (True, False, False):
            sends = []
            for i in range(n_sends):
                send_at, category = campaigns[self.ri(len(campaigns))]
                sends.append((send_at + self.ri(0, 1800), i, category, rng.choice(pool)))
            sends.sort(key=itemgetter(0, 1))
            for t, _, category, (p, email, is_typo) in sends:
                if self._sg_made >= budget:
                    return
                if t < end_s:
                    self._sendgrid_send(p, email, is_typo, t, category, budget, allow_unsub)
            n_sends = max(1, round((budget - self._sg_made) / 2.2))

    def _sendgrid_send(
        self,
        p: Person,
        email: str,
        is_typo: bool,
        t: int,
        category: list[str],
        budget: int,
        allow_unsub: bool,
    ) -> None:
        """One message to ``email`` sent at ``t`` (unix seconds): its webhook events."""
        rng = self.rng
        end_s = self.end // 1000
        key = self.email_key(email)
        unsub = self._sg_unsub_at.get(key)
        if unsub is not None and (t >= unsub or not allow_unsub):
            return
        raw = email if rng.random() < 0.93 else email_caps(email)
        core = self.b64(22)
        smtp_id = f"<{core}@geopod-ismtpd-{self.ri(1, 40)}>"
        msg_id = (
            f"{core}.filterdrecv-{hex_id(rng, 10)}-{self.b64(5).lower()}-1-"
            f"{hex_id(rng, 8).upper()}-{self.ri(1, 64):X}.0"
        )
        flow = ["processed"]
        times = [t]
        if is_typo:
            flow.append("bounce")
            times.append(t + self.ri(1, 20))
        else:
            flow.append("delivered")
            times.append(t + self.ri(1, 30))
            if rng.random() < 0.4:
                flow.append("open")
                times.append(times[-1] + self.ri(60, 3 * 86400))
                r = rng.random()
                if r < 0.25:
                    flow.append("click")
                    times.append(times[-1] + self.ri(3, 600))
                elif r < 0.27 and allow_unsub:
                    flow.append("unsubscribe")
                    times.append(times[-1] + self.ri(10, 300))
        record_key = f"sendgrid:{key}"
        for ev_type, ts in zip(flow, times, strict=True):
            if ts >= end_s or self._sg_made >= budget:
                break
            ev = {
                "email": raw,
                "timestamp": ts,
                "smtp-id": smtp_id,
                "event": ev_type,
                "category": list(category),
                "sg_event_id": self.b64(22),
                "sg_message_id": msg_id,
            }
            if ev_type == "delivered":
                ev["response"] = "250 2.0.0 OK"
                ev["tls"] = 1
            elif ev_type == "bounce":
                ev["reason"] = "550 5.1.1 The email account that you tried to reach does not exist."
                ev["status"] = "5.1.1"
                ev["type"] = "bounce"
                ev["bounce_classification"] = "Invalid Address"
            else:
                if ev_type != "processed":
                    ev["useragent"] = rng.choice(_UA_MAIL)
                    ev["ip"] = p.devices[0].ip if p.devices else _random_ip(self)
                if ev_type == "open":
                    ev["sg_machine_open"] = False
                elif ev_type == "click":
                    page = rng.choice(("pricing", "blog", "webinar", "product"))
                    ev["url"] = (
                        f"https://www.brightloop.io/{page}?utm_source=sendgrid"
                        f"&utm_medium=email&utm_campaign={category[0]}"
                    )
                    ev["url_offset"] = {"index": self.ri(0, 4), "type": "html"}
                elif ev_type == "unsubscribe":
                    self._sg_unsub_at[key] = ts
            self.emit(ts * 1000, "sendgrid", ev, record_key, p.person_id)
            self._sg_made += 1


def _random_ip(b: _Builder) -> str:
    return f"{b.ri(11, 220)}.{b.ri(256)}.{b.ri(256)}.{b.ri(1, 255)}"


def email_caps(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1].upper()}{local[1:]}@{domain}"


def hash_index(text: str, n: int) -> int:
    """A stable (not ``hash()``-randomised) index derived from a string."""
    return sum(map(ord, text[-6:])) % n
