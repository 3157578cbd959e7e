"""Home regions: which region a record implies and which wins when profiles merge.

A record's region comes from the first kind of evidence, in the order of
``RegionSettings.evidence`` (by default this one), that names a country of
``RegionSettings.country_regions``:

1. ``country``: the record's ``country`` attribute (a CRM or address country field,
   ISO alpha-2 after normalisation);
2. ``phone``: the country of its phone numbers (``phonenumbers.region_code_for_number`` of
   each phone identifier; when they disagree, the strictest of their regions). A number
   the source wrote without a calling code was read in the record's country, else in
   ``normalization.default_phone_region``: its country is then that assumption;
3. ``locale``: the region subtag of the locale the source reported (BCP 47 or POSIX:
   ``en-GB``, ``de_DE.UTF-8`` -> GB, DE). A bare language (``en``, ``de``) names no country;
4. ``timezone``: the country the tz database's ``zone.tab`` gives the record's IANA time
   zone (``Europe/Berlin`` -> DE; compared case-insensitively), read from the ``tzdata``
   package or else the system's zoneinfo directory (:data:`zoneinfo.TZPATH`). A zone
   ``zone.tab`` does not list (``UTC``, ``Etc/GMT+1``, backward links such as ``US/Eastern``
   or ``Eire``) names no country: a link may point into another country, so links are not
   followed. Without a ``zone.tab`` this evidence is never found.

Then the per-source override (``RegionSettings.source_regions``). Otherwise the region is
unknown (""), and an unknown region is no evidence: an email event with nothing of the
above does not pull a profile anywhere. :meth:`RegionPolicy.decide` also says which
evidence decided (:class:`RegionDecision`; :data:`NO_EVIDENCE` when none did).

A profile's home region is the strictest region among its records' known regions,
strictest meaning first in ``RegionSettings.regions`` (by default eu, uk, us, apac), or the
default region when none is known: when an EU record joins a US profile, the whole profile
moves to the EU partition and is no longer served from the US. A profile whose home is the
default has no record with a region (every record's stored region is ""), so it moves as
soon as a record with evidence arrives (the materialiser recomputes the home at each
write).
"""

from __future__ import annotations

import importlib.resources
import zoneinfo
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.settings import RegionSettings

#: :attr:`RegionDecision.source` of a record no evidence placed (its region is "").
NO_EVIDENCE = "default"
#: :attr:`RegionDecision.source` of a record placed by ``source_regions``.
SOURCE_OVERRIDE = "source"


class RegionDecision(NamedTuple):
    """A record's region and the evidence that decided it."""

    region: str
    """A region of ``RegionSettings.regions``, or "" when nothing says (no evidence)."""
    source: str
    """``country``, ``phone``, ``locale``, ``timezone``, ``source`` (the per-source
    override) or ``default`` (:data:`NO_EVIDENCE`: the region is "")."""


def locale_country(locale: str | None) -> str | None:
    """The ISO alpha-2 region subtag of a locale (``en-GB``, ``zh-Hant-TW``, ``de_DE.UTF-8``),
    upper case; None for a bare language or a numeric (UN M.49) region. ``UK`` is read as
    GB. Subtags after an extension singleton (``-u-``, ``-x-``) are not regions."""
    if not locale:
        return None
    text = locale.strip().split(".", 1)[0].split("@", 1)[0]
    for part in text.replace("_", "-").split("-")[1:]:
        if len(part) == 1:
            return None  # an extension or private-use part follows: no region subtag
        if len(part) == 2 and part.isascii() and part.isalpha():
            code = part.upper()
            return "GB" if code == "UK" else code
    return None


def _zone_tab_texts() -> Iterable[str]:
    """``zone.tab`` candidates: the tzdata package's, then the system's zoneinfo dirs."""
    try:
        yield importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(
            encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        pass
    for directory in zoneinfo.TZPATH:
        try:
            yield (Path(directory) / "zone.tab").read_text(encoding="utf-8")
        except OSError:
            continue


@cache
def zone_countries() -> dict[str, str]:
    """Lower-cased IANA zone name -> ISO alpha-2 country, from the first ``zone.tab`` found
    (one country per zone); empty when there is none."""
    for text in _zone_tab_texts():
        table = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) >= 3:
                table[fields[2].strip().lower()] = fields[0].strip().upper()
        if table:
            return table
    return {}


def timezone_country(time_zone: str | None) -> str | None:
    """The country ``zone.tab`` gives an IANA time zone (case-insensitive); None if unlisted."""
    if not time_zone:
        return None
    return zone_countries().get(time_zone.strip().lower())


def phone_country(phone: str) -> str | None:
    """The ISO alpha-2 country of an E.164 number (an extension after ``;`` is ignored);
    None for a non-geographic or unassigned number.

    A calling code of one country (``+44`` has several: GB, GG, IM, JE) gives that country
    without a parse, exactly as ``phonenumbers.region_code_for_number`` would (it returns
    a lone region unchecked); a shared code needs the number's full parse."""
    number = phone.split(";", 1)[0]
    if number[:1] == "+" and number[1:4].isdigit():
        for length in (1, 2, 3):  # calling codes are prefix-free
            regions = COUNTRY_CODE_TO_REGION_CODE.get(int(number[1:1 + length]))
            if regions is not None:
                if len(regions) == 1:
                    return regions[0] if regions[0].isalpha() else None  # "001": non-geographic
                break
    return _parsed_phone_country(number)


@lru_cache(maxsize=65_536)
def _parsed_phone_country(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    code = phonenumbers.region_code_for_number(parsed)
    return code if code and code.isalpha() else None  # "001": non-geographic


class RegionPolicy:
    def __init__(self, settings: RegionSettings) -> None:
        self._settings = settings
        self._rank = {r: i for i, r in enumerate(settings.regions)}
        self._readers = {"country": self._by_country, "phone": self._by_phone,
                         "locale": self._by_locale, "timezone": self._by_timezone}

    def decide(self, record: IdentityRecord) -> RegionDecision:
        """The region a record implies and which evidence decided it (module docstring)."""
        for kind in self._settings.evidence:
            region = self._readers[kind](record)
            if region:
                return RegionDecision(region, kind)
        region = self._settings.source_regions.get(record.source, "")
        return RegionDecision(region, SOURCE_OVERRIDE if region else NO_EVIDENCE)

    def region_of(self, source: str, country: str | None) -> str:
        """Region implied by a country (ISO alpha-2) and a source alone; "" if unknown."""
        region = self._country_region(country)
        return region or self._settings.source_regions.get(source, "")

    def strictest(self, regions: Iterable[str]) -> str:
        """The home region of a profile whose records imply ``regions``."""
        return self._strictest_known(regions) or self._settings.default_region

    # ---------------------------------------------------------------- evidence

    def _strictest_known(self, regions: Iterable[str]) -> str:
        best = ""
        last = len(self._rank)
        for r in regions:
            if r and (not best or self._rank.get(r, last) < self._rank.get(best, last)):
                best = r
        return best

    def _country_region(self, country: str | None) -> str:
        return self._settings.country_regions.get(country.upper(), "") if country else ""

    def _by_country(self, record: IdentityRecord) -> str:
        return self._country_region(record.attributes.get("country"))

    def _by_phone(self, record: IdentityRecord) -> str:
        return self._strictest_known(
            self._country_region(phone_country(i.value))
            for i in record.identifiers if i.type == "phone")

    def _by_locale(self, record: IdentityRecord) -> str:
        return self._country_region(locale_country(record.locale))

    def _by_timezone(self, record: IdentityRecord) -> str:
        return self._country_region(timezone_country(record.time_zone))
