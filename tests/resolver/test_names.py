"""Whether two names belong to different people (the evidence of the name guards)."""

from __future__ import annotations

import pytest

from idgraph.resolver import names
from idgraph.resolver.names import NameJudge, name_signature


@pytest.fixture(autouse=True)
def cold_caches():
    """Every test computes the answers it asserts. The judgements are memoised per process,
    so a cache warmed by an earlier test (or by the process the mutation check forks its
    runs from) would answer without running the code under test."""
    for cached in (name_signature, NameJudge.disagree, names._tokens_compatible,
                   names._nick_group):
        cached.cache_clear()

SAME = [
    (("Robert", "Miller"), ("Bob", "Miller")),  # nickname (nicknames package)
    (("William", "Hart"), ("Bill", "Hart")),
    (("Elizabeth", "Ng"), ("Liz", "Ng")),
    (("Katharina", "Weber"), ("Katja", "Weber")),  # nickname (EXTRA_NICKNAMES)
    (("Alexander", "Ivanov"), ("Sasha", "Ivanov")),
    (("Giuseppe", "Rossi"), ("Beppe", "Rossi")),
    (("Jörg", "Müller"), ("Joerg", "Mueller")),  # umlaut spellings
    (("José", "García"), ("Jose", "Garcia")),  # accents
    (("Anna", "Schmidt"), ("Schmidt", "Anna")),  # swapped fields
    (("J.", "Smith"), ("John", "Smith")),  # initial
    (("Chris", "Lee"), ("Christopher", "Lee")),  # short form by prefix
    (("Flo", "Berger"), ("Florian", "Berger")),  # (three letters are enough)
    (("Isa", "Conti"), ("Isabella", "Conti")),
    (("Joe", "Novak"), ("Joseph", "Novak")),  # a nickname only the formal name lists
    (("Jonathan", "Whitfield"), ("Jonathon", "Whitfield")),  # typo
    (("Sandra", "Lewis"), ("Sadnra", "Lewis")),  # transposition
    (("Anna Maria", "Rossi"), ("Maria", "Rossi")),  # second given name
    (("Anna", "Meyer"), ("Anna", "Schulz")),  # family name changed (marriage)
    (("Anna", "Meyer"), ("", "")),  # nobody named: no evidence
    (("Sahsa", "Cox"), ("Alexander", "Cox")),  # a typo in a nickname
    (("Thhomas", "Schmitt"), ("Tom", "Schmitt")),
    (("S.", "Jung"), ("Basti", "Jung")),  # initial of the formal name of a nickname
    (("Pul", "Bailey"), ("Paul", "Bailey")),  # a letter left out of a short name
    (("Josef", "Möller"), ("Sepp", "Moller")),
    (("Willem", "Smits"), ("Wim", "Smits")),
    (("Omar", "Haddad"), ("Omer", "Haddad")),  # one typo from four letters
    (("Fernando", "Ruiz"), ("Frenadno", "Ruiz")),  # two typos from eight letters
    (("Leonhard", "Vogt"), ("Bernhard", "Vogt")),  # (two edits apart: forgiven as typos)
]
DIFFERENT = [
    (("John", "Smith"), ("Mary", "Smith")),  # household
    (("Anna", "Meyer"), ("Tom", "Berg")),  # colleagues on a switchboard
    (("Luca", "Bianchi"), ("Marco", "Bianchi")),
    (("Jan", "Novak"), ("Eva", "Novak")),
    (("Tom", "Fischer"), ("Tim", "Fischer")),  # short names: no substitution forgiven
    (("Jens", "Krause"), ("Janis", "Krause")),  # two edits below eight letters
    (("Friedrich", "Lang"), ("Dietrich", "Lang")),  # three edits, however long the names
    (("Paul", "Wagner"), ("Petra", "Wagner")),  # one letter longer, but not a letter left out
    (("Ivan", "Petrov"), ("Irina", "Petrov")),
    (("Li", "Wang"), ("Lin", "Wang")),  # a letter left out of a two-letter name is a new name
    (("Al", "Haddad"), ("Ali", "Haddad")),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_one_person_written_differently_does_not_disagree(a, b):
    assert not NameJudge.disagree(name_signature(*a), name_signature(*b))
    assert not NameJudge.disagree(name_signature(*b), name_signature(*a))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_given_names_disagree(a, b):
    assert NameJudge.disagree(name_signature(*a), name_signature(*b))
    assert NameJudge.disagree(name_signature(*b), name_signature(*a))


def test_signature_folds_case_accents_and_umlaut_spellings():
    assert name_signature("JÖRG", "Müller") == name_signature("joerg", "MUELLER") == "jorg|muller"
    assert name_signature(None, "Smith") == "" and name_signature("Ann", None) == "ann|"


def test_groups_count_mutually_disagreeing_people():
    judge = NameJudge()
    sigs = {name_signature("Robert", "Miller"), name_signature("Bob", "Miller"),
            name_signature("Mary", "Miller"), name_signature("Tom", "Berg")}
    assert judge.groups(sigs) == 3
    assert judge.groups(set()) == 0


def test_profiles_disagree_only_when_no_name_of_one_agrees_with_the_other():
    judge = NameJudge()
    # a profile holding a stray name (FEBRL's corrupted duplicate "Amber") still agrees
    # with a record of its main name
    lauren = {name_signature("Lauren", "Frahn"), name_signature("Amber", "Frah")}
    assert not judge.sets_disagree(lauren, {name_signature("Laurex", "Frahn")})
    assert judge.sets_disagree({name_signature("John", "Smith")},
                               {name_signature("Mary", "Smith"), name_signature("M.", "Smith")})
    assert not judge.sets_disagree(set(), {name_signature("Mary", "Smith")})


def test_short_forms_join_every_form_of_a_name_both_ways():
    """The table behind the European nicknames (built once, at import): a short form finds
    its formal name and the other short forms, and a short form of two formal names (Sepp:
    Josef, Joseph) finds both; keys are folded (Joe and Jö are one key)."""
    forms = names._short_forms()
    assert forms["sepp"] == {"sepp", "josef", "joseph", "beppo", "jupp", "jo"}
    assert forms["josef"] == {"josef", "sepp", "beppo", "jupp", "jo"}
    assert forms["kati"] == {"katharina", "katja", "kathi", "kati", "kat", "trina", "tina"}
