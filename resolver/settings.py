"""Settings of the resolver: normalisation, deterministic linking, probabilistic matching
and regions (sections ``[normalization]``, ``[linking]``, ``[matching]``, ``[regions]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from idgraph.core.sections import Section

EU_COUNTRIES = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "CH"]
US_COUNTRIES = ["US", "CA", "MX", "BR", "AR", "CL", "CO"]
APAC_COUNTRIES = ["JP", "AU", "NZ", "SG", "IN", "KR", "HK", "TW", "ID", "MY", "TH", "PH", "VN"]


def _default_country_regions() -> dict[str, str]:
    out = {c: "eu" for c in EU_COUNTRIES}
    out["GB"] = "uk"
    out.update({c: "us" for c in US_COUNTRIES})
    out.update({c: "apac" for c in APAC_COUNTRIES})
    return out


class NormalizationSettings(Section):
    """How identifiers are normalised before they are compared."""

    gmail_remove_dots: bool = True
    """Drop dots in the local part for the domains in ``dot_insensitive_domains``."""
    dot_insensitive_domains: list[str] = ["gmail.com", "googlemail.com"]
    plus_tag_domains: list[str] = [
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "icloud.com", "fastmail.com",
    ]
    """Domains whose ``local+tag@domain`` addresses are the same mailbox as ``local@domain``."""
    domain_aliases: dict[str, str] = {"googlemail.com": "gmail.com"}
    default_phone_region: str = "US"
    """ISO country used to parse national-format phone numbers when the record has no country."""
    sendgrid_custom_args: dict[str, str] = {
        "user_id": "user:segment",
        "uid": "user:segment",
        "app_user_id": "user:segment",
        "segment_user_id": "user:segment",
        "salesforce_id": "crm:salesforce",
        "sfdc_id": "crm:salesforce",
        "sf_id": "crm:salesforce",
        "salesforce_contact_id": "crm:salesforce",
        "sfdc_contact_id": "crm:salesforce",
        "sf_contact_id": "crm:salesforce",
        "salesforce_lead_id": "crm:salesforce",
        "sfdc_lead_id": "crm:salesforce",
        "sf_lead_id": "crm:salesforce",
        "contact_id": "crm:salesforce",
        "lead_id": "crm:salesforce",
        "hubspot_id": "crm:hubspot",
        "hubspot_contact_id": "crm:hubspot",
        "hs_contact_id": "crm:hubspot",
        "hs_object_id": "crm:hubspot",
    }
    """Custom arguments of sent email (SendGrid ``custom_args``/``unique_args``, Mandrill
    ``metadata``) that carry an identifier: argument name -> identifier type. Names match
    case-insensitively, ignoring ``_``, ``-`` and spaces (``userId`` is ``user_id``).
    Arguments not listed are ignored, except that a value shaped like a Salesforce Contact
    or Lead ID (``003``/``00Q``, 15 or 18 characters) is always ``crm:salesforce``."""
    placeholder_companies: list[str] = [
        "Individual", "Private", "Self", "Self-employed", "N/A", "NA", "none", "-",
        "[not provided]", "Not Provided", "Unknown", "Privat", "Privatperson", "Particulier",
        "Home", "Test",
    ]
    """Company values that name no company (compared case-insensitively on letters and
    digits only, so ``[N/A]``, ``n.a.`` and ``NA`` are one entry): such a value gives no
    ``company`` attribute."""


class IdentifierRule(Section):
    """Deterministic linking rule for one identifier type (``email``, ``crm:salesforce``...)."""

    links: bool = True
    """Records sharing a value of this type are linked (the deterministic rule)."""
    max_per_profile: int = Field(default=10, ge=1)
    """A link that would give a profile more distinct values of this type is rejected."""
    shareable: bool = False
    """The value may legitimately belong to several people (a household tablet): it links an
    anonymous profile (one with no non-shareable identifier) to a known one, but never joins
    two known profiles. Such a rejected link leaves the identifier shared."""
    priority: int = 50
    """When one record touches several profiles, links via higher-priority types are made
    first, so limits reject the lower-priority ones."""


def _default_identifier_rules() -> dict[str, IdentifierRule]:
    return {
        "crm:salesforce": IdentifierRule(max_per_profile=2, priority=100),  # a Contact and a Lead
        "crm:hubspot": IdentifierRule(max_per_profile=1, priority=100),
        "user": IdentifierRule(max_per_profile=1, priority=90),  # any user:<source> type
        "ext": IdentifierRule(max_per_profile=1, priority=90),
        "email": IdentifierRule(max_per_profile=6, priority=80),
        "phone": IdentifierRule(max_per_profile=4, priority=70),
        "device": IdentifierRule(max_per_profile=12, shareable=True, priority=40),
        "idfa": IdentifierRule(max_per_profile=8, shareable=True, priority=40),
        "gaid": IdentifierRule(max_per_profile=8, shareable=True, priority=40),
        "cookie": IdentifierRule(max_per_profile=50, shareable=True, priority=30),
        # an email's Message-ID: a reply (Mandrill inbound In-Reply-To) joins the replier to
        # the recipient of the message; one per message, so no practical limit
        "message": IdentifierRule(max_per_profile=1_000_000, priority=20),
    }


#: Local parts of role and team mailboxes (several languages): seeds of the generic values.
ROLE_MAILBOX_LOCAL_PARTS = [
    # English
    "info", "sales", "support", "help", "helpdesk", "contact", "contactus", "hello",
    "office", "admin", "administrator", "team", "marketing", "billing", "accounts",
    "accounting", "finance", "invoices", "invoice", "hr", "jobs", "careers", "recruiting",
    "press", "media", "pr", "legal", "privacy", "compliance", "security", "abuse",
    "postmaster", "hostmaster", "webmaster", "it", "service", "customerservice",
    "customercare", "enquiries", "inquiries", "orders", "order", "shop", "store", "booking",
    "bookings", "reservations", "reception", "frontdesk", "events", "partners",
    "partnerships", "procurement", "purchasing", "ops", "operations", "mail", "email",
    "general", "feedback", "newsletter", "staff", "all", "everyone", "board",
    # German
    "kontakt", "vertrieb", "verkauf", "buero", "büro", "empfang", "zentrale", "bestellung",
    "rechnung", "buchhaltung", "personal", "bewerbung", "presse", "kundenservice",
    "kundendienst", "anfrage", "anfragen", "verwaltung", "sekretariat",
    # French
    "bureau", "ventes", "commercial", "accueil", "compta", "comptabilite", "facturation",
    "recrutement", "direction", "secretariat", "contactez",
    # Spanish / Portuguese / Italian
    "ventas", "contacto", "oficina", "soporte", "ayuda", "administracion", "facturacion",
    "recepcion", "vendas", "contato", "escritorio", "suporte", "vendite", "contatti",
    "ufficio", "amministrazione", "assistenza", "segreteria",
    # Dutch / Nordic / Polish
    "verkoop", "kantoor", "klantenservice", "salg", "kontor", "kundeservice", "forsaljning",
    "kundtjanst", "sprzedaz", "biuro",
    # meeting rooms booked as plain accounts
    "boardroom", "meetingroom", "conferenceroom", "besprechungsraum", "konferenzraum",
    "sitzungssaal", "salledereunion", "salareuniones",
]


class GenericValueSettings(Section):
    """Values that many different people share stop linking (Senzing's "generic" values).

    A value of a type in ``types`` becomes generic when the records carrying it name more
    than ``max_people`` different people (given names that disagree after nickname, initial,
    accent and typo folding: :mod:`idgraph.resolver.names`), or when it is seeded: a role
    mailbox (``role_local_parts``) or a listed value (``values``). A generic value stays
    attached to every record that carries it (lookups find it, answered as shared) but
    links nothing; profiles it had merged are split in the same batch, and Explain shows
    the edges with the reason.
    """

    enabled: bool = True
    types: list[str] = ["email", "phone", "message"]
    """Identifier kinds whose values can become generic (IDs of systems are never generic)."""
    max_people: int = Field(default=1, ge=1)
    """How many different people may carry one value (1: a value belongs to one person; 2
    would let a couple share an email)."""
    max_records_per_source: dict[str, int] = {"message": 1}
    """Per identifier kind: how many records of one source may carry one value. A
    Message-ID on the events of two SendGrid recipients is a message sent to both (To: a,
    b): generic, so a reply joins neither."""
    role_local_parts: list[str] = Field(default_factory=lambda: list(ROLE_MAILBOX_LOCAL_PARTS))
    """Email local parts (before ``@``, after normalisation) that are role or team mailboxes:
    generic from first sight, whoever carries them."""
    household_local_patterns: list[str] = [
        r"the[a-z]{2,}s\d*",  # thesmiths, thecampbells2
        r"(the)?[a-z]{2,}[._-]?famil(y|ie|ia|le)\d*",  # smithfamily, schulz.familie
        r"famil(y|ie|ia|le)[._-]?[a-z]{2,}\d*",  # familieschulz, familia.ortega
        r"fam[._-]?[a-z]{2,}\d*",  # famhaan
        r"[a-z]{2,}[._-]?household\d*",
    ]
    """Regular expressions a whole email local part matches when it is a household's
    shared mailbox: generic from first sight, like the role mailboxes."""
    values: list[str] = []
    """Typed values (normalised ``TYPE:VALUE``) known to be shared, e.g. a company's main
    number: generic from first sight."""


class LinkingSettings(Section):
    """Deterministic rules, over-merge guards and blocked values."""

    identifier_rules: dict[str, IdentifierRule] = Field(default_factory=_default_identifier_rules)
    """Per identifier type; a namespaced type (``crm:hubspot``) falls back to its kind (``crm``)."""
    blocked_values: list[str] = [
        "email:test@test.com",
        "email:test@example.com",
        "email:noreply@example.com",
        "email:no-reply@example.com",
        "email:none@none.com",
        "email:null@null.com",
        "email:unknown@unknown.com",
        "phone:+10000000000",
        "phone:+15555555555",
        "phone:+11234567890",
    ]
    """Typed identifiers (normalised form) that never link anything."""
    blocked_email_local_parts: list[str] = ["noreply", "no-reply", "donotreply", "do-not-reply"]
    generic: GenericValueSettings = Field(default_factory=GenericValueSettings)
    name_conflicts: bool = True
    """Refuse a link that would join profiles whose records name different people (given
    names that disagree after folding, :mod:`idgraph.resolver.names`), unless the identifier
    is of a kind in ``conflict_exempt_types``."""
    mailbox_sources: list[str] = ["sendgrid", "mandrill", "google_calendar"]
    """Sources whose records are keyed by an email address (a recipient, a sender, an
    attendee): when that address is generic (``info@``, a household mailbox), the record
    is the shared mailbox's, and nothing it carries links (a CRM ID in a SendGrid custom
    argument, the Message-ID of a reply)."""
    conflict_exempt_types: list[str] = ["crm", "user", "ext"]
    """Identifier kinds that join records even when their names disagree: a CRM record ID or
    an app user ID says the records are one (renamed) account."""

    def rule_for(self, identifier_type: str) -> IdentifierRule:
        """Rule of a type, falling back from ``crm:x`` to ``crm``; unknown types never link."""
        rule = self.identifier_rules.get(identifier_type)
        if rule is None:
            rule = self.identifier_rules.get(identifier_type.split(":", 1)[0])
        return rule if rule is not None else IdentifierRule(links=False)


class MatchingSettings(Section):
    """Probabilistic matching with a Splink-trained model (active once a model is trained)."""

    enabled: bool = True
    """Score incoming records with the newest trained model (``idgraph train``)."""
    model_version: str = ""
    """Pin a model version (``v0003``); empty: the newest in ``DATA_DIR/models``."""
    thresholds: Literal["model", "fixed"] = "model"
    """``model``: link at the threshold the trained model derived from its own evidence
    (its training report's ``thresholds``: the lowest probability at which its expected
    share of false links stays within ``max_false_link_rate``, and above what one agreeing
    field alone scores), never below ``link_threshold``; a model without one (trained
    before) uses ``link_threshold``. ``fixed``: link at exactly ``link_threshold``."""
    link_threshold: float = Field(default=0.99, gt=0.0, lt=1.0)
    """Match probability at or above which two records are linked automatically (with
    ``thresholds = "model"``: the lowest link threshold a model may use)."""
    review_threshold: float = Field(default=0.9, gt=0.0, lt=1.0)
    """Match probability at or above which (and below the link threshold in use) a pair is
    queued for review; below it nothing happens."""
    max_false_link_rate: float = Field(default=0.005, gt=0.0, lt=0.5)
    """Training: the model's link threshold is the lowest probability at which the model's
    own expected share of false links among the training pairs it would link (the mean of
    1 - probability) is at most this."""
    must_agree: list[str] = ["given_name"]
    """Comparisons that must not count against a pair for it to be linked automatically: a
    pair whose given names disagree (a negative weight for that comparison) goes to review
    however strongly the rest agrees, since household members share a surname, an
    address and often a phone; unless a comparison of ``personal`` supports it."""
    personal: list[str] = ["birth_date", "national_id", "email", "name_swap"]
    """Comparisons household members do not share: one of them agreeing (positive weight)
    lifts the ``must_agree`` guard (a typo in the given name, not a sibling)."""
    limit_exempt_types: list[str] = ["crm", "user"]
    """Identifier kinds whose ``max_per_profile`` limit does not refuse a probabilistic or
    reviewed link: two CRM contacts (or app accounts) that the model scores as one person
    are the duplicates matching exists to find. Deterministic links keep every limit."""
    max_block: int = Field(default=500, ge=1)
    """Records kept per blocking key in the real-time candidate index."""
    train_max_pairs: float = Field(default=5e6, ge=1e4)
    """Random pairs sampled to estimate u."""
    train_max_records: int = Field(default=250_000, ge=100)
    """Training uses a seeded random sample of at most this many records (m, u and the
    prior are proportions; at 300k records training took 22 s, growing with the data)."""
    duckdb_memory_limit: str = Field(
        default="1GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    """Most memory Splink's DuckDB may hold while a batch job (train, resolve, match)
    trains or scores, before it spills to ``DATA_DIR/duckdb-spill``: the writer's graph
    and caches are in the same process."""

    @model_validator(mode="after")
    def _ordered(self) -> MatchingSettings:
        if self.review_threshold > self.link_threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must not exceed link_threshold "
                f"({self.link_threshold})")
        return self


class RegionSettings(Section):
    """Home regions and residency policy."""

    regions: list[str] = ["eu", "uk", "us", "apac"]
    """Regions this deployment knows, strictest regime first: when a merge joins profiles of
    different regions, the merged profile's home is the strictest of them."""
    default_region: str = "us"
    """Home of a profile none of whose records carries region evidence (``evidence``,
    ``source_regions``); such a profile moves as soon as a record with evidence joins it."""
    country_regions: dict[str, str] = Field(default_factory=_default_country_regions)
    """ISO alpha-2 country -> region: how every kind of ``evidence`` names a region (a
    country not listed is no evidence)."""
    evidence: list[Literal["country", "phone", "locale", "timezone"]] = [
        "country", "phone", "locale", "timezone"]
    """Kinds of region evidence a record is read for, strongest first: the first that names
    a country of ``country_regions`` decides the record's region. ``country``: its country
    attribute (a CRM or address field); ``phone``: its phone numbers' country; ``locale``:
    the region of its locale (``en-GB``); ``timezone``: the country of its IANA time zone
    (``Europe/Berlin``, from the tz database's ``zone.tab``). Leave a kind out to ignore it.
    See :mod:`idgraph.resolver.regions`."""
    source_regions: dict[str, str] = {}
    """Per-source override, used when no ``evidence`` names a region, e.g.
    {"sendgrid": "eu"} for an EU-hosted ESP account."""

    @model_validator(mode="after")
    def _known_regions(self) -> RegionSettings:
        if len(set(self.evidence)) != len(self.evidence):
            raise ValueError(f"evidence: a kind is listed twice in {self.evidence}")
        known = set(self.regions)
        for name, region in [("default_region", self.default_region)] + [
            (f"country_regions.{k}", v) for k, v in self.country_regions.items()
        ] + [(f"source_regions.{k}", v) for k, v in self.source_regions.items()]:
            if region not in known:
                raise ValueError(f"{name}: region {region!r} is not one of regions={self.regions}")
        return self
