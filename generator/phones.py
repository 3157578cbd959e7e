"""Phone numbers: numbering plans, the :class:`Phone` value and the ways people write it.

Contract: every number :func:`draw_phone` returns is valid for its country
(``phonenumbers.is_valid_number``; mobile ranges in use, no drama/fictional ranges), and every
style of :meth:`Phone.format` parses back to the same E.164 number (the national styles only
with the country known). :func:`draw_phone` draws one number from the ``random.Random`` it is
given and keeps no state: uniqueness across a population is the caller's job
(:meth:`~idgraph.generator.people.PeopleFactory.phone`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from idgraph.generator.countries import COUNTRIES, City

__all__ = [
    "INTERNATIONAL_STYLES",
    "LANDLINE_COUNTRIES",
    "MOBILE_PLANS",
    "NATIONAL_STYLES",
    "Phone",
    "draw_phone",
]

# Mobile ranges: (leading digits choices, number of further digits). Each leading string was
# checked to yield only valid numbers (phonenumbers 9.x) for any further digits.
# GB: 074-079 except 0770 (07700 900xxx is reserved for drama) and 0791 (contains 07911).
_GB_MOBILE_LEADS = tuple(
    f"7{a}{b}" for a in "45789" for b in "0123456789" if f"7{a}{b}" not in ("770", "791")
)
LANDLINE_COUNTRIES = frozenset({"DE", "FR", "JP"})


def _leads(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MOBILE_PLANS: dict[str, tuple[tuple[str, ...], int, tuple[int, ...]]] = {
    # country: (leading digits, further digits, display grouping of the national number)
    "US": ((), 0, (3, 3, 4)),  # built from city area codes, see draw_phone
    "CA": ((), 0, (3, 3, 4)),
    "GB": (_GB_MOBILE_LEADS, 7, (4, 6)),
    "DE": (_leads("151 152 157 159 160 162 170 171 172 173 175 176 177 178 179"), 8, (3, 8)),
    "FR": (_leads("60 61 62 64 65 66 67 68 73 74 75 76 77 78"), 7, (1, 2, 2, 2, 2)),
    "ES": (_leads("60 61 62 63 64 65 66 67 68 69 71 72"), 7, (3, 3, 3)),
    "NL": (_leads("61 62 63 64 65"), 7, (1, 8)),
    "JP": (
        _leads("901 902 903 905 906 907 908 909 801 802 803 804 805 806 807 808 809 701 702 703"),
        7,
        (2, 4, 4),
    ),
    "AU": (_leads("40 41 42 43 46"), 7, (3, 3, 3)),
    "SG": (_leads("81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98"), 6, (4, 4)),
}

_US_EXCLUDED_EXCHANGES = frozenset({"555", "211", "311", "411", "511", "611", "711", "811", "911"})


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number in a country's numbering plan (always valid)."""

    country: str
    nsn: str  # national significant number
    groups: tuple[int, ...]  # how the national number is displayed
    mobile: bool = True

    @property
    def calling_code(self) -> str:
        return COUNTRIES[self.country].calling_code

    @property
    def e164(self) -> str:
        return f"+{self.calling_code}{self.nsn}"

    def _parts(self) -> list[str]:
        out, i = [], 0
        for g in self.groups:
            out.append(self.nsn[i : i + g])
            i += g
        if i < len(self.nsn):
            out[-1] += self.nsn[i:]
        return out

    def format(self, style: str) -> str:
        """Render in one of :data:`NATIONAL_STYLES` or :data:`INTERNATIONAL_STYLES` (the ways CRM
        users type numbers)."""
        parts = self._parts()
        cc = self.calling_code
        trunk = COUNTRIES[self.country].trunk
        if style == "e164":
            return self.e164
        if style == "intl":
            return f"+{cc} " + " ".join(parts)
        if style == "intl_dash":
            return f"+{cc}-" + "-".join(parts)
        if style == "intl_trunk" and trunk:
            return f"+{cc} ({trunk})" + " ".join(parts)
        if style == "national_compact":
            return (trunk if trunk else "") + self.nsn
        if style == "national_dash":
            return trunk + "-".join(parts) if trunk else "-".join(parts)
        if style == "national_dot" and cc == "1":
            return ".".join(parts)
        # national, the country's usual display
        if cc == "1":
            return f"({parts[0]}) {parts[1]}-{parts[2]}"
        if self.country == "JP":
            return trunk + "-".join(parts)
        return trunk + " ".join(parts) if trunk else " ".join(parts)


#: Styles that need the record's country to be known when parsed.
NATIONAL_STYLES = ("national", "national_dash", "national_compact", "national_dot")
INTERNATIONAL_STYLES = ("e164", "intl", "intl_dash", "intl_trunk")


def draw_phone(rng: random.Random, country: str, city: City | None, mobile: bool) -> Phone:
    """One number of ``country`` (landline only where :data:`LANDLINE_COUNTRIES` has area
    codes for ``city``; US/CA numbers use the city's area codes either way)."""
    if country in ("US", "CA"):
        areas = city.area_codes if city and city.area_codes else ("212", "415", "312")
        area = rng.choice(areas)
        while True:
            ex = f"{rng.randrange(200, 1000)}"
            if ex not in _US_EXCLUDED_EXCHANGES and ex[1:] != "11":
                break
        nsn = f"{area}{ex}{rng.randrange(10000):04d}"
        return Phone(country, nsn, (3, 3, 4), mobile)
    if not mobile and city and city.area_codes and country in LANDLINE_COUNTRIES:
        area = rng.choice(city.area_codes)
        total = {"DE": 10 + rng.randrange(2), "FR": 9, "JP": 9}[country]
        rest = total - len(area) - 1
        # FR 059x/026x are overseas departments: keep the first subscriber digit low
        nsn = (
            area
            + rng.choice("1234" if country == "FR" else "2345678")
            + f"{rng.randrange(10**rest):0{rest}d}"
        )
        if country == "FR":
            groups = (1, 2, 2, 2, 2)
        elif country == "JP":
            groups = (1, 4, 4) if len(area) == 1 else (len(area), 3, 4)
        else:
            groups = (len(area), total - len(area))
        return Phone(country, nsn, groups, False)
    leads, further, groups = MOBILE_PLANS[country]
    nsn = rng.choice(leads) + f"{rng.randrange(10**further):0{further}d}"
    return Phone(country, nsn, groups, True)
