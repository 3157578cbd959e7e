"""Segment definitions: apply, list, show, delete (what ``idgraph segments`` and the
``DefineSegment``/``GetSegment``/``ListSegments``/``DeleteSegment`` rpcs call).

A definition is accepted as text (the language of :mod:`idgraph.segments`) or as its
canonical JSON form (a definition starting with ``{``), and stored in canonical form, both
text and JSON. Applying is checked against every other definition before anything is
written: a reference to an undefined segment, or one that makes an ``in_segment`` loop, is
refused (FAILED_PRECONDITION / INVALID_ARGUMENT with the path); deleting a segment other
segments use is refused naming them. Applying the same definition again adds no version
(it is not a change). Every accepted change is a new version with its author and time;
:meth:`SegmentDefinitions.diff` compares two versions line by line.

The store's catalog version makes the check and the write one step: if another change
landed between the read and the write, the whole apply is done again on the new catalog
(at most a few times, then ABORTED).
"""

from __future__ import annotations

import difflib
import json
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from idgraph.core.errors import IdGraphError, NotFoundError
from idgraph.profile_store.segment_state import (
    CatalogChangedError,
    SegmentCatalog,
    SegmentDefinition,
    SegmentReader,
)
from idgraph.segments import Node, SegmentDependencies, from_json, parse, to_json, to_text

__all__ = ["Applied", "SegmentDefinitions", "SegmentFileEntry", "SegmentRequestError",
           "json_text", "parse_definition", "parse_segment_file", "tree_of"]

MAX_NAME_LENGTH = 100
MAX_DEFINITION_LENGTH = 20_000
MAX_DESCRIPTION_LENGTH = 1000
_ATTEMPTS = 5


class SegmentRequestError(IdGraphError):
    """A segment name, description or definition that cannot be stored as sent (empty,
    too long, not JSON); what the language refuses is a ``SegmentError``."""

    status = "INVALID_ARGUMENT"


def check_name(name: str) -> str:
    """``name`` stripped; raises :class:`SegmentRequestError` for an empty name, one over
    :data:`MAX_NAME_LENGTH` characters, or one with control characters or quotes."""
    name = (name or "").strip()
    if not name:
        raise SegmentRequestError("segment name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise SegmentRequestError(f"segment name is longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c).startswith("C") or c in '"\\' for c in name):
        raise SegmentRequestError("segment name has a control character, a quote or a backslash")
    return name


def json_text(tree: Node) -> str:
    """The canonical JSON form of ``tree`` as stored (:attr:`SegmentDefinition.definition`):
    compact, keys sorted, so equal definitions have equal text."""
    return json.dumps(to_json(tree), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tree_of(definition: SegmentDefinition) -> Node:
    """The syntax tree of a stored definition."""
    return from_json(json.loads(definition.definition))


def parse_definition(source: str) -> Node:
    """A definition's tree from its text, or from its JSON form when it starts with
    ``{``. Raises a :class:`~idgraph.segments.SegmentError` (INVALID_ARGUMENT) naming the
    line and column (text) or the path (JSON) of the problem."""
    if len(source) > MAX_DEFINITION_LENGTH:
        raise SegmentRequestError(f"definition is longer than {MAX_DEFINITION_LENGTH} characters")
    stripped = source.strip()
    if not stripped:
        raise SegmentRequestError("definition is empty")
    if not stripped.startswith("{"):
        return parse(source)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise SegmentRequestError(f"definition is not valid JSON: line {exc.lineno}, column "
                               f"{exc.colno}: {exc.msg}") from None
    return from_json(data)


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`SegmentDefinitions.apply` did: the definition now current, whether it
    was ``created`` (no live version before) or ``changed`` (a new version was written),
    and the diff from the previous live version (empty when unchanged or created)."""

    definition: SegmentDefinition
    created: bool
    changed: bool
    diff: str


def _text_diff(old: SegmentDefinition | None, new: SegmentDefinition) -> str:
    before = "" if old is None or old.deleted else old.text
    after = "" if new.deleted else new.text
    return "".join(difflib.unified_diff(
        [line + "\n" for line in before.splitlines()],
        [line + "\n" for line in after.splitlines()],
        f"{new.name} v{old.version if old else 0}", f"{new.name} v{new.version}"))


@dataclass(frozen=True, slots=True)
class SegmentFileEntry:
    """One ``[segments."NAME"]`` table of a definitions file."""

    name: str
    tree: Node
    description: str


def parse_segment_file(text: str, origin: str) -> list[SegmentFileEntry]:
    """The definitions of a TOML file (``[segments."NAME"]`` with ``definition`` and an
    optional ``description``), in file order. Raises ConfigError naming ``origin``, the
    segment and, for the definition's text, its line and column."""
    import tomllib

    from idgraph.core.errors import ConfigError
    from idgraph.segments import SegmentError

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not TOML: {exc}") from None
    table = data.get("segments")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f'{origin}: no [segments."NAME"] tables with a definition')
    out = []
    for name, body in table.items():
        source = body.get("definition") if isinstance(body, dict) else None
        if not isinstance(source, str):
            raise ConfigError(f"{origin}: segment {name!r}: definition must be a string")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{origin}: segment {name!r}: description must be a string")
        try:
            out.append(SegmentFileEntry(name, parse(source), description))
        except SegmentError as exc:
            raise ConfigError(f"{origin}: segment {name!r}: {exc}") from None
    return out


