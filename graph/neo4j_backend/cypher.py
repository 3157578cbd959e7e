"""Every Cypher statement the Neo4j graph backend sends, in one place.

The test suite parses each of them with Neo4j's own parser (``tools/cypher-lint``), since
the test server (ArcadeDB) accepts some syntax Neo4j 5 rejects, and checks that the backend
sends nothing that is not listed in :data:`STATEMENTS`.

The data model:

- ``(:Record {key, seq, pid, name})``: a source record; ``seq`` orders records by first
  sight, ``pid`` is the live profile ID of its component, ``name`` its name signature
  (:func:`idgraph.resolver.names.name_signature`, absent when it names nobody).
- ``(:Identifier {key, type, pid, generic})``: ``pid`` is set while the identifier has a
  linked edge (it is then in that profile's component), null otherwise; ``generic`` says
  why the value no longer links anything (absent when it still does).
- ``(:Record)-[:LINKS {linked, rule, reason, source, event_id, at}]->(:Identifier)``: an
  identifier edge that links; ``:CARRIES`` with the same properties when it does not (the
  identifier is attached to the record without joining anything).
- ``(:Record)-[:SAME_AS {linked, rule, reason, source, event_id, at, match_weight,
  probability, model_version, contributions}]->(:Record)``: a match that links; ``:SCORED``
  when it does not (``contributions`` is JSON).

Linked and unlinked edges have types of their own so that a path search can be limited
to linked edges by type (Neo4j 5 allows no property map inside ``shortestPath``, and a
``WHERE`` on the path filters after the search on some servers).
- ``(:Profile {pid, founding, seq, live, alias_of, erased})``: every profile ID ever
  assigned (but those an erasure forgot); ``alias_of`` is the live ID an absorbed one
  resolves to (one hop); ``erased`` is true when ``founding`` is the token of a forgotten
  record key (``erase_history``).
- ``(:ProfileHistory {pid, seq, kind, subject, related, at})``: merges, splits, creations
  and deletions, one node per profile ID each names (as the profile store keeps them).
- ``(:GraphMeta {name: 'graph', seq})``: the sequence counter; every write transaction
  updates it first, which serialises writers (see :mod:`idgraph.graph.neo4j_backend.graph`).
"""

from __future__ import annotations

SCHEMA = (
    "CREATE CONSTRAINT idgraph_record_key IF NOT EXISTS FOR (n:Record) REQUIRE n.key IS UNIQUE",
    ("CREATE CONSTRAINT idgraph_identifier_key IF NOT EXISTS "
     "FOR (n:Identifier) REQUIRE n.key IS UNIQUE"),
    "CREATE CONSTRAINT idgraph_profile_pid IF NOT EXISTS FOR (n:Profile) REQUIRE n.pid IS UNIQUE",
    "CREATE CONSTRAINT idgraph_meta_name IF NOT EXISTS FOR (n:GraphMeta) REQUIRE n.name IS UNIQUE",
    "CREATE INDEX idgraph_record_pid IF NOT EXISTS FOR (n:Record) ON (n.pid)",
    "CREATE INDEX idgraph_identifier_pid IF NOT EXISTS FOR (n:Identifier) ON (n.pid)",
    "CREATE INDEX idgraph_profile_alias IF NOT EXISTS FOR (n:Profile) ON (n.alias_of)",
    "CREATE INDEX idgraph_profile_live IF NOT EXISTS FOR (n:Profile) ON (n.live)",
    "CREATE INDEX idgraph_history_pid IF NOT EXISTS FOR (n:ProfileHistory) ON (n.pid)",
    # erase_history: the profiles a forgotten record founded, and those founded by one
    "CREATE INDEX idgraph_profile_founding IF NOT EXISTS FOR (n:Profile) ON (n.founding)",
    "CREATE INDEX idgraph_profile_erased IF NOT EXISTS FOR (n:Profile) ON (n.erased)",
)

# ------------------------------------------------------------------ write transaction

