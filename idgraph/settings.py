"""Typed settings: one place for every knob, each with its environment variable.

Precedence (highest first): keyword arguments, environment variables ``IDGRAPH_*`` (nested
fields with ``__``, e.g. ``IDGRAPH_GRPC__PORT=50052``), the TOML file passed to
:func:`load_settings` (or else named by ``IDGRAPH_CONFIG``), then the defaults below.

Each layer changes only what it names; it is merged over the layers below it:

- a section (``[linking]``, ``[grpc]``...) merges field by field;
- a map (``linking.identifier_rules``, ``survivorship.rules``, ``regions.country_regions``...)
  merges key by key: keys not named keep their value, and a named key whose entry is a
  section (an identifier rule) merges into that entry field by field;
- anything else replaces the value below it whole: numbers, strings, lists, and map
  entries that are maps themselves (``cassandra.region_datacenters.eu``: a replication
  map is one value, so naming one data centre cannot keep another by accident);
- an empty table empties a map (``domain_aliases = {}``).

Unknown names are refused at every level. Invalid settings fail at start with a
:class:`ConfigError` naming the dotted field path and where the value came from (the
file or the environment variable).

The defaults are the embedded engine: networkx graph, SQLite profile store, no server to
install.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from idgraph.errors import ConfigError

EU_COUNTRIES = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "CH"]
US_COUNTRIES = ["US", "CA", "MX", "BR", "AR", "CL", "CO"]
APAC_COUNTRIES = ["JP", "AU", "NZ", "SG", "IN", "KR", "HK", "TW", "ID", "MY", "TH", "PH", "VN"]


def _default_country_regions() -> dict[str, str]:
    out = {c: "eu" for c in EU_COUNTRIES}
    out["GB"] = "uk"
    out.update({c: "us" for c in US_COUNTRIES})
    out.update({c: "apac" for c in APAC_COUNTRIES})
    return out


class Section(BaseModel):
    """A group of settings (a TOML table); unknown names in it are refused."""

    model_config = ConfigDict(extra="forbid")


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
    }


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
    link_threshold: float = Field(default=0.99, gt=0.0, lt=1.0)
    """Match probability at or above which two records are linked automatically."""
    review_threshold: float = Field(default=0.9, gt=0.0, lt=1.0)
    """Match probability at or above which (and below ``link_threshold``) a pair is queued
    for review; below it nothing happens."""
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

    @model_validator(mode="after")
    def _ordered(self) -> MatchingSettings:
        if self.review_threshold > self.link_threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must not exceed link_threshold "
                f"({self.link_threshold})")
        return self


SurvivorshipRule = Literal["source_priority", "most_recent", "most_frequent"]


class SurvivorshipSettings(Section):
    """Which value of an attribute a profile shows when its records disagree.

    ``source_priority``: the value from the first source in ``source_priority`` that has
    one (ties: most recent); ``most_recent``: latest event time; ``most_frequent``: the value
    seen on most records (ties: most recent).
    """

    default_rule: SurvivorshipRule = "most_recent"
    rules: dict[str, SurvivorshipRule] = {
        "given_name": "source_priority",
        "middle_name": "source_priority",
        "family_name": "source_priority",
        "birth_date": "source_priority",
        "company": "source_priority",
        "job_title": "most_recent",
        "email": "most_frequent",
        "phone": "source_priority",
        "country": "most_frequent",
    }
    source_priority: list[str] = ["salesforce", "hubspot", "segment", "google_calendar", "sendgrid"]

    def rule_for(self, attribute: str) -> SurvivorshipRule:
        return self.rules.get(attribute, self.default_rule)


class RegionSettings(Section):
    """Home regions and residency policy."""

    regions: list[str] = ["eu", "uk", "us", "apac"]
    """Regions this deployment knows, strictest regime first: when a merge joins profiles of
    different regions, the merged profile's home is the strictest of them."""
    default_region: str = "us"
    """Region of a record whose payload names no country and whose source has no override."""
    country_regions: dict[str, str] = Field(default_factory=_default_country_regions)
    source_regions: dict[str, str] = {}
    """Per-source override, e.g. {"sendgrid": "eu"} for an EU-hosted ESP account."""

    @model_validator(mode="after")
    def _known_regions(self) -> RegionSettings:
        known = set(self.regions)
        for name, region in [("default_region", self.default_region)] + [
            (f"country_regions.{k}", v) for k, v in self.country_regions.items()
        ] + [(f"source_regions.{k}", v) for k, v in self.source_regions.items()]:
            if region not in known:
                raise ValueError(f"{name}: region {region!r} is not one of regions={self.regions}")
        return self


