"""Country codes: ISO 3166-1 alpha-2 from whatever a source system put in a country field.

:func:`country_code` is the one entry point (:meth:`idgraph.resolver.normalize.Normalizer.country`
calls it). The data are pycountry's (ISO 3166-1 codes, English names and their translations)
plus the few things pycountry does not know, kept here: :data:`_ALIASES` (everyday names and
abbreviations such as ``UK``, ``USA``, ``Holland``, ``Deutschland``) and Kosovo (``XK``/``XKX``,
a user-assigned code that phonenumbers and most CRMs use but ISO 3166-1 does not list).
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["country_code"]

#: Everyday names and abbreviations pycountry lacks (keys in :func:`_key` form).
_ALIASES = {
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom of great britain": "GB",
    "us": "US",
    "u s": "US",
    "usa": "US",
    "u s a": "US",
    "america": "US",
    "united states america": "US",
    "us of a": "US",
    "korea": "KR",
    "korea south": "KR",
    "korea north": "KP",
    "dprk": "KP",
    "holland": "NL",
    "ivory coast": "CI",
    "turkey": "TR",
    "uae": "AE",
    "u a e": "AE",
    "emirates": "AE",
    "russia": "RU",
    "vatican city": "VA",
    "vatican": "VA",
    "holy see": "VA",
    "burma": "MM",
    "cape verde": "CV",
    "macau": "MO",
    "brunei": "BN",
    "palestine": "PS",
    "micronesia": "FM",
    "hong kong sar": "HK",
    "macedonia": "MK",
    "swaziland": "SZ",
    "east timor": "TL",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of congo": "CD",
    "congo kinshasa": "CD",
    "congo brazzaville": "CG",
    "republic of congo": "CG",
    "kosovo": "XK",
    "cocos islands": "CC",
    "falkland islands": "FK",
    "saint helena": "SH",
    "saint martin": "MF",
    "deutschland": "DE",
    "osterreich": "AT",
    "schweiz": "CH",
    "suisse": "CH",
    "espana": "ES",
    "italia": "IT",
    "nederland": "NL",
    "belgique": "BE",
    "belgie": "BE",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "polska": "PL",
    "brasil": "BR",
    "nippon": "JP",
    "osterreichische republik": "AT",
}
#: Codes ISO 3166-1 does not assign (alpha-2: alpha-3).
_EXTRA_CODES = {"XK": "XKX"}
#: Languages whose country names are accepted when no English name or alias matches.
_FOREIGN_LANGS = ("de", "fr", "es", "it", "nl", "pt", "sv", "pl", "da", "fi", "cs")
_NAME_FIELDS = ("name", "official_name", "common_name")
_KEY_DROP = str.maketrans({c: " " for c in ".,'’()-/&"})


def _key(text: str) -> str:
    """Matching form of a name: case-folded, accents and ``.,'’()-/&`` dropped, a leading
    ``the`` removed, ``st`` read as ``saint``."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    words = folded.translate(_KEY_DROP).split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join("saint" if w == "st" else w for w in words)


def _add_name(names: dict[str, str], name: str, alpha2: str) -> None:
    """Add ``name`` and, for ISO's inverted form (``Korea, Republic of``), the natural order
    (``Republic of Korea``); the first country to claim a key keeps it."""
    names.setdefault(_key(name), alpha2)
    if "," in name:
        head, _, tail = name.partition(",")
        names.setdefault(_key(f"{tail} {head}"), alpha2)


@functools.cache
def _codes() -> tuple[frozenset[str], dict[str, str], dict[str, str]]:
    """(alpha-2 codes, alpha-3 -> alpha-2, English name key -> alpha-2); built on first use."""
    import pycountry  # ~0.1 s: only processes that read country fields pay for it

    alpha3 = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
    alpha3.update({a3: a2 for a2, a3 in _EXTRA_CODES.items()})
    names: dict[str, str] = {}
    for c in pycountry.countries:
        for field in _NAME_FIELDS:
            name = getattr(c, field, None)
            if name:
                _add_name(names, name, c.alpha_2)
    for alias, a2 in _ALIASES.items():
        names.setdefault(alias, a2)
    return frozenset(alpha3.values()), alpha3, names


@functools.cache
def _foreign_names() -> dict[str, str]:
    """Name key -> alpha-2 from pycountry's translations (:data:`_FOREIGN_LANGS`) of the ISO
    names; loaded on the first lookup English names do not answer."""
    import gettext

    import pycountry

    out: dict[str, str] = {}
    for lang in _FOREIGN_LANGS:
        translate = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True
        ).gettext
        for c in pycountry.countries:
            for field in _NAME_FIELDS:
                name = getattr(c, field, None)
                if name and (local := translate(name)) != name:
                    _add_name(out, local, c.alpha_2)
    return out


@functools.cache
def _cldr_names() -> dict[str, str]:
    """Name key -> alpha-2 from the CLDR names phonenumbers ships (:data:`_FOREIGN_LANGS`):
    the everyday names pycountry translates only in their ISO form (``Russland``,
    ``Elfenbeinküste``, ``Vaticano``...). Loaded on the first lookup nothing else answers
    (~0.7 s)."""
    from phonenumbers.geodata.locale import LOCALE_DATA

    alpha2, _, _ = _codes()
    out: dict[str, str] = {}
    for a2, by_lang in LOCALE_DATA.items():
        if a2 not in alpha2:
            continue
        for lang in _FOREIGN_LANGS:
            name = by_lang.get(lang)
            if name and not name.startswith("*"):
                out.setdefault(_key(name), a2)
    return out


def country_code(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code (upper case) of a country field, or None when it names no
    country (None, not a string, empty, unknown). Never raises.

    Accepted, tried in this order:

    * an alpha-2 code, any case (``de``); ``UK`` is read as ``GB``; also ``XK`` (Kosovo);
    * an alpha-3 code, any case (``DEU``); also ``XKX``;
    * an English name: ISO short, official or common name (``Korea, Republic of``,
      ``Republic of Korea``, ``South Korea``) or an everyday alias (``USA``, ``Holland``,
      ``Ivory Coast``, ``Deutschland``);
    * a name in German, French, Spanish, Italian, Dutch, Portuguese, Swedish, Polish, Danish,
      Finnish or Czech (``Frankreich``, ``Espagne``): pycountry's translations, then the
      CLDR names phonenumbers ships.

    Names match ignoring case, accents, surrounding/extra whitespace, the punctuation
    ``.,'’()-/&``, a leading ``the``, and ``St``/``St.`` for ``Saint`` (``U.S.A.``,
    ``the Netherlands``, ``Cote d'Ivoire``, ``St. Lucia``). Results are cached; the tables
    are built once, on first use (the foreign names on the first lookup that needs them).
    """
    if not isinstance(raw, str):
        return None
    return _country_code(raw)


@functools.lru_cache(maxsize=4096)
def _country_code(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    alpha2, alpha3, names = _codes()
    if len(text) == 2:
        code = text.upper()
        if code == "UK":
            return "GB"
        if code in alpha2:
            return code
    elif len(text) == 3 and text.isalpha():
        a2 = alpha3.get(text.upper())
        if a2 is not None:
            return a2
    key = _key(text)
    if not key:
        return None
    return names.get(key) or _foreign_names().get(key) or _cldr_names().get(key)