TAKE_TURN = (
    "MERGE (m:GraphMeta {name: 'graph'}) ON CREATE SET m.seq = 0, m.writes = 0 "
    "SET m.writes = m.writes + 1 RETURN m.seq AS seq"
)
SET_SEQ = "MATCH (m:GraphMeta {name: 'graph'}) SET m.seq = $seq"
# the writers' fence (after TAKE_TURN, which holds the node's lock): the newest fencing
# token a write carried, raised to this write's when that is not older
FENCE_SEEN = "MATCH (m:GraphMeta {name: 'graph'}) RETURN coalesce(m.fence, 0) AS fence"
FENCE_SET = "MATCH (m:GraphMeta {name: 'graph'}) SET m.fence = $token"

PIDS_OF_RECORDS = "UNWIND $keys AS k MATCH (r:Record {key: k}) RETURN r.pid AS pid"
IDENTIFIERS_BY_KEY = (
    "UNWIND $keys AS k MATCH (i:Identifier {key: k}) RETURN i.key AS key, i.type AS type, "
    "i.pid AS pid, i.generic AS generic"
)
RECORDS_OF_PIDS = (
    "UNWIND $pids AS p MATCH (r:Record {pid: p}) RETURN r.key AS key, r.seq AS seq, "
    "r.pid AS pid, r.name AS name"
)
IDENTIFIERS_OF_PIDS = (
    "UNWIND $pids AS p MATCH (i:Identifier {pid: p}) "
    "RETURN i.key AS key, i.type AS type, i.pid AS pid, i.generic AS generic"
)
HAS_EDGES_OF_RECORDS = (
    "UNWIND $keys AS k MATCH (r:Record {key: k})-[e:LINKS|CARRIES]->(i:Identifier) "
    "RETURN r.key AS rec, i.key AS ident, i.type AS type, i.pid AS pid, e.linked AS linked, "
    "e.rule AS rule, e.reason AS reason, e.source AS source, e.event_id AS event_id, e.at AS at"
)
MATCH_EDGES_OF_RECORDS = (
    "UNWIND $keys AS k MATCH (r:Record {key: k})-[e:SAME_AS|SCORED]-(o:Record) "
    "RETURN r.key AS rec, o.key AS other, o.pid AS pid, o.seq AS seq, e.linked AS linked, "
    "e.rule AS rule, e.reason AS reason, e.source AS source, e.event_id AS event_id, "
    "e.at AS at, e.match_weight AS match_weight, e.probability AS probability, "
    "e.model_version AS model_version, e.contributions AS contributions"
)
PROFILES_BY_PID = (
    "UNWIND $pids AS p MATCH (m:Profile {pid: p}) "
    "RETURN m.pid AS pid, m.founding AS founding, m.seq AS seq, m.live AS live, "
    "m.alias_of AS alias_of"
)
ALIASES_OF_PIDS = (
    "UNWIND $pids AS p MATCH (m:Profile {alias_of: p}) "
    "RETURN m.pid AS pid, m.founding AS founding, m.seq AS seq, m.live AS live, "
    "m.alias_of AS alias_of"
)
USED_PIDS = "UNWIND $pids AS p MATCH (m:Profile {pid: p}) RETURN m.pid AS pid"

