"""The redo journal's codec: a region's mutations as bytes, and back.

JSON compressed with zlib, not pickle (the journal is read back from the database):
each mutation is ``[statement code, [values]]``, bytes in base64 and UUIDs as text, as
the statement's kinds in :data:`.schema.MUTATIONS` say. Floats and integers survive JSON
exactly, so a replayed mutation binds the same values (and write timestamp) as the first.
"""

from __future__ import annotations

import base64
import uuid
import zlib

import orjson

from idgraph.profile_store.cassandra_backend import schema as q
from idgraph.profile_store.cassandra_backend.plan import Mutation


def encode_journal(mutations: list[Mutation]) -> bytes:
    """Mutations as compressed JSON (bytes in base64, UUIDs as text, per statement kinds)."""
    out = []
    for code, values in mutations:
        kinds = q.MUTATIONS[code][1]
        out.append([code, [base64.b64encode(v).decode() if k == "b" else
                           str(v) if k == "u" else v
                           for k, v in zip(kinds, values, strict=True)]])
    return zlib.compress(orjson.dumps(out), 1)


def decode_journal(data: bytes) -> list[Mutation]:
    """The mutations :func:`encode_journal` encoded, in order."""
    out: list[Mutation] = []
    for code, values in orjson.loads(zlib.decompress(data)):
        kinds = q.MUTATIONS[code][1]
        out.append((code, tuple(base64.b64decode(v) if k == "b" else
                                uuid.UUID(v) if k == "u" else v
                                for k, v in zip(kinds, values, strict=True))))
    return out