class SegmentDefinitions:
    """Definitions over a store's reads and, for changes, its catalog (None: read-only)."""

    def __init__(self, reader: SegmentReader, catalog: SegmentCatalog | None,
                 clock: Callable[[], float] = time.time) -> None:
        self._reader = reader
        self._catalog = catalog
        self._clock = clock

    def _writable(self) -> SegmentCatalog:
        if self._catalog is None:
            raise _ReadOnlyError("segment definitions are read-only here")
        return self._catalog

    def list(self) -> list[SegmentDefinition]:
        """The live definitions, by name."""
        _version, live = self._reader.segment_catalog()
        return [live[name] for name in sorted(live)]

    def get(self, name: str) -> SegmentDefinition:
        """The live definition of ``name``; NotFoundError when there is none."""
        _version, live = self._reader.segment_catalog()
        definition = live.get(check_name(name))
        if definition is None:
            raise NotFoundError("no segment with this name")
        return definition

    def versions(self, name: str) -> list[SegmentDefinition]:
        """Every version of ``name``, oldest first (deletions included)."""
        return self._reader.segment_versions(check_name(name))

    def dependents(self, name: str) -> tuple[str, ...]:
        """The live segments that use ``name`` directly or through others."""
        _version, live = self._reader.segment_catalog()
        deps = SegmentDependencies({n: tree_of(d) for n, d in live.items()})
        return deps.dependents(name) if name in live else ()

    def diff(self, name: str, from_version: int, to_version: int) -> str:
        """Unified diff of the canonical text of two versions of ``name``."""
        by_version = {d.version: d for d in self.versions(name)}
        for v in (from_version, to_version):
            if v not in by_version and v != 0:
                raise NotFoundError(f"segment has no version {v}")
        return _text_diff(by_version.get(from_version), by_version[to_version])

    def apply(self, name: str, source: str, author: str, description: str = "") -> Applied:
        """Define ``name`` (or change it) from text or JSON; see the module docstring."""
        name = check_name(name)
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise SegmentRequestError(
                f"description is longer than {MAX_DESCRIPTION_LENGTH} characters")
        tree = parse_definition(source)
        canonical_json, canonical_text = json_text(tree), to_text(tree)
        catalog = self._writable()
        for _ in range(_ATTEMPTS):
            version, live = self._reader.segment_catalog()
            old = live.get(name)
            if old is not None and old.definition == canonical_json \
                    and old.description == description:
                return Applied(old, False, False, "")
            trees = {n: tree_of(d) for n, d in live.items()}
            SegmentDependencies(trees).with_definition(name, tree)  # raises before writing
            try:
                new = catalog.define(name, canonical_json, canonical_text, author, description,
                                     self._clock(), version)
            except CatalogChangedError:
                continue
            return Applied(new, old is None, True, _text_diff(old, new))
        raise CatalogChangedError("segment definitions keep changing; try again")

    def apply_file(self, entries: list[SegmentFileEntry], author: str,
                   origin: str) -> list[Applied]:
        """Apply a file's definitions, each after the segments it uses (the file's and the
        stored ones); ConfigError naming ``origin`` and the segment for a refused one."""
        from idgraph.core.errors import ConfigError
        from idgraph.segments import SegmentError

        _version, live = self._reader.segment_catalog()
        trees = {n: tree_of(d) for n, d in live.items()}
        trees.update((e.name, e.tree) for e in entries)
        try:
            order = SegmentDependencies(trees).evaluation_order()
        except SegmentError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        by_name = {e.name: e for e in entries}
        applied = []
        for name in (n for n in order if n in by_name):
            entry = by_name[name]
            try:
                applied.append(self.apply(name, to_text(entry.tree), author, entry.description))
            except IdGraphError as exc:
                raise ConfigError(f"{origin}: segment {name!r}: {exc}") from None
        return applied

    def delete(self, name: str, author: str) -> SegmentDefinition:
        """Delete ``name`` (a new, deleting version); refused while others use it."""
        name = check_name(name)
        catalog = self._writable()
        for _ in range(_ATTEMPTS):
            version, live = self._reader.segment_catalog()
            if name not in live:
                raise NotFoundError("no segment with this name")
            trees = {n: tree_of(d) for n, d in live.items()}
            SegmentDependencies(trees).without(name)  # raises SegmentInUseError
            try:
                return catalog.delete(name, author, self._clock(), version)
            except CatalogChangedError:
                continue
        raise CatalogChangedError("segment definitions keep changing; try again")


class _ReadOnlyError(IdGraphError):
    status = "UNIMPLEMENTED"
