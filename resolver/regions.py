"""Home regions: which region a record implies and which wins when profiles merge.

A record's region is taken from its country attribute (``RegionSettings.country_regions``),
else from a per-source override; otherwise it is unknown (""), and an unknown region is no
evidence: an email event with no country does not pull a profile anywhere. A profile's home
region is the strictest region among its records' known regions, strictest meaning first in
``RegionSettings.regions`` (by default eu, uk, us, apac), or the default region when none is
known: when an EU record joins a US profile, the whole profile moves to the EU partition
and is no longer served from the US.
"""

from __future__ import annotations

from collections.abc import Iterable

from idgraph.resolver.settings import RegionSettings


class RegionPolicy:
    def __init__(self, settings: RegionSettings) -> None:
        self._settings = settings
        self._rank = {r: i for i, r in enumerate(settings.regions)}

    def region_of(self, source: str, country: str | None) -> str:
        """Region a record implies from its country (ISO alpha-2) and source; "" if unknown."""
        if country:
            region = self._settings.country_regions.get(country.upper())
            if region is not None:
                return region
        return self._settings.source_regions.get(source, "")

    def strictest(self, regions: Iterable[str]) -> str:
        """The home region of a profile whose records imply ``regions``."""
        best = None
        for r in regions:
            if not r:
                continue
            if best is None or self._rank.get(r, len(self._rank)) < self._rank.get(best, len(self._rank)):
                best = r
        return best if best is not None else self._settings.default_region
