"""Training with Splink: a usable model is accepted, degenerate ones are refused.

The data sets are built so the expected outcome is known: people with two records each,
where the duplicate agrees on the identifying fields. A field that is drawn at random per
record (independent of the person) has m equal to u; data where only one field carries
any identity makes EM collapse onto it.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from idgraph.resolver.probabilistic.model import read_model
from idgraph.resolver.probabilistic.training import DegenerateModelError, check_model, train_model

GIVEN = ["anna", "ben", "carla", "david", "emma", "felix", "greta", "hugo", "ines", "jonas",
         "karla", "leon", "mia", "noah", "olga", "paul", "rosa", "sven", "tara", "uwe"]
FAMILY = ["meyer", "schmidt", "weber", "fischer", "wagner", "becker", "hoffmann", "koch",
          "richter", "klein", "wolf", "neumann", "schwarz", "zimmermann", "braun", "krueger",
          "hofmann", "hartmann", "lange", "schmitt", "werner", "krause", "lehmann", "koehler"]
CITIES = ["berlin", "hamburg", "munich", "cologne", "frankfurt", "stuttgart", "leipzig"]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 4 or rng.random() < 0.7:
        return s
    i = rng.randrange(1, len(s) - 1)
    return s[:i] + s[i + 1] + s[i] + s[i + 2:]


def people_frame(n_people: int = 1500, *, seed: int = 3, noise_company: bool = False,
                 only_email: bool = False) -> pd.DataFrame:
    """Two records per person; the second has typos. ``noise_company``: the company column
    is random per record. ``only_email``: every column but the email is random per record."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_people):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        born = f"19{rng.randrange(40, 99)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        city = rng.choice(CITIES)
        company = f"company {rng.randrange(400)}"
        email = f"{given}.{family}{p}@mail.example"
        for copy in range(2):
            row = {
                "unique_id": f"r{p}-{copy}",
                "given_name": _typo(rng, given) if copy else given,
                "family_name": _typo(rng, family) if copy else family,
                "birth_date": born, "email": email, "email_user": email.split("@")[0],
                "city": city, "company": company,
            }
            if noise_company or only_email:
                row["company"] = f"company {rng.randrange(3)}"
            if only_email:
                row["given_name"] = rng.choice(GIVEN)
                row["family_name"] = rng.choice(FAMILY)
                row["birth_date"] = (f"19{rng.randrange(40, 99)}-{rng.randrange(1, 13):02d}-"
                                     f"{rng.randrange(1, 29):02d}")
                row["city"] = rng.choice(CITIES)
            rows.append(row)
    return pd.DataFrame(rows)


def test_a_sound_model_is_trained_and_separates_every_comparison():
    model, report = train_model(people_frame(), max_pairs=2e5)
    spec = read_model(model)
    names = {c.name for c in spec.comparisons}
    assert {"given_name", "family_name", "birth_date", "email", "address", "company"} <= names
    sound = {n: s for n, s in report.separation.items() if n != "name_swap"}
    assert all(s >= 0.05 for s in sound.values()), report.separation
    # nobody's names are swapped in this data: a rare-event comparison, noted, not refused
    assert "name_swap: never seen among matches in this data" in report.warnings
    # exact agreement on a name is evidence for a match, disagreement against it
    given = next(c for c in spec.comparisons if c.name == "given_name")
    assert given.levels[1].label.startswith("Exact") and given.levels[1].weight > 2
    assert given.levels[-1].weight < 0
    assert 0 < spec.prior < 0.01
    assert report.em_blocking_rules  # m came from EM sessions


def test_a_field_with_m_equal_to_u_is_refused_naming_it():
    with pytest.raises(DegenerateModelError) as err:
        train_model(people_frame(noise_company=True), max_pairs=2e5)
    message = str(err.value)
    assert "company: m equals u" in message
    assert "given_name" not in message  # the sound fields are not blamed


def test_em_collapsing_onto_one_field_is_refused():
    with pytest.raises(DegenerateModelError) as err:
        train_model(people_frame(only_email=True), max_pairs=2e5)
    assert "EM collapsed onto" in str(err.value)


def test_too_little_data_is_refused_with_the_count():
    with pytest.raises(DegenerateModelError, match="too few records to train on: 10"):
        train_model(people_frame(5), max_pairs=2e5)


def test_check_model_refuses_a_hand_edited_model_whose_prior_is_impossible():
    model, _ = train_model(people_frame(), max_pairs=2e5)
    model["probability_two_random_records_match"] = 0.9
    with pytest.raises(DegenerateModelError, match=r"prior probability of a match 0.9"):
        check_model(model)


# -- files without an identifier (names and birth dates) -----------------------------------


def _misspell(rng: random.Random, s: str) -> str:
    """``s`` with one inner letter replaced by another (always a change)."""
    i = rng.randrange(1, len(s) - 1)
    return s[:i] + rng.choice([c for c in "aeioulnrst" if c != s[i]]) + s[i + 1:]


def names_frame(n_people: int = 1500, *, seed: int = 11, misspelt: float = 0.3,
                other_birth_date: float = 0.05, random_names: bool = False,
                household_phones: int = 0) -> pd.DataFrame:
    """A person file of names and birth dates only: two records per person, the second
    with each name misspelt with probability ``misspelt`` and the day and month of its
    birth date swapped with probability ``other_birth_date``. ``random_names``: every
    record's names are drawn at random from three given and three family names (only the
    birth date says who it is; one pair in nine agrees on both names by chance, so the
    prior has sure pairs to count).
    ``household_phones``: that many pairs of different people (the first record of
    persons 2k and 2k+1) share a landline, the only phone numbers in the file."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_people):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        year, month, day = rng.randrange(1940, 2000), rng.randrange(1, 13), rng.randrange(1, 13)
        for copy in range(2):
            g, f, (m, d) = given, family, (month, day)
            if copy and rng.random() < misspelt:
                g = _misspell(rng, g)
            if copy and rng.random() < misspelt:
                f = _misspell(rng, f)
            if copy and rng.random() < other_birth_date:
                m, d = d, m
            if random_names:
                g, f = rng.choice(GIVEN[:3]), rng.choice(FAMILY[:3])
            rows.append({"unique_id": f"r{p}-{copy}", "given_name": g, "family_name": f,
                         "birth_date": f"{year}-{m:02d}-{d:02d}", "phone": None})
    for h in range(household_phones):
        rows[4 * h]["phone"] = rows[4 * h + 2]["phone"] = f"+4420790{h:05d}"
    return pd.DataFrame(rows)


def test_a_file_of_names_and_birth_dates_trains_and_is_checked_on_exact_duplicates():
    _, report = train_model(names_frame(), max_pairs=2e5)
    assert report.columns == ["birth_date", "family_name", "given_name"]
    assert report.sure_match_share is None  # no identifier to check the model with
    assert report.duplicate_match_share == 1.0
    assert any("checked on exact duplicates only" in w for w in report.warnings)
    assert {n for n, s in report.separation.items() if s >= 0.05} >= {
        "given_name", "family_name", "birth_date"}


def test_a_few_pairs_sharing_a_phone_neither_check_the_model_nor_count_the_prior():
    # issue 14: names and birth dates, and a phone column filled in 1.7% of the rows by 25
    # households' landlines. The pairs sharing a phone are different people; 25 of them
    # judged the model ("only 0% of the 25 pairs that share an exact identifier score as
    # matches") and, counted as the prior's sure matches, made the prior far too low
    model, report = train_model(names_frame(household_phones=25), max_pairs=2e5)
    assert report.sure_match_share is None
    assert any(w.startswith("no identifier (email, phone, national ID) shared by at least 30 "
                            "pairs of named records (phone: 25)") for w in report.warnings)
    assert report.duplicate_match_share == 1.0
    assert 1e-4 < read_model(model).prior < 1e-3  # counted on full name + birth date


def test_an_identifier_too_sparse_to_estimate_is_left_out_with_a_warning():
    # an email on 2% of the records, no two alike: nothing to estimate its comparison on
    frame = names_frame()
    rng = random.Random(2)
    frame["email"] = [f"{u}@example.org" if rng.random() < 0.02 else None
                      for u in frame.unique_id]
    model, report = train_model(frame, max_pairs=2e5)
    assert "email" not in report.columns
    assert "email" not in {c.name for c in read_model(model).comparisons}
    assert report.warnings[0].startswith("email: left out of the model: filled in 2.")
    assert "shared by 0 pairs of named records, too few to estimate it" in report.warnings[0]


def test_an_identifier_enough_pairs_share_still_checks_the_model():
    # every column but the email is noise: the pairs sharing an email are people, and the
    # model does not score them as matches
    with pytest.raises(DegenerateModelError,
                       match=r"only 0% of the 1500 pairs that share an exact email score "
                             r"as matches"):
        train_model(people_frame(only_email=True), max_pairs=2e5)


def test_a_model_that_does_not_match_exact_duplicates_is_refused():
    # nearly every second record is misspelt in both names and has another birth date,
    # and the names are common: the few pairs agreeing on full name and birth date make a
    # prior so low that not even two identical records score as a match
    frame = names_frame(misspelt=0.97, other_birth_date=0.9)
    with pytest.raises(DegenerateModelError, match=r"degenerate model refused: only 0% of "
                       r"2000 records score as a match with an exact copy of themselves"):
        train_model(frame, max_pairs=2e5)


def test_a_names_and_birth_dates_model_sure_of_no_pair_is_refused():
    # the names are noise: EM takes "same names" inside the birth-date block for the match
    # class, so every comparison seems to separate and exact copies still match, but the
    # model is sure of no pair
    frame = names_frame(random_names=True)
    with pytest.raises(DegenerateModelError, match=r"degenerate model refused: it is sure of "
                       r"none of its training pairs \(its best pair scores 0\.5"):
        train_model(frame, max_pairs=2e5)


def test_no_sure_pair_to_count_the_prior_on_is_refused_with_the_reason():
    # every duplicate is misspelt: no two records share full name and birth date (the
    # prior would be 0, whose match weight Splink cannot compute)
    frame = names_frame(200, misspelt=1.0)
    frame = frame[~frame.duplicated(["given_name", "family_name", "birth_date"], keep=False)]
    with pytest.raises(DegenerateModelError, match="cannot estimate the prior: no two records "
                       "share the same given_name, family_name, birth_date"):
        train_model(frame, max_pairs=2e5)


def test_idgraph_resolve_links_a_file_of_names_and_birth_dates(tmp_path, capsys):
    from idgraph.cli import main

    frame = names_frame(household_phones=25)
    path = tmp_path / "people.csv"
    frame.rename(columns={"unique_id": "id", "given_name": "first", "family_name": "last",
                          "birth_date": "dob"}).to_csv(path, index=False)
    out = tmp_path / "resolved.csv"
    code = main(["resolve", "--input", str(path), "--output", str(out), "--id-column", "id",
                 "--map", "given_name=first", "--map", "family_name=last",
                 "--map", "birth_date=dob", "--map", "phone=phone",
                 "--data-dir", str(tmp_path / "d")])
    assert code == 0, capsys.readouterr().err
    resolved = pd.read_csv(out, dtype=str)
    person = resolved.record_id.str.split("-").str[0]
    together = resolved.groupby(person).profile_id.nunique() == 1
    mixed = resolved.groupby("profile_id").record_id.apply(
        lambda ids: ids.str.split("-").str[0].nunique() > 1)
    # common names, and a third of the second records misspelt: most people are found
    # (the rest sit between the review and the link thresholds)
    assert together.mean() > 0.7
    # only households (linked by their landline, a deterministic rule) share a profile
    assert mixed.sum() <= 25
