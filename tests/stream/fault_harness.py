"""Fault injection for ``idgraph worker``, in the spirit of Jepsen: a known workload, a
seeded schedule of faults against real worker processes and a real broker, and a checker
that reads only what the system left behind.

- :class:`Workload`: the generator's events (each with a known event ID) plus malformed
  messages (invalid JSON, an unknown source, a missing ID, an oversized payload), each
  with a unique value, and the state an undisturbed run leaves (one engine, in process).
- :func:`schedule`: ``random.Random(seed)`` picks the faults; a failing seed replays the
  same schedule (the test prints it). Faults: SIGKILL at a named step of a batch
  (:mod:`idgraph.core.failpoints`: after the store commit and before the offset commit,
  while dead letters or changes are sent, inside the writer), SIGKILL at a random moment,
  SIGSTOP past the group's session timeout (the group moves on; the paused worker wakes
  as a zombie), the broker paused (SIGSTOP) for a while, the store refusing writes for a
  number of batches, the broker refusing dead letters.
- :func:`run`: two workers on one data directory consume while the schedule is played,
  every dead worker replaced, then a clean pair drains the topics until the group has
  committed every input message.
- :func:`check`: every valid event applied exactly once (each record's event counter
  equals its events in the stream; a duplicate would count twice), every malformed one in
  the dead-letter topic with its reason, the outbox empty and every profile announced on
  the profile-changes topic, the profiles equal to the graph's components, the same
  people as the undisturbed run's (its grouping of the known records), and each profile
  with the same records equal to the undisturbed run's in every field but the IDs
  (attributes, identifiers, consent, counters, timeline). Where an anonymous record (a
  device or cookie only) lands is not compared: it depends on arrival order across
  partitions even without faults (:meth:`Expected.known_partition`). It returns the
  violations it found, so a test asserts there are none and a reader sees what each
  check means.

The broker is paused rather than restarted: the local broker (tansu) keeps topics in
memory, so a restart would lose every message and test nothing about the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from idgraph.engine import Engine
from idgraph.engine.queries import ProfileQueries
from idgraph.generator import generate
from idgraph.graph import create_graph
from idgraph.profile_store import create_store
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.normalize import Normalizer
from idgraph.settings import Settings, load_settings
from idgraph.stream.events import REASON
from idgraph.stream.produce import message_key, topic_of_system
from idgraph.stream.settings import StreamSettings

# ---------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Poison:
    """A malformed message: ``kind`` of input topic, raw value and headers, and the start
    of the reason its dead letter must carry."""

    kind: str
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str


@dataclass
class Expected:
    """What a run leaves, in the checker's terms: processed events, each record's event
    counter, each profile's comparable view by its record keys, and the anonymous records
    (every identifier they link by is shareable: a device, a cookie)."""

    processed: int
    record_events: dict[str, int]
    profiles: dict[frozenset[str], dict]
    anonymous: frozenset[str]

    def known_partition(self) -> set[frozenset[str]]:
        """The profiles' record keys without the anonymous records: who is one person."""
        return {keys - self.anonymous for keys in self.profiles} - {frozenset()}


@dataclass
class Workload:
    items: list[tuple[str, dict]]
    poison: list[Poison]
    expected: Expected


def poison_messages(seed: int, n: int, max_event_bytes: int) -> list[Poison]:
    """``n`` malformed messages of four kinds, each value unique (so its dead letter is
    found by value)."""
    out = []
    for i in range(n):
        tag = f"{seed}-{i}"
        kind = i % 4
        if kind == 0:
            out.append(Poison("crm", b"{not json " + tag.encode(), [("source", b"hubspot")],
                              "invalid JSON"))
        elif kind == 1:
            out.append(Poison("crm", orjson.dumps({"id": tag}), [("source", b"marketo")],
                              "unknown source 'marketo'"))
        elif kind == 2:
            out.append(Poison("crm", orjson.dumps({"properties": {"email": f"{tag}@x.org"}}),
                              [("source", b"hubspot")], "hubspot: field 'id': missing"))
        else:
            big = b'{"type": "identify", "tag": "' + tag.encode() + b'", "pad": "' + \
                b"x" * (max_event_bytes + 10) + b'"}'
            out.append(Poison("device", big, [], "oversized payload"))
    return out


