"""Run every speed benchmark with its default parameters (``make bench``)."""

from benchmarks import ingest_throughput, lookup_latency

if __name__ == "__main__":
    ingest_throughput.main([])
    lookup_latency.main([])
