"""The purpose registry: what each consent purpose covers, and the decisions made from it.

A purpose is versioned (the ledger keeps every version; an entry records the version it
was given under). The packaged defaults (``purposes.toml`` beside this module) seed an
empty registry.

Decisions, for a profile of home region R whose consent folded to ``states``
(:func:`idgraph.privacy.consent.fold`), at time ``now``:

* :meth:`PurposeRegistry.decide`: ``granted`` (a grant that has not lapsed),
  ``denied``/``withdrawn`` (the latest statement), ``expired`` (a grant older than the
  purpose's ``expiry_days``) or ``unknown`` (never stated); the purpose is *allowed* when
  granted, or when unknown or expired in a region that is not one of its
  ``opt_in_regions``.
* :meth:`PurposeRegistry.withheld`: the attributes and event types a profile's answer
  leaves out: those used by at least one purpose and only by purposes that were denied or
  withdrawn (data used by no purpose, or by one still allowed, stays).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from idgraph.core.errors import IdGraphError
from idgraph.privacy.consent import GRANTED, LEGAL_BASES, ConsentState

_DAY = 86_400.0


class PurposeError(IdGraphError):
    """A purpose that is not in the registry, or a purpose definition that is not valid."""

    status = "INVALID_ARGUMENT"


@dataclass(slots=True, frozen=True)
class Purpose:
    """One version of a purpose (see ``purposes.toml`` for the fields)."""

    name: str
    version: int = 1
    description: str = ""
    legal_basis: str = "consent"
    opt_in_regions: tuple[str, ...] = ()
    expiry_days: int = 0
    attributes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    defined_at: float = 0.0
    author: str = ""

    def same_rules(self, other: Purpose) -> bool:
        """Whether ``other`` says the same (what makes a new version worth adding)."""
        return (self.description, self.legal_basis, self.opt_in_regions, self.expiry_days,
                self.attributes, self.event_types) == (
                    other.description, other.legal_basis, other.opt_in_regions,
                    other.expiry_days, other.attributes, other.event_types)


def parse_purposes(doc: Mapping, where: str) -> list[Purpose]:
    """Purposes of a TOML document (``[[purpose]]`` tables); PurposeError naming the
    table and field that is wrong."""
    tables = doc.get("purpose")
    if not isinstance(tables, list) or not tables:
        raise PurposeError(f"{where}: no [[purpose]] tables")
    out, seen = [], set()
    for i, t in enumerate(tables):
        at = f"{where}: purpose {i + 1}"
        name = t.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise PurposeError(f"{at}: name must be a text of 1 to 64 characters")
        name = name.strip()
        if name in seen:
            raise PurposeError(f"{at}: {name!r} is defined twice")
        seen.add(name)
        unknown = set(t) - {"name", "description", "legal_basis", "opt_in_regions",
                            "expiry_days", "attributes", "event_types"}
        if unknown:
            raise PurposeError(f"{at} ({name}): unknown field(s) {', '.join(sorted(unknown))}")
        basis = t.get("legal_basis", "consent")
        if basis not in LEGAL_BASES:
            raise PurposeError(f"{at} ({name}): legal_basis must be one of "
                               f"{', '.join(LEGAL_BASES)}")
        expiry = t.get("expiry_days", 0)
        if not isinstance(expiry, int) or expiry < 0:
            raise PurposeError(f"{at} ({name}): expiry_days must be a whole number >= 0")
        lists = {}
        for key in ("opt_in_regions", "attributes", "event_types"):
            value = t.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PurposeError(f"{at} ({name}): {key} must be a list of texts")
            lists[key] = tuple(sorted(set(value)))
        out.append(Purpose(name, description=str(t.get("description", "")),
                           legal_basis=basis, expiry_days=expiry, **lists))
    return out


def default_purposes() -> list[Purpose]:
    """The packaged purposes (``purposes.toml``), each as version 1."""
    text = resources.files("idgraph.privacy").joinpath("purposes.toml").read_text("utf-8")
    return parse_purposes(tomllib.loads(text), "purposes.toml")


@dataclass(slots=True, frozen=True)
class Decision:
    """What a profile's consent says for one purpose."""

    purpose: str
    state: str
    """``granted``, ``denied``, ``withdrawn``, ``expired`` or ``unknown``."""
    allowed: bool
    entry: ConsentState | None = None
    """The state that decided (None when unknown)."""

    def reason(self, region: str) -> str:
        """Why the purpose is not allowed, for a status message (no personal data)."""
        if self.state == "unknown":
            return f"no consent for purpose {self.purpose!r} was given (it needs one in {region})"
        if self.state == "expired":
            return f"consent for purpose {self.purpose!r} has expired"
        return f"consent for purpose {self.purpose!r} is {self.state}"


@dataclass(slots=True)
class PurposeRegistry:
    """The latest version of every purpose, and the decisions made from them."""

    purposes: dict[str, Purpose] = field(default_factory=dict)
    version: int = 0
    """The registry's version: it grows with every purpose change (readers compare it)."""

    def get(self, name: str) -> Purpose:
        """The purpose; PurposeError naming the known ones when it is not registered."""
        purpose = self.purposes.get((name or "").strip())
        if purpose is None:
            known = ", ".join(sorted(self.purposes)) or "none"
            # the caller's text is not quoted back: it may be anything (error messages
            # are PII-free by contract)
            raise PurposeError(f"unknown purpose (known: {known})")
        return purpose

    def decide(self, name: str, states: Mapping[str, ConsentState], region: str,
               now: float) -> Decision:
        purpose = self.get(name)
        state = states.get(purpose.name)
        if state is None:
            return Decision(purpose.name, "unknown", region not in purpose.opt_in_regions)
        if state.status != GRANTED:
            return Decision(purpose.name, state.status, False, state)
        if purpose.expiry_days and now - state.captured_at > purpose.expiry_days * _DAY:
            return Decision(purpose.name, "expired", region not in purpose.opt_in_regions,
                            state)
        return Decision(purpose.name, GRANTED, True, state)

    def decisions(self, states: Mapping[str, ConsentState], region: str, now: float
                  ) -> dict[str, Decision]:
        """A decision for every registered purpose and every purpose stated (a stated
        purpose the registry does not know is reported as stated, allowed when granted)."""
        out = {n: self.decide(n, states, region, now) for n in self.purposes}
        for name, state in states.items():
            if name not in out:
                out[name] = Decision(name, state.status, state.granted, state)
        return out

    def withheld(self, states: Mapping[str, ConsentState]) -> tuple[frozenset[str],
                                                                       frozenset[str]]:
        """(attributes, event types) to leave out of a profile whose consent folded to
        ``states``: used only by purposes denied or withdrawn (module docstring)."""
        refused = {n for n, s in states.items() if not s.granted}
        if not refused:
            return frozenset(), frozenset()
        return (self._only_for(refused, "attributes"), self._only_for(refused, "event_types"))

    def _only_for(self, refused: set[str], kind: str) -> frozenset[str]:
        used: dict[str, set[str]] = {}
        for p in self.purposes.values():
            for item in getattr(p, kind):
                used.setdefault(item, set()).add(p.name)
        return frozenset(item for item, names in used.items() if names <= refused)


def registry_of(purposes: Iterable[Purpose], version: int) -> PurposeRegistry:
    return PurposeRegistry({p.name: p for p in purposes}, version)
