"""Which segments use which (``in_segment``), checked for cycles and unknown names.

:class:`SegmentDependencies` is built from every definition by name and is immutable; a
store that defines or deletes a segment asks :meth:`~SegmentDependencies.with_definition`
or :meth:`~SegmentDependencies.without` for the next graph, and those raise before anything
is written:

* a reference to a name no definition has: :class:`UnknownSegmentError`;
* references that loop (``A`` uses ``B`` uses ``A``, or ``A`` uses itself):
  :class:`SegmentCycleError` with the path, e.g. ``'A' -> 'B' -> 'A'``;
* deleting a segment others use: :class:`SegmentInUseError` naming them.

:meth:`~SegmentDependencies.evaluation_order` lists every segment after the segments it
uses (ties by name), so one pass answers ``in_segment`` from memberships already computed;
:meth:`~SegmentDependencies.dependents` lists who must be evaluated again (or would break)
when a segment changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from idgraph.segments.ast import (
    Consent,
    DateWindow,
    DidNot,
    EventAggregate,
    EventSequence,
    HasIdentifier,
    IdentifierCount,
    IdentifierFrom,
    InSegment,
    Node,
    Region,
    walk,
)
from idgraph.segments.errors import SegmentCycleError, SegmentInUseError, UnknownSegmentError

_TIMED = (DateWindow, EventAggregate, DidNot, EventSequence)


def references(node: Node) -> frozenset[str]:
    """The segment names ``node`` uses through ``in_segment``."""
    return frozenset(n.segment for n in walk(node) if isinstance(n, InSegment))


def reads(node: Node) -> frozenset[str]:
    """The facts ``node`` reads of a profile, as keys: ``attr:NAME``, ``event:TYPE``,
    ``ident:TYPE`` (a namespaced type also under its kind: ``crm`` and ``crm:salesforce``),
    ``source:KIND``, ``consent:PURPOSE``, ``region``, and ``segment:NAME`` for
    ``in_segment``. An evaluator that knows which of these changed for a profile need not
    evaluate a definition that reads none of them: its answer cannot have changed."""
    found: set[str] = set()
    for n in walk(node):
        if isinstance(n, EventAggregate | DidNot):
            found.add(f"event:{n.query.event}")
        elif isinstance(n, EventSequence):
            found.update(f"event:{q.event}" for q in n.steps)
        elif isinstance(n, HasIdentifier | IdentifierCount):
            found.add(f"ident:{n.type}")
        elif isinstance(n, IdentifierFrom):
            found.add(f"source:{n.source}")
        elif isinstance(n, Consent):
            found.add(f"consent:{n.purpose}")
        elif isinstance(n, Region):
            found.add("region")
        elif isinstance(n, InSegment):
            found.add(f"segment:{n.segment}")
        elif hasattr(n, "attribute"):
            found.add(f"attr:{n.attribute}")
    return frozenset(found)


def fact_keys(*, attributes: Iterable[str] = (), event_types: Iterable[str] = (),
              consent: Iterable[str] = (), identifier_types: Iterable[str] = (),
              sources: Iterable[str] = (), region: bool = False) -> set[str]:
    """The keys (as :func:`reads` names them) of a profile's or a change's facts: its
    attribute names, event types, consent purposes, identifier types (a namespaced type
    also under its kind: ``crm:salesforce`` is read by ``has_identifier(crm)`` and by
    ``has_identifier("crm:salesforce")``), the sources of its identifiers, its region."""
    keys = {"region"} if region else set()
    keys.update(f"attr:{name}" for name in attributes)
    keys.update(f"event:{kind}" for kind in event_types)
    keys.update(f"consent:{purpose}" for purpose in consent)
    keys.update(f"source:{source}" for source in sources)
    for kind in identifier_types:
        keys.add(f"ident:{kind}")
        if ":" in kind:
            keys.add(f"ident:{kind.split(':', 1)[0]}")
    return keys


def event_types(node: Node) -> frozenset[str]:
    """The event types ``node`` counts (what an evaluator must read of a timeline)."""
    found: set[str] = set()
    for n in walk(node):
        if isinstance(n, EventAggregate | DidNot):
            found.add(n.query.event)
        elif isinstance(n, EventSequence):
            found.update(q.event for q in n.steps)
    return frozenset(found)


class SegmentDependencies:
    """The ``in_segment`` graph of a set of definitions (validated when built)."""

    def __init__(self, definitions: Mapping[str, Node]) -> None:
        self._definitions = dict(definitions)
        self._uses = {name: references(node) for name, node in self._definitions.items()}
        for name in sorted(self._uses):
            for used in sorted(self._uses[name]):
                if used not in self._uses:
                    raise UnknownSegmentError(name, used)
        self._used_by: dict[str, set[str]] = {name: set() for name in self._uses}
        for name, used in self._uses.items():
            for target in used:
                self._used_by[target].add(name)
        self._check_cycles()
        self._order = self._topological_order()

    def uses(self, name: str) -> tuple[str, ...]:
        """The segments ``name`` uses directly, sorted."""
        return tuple(sorted(self._uses[name]))

    def direct_dependents(self, name: str) -> tuple[str, ...]:
        """The segments that use ``name`` directly, sorted."""
        return tuple(sorted(self._used_by[name]))

    def dependents(self, name: str) -> tuple[str, ...]:
        """Every segment that uses ``name`` directly or through others, sorted: the ones a
        change of ``name`` re-evaluates, and that would break if it were deleted."""
        seen: set[str] = set()
        pending = list(self._used_by[name])
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(self._used_by[current])
        return tuple(sorted(seen))

    def evaluation_order(self) -> tuple[str, ...]:
        """Every segment, each after the ones it uses (otherwise by name)."""
        return self._order

    def check_delete(self, name: str) -> None:
        """Raise :class:`SegmentInUseError` if other segments use ``name``."""
        if self._used_by.get(name):
            raise SegmentInUseError(name, self.direct_dependents(name))

    def with_definition(self, name: str, node: Node) -> SegmentDependencies:
        """The graph once ``name`` is defined (or redefined) as ``node``."""
        return SegmentDependencies({**self._definitions, name: node})

    def without(self, name: str) -> SegmentDependencies:
        """The graph once ``name`` is deleted (refused while others use it)."""
        self.check_delete(name)
        return SegmentDependencies({k: v for k, v in self._definitions.items() if k != name})

    def is_time_dependent(self, name: str) -> bool:
        """Whether ``name`` or a segment it uses looks at events or date windows (its
        answer can carry a deadline); a hint for schedulers, not needed for correctness."""
        pending, seen = [name], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            if any(isinstance(n, _TIMED) for n in walk(self._definitions[current])):
                return True
            pending.extend(self._uses[current])
        return False

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in sorted(self._uses):
            if state.get(root):
                continue
            path = [root]
            stack = [iter(sorted(self._uses[root]))]
            state[root] = 1
            while stack:
                target = next(stack[-1], None)
                if target is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(target) == 1:
                    raise SegmentCycleError([*path[path.index(target):], target])
                elif not state.get(target):
                    state[target] = 1
                    path.append(target)
                    stack.append(iter(sorted(self._uses[target])))

    def _topological_order(self) -> tuple[str, ...]:
        waiting = {name: len(used) for name, used in self._uses.items()}
        ready = [name for name, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for user in self._used_by[name]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, user)
        return tuple(order)
