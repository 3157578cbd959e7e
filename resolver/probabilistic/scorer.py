"""Real-time scoring: the saved Splink model applied in-process, one record at a time.

Splink needs 80-800 ms to score one new record (it builds SQL, registers tables, runs
DuckDB). Here the model is compiled once:

* the match weight of every level is read from Splink's own settings objects
  (:func:`idgraph.resolver.probabilistic.model.read_model`);
* every level's SQL condition is compiled to a Python closure that gives the truth value
  DuckDB would (:mod:`idgraph.resolver.probabilistic.sql_eval`), with the functions of the installed
  DuckDB release; loading a model first checks those functions against the installed
  DuckDB on a fixed probe set and refuses to score if they disagree
  (:mod:`idgraph.resolver.probabilistic.duckdb_parity`);
* every prediction blocking rule becomes a key function, and :class:`CandidateIndex`
  keeps ``blocking key -> records``, so the candidates of a record are the records Splink's
  ``predict`` would have paired it with.

A pair's match weight is the prior's weight plus, per comparison, the weight of the first
level whose condition holds, exactly as Splink's predict SQL adds them; the probability is
``2^w / (1 + 2^w)``. ``tests/resolver/test_scorer_parity.py`` checks both against Splink on
thousands of pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from idgraph.resolver.probabilistic.duckdb_functions import DuckDBFunctions, installed_functions
from idgraph.resolver.probabilistic.duckdb_parity import check_parity
from idgraph.resolver.probabilistic.model import ModelSpec, read_model
from idgraph.resolver.probabilistic.sql_eval import (
    UnsupportedSQLError,
    blocking_key_parts,
    compile_condition,
    is_symmetric_rule,
)

Row = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class MatchScore:
    """Score of one pair: total match weight, probability, and each comparison's part."""

    match_weight: float
    probability: float
    contributions: tuple[tuple[str, str, float], ...]
    """(comparison, label of the level that held, its match weight), in model order."""


def probability_of(weight: float) -> float:
    """Splink's match probability for a match weight (numerically stable both ways)."""
    if weight >= 0:
        return 1.0 / (1.0 + 2.0 ** -weight)
    p = 2.0 ** weight
    return p / (1.0 + p)


def weight_of(probability: float) -> float:
    """The match weight whose probability is ``probability``."""
    return math.log2(probability / (1.0 - probability))


class RealtimeScorer:
    """A saved Splink model compiled for in-process scoring (immutable, thread-safe).

    ``functions`` are the DuckDB functions the SQL is compiled with (default: those of the
    installed DuckDB). Raises :class:`~idgraph.resolver.probabilistic.duckdb_functions.DuckDBParityError`
    when they disagree with the installed DuckDB (see :func:`check_parity`)."""

    def __init__(
        self, model: dict, version: str = "", functions: DuckDBFunctions | None = None
    ) -> None:
        self.version = version
        functions = functions or installed_functions()
        check_parity(functions)
        self.spec: ModelSpec = read_model(model)
        compiled: list[tuple[str, tuple[tuple[Callable[[Row, Row], bool] | None, str, float], ...]]]
        compiled = []
        for comp in self.spec.comparisons:
            levels = []
            for lvl in comp.levels:
                cond = None if lvl.sql.strip().upper() == "ELSE" else compile_condition(lvl.sql, functions)
                levels.append((cond, lvl.label, lvl.weight))
            compiled.append((comp.name, tuple(levels)))
        self._comparisons = tuple(compiled)
        self._prior = self.spec.prior_weight
        for rule in self.spec.blocking_rules:
            if not is_symmetric_rule(rule):
                raise UnsupportedSQLError(
                    f"blocking rule {rule!r} compares different expressions on the two sides; "
                    "the candidate index needs rules of the form l.x = r.x (as training makes)")
        self._blocking = tuple(
            blocking_key_parts(rule, functions) for rule in self.spec.blocking_rules
        )

    def score(self, left: Row, right: Row) -> MatchScore:
        """Match weight, probability and per-comparison contributions of one pair."""
        total = self._prior
        parts = []
        for name, levels in self._comparisons:
            label, weight = "", 0.0
            for cond, lvl_label, lvl_weight in levels:
                if cond is None or cond(left, right):
                    label, weight = lvl_label, lvl_weight
                    break
            total += weight
            parts.append((name, label, weight))
        return MatchScore(total, probability_of(total), tuple(parts))

    def blocking_keys(self, row: Row) -> list[tuple]:
        """``(rule index, key values)`` of every prediction blocking rule ``row`` can join on.

        A rule whose key has a NULL part is left out: SQL's ``NULL = NULL`` is not true.
        """
        keys = []
        for i, parts in enumerate(self._blocking):
            values = tuple(left(row) for left, _right in parts)
            if all(v is not None for v in values):
                keys.append((i, values))
        return keys


class CandidateIndex:
    """``blocking key -> record keys`` for the records scored so far (one writer).

    Blocks larger than ``max_block`` (a placeholder surname, a shared switchboard phone)
    stop growing: a record still finds the first ``max_block`` members, the way a capped
    block in a batch run would, and the cost per record stays bounded.
    """

    def __init__(self, scorer: RealtimeScorer, max_block: int = 500) -> None:
        self._scorer = scorer
        self._max_block = max_block
        self._blocks: dict[tuple, list[str]] = {}
        self._keys: dict[str, list[tuple]] = {}
        self.rows: dict[str, Row] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, record_key: str, row: Row) -> bool:
        """Index (or re-index) a record's row; returns False when it was already current."""
        old = self.rows.get(record_key)
        if old == row:
            return False
        if old is not None:
            self.remove(record_key)
        keys = self._scorer.blocking_keys(row)
        self.rows[record_key] = row
        self._keys[record_key] = keys
        blocks = self._blocks
        cap = self._max_block
        for key in keys:
            members = blocks.get(key)
            if members is None:
                blocks[key] = [record_key]
            elif len(members) < cap:
                members.append(record_key)
        return True

    def remove(self, record_key: str) -> None:
        self.rows.pop(record_key, None)
        for key in self._keys.pop(record_key, ()):
            members = self._blocks.get(key)
            if members is not None and record_key in members:
                members.remove(record_key)

    def candidates(self, record_key: str, row: Row) -> list[str]:
        """Indexed records sharing at least one blocking key with ``row`` (itself excluded),
        in first-seen order."""
        seen: dict[str, None] = {}
        for key in self._scorer.blocking_keys(row):
            for other in self._blocks.get(key, ()):
                if other != record_key:
                    seen[other] = None
        return list(seen)

    def put_many(self, items: Iterable[tuple[str, Row]]) -> None:
        for key, row in items:
            self.put(key, row)
