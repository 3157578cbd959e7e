"""Street lines and postal codes as each country writes them.

Contract: :func:`street`, :func:`postal_code` and :func:`home` draw from the ``random.Random``
they are given and nothing else; the number and order of draws per call is part of the generator's output
for a seed (change it and every later value changes).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from idgraph.generator.countries import City, Country

if TYPE_CHECKING:
    from idgraph.generator.model import Person

__all__ = ["home", "postal_code", "street"]


def street(rng: random.Random, cc: Country, city: City) -> str:
    """A street line in ``cc``'s order (number first or last, flats, ``#07-12`` units...)."""
    s = rng.choice(cc.streets)
    n = rng.randrange(1, 200)
    code = cc.code
    if code in ("US", "CA", "AU"):
        n = rng.randrange(1, 9999) if code == "US" else rng.randrange(1, 999)
        line = f"{n} {s}"
        if rng.random() < 0.2:
            line += rng.choice(
                (
                    f" Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}",
                    f" Suite {rng.randrange(1, 30) * 100}",
                    f" Unit {rng.randrange(1, 60)}",
                )
            )
        return line
    if code == "GB":
        return f"{n} {s}" if rng.random() < 0.8 else f"Flat {rng.randrange(1, 30)}, {n} {s}"
    if code == "FR":
        return f"{n} {s}" if rng.random() < 0.85 else f"{n} bis {s}"
    if code == "ES":
        return f"{s}, {n}" + (
            f", {rng.randrange(1, 9)}º {rng.choice('ABCD')}" if rng.random() < 0.6 else ""
        )
    if code == "JP":
        return f"{rng.randrange(1, 8)}-{rng.randrange(1, 30)}-{rng.randrange(1, 20)} {s}"
    if code == "SG":
        return f"{n} {s} #{rng.randrange(2, 40):02d}-{rng.randrange(1, 120):02d}"
    return f"{s} {n}" + (rng.choice(("", "", "a", "b")) if code in ("DE", "NL") else "")


_GB_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def postal_code(rng: random.Random, cc: Country, city: City) -> str:
    """A postal code in ``city``'s range, in ``cc``'s format (``10115``, ``SW1A 2AB``...)."""
    code, p = cc.code, city.postal
    if code == "US":
        return f"{p}{rng.randrange(100):02d}"
    if code == "CA":
        return f"{p} {rng.randrange(10)}{rng.choice('ABCEGHJKLMNPRSTVWXYZ')}{rng.randrange(10)}"
    if code == "GB":
        return f"{p} {rng.randrange(10)}{rng.choice(_GB_INWARD_LETTERS)}{rng.choice(_GB_INWARD_LETTERS)}"
    if code == "DE":
        return f"{p}{rng.randrange(1000):03d}"
    if code == "FR":
        if len(p) == 3:
            return f"{p}{rng.randrange(1, 21):02d}"
        return f"{p}{rng.randrange(10)}"
    if code == "ES":
        return f"{p}{rng.randrange(1, 60):02d}"
    if code == "NL":
        letters = rng.choice("ABCEGHJKLMNPRTVWXZ") + rng.choice("ABCEGHJKLMNPRTVWXZ")
        return f"{p}{rng.randrange(10, 100)} {letters}"
    if code == "JP":
        return f"{p}{rng.randrange(10, 100)}-{rng.randrange(10000):04d}"
    if code == "AU":
        return f"{int(p) + rng.randrange(0, 200)}"
    if code == "SG":
        return f"{rng.choice(('01', '04', '23', '24', '31', '46', '56', '64', '23'))}{rng.randrange(10000):04d}"
    return p


def home(
    rng: random.Random, cc: Country, head: Person | None
) -> tuple[City, str, str, str | None, str]:
    """(city, street, city name, state, postal code) of a new person in ``cc``: those of
    ``head``, the household they join, or a new address in a random city."""
    if head is not None:
        street_, city_name, state, postal = head.street, head.city, head.state, head.postal_code
        city = next((c for c in cc.cities if c.name == city_name), cc.cities[0])
        return city, street_, city_name, state, postal
    city = rng.choice(cc.cities)
    return city, street(rng, cc, city), city.name, city.state, postal_code(rng, cc, city)
