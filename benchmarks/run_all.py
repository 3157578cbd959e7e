"""Rerun every committed result (``make bench``): one entry per file in
``benchmarks/results/``, with the command that file records, so each run rewrites its own
file. The demo summaries first, then speed, then accuracy.

The one-million-record batch resolution takes about 7 minutes and ~8 GB; it runs last.
"""

from benchmarks import (
    access_control,
    batch_resolution,
    cassandra_store,
    consent_gating,
    console_pages,
    delivery_soak,
    demo_output,
    distributed_workers,
    graph_backends,
    ingest_throughput,
    lookup_latency,
    lookup_stalls,
    matching_accuracy,
    privacy_requests,
    real_world_accuracy,
    realtime_scoring,
    segment_evaluation,
    segment_latency,
    stream_freshness,
    stream_throughput,
)

#: (benchmark, arguments): one entry per result file, with the command it records.
RUNS = [
    (demo_output, []),
    (demo_output, ["--kafka", "--output", "demo_output_kafka"]),
    *[(ingest_throughput, ["--records", "100000", "--batch", "20000", "--output", name])
      for name in ("ingest_throughput", "ingest_throughput_run2", "ingest_throughput_run3")],
    (ingest_throughput, ["--records", "100000", "--batch", "500", "--output",
                         "ingest_throughput_batch500"]),
    *[(lookup_latency, ["--records", "100000", "--rate", "1000", "--seconds", "10",
                        "--processes", "1", "--output", name])
      for name in ("lookup_latency", "lookup_latency_run2", "lookup_latency_run3")],
    (lookup_latency, ["--records", "100000", "--rate", "500", "--seconds", "10", "--processes",
                      "1", "--output", "lookup_latency_500"]),
    (lookup_stalls, ["--records", "100000", "--seconds", "10"]),
    (segment_latency, ["--records", "100000", "--rate", "1000", "--seconds", "10", "--output",
                       "segment_latency"]),
    (segment_evaluation, ["--parts", "ab", "--records", "570000", "--output",
                          "segment_evaluation"]),
    (segment_evaluation, ["--parts", "c", "--ingest-records", "40000", "--output",
                          "segment_evaluation_ingest"]),
    (realtime_scoring, ["--existing", "100000", "--new", "2000"]),
    *[(stream_throughput, ["--records", "30000", "--output", name])
      for name in ("stream_throughput", "stream_throughput_run2", "stream_throughput_run3")],
    (stream_throughput, ["--records", "30000", "--batch-within", "0.2", "--output",
                         "stream_throughput_within0.2"]),
    *[(stream_freshness, ["--rate", "1000", "--seconds", "20", "--output", name])
      for name in ("stream_freshness", "stream_freshness_run2", "stream_freshness_run3")],
    (graph_backends, ["--records", "100000"]),
    (cassandra_store, ["--records", "20000"]),
    (distributed_workers, ["--records", "6000"]),
    (delivery_soak, ["--seed", "1", "--faults", "10", "--records", "4000"]),
    (consent_gating, ["--records", "20000", "--withdrawals", "200"]),
    (privacy_requests, ["--records", "20000", "--forgets", "20", "--events", "10000"]),
    (console_pages, ["--records", "100000", "--pages", "300", "--previews", "5"]),
    (access_control, ["--records", "50000", "--rate", "500", "--seconds", "3", "--rounds",
                      "20"]),
    (matching_accuracy, []),
    (real_world_accuracy, []),
    (batch_resolution, ["--records", "200000", "--output", "batch_resolution_200k"]),
    (batch_resolution, ["--records", "1000000"]),
]

if __name__ == "__main__":
    for module, argv in RUNS:
        module.main(argv)
