"""Segment events of the real world, built by the existing
:class:`~idgraph.generator.segment.SegmentSource` (same payload shapes: ``analytics.js`` and
the mobile libraries' identify/track/page/screen events).

Contract: :meth:`RealSegment.device` queues one device's events like the existing world
(anonymous sessions, an ``identify``, known events; a device's anonymous record belongs to
its first user, fixed in :attr:`Ledger.record_owner
<idgraph.generator.realworld.ledger.Ledger>`), plus the real-world traps:

* ``context.ip`` is the office NAT address at work (every colleague's), a carrier-grade NAT
  address (``100.64.0.0/10``, shared by many subscribers) on mobile data, or the home address;
* the family tablet: the owner's household member identifies on it too;
* the shared browser without ``reset()``: after the owner logs out, the next person's visits
  still carry the owner's ``userId`` (those events belong to the person who made them, the
  record to its majority owner), then that person identifies on the same ``anonymousId``;
* iOS/Android devices sending the all-zero advertising ID;
* legacy app users whose ``userId`` is their email address.

Draws only from the stream's ``random.Random``.
"""

from __future__ import annotations

from idgraph.generator.events import DAY_MS, HOUR_MS, MIN_MS, EventStream
from idgraph.generator.model import Device
from idgraph.generator.realworld.ledger import Ledger, Marks
from idgraph.generator.realworld.traps import Tally
from idgraph.generator.realworld.world import Human, World
from idgraph.generator.segment import SegmentSource
from idgraph.generator.variation import Variation

__all__ = ["RealSegment"]


class RealSegment(SegmentSource):
    """Per-device event sequences with shared IPs and shared devices."""

    def __init__(
        self, world: World, stream: EventStream, vary: Variation, ledger: Ledger, tally: Tally
    ) -> None:
        super().__init__(stream, vary, [h.p for h in world.humans])
        self.world = world
        self.ledger = ledger
        self.tally = tally
        self.no_reset = {d.anonymous_id: other for d, _, other in world.no_reset}

    def _ip(self, h: Human, d: Device, ms: int, marks: Marks) -> str:
        rng = self.rng
        org = h.org_at(ms)
        r = rng.random()
        if d.kind == "web":
            if org is not None and r < 0.55:
                marks.share("office_nat_ip", org.nat_ip, h.entity)
                return org.nat_ip
            return d.ip
        if r < 0.45:
            ip = rng.choice(self.world.carrier_ips[h.p.country])
            marks.share("carrier_nat_ip", ip, h.entity)
            return ip
        if r < 0.6 and org is not None:
            marks.share("office_nat_ip", org.nat_ip, h.entity)
            return org.nat_ip
        return d.ip

    def _queue(
        self,
        h: Human,
        d: Device,
        ms: int,
        user_id: str | None,
        typ: str | None = None,
        marks: Marks | None = None,
    ) -> bool:
        """Queue one event made by ``h`` on ``d`` (an identify when ``typ == "identify"``)."""
        marks = marks or Marks()
        if typ == "identify":
            ev = self._identify(h.p, d, ms)
            email = h.p.app_email or ""
            kind = "work" if email in (h.p.work_email, h.job and h.job.work_email) else "personal"
            marks.share("personal_and_work_email", h.entity, kind)
        else:
            ev = self._event(h.p, d, ms, user_id, typ)
        ev["context"]["ip"] = self._ip(h, d, ms, marks)
        return self.ledger.emit(ms, "segment", ev, h.entity, marks)

    def device(self, h: Human, d: Device) -> None:  # type: ignore[override]
        """Queue the events of ``d``, first used by ``h``."""
        rng = self.rng
        p = h.p
        ms = self.stream.when(0.0, 0.8)
        end = self.stream.end
        self.ledger.record_owner[f"segment:{d.anonymous_id}"] = h.entity
        zero = Marks()
        if d.zero_idfa:
            zero.add("zero_advertising_id")
        for _ in range(1 + (rng.random() < 0.45) + (rng.random() < 0.2)):
            if self._queue(h, d, ms, None, marks=zero):
                zero = Marks()
            ms += self.ri(5_000, 15 * MIN_MS)
        shared = bool(d.shared_with)
        identifies = p.user_id is not None and (
            shared or rng.random() < (0.9 if d.kind != "web" else 0.65)
        )
        if not identifies or ms >= end:
            if rng.random() < 0.4:  # a later anonymous visit
                self._queue(h, d, ms + self.ri(HOUR_MS, 20 * DAY_MS), None)
            return
        if h.legacy_user_id:
            self.tally.add("email_as_user_id")
        self._queue(h, d, ms, None, "identify")
        identify_ms = ms
        n_known = (rng.random() < 0.8) + (rng.random() < 0.5) + (rng.random() < 0.3)
        if shared:
            n_known = max(1, n_known)
        for k in range(n_known):
            ms += self.ri(5_000, 10 * MIN_MS) if k == 0 else self.ri(HOUR_MS, 15 * DAY_MS)
            self._queue(h, d, ms, p.user_id)
        other = self.no_reset.get(d.anonymous_id)
        if other is not None:
            # logged out without reset(): the next person's visit still says the owner's userId
            t = ms + self.ri(HOUR_MS, 10 * DAY_MS)
            leak = Marks()
            leak.add("leaked_user_id_event")
            self._queue(other, d, t, p.user_id, "page", leak)
            t += self.ri(MIN_MS, 20 * MIN_MS)
            marks = Marks()
            marks.add("shared_browser_no_reset")
            self._queue(other, d, t, None, "identify", marks)
            for _ in range(self.ri(0, 3)):
                t += self.ri(MIN_MS, 3 * DAY_MS)
                self._queue(other, d, t, other.p.user_id)
            return
        for other_id in d.shared_with:  # the family tablet
            other = self.world.human(other_id)
            t = identify_ms + self.ri(HOUR_MS, 20 * DAY_MS)
            if t >= end:
                t = identify_ms + (end - identify_ms) // 2
            marks = Marks()
            marks.add("family_tablet")
            if not self._queue(other, d, t, None, "identify", marks):
                continue
            for _ in range(self.ri(0, 3)):
                t += self.ri(MIN_MS, 3 * DAY_MS)
                self._queue(other, d, t, other.p.user_id)
