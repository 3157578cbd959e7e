"""Salesforce: REST sObject records of Contacts, duplicate Leads and their later updates.

Contract: :class:`SalesforceSource` queues payloads shaped like ``GET
/services/data/v59.0/sobjects/{Contact,Lead}/{Id}`` responses on the stream, each yielding
one record keyed ``salesforce:<Id>`` (an update re-sends the whole record with a later
``LastModifiedDate``; a converted Lead gets no updates). IDs are 18-character Salesforce IDs
with the right key prefix (``003`` Contact, ``00Q`` Lead, ``001`` Account) and case-check
suffix (:func:`id18`), increasing per prefix. What :mod:`idgraph.resolver.adapters.salesforce`
reads back.
"""

from __future__ import annotations

from idgraph.generator.events import DAY_MS, HOUR_MS, EventStream
from idgraph.generator.model import Company, Person
from idgraph.generator.names import promoted_title
from idgraph.generator.variation import Variation

__all__ = ["SalesforceSource", "id18"]


_SF_API = "/services/data/v59.0"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

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


def id18(body: str) -> str:
    """The 18-character form of a 15-character Salesforce ID (its case-check suffix added)."""
    suffix = ""
    for i in range(3):
        chunk = body[5 * i : 5 * i + 5]
        bits = 0
        for j, ch in enumerate(chunk):
            if "A" <= ch <= "Z":
                bits |= 1 << j
        suffix += _SF_SUFFIX[bits]
    return body + suffix


class SalesforceSource:
    """Contacts (people with a company mostly), Leads (some duplicating a Contact)."""

    def __init__(self, stream: EventStream, vary: Variation) -> None:
        self.stream = stream
        self.vary = vary
        self.rng = stream.rng
        self.ri = stream.ri
        self.clock = stream.clock
        self.emit = stream.emit
        self._counter = {"003": 0, "00Q": 0, "001": 0}
        self._accounts: dict[str, str] = {}  # company domain -> Account Id

    def new_id(self, prefix: str) -> str:
        """A new ID of ``prefix``'s object type, above every earlier one of that type."""
        c = self._counter[prefix]
        if c == 0:
            c = self.ri(62**5, 62**6)
        c += self.ri(1, 40)
        self._counter[prefix] = c
        digits = []
        for _ in range(9):
            c, r = divmod(c, 62)
            digits.append(_B62[r])
        return id18(f"{prefix}5e0{''.join(reversed(digits))}")

    def _account(self, c: Company) -> str:
        """The Account Id of ``c`` (one per company)."""
        aid = self._accounts.get(c.domain)
        if aid is None:
            aid = self._accounts[c.domain] = self.new_id("001")
        return aid

    def contact(self, p: Person) -> str:
        """Queue a Contact for ``p`` (and its later updates); returns its Id."""
        rng = self.rng
        sid = self.new_id("003")
        ms = self.stream.when(0.0, 0.85)
        addr, known = self.vary.address_fields(p, 0.75)
        phone, mob = self.vary.phone_fields(p, known)
        company = p.company
        account = None
        if company is not None:
            aid = self._account(company)
            account = {
                "attributes": {"type": "Account", "url": f"{_SF_API}/sobjects/Account/{aid}"},
                "Name": self.vary.company_variant(company),
            }
        created = self.stream.created_before(ms)
        payload = {
            "attributes": {"type": "Contact", "url": f"{_SF_API}/sobjects/Contact/{sid}"},
            "Id": sid,
            "FirstName": self.vary.name_variant(p, True),
            "MiddleName": p.middle_name if p.middle_name and rng.random() < 0.5 else None,
            "LastName": self.vary.name_variant(p, False),
            "Email": self.vary.crm_email(p, 0.8),
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
        self._updates(p, payload, ms, known, key)
        return sid

    def lead(self, p: Person, converted_to: str | None) -> None:
        """Queue a Lead for ``p``: converted into Contact ``converted_to`` or still open (then
        with later updates)."""
        rng = self.rng
        sid = self.new_id("00Q")
        ms = self.stream.when(0.0, 0.9)
        addr, known = self.vary.address_fields(p, 0.6)
        phone, mob = self.vary.phone_fields(p, known)
        if p.company is not None:
            company = self.vary.company_variant(p.company)
        else:
            company = rng.choice(("[not provided]", "n/a", "Self-employed", "None", "-"))
        created = self.stream.created_before(ms)
        payload = {
            "attributes": {"type": "Lead", "url": f"{_SF_API}/sobjects/Lead/{sid}"},
            "Id": sid,
            "FirstName": self.vary.name_variant(p, True),
            "MiddleName": None,
            "LastName": self.vary.name_variant(p, False),
            "Email": self.vary.crm_email(p, 0.5),
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
            self._updates(p, payload, ms, known, key)

    def _updates(self, p: Person, payload: dict, ms: int, known: bool, key: str) -> None:
        """0-2 later versions of ``payload`` (title, phone, email, opt-out or a fixed typo)."""
        rng = self.rng
        n = 0 if rng.random() < 0.78 else (1 if rng.random() < 0.75 else 2)
        prev = payload
        is_contact = payload["attributes"]["type"] == "Contact"
        for _ in range(n):
            ms += self.ri(HOUR_MS, 60 * DAY_MS)
            if ms >= self.stream.end:
                return
            new = dict(prev)
            r = rng.random()
            if r < 0.35:
                new["Title"] = promoted_title(rng, prev.get("Title") or p.job_title)
            elif r < 0.6 and p.phones:
                new["MobilePhone"] = self.vary.phone_text(rng.choice(p.phones), known)
            elif r < 0.75:
                new["Email"] = self.vary.crm_email(p, 0.5 if is_contact else 0.3)
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
