"""Per-caller rate limits: a token bucket per principal, in process memory.

Each server process limits on its own (``grpc.processes`` processes allow that many
times the rate on one machine); the limit protects the process and the stores behind it,
not a global quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """``allow(name, rate)``: whether the caller ``name`` may make one more call at
    ``rate`` calls per second, bursting to ``rate * burst_seconds`` after being idle.
    Memory: one small entry per caller seen (callers are keys, not end users)."""

    def __init__(self, burst_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst_seconds
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, last refill]
        self._lock = threading.Lock()

    def allow(self, name: str, rate: float) -> bool:
        now = self._clock()
        capacity = max(1.0, rate * self._burst)
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = [capacity, now]
            tokens = min(capacity, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                return False
            bucket[0] = tokens - 1.0
            return True
