"""Fixtures for the graph backends' tests: a real Bolt server for the Neo4j backend.

By default a local ArcadeDB server (:class:`idgraph.devservers.bolt_server.LocalBoltServer`)
is started once per test session. To run against another server (a real Neo4j), set
``IDGRAPH_TEST_NEO4J_URI`` and, as needed, ``IDGRAPH_TEST_NEO4J_USER`` (default ``neo4j``),
``IDGRAPH_TEST_NEO4J_PASSWORD`` and ``IDGRAPH_TEST_NEO4J_DATABASE`` (default ``neo4j``);
its database is emptied before every test that uses ``neo4j_settings``.

A server that cannot be started or reached makes the tests that use it error, never skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from idgraph.graph.neo4j_backend.settings import Neo4jSettings

START_TIMEOUT_SECONDS = 120.0


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _driver(settings: Neo4jSettings):  # -> neo4j.Driver
    import neo4j

    return neo4j.GraphDatabase.driver(
        settings.uri, auth=(settings.user, settings.password.get_secret_value()),
        connection_timeout=settings.connection_timeout_seconds)


def reset_database(settings: Neo4jSettings) -> None:
    """Delete every node and relationship, then every constraint and every index but
    Neo4j's built-in token-lookup indexes (constraints first: they own indexes)."""
    with _driver(settings) as driver, driver.session(database=settings.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()
        for record in session.run("SHOW CONSTRAINTS YIELD name RETURN name").data():
            session.run(f"DROP CONSTRAINT {_quote(record['name'])} IF EXISTS").consume()
        indexes = session.run(
            "SHOW INDEXES YIELD name, type, owningConstraint "
            "RETURN name, type, owningConstraint").data()
        for record in indexes:
            if record["type"] != "LOOKUP" and record["owningConstraint"] is None:
                session.run(f"DROP INDEX {_quote(record['name'])} IF EXISTS").consume()


def _external_settings(uri: str) -> Neo4jSettings:
    settings = Neo4jSettings(
        uri=uri,
        user=os.environ.get("IDGRAPH_TEST_NEO4J_USER", "neo4j"),
        password=SecretStr(os.environ.get("IDGRAPH_TEST_NEO4J_PASSWORD", "")),
        database=os.environ.get("IDGRAPH_TEST_NEO4J_DATABASE", "neo4j"),
    )
    try:
        with _driver(settings) as driver, driver.session(database=settings.database) as s:
            s.run("RETURN 1").consume()
    except Exception as exc:
        raise RuntimeError(
            f"IDGRAPH_TEST_NEO4J_URI={uri} is not usable (database {settings.database!r}): "
            f"{type(exc).__name__}: {exc}") from exc
    return settings


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jSettings]:
    """Settings of a running Bolt server for the whole session (see the module docstring);
    a local server is stopped when the session ends."""
    uri = os.environ.get("IDGRAPH_TEST_NEO4J_URI")
    if uri:
        yield _external_settings(uri)
        return
    from idgraph.devservers.bolt_server import LocalBoltServer

    server = LocalBoltServer(tmp_path_factory.mktemp("arcadedb"))
    server.start(timeout=START_TIMEOUT_SECONDS)  # RuntimeError (with the server log) on failure
    try:
        yield Neo4jSettings(uri=server.uri, user=server.user,
                            password=SecretStr(server.password), database=server.database)
    finally:
        server.stop()


@pytest.fixture
def neo4j_reset(bolt_server: Neo4jSettings) -> Callable[[], None]:
    """Empties the session's database (data, constraints, indexes) when called."""
    return lambda: reset_database(bolt_server)


@pytest.fixture
def neo4j_settings(bolt_server: Neo4jSettings,
                   neo4j_reset: Callable[[], None]) -> Iterator[Neo4jSettings]:
    """The session's server settings, its database emptied before the test."""
    neo4j_reset()
    yield bolt_server
