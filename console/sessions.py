"""Signed-in sessions, in the console process's memory.

A session is a random 256-bit ID (the cookie's only content) mapping to the API key the
person signed in with, what ``WhoAmI`` said of it and a CSRF token. The key never leaves
this process except towards the gRPC server. A session ends at sign-out, after
``session_idle_minutes`` unused or ``session_max_hours`` after sign-in; a restart of the
console ends them all (people sign in again). Thread-safe: Starlette runs pages in a
thread pool.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Session:
    session_id: str
    key: str
    principal: str
    owner: str
    roles: list[str]
    regions: list[str]
    permissions: frozenset[str]
    unmask: bool
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    started: float = 0.0
    last_used: float = 0.0
    flash: list[str] = field(default_factory=list)
    """Messages for the next page (a key shown once, a decision recorded)."""

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


class Sessions:
    """The live sessions; ``clock`` is injectable for tests of expiry."""

    def __init__(self, idle_seconds: float, max_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def start(self, **fields: object) -> Session:
        now = self._clock()
        session = Session(session_id=secrets.token_urlsafe(32), started=now, last_used=now,
                          **fields)  # type: ignore[arg-type]
        with self._lock:
            self._expire(now)
            self._by_id[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this ID (touched), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if (now - session.last_used > self.idle_seconds
                    or now - session.started > self.max_seconds):
                del self._by_id[session_id]
                return None
            session.last_used = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _expire(self, now: float) -> None:
        gone = [sid for sid, s in self._by_id.items()
                if now - s.last_used > self.idle_seconds or now - s.started > self.max_seconds]
        for sid in gone:
            del self._by_id[sid]

    def __len__(self) -> int:
        return len(self._by_id)
