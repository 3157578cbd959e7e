"""Link thresholds from the trained model's own evidence (``matching.thresholds = "model"``).

The rule (:func:`idgraph.resolver.probabilistic.training.model_thresholds`): the lowest
probability at which the model's expected share of false links among the training pairs
at or above it stays within ``max_false_link_rate``, strictly above the weight one
agreeing field gives alone, never below 0.5; the matcher links at it, never below the
configured ``link_threshold``, and reviews from the configured ``review_threshold`` up
to it. Each test fails when its part of the rule is broken.
"""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pytest
from test_training import names_frame, people_frame

from idgraph.engine import Engine, batch
from idgraph.resolver.probabilistic.features import COLUMNS
from idgraph.resolver.probabilistic.matcher import Decisions
from idgraph.resolver.probabilistic.model import read_model
from idgraph.resolver.probabilistic.scorer import RealtimeScorer, probability_of
from idgraph.resolver.probabilistic.training import train_model
from idgraph.resolver.settings import MatchingSettings
from idgraph.settings import Settings

TARGET = 0.005


@pytest.fixture(scope="module")
def names_model():
    """Common names and birth dates: the false-link rate sets the threshold."""
    frame = names_frame()
    model, report = train_model(frame, max_pairs=2e5, max_false_link_rate=TARGET)
    return frame, model, report


@pytest.fixture(scope="module")
def email_model():
    """An email on every record: one agreeing field alone sets the threshold."""
    frame = people_frame()
    model, report = train_model(frame, max_pairs=2e5, max_false_link_rate=TARGET)
    return frame, model, report


def _scored_pairs(frame: pd.DataFrame, model: dict) -> pd.DataFrame:
    """Splink's scores of the blocked training pairs at 0.5 or above, best first."""
    from splink import DuckDBAPI, Linker

    linker = Linker(DuckDBAPI().register(frame), model, log_level=logging.ERROR)
    pairs = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    return pairs.sort_values("match_weight", ascending=False, ignore_index=True)


def test_the_link_threshold_is_the_lowest_within_the_false_link_rate(names_model):
    frame, model, report = names_model
    t = report.thresholds
    assert t["false_link_rate_threshold"] == t["link"]  # the rate decides here
    assert t["link"] > 0.98 and t["max_false_link_rate"] == TARGET
    pairs = _scored_pairs(frame, model)
    assert len(pairs) == t["pairs_scored"]
    linked = pairs[pairs.match_weight >= t["link_weight"] - 1e-6]
    rate = (1 - linked.match_probability).mean()
    assert len(linked) == t["pairs_at_or_above_link"]
    assert rate == pytest.approx(t["expected_false_link_rate"], abs=1e-6)
    assert rate <= TARGET
    # the lowest: taking in the next weight below (all pairs tied at it) breaks the rate
    below = pairs[pairs.match_weight < t["link_weight"] - 1e-6]
    lower = pairs[pairs.match_weight >= below.match_weight.iloc[0] - 1e-9]
    assert (1 - lower.match_probability).mean() > TARGET
    assert len(linked) < len(pairs)  # the model's less sure pairs are left to review


def test_a_stricter_false_link_rate_raises_the_threshold(names_model):
    frame, _, report = names_model
    _, strict = train_model(frame, max_pairs=2e5, max_false_link_rate=0.004)
    assert strict.thresholds["link"] > report.thresholds["link"]
    assert strict.thresholds["expected_false_link_rate"] <= 0.004
    # stricter than the model is sure of its best pair (0.9969): it links nothing
    _, none = train_model(frame, max_pairs=2e5, max_false_link_rate=0.001)
    assert none.thresholds["link_weight"] is None
    assert 1 - none.thresholds["best_probability"] > 0.001
    assert Decisions(MatchingSettings(), none.thresholds).decide(0.9999, ()) == "review"


