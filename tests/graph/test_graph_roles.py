"""Each seam has role interfaces: what is typed as a reader has no write methods."""

from __future__ import annotations

import inspect

import pytest

from idgraph.core.errors import BackendError
from idgraph.graph.base import (
    GraphComponents,
    GraphExplain,
    GraphProfiles,
    GraphView,
    IdentityGraph,
)
from idgraph.profile_store.base import ChangeOutbox, ProfileReader, ProfileStore

GRAPH_WRITES = {"apply", "remove_link", "remove_record", "remove_records", "erase_history",
                "fence"}
STORE_WRITES = {"write", "unprocessed", "fence"}


def _methods(cls: type) -> set[str]:
    """The seam methods of ``cls`` (not the backend hook ``describe_driver_error``)."""
    return {n for n, _ in inspect.getmembers(cls, inspect.isfunction)
            if not n.startswith("_") and n != "describe_driver_error"}


def test_graph_roles_split_reads_from_writes():
    assert GRAPH_WRITES <= _methods(IdentityGraph)
    for role in (GraphComponents, GraphProfiles, GraphExplain, GraphView):
        assert not GRAPH_WRITES & _methods(role), role
    # the roles cover the whole seam: nothing a backend implements sits outside a role
    assert _methods(IdentityGraph) == _methods(GraphView) | GRAPH_WRITES


def test_store_roles_split_reads_from_writes():
    assert STORE_WRITES <= _methods(ProfileStore)
    assert not STORE_WRITES & _methods(ProfileReader)
    assert not (STORE_WRITES | {"pending_changes", "ack_changes"}) & _methods(ProfileReader)
    assert _methods(ProfileStore) == _methods(ProfileReader) | _methods(ChangeOutbox) | STORE_WRITES


def test_views_opened_for_reading_refuse_writes(tmp_path):
    from idgraph.graph import create_graph, create_graph_view
    from idgraph.profile_store import create_reader, create_store

    create_graph("networkx", tmp_path, frozenset()).close()
    create_store("sqlite", tmp_path, ["eu"]).close()
    view = create_graph_view("networkx", tmp_path, frozenset())
    reader = create_reader("sqlite", tmp_path, ["eu"])
    try:
        assert isinstance(view, GraphView) and isinstance(reader, ProfileReader)
        with pytest.raises(BackendError, match="read-only"):
            view.apply([("hubspot:1", 1.0)], [])  # type: ignore[attr-defined]
        from idgraph.profile_store.base import StoreBatch

        with pytest.raises(BackendError, match="read-only"):
            reader.write(StoreBatch())  # type: ignore[attr-defined]
    finally:
        view.close()
        reader.close()


def test_driver_errors_become_backend_errors_naming_the_method(tmp_path):
    from idgraph.graph import create_graph
    from idgraph.profile_store import create_store

    store = create_store("sqlite", tmp_path, ["eu"])
    graph = create_graph("networkx", tmp_path, frozenset())
    store.get_records(["hubspot:1"])  # opens this thread's reader
    store._local.db.close()  # the driver now fails on every read: sqlite3.ProgrammingError
    with pytest.raises(BackendError, match=r"^profile store: get_records failed: Programming"):
        store.get_records(["hubspot:secret@example.com"])
    graph._log._db.close()
    with pytest.raises(BackendError, match=r"^graph: refresh failed: Programming"):
        graph.refresh()
    store.close()