DELETE_HAS = (
    "UNWIND $rows AS r "
    "MATCH (:Record {key: r.rec})-[e:LINKS|CARRIES]->(:Identifier {key: r.ident}) DELETE e"
)
DELETE_MATCHED = (
    "UNWIND $rows AS r MATCH (:Record {key: r.a})-[e:SAME_AS|SCORED]-(:Record {key: r.b}) "
    "DELETE e"
)
DELETE_RECORDS = "UNWIND $keys AS k MATCH (n:Record {key: k}) DETACH DELETE n"
# an identifier left with no linked edge in the written component leaves it; it is deleted
# only when no record at all still carries it
RELEASE_IDENTIFIERS = (
    "UNWIND $keys AS k MATCH (i:Identifier {key: k}) SET i.pid = null "
    "WITH i WHERE NOT EXISTS { (i)--() } DELETE i"
)
MERGE_RECORDS = (
    "UNWIND $rows AS r MERGE (n:Record {key: r.key}) SET n.seq = r.seq, n.pid = r.pid"
)
MERGE_IDENTIFIERS = (
    "UNWIND $rows AS r MERGE (n:Identifier {key: r.key}) SET n.type = r.type, n.pid = r.pid"
)
SET_RECORD_PIDS = "UNWIND $rows AS r MATCH (n:Record {key: r.key}) SET n.pid = r.pid"
SET_RECORD_NAMES = "UNWIND $rows AS r MATCH (n:Record {key: r.key}) SET n.name = r.name"
SET_IDENTIFIER_GENERIC = (
    "UNWIND $rows AS r MATCH (n:Identifier {key: r.key}) SET n.generic = r.generic"
)
SET_IDENTIFIER_PIDS = "UNWIND $rows AS r MATCH (n:Identifier {key: r.key}) SET n.pid = r.pid"
_IDENTIFIER_EDGE = (
    "UNWIND $rows AS r MATCH (a:Record {key: r.rec}) MATCH (b:Identifier {key: r.ident}) "
    "MERGE (a)-[e:{type}]->(b) ON CREATE SET e.linked = r.linked, e.rule = r.rule, "
    "e.reason = r.reason, e.source = r.source, e.event_id = r.event_id, e.at = r.at"
)
MERGE_LINKS = _IDENTIFIER_EDGE.replace("{type}", "LINKS")
MERGE_CARRIES = _IDENTIFIER_EDGE.replace("{type}", "CARRIES")
_MATCH_EDGE = (
    "UNWIND $rows AS r MATCH (a:Record {key: r.a}) MATCH (b:Record {key: r.b}) "
    "MERGE (a)-[e:{type}]->(b) ON CREATE SET e.linked = r.linked, e.rule = r.rule, "
    "e.reason = r.reason, e.source = r.source, e.event_id = r.event_id, e.at = r.at, "
    "e.match_weight = r.match_weight, e.probability = r.probability, "
    "e.model_version = r.model_version, e.contributions = r.contributions"
)
MERGE_SAME_AS = _MATCH_EDGE.replace("{type}", "SAME_AS")
MERGE_SCORED = _MATCH_EDGE.replace("{type}", "SCORED")
MERGE_PROFILES = (
    "UNWIND $rows AS r MERGE (m:Profile {pid: r.pid}) SET m.founding = r.founding, "
    "m.seq = r.seq, m.live = r.live, m.alias_of = r.alias_of"
)
CREATE_HISTORY = (
    "UNWIND $rows AS r CREATE (:ProfileHistory {pid: r.pid, seq: r.seq, kind: r.kind, "
    "subject: r.subject, related: r.related, at: r.at, reason: r.reason})"
)

# ------------------------------------------------------------------- erase_history
# (one write transaction, after TAKE_TURN: see Neo4jGraph.erase_history)

RECORDS_PRESENT = "UNWIND $keys AS k MATCH (r:Record {key: k}) RETURN r.key AS key"
# an identifier no record carries any more (a generic one lingers after remove_records)
DELETE_ORPHAN_IDENTIFIERS = (
    "UNWIND $keys AS k MATCH (i:Identifier {key: k}) WHERE NOT EXISTS { (i)--() } "
    "DELETE i RETURN count(*) AS n"
)
# the profiles a forgotten record founded keep only its token
ERASE_FOUNDERS = (
    "UNWIND $rows AS r MATCH (m:Profile {founding: r.key}) "
    "SET m.founding = r.token, m.erased = true RETURN m.pid AS pid"
)
# profiles founded by a forgotten record that are neither live nor an alias of a live one
VANISHED_PROFILES = (
    "MATCH (m:Profile {erased: true}) WHERE m.live = false "
    "OPTIONAL MATCH (t:Profile {pid: m.alias_of}) "
    "WITH m, t WHERE t IS NULL OR t.live = false RETURN m.pid AS pid"
)
DETACH_ALIASES_OF = (
    "UNWIND $pids AS p MATCH (c:Profile {alias_of: p}) SET c.alias_of = null"
)
HISTORY_SUBJECT_OF = (
    "UNWIND $pids AS p MATCH (h:ProfileHistory {pid: p}) WHERE h.subject = p "
    "RETURN p AS pid, h.seq AS seq, h.related AS related"
)
DELETE_HISTORY = (
    "UNWIND $rows AS r MATCH (h:ProfileHistory {pid: r.pid}) "
    "WHERE h.subject = r.subject AND h.seq = r.seq DELETE h RETURN count(*) AS n"
)
DELETE_HISTORY_OF = (
    "UNWIND $pids AS p MATCH (h:ProfileHistory {pid: p}) DELETE h RETURN count(*) AS n"
)
DELETE_PROFILES = (
    "UNWIND $pids AS p MATCH (m:Profile {pid: p}) DELETE m RETURN count(*) AS n"
)

