"""CQL of the Cassandra profile store: keyspaces, tables and every statement it runs.

Each region ``R`` has its own keyspace ``{keyspace_prefix}_{R}``, replicated with
NetworkTopologyStrategy to the data centres ``cassandra.region_datacenters[R]`` names and
nowhere else. Every table of a region keyspace also has ``region`` as the first column of
its partition key, so a row states its region, and a statement bound to another region
finds nothing. A region keyspace holds every row of that region's profiles:

========================  =====================================  ==========================
table                     primary key                            columns
========================  =====================================  ==========================
``profiles``              ``((region, profile_id))``             ``updated_at`` (the head,
                                                                 null for an alias),
                                                                 ``anonymous``, ``alias_of``
``records``               ``((region, record_key))``             ``profile_id``,
                                                                 ``last_seen``, ``doc`` (the
                                                                 record state, JSON),
                                                                 ``idx`` (its index rows)
``profile_links``         ``((region, profile_id), kind, key)``  ``kind`` ``r``: a record of
                                                                 the profile, ``a``: an alias
``identifiers``           ``((region, identifier), record_key)`` ``linked``
``history``               ``((region, profile_id), seq, kind,    ``related``, ``at``
                          subject)``
``outbox``                ``((region, bucket), change_id)``      ``change`` (hourly buckets)
``journal``               ``((region, batch_id), part)``         ``data`` (redo log of a
                                                                 batch, see ``journal.py``)
``meta``                  ``((region, name))``                   ``value`` (in-flight batch,
                                                                 outbox and deadline
                                                                 low-water buckets, last
                                                                 change-log row)
``memberships``           ``((region, profile_id), segment)``    ``member``, ``next_change``,
                                                                 ``deadline_bucket``, ``doc``
``segment_members``       ``((region, segment, shard),           ``doc`` (members only)
                          profile_id)``
``segment_deadlines``     ``((region, bucket), next_change,      ``doc`` (hourly buckets)
                          segment, profile_id)``
``segment_log``           ``((region, bucket), log_id)``         ``n``, ``changes`` (hourly
                                                                 buckets, TTL)
``segment_builds``        ``((region), segment)``                ``doc``
========================  =====================================  ==========================

Segments (see :mod:`.segments` for how the planner keeps these tables consistent).
``memberships`` is the row of record: one per (profile, segment) while the profile is a
member or has a pending deadline; ``segment_members`` and ``segment_deadlines`` are the
two indexes the store keeps beside it in the same atomic batch (2.1 has no materialized
views, and a secondary index on ``next_change`` could not answer a range): the members of
a segment spread over :data:`MEMBER_SHARDS` partitions by a hash of the profile ID, and
each pending deadline filed under the hour it falls due (or, for a deadline already past
when written, the hour it was written). ``segment_log`` holds one row per batch and region
with every membership change of that batch (compressed JSON, ``n`` changes), so a batch's
changes become visible together.

A head and an alias share the ``profiles`` table (an ID is one or the other), so one read
per region resolves an ID; both are written with ``UPDATE`` (no row marker), so deleting
a head's cells or an alias's cell removes the row once nothing else is set.

The keyspace ``{keyspace_prefix}_global`` holds no personal data: ``processed_events``
(SHA-256 of event IDs, which may embed an email address), ``batches`` (batch state,
the regions a batch touches and those hashes) and ``segment_catalog`` (segment
definitions, one partition: the catalog version row ``('c', '', 0)``, the current version
of each name ``('h', name, 0)`` and every version ``('v', name, version)``, so a define is
one conditional batch on one partition) and ``writer_fence`` (the newest fencing token a
commit carried: :mod:`.journal`). It is replicated to every data centre of
``region_datacenters`` so a writer in any of them dedupes at its local quorum.

Deleted rows and ``gc_grace_seconds``. No table sets ``gc_grace_seconds``, so every table
has Cassandra's default, 864000 s (10 days). A deletion (an erasure's included,
:mod:`.erasure`) writes a tombstone; the deleted cells stay on disk in the SSTables (and
the commit log, until its segment is recycled) until a compaction merges them with the
tombstone, and the tombstone itself, which holds the row's key (profile IDs are part of
most keys), is dropped only by a compaction after ``gc_grace_seconds``. An operator who
must have the bytes gone forces it with a major compaction of the region keyspace
(``nodetool compact KEYSPACE``; ``nodetool garbagecollect`` from Cassandra 3.10) once
``gc_grace_seconds`` have passed, on every node of the keyspace's data centres, and
removes snapshots and incremental backups taken before.

Only what Cassandra 2.1 has: no ``date``/``smallint``, no ``UNSET_VALUE`` (every write
binds every column; a TTL of 0 means none), no materialized views.
"""

