"""Parity: the real-time scorer gives Splink's match weights, pair for pair.

For two data sets with different comparisons (the synthetic multi-source records: names,
email, phone, company, address; FEBRL3: swapped names, typos, national ID, birth dates),
a model is trained with Splink, Splink's ``predict`` scores every blocked pair, and
:class:`RealtimeScorer` scores the same pairs from the same rows. Asserted:

* the candidate index finds exactly the pairs Splink's blocking rules find;
* for every pair, the total match weight and each comparison's weight are equal within
  1e-9 (both add the same float64 level weights; only summation order could differ);
* the level the scorer reports per comparison is the level Splink chose (its gamma).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from splink import DuckDBAPI, Linker

from idgraph.engine.batch import (
    parse_mapping,
    payload_rows,
    record_row,
    records_from_table,
    rows_frame,
)
from idgraph.resolver.probabilistic.scorer import CandidateIndex, RealtimeScorer
from idgraph.resolver.probabilistic.training import train_model

TOLERANCE = 1e-9


def _synthetic_rows() -> list[tuple[str, dict]]:
    from idgraph.generator import generate

    return payload_rows(generate(n_records=12_000, seed=5).events)


def _febrl_rows() -> list[tuple[str, dict]]:
    from benchmarks.febrl import FEBRL_MAP, load_febrl

    records = load_febrl("febrl3").records
    mapping = parse_mapping(FEBRL_MAP, records.columns)
    parsed = records_from_table(records, mapping, "record_id", "febrl3", datetime.now(UTC))
    return [(r.record_key, record_row(r)) for r in parsed.records]


@pytest.fixture(scope="module", params=["synthetic", "febrl3"])
def scored(request):
    rows = _synthetic_rows() if request.param == "synthetic" else _febrl_rows()
    frame = rows_frame(rows)
    model, _ = train_model(frame, max_pairs=1e6)
    linker = Linker(DuckDBAPI().register(frame), model, log_level=logging.ERROR)
    predictions = linker.inference.predict().as_pandas_dataframe()
    return request.param, dict(rows), model, predictions


def test_candidates_are_the_pairs_splink_blocks(scored):
    _name, rows, model, predictions = scored
    scorer = RealtimeScorer(model, "test")
    index = CandidateIndex(scorer, max_block=10**9)
    index.put_many(rows.items())
    ours = {tuple(sorted((k, c))) for k, row in rows.items() for c in index.candidates(k, row)}
    theirs = {tuple(sorted(p)) for p in zip(predictions.unique_id_l, predictions.unique_id_r,
                                            strict=True)}
    assert len(theirs) > 2000
    assert ours == theirs, (len(ours - theirs), len(theirs - ours))


def test_weights_equal_splinks_for_every_pair(scored):
    name, rows, model, predictions = scored
    scorer = RealtimeScorer(model, "test")
    comparisons = [c.name for c in scorer.spec.comparisons]
    labels = {c.name: {lvl.gamma: lvl.label for lvl in c.levels} for c in scorer.spec.comparisons}
    worst = 0.0
    checked = 0
    for rec in predictions.to_dict("records"):
        s = scorer.score(rows[rec["unique_id_l"]], rows[rec["unique_id_r"]])
        worst = max(worst, abs(s.match_weight - rec["match_weight"]))
        assert s.probability == pytest.approx(rec["match_probability"], abs=1e-12)
        for (comp, label, weight), expected in zip(s.contributions, comparisons, strict=True):
            assert comp == expected
            assert abs(weight - rec[f"mw_{comp}"]) <= TOLERANCE, (comp, rec["unique_id_l"])
            assert label == labels[comp][rec[f"gamma_{comp}"]], (comp, label)
        checked += 1
    assert checked > 2000, name
    assert worst <= TOLERANCE, f"{name}: largest match-weight difference {worst}"