class GrpcSettings(Section):
    """The gRPC server (``idgraph serve``) and client (``idgraph lookup``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    max_workers: int = Field(default=8, ge=1)
    processes: int = Field(default=1, ge=1, le=64)
    """Server processes sharing the port (SO_REUSEPORT). grpc Python runs handlers under one
    GIL per process and a call costs ~0.4 ms of CPU before any work, so one process tops out
    near 1,000-1,500 lookups/s; use one process per core. The kernel spreads connections
    (not single calls) across processes."""
    api_tokens: list[SecretStr] = []
    """Bearer tokens accepted in the ``authorization`` metadata. Empty: no authentication
    (only allowed when ``host`` is a loopback address)."""
    steward_tokens: list[SecretStr] = []
    """Bearer tokens of data stewards: they may also call Explain, ListReviews and
    DecideReview (which show or change why records link). ``api_tokens`` (activation
    channels) may only look profiles up. With no tokens at all (loopback only), every rpc
    is open."""
    client_token: SecretStr | None = None
    """Token the CLI client sends."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    served_regions: list[str] | None = None
    """Regions this server answers for; None: every region in ``regions.regions``."""
    max_batch_lookup: int = Field(default=1000, ge=1)


def _default_source_topics() -> dict[str, list[str]]:
    return {"crm": ["salesforce", "hubspot"], "email": ["sendgrid"], "device": ["segment"],
            "calendar": ["google_calendar"]}