from __future__ import annotations

import re

from idgraph.core.errors import ConfigError

REGION_TABLES = ("profiles", "records", "profile_links", "identifiers", "history", "outbox",
                 "journal", "meta", "memberships", "segment_members", "segment_deadlines",
                 "segment_log", "segment_builds")
GLOBAL_TABLES = ("processed_events", "batches", "segment_catalog", "writer_fence")
MEMBER_SHARDS = 8
"""Partitions the members of one segment in one region are spread over (by CRC-32 of the
profile ID): a segment of millions stays out of a single wide partition. Part of the
stored layout: changing it needs the members rewritten."""
GLOBAL_SUFFIX = "global"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_KEYSPACE_NAME = 48  # Cassandra's limit

_POINT_READS = (" WITH compression = {{'sstable_compression': 'LZ4Compressor',"
                 " 'chunk_length_kb': 4}}")  # braces doubled: the DDL goes through format()
"""Tables read by key, a few hundred bytes a row: a point read decompresses one chunk, so
4 kB chunks instead of the default 64 kB (measured: lookups ~2x faster on 2.1)."""

REGION_DDL = {
    "profiles": "CREATE TABLE IF NOT EXISTS {ks}.profiles (region text, profile_id text,"
                " updated_at double, anonymous int, alias_of text,"
                " PRIMARY KEY ((region, profile_id)))" + _POINT_READS,
    "records": "CREATE TABLE IF NOT EXISTS {ks}.records (region text, record_key text,"
               " profile_id text, last_seen double, doc blob, idx blob,"
               " PRIMARY KEY ((region, record_key)))" + _POINT_READS,
    "profile_links": "CREATE TABLE IF NOT EXISTS {ks}.profile_links (region text,"
                     " profile_id text, kind text, key text,"
                     " PRIMARY KEY ((region, profile_id), kind, key))" + _POINT_READS,
    "identifiers": "CREATE TABLE IF NOT EXISTS {ks}.identifiers (region text, identifier text,"
                   " record_key text, linked boolean,"
                   " PRIMARY KEY ((region, identifier), record_key))" + _POINT_READS,
    "history": "CREATE TABLE IF NOT EXISTS {ks}.history (region text, profile_id text,"
               " seq bigint, kind text, subject text, related blob, at double,"
               " PRIMARY KEY ((region, profile_id), seq, kind, subject))" + _POINT_READS,
    "outbox": "CREATE TABLE IF NOT EXISTS {ks}.outbox (region text, bucket bigint,"
              " change_id timeuuid, change blob, PRIMARY KEY ((region, bucket), change_id))",
    "journal": "CREATE TABLE IF NOT EXISTS {ks}.journal (region text, batch_id timeuuid,"
               " part int, data blob, PRIMARY KEY ((region, batch_id), part))",
    "meta": "CREATE TABLE IF NOT EXISTS {ks}.meta (region text, name text, value text,"
            " PRIMARY KEY ((region, name)))",
    "memberships": "CREATE TABLE IF NOT EXISTS {ks}.memberships (region text,"
                   " profile_id text, segment text, member boolean, next_change double,"
                   " deadline_bucket bigint, doc blob,"
                   " PRIMARY KEY ((region, profile_id), segment))" + _POINT_READS,
    "segment_members": "CREATE TABLE IF NOT EXISTS {ks}.segment_members (region text,"
                       " segment text, shard int, profile_id text, doc blob,"
                       " PRIMARY KEY ((region, segment, shard), profile_id))",
    "segment_deadlines": "CREATE TABLE IF NOT EXISTS {ks}.segment_deadlines (region text,"
                         " bucket bigint, next_change double, segment text, profile_id text,"
                         " doc blob, PRIMARY KEY ((region, bucket), next_change, segment,"
                         " profile_id))",
    "segment_log": "CREATE TABLE IF NOT EXISTS {ks}.segment_log (region text, bucket bigint,"
                   " log_id timeuuid, n int, changes blob,"
                   " PRIMARY KEY ((region, bucket), log_id))",
    "segment_builds": "CREATE TABLE IF NOT EXISTS {ks}.segment_builds (region text,"
                      " segment text, doc blob, PRIMARY KEY ((region), segment))",
}
GLOBAL_DDL = {
    "processed_events": "CREATE TABLE IF NOT EXISTS {ks}.processed_events"
                        " (event_hash blob PRIMARY KEY)",
    "batches": "CREATE TABLE IF NOT EXISTS {ks}.batches (batch_id timeuuid PRIMARY KEY,"
               " state text, regions text, events blob)",
    "segment_catalog": "CREATE TABLE IF NOT EXISTS {ks}.segment_catalog (part int, kind text,"
                       " name text, version int, value bigint, doc blob,"
                       " PRIMARY KEY ((part), kind, name, version))",
    # the writers' fence (:mod:`.journal`): the newest fencing token a commit carried, and
    # the batch it committed; one row, overwritten (no tombstones)
    "writer_fence": "CREATE TABLE IF NOT EXISTS {ks}.writer_fence (name text PRIMARY KEY,"
                    " fence bigint, last_batch timeuuid)",
}

