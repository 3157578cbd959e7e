"""Producing raw source payloads to the input topics (``idgraph backfill``, the demo).

Historical records enter through the same topics, worker and engine as live ones, so a
backfill follows every rule a live event does (idempotence by event ID included: replaying
a file twice applies it once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import orjson

from idgraph.core.errors import BackendError, ConfigError
from idgraph.resolver.adapters import adapt
from idgraph.resolver.normalize import Normalizer
from idgraph.stream.settings import StreamSettings
from idgraph.stream.topics import client_options


def topic_of_system(cfg: StreamSettings) -> dict[str, str]:
    """system -> the input topic that carries it."""
    out: dict[str, str] = {}
    for kind, systems in cfg.source_topics.items():
        for s in systems:
            out.setdefault(s, cfg.input_topic(kind))
    return out


def message_key(system: str, payload: object, normalizer: Normalizer) -> bytes | None:
    """Partition key: the source record ID, so one record's events keep their order."""
    try:
        records = adapt(system, payload, normalizer)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - a malformed payload still goes: the worker dead-letters it
        return None
    return records[0].source_record_id.encode() if records else None


def distinct_event_ids(items: Iterable[tuple[str, object]]) -> tuple[int, int]:
    """(distinct event IDs the engine will record for ``items``, payloads an adapter
    rejects): how far ``processed_events`` goes once workers have consumed them all."""
    normalizer = Normalizer()
    ids: set[str] = set()
    rejected = 0
    for system, payload in items:
        try:
            ids.update(r.event_id for r in adapt(system, payload, normalizer))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - counted: such a payload is dead-lettered
            rejected += 1
    return len(ids), rejected


async def produce_payloads(cfg: StreamSettings, items: Iterable[tuple[str, object]],
                           rate: float | None = None, linger_ms: int = 5) -> int:
    """Send ``(system, payload)`` items to their input topics; returns how many were sent.

    ``rate`` (events/s) paces the sends; None sends as fast as the broker takes them.
    Returns after every message is acknowledged by the broker.
    """
    from aiokafka import AIOKafkaProducer

    topics = topic_of_system(cfg)
    normalizer = Normalizer()
    producer = AIOKafkaProducer(**client_options(cfg), linger_ms=linger_ms,
                                max_request_size=max(1_048_576, 2 * cfg.max_event_bytes))
    try:
        await producer.start()
    except Exception as exc:
        await producer.stop()
        # aiokafka reports some refused SCRAM logins as a bare KeyError (it does not parse
        # the server's "e=..." final message): say where to look
        hint = ("; if the login was refused, check stream.sasl_mechanism, sasl_username "
                "and sasl_password" if cfg.security_protocol.startswith("SASL") else "")
        raise BackendError(
            f"kafka: cannot connect a producer to {cfg.bootstrap} "
            f"(security_protocol={cfg.security_protocol}): {type(exc).__name__}: {exc}{hint}"
        ) from exc
    sent = 0
    try:
        start = time.perf_counter()
        pending = []
        for system, payload in items:
            topic = topics.get(system)
            if topic is None:
                raise ConfigError(f"backfill: no input topic carries {system!r} "
                                  f"(stream.source_topics)")
            if rate:
                delay = start + sent / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(
                topic, orjson.dumps(payload), key=message_key(system, payload, normalizer),
                headers=[("source", system.encode())]))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
