"""Kafka transport: Faust workers, dead letters, profile changes, backfill.

- :mod:`idgraph.stream.events`: the message contract (decode inputs, dead-letter headers, change
  messages); pure functions.
- :mod:`idgraph.stream.processor`: one batch of consumed messages -> the engine, broker-free.
- :mod:`idgraph.stream.delivery`: the steps a batch passes (stored, dead letters sent, changes
  published) and when it may be acknowledged, broker-free.
- :mod:`idgraph.stream.app`: the Faust app and consuming task of ``idgraph worker``.
- :mod:`idgraph.stream.topics`, :mod:`idgraph.stream.produce`: topic creation and producing raw payloads
  (``idgraph topics``, ``idgraph backfill``, the Kafka demo).
- :mod:`idgraph.devservers.kafka_broker`: a local tansu broker for the demo, tests and benchmarks.

The worker calls :meth:`idgraph.engine.Engine.ingest_payloads`, the same entry point the
CLI and the demo use; Faust is transport, not where the logic lives.
"""