# -- mutations: the statements a batch is made of (journaled, then applied) --------------
#
# Each is (CQL, kinds): one kind letter per bind marker, in order, telling the journal how
# to encode the value: "b" bytes, "u" UUID, "v" anything JSON carries (text, numbers,
# booleans). Writes bind their TTL and write timestamp: a replayed journal writes the same
# cells with the same timestamps, so replaying is idempotent and never overwrites a newer
# write.

PUT_HEAD = "put_head"
DEL_HEAD = "del_head"
PUT_ALIAS = "put_alias"
DEL_ALIAS = "del_alias"
PUT_RECORD = "put_record"
PUT_RECORD_IDX = "put_record_idx"
DEL_RECORD = "del_record"
PUT_LINK = "put_link"
DEL_LINK = "del_link"
PUT_IDENT = "put_ident"
DEL_IDENT = "del_ident"
PUT_HIST = "put_hist"
DEL_HIST = "del_hist"
PUT_OUTBOX = "put_outbox"
DEL_OUTBOX = "del_outbox"
PUT_MEMBERSHIP = "put_membership"
DEL_MEMBERSHIP = "del_membership"
PUT_MEMBER = "put_member"
DEL_MEMBER = "del_member"
PUT_DEADLINE = "put_deadline"
DEL_DEADLINE = "del_deadline"
PUT_SEGMENT_LOG = "put_segment_log"
DEL_SEGMENT_LOG = "del_segment_log"
PUT_SEGMENT_LOG_LAST = "put_segment_log_last"
PUT_BUILD = "put_build"
DEL_PROCESSED = "del_processed"

GLOBAL_MUTATIONS = frozenset({DEL_PROCESSED})
"""Mutations of the global keyspace: journaled with a region's part of a batch (the one
:mod:`.plan` files them under), applied in the global keyspace."""

def _cql(kinds: str, text: str) -> tuple[str, str]:
    """(CQL, kinds); checks there is one kind per bind marker."""
    if text.count("?") != len(kinds):
        raise AssertionError(f"kinds {kinds!r} do not match the markers of {text!r}")
    return text, kinds


