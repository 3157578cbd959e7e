"""Write timestamps and time UUIDs of one store, each above every one it made before.

Cassandra keeps, of a cell's writes, the one with the highest write timestamp: a batch's
rows all carry one timestamp (:mod:`.plan`) and a replayed journal binds the same ones
again (:mod:`.journal`), so timestamps must grow even when the system clock steps back.
Time UUIDs (version 1, with a random node and clock sequence per store) name batches,
outbox changes and segment change-log rows, in time order (:mod:`.outbox` files a change
under the hour of its UUID). A change-log row's UUID must also follow the region's last
one, whoever wrote it (:meth:`Clock.next_uuid` takes that as ``floor``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

UUID_EPOCH = 0x01B21DD213814000
"""A version-1 UUID's time counts 100 ns intervals from 1582-10-15; this is 1970-01-01."""


def uuid_seconds(u: uuid.UUID) -> float:
    """Unix time of a version-1 UUID."""
    return (u.time - UUID_EPOCH) / 1e7


class Clock:
    """Strictly increasing write timestamps and time UUIDs (thread safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ts = 0
        self._last_uuid_time = 0
        self._uuid_node = int.from_bytes(os.urandom(6), "big") | 0x010000000000  # random node
        self._uuid_clock_seq = int.from_bytes(os.urandom(2), "big") & 0x3FFF

    def next_ts(self) -> int:
        """A write timestamp (microseconds) above every one this clock gave."""
        with self._lock:
            self._last_ts = max(time.time_ns() // 1000, self._last_ts + 1)
            return self._last_ts

    def next_uuid(self, floor: uuid.UUID | None = None) -> uuid.UUID:
        """A version-1 UUID whose time is above every one this clock made (time order)
        and, given a ``floor`` (a version-1 UUID another writer may have made), at least a
        microsecond above the floor's time."""
        with self._lock:
            t = max(time.time_ns() // 100 + UUID_EPOCH, self._last_uuid_time + 1)
            if floor is not None:
                t = max(t, floor.time + 10)
            self._last_uuid_time = t
        seq = self._uuid_clock_seq
        return uuid.UUID(fields=(t & 0xFFFFFFFF, (t >> 32) & 0xFFFF,
                                 ((t >> 48) & 0x0FFF) | 0x1000, 0x80 | (seq >> 8), seq & 0xFF,
                                 self._uuid_node))
