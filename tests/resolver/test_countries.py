"""resolver.countries.country_code: codes, English names, aliases and foreign names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from idgraph.resolver.countries import country_code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # official and translated names pycountry brings, unknown to the former table
        ("Bundesrepublik Deutschland", "DE"),
        ("Republik Österreich", "AT"),
        ("Schweizerische Eidgenossenschaft", "CH"),
        ("République française", "FR"),
        ("Tschechien", "CZ"),
        ("Česko", "CZ"),
        ("Russische Föderation", "RU"),
        ("Korea, Republik", "KR"),
        ("Estados Unidos de América", "US"),
        ("Rzeczpospolita Polska", "PL"),
        ("Suomen tasavalta", "FI"),
    ],
)
def test_names_from_pycountry_translations(raw: str, expected: str) -> None:
    assert country_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # everyday names pycountry translates only in their ISO form: phonenumbers' CLDR names
        ("Russland", "RU"),
        ("Russie", "RU"),
        ("Elfenbeinküste", "CI"),
        ("Vaticano", "VA"),
        ("Mazedonien", "MK"),
        # the project's own aliases
        ("Holland", "NL"),
        ("Ivory Coast", "CI"),
        ("Burma", "MM"),
        ("Falkland Islands", "FK"),
        ("St Helena", "SH"),
        # Kosovo: a user-assigned code ISO 3166-1 does not list
        ("XK", "XK"),
        ("xkx", "XK"),
        ("Kosovo", "XK"),
        ("The Bahamas", "BS"),
        ("THE GAMBIA", "GM"),
    ],
)
def test_names_kept_from_the_former_table(raw: str, expected: str) -> None:
    assert country_code(raw) == expected


@pytest.mark.parametrize("raw", [None, 49, b"DE", ["DE"], "", "-", "n/a", "Narnia"])
def test_not_a_country_is_none(raw: object) -> None:
    assert country_code(raw) is None  # type: ignore[arg-type]


def test_codes_come_before_names() -> None:
    # "CAN" is Canada's alpha-3, not a name; "UK" is read as GB although ISO reserves it
    assert country_code("can") == "CA"
    assert country_code("uk") == "GB"


def test_tables_are_built_lazily() -> None:
    """Importing the normaliser loads neither pycountry nor phonenumbers' CLDR names; an
    English name loads pycountry only; the CLDR names wait for a name nothing else knows."""
    code = """
import sys
import idgraph.resolver.normalize
assert "pycountry" not in sys.modules
from idgraph.resolver.countries import country_code
assert country_code("Germany") == "DE"
assert "pycountry" in sys.modules
assert "phonenumbers.geodata.locale" not in sys.modules
assert country_code("Frankreich") == "FR"
assert "phonenumbers.geodata.locale" not in sys.modules
assert country_code("Russland") == "RU"
assert "phonenumbers.geodata.locale" in sys.modules
"""
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