MUTATIONS: dict[str, tuple[str, str]] = {
    PUT_HEAD: _cql(
        "vvvvvv", "UPDATE {ks}.profiles USING TTL ? AND TIMESTAMP ?"
        " SET updated_at = ?, anonymous = ? WHERE region = ? AND profile_id = ?"),
    DEL_HEAD: _cql(
        "vvv", "DELETE updated_at, anonymous FROM {ks}.profiles USING TIMESTAMP ?"
        " WHERE region = ? AND profile_id = ?"),
    PUT_ALIAS: _cql(
        "vvvvv", "UPDATE {ks}.profiles USING TTL ? AND TIMESTAMP ? SET alias_of = ?"
        " WHERE region = ? AND profile_id = ?"),
    DEL_ALIAS: _cql(
        "vvv", "DELETE alias_of FROM {ks}.profiles USING TIMESTAMP ?"
        " WHERE region = ? AND profile_id = ?"),
    PUT_RECORD: _cql(
        "vvvvbbvv", "INSERT INTO {ks}.records (region, record_key, profile_id, last_seen,"
        " doc, idx) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    PUT_RECORD_IDX: _cql(
        "vvbvv", "UPDATE {ks}.records USING TTL ? AND TIMESTAMP ? SET idx = ?"
        " WHERE region = ? AND record_key = ?"),
    DEL_RECORD: _cql(
        "vvv", "DELETE FROM {ks}.records USING TIMESTAMP ? WHERE region = ?"
        " AND record_key = ?"),
    PUT_LINK: _cql(
        "vvvvvv", "INSERT INTO {ks}.profile_links (region, profile_id, kind, key)"
        " VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_LINK: _cql(
        "vvvvv", "DELETE FROM {ks}.profile_links USING TIMESTAMP ? WHERE region = ?"
        " AND profile_id = ? AND kind = ? AND key = ?"),
    PUT_IDENT: _cql(
        "vvvvvv", "INSERT INTO {ks}.identifiers (region, identifier, record_key, linked)"
        " VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_IDENT: _cql(
        "vvvv", "DELETE FROM {ks}.identifiers USING TIMESTAMP ? WHERE region = ?"
        " AND identifier = ? AND record_key = ?"),
    PUT_HIST: _cql(
        "vvvvvbvvv", "INSERT INTO {ks}.history (region, profile_id, seq, kind, subject,"
        " related, at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_HIST: _cql(
        "vvvvvv", "DELETE FROM {ks}.history USING TIMESTAMP ? WHERE region = ?"
        " AND profile_id = ? AND seq = ? AND kind = ? AND subject = ?"),
    PUT_OUTBOX: _cql(
        "vvubv", "INSERT INTO {ks}.outbox (region, bucket, change_id, change)"
        " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"),
    DEL_OUTBOX: _cql(
        "vvvu", "DELETE FROM {ks}.outbox USING TIMESTAMP ? WHERE region = ? AND bucket = ?"
        " AND change_id = ?"),
    PUT_MEMBERSHIP: _cql(
        "vvvvvvbvv", "INSERT INTO {ks}.memberships (region, profile_id, segment, member,"
        " next_change, deadline_bucket, doc) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " USING TTL ? AND TIMESTAMP ?"),
    DEL_MEMBERSHIP: _cql(
        "vvvv", "DELETE FROM {ks}.memberships USING TIMESTAMP ? WHERE region = ?"
        " AND profile_id = ? AND segment = ?"),
    PUT_MEMBER: _cql(
        "vvvvbvv", "INSERT INTO {ks}.segment_members (region, segment, shard, profile_id,"
        " doc) VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_MEMBER: _cql(
        "vvvvv", "DELETE FROM {ks}.segment_members USING TIMESTAMP ? WHERE region = ?"
        " AND segment = ? AND shard = ? AND profile_id = ?"),
    PUT_DEADLINE: _cql(
        "vvvvvbvv", "INSERT INTO {ks}.segment_deadlines (region, bucket, next_change,"
        " segment, profile_id, doc) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_DEADLINE: _cql(
        "vvvvvv", "DELETE FROM {ks}.segment_deadlines USING TIMESTAMP ? WHERE region = ?"
        " AND bucket = ? AND next_change = ? AND segment = ? AND profile_id = ?"),
    PUT_SEGMENT_LOG: _cql(
        "vvuvbvv", "INSERT INTO {ks}.segment_log (region, bucket, log_id, n, changes)"
        " VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
    DEL_SEGMENT_LOG: _cql(
        "vvvu", "DELETE FROM {ks}.segment_log USING TIMESTAMP ? WHERE region = ?"
        " AND bucket = ? AND log_id = ?"),
    PUT_SEGMENT_LOG_LAST: _cql(
        "vvvv", "UPDATE {ks}.meta USING TIMESTAMP ? SET value = ? WHERE region = ?"
        " AND name = ?"),
    PUT_BUILD: _cql(
        "vvbv", "INSERT INTO {ks}.segment_builds (region, segment, doc) VALUES (?, ?, ?)"
        " USING TIMESTAMP ?"),
    # the global keyspace's (GLOBAL_MUTATIONS)
    DEL_PROCESSED: _cql(
        "vb", "DELETE FROM {ks}.processed_events USING TIMESTAMP ? WHERE event_hash = ?"),
}

# -- reads and bookkeeping of a region keyspace ------------------------------------------

REGION_QUERIES: dict[str, str] = {
    "ids_in": "SELECT profile_id, updated_at, alias_of, anonymous FROM {ks}.profiles"
              " WHERE region = ? AND profile_id IN ?",
    "id": "SELECT updated_at, alias_of FROM {ks}.profiles WHERE region = ? AND profile_id = ?",
    "record_locations_in": "SELECT record_key, profile_id, idx FROM {ks}.records"
                           " WHERE region = ? AND record_key IN ?",
    "records_in": "SELECT record_key, profile_id, last_seen, doc, idx FROM {ks}.records"
                  " WHERE region = ? AND record_key IN ?",
    "record_last_seen_in": "SELECT record_key, profile_id, last_seen FROM {ks}.records"
                           " WHERE region = ? AND record_key IN ?",
    "links": "SELECT kind, key FROM {ks}.profile_links WHERE region = ? AND profile_id = ?",
    "identifier": "SELECT record_key, linked FROM {ks}.identifiers"
                  " WHERE region = ? AND identifier = ?",
    "history": "SELECT seq, kind, subject, related, at FROM {ks}.history"
               " WHERE region = ? AND profile_id = ?",
    "outbox": "SELECT change_id, change FROM {ks}.outbox WHERE region = ? AND bucket = ?"
              " LIMIT ?",
    "outbox_bucket": "SELECT change_id, change FROM {ks}.outbox WHERE region = ?"
                     " AND bucket = ?",
    "outbox_delete": "DELETE FROM {ks}.outbox WHERE region = ? AND bucket = ?"
                     " AND change_id = ?",
    "meta": "SELECT value FROM {ks}.meta WHERE region = ? AND name = ?",
    "meta_put": "INSERT INTO {ks}.meta (region, name, value) VALUES (?, ?, ?)",
    "journal_put": "INSERT INTO {ks}.journal (region, batch_id, part, data)"
                   " VALUES (?, ?, ?, ?)",
    "journal": "SELECT part, data FROM {ks}.journal WHERE region = ? AND batch_id = ?",
    "journal_delete": "DELETE FROM {ks}.journal WHERE region = ? AND batch_id = ?",
    "scan_records": "SELECT record_key, profile_id FROM {ks}.records",
    "scan_profiles": "SELECT updated_at, alias_of FROM {ks}.profiles",
    "count_records": "SELECT count(*) FROM {ks}.records",
    "count_identifiers": "SELECT count(*) FROM {ks}.identifiers",
    # segments
    "memberships_in": "SELECT profile_id, segment, member, next_change, deadline_bucket, doc"
                      " FROM {ks}.memberships WHERE region = ? AND profile_id IN ?",
    "members_from": "SELECT profile_id, doc FROM {ks}.segment_members WHERE region = ?"
                    " AND segment = ? AND shard = ? AND profile_id > ? LIMIT ?",
    "count_members": "SELECT count(*) FROM {ks}.segment_members WHERE region = ?"
                     " AND segment = ? AND shard = ?",
    "deadlines_due": "SELECT next_change, segment, profile_id, doc FROM {ks}.segment_deadlines"
                     " WHERE region = ? AND bucket = ? AND next_change > 0"
                     " AND next_change <= ? LIMIT ?",
    "segment_log_from": "SELECT log_id, n, changes FROM {ks}.segment_log WHERE region = ?"
                        " AND bucket = ? AND log_id >= ? LIMIT ?",
    "segment_log": "SELECT log_id, n, changes FROM {ks}.segment_log WHERE region = ?"
                   " AND bucket = ? LIMIT ?",
    "segment_log_bucket": "SELECT log_id, n, changes, TTL(changes) FROM {ks}.segment_log"
                          " WHERE region = ? AND bucket = ?",
    "segment_builds": "SELECT doc FROM {ks}.segment_builds WHERE region = ?",
    "profile_ids_first": "SELECT profile_id, updated_at FROM {ks}.profiles LIMIT ?",
    "profile_ids_after": "SELECT profile_id, updated_at FROM {ks}.profiles"
                         " WHERE token(region, profile_id) > token(?, ?) LIMIT ?",
}

GLOBAL_QUERIES: dict[str, str] = {
    "processed_in": "SELECT event_hash FROM {ks}.processed_events WHERE event_hash IN ?",
    "processed_put": "INSERT INTO {ks}.processed_events (event_hash) VALUES (?)"
                     " USING TIMESTAMP ?",
    "count_processed": "SELECT count(*) FROM {ks}.processed_events",
    "batch_put": "INSERT INTO {ks}.batches (batch_id, state, regions, events)"
                 " VALUES (?, ?, ?, ?) USING TTL ?",
    "batch": "SELECT state, regions, events FROM {ks}.batches WHERE batch_id = ?",
    "batch_delete": "DELETE FROM {ks}.batches WHERE batch_id = ?",
    "fence_seed": "INSERT INTO {ks}.writer_fence (name, fence) VALUES (?, 0) IF NOT EXISTS",
    "fence_commit": "UPDATE {ks}.writer_fence SET fence = ?, last_batch = ? WHERE name = ?"
                    " IF fence = ?",
    "fence_last": "SELECT last_batch FROM {ks}.writer_fence WHERE name = ?",
    # segment definitions (:mod:`.segment_catalog`)
    "catalog": "SELECT kind, name, value, doc FROM {ks}.segment_catalog WHERE part = 0"
               " AND kind < 'v'",
    "catalog_versions": "SELECT doc FROM {ks}.segment_catalog WHERE part = 0 AND kind = 'v'"
                        " AND name = ?",
    "catalog_head": "SELECT doc FROM {ks}.segment_catalog WHERE part = 0 AND kind = 'h'"
                    " AND name = ?",
    "catalog_version": "SELECT value FROM {ks}.segment_catalog WHERE part = 0 AND kind = 'c'"
                       " AND name = '' AND version = 0",
    "catalog_init": "INSERT INTO {ks}.segment_catalog (part, kind, name, version, value)"
                    " VALUES (0, 'c', '', 0, 0) IF NOT EXISTS",
    "catalog_bump": "UPDATE {ks}.segment_catalog SET value = ? WHERE part = 0 AND kind = 'c'"
                    " AND name = '' AND version = 0 IF value = ?",
    "catalog_put": "INSERT INTO {ks}.segment_catalog (part, kind, name, version, doc)"
                   " VALUES (0, ?, ?, ?, ?)",
}


def check_name(kind: str, name: str) -> str:
    """``name`` if it can be part of a keyspace name, else :class:`ConfigError`."""
    if not _NAME.match(name):
        raise ConfigError(f"cassandra: {kind} {name!r} must match {_NAME.pattern} "
                          "to name a keyspace")
    return name


def region_keyspace(prefix: str, region: str) -> str:
    """``{prefix}_{region}``; ConfigError when that is not a valid keyspace name."""
    check_name("region", region)
    if region == GLOBAL_SUFFIX:
        raise ConfigError(f"cassandra: a region may not be named {GLOBAL_SUFFIX!r} "
                          "(that keyspace holds the processed-event IDs)")
    name = f"{check_name('cassandra.keyspace_prefix', prefix)}_{region}"
    if len(name) > _MAX_KEYSPACE_NAME:
        raise ConfigError(f"cassandra: keyspace name {name!r} exceeds "
                          f"{_MAX_KEYSPACE_NAME} characters")
    return name


def global_keyspace(prefix: str) -> str:
    """``{prefix}_global``: the keyspace without personal data."""
    return f"{check_name('cassandra.keyspace_prefix', prefix)}_{GLOBAL_SUFFIX}"


def replication_cql(datacenters: dict[str, int]) -> str:
    """The ``WITH replication`` map of a NetworkTopologyStrategy keyspace."""
    dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(datacenters.items()))
    return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"
