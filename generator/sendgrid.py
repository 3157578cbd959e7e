"""SendGrid: Event Webhook events of campaign mail to people's addresses.

Contract: :class:`SendGridSource` plays campaign sends in time order and queues their webhook
events (processed, delivered or bounce, open, click, unsubscribe), one record each, keyed
``sendgrid:<normalised email>``, until ``budget`` records are queued. Recipients are people's
addresses as mailing lists hold them (work addresses half as often) plus the typo'd addresses
CRM records carried (:attr:`Variation.typo_emails <idgraph.generator.variation.Variation>`),
which bounce. Nothing is sent to an address after its unsubscribe. What
:mod:`idgraph.resolver.adapters.sendgrid` reads back.
"""

from __future__ import annotations

import base64
from operator import itemgetter

from idgraph.generator.events import DAY_MS, EventStream
from idgraph.generator.ids import hex_id
from idgraph.generator.model import Person
from idgraph.generator.variation import Variation, email_caps

__all__ = ["SendGridSource"]

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


class SendGridSource:
    """Campaign mail: about 2.5 webhook events per send."""

    def __init__(self, stream: EventStream, vary: Variation, people: list[Person]) -> None:
        self.stream = stream
        self.vary = vary
        self.people = people
        self.rng = stream.rng
        self.ri = stream.ri
        self.emit = stream.emit
        self._made = 0  # records queued
        self._unsub_at: dict[str, int] = {}  # address key -> unsubscribe time (unix s)

    def fill(self, budget: int) -> None:
        """Queue webhook events of campaign sends, ``budget`` records in all (fewer if the
        window ends first)."""
        rng = self.rng
        end_s = self.stream.end // 1000
        # recipients: (person, address as stored in the ESP list, is_typo)
        pool: list[tuple[Person, str, bool]] = []
        for p in self.people:
            for e in p.emails:
                if e == p.work_email and rng.random() < 0.5:
                    continue
                pool.append((p, e, False))
            for e in self.vary.typo_emails.get(p.person_id, ()):
                pool.append((p, e, True))
        if not pool:
            pool = [(p, p.emails[0], False) for p in self.people]
        n_campaigns = max(3, self.stream.span // (2 * DAY_MS))
        campaigns = sorted((self.stream.when(0.0, 0.98) // 1000, i) for i in range(n_campaigns))
        campaigns = [(t, _CAMPAIGNS[i % len(_CAMPAIGNS)]) for t, i in campaigns]
        # Sends are drawn up front and played in time order, so nothing reaches an address
        # after its unsubscribe. About 2.5 events per send; a top-up batch (without
        # unsubscribes) fills whatever the first batch left of the budget.
        self._made = 0
        self._unsub_at: dict[str, int] = {}
        n_sends = max(1, round(budget / 2.5))
        for allow_unsub in (True, False, False):
            sends = []
            for i in range(n_sends):
                send_at, category = campaigns[self.ri(len(campaigns))]
                sends.append((send_at + self.ri(0, 1800), i, category, rng.choice(pool)))
            sends.sort(key=itemgetter(0, 1))
            for t, _, category, (p, email, is_typo) in sends:
                if self._made >= budget:
                    return
                if t < end_s:
                    self._send(p, email, is_typo, t, category, budget, allow_unsub)
            n_sends = max(1, round((budget - self._made) / 2.2))

    def _send(
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
        end_s = self.stream.end // 1000
        key = self.stream.email_key(email)
        unsub = self._unsub_at.get(key)
        if unsub is not None and (t >= unsub or not allow_unsub):
            return
        raw = email if rng.random() < 0.93 else email_caps(email)
        core = self._b64(22)
        smtp_id = f"<{core}@geopod-ismtpd-{self.ri(1, 40)}>"
        msg_id = (
            f"{core}.filterdrecv-{hex_id(rng, 10)}-{self._b64(5).lower()}-1-"
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
            if ts >= end_s or self._made >= budget:
                break
            ev = {
                "email": raw,
                "timestamp": ts,
                "smtp-id": smtp_id,
                "event": ev_type,
                "category": list(category),
                "sg_event_id": self._b64(22),
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
                    ev["ip"] = p.devices[0].ip if p.devices else _random_ip(self.stream)
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
                    self._unsub_at[key] = ts
            self.emit(ts * 1000, "sendgrid", ev, record_key, p.person_id)
            self._made += 1

    def _b64(self, n: int) -> str:
        """``n`` random URL-safe base64 characters (SendGrid event/message IDs)."""
        raw = self.rng.getrandbits(6 * n + 6).to_bytes((6 * n + 13) // 8, "little")
        return base64.urlsafe_b64encode(raw)[:n].decode()


def _random_ip(stream: EventStream) -> str:
    return f"{stream.ri(11, 220)}.{stream.ri(256)}.{stream.ri(256)}.{stream.ri(1, 255)}"
