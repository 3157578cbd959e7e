"""Publishing a round of messages to one topic as producer batches.

The outbox's changes go out in rounds of up to 5,000 (:mod:`idgraph.stream.delivery`).
Faust's ``Topic.send`` costs tens of microseconds per message on the event loop (a future,
callbacks and a task per message), which the profile of a streaming worker showed as a
tenth of its CPU. :class:`BatchedTopic` hands aiokafka one batch per partition instead
(``create_batch`` / ``send_batch``) and waits for one future per batch.

Partitions: each message goes to the partition aiokafka's own ``send`` would give it (the
producer's partitioner on the key: murmur2, as Kafka's Java clients), so the changes of one
profile stay in one partition, in order, whichever way they were sent. That choice is
aiokafka's ``_partition``, a private method; the lock pins aiokafka, and
``tests/stream/test_publish.py`` checks the choice against ``send`` on the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


class BatchedTopic:
    """``send_many`` for a Faust topic whose app's producer is started (a running worker)."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic
        self.name: str = topic.get_topic_name()

    async def send_many(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send ``(key, value)`` messages; returns once the broker has every one, or raises
        the first send error (then some may have been delivered: a retry sends the round
        again, at least once)."""
        if not messages:
            return
        producer = self.topic.app.producer._ensure_producer()  # aiokafka's, once started
        await producer.partitions_for(self.name)  # the topic's metadata, for _partition
        batches: dict[int, Any] = {}
        sent: list[asyncio.Future] = []
        for key, value in messages:
            partition = producer._partition(self.name, None, key, value, key, value)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                sent.append(await producer.send_batch(batch, self.name, partition=partition))
                batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"{self.name}: a message larger than a producer batch")
        for partition, batch in batches.items():
            if batch.record_count():
                sent.append(await producer.send_batch(batch, self.name, partition=partition))
        await asyncio.gather(*sent)
