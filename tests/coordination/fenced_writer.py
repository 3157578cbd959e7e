"""A writer process for the fencing test: takes the writers' turn in Cassandra, fences the
Cassandra store with the turn's token and writes one record, printing each step.

Run as ``python fenced_writer.py`` with a JSON spec on stdin (``cassandra`` settings,
``lease_seconds``, ``record_key``, ``profile_id``) and ``IDGRAPH_FAILPOINTS`` to pause it
(``journal.begun=stop``: SIGSTOP after its batch is journaled, before the commit point).
Exit status 0: written; 3: the store refused the write (fenced).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profile_store"))

from store_builders import rec, seed

from idgraph.coordination.cassandra_backend.turns import CassandraWriterTurns
from idgraph.core.errors import BackendError
from idgraph.profile_store import create_store
from idgraph.profile_store.cassandra_backend.settings import CassandraSettings


def main() -> int:
    spec = json.loads(sys.stdin.read())
    cassandra = CassandraSettings(**spec["cassandra"])
    turns = CassandraWriterTurns(cassandra, ["eu"], wait_seconds=60,
                                 lease_seconds=spec["lease_seconds"])
    store = create_store("cassandra", Path("."), ["eu"], cassandra=cassandra)
    try:
        catch = turns.begin()
        store.fence(catch.token)
        print("turn", catch.token, flush=True)
        try:
            seed(store, rec(spec["record_key"], spec["profile_id"], "eu", ["email:a@x.io"]))
        except BackendError as exc:
            print("refused", str(exc), flush=True)
            turns.abort()
            return 3
        turns.end({spec["record_key"]: "eu"})
        print("written", flush=True)
        return 0
    finally:
        store.close()
        turns.close()


if __name__ == "__main__":
    sys.exit(main())