def comparable(profile) -> dict:
    """What must equal between two runs of the same events: everything but the IDs
    (which depend on arrival order) and the write time."""
    view = asdict(profile)
    for key in ("profile_id", "aliases", "updated_at"):
        view.pop(key)
    view["record_keys"] = sorted(view["record_keys"])
    return json.loads(json.dumps(view, sort_keys=True, default=repr))


def make_workload(seed: int, n_records: int, n_poison: int, reference_dir: Path,
                  max_event_bytes: int = StreamSettings().max_event_bytes) -> Workload:
    items = generate(n_records=n_records, seed=seed).events
    with Engine(Settings(data_dir=reference_dir)) as engine:
        engine.ingest_payloads(items)
        expected = read_state(reference_dir)
    return Workload(items, poison_messages(seed, n_poison, max_event_bytes), expected)


def read_state(data_dir: Path) -> Expected:
    """The state a data directory holds, in the checker's terms (read-only)."""
    settings = Settings(data_dir=data_dir)
    store = create_store("sqlite", data_dir, settings.regions.regions, readonly=True)
    try:
        return store_state(store, settings)
    finally:
        store.close()


def store_state(store, settings: Settings) -> Expected:
    """The state ``store`` (a profile reader of any backend) holds, in the checker's
    terms."""
    assignment = store.record_profiles()
    records = store.get_records(assignment)
    groups: dict[str, set[str]] = {}
    for key, pid in assignment.items():
        groups.setdefault(pid, set()).add(key)
    queries = ProfileQueries(store, Normalizer(settings.normalization), settings.survivorship)
    profiles = {frozenset(keys): comparable(queries.get_profile(pid))
                for pid, keys in groups.items()}
    shareable = LinkPlanner(settings.linking).shareable_types()
    anonymous = frozenset(
        k for k, r in records.items()
        if all(key.split(":", 1)[0] in shareable
               for key, (_, _, linked) in r.identifiers.items() if linked))
    return Expected(store.counts()["processed_events"],
                    {k: r.event_count for k, r in records.items()}, profiles, anonymous)


# ---------------------------------------------------------------------------- faults

#: Steps of a batch where a worker can be killed (the failpoints it passes).
KILL_POINTS = ("stream.batch.stored", "stream.dead_letters.send", "stream.changes.sent",
               "stream.batch.acknowledged", "writer.graph.applied",
               "writer.store.committed")


@dataclass(frozen=True)
class Fault:
    """One fault. ``kind``: ``kill_at`` (SIGKILL at ``point``'s ``hit``-th pass),
    ``kill_random`` (SIGKILL ``seconds`` after the worker started applying), ``pause``
    (SIGSTOP for ``seconds``, past the session timeout), ``broker_pause`` (the broker
    SIGSTOPped for ``seconds``), ``store_refuses`` (the store refuses the ``hit``-th
    to the ``hit + 2``-th write), ``dead_letters_refused`` (the broker refuses the first
    ``hit`` dead-letter sends), ``kill_while_retrying`` (the store refuses every write
    from the ``hit``-th on; SIGKILL a second after the first retry, while the worker's
    commit timer has run with the batch in hand: a batch acknowledged before it is stored
    would be lost here)."""

    kind: str
    point: str = ""
    hit: int = 1
    seconds: float = 0.0

    def failpoints(self) -> str:
        """The ``IDGRAPH_FAILPOINTS`` value of the worker this fault is played on."""
        if self.kind == "kill_at":
            return f"{self.point}=kill@{self.hit}"
        if self.kind == "store_refuses":
            return f"writer.store.committed=fail@{self.hit}-{self.hit + 2}"
        if self.kind == "dead_letters_refused":
            return f"stream.dead_letters.send=fail@1-{self.hit}"
        if self.kind == "kill_while_retrying":
            return f"writer.graph.applied=fail@{self.hit}-"
        return ""


KINDS = ("kill_at", "kill_random", "pause", "broker_pause", "store_refuses",
         "dead_letters_refused", "kill_while_retrying")