def test_no_single_agreeing_field_links_two_records(email_model):
    _, model, report = email_model
    t = report.thresholds
    spec = read_model(model)
    strongest = t["strongest_comparison"]
    assert strongest == "email"  # the rate would link from 0.5: the field sets the bar
    assert t["false_link_rate_threshold"] == 0.5
    best = max(lvl.weight for c in spec.comparisons if c.name == strongest
               for lvl in c.levels if not lvl.is_null)
    assert t["single_field_weight"] == pytest.approx(spec.prior_weight + best, abs=1e-6)
    assert t["link_weight"] > t["single_field_weight"]
    # two records that share only an email: scored, and at most reviewed
    row = dict.fromkeys(COLUMNS)
    score = RealtimeScorer(model).score({**row, "email": "a@x.io"}, {**row, "email": "a@x.io"})
    assert score.match_weight == pytest.approx(t["single_field_weight"], abs=1e-6)
    assert score.probability > 0.5  # the model alone would call it a match
    low = MatchingSettings(link_threshold=0.5, review_threshold=0.5)
    decisions = Decisions(low, t)
    assert decisions.source == "model"
    assert decisions.decide(score.probability, score.contributions) == "review"


def test_the_configured_link_threshold_is_a_floor():
    model_says = {"link": 0.7, "link_weight": 1.22}
    decisions = Decisions(MatchingSettings(), model_says)  # link_threshold 0.99
    assert (decisions.link_threshold, decisions.review_threshold) == (0.99, 0.9)
    assert decisions.decide(0.95, ()) == "review"
    assert decisions.decide(0.99, ()) == "link"


def test_a_stricter_model_threshold_sends_pairs_to_review():
    model_says = {"link": 0.9995, "link_weight": 10.96}
    decisions = Decisions(MatchingSettings(), model_says)
    assert decisions.source == "model" and decisions.link_threshold == 0.9995
    assert decisions.decide(0.995, ()) == "review"
    assert decisions.decide(0.9995, ()) == "link"
    assert decisions.decide(0.85, ()) is None


def test_fixed_thresholds_ignore_the_model():
    decisions = Decisions(MatchingSettings(thresholds="fixed"), {"link": 0.9995,
                                                                 "link_weight": 10.96})
    assert decisions.source == "settings" and decisions.link_threshold == 0.99
    assert decisions.decide(0.995, ()) == "link"
    # a model trained before thresholds were recorded: the configured ones
    assert Decisions(MatchingSettings(), None).link_threshold == 0.99
    assert Decisions(MatchingSettings(), {}).link_threshold == 0.99


def test_a_model_sure_of_nothing_links_nothing():
    decisions = Decisions(MatchingSettings(), {"link": 1.0, "link_weight": None})
    assert decisions.decide(1.0, ()) == "review"  # even a probability that rounds to 1


def _resolve(data_dir, path, thresholds="model", model_version=None):
    settings = Settings(data_dir=data_dir)
    settings.matching = settings.matching.model_copy(update={"thresholds": thresholds})
    with Engine(settings) as engine:
        result = batch.resolve_file(engine, path, data_dir / "out.csv",
                                    ["given_name=given_name", "family_name=family_name",
                                     "birth_date=birth_date"], id_column="unique_id",
                                    source="people", model_version=model_version)
        link = engine.matcher.decisions.link_threshold if engine.matcher else None
        report = engine.models.report(result.model_version)
    return result.match, link, report


def test_resolve_and_real_time_scoring_link_at_the_models_threshold(tmp_path):
    path = tmp_path / "people.csv"
    names_frame(600).drop(columns=["phone"]).to_csv(path, index=False)
    first, link, report = _resolve(tmp_path / "a", path)
    saved = report["thresholds"]  # recorded beside the model
    assert saved["link"] < 0.99 and link == 0.99  # the configured floor applies
    # the same model, whose evidence now asks for more: its file's report is edited
    models = tmp_path / "b" / "models"
    shutil.copytree(tmp_path / "a" / "models", models)
    report_path = models / "model-v0001.report.json"
    meta = json.loads(report_path.read_text())
    strict = probability_of(30.0)
    meta["thresholds"].update(link=strict, link_weight=30.0)
    report_path.write_text(json.dumps(meta))
    second, link, _ = _resolve(tmp_path / "b", path, model_version="v0001")
    assert link == strict  # real-time scoring loads the model's threshold
    assert second.links < first.links  # the batch pass applies it too
    assert second.reviews_queued > first.reviews_queued  # the rest goes to review
    assert second.links + second.reviews_queued >= first.links + first.reviews_queued
    # thresholds = "fixed" ignores it
    shutil.copytree(models, tmp_path / "c" / "models")
    third, link, _ = _resolve(tmp_path / "c", path, thresholds="fixed", model_version="v0001")
    assert link == 0.99 and third.links == first.links
