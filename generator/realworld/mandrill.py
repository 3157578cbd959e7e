"""Mailchimp Transactional (Mandrill) inbound webhook events: the replies to SendGrid mail.

Contract: :meth:`MandrillSource.replies` goes through the delivered SendGrid messages in time
order and queues inbound events, the decoded elements of the webhook's ``mandrill_events``
form field: ``{"event": "inbound", "ts": <unix s>, "msg": {"headers": {..., "Message-Id",
"In-Reply-To": <the SendGrid message's smtp-id>, ...}, "from_email", "from_name", "to",
"email", "subject", "text", "html", "raw_msg", "tags", "sender", "spam_report", "dkim",
"spf"}}``. A reply belongs to the entity of its ``from_email`` (the person, or the shared
mailbox when the mailbox itself answers). Draws only from the stream's ``random.Random``.

Replies come mostly from the address the message went to, sometimes from the recipient's
other address (a personal address answering mail sent to work, or the reverse); mail to a
shared mailbox is answered by the mailbox or by one of its readers from their own address.
Out-of-office auto-replies (one per absence) come from the work address and their text
names the colleague who covers, with that colleague's address: evidence about someone else.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.utils import format_datetime

from idgraph.generator.ids import hex_id, uuid4_str
from idgraph.generator.realworld.ledger import Builder, Marks
from idgraph.generator.realworld.sendgrid import Message
from idgraph.generator.realworld.world import Human

__all__ = ["INBOUND_ADDRESS", "MandrillSource"]

INBOUND_ADDRESS = "replies@inbound.brightloop.io"
_OUTLOOK_DOMAINS = ("outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.es",
                    "live.nl", "outlook.de", "outlook.fr", "outlook.es", "outlook.jp")

#: Out-of-office auto-reply (subject, text) per language.
_OOO: dict[str, tuple[str, str]] = {
    "en": (
        "Automatic reply: {subject}",
        (
            "Thank you for your email. I am out of the office until {until} with limited "
            "access to email. For urgent matters please contact {cover} at {cover_email}."
            "\n\nBest regards,\n{name}"
        ),
    ),
    "de": (
        "Abwesenheitsnotiz: {subject}",
        (
            "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich {until} nicht im Büro. "
            "In dringenden Fällen wenden Sie sich bitte an {cover} ({cover_email})."
            "\n\nMit freundlichen Grüßen\n{name}"
        ),
    ),
    "fr": (
        "Réponse automatique : {subject}",
        (
            "Merci pour votre message. Je suis absent(e) jusqu'au {until}. Pour toute urgence, "
            "merci de contacter {cover} ({cover_email}).\n\nCordialement,\n{name}"
        ),
    ),
    "es": (
        "Respuesta automática: {subject}",
        (
            "Gracias por su mensaje. Estoy fuera de la oficina hasta el {until}. Para asuntos "
            "urgentes, contacte con {cover} ({cover_email}).\n\nSaludos,\n{name}"
        ),
    ),
    "nl": (
        "Automatisch antwoord: {subject}",
        (
            "Bedankt voor uw bericht. Ik ben afwezig tot en met {until}. Voor dringende zaken "
            "kunt u contact opnemen met {cover} ({cover_email}).\n\nMet vriendelijke groet,"
            "\n{name}"
        ),
    ),
}
_REPLIES = (
    "Thanks, that sounds interesting. Could we talk next week?",
    "Please take me off this list.",
    "Thanks for the note, I have forwarded this to our team.",
    "Yes, interested. What does pricing look like for 50 seats?",
    "Got it, thank you!",
    "Can you send me the slides from the webinar?",
)
_REPLY_RATE = {"sales_sequence": 0.1, "transactional": 0.02, "hubspot": 0.04}


class MandrillSource(Builder):
    """Inbound replies and auto-replies to delivered SendGrid messages."""

    def replies(self, messages: list[Message]) -> None:
        rng = self.rng
        answered_absence: set[str] = set()
        for m in messages:
            h = m.human
            ms = m.t * 1000
            if (
                h is not None
                and m.kind == "work"
                and h.away is not None
                and h.cover is not None
                and h.away[0] <= ms < h.away[1]
                and h.entity not in answered_absence
            ):
                answered_absence.add(h.entity)
                self._out_of_office(m, h)
            elif rng.random() < _REPLY_RATE.get(m.category[0], 0.008):
                self._reply(m)

    # ---- replies ---------------------------------------------------------------------

    def _reply(self, m: Message) -> None:
        rng = self.rng
        marks = Marks()
        ts = m.t + self.ri(600, 3 * 86400)
        ms = ts * 1000
        sender: Human | None = m.human
        from_email = m.address
        if m.mailbox is not None:
            domain = m.mailbox.address.rpartition("@")[2]
            readers = [
                r for r in m.mailbox.readers
                if m.mailbox.kind == "household"
                or (r.work_email_at(ms) or "").endswith("@" + domain)
            ]
            if readers and rng.random() < 0.5:
                sender = rng.choice(readers)
                if m.mailbox.kind == "household":
                    own = sender.personal_emails
                    from_email = own[0] if own else from_email
                else:
                    from_email = sender.work_email_at(ms) or from_email
                if from_email != m.address:
                    marks.add("reply_for_shared_mailbox")
                else:
                    sender = None
        elif sender is not None:
            other = None
            if rng.random() < 0.18:
                if m.kind == "work" and sender.personal_emails:
                    other = sender.personal_emails[0]
                elif m.kind == "personal":
                    other = sender.work_email_at(ms)
            if other is not None:
                from_email = other
                marks.add("reply_other_address")
            else:
                marks.add("reply_same_address")
        owner = self.world.owner(from_email)
        if sender is not None:
            name = self.spell.display_name(sender, marks)
        else:
            name = m.mailbox.address.partition("@")[0].title() if m.mailbox else ""
        body = rng.choice(_REPLIES)
        if sender is not None:  # signed with the first name
            body += "\n\n" + (name.split(", ")[1] if ", " in name else name.split()[0])
        payload = self._inbound(ts, from_email, name, m, f"Re: {m.subject}", body, False,
                                sender)
        self.ledger.emit(ms, "mandrill", payload, owner, marks)

    def _out_of_office(self, m: Message, h: Human) -> None:
        rng = self.rng
        cover = h.cover
        assert cover is not None and h.away is not None
        ts = m.t + self.ri(2, 180)
        marks = Marks()
        marks.add("out_of_office_reply")
        pool = {"DE": "de", "FR": "fr", "ES": "es", "NL": "nl"}.get(h.p.country, "en")
        subject_t, text_t = _OOO[pool]
        until = datetime.fromtimestamp(h.away[1] / 1000, UTC).strftime(
            "%d.%m.%Y" if pool in ("de", "nl") else ("%d/%m/%Y" if pool in ("fr", "es")
                                                     else "%B %d, %Y")
        )
        name = f"{h.p.given_name} {h.p.family_name}"
        cover_email = cover.work_email_at(ts * 1000) or cover.p.emails[0]
        text = text_t.format(
            until=until,
            cover=f"{cover.p.given_name} {cover.p.family_name}",
            cover_email=cover_email,
            name=name,
        )
        local, _, domain = m.address.partition("@")
        from_email = m.address if rng.random() < 0.9 else f"{local.title()}@{domain}"
        payload = self._inbound(ts, from_email, name, m, subject_t.format(subject=m.subject),
                                text, True, h)
        self.ledger.emit(ts * 1000, "mandrill", payload, self.world.owner(m.address), marks)

    # ---- the payload -----------------------------------------------------------------

    def _inbound(
        self,
        ts: int,
        from_email: str,
        from_name: str,
        m: Message,
        subject: str,
        text: str,
        auto: bool,
        sender: Human | None,
    ) -> dict:
        rng = self.rng
        message_id = self._message_id(from_email, sender, ts)
        domain = from_email.rpartition("@")[2].lower()
        date = format_datetime(datetime.fromtimestamp(ts, UTC))
        sent = format_datetime(datetime.fromtimestamp(m.t, UTC))
        from_header = f'"{from_name}" <{from_email}>' if from_name else from_email
        headers: dict[str, str] = {
            "Received": f"from mail-out.{domain} by "
                        f"mail{self.ri(1, 40)}.inbound.mandrillapp.com; {date}",
            "Date": date,
            "From": from_header,
            "To": f"Brightloop <{INBOUND_ADDRESS}>",
            "Subject": subject,
            "Message-Id": message_id,
            "In-Reply-To": m.smtp_id,
            "References": m.smtp_id,
            "Mime-Version": "1.0",
            "Content-Type": 'text/plain; charset="UTF-8"',
        }
        if auto:
            headers["Auto-Submitted"] = "auto-replied"
            headers["X-Auto-Response-Suppress"] = "All"
        else:
            text += f"\n\nOn {sent}, Brightloop <hello@brightloop.io> wrote:\n> {m.subject}"
        raw = "\r\n".join(f"{k}: {v}" for k, v in headers.items()) + "\r\n\r\n" + text
        html = "<div>" + "<br>".join(text.splitlines()) + "</div>"
        score = 0.0 if rng.random() < 0.7 else round(rng.uniform(0.1, 2.5), 1)
        return {
            "event": "inbound",
            "ts": ts,
            "msg": {
                "raw_msg": raw,
                "headers": headers,
                "text": text,
                "text_flowed": False,
                "html": html,
                "from_email": from_email,
                "from_name": from_name,
                "to": [[INBOUND_ADDRESS, "Brightloop"]],
                "email": INBOUND_ADDRESS,
                "subject": subject,
                "tags": [],
                "sender": None,
                "spam_report": {"score": score, "matched_rules": []},
                "dkim": {"signed": True, "valid": True},
                "spf": {"result": "pass", "detail": f"sender SPF authorized for {domain}"},
            },
        }

    def _message_id(self, from_email: str, sender: Human | None, ts: int) -> str:
        rng = self.rng
        domain = from_email.rpartition("@")[2].lower()
        org = sender.org_at(ts * 1000) if sender is not None else None
        workspace = org is not None and org.google_mail and domain == org.company.domain
        if domain in ("gmail.com", "googlemail.com") or workspace:
            raw = rng.getrandbits(300).to_bytes(38, "little")
            return f"<CA{base64.b64encode(raw).decode()[:48]}@mail.gmail.com>"
        if domain in _OUTLOOK_DOMAINS or (org is not None and domain == org.company.domain):
            box = rng.choice(("AM0", "DB9", "PA4", "BY5", "SN6"))
            box = f"{box}PR{self.ri(10, 99)}MB{self.ri(1000, 9999)}"
            farm = f"namprd{self.ri(10, 99)}"
            return f"<{box}{hex_id(rng, 24).upper()}@{box}.{farm}.prod.outlook.com>"
        if domain == "icloud.com":
            return f"<{uuid4_str(rng, upper=True)}@icloud.com>"
        return f"<{hex_id(rng, 12)}.{hex_id(rng, 8)}@{domain}>"