class StreamSettings(Section):
    """Kafka transport of ``idgraph worker`` (Faust), ``backfill`` and ``demo --kafka``.

    Topics (``P`` is ``topic_prefix``): ``P.events.KIND`` per source kind in
    ``source_topics``; ``P.dead-letter``; ``P.profile-changes`` and ``P.segment-changes``
    (keyed by profile ID).
    """

    brokers: list[str] = ["kafka://127.0.0.1:9092"]
    """Bootstrap servers, ``kafka://HOST:PORT``."""
    topic_prefix: str = Field(default="idgraph", pattern=r"^[A-Za-z0-9._-]+$")
    source_topics: dict[str, list[str]] = Field(default_factory=_default_source_topics)
    """Source kind -> the systems (adapters) whose payloads its topic carries. A message
    names its system in the ``source`` header, which may be left out when the topic
    carries one system."""
    partitions: int = Field(default=8, ge=1)
    """Partitions of topics the project creates (``idgraph topics``)."""
    replication_factor: int = Field(default=1, ge=1)
    consumer_group: str = "idgraph-workers"
    batch_size: int = Field(default=2000, ge=1)
    """Events per engine batch (Faust ``take``)."""
    batch_within_seconds: float = Field(default=0.02, gt=0)
    """Longest wait for a batch to fill: bounds the delay a quiet stream adds."""
    max_event_bytes: int = Field(default=262_144, ge=1024)
    """Larger messages are dead-lettered unread (identity events are a few kB)."""
    fetch_max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    """Longest time the broker may hold a fetch while no data arrives (Faust's default,
    1500 ms, made every event wait up to that long on tansu)."""
    commit_interval_seconds: float = Field(default=2.8, gt=0)
    """How often processed offsets are committed (what a crash redelivers)."""
    session_timeout_seconds: float = Field(default=10.0, gt=0)
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0)
    publish_changes: bool = True
    """Publish profile changes from the store's outbox to ``P.profile-changes``."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr | None = None

    @field_validator("source_topics")
    @classmethod
    def _known_systems(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from resolver.adapters import ADAPTERS

        for kind, systems in v.items():
            if not systems:
                raise ValueError(f"{kind}: lists no system")
            unknown = sorted(set(systems) - set(ADAPTERS))
            if unknown:
                raise ValueError(f"{kind}: unknown systems {unknown}; known: {sorted(ADAPTERS)}")
        return v

    @model_validator(mode="after")
    def _check_security(self) -> StreamSettings:
        if self.security_protocol.startswith("SASL") and (
                not self.sasl_username or self.sasl_password is None):
            raise ValueError("sasl_username and sasl_password are required with "
                             f"security_protocol={self.security_protocol}")
        return self

    def input_topic(self, kind: str) -> str:
        return f"{self.topic_prefix}.events.{kind}"

    @property
    def input_topics(self) -> dict[str, str]:
        """topic name -> source kind."""
        return {self.input_topic(k): k for k in self.source_topics}

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.dead-letter"

    @property
    def profile_changes_topic(self) -> str:
        return f"{self.topic_prefix}.profile-changes"

    @property
    def segment_changes_topic(self) -> str:
        return f"{self.topic_prefix}.segment-changes"

    @property
    def bootstrap(self) -> str:
        """``host:port,...`` for plain Kafka clients."""
        return ",".join(b.split("://", 1)[-1] for b in self.brokers)


class Neo4jSettings(Section):
    """The Neo4j identity graph (``graph_backend = "neo4j"``), over Bolt with the official
    driver. Any Bolt server speaking Neo4j 5 Cypher works (ArcadeDB in the tests)."""

    uri: str = "bolt://127.0.0.1:7687"
    """``bolt://`` or ``neo4j://`` (routing); ``+s``/``+ssc`` schemes turn TLS on."""
    user: str = "neo4j"
    password: SecretStr = SecretStr("")
    database: str = "neo4j"
    max_connection_pool_size: int = Field(default=16, ge=1)
    connection_timeout_seconds: float = Field(default=10.0, gt=0)
    max_transaction_retry_seconds: float = Field(default=30.0, gt=0)
    """How long a write is retried on transient errors and concurrent-write conflicts."""
    encrypted: bool = False
    """TLS for ``bolt://`` URIs (the ``+s`` schemes set it themselves)."""
    trusted_ca_file: Path | None = None
    """CA bundle (PEM) that signs the server's certificate; None: the system's CAs."""
    write_batch_size: int = Field(default=2000, ge=1)
    """Rows per ``UNWIND`` statement when writing a batch's nodes and edges."""


class CassandraSettings(Section):
    """The Cassandra profile store (``profile_store_backend = "cassandra"``).

    One keyspace per region (``KEYSPACE_PREFIX_REGION``), replicated only to that
    region's data centres: a profile's rows exist only where its region allows.
    """

    contact_points: list[str] = ["127.0.0.1"]
    port: int = Field(default=9042, ge=1, le=65535)
    local_datacenter: str = "dc1"
    """Data centre this process talks to (DCAwareRoundRobinPolicy + token awareness)."""
    protocol_version: int | None = None
    """Native protocol version; None lets the driver negotiate (Cassandra 2.1 needs 3)."""
    consistency: Literal["ONE", "LOCAL_ONE", "LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL"] = \
        "LOCAL_QUORUM"
    """Consistency of every read and write."""
    keyspace_prefix: str = Field(default="idgraph", pattern=r"^[a-z][a-z0-9_]*$")
    region_datacenters: dict[str, dict[str, int]] = {
        "eu": {"dc1": 1}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1},
    }
    """Region -> {data centre: replication factor} of its keyspace (NetworkTopologyStrategy)."""
    username: str = ""
    password: SecretStr = SecretStr("")
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=64, ge=1)
    """In-flight statements when a batch is written or read concurrently."""
    anonymous_ttl_seconds: int = Field(default=0, ge=0)
    """TTL of the rows of profiles with no known (non-shareable) identifier; 0: none."""
    anonymous_identifier_types: list[str] = ["device", "idfa", "gaid", "cookie"]
    """Identifier kinds that do not make a profile known (for ``anonymous_ttl_seconds``):
    the default linking rules' shareable types."""


