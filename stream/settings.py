"""Settings of the Kafka transport (section ``[stream]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from idgraph.core.sections import Section


def _default_source_topics() -> dict[str, list[str]]:
    # Mandrill has a topic of its own: in the email topic, SendGrid messages would need the
    # source header, which a topic of one system lets producers leave out.
    return {"crm": ["salesforce", "hubspot"], "email": ["sendgrid"], "device": ["segment"],
            "calendar": ["google_calendar"], "inbound": ["mandrill"]}


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
    batch_size: int = Field(default=5000, ge=1)
    """Most events per engine batch (``stream.delivery.take_batch``). A busy stream fills
    it from what is buffered; the engine's cost per event falls with the batch (measured:
    ~4,500 events/s at 2,000, ~5,000-5,700 at 5,000, ``benchmarks.stream_throughput``), and
    a rebalance waits for the batch in hand (about a second at 5,000)."""
    batch_within_seconds: float = Field(default=0.02, gt=0)
    """Longest wait for a batch to fill after its first event, when the batch starts from an
    empty buffer: bounds the delay a quiet stream adds. Events already buffered (they
    queued during the previous batch) go at once."""
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
    """``SSL``/``SASL_SSL``: TLS to the brokers; ``SASL_*``: log in with ``sasl_*``."""
    ssl_cafile: Path | None = None
    """CA bundle (PEM) that signs the brokers' certificates; None: the system's CAs. The
    brokers' names are checked against their certificates."""
    ssl_certfile: Path | None = None
    """Client certificate (PEM) for brokers that require one; with ``ssl_keyfile``."""
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr | None = None

    @field_validator("source_topics")
    @classmethod
    def _known_systems(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from idgraph.resolver.adapters import ADAPTERS

        for kind, systems in v.items():
            if not systems:
                raise ValueError(f"{kind}: lists no system")
            unknown = sorted(set(systems) - set(ADAPTERS))
            if unknown:
                raise ValueError(f"{kind}: unknown systems {unknown}; known: {sorted(ADAPTERS)}")
        return v

    @model_validator(mode="after")
    def _check_security(self) -> StreamSettings:
        # settings the chosen protocol would silently ignore are refused: a CA or a user
        # name given with a protocol that does not use it means a connection weaker than
        # the one intended
        protocol = self.security_protocol
        if protocol.startswith("SASL") and (not self.sasl_username or self.sasl_password is None):
            raise ValueError("sasl_username and sasl_password are required with "
                             f"security_protocol={protocol}")
        if not protocol.startswith("SASL") and (self.sasl_username or self.sasl_password):
            raise ValueError(f"sasl_username/sasl_password are set but security_protocol="
                             f"{protocol} sends no credentials: use SASL_SSL or SASL_PLAINTEXT")
        tls_files = [name for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
                     if getattr(self, name) is not None]
        if tls_files and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{', '.join(tls_files)} set but security_protocol={protocol} "
                             "does not use TLS: use SSL or SASL_SSL")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile is set without ssl_certfile")
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