# ------------------------------------------------------------------------------- reads

RECORD_PIDS = "UNWIND $keys AS k MATCH (r:Record {key: k}) RETURN r.key AS key, r.pid AS pid"
IDENTIFIER_PIDS = (
    "UNWIND $keys AS k MATCH (i:Identifier {key: k}) WHERE i.pid IS NOT NULL "
    "RETURN i.key AS key, i.pid AS pid"
)
RECORD_NAMES_OF_PIDS = (
    "UNWIND $pids AS p MATCH (r:Record {pid: p}) WHERE r.name IS NOT NULL AND r.name <> '' "
    "RETURN p AS pid, r.name AS name"
)
EMAILS_OF_PIDS = (
    "UNWIND $pids AS p MATCH (i:Identifier {pid: p}) WHERE i.type = 'email' "
    "RETURN p AS pid, i.key AS key"
)
CARRIERS_OF_IDENTIFIERS = (
    "UNWIND $keys AS k MATCH (i:Identifier {key: k}) "
    "OPTIONAL MATCH (r:Record)-[:LINKS|CARRIES]->(i) "
    "RETURN k AS key, i.generic AS generic, r.key AS rec, r.name AS name"
)
TYPE_COUNTS = (
    "UNWIND $pids AS p MATCH (i:Identifier {pid: p}) RETURN p AS pid, i.type AS type, "
    "count(i) AS n"
)
HAS_OF_RECORDS = (
    "UNWIND $keys AS k MATCH (r:Record {key: k}) "
    "OPTIONAL MATCH (r)-[e:LINKS|CARRIES]->(i:Identifier) "
    "RETURN k AS key, i.key AS ident, e.linked AS linked"
)
MATCHED_OF_RECORDS = (
    "UNWIND $keys AS k MATCH (r:Record {key: k})-[e:SAME_AS|SCORED]-(o:Record) "
    "RETURN k AS key, o.key AS other, e.linked AS linked"
)
PROFILE_OF = "MATCH (r:Record {key: $key}) RETURN r.pid AS pid"
RECORDS_OF = "MATCH (r:Record {pid: $pid}) RETURN r.key AS key ORDER BY r.seq"
ALIASES_OF = "MATCH (m:Profile {alias_of: $pid}) RETURN m.pid AS pid ORDER BY m.pid"
RESOLVE = "MATCH (m:Profile {pid: $pid}) RETURN m.live AS live, m.alias_of AS alias_of"
LIVE_PROFILES = "MATCH (m:Profile {live: true}) RETURN m.pid AS pid ORDER BY m.pid"
HISTORY_OF = (
    "MATCH (h:ProfileHistory {pid: $pid}) RETURN h.kind AS kind, h.subject AS subject, "
    "h.related AS related, h.at AS at, h.seq AS seq, h.reason AS reason "
    "ORDER BY h.seq, h.kind, h.subject"
)
# the relationship types limit the search itself to linked edges
SHORTEST_LINKED_PATH = (
    "MATCH (a:Identifier {key: $a}) MATCH (b:Identifier {key: $b}) "
    "WHERE a.pid IS NOT NULL AND a.pid = b.pid "
    "MATCH p = shortestPath((a)-[:LINKS|SAME_AS*..200]-(b)) "
    "RETURN [n IN nodes(p) | n.key] AS keys, [n IN nodes(p) | labels(n)] AS kinds, "
    "[x IN relationships(p) | properties(x)] AS rels"
)

STATEMENTS: tuple[str, ...] = tuple(
    v for k, v in sorted(globals().items())
    if k.isupper() and not k.startswith("_") and isinstance(v, str)
) + SCHEMA
"""Every statement above: what the lint test parses and what the backend may send."""
