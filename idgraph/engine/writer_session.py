"""A writer's session over a data dir: re-entrant turns, catch-up, published changes.

Every write of an engine runs inside :meth:`WriterSession.turn`. Entering the outermost
turn takes the writers' turn (:mod:`idgraph.coordination`) and, when other writers wrote since
this one's last turn, calls ``catch_up`` with what they did before anything else runs.
Leaving it publishes the record keys this writer wrote, with their regions
(:meth:`record_written`); a turn
left by an exception calls ``abandon`` (drop caches that may hold unstored effects) and
tells the other writers this turn failed, so the next one reconciles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from idgraph.coordination import CatchUp, WriterCoordination
from idgraph.coordination.base import TurnStatus
from idgraph.core.failpoints import failpoint


class WriterSession:
    """Turns of one writer (one per engine; not thread-safe)."""

    def __init__(self, turns: WriterCoordination) -> None:
        self._turns = turns
        self._in_turn = False
        self._written: dict[str, str] = {}
        self.catch_up: Callable[[CatchUp], None] = lambda _catch: None
        """Applies what other writers did; set by the owner once its parts exist."""
        self.abandon: Callable[[], None] = lambda: None
        """Drops state a failed turn may have left half-applied."""
        self.fence: Callable[[int | None], None] = lambda _token: None
        """Hands the turn's fencing token to the backends; set by the owner."""
        self.token: int | None = None
        """The fencing token of the turn held now (None: none, or no turn)."""

    def record_written(self, record_keys: Mapping[str, str]) -> None:
        """Note records this turn stored or deleted, each with the home region it was
        written in or deleted from ("" when unknown); published when the turn ends."""
        self._written.update(record_keys)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the writers' turn (re-entrant: a nested turn is part of the outer one)."""
        if self._in_turn:
            yield
            return
        catch = self._turns.begin()
        failpoint("writer.turn.begun")
        self._in_turn = True
        self._written = {}
        self.token = catch.token
        try:
            self.fence(catch.token)
            if catch.foreign_turns:
                self.catch_up(catch)
            yield
        except BaseException:
            self.abandon()
            self._turns.abort()
            raise
        else:
            self._turns.end(self._written)
            failpoint("writer.turn.ended")
        finally:
            self._in_turn = False
            self.token = None

    def status(self) -> TurnStatus:
        """The writers' turns as this writer sees them (for its metrics)."""
        return self._turns.status()

    def erase(self, record_keys: Iterable[str]) -> int:
        """Remove forgotten record keys from the turn feed (they are not published by this
        turn either: the other writers rebuild); inside a turn. Returns turns rewritten."""
        keys = set(record_keys)
        for key in keys:
            self._written.pop(key, None)
        return self._turns.erase(keys)

    def close(self) -> None:
        self._turns.close()
