"""The Cypher linter (Neo4j's own parser, ``tools/cypher-lint``) rejects what Neo4j 5 rejects,
including syntax the ArcadeDB test server accepts, and accepts the forms the Neo4j backend
relies on."""

from __future__ import annotations

import pytest
from cypher_lint import lint_cypher

GOOD = [
    "RETURN 1",
    "CREATE CONSTRAINT record_key IF NOT EXISTS FOR (n:Record) REQUIRE n.key IS UNIQUE",
    "CREATE INDEX record_pid IF NOT EXISTS FOR (n:Record) ON (n.pid)",
    "SHOW CONSTRAINTS YIELD name RETURN name",
    "DROP CONSTRAINT `Record[key]` IF EXISTS",
    "UNWIND $rows AS r MERGE (n:Record {key: r.key}) ON CREATE SET n.seq = r.seq",
    "UNWIND $rows AS r MERGE (n:Record {key: r.key}) ON CREATE SET n.seq = r.seq SET n.pid = r.pid",
    "MATCH (n:Record {key: $key}) SET n.pid = null",
    ("UNWIND $rows AS r MATCH (a:Record {key: r.record}) MATCH (b:Identifier {key: r.ident}) "
     "MERGE (a)-[e:HAS]->(b) ON CREATE SET e.linked = r.linked, e.rule = r.rule "
     "ON MATCH SET e.at = r.at"),
    ("MATCH (r:Record {key: $key}) OPTIONAL MATCH (r)-[e]-(o) "
     "RETURN type(e) AS t, labels(o) AS l, properties(e) AS p"),
    ("MATCH (a:Record {key: $a}), (b:Record {key: $b}) "
     "MATCH p = shortestPath((a)-[*..50]-(b)) WHERE all(x IN relationships(p) WHERE x.linked) "
     "RETURN [n IN nodes(p) | n.key] AS keys"),
    ("MATCH (a:Record {key: $a}), (b:Record {key: $b}) "
     "MATCH p = shortestPath((a)-[:LINKED*..50]-(b)) RETURN length(p) AS hops"),
    "MATCH (n:Record) WHERE n.key IN $keys DETACH DELETE n",
    "MATCH (i:Identifier) WHERE NOT (i)--() DELETE i",
    "MATCH (i:Identifier) WHERE NOT EXISTS { (i)--() } DELETE i",
    "MATCH (n:Record) WHERE n.pid IS NOT NULL RETURN n.key ORDER BY n.seq DESC LIMIT $n",
    "MATCH (n) RETURN count { (n)--() } AS degree",
    "MATCH (n:`Odd Label` {`a key`: $`a param`}) RETURN n",
    "MATCH (n)\nWHERE n.x = 1\nRETURN n",
]

BAD = {
    # removed in Neo4j 5 (ArcadeDB still runs it)
    "exists function": "MATCH (n) WHERE exists(n.prop) RETURN n",
    "missing parenthesis": "MATCH (n RETURN n",
    # Neo4j 4 constraint syntax, removed in 5
    "ON ... ASSERT constraint": "CREATE CONSTRAINT ON (n:X) ASSERT n.k IS UNIQUE",
    # Neo4j 3 parameter syntax
    "curly-brace parameter": "MATCH (n) WHERE n.x = {param} RETURN n",
    "undefined variable": "MATCH (n) RETURN x",
    # accepted by ArcadeDB, rejected by Neo4j 5
    "property map in shortestPath":
        "MATCH (a), (b) MATCH p = shortestPath((a)-[:L*..50 {linked: true}]-(b)) RETURN p",
    "two statements": "RETURN 1; RETURN 2",
    "empty": "  ",
    "misspelt keyword": "MATCH (n) RETRUN n",
}


@pytest.fixture(scope="module")
def linted() -> dict[str, list[str]]:
    """One linter run for every statement of this module (starting node costs ~2 s)."""
    statements = GOOD + list(BAD.values())
    return dict(zip(statements, lint_cypher(statements), strict=True))


@pytest.mark.parametrize("statement", GOOD)
def test_accepts_valid_neo4j5_cypher(linted, statement):
    assert linted[statement] == []


@pytest.mark.parametrize("name", list(BAD))
def test_rejects_what_neo4j5_rejects(linted, name):
    messages = linted[BAD[name]]
    assert messages, f"{name}: {BAD[name]!r} was accepted"
    assert all(isinstance(m, str) and m for m in messages)


def test_messages_say_what_is_wrong(linted):
    assert "IS NOT NULL" in linted[BAD["exists function"]][0]
    assert "REQUIRE" in linted[BAD["ON ... ASSERT constraint"]][0]
    assert "line 1, column" in linted[BAD["missing parenthesis"]][0]


def test_order_and_shape_follow_the_input():
    statements = ["RETURN 1", "MATCH (n RETURN n", "RETURN 2"]
    result = lint_cypher(statements)
    assert len(result) == 3
    assert result[0] == [] and result[1] and result[2] == []
    assert lint_cypher([]) == []


def test_missing_node_fails_loudly(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="node"):
        lint_cypher(["RETURN 1"])
