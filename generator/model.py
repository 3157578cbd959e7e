"""The ground-truth population model: :class:`Person`, their :class:`Company` and
:class:`Device` objects.

Contract: plain mutable dataclasses compared by identity (``eq=False``), built by
:class:`~idgraph.generator.people.PeopleFactory` and then completed by the dataset assembly
(app account ``user_id``/``app_email``, shared devices). ``Person.person_id`` is
``person-NNNNNNN`` with NNNNNNN its index in ``SyntheticDataset.people``. A record of any
source belongs to exactly one person (``SyntheticDataset.truth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from idgraph.generator.countries import COUNTRIES
from idgraph.generator.phones import Phone

__all__ = ["Company", "Device", "Person"]


@dataclass(slots=True, eq=False)
class Company:
    """An employer: its name as people write it, its legal suffix and its mail domain."""

    name: str  # canonical display name without legal suffix, e.g. "Bluepeak Analytics"
    short: str  # the brand people also write, e.g. "Bluepeak"
    legal_suffix: str  # e.g. "GmbH"
    domain: str  # e.g. "bluepeak-analytics.de"
    country: str
    employees: list[str] = field(default_factory=list)  # person ids

    @property
    def legal_name(self) -> str:
        sep = ", " if self.legal_suffix in ("Inc.", "Ltd.", "LLC") and self.country == "US" else " "
        return f"{self.name}{sep}{self.legal_suffix}"


@dataclass(slots=True, eq=False)
class Device:
    """A phone/tablet app install or a web browser (cookie)."""

    kind: str  # "ios" | "android" | "web"
    anonymous_id: str  # Segment anonymousId (per install / per browser cookie)
    owner: str  # person id of the first household member to log in on it
    device_id: str | None = None  # IDFV / Android ID; None for web
    advertising_id: str | None = None  # IDFA / GAID when tracking is allowed
    ad_tracking: bool = False
    manufacturer: str | None = None
    model: str | None = None
    os_version: str | None = None
    tablet: bool = False
    ip: str = ""
    zero_idfa: bool = False  # sends the all-zero IDFA placeholder (junk, not an identifier)
    shared_with: list[str] = field(default_factory=list)  # other household members using it


@dataclass(slots=True, eq=False)
class Person:
    """One real human: the ground truth every generated record belongs to."""

    person_id: str
    given_name: str
    middle_name: str | None
    family_name: str
    gender: str  # "f" | "m"
    birth_date: date
    country: str
    locale: str
    timezone: str
    street: str
    city: str
    state: str | None
    postal_code: str
    company: Company | None
    job_title: str | None
    emails: list[str]  # first is the primary; canonical (lower-case) form
    work_email: str | None
    phones: list[Phone]
    devices: list[Device] = field(default_factory=list)
    user_id: str | None = None  # app account ID (Segment userId); None: never signs up
    app_email: str | None = None  # the email used to sign up in the app
    household_id: str | None = None
    nickname: str | None = None

    @property
    def region(self) -> str:
        return COUNTRIES[self.country].region

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def personal_emails(self) -> list[str]:
        return [e for e in self.emails if e != self.work_email]