def schedule(seed: int, length: int, session_timeout: float) -> list[Fault]:
    """``length`` faults chosen by ``random.Random(seed)``: every kind once in a seeded
    order (when ``length`` allows), then kinds drawn at random; the same seed, the same
    list."""
    rng = random.Random(seed)
    kinds = rng.sample(KINDS, len(KINDS))[:length]
    kinds += [rng.choice(KINDS) for _ in range(length - len(kinds))]
    out = []
    for kind in kinds:
        if kind == "kill_at":
            out.append(Fault(kind, point=rng.choice(KILL_POINTS), hit=rng.randint(1, 3)))
        elif kind == "kill_random":
            out.append(Fault(kind, seconds=round(rng.uniform(0.2, 3.0), 2)))
        elif kind == "pause":
            out.append(Fault(kind, seconds=round(session_timeout + rng.uniform(1, 4), 2)))
        elif kind == "broker_pause":
            out.append(Fault(kind, seconds=round(rng.uniform(1, 5), 2)))
        else:
            out.append(Fault(kind, hit=rng.randint(1, 3)))
    return out


# ---------------------------------------------------------------------------- the run


def stream_settings(env: dict[str, str]) -> StreamSettings:
    return load_settings(env["IDGRAPH_CONFIG"]).stream


def produce(env: dict[str, str], items, raw: list[tuple[str, bytes, list]] = ()) -> None:
    """Send ``(system, payload)`` items and raw ``(topic kind, value, headers)`` messages
    with a plain aiokafka producer (not the project's code)."""
    from aiokafka import AIOKafkaProducer

    cfg = stream_settings(env)
    topics = topic_of_system(cfg)
    normalizer = Normalizer()

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap,
                                    max_request_size=4_000_000)
        await producer.start()
        try:
            futures = [await producer.send(topics[s], orjson.dumps(p),
                                           key=message_key(s, p, normalizer),
                                           headers=[("source", s.encode())]) for s, p in items]
            futures += [await producer.send(cfg.input_topic(kind), value, headers=headers)
                        for kind, value, headers in raw]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topic(env: dict[str, str], topic: str, settle_seconds: float = 1.0) -> list:
    """Every message of ``topic`` (all partitions), read until nothing new arrives for
    ``settle_seconds``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    cfg = stream_settings(env)

    async def run() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=cfg.bootstrap, group_id=None,
                                    auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=4_000_000,
                                    fetch_max_bytes=8_000_000)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(cfg.partitions)])
            out: list = []
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < settle_seconds:
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    out.extend(msgs)
                if batch:
                    quiet_since = time.monotonic()
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def processed(data_dir: Path) -> int:
    """Events stored so far (0 before the first worker created the store)."""
    from idgraph.core.errors import BackendError

    if not (data_dir / "profiles.sqlite").exists():
        return 0
    store = create_store("sqlite", data_dir, Settings().regions.regions, readonly=True)
    try:
        return store.counts()["processed_events"]
    except BackendError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        store.close()


@dataclass
class RunLog:
    """What happened, for the failure message: each fault, the worker it hit and how that
    worker ended."""

    seed: int
    faults: list[Fault]
    lines: list[str] = field(default_factory=list)
    kills: list[int] = field(default_factory=list)
    """The group's committed offsets when each killed worker was found dead."""

    def say(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {line}")

    def __str__(self) -> str:
        return "\n".join([f"seed {self.seed}, schedule {self.faults}", *self.lines])


def committed_offsets(env: dict[str, str]) -> dict[tuple[str, int], int]:
    """The group's committed offset of each input partition (0: none): the next message a
    member will be handed, so everything before it was acknowledged and committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    cfg = stream_settings(env)

    async def run() -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=cfg.bootstrap,
                                    group_id=cfg.consumer_group, enable_auto_commit=False)
        await consumer.start()
        try:
            return {(t, p): await consumer.committed(TopicPartition(t, p)) or 0
                    for t in cfg.input_topics for p in range(cfg.partitions)}
        finally:
            await consumer.stop()

    return asyncio.run(run())


def end_offsets(env: dict[str, str]) -> dict[tuple[str, int], int]:
    """One past the last message's offset in each input partition, found by reading them
    all (the local broker's ListOffsets answer trails the offsets it hands out)."""
    cfg = stream_settings(env)
    ends: dict[tuple[str, int], int] = {}
    for topic in cfg.input_topics:
        for m in read_topic(env, topic, settle_seconds=0.5):
            ends[(topic, m.partition)] = max(ends.get((topic, m.partition), 0), m.offset + 1)
    return ends


def committed(env: dict[str, str]) -> int:
    """The sum of the group's committed offsets (0: nothing committed yet)."""
    return sum(committed_offsets(env).values())


def run(workload: Workload, faults: list[Fault], start_worker, broker, env: dict[str, str],
        data_dir: Path, log: RunLog, drain_timeout: float = 180.0) -> None:
    """Play ``faults`` against two workers consuming ``workload`` into ``data_dir``, then
    let a clean pair drain the topics. ``start_worker(name, data_dir, **env)`` starts one
    ``idgraph worker`` (tests/stream/conftest.py ``workers``); ``broker`` is the
    :class:`~idgraph.devservers.kafka_broker.LocalBroker`. The events arrive in as many
    waves as there are faults, each fault played while its wave is consumed, so every
    fault meets a worker with work in hand."""
    items = workload.items
    raw = [(p.kind, p.value, p.headers) for p in workload.poison]
    waves = max(1, len(faults))
    for n in range(waves):
        lo, hi = n * len(items) // waves, (n + 1) * len(items) // waves
        produce(env, items[lo:hi], raw[n::waves])
        if n >= len(faults):
            break
        fault = faults[n]
        other = start_worker(f"w{n}-other", data_dir)
        victim = start_worker(f"w{n}-{fault.kind}", data_dir,
                              IDGRAPH_FAILPOINTS=fault.failpoints())
        log.say(f"wave {n}: {hi - lo} events, fault {fault}")
        _play(fault, victim, broker, data_dir, log)
        if not victim.alive():
            log.kills.append(committed(env))
            log.say(f"  {victim.name} died with {log.kills[-1]} offsets committed")
        for w in (victim, other):
            code = w.stop(timeout=60)
            log.say(f"  {w.name} ended with {code}")
            assert code in (0, -signal.SIGKILL), f"{w.name} exited with {code}:\n{w.log_tail()}"
    a, b = start_worker("drain-a", data_dir), start_worker("drain-b", data_dir)
    deadline = time.monotonic() + drain_timeout
    ends = end_offsets(env)
    while True:  # until the group has committed every message of the input topics
        done = committed_offsets(env)
        behind = [tp for tp, end in ends.items() if done.get(tp, 0) < end]
        if not behind:
            break
        for w in (a, b):
            assert w.alive(), f"{w.name} exited ({w.proc.returncode}):\n{w.log_tail()}"
        if time.monotonic() > deadline:
            log.say(f"drain timed out with {len(behind)} partitions not committed to the end")
            break
        time.sleep(0.5)
    for w in (a, b):
        assert w.stop(timeout=60) == 0, w.log_tail()


def _quiet(data_dir: Path, seconds: float) -> bool:
    """Sleep ``seconds``; True when no event was stored meanwhile."""
    before = processed(data_dir)
    time.sleep(seconds)
    return processed(data_dir) == before


def _play(fault: Fault, victim, broker, data_dir: Path, log: RunLog) -> None:
    """Apply ``fault`` to ``victim`` (whose failpoints are already armed) and return once
    it has had its effect (or the wave is consumed without the victim reaching it)."""
    deadline = time.monotonic() + 90
    start = processed(data_dir)
    while (victim.alive() and victim.stats().get("batches", 0) == 0
           and processed(data_dir) == start and time.monotonic() < deadline):
        time.sleep(0.05)
    if fault.kind in ("kill_at", "store_refuses", "dead_letters_refused"):
        while victim.alive() and not _quiet(data_dir, 3.0) and time.monotonic() < deadline:
            pass
        log.say(f"  {victim.name} {'is alive' if victim.alive() else 'died'}")
    elif fault.kind == "kill_while_retrying":
        while ("not stored" not in victim.log_path.read_text(errors="replace")
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(1.0)
        victim.kill()
        log.say(f"  killed {victim.name} while it retried a batch the store refused")
    elif fault.kind == "kill_random":
        time.sleep(fault.seconds)
        if victim.alive():
            victim.kill()
        log.say(f"  killed {victim.name} {fault.seconds} s after its first batch")
    elif fault.kind == "pause":
        os.kill(victim.proc.pid, signal.SIGSTOP)
        time.sleep(fault.seconds)
        os.kill(victim.proc.pid, signal.SIGCONT)
        log.say(f"  paused {victim.name} for {fault.seconds} s")
        _quiet(data_dir, 3.0)
    elif fault.kind == "broker_pause":
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(fault.seconds)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        log.say(f"  paused the broker for {fault.seconds} s")
        _quiet(data_dir, 3.0)


# ---------------------------------------------------------------------------- checker


def check(workload: Workload, env: dict[str, str], data_dir: Path) -> list[str]:
    """The violations of the delivery guarantees in what the run left behind (module
    docstring); an empty list: none."""
    cfg = stream_settings(env)
    want = workload.expected
    got = read_state(data_dir)
    problems: list[str] = []
    if got.processed != want.processed:
        problems.append(f"{got.processed} events recorded as processed, {want.processed} "
                        "expected (lost or extra events)")
    twice = sorted(k for k, n in got.record_events.items() if n > want.record_events.get(k, 0))
    lost = sorted(k for k, n in want.record_events.items() if got.record_events.get(k, 0) < n)
    if twice:
        problems.append(f"{len(twice)} records counted more events than they have "
                        f"(applied twice), e.g. {twice[:3]}")
    if lost:
        problems.append(f"{len(lost)} records are missing events (lost), e.g. {lost[:3]}")
    settings = Settings(data_dir=data_dir)
    graph = create_graph("networkx", data_dir, LinkPlanner(settings.linking).shareable_types(),
                         read_only=True)
    store = create_store("sqlite", data_dir, settings.regions.regions, readonly=True)
    try:
        assignment = store.record_profiles()
        groups: dict[str, set[str]] = {}
        for key, pid in assignment.items():
            groups.setdefault(pid, set()).add(key)
        split = [pid for pid, keys in groups.items() if set(graph.records_of(pid)) != keys]
        if split:
            problems.append(f"{len(split)} profiles differ from their graph component "
                            "(a half-applied batch)")
        pending = store.pending_changes(10)
        if pending:
            problems.append(f"the outbox still holds changes ({len(pending)}+): not published")
        final_ids = set(groups)
    finally:
        store.close()
        graph.close()
    # Who is one person must not depend on faults. Where an anonymous record lands may:
    # a shareable identifier joins it to whichever known profile held that identifier
    # first (resolver/linking.py), and Kafka orders events only within a partition, so
    # two undisturbed runs may place it differently too. Profiles with the same records
    # must be equal in every field.
    if got.known_partition() != want.known_partition():
        n = len(got.known_partition() ^ want.known_partition())
        problems.append(f"{n} profiles group known records differently from the "
                        "undisturbed run (a wrong merge or split)")
    same = [k for k in want.profiles if k in got.profiles]
    differ = [k for k in same if got.profiles[k] != want.profiles[k]]
    if differ:
        fields = sorted({f for k in differ for f, v in want.profiles[k].items()
                         if got.profiles[k].get(f) != v})
        problems.append(f"{len(differ)} profiles with the same records as in the "
                        f"undisturbed run differ from it in {fields}")
    announced: set[str] = set()
    for m in read_topic(env, cfg.profile_changes_topic):
        change = orjson.loads(m.value)
        announced.add(change["profile_id"])
        announced.update(change.get("related_ids") or ())
    unannounced = final_ids - announced
    if unannounced:
        problems.append(f"{len(unannounced)} profiles were never announced on "
                        f"{cfg.profile_changes_topic}")
    letters = Counter()
    reasons: dict[bytes, str] = {}
    for m in read_topic(env, cfg.dead_letter_topic):
        letters[m.value] += 1
        reasons[m.value] = dict(m.headers)[REASON].decode()
    missing = [p for p in workload.poison if p.value not in letters]
    if missing:
        problems.append(f"{len(missing)} of {len(workload.poison)} malformed messages are "
                        f"not in {cfg.dead_letter_topic} (lost), e.g. reasons "
                        f"{[p.reason for p in missing[:3]]}")
    wrong = [p.reason for p in workload.poison
             if p.value in reasons and not reasons[p.value].startswith(p.reason)]
    if wrong:
        problems.append(f"{len(wrong)} dead letters carry the wrong reason, e.g. {wrong[:3]}")
    return problems
