"""Whether two records name clearly different people: the evidence behind the conflict guard
and generic-value learning (:mod:`idgraph.resolver.linking`).

A record's *name signature* is ``given|family`` in folded form (:func:`name_signature`):
case, accents and German umlaut spellings folded (``Müller``, ``Mueller`` and ``Muller`` are
one key), punctuation dropped. :meth:`NameJudge.disagree` says two signatures belong to
different people when their **given names are incompatible** and they are not the same
names swapped. Given names are compatible when any of their tokens are:

* equal, or one is an initial of the other (``J`` / ``John``);
* one a prefix of at least three letters of the other (``Chris`` / ``Christopher``);
* nicknames of one another, or of one formal name (``Bob`` / ``Robert``, ``Bill`` / ``Rob``),
  from the ``nicknames`` package (English given names) and :data:`EXTRA_NICKNAMES`
  (German, French, Italian, Spanish, Slavic short forms);
* within one typo (one edit or swap of neighbours for names of four letters or more, two
  for eight or more).

A different family name alone is not a disagreement (marriage, a second surname written or
not), nor is a missing name: only evidence of two different given names counts. Household
members (``John Smith`` and ``Mary Smith``) therefore disagree; ``Robert Miller`` and
``Bob Müller`` do not.
"""

from __future__ import annotations

import functools

from nicknames import NickNamer
from rapidfuzz.distance import OSA

from idgraph.resolver.normalize import Normalizer

__all__ = ["EXTRA_NICKNAMES", "NameJudge", "name_signature"]

#: Formal given name -> short forms the ``nicknames`` package (English) does not know.
EXTRA_NICKNAMES: dict[str, tuple[str, ...]] = {
    "katharina": ("katja", "kathi", "kati", "kat", "trina", "tina"),
    "katarzyna": ("kasia", "kasha"),
    "alexander": ("sasha", "sascha", "xander", "alex", "alexei"),
    "aleksandr": ("sasha", "sascha", "alex"),
    "giuseppe": ("beppe", "peppe", "pino", "joe"),
    "francesco": ("franco", "cesco"),
    "giovanni": ("gianni", "nanni", "john"),
    "johannes": ("hannes", "jo", "johann", "john", "hans"),
    "johann": ("hans", "hannes"),
    "wolfgang": ("wolf", "wolfi"),
    "friedrich": ("fritz", "fred"),
    "francisco": ("paco", "pancho", "frank", "cisco"),
    "jose": ("pepe", "chepe", "joe"),
    "dolores": ("lola",),
    "guadalupe": ("lupe",),
    "ignacio": ("nacho",),
    "manuel": ("manolo", "manu"),
    "enrique": ("quique",),
    "francois": ("frank",),
    "guillaume": ("will",),
    "dmitri": ("dima",),
    "dmitry": ("dima",),
    "ekaterina": ("katya", "katja", "kate"),
    "yekaterina": ("katya",),
    "vladimir": ("vova", "volodya"),
    "mikhail": ("misha",),
    "nikolai": ("kolya", "nick"),
    "anastasia": ("nastya", "stacy"),
    "elisabeth": ("lisa", "liesl", "elli", "sissi", "betty"),
    "margarethe": ("grete", "gretchen", "maggie"),
    "magdalena": ("lena", "magda"),
    "susanne": ("susi", "sanne"),
    "christina": ("tina", "chris", "kiki"),
    "christine": ("tina", "chris"),
    "cornelia": ("conny", "nele"),
    "dorothea": ("dora", "thea"),
    "theodor": ("theo",),
    "maximilian": ("max", "maxi"),
    "sebastian": ("basti", "seb"),
    "tobias": ("tobi",),
    "matthias": ("matze", "matt"),
    "stefan": ("steffen", "steve"),
    "jurgen": ("jupp",),
    "josef": ("sepp", "beppo", "joe", "jupp"),
    "joseph": ("sepp", "beppo"),
    "willem": ("wim", "wil", "pim"),
    "hendrik": ("henk", "hein", "rik"),
    "johanna": ("hanna", "hanne", "jo"),
    "cornelis": ("kees", "cor"),
    "jacobus": ("koos", "jaap", "jacco"),
    "katherine": ("katie", "kate", "kathy", "kat"),
    "catherine": ("katie", "kate", "cathy", "cat"),
}

_namer = NickNamer()
_key = Normalizer.name_key
_UMLAUT_SPELLINGS = (("ae", "a"), ("oe", "o"), ("ue", "u"))


def _fold(text: str) -> str:
    """``name_key`` plus the ``ue``/``ü`` spelling of German names folded onto one key."""
    key = _key(text)
    for long, short in _UMLAUT_SPELLINGS:
        key = key.replace(long, short)
    return key


