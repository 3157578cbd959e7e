"""Run every benchmark with its default parameters (``make bench``): speed, then accuracy.

The one-million-record batch resolution takes several minutes and ~10 GB; it runs last.
"""

from benchmarks import (
    batch_resolution,
    cassandra_store,
    graph_backends,
    ingest_throughput,
    lookup_latency,
    matching_accuracy,
    realtime_scoring,
    stream_freshness,
    stream_throughput,
)

if __name__ == "__main__":
    ingest_throughput.main([])
    lookup_latency.main([])
    realtime_scoring.main([])
    stream_throughput.main([])
    stream_freshness.main([])
    graph_backends.main([])
    cassandra_store.main([])
    matching_accuracy.main([])
    batch_resolution.main([])
