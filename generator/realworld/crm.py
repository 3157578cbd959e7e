"""Salesforce and HubSpot records of the real world, in the exact payload shapes of
:mod:`idgraph.generator.salesforce` and :mod:`idgraph.generator.hubspot` (REST sObject
Contact/Lead records; CRM v3 contact objects with string property values).

Contract: :meth:`CrmSource.person` queues the CRM history of one person and records what the
mail sources need (:attr:`CrmSource.records`: ID, the Email as written, when). Every record is
about the person (entity ``person-...``), whatever its Email: a Contact whose Email is
``info@acme.com`` is still about the person the sales rep met. Draws only from the stream's
``random.Random``.

Traps put in (tallied through :class:`~idgraph.generator.realworld.ledger.Marks`): role and
household mailboxes as Email, the company switchboard (with extensions) and the household
landline as phones, placeholder companies (``Individual``, ``[not provided]``, ``N/A``) on
unrelated people, duplicate Contacts, converted Leads (``IsConverted``,
``ConvertedContactId``) and unconverted duplicate Leads, HubSpot ``hs_additional_emails``,
mistyped addresses, name variants (:class:`~idgraph.generator.realworld.spelling.Spelling`),
and job changes: a new Contact/contact at the new employer with the new work address (the
personal address kept on one of them) and the old Contact marked bounced
(``EmailBouncedReason``/``EmailBouncedDate``) once the old address bounces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from idgraph.generator.emails import canonical_email
from idgraph.generator.events import DAY_MS, HOUR_MS, MIN_MS, EventStream
from idgraph.generator.hubspot import contact_object, contact_version
from idgraph.generator.names import promoted_title
from idgraph.generator.realworld.ledger import Builder, Ledger, Marks
from idgraph.generator.realworld.spelling import Spelling
from idgraph.generator.realworld.traps import Tally
from idgraph.generator.realworld.world import Human, Org, World
from idgraph.generator.salesforce import SalesforceSource
from idgraph.generator.variation import Variation

__all__ = ["CrmRecord", "CrmSource"]

_SF_API = "/services/data/v59.0"
_PLACEHOLDER_ACCOUNTS = ("Individual", "Individual", "Individual", "[not provided]", "N/A")
_PLACEHOLDER_COMPANIES = ("[not provided]", "N/A", "Individual", "n/a", "-", "none")
_LEAD_STATUS = ("Open - Not Contacted", "Working - Contacted", "Closed - Not Converted")
_LEAD_SOURCE = ("Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Webinar", "Other")
_BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist."


@dataclass(slots=True)
class CrmRecord:
    """A CRM record the mail sources may send to (sales sequences, HubSpot emails)."""

    source: str  # "salesforce" | "hubspot"
    record_id: str
    email: str | None  # the Email as written on the record
    human: Human
    ms: int  # first seen


class _Fields(NamedTuple):
    """The person values of one CRM record, as written (drawn by :meth:`CrmSource._fields`)."""

    addr: dict[str, str | None]
    known: bool
    first: str
    last: str
    phone: str | None
    mobile: str | None
    home: str | None


class CrmSource(Builder):
    """Salesforce Contacts/Leads and HubSpot contacts, person by person."""

    def __init__(
        self,
        world: World,
        stream: EventStream,
        vary: Variation,
        spelling: Spelling,
        ledger: Ledger,
        tally: Tally,
    ) -> None:
        super().__init__(world, stream, spelling, ledger)
        self.vary = vary
        self.tally = tally
        self.ids = SalesforceSource(stream, vary)  # Salesforce ID allocation
        self.accounts: dict[str, str] = {}  # company domain / placeholder name -> Account Id
        self.records: list[CrmRecord] = []
        self._hs_next = 0

    # ---- one person ------------------------------------------------------------------

    def person(self, h: Human) -> None:
        """Queue the Salesforce and HubSpot records of ``h``."""
        rng = self.rng
        stream = self.stream
        job = h.job
        before = job.at if job is not None else stream.t0 + int(stream.span * 0.85)
        in_sf = rng.random() < (0.7 if h.org is not None else 0.3)
        contact = None
        if in_sf:
            ms = self._when(before)
            contact = self.sf_contact(h, ms, h.org)
            if contact is not None:
                if rng.random() < 0.07:
                    dup = self.sf_contact(h, self._when(before), h.org, duplicate=True)
                    if dup is not None:
                        self.tally.add("duplicate_contact")
                r = rng.random()
                if r < 0.1:
                    self.sf_lead(h, ms + self.ri(MIN_MS, HOUR_MS), h.org, converted_to=contact)
                elif r < 0.18:
                    self.sf_lead(h, self._when(before), h.org, duplicate=True)
        elif (
            rng.random() < 0.14
            and self.sf_lead(h, self._when(before), h.org)
            and rng.random() < 0.2
        ):
            self.sf_lead(h, self._when(before), h.org, duplicate=True)
        in_hs = rng.random() < (0.55 if in_sf else 0.4)
        if in_hs:
            self.hs_contact(h, self._when(before), h.org)
        if job is None:
            return
        self.tally.add("job_change")
        new_ms = job.at + self.ri(DAY_MS, 60 * DAY_MS)
        personal = h.personal_emails
        if in_sf or rng.random() < 0.5:
            email = job.work_email if rng.random() < 0.8 or not personal else personal[0]
            self.sf_contact(h, new_ms, job.org, email=email, fresh=True)
        if in_hs or rng.random() < 0.4:
            extra = [personal[0]] if personal and rng.random() < 0.7 else None
            self.hs_contact(h, new_ms + self.ri(0, 5 * DAY_MS), job.org,
                            email=job.work_email, extra=extra, fresh=True)

    def _when(self, before: int) -> int:
        """A first-seen time in the window before ``before``."""
        t0 = self.stream.t0
        return t0 + self.ri(0, max(1, before - t0))

    # ---- values ----------------------------------------------------------------------

    def crm_email(self, h: Human, ms: int, prefer_work: float, marks: Marks) -> str:
        """The Email a CRM record of ``h`` holds at ``ms`` (as written)."""
        rng = self.rng
        org = h.org_at(ms)
        if org is not None and org.roles and rng.random() < 0.09:
            mb = org.roles[0] if rng.random() < 0.6 else rng.choice(org.roles)
            marks.share("role_mailbox_on_crm", mb.entity_id, h.entity)
            return self.spell.email(mb.address, marks)
        hh = h.household
        if hh is not None and hh.mailbox is not None and rng.random() < 0.35:
            marks.share("household_mailbox", hh.mailbox.entity_id, h.entity)
            return self.spell.email(hh.mailbox.address, marks)
        work = h.work_email_at(ms)
        personal = h.personal_emails
        if work is not None and (rng.random() < prefer_work or not personal):
            email, kind = work, "work"
        else:
            email, kind = (rng.choice(personal), "personal") if personal else (h.p.emails[0], "")
        if rng.random() < 0.012:
            typo = self.vary.email_typo(h.p, email)
            if typo is not None:
                marks.add("email_typo")
                return typo
        if kind:
            marks.share("personal_and_work_email", h.entity, kind)
        return self.spell.email(email, marks)

    def _phones(
        self, h: Human, org: Org | None, ms: int, known: bool, marks: Marks
    ) -> tuple[str | None, str | None, str | None]:
        """(office Phone, MobilePhone, HomePhone) as written."""
        rng = self.rng
        mobile = next((x for x in h.p.phones if x.mobile), None)
        own_line = next((x for x in h.p.phones if not x.mobile), None)
        phone = mob = home = None
        if org is not None:
            phone = self.spell.office_phone(h, org, ms, known, marks)
        elif own_line is not None and rng.random() < 0.6:
            phone = self.vary.phone_text(own_line, known)
        if mobile is not None and rng.random() < 0.6:
            mob = self.vary.phone_text(mobile, known)
        hh = h.household
        if hh is not None and hh.landline is not None and rng.random() < 0.55:
            home = self.vary.phone_text(hh.landline, known)
            marks.share("household_landline", hh.landline.e164, h.entity)
        elif own_line is not None and org is not None and rng.random() < 0.3:
            home = self.vary.phone_text(own_line, known)
        return phone, mob, home

    def _fields(self, h: Human, org: Org | None, ms: int, p_known: float, marks: Marks
                ) -> _Fields:
        """Address fields (as known with probability ``p_known``), name and phones of a
        record of ``h`` at ``ms``."""
        addr, known = self.vary.address_fields(h.p, p_known)
        first, last = self.spell.name(h, marks)
        return _Fields(addr, known, first, last, *self._phones(h, org, ms, known, marks))

    def _queue(self, source: str, record_id: str, payload: dict, email: str | None, h: Human,
               ms: int, marks: Marks) -> bool:
        """Emit the first version of a record of ``h`` and list it in :attr:`records`;
        False when ``ms`` is past the window."""
        if not self.ledger.emit(ms, source, payload, h.entity, marks):
            return False
        self.records.append(CrmRecord(source, record_id, email, h, ms))
        return True

    def _account(self, key: str) -> str:
        aid = self.accounts.get(key)
        if aid is None:
            aid = self.accounts[key] = self.ids.new_id("001")
        return aid

    # ---- Salesforce ------------------------------------------------------------------

    def sf_contact(
        self,
        h: Human,
        ms: int,
        org: Org | None,
        *,
        email: str | None = None,
        duplicate: bool = False,
        fresh: bool = False,
    ) -> str | None:
        """Queue a Contact of ``h`` first seen at ``ms`` (and its updates); its Id, or None
        when ``ms`` is past the window."""
        rng = self.rng
        marks = Marks()
        sid = self.ids.new_id("003")
        f = self._fields(h, org, ms, 0.75, marks)
        addr = f.addr
        if email is None:
            email = self.crm_email(h, ms, 0.3 if duplicate else (0.8 if org else 0.0), marks)
        else:
            email = self.spell.email(email, marks)
        account = None
        aid = None
        if org is not None:
            aid = self._account(org.company.domain)
            name = self.vary.company_variant(org.company)
        elif rng.random() < 0.6:
            name = rng.choice(_PLACEHOLDER_ACCOUNTS)
            aid = self._account(f"placeholder:{name}")
            marks.add("placeholder_company")
        if aid is not None:
            account = {
                "attributes": {"type": "Account", "url": f"{_SF_API}/sobjects/Account/{aid}"},
                "Name": name,
            }
        created = ms if fresh else self.stream.created_before(ms)
        stamp = self.clock.sf(ms)
        payload = {
            "attributes": {"type": "Contact", "url": f"{_SF_API}/sobjects/Contact/{sid}"},
            "Id": sid,
            "FirstName": f.first,
            "MiddleName": h.p.middle_name if h.p.middle_name and rng.random() < 0.4 else None,
            "LastName": f.last,
            "Email": email,
            "Phone": f.phone,
            "MobilePhone": f.mobile,
            "HomePhone": f.home,
            "Title": h.title_at(ms) if org is not None else None,
            "Birthdate": h.p.birth_date.isoformat() if rng.random() < 0.3 else None,
            "MailingStreet": addr["street"],
            "MailingCity": addr["city"],
            "MailingState": addr["state"],
            "MailingPostalCode": addr["postal"],
            "MailingCountry": addr["country"],
            "AccountId": aid,
            "Account": account,
            **self._sf_flags(created, stamp),
        }
        if not self._queue("salesforce", sid, payload, email, h, ms, marks):
            return None
        self._sf_updates(h, payload, ms, f.known)
        return sid

    def sf_lead(
        self,
        h: Human,
        ms: int,
        org: Org | None,
        *,
        converted_to: str | None = None,
        duplicate: bool = False,
    ) -> str | None:
        """Queue a Lead of ``h``: converted into Contact ``converted_to`` at ``ms``, or open
        (with later updates)."""
        rng = self.rng
        marks = Marks()
        sid = self.ids.new_id("00Q")
        f = self._fields(h, org, ms, 0.6, marks)
        addr = f.addr
        email = self.crm_email(h, ms, 0.5, marks)
        if org is not None:
            company = self.vary.company_variant(org.company)
        else:
            company = rng.choice(_PLACEHOLDER_COMPANIES)
            marks.add("placeholder_company")
        if converted_to is not None:
            marks.add("converted_lead")
        elif duplicate:
            marks.add("duplicate_lead")
        created = self.stream.created_before(ms) if converted_to is None else (
            ms - self.ri(HOUR_MS, 90 * DAY_MS)
        )
        stamp = self.clock.sf(ms)
        payload = {
            "attributes": {"type": "Lead", "url": f"{_SF_API}/sobjects/Lead/{sid}"},
            "Id": sid,
            "FirstName": f.first,
            "MiddleName": None,
            "LastName": f.last,
            "Email": email,
            "Phone": f.phone or f.home,
            "MobilePhone": f.mobile,
            "Title": h.title_at(ms) if org is not None and rng.random() < 0.7 else None,
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
            "ConvertedAccountId": (
                self.accounts.get(org.company.domain) if converted_to and org else None
            ),
            "ConvertedDate": stamp[:10] if converted_to else None,
            **self._sf_flags(created, stamp),
        }
        if not self._queue("salesforce", sid, payload, email, h, ms, marks):
            return None
        if converted_to is None:
            self._sf_updates(h, payload, ms, f.known)
        return sid

    def _sf_flags(self, created: int, stamp: str) -> dict:
        """The fields that end every Contact and Lead: opt-out and bounce flags (not yet),
        ``CreatedDate`` and the modification stamps."""
        return {
            "HasOptedOutOfEmail": False,
            "EmailBouncedReason": None,
            "EmailBouncedDate": None,
            "CreatedDate": self.clock.sf(created),
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
            "IsDeleted": False,
        }

    def _sf_updates(self, h: Human, payload: dict, ms: int, known: bool) -> None:
        """Later versions of a record: 0-2 edits, and the bounce flag once a job changer's
        old work address (the record's Email) bounces."""
        rng = self.rng
        n = 0 if rng.random() < 0.78 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        key = h.entity
        job = h.job
        for _ in range(n):
            ms += self.ri(HOUR_MS, 60 * DAY_MS)
            new = dict(prev)
            r = rng.random()
            if r < 0.35 and prev.get("Title"):
                new["Title"] = promoted_title(rng, prev["Title"])
            elif r < 0.6 and h.p.phones:
                new["MobilePhone"] = self.vary.phone_text(rng.choice(h.p.phones), known)
            elif r < 0.85:
                new["HasOptedOutOfEmail"] = True
            else:
                new["FirstName"] = h.p.given_name  # a typo fixed
                new["LastName"] = h.p.family_name
            if not self._sf_version(new, ms, key):
                return
            prev = new
        email = prev.get("Email")
        old = h.p.work_email
        if job is not None and email and old and canonical_email(email) == canonical_email(old):
            bounced = max(ms, job.bounce_at) + self.ri(HOUR_MS, 4 * DAY_MS)
            new = dict(prev)
            new["EmailBouncedReason"] = _BOUNCE_REASON
            new["EmailBouncedDate"] = self.clock.sf(bounced)
            self._sf_version(new, bounced, key)

    def _sf_version(self, new: dict, ms: int, entity: str) -> bool:
        stamp = self.clock.sf(ms)
        new["LastModifiedDate"] = stamp
        new["SystemModstamp"] = stamp
        return self.ledger.emit(ms, "salesforce", new, entity)

    # ---- HubSpot ---------------------------------------------------------------------

    def hs_contact(
        self,
        h: Human,
        ms: int,
        org: Org | None,
        *,
        email: str | None = None,
        extra: list[str] | None = None,
        fresh: bool = False,
    ) -> str | None:
        """Queue a HubSpot contact of ``h`` first seen at ``ms`` and 0-2 updates."""
        rng = self.rng
        marks = Marks()
        if self._hs_next == 0:
            self._hs_next = self.ri(1000, 90000)
        self._hs_next += self.ri(1, 60)
        hid = str(self._hs_next)
        f = self._fields(h, org, ms, 0.55, marks)
        addr = f.addr
        if email is None:
            email = self.crm_email(h, ms, 0.55 if org else 0.0, marks)
        else:
            email = self.spell.email(email, marks)
        if extra is None and rng.random() < 0.3:
            own = [*h.p.emails]
            if h.job is not None and ms >= h.job.at:
                own.append(h.job.work_email)
            extra = [e for e in own if canonical_email(e) != canonical_email(email)] or None
        additional = None
        if extra:
            additional = ";".join(self.spell.email(e, marks).strip() for e in extra)
            marks.add("hs_additional_emails")
        if org is not None:
            company = self.vary.company_variant(org.company) if rng.random() < 0.85 else None
        elif rng.random() < 0.5:
            company = rng.choice(_PLACEHOLDER_COMPANIES)
            marks.add("placeholder_company")
        else:
            company = None
        created = ms if fresh else self.stream.created_before(ms)
        created_z, updated_z = self.clock.z(created), self.clock.z(ms)
        props = {
            "address": addr["street"],
            "city": addr["city"],
            "company": company,
            "country": addr["country"],
            "createdate": created_z,
            "date_of_birth": h.p.birth_date.isoformat() if rng.random() < 0.2 else None,
            "email": email,
            "firstname": f.first,
            "hs_additional_emails": additional,
            "hs_object_id": hid,
            "jobtitle": h.title_at(ms) if org is not None and rng.random() < 0.7 else None,
            "lastmodifieddate": updated_z,
            "lastname": f.last,
            "mobilephone": f.mobile,
            "phone": f.phone or f.home,
            "state": addr["state"],
            "zip": addr["postal"],
        }
        payload = contact_object(hid, props, created_z, updated_z)
        if not self._queue("hubspot", hid, payload, email, h, ms, marks):
            return None
        n = 0 if rng.random() < 0.8 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        for _ in range(n):
            ms += self.ri(HOUR_MS, 45 * DAY_MS)
            props = dict(prev["properties"])
            r = rng.random()
            if r < 0.4 and props.get("jobtitle"):
                props["jobtitle"] = promoted_title(rng, props["jobtitle"])
            elif r < 0.7 and h.p.phones:
                props["phone"] = self.vary.phone_text(rng.choice(h.p.phones), f.known)
            else:
                props["firstname"] = h.p.given_name
                props["lastname"] = h.p.family_name
            new = contact_version(prev, props, self.clock.z(ms))
            if not self.ledger.emit(ms, "hubspot", new, h.entity):
                break
            prev = new
        return hid
