"""Serving a key limited to regions: each region scope gets servicers over a store that
holds only those regions, so a key limited to ``eu`` reads EU data the way a server
configured for ``eu`` alone does (the same residency rules, the same code paths), and
never another region's.

The server registers one dispatcher per service; each call goes to the servicers of the
caller's scope: the served regions (the default, built at start) or their intersection
with the key's regions (built on first use from ``open_scope`` and kept).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idgraph.core.errors import ResidencyError
from idgraph.service.interceptors import current_principal

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    from idgraph.engine.consent import ConsentService
    from idgraph.engine.explain import Explainer
    from idgraph.engine.queries import ProfileQueries


@dataclass
class ScopeBackends:
    """What the servicers of one region scope read: profile queries over a store of
    those regions, Explain over them, and the consent service over them."""

    queries: ProfileQueries
    explainer: Explainer | None = None
    consent: ConsentService | None = None
    close: Callable[[], None] | None = None
    """Releases what :func:`open_scope` opened for this scope."""


class RegionScopes:
    """Servicers per region scope (module docstring). ``build(backends)`` makes the
    servicers of one scope, ``{service full name: servicer}``."""

    def __init__(self, served: Iterable[str], default: ScopeBackends,
                 build: Callable[[ScopeBackends], dict[str, Any]],
                 open_scope: Callable[[tuple[str, ...]], ScopeBackends] | None) -> None:
        self._served = frozenset(served)
        self._build = build
        self._open = open_scope
        self._default = build(default)
        self._scopes: dict[frozenset[str], tuple[dict[str, Any], ScopeBackends]] = {}
        self._lock = threading.Lock()

    def servicers(self) -> dict[str, Any]:
        """The servicers of the current caller's scope. ResidencyError
        (PERMISSION_DENIED) when the key's regions need a scope this server cannot
        open."""
        regions = current_principal().regions
        if not regions:
            return self._default
        scope = frozenset(regions) & self._served if self._served else frozenset(regions)
        if not self._served or scope == self._served:
            return self._default
        hit = self._scopes.get(scope)
        if hit is not None:
            return hit[0]
        if self._open is None or not scope:
            raise ResidencyError(
                f"this server cannot limit its answers to regions {', '.join(sorted(scope))}")
        with self._lock:
            hit = self._scopes.get(scope)
            if hit is None:
                backends = self._open(tuple(sorted(scope)))
                hit = self._scopes[scope] = (self._build(backends), backends)
        return hit[0]

    def every(self) -> list[dict[str, Any]]:
        """The servicers of every scope built so far (to stop their streams)."""
        with self._lock:
            return [self._default, *(s for s, _ in self._scopes.values())]

    def close(self) -> None:
        """Release the backends opened for scopes (not the default one: its caller's)."""
        with self._lock:
            scopes, self._scopes = list(self._scopes.values()), {}
        for _, backends in scopes:
            if backends.close is not None:
                backends.close()


def dispatcher(service: ServiceDescriptor, scopes: RegionScopes) -> Any:
    """An object with one method per rpc of ``service`` that calls the same method of
    the current caller's scope's servicer (what ``add_*Servicer_to_server`` registers)."""
    name = service.full_name

    class Dispatcher:
        pass

    for method in service.methods:
        def call(request: Any, context: Any, _rpc: str = method.name) -> Any:
            return getattr(scopes.servicers()[name], _rpc)(request, context)

        setattr(Dispatcher, method.name, staticmethod(call))
    return Dispatcher()
