"""Segment: track/page/screen/identify events of each device.

Contract: :class:`SegmentSource` queues Segment HTTP/Tracking API events (``analytics.js`` for
web, ``analytics-ios``/``analytics-android`` for apps) per device: anonymous sessions first
(records ``segment:<anonymousId>``), then, for people with an app account, an ``identify`` and
known events (records ``segment:<userId>``); household members who share a device identify on
it after its owner, so the device's anonymous record belongs to the owner. A few iOS devices
send the all-zero :data:`ZERO_IDFA` placeholder, which must link nothing. What
:mod:`idgraph.resolver.adapters.segment` reads back.
"""

from __future__ import annotations

from idgraph.generator.events import DAY_MS, HOUR_MS, MIN_MS, EventStream
from idgraph.generator.ids import hex_id, uuid4_str
from idgraph.generator.model import Device, Person
from idgraph.generator.variation import JUNK_EMAIL, Variation

__all__ = ["ZERO_IDFA", "SegmentSource", "hash_index"]

#: The placeholder advertising ID iOS sends when tracking is off; it must link nothing.
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"

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


def hash_index(text: str, n: int) -> int:
    """A stable (not ``hash()``-randomised) index derived from a string."""
    return sum(map(ord, text[-6:])) % n


class SegmentSource:
    """The events of every device, played per device by its owner."""

    def __init__(self, stream: EventStream, vary: Variation, people: list[Person]) -> None:
        self.stream = stream
        self.vary = vary
        self.people = people  # by index: person-0000042 is people[42]
        self.rng = stream.rng
        self.ri = stream.ri
        self.clock = stream.clock
        self.emit = stream.emit

    def _context(self, p: Person, d: Device) -> dict:
        """The ``context`` object: page and user agent (web) or app, device, OS (mobile)."""
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

    def _event(
        self, p: Person, d: Device, ms: int, user_id: str | None, typ: str | None = None
    ) -> dict:
        rng = self.rng
        web = d.kind == "web"
        if typ is None:
            r = rng.random()
            typ = ("page" if web else "screen") if r < 0.5 else "track"
        ctx = self._context(p, d)
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
        """An ``identify`` of ``p`` on ``d`` with traits (email, name, maybe phone/company)."""
        rng = self.rng
        ev = self._event(p, d, ms, p.user_id, "identify")
        email = p.app_email or p.emails[0]
        traits: dict = {
            "email": JUNK_EMAIL
            if rng.random() < self.vary.junk_rate / 2
            else self.vary.email_variant(email),
            "firstName": p.nickname if p.nickname and rng.random() < 0.15 else p.given_name,
            "lastName": p.family_name,
        }
        if p.phones and rng.random() < 0.3:
            traits["phone"] = p.phones[0].format(rng.choice(("e164", "e164", "intl")))
        if p.company is not None and rng.random() < 0.4:
            traits["company"] = {"name": self.vary.company_variant(p.company)}
        if rng.random() < 0.2:
            traits["address"] = {"city": p.city, "country": p.country}
        traits["createdAt"] = self.clock.z(ms)
        ev["traits"] = traits
        return ev

    def device(self, p: Person, d: Device) -> None:
        """Queue the events of ``d``, owned by ``p``: anonymous sessions, then (if ``p`` has an
        app account) an identify and known events, then the identifies and events of the
        household members who share ``d``."""
        rng = self.rng
        pid = p.person_id
        ms = self.stream.when(0.0, 0.8)
        end = self.stream.end
        key_anon = f"segment:{d.anonymous_id}"
        if d.kind == "ios" and rng.random() < self.vary.junk_rate * 4:
            d.zero_idfa = True
        # anonymous session(s)
        n_anon = 1 + (rng.random() < 0.45) + (rng.random() < 0.2)
        for _ in range(n_anon):
            self.emit(ms, "segment", self._event(p, d, ms, None), key_anon, pid)
            ms += self.ri(5_000, 15 * MIN_MS)
        identifies = p.user_id is not None and rng.random() < (0.9 if d.kind != "web" else 0.65)
        if d.shared_with:
            identifies = p.user_id is not None
        if not identifies or ms >= end:
            if rng.random() < 0.4 and ms < end:  # a later anonymous visit
                ms += self.ri(HOUR_MS, 20 * DAY_MS)
                if ms < end:
                    self.emit(ms, "segment", self._event(p, d, ms, None), key_anon, pid)
            return
        key_user = f"segment:{p.user_id}"
        self.emit(ms, "segment", self._identify(p, d, ms), key_user, pid)
        identify_ms = ms
        n_known = (rng.random() < 0.8) + (rng.random() < 0.5) + (rng.random() < 0.3)
        for k in range(n_known):
            ms += self.ri(5_000, 10 * MIN_MS) if k == 0 else self.ri(HOUR_MS, 15 * DAY_MS)
            if ms >= end:
                break
            self.emit(ms, "segment", self._event(p, d, ms, p.user_id), key_user, pid)
        # household members logging in on the same tablet/phone
        for other_id in d.shared_with:
            other = self.people[int(other_id.rsplit("-", 1)[1])]
            t = identify_ms + self.ri(HOUR_MS, 20 * DAY_MS)
            if t >= end:
                t = identify_ms + (end - identify_ms) // 2
                if t <= identify_ms:
                    continue
            key_other = f"segment:{other.user_id}"
            self.emit(t, "segment", self._identify(other, d, t), key_other, other.person_id)
            for _ in range(self.ri(0, 3)):
                t += self.ri(MIN_MS, 3 * DAY_MS)
                if t >= end:
                    break
                ev = self._event(other, d, t, other.user_id)
                self.emit(t, "segment", ev, key_other, other.person_id)

    # ---- Google Calendar --------------------------------------------------------------