class Settings(BaseSettings):
    """Everything the engine, the CLI and the server need."""

    model_config = SettingsConfigDict(
        env_prefix="IDGRAPH_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path(".idgraph")
    """Where the embedded backends keep their files (graph link log, profile database)."""
    graph_backend: Literal["networkx", "neo4j"] = "networkx"
    """``networkx``: embedded, in memory over a link log in ``data_dir``. ``neo4j``: the
    graph lives in Neo4j (``neo4j.*``)."""
    profile_store_backend: Literal["sqlite", "cassandra"] = "sqlite"
    """``sqlite``: embedded, in ``data_dir``. ``cassandra``: per-region keyspaces
    (``cassandra.*``)."""
    ingest_batch_size: int = Field(default=20_000, ge=1)
    """Records per atomic batch. Larger batches commit less often and coalesce writes to the
    same record: 2k -> 9.0k, 5k -> 10.9k, 20k -> 12.8k records/s at 100k (plateau after)."""
    normalization: NormalizationSettings = NormalizationSettings()
    linking: LinkingSettings = LinkingSettings()
    matching: MatchingSettings = MatchingSettings()
    survivorship: SurvivorshipSettings = SurvivorshipSettings()
    regions: RegionSettings = RegionSettings()
    grpc: GrpcSettings = GrpcSettings()
    stream: StreamSettings = StreamSettings()
    neo4j: Neo4jSettings = Neo4jSettings()
    cassandra: CassandraSettings = CassandraSettings()
    writer_turn_wait_seconds: float = Field(default=120.0, gt=0)
    """How long a writer waits for another writer of the same data dir to end its turn."""

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @model_validator(mode="after")
    def _check_served(self) -> Settings:
        served = self.grpc.served_regions
        if served is not None:
            unknown = sorted(set(served) - set(self.regions.regions))
            if unknown:
                raise ValueError(f"grpc.served_regions: unknown regions {unknown}")
        return self

    @property
    def served_regions(self) -> list[str]:
        return list(self.grpc.served_regions or self.regions.regions)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """One source: the config file, the environment and the keyword arguments, each
        merged over the layers below it and the defaults (see the module docstring).

        pydantic-settings would validate a partial table on its own, so a map in it
        (``linking.identifier_rules``) would replace the whole default map.
        """
        layers: list[PydanticBaseSettingsSource] = []
        config = _CONFIG_FILE.get() or _env_config_file()
        if config is not None:
            layers.append(InitSettingsSource(settings_cls, init_kwargs=config.data))
        layers += [env_settings, init_settings]
        return (_LayeredSource(settings_cls, layers),)


# ---------------------------------------------------------------- merging layers


def _fields(value: Any) -> dict[str, Any]:
    """A section (model instance or mapping of its fields) as a new dict of its fields."""
    if isinstance(value, BaseModel):
        return {name: getattr(value, name) for name in type(value).model_fields}
    return dict(value) if isinstance(value, Mapping) else {}


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _merged(model: type[BaseModel], below: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (a mapping of ``model``'s fields) merged over ``below`` (its value so far).

    A field ``given`` does not name keeps its value in ``below`` (or, absent there, its
    default); a named field merges by the rules of the module docstring. Unknown names are
    kept for validation to refuse with their path.
    """
    out = _fields(below)
    for name, value in given.items():
        field = model.model_fields.get(name)
        if field is None or not isinstance(value, Mapping):
            out[name] = value
            continue
        current = out[name] if name in out else _default(field)
        out[name] = _merged_value(field.annotation, current, value)
    return out


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _merged_value(annotation: Any, current: Any, given: Mapping[str, Any]) -> Any:
    """The table ``given`` over ``current``, a value of type ``annotation``."""
    if _is_section(annotation):
        return _merged(annotation, current, given)
    if get_origin(annotation) is not dict or not isinstance(current, Mapping):
        return given
    if not given:
        return {}  # an empty table empties the map
    entry = get_args(annotation)[1]
    out = dict(current)
    for key, value in given.items():
        if _is_section(entry) and key in out and isinstance(value, Mapping):
            out[key] = _merged(entry, out[key], value)
        else:
            out[key] = value
    return out


class _LayeredSource(PydanticBaseSettingsSource):
    """Several sources as one, each layer merged over the ones before it."""

    def __init__(self, settings_cls: type[BaseSettings],
                 layers: Sequence[PydanticBaseSettingsSource]) -> None:
        super().__init__(settings_cls)
        self._layers = layers  # lowest precedence first

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ asks the layers

    def __call__(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for layer in self._layers:
            state = _merged(self.settings_cls, state, layer())
        return state


# -------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _ConfigFile:
    """A parsed TOML settings file."""

    path: Path
    data: dict[str, Any]


_CONFIG_FILE: ContextVar[_ConfigFile | None] = ContextVar("idgraph_config_file", default=None)
"""The file :func:`load_settings` read, for the settings it is building."""


def _read_config_file(path: str | Path) -> _ConfigFile:
    """Parse a TOML settings file; :class:`ConfigError` naming the path if it cannot be."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _ConfigFile(path, tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: invalid TOML: {exc}") from None


def _env_config_file() -> _ConfigFile | None:
    path = os.environ.get("IDGRAPH_CONFIG")
    return _read_config_file(path) if path else None


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Build settings from ``overrides``, the environment, ``config_file`` (else the file
    named by ``IDGRAPH_CONFIG``) and the defaults.

    Raises :class:`ConfigError` naming the file when it cannot be read or parsed, or
    naming each invalid or unknown setting by its dotted path and the layer that gave it
    (the file, an environment variable or a keyword argument), never by its value.
    """
    config = _read_config_file(config_file) if config_file is not None else _env_config_file()
    token = _CONFIG_FILE.set(config)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["type"], err["msg"], config, overrides)
                             for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    finally:
        _CONFIG_FILE.reset(token)


def _problem(loc: tuple[int | str, ...], kind: str, msg: str, config: _ConfigFile | None,
             overrides: Mapping[str, object]) -> str:
    """``dotted.path: what is wrong (where it came from)``; never the value itself."""
    path = ".".join(str(p) for p in loc) or "settings"
    what = "unknown setting" if kind == "extra_forbidden" else msg
    where = _origin(loc, config, overrides)
    return f"{path}: {what}" + (f" ({where})" if where else "")


def _origin(loc: tuple[int | str, ...], config: _ConfigFile | None,
            overrides: Mapping[str, object]) -> str:
    """Which layer names ``loc``, highest precedence first; "" when none does."""
    if not loc:
        return ""
    if _names(overrides, loc):
        return "keyword argument"
    names = [str(p) for p in loc]
    env = {k.lower(): k for k in os.environ}
    for n in range(len(names), 0, -1):  # a JSON value holds the deeper names
        var = env.get(("IDGRAPH_" + "__".join(names[:n])).lower())
        if var is not None:
            return f"environment variable {var}"
    if config is not None and _names(config.data, loc):
        return f"in {config.path}"
    return ""


def _names(data: object, loc: tuple[int | str, ...]) -> bool:
    """Whether nested mappings and lists ``data`` hold the path ``loc``."""
    for part in loc:
        if isinstance(data, Mapping):
            held = part in data
        else:
            held = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not held:
            return False
        data = data[part]  # type: ignore[index]
    return True
