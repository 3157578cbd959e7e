"""Kafka transport (Faust agents, dead-letter and change topics): not built yet.

Planned in the streaming issue. The agents will batch events and call
:meth:`idgraph.engine.Engine.ingest_payloads`, the same entry point the CLI and the demo use.
"""
