"""Publishing a round of changes as producer batches (:mod:`idgraph.stream.publish`) on the
real local broker: every message arrives once, each key in the partition aiokafka's own
``send`` gives it, in order per key; and the worker's Faust consumer hands a message to its
streams without a task per message unless the flow is suspended (:mod:`idgraph.stream.app`).
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from idgraph.stream.publish import BatchedTopic

PARTITIONS = 4


async def _topics(bootstrap: str, *names: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def _read(bootstrap: str, topic: str, expected: int) -> list:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        out: list = []
        for _ in range(100):
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(msgs)
            if len(out) >= expected:
                break
        return out
    finally:
        await consumer.stop()


def test_a_round_arrives_once_in_send_s_partitions_in_order_per_key(broker):
    from aiokafka import AIOKafkaProducer

    batched, single = f"pub-b-{uuid.uuid4().hex[:8]}", f"pub-s-{uuid.uuid4().hex[:8]}"
    # 60 profiles, 5 changes each, interleaved; values big enough to fill several batches
    messages = [(f"p-{i % 60}".encode(), f"{i}:".encode() + b"x" * 2000) for i in range(300)]

    async def run() -> tuple[list, list]:
        await _topics(broker.bootstrap, batched, single)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=16384)
        await producer.start()
        try:
            topic = SimpleNamespace(
                app=SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer)),
                get_topic_name=lambda: batched)
            await BatchedTopic(topic).send_many(messages)
            await asyncio.gather(*[await producer.send(single, v, key=k) for k, v in messages])
        finally:
            await producer.stop()
        return (await _read(broker.bootstrap, batched, len(messages)),
                await _read(broker.bootstrap, single, len(messages)))

    got, reference = asyncio.run(run())
    assert sorted((m.key, m.value) for m in got) == sorted(messages)  # each once
    partition_of = {m.key: m.partition for m in reference}
    assert {m.key: m.partition for m in got} == partition_of
    assert len(set(partition_of.values())) == PARTITIONS
    for key in {k for k, _ in messages}:
        mine = sorted((m for m in got if m.key == key), key=lambda m: m.offset)
        assert [m.value for m in mine] == [v for k, v in messages if k == key]


def test_the_consumer_hands_a_message_over_without_a_task_unless_the_flow_is_suspended():
    from mode.services import WaitResults

    from idgraph.stream.app import _transport_class

    consumer_class = _transport_class(100).Consumer

    async def run() -> tuple:
        consumer = consumer_class.__new__(consumer_class)  # only what wait_first reads
        from mode.utils.locks import Event

        consumer.suspend_flow = Event()
        outer = asyncio.current_task()
        seen: list = []

        async def callback():
            seen.append(asyncio.current_task() is outer)
            return "handled"

        direct = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        called_back: list = []

        async def faust_path(_self, *coros, timeout=None):  # Faust's own, recorded
            called_back.append(len(coros))
            for c in coros:
                c.close()
            return WaitResults([], [], True)

        consumer.suspend_flow.set()
        base = consumer_class.__mro__[1]
        original = base.wait_first
        base.wait_first = faust_path
        try:
            suspended = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        finally:
            base.wait_first = original
        return direct, seen, suspended, called_back

    direct, seen, suspended, called_back = asyncio.run(run())
    assert direct.results == ["handled"] and not direct.stopped
    assert seen == [True]  # awaited in the drain loop's own task: no task per message
    assert suspended.stopped and called_back == [2]  # suspended: Faust's wait_first