def _signature(given: str | None, family: str | None) -> str:
    """``given|family`` in folded form; ``""`` when the record names nobody (no given name)."""
    g = _fold(given) if given else ""
    if not g:
        return ""
    return f"{g}|{_fold(family) if family else ''}"


# The memoised functions are wrapped by assignment, not decorated: the mutation check
# (mutmut) leaves decorated functions unmutated, and these hold the guard's logic.
name_signature = functools.lru_cache(maxsize=1 << 16)(_signature)


def _short_forms() -> dict[str, frozenset[str]]:
    """Folded given name -> the folded names it is a short or formal form of (both ways)."""
    out: dict[str, set[str]] = {}
    for formal, shorts in EXTRA_NICKNAMES.items():
        group = {_fold(formal), *(_fold(s) for s in shorts)}
        for name in group:
            out.setdefault(name, set()).update(group)
    return {k: frozenset(v) for k, v in out.items()}


_EXTRA = _short_forms()


def _nicknames(token: str) -> frozenset[str]:
    """The token, its nicknames, the formal names it is a nickname of, and theirs."""
    formal = {token, *_namer.canonicals_of(token)}
    group = set(formal)
    for f in formal:
        group.update(_namer.nicknames_of(f))
    group.update(_EXTRA.get(token, ()))
    return frozenset(_fold(n) for n in group)


_nick_group = functools.lru_cache(maxsize=1 << 16)(_nicknames)


def _typo(a: str, b: str) -> bool:
    """Within one edit or transposition (``Sadnra``/``Sandra``), two from eight letters."""
    shorter = min(len(a), len(b))
    if shorter < 4:
        return False
    return OSA.distance(a, b) <= (2 if shorter >= 8 else 1)


def _dropped_letter(short: str, long: str) -> bool:
    """``long`` with one letter left out is ``short`` (``Pul``/``Paul``), three letters up."""
    return (len(short) >= 3 and len(long) == len(short) + 1
            and any(long[:i] + long[i + 1:] == short for i in range(len(long))))


def _tokens_agree(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) == 1:  # an initial: of the name or of one of its other forms (S. / Basti)
        return long.startswith(short) or any(n.startswith(short) for n in _nick_group(long))
    if len(short) >= 3 and long.startswith(short):
        return True
    if _typo(a, b) or _dropped_letter(short, long):
        return True
    group_a, group_b = _nick_group(a), _nick_group(b)
    if b in group_a or a in group_b:
        return True
    # a typo in a nickname (Sahsa / Alexander, Thhomas / Tom)
    return any(_typo(n, b) for n in group_a) or any(_typo(n, a) for n in group_b)


_tokens_compatible = functools.lru_cache(maxsize=1 << 16)(_tokens_agree)


def _compatible(a: str, b: str) -> bool:
    """Any token of ``a`` compatible with any token of ``b`` (both non-empty folded keys)."""
    return any(_tokens_compatible(x, y) for x in a.split() for y in b.split())


def _disagree(sig_a: str, sig_b: str) -> bool:
    """True when the two signatures clearly name different people (see module doc)."""
    if not sig_a or not sig_b or sig_a == sig_b:
        return False
    given_a, family_a = sig_a.split("|")  # one "|": folding drops punctuation from names
    given_b, family_b = sig_b.split("|")
    if _compatible(given_a, given_b):
        return False
    # written the other way round: family name in the given-name field
    return not (family_a and family_b and _compatible(given_a, family_b)
                and _compatible(family_a, given_b))


class NameJudge:
    """Decides whether name signatures (:func:`name_signature`) name different people."""

    disagree = staticmethod(functools.lru_cache(maxsize=1 << 16)(_disagree))

    def sets_disagree(self, names_a: frozenset[str] | set[str],
                      names_b: frozenset[str] | set[str]) -> bool:
        """True when both sets name someone and no name of one agrees with a name of the
        other: two profiles of different people. A profile whose records already hold a
        stray name (a data-entry slip, a relative's record joined by a CRM ID) still
        agrees with a profile of its main name."""
        if not names_a or not names_b:
            return False
        return all(self.disagree(a, b) for a in names_a for b in names_b)

    def groups(self, names: set[str] | frozenset[str]) -> int:
        """How many mutually disagreeing people ``names`` hold (1 when none disagree, 0 when
        empty): the size of a greedy partition into groups of agreeing names."""
        reps: list[str] = []
        for n in sorted(names):
            if not any(not self.disagree(n, r) for r in reps):
                reps.append(n)
        return len(reps)
