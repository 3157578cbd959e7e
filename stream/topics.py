"""Topics the project uses, and plain aiokafka clients configured from settings.

``idgraph topics`` and the worker's start create missing topics with
``stream.partitions``; existing topics are left as they are (adding partitions later would
move keys between partitions, and tansu does not support it).
"""

from __future__ import annotations

import asyncio
import ssl

from idgraph.core.errors import BackendError, ConfigError
from idgraph.stream.settings import StreamSettings

TOPIC_ALREADY_EXISTS = 36
"""Kafka's error code for a topic that exists (another process created it first)."""


def project_topics(cfg: StreamSettings) -> list[str]:
    """Every topic name: inputs, dead letters, profile changes, segment changes."""
    return [*cfg.input_topics, cfg.dead_letter_topic, cfg.profile_changes_topic,
            cfg.segment_changes_topic]


def ssl_context(cfg: StreamSettings) -> ssl.SSLContext | None:
    """TLS context for ``SSL`` and ``SASL_SSL`` (None otherwise), shared by the worker
    (Faust) and the plain clients: it verifies the broker's certificate against
    ``ssl_cafile`` (the system's CAs when unset) and its name, and presents
    ``ssl_certfile``/``ssl_keyfile`` when set. ConfigError naming the field when a file
    is missing or cannot be loaded."""
    if cfg.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(cfg, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"stream.{name}: {path} is not a file")
    field = "ssl_cafile"
    try:
        context = ssl.create_default_context(
            cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile else None)
        if cfg.ssl_certfile:
            field = "ssl_certfile"
            context.load_cert_chain(str(cfg.ssl_certfile),
                                    str(cfg.ssl_keyfile) if cfg.ssl_keyfile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"stream.{field}: cannot load the TLS file(s): {exc}") from exc
    return context


def client_options(cfg: StreamSettings) -> dict:
    """Keyword arguments shared by aiokafka producers, consumers and admin clients."""
    opts: dict = {"bootstrap_servers": cfg.bootstrap, "security_protocol": cfg.security_protocol}
    if (context := ssl_context(cfg)) is not None:
        opts["ssl_context"] = context
    if cfg.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = (cfg.sasl_password.get_secret_value()
                                       if cfg.sasl_password else "")
    return opts


async def ensure_topics(cfg: StreamSettings, timeout_s: float = 30.0) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**client_options(cfg), request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
    except Exception as exc:
        raise BackendError(f"kafka: cannot reach {cfg.bootstrap}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in project_topics(cfg) if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, cfg.partitions, cfg.replication_factor) for t in missing])
            # a topic another process created meanwhile is fine; any other error is not
            failed = [(topic, code) for topic, code, *_ in response.topic_errors
                      if code not in (0, TOPIC_ALREADY_EXISTS)]
            if failed:
                raise BackendError("kafka: creating topics failed: " + ", ".join(
                    f"{topic} (error code {code})" for topic, code in failed))
        return missing
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"kafka: cannot create topics on {cfg.bootstrap}: {exc}") from exc
    finally:
        await admin.close()


def ensure_topics_sync(cfg: StreamSettings) -> list[str]:
    return asyncio.run(ensure_topics(cfg))
