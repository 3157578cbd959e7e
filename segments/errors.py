"""Errors of the segment language, each naming what is wrong and where.

* :class:`InvalidSegmentError`: a syntax-tree value is out of range (a window over 400 days,
  a regular expression that does not compile, ``sum()`` without a property). Raised by the
  node constructors; the text parser re-raises it as a :class:`SegmentSyntaxError` at the
  construct's line and column, and :func:`idgraph.segments.ast.from_json` names the JSON
  path (``path``, e.g. ``$.items[1].window``).
* :class:`SegmentSyntaxError`: text that is not the language: ``line``, ``column`` (both
  from 1) and ``expected`` (readable words such as ``a string in double quotes``).
* :class:`SegmentCycleError`, :class:`UnknownSegmentError`, :class:`SegmentInUseError`:
  ``in_segment`` references that loop, name no definition, or would break on a delete.

Messages quote the definition's own text (literals a marketer wrote), never profile data.
"""

from __future__ import annotations

from collections.abc import Sequence

from idgraph.core.errors import IdGraphError


class SegmentError(IdGraphError):
    """Root of the segment errors: a definition the caller must fix."""

    status = "INVALID_ARGUMENT"


class InvalidSegmentError(SegmentError):
    """A node of the syntax tree holds a value the language does not allow.

    ``path`` is the JSON path of the offending node when the tree came from JSON ("" when
    a node was built directly)."""

    def __init__(self, problem: str, path: str = "") -> None:
        self.problem = problem
        self.path = path
        super().__init__(f"{path}: {problem}" if path else problem)

    def at(self, path: str) -> InvalidSegmentError:
        """The same problem, located at JSON path ``path`` (the first location wins)."""
        return self if self.path else InvalidSegmentError(self.problem, path)


class SegmentSyntaxError(SegmentError):
    """Segment text that does not parse; ``line`` and ``column`` count from 1."""

    def __init__(self, problem: str, line: int, column: int,
                 expected: Sequence[str] = (), context: str = "") -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.expected = tuple(expected)
        self.context = context
        message = f"line {line}, column {column}: {problem}"
        if self.expected:
            message += "; expected " + _one_of(self.expected)
        if context:
            message += "\n" + context
        super().__init__(message)


class SegmentCycleError(SegmentError):
    """``in_segment`` references form a loop; ``cycle`` is the path, first name repeated
    last (``["A", "B", "A"]``)."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("segments depend on each other in a cycle: "
                         + " -> ".join(repr(name) for name in self.cycle))


class UnknownSegmentError(SegmentError):
    """A definition uses ``in_segment`` with a name that no definition has."""

    status = "FAILED_PRECONDITION"

    def __init__(self, segment: str, missing: str) -> None:
        self.segment = segment
        self.missing = missing
        super().__init__(f"segment {segment!r} uses in_segment({missing!r}), "
                         "but no segment has that name")


class SegmentInUseError(SegmentError):
    """A segment cannot be deleted while other segments use it (``dependents``)."""

    status = "FAILED_PRECONDITION"

    def __init__(self, segment: str, dependents: Sequence[str]) -> None:
        self.segment = segment
        self.dependents = tuple(dependents)
        super().__init__(f"segment {segment!r} is used by "
                         + ", ".join(repr(name) for name in self.dependents))


def _one_of(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return "one of: " + ", ".join(words)
