import os
import sys
from pathlib import Path

from hypothesis import settings as hypothesis_settings

# tests import shared builders as ``tests.helpers``-free top-level module
sys.path.insert(0, str(Path(__file__).parent))

# CI explores the same examples on every run (a failure there reproduces by rerunning);
# locally hypothesis draws new ones each run and may find a case CI has not seen
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


# --- a real Cassandra cluster, shared by every test folder that needs one ---------------
# (one per session: the profile-store, engine and privacy tests use the same one)
#
# A real Cassandra cluster for the profile-store tests: two nodes, two data centres.
#
# ``cassandra_cluster`` (session scope) starts a :class:`LocalCassandraCluster` (Cassandra
# 2.1.0 from the npm package, on the machine's Java; 127.0.0.1 in ``dc1``, 127.0.0.2 in
# ``dc2``) under a session temp dir and stops it at the end of the session. A cluster
# that cannot start is an error in the tests that use it, never a skip.
#
# To run the same tests against a cluster started elsewhere, set
# ``IDGRAPH_TEST_CASSANDRA_CONTACT_POINTS`` (comma-separated IPs, one per node),
# ``IDGRAPH_TEST_CASSANDRA_PORT`` (default 9042) and ``IDGRAPH_TEST_CASSANDRA_DATACENTERS``
# (comma-separated data-centre names, default ``dc1,dc2``). Nothing is started then, and
# the fixture's ``stop_node``/``start_node`` raise (``can_control_nodes`` is False).



import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from idgraph.devservers.cassandra_cluster import LocalCassandraCluster

CONTACT_POINTS_ENV = "IDGRAPH_TEST_CASSANDRA_CONTACT_POINTS"
PORT_ENV = "IDGRAPH_TEST_CASSANDRA_PORT"
DATACENTERS_ENV = "IDGRAPH_TEST_CASSANDRA_DATACENTERS"


@dataclass(frozen=True)
class ExternalCassandraCluster:
    """A cluster this test session did not start: addresses only, no node control."""

    contact_points: list[str]
    port: int
    datacenters: list[str]
    can_control_nodes = False

    def stop_node(self, i: int) -> None:
        raise NotImplementedError(
            f"stop_node: the cluster at {self.contact_points} was not started by the tests "
            f"({CONTACT_POINTS_ENV} is set)"
        )

    def start_node(self, i: int) -> None:
        raise NotImplementedError(
            f"start_node: the cluster at {self.contact_points} was not started by the tests "
            f"({CONTACT_POINTS_ENV} is set)"
        )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def external_cluster_from_env() -> ExternalCassandraCluster | None:
    """The cluster named by ``IDGRAPH_TEST_CASSANDRA_*``, or None when none is named."""
    points = _split(os.environ.get(CONTACT_POINTS_ENV, ""))
    if not points:
        return None
    port_text = os.environ.get(PORT_ENV, "9042")
    try:
        port = int(port_text)
    except ValueError:
        raise pytest.UsageError(f"{PORT_ENV} must be a port number, got {port_text!r}") from None
    datacenters = _split(os.environ.get(DATACENTERS_ENV, "dc1,dc2"))
    return ExternalCassandraCluster(points, port, datacenters)


@pytest.fixture(scope="session")
def cassandra_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalCassandraCluster | ExternalCassandraCluster]:
    """The started cluster (``contact_points``, ``port``, ``datacenters``; see module doc).

    Raises (an error in every test using it) when the local cluster cannot start.
    """
    external = external_cluster_from_env()
    if external is not None:
        yield external
        return
    cluster = LocalCassandraCluster(tmp_path_factory.mktemp("cassandra"))
    with cluster:  # start() raises LocalClusterError with the failing node's log tail
        yield cluster
