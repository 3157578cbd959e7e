"""SendGrid Event Webhook events of the real world, in the shape of
:mod:`idgraph.generator.sendgrid` (``email``, ``timestamp``, ``smtp-id``, ``event``,
``category``, ``sg_event_id``, ``sg_message_id``...), with custom arguments as extra
top-level fields.

Contract: :meth:`RealSendGrid.fill` plans every send (newsletters to the mailing list,
transactional mail from the app, sales sequences from Salesforce, HubSpot emails) and plays
them in time order, per address: an address bounces from the time it dies (a mistyped
address always; a job changer's old work address a few days after they left) and is
``dropped`` after its first bounce; nothing more goes to an address after its
unsubscribe. Every event belongs to the recipient's entity (a person, or a shared mailbox:
mail to ``info@acme.com`` is the mailbox's even when it carries a person's CRM ID).
:attr:`RealSendGrid.delivered` lists the delivered messages for the inbound replies.

Custom arguments: ``user_id``/``userId`` (the app user ID, on transactional mail),
``sfdc_contact_id``/``contact_id``/``sfdc_lead_id`` (the Salesforce record the sequence was
sent from), ``hubspot_id``/``hs_contact_id``. Opens: Apple Mail Privacy Protection opens
(``sg_machine_open: true`` from Apple proxy addresses with the proxy's bare user agent) for
Apple Mail readers, ``GoogleImageProxy`` opens from Google addresses for Gmail and Google
Workspace mailboxes, else the reader's own client and IP (an office NAT address at work).
Draws only from the stream's ``random.Random``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from operator import itemgetter

from idgraph.generator.emails import canonical_email
from idgraph.generator.events import EventStream
from idgraph.generator.ids import hex_id
from idgraph.generator.realworld.crm import CrmRecord
from idgraph.generator.realworld.ledger import Builder, Ledger, Marks
from idgraph.generator.realworld.spelling import Spelling
from idgraph.generator.realworld.traps import Tally
from idgraph.generator.realworld.world import Human, Mailbox, World

__all__ = ["Message", "RealSendGrid"]

_UA_MPP = "Mozilla/5.0"
_UA_GOOGLE = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
_UA_CLIENTS = (
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36"
    ),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36"
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Thunderbird/115.10.1",
)
_GOOGLE_PREFIXES = ("66.102.", "66.249.", "74.125.")
_APPLE_PREFIXES = ("17.58.", "17.121.", "104.28.")
_NEWSLETTERS = (
    (["newsletter"], "Brightloop monthly: what's new"),
    (["product_update"], "New: identity graphs in real time"),
    (["webinar", "events"], "Webinar invitation: resolving customers across sources"),
    (["promo", "spring_sale"], "20% off Growth plans this week"),
    (["reengagement"], "We miss you at Brightloop"),
)
_TRANSACTIONAL = (
    (["transactional", "receipt"], "Your Brightloop receipt"),
    (["transactional", "password_reset"], "Reset your Brightloop password"),
    (["transactional", "welcome"], "Welcome to Brightloop"),
)
_SEQUENCE = (
    (["sales_sequence"], "Quick question about your data stack"),
    (["sales_sequence", "follow_up"], "Following up on my last note"),
    (["sales_sequence", "meeting"], "15 minutes next week?"),
)
_HUBSPOT = ((["hubspot", "nurture"], "A guide to cleaner customer data"),)


@dataclass(slots=True)
class Message:
    """A delivered message an inbound reply can answer."""

    smtp_id: str
    t: int  # delivered (unix s)
    address: str  # the recipient address as sent
    kind: str  # "work" | "personal" | "role" | "household" | "typo"
    owner: str  # the recipient entity
    human: Human | None  # the person, for a person's address
    mailbox: Mailbox | None  # the mailbox, for a shared address
    subject: str
    category: list[str]


class RealSendGrid(Builder):
    """Mail to people's and shared addresses, with custom arguments."""

    def __init__(
        self,
        world: World,
        stream: EventStream,
        spelling: Spelling,
        ledger: Ledger,
        tally: Tally,
    ) -> None:
        super().__init__(world, stream, spelling, ledger)
        self.tally = tally
        self.delivered: list[Message] = []
        self._dead: dict[str, int] = {}  # canonical address -> dies at (unix s)
        self._bounced: set[str] = set()
        self._unsub: set[str] = set()
        self._mailed: set[str] = set()  # role mailboxes that got mail
        self._mailboxes = {mb.entity_id: mb for mb in world.mailboxes}

    # ---- planning --------------------------------------------------------------------

    def fill(self, crm_records: list[CrmRecord], typo_emails: dict[str, list[str]]) -> None:
        """Plan and play every send."""
        rng = self.rng
        stream = self.stream
        t0, end = stream.t0 // 1000, stream.end // 1000
        span = end - t0
        campaigns = sorted(t0 + self.ri(span) for _ in range(max(4, span // (3 * 86400))))
        sends: list[tuple[int, int, str, str, tuple, dict]] = []

        def plan(t: int, address: str, kind: str, what: tuple, args: dict | None = None) -> None:
            if t0 <= t < end:
                sends.append((t, len(sends), address, kind, what, args or {}))

        def newsletter(address: str, kind: str, start: int, k: int) -> None:
            for _ in range(k):
                t = campaigns[self.ri(len(campaigns))] + self.ri(0, 1800)
                if t >= start:
                    plan(t, address, kind, rng.choice(_NEWSLETTERS))

        for h in self.world.humans:
            for e in h.personal_emails:
                if rng.random() < 0.45:
                    newsletter(e, "personal", t0, self.ri(1, 3))
            work = h.p.work_email
            if work is not None and rng.random() < 0.35:
                newsletter(work, "work", t0, self.ri(1, 3))
            if h.job is not None:
                self._dead[canonical_email(work or "")] = h.job.bounce_at // 1000
                if rng.random() < 0.4:
                    newsletter(h.job.work_email, "work", h.job.at // 1000, self.ri(1, 3))
            for e in typo_emails.get(h.entity, ()):
                self._dead[canonical_email(e)] = t0
                newsletter(e, "typo", t0, self.ri(1, 3))
            if h.p.user_id is not None and h.p.app_email and rng.random() < 0.5:
                for _ in range(self.ri(1, 3)):
                    key = "user_id" if rng.random() < 0.7 else "userId"
                    plan(t0 + self.ri(span), h.p.app_email, "app", rng.choice(_TRANSACTIONAL),
                         {key: h.p.user_id})
        for mb in self.world.mailboxes:
            if rng.random() < (0.75 if mb.kind == "role" else 0.85):
                newsletter(mb.address, mb.kind, t0, self.ri(1, 4))
        for r in crm_records:
            if not r.email or rng.random() >= (0.22 if r.source == "salesforce" else 0.12):
                continue
            if r.source == "salesforce":
                lead = r.record_id.startswith("00Q")
                key = "sfdc_lead_id" if lead else (
                    "sfdc_contact_id" if rng.random() < 0.7 else "contact_id"
                )
                what = _SEQUENCE
            else:
                key = "hubspot_id" if rng.random() < 0.6 else "hs_contact_id"
                what = _HUBSPOT
            t = r.ms // 1000
            for _ in range(self.ri(1, 3)):
                t += self.ri(3600, 9 * 86400)
                plan(t, r.email, "crm", rng.choice(what), {key: r.record_id})
        sends.sort(key=itemgetter(0, 1))
        for t, _, address, kind, (category, subject), args in sends:
            self._send(t, address, kind, list(category), subject, args)

    # ---- one message -----------------------------------------------------------------

    def _recipient(self, address: str, kind: str) -> tuple[str, str, Human | None, Mailbox | None]:
        """(entity, kind, person, mailbox) of an address."""
        entity = self.world.owner(address)
        if entity.startswith("mailbox-"):
            mb = self._mailboxes[entity]
            return entity, mb.kind, None, mb
        h = self.world.human(entity)
        if kind in ("app", "crm"):
            key = canonical_email(address)
            work = [e for e in (h.p.work_email, h.job and h.job.work_email) if e]
            kind = "work" if any(canonical_email(e) == key for e in work) else "personal"
            if key in self._dead and self._dead[key] == self.stream.t0 // 1000:
                kind = "typo"
        return entity, kind, h, None

    def _send(
        self, t: int, address: str, kind: str, category: list[str], subject: str, args: dict
    ) -> None:
        rng = self.rng
        key = canonical_email(address)
        marketing = kind not in ("app", "crm")
        if marketing and key in self._unsub:
            return
        entity, kind, h, mb = self._recipient(address, kind)
        raw = self.spell.email(address, Marks()) if rng.random() < 0.1 else address.strip()
        core = self._b64(22)
        smtp_id = f"<{core}@geopod-ismtpd-{self.ri(1, 40)}>"
        msg_id = (
            f"{core}.filterdrecv-{hex_id(rng, 10)}-{self._b64(5).lower()}-1-"
            f"{hex_id(rng, 8).upper()}-{self.ri(1, 64):X}.0"
        )
        first = Marks()
        if h is not None and kind in ("work", "personal"):
            first.share("personal_and_work_email", h.entity, kind)
        for name in args:
            if name in ("user_id", "userId"):
                first.add("sendgrid_user_id_arg")
            elif name in ("hubspot_id", "hs_contact_id"):
                first.add("sendgrid_hubspot_id_arg")
            else:
                first.add("sendgrid_crm_id_arg")
                if mb is not None:
                    first.add("crm_id_to_shared_mailbox")

        def event(kind_: str, ts: int, marks: Marks | None = None, **fields) -> bool:
            ev = {
                "email": raw,
                "timestamp": ts,
                "smtp-id": smtp_id,
                "event": kind_,
                "category": category,
                "sg_event_id": self._b64(22),
                "sg_message_id": msg_id,
                **fields,
                **args,
            }
            return self.ledger.emit(ts * 1000, "sendgrid", ev, entity, marks)

        if not event("processed", t, first):
            return
        if mb is not None and mb.kind == "role" and mb.entity_id not in self._mailed:
            self._mailed.add(mb.entity_id)
            self.tally.add("role_mailbox_mail")
        dead = self._dead.get(key)
        if dead is not None and t >= dead:
            if key in self._bounced:
                event("dropped", t + self.ri(0, 2), reason="Bounced Address", status="5.0.0")
                return
            self._bounced.add(key)
            marks = Marks()
            if kind == "work" and h is not None and h.job is not None:
                marks.add("job_change_bounce")
            event(
                "bounce",
                t + self.ri(1, 20),
                marks,
                reason="550 5.1.1 The email account that you tried to reach does not exist.",
                status="5.1.1",
                type="bounce",
                bounce_classification="Invalid Address",
            )
            return
        t_dlv = t + self.ri(1, 30)
        if not event("delivered", t_dlv, response="250 2.0.0 OK", tls=1):
            return
        self.delivered.append(
            Message(smtp_id, t_dlv, address.strip(), kind, entity, h, mb, subject, category)
        )
        reader = h if h is not None else (rng.choice(mb.readers) if mb and mb.readers else None)
        if reader is None:
            return
        domain = key.rpartition("@")[2]
        org = reader.org_at(t_dlv * 1000)
        at_work = kind in ("work", "role") and org is not None
        google = domain == "gmail.com" or (at_work and org is not None and org.google_mail)
        ts = t_dlv
        if reader.apple_mail:
            ts += self.ri(5, 3600)
            marks = Marks()
            marks.add("apple_mpp_open")
            event("open", ts, marks, useragent=_UA_MPP, ip=self._ip(_APPLE_PREFIXES),
                  sg_machine_open=True)
            if rng.random() >= 0.12:
                return
        elif rng.random() < 0.4:
            ts += self.ri(60, 3 * 86400)
            if google:
                marks = Marks()
                marks.add("google_proxy_open")
                event("open", ts, marks, useragent=_UA_GOOGLE, ip=self._ip(_GOOGLE_PREFIXES),
                      sg_machine_open=False)
            else:
                event("open", ts, useragent=rng.choice(_UA_CLIENTS),
                      ip=org.nat_ip if at_work and org else reader.home_ip, sg_machine_open=False)
            if rng.random() >= 0.25:
                if marketing and rng.random() < 0.03:
                    self._unsub.add(key)
                    event("unsubscribe", ts + self.ri(10, 300), useragent=rng.choice(_UA_CLIENTS),
                          ip=reader.home_ip)
                return
        else:
            return
        page = rng.choice(("pricing", "blog", "webinar", "product"))
        event(
            "click",
            ts + self.ri(3, 600),
            useragent=rng.choice(_UA_CLIENTS),
            ip=org.nat_ip if at_work and org else reader.home_ip,
            url=f"https://www.brightloop.io/{page}?utm_source=sendgrid&utm_medium=email"
            f"&utm_campaign={category[0]}",
            url_offset={"index": self.ri(0, 4), "type": "html"},
        )

    def _ip(self, prefixes: tuple[str, ...]) -> str:
        return f"{self.rng.choice(prefixes)}{self.ri(256)}.{self.ri(1, 255)}"

    def _b64(self, n: int) -> str:
        """``n`` random URL-safe base64 characters (SendGrid event/message IDs)."""
        raw = self.rng.getrandbits(6 * n + 6).to_bytes((6 * n + 13) // 8, "little")
        return base64.urlsafe_b64encode(raw)[:n].decode()

