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
