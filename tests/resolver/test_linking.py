"""Deterministic rules, limits, blocked values and shared identifiers."""

from __future__ import annotations

import pytest
from helpers import record

from idgraph.graph.networkx_backend import NetworkxGraph
from idgraph.resolver.linking import LinkPlanner
from idgraph.resolver.settings import IdentifierRule, LinkingSettings


@pytest.fixture()
def planner() -> LinkPlanner:
    return LinkPlanner(LinkingSettings())


@pytest.fixture()
def graph(tmp_path, planner):
    g = NetworkxGraph(tmp_path / "links.sqlite", planner.shareable_types())
    yield g
    g.close()


def run(planner, graph, records):
    plan = planner.plan(records, graph)
    graph.apply(plan.new_records, plan.edges)
    return plan


def test_shared_email_links_records(planner, graph):
    run(planner, graph, [record("salesforce", "003A", "e1", 1, ["crm:salesforce:003A", "email:jane@x.com"])])
    plan = run(planner, graph, [record("hubspot", "51", "e2", 2, ["crm:hubspot:51", "email:jane@x.com"])])
    assert all(e.linked for e in plan.edges)
    assert graph.profile_of("salesforce:003A") == graph.profile_of("hubspot:51")
    assert {e.rule for e in plan.edges} == {"deterministic:email", "deterministic:crm:hubspot"}


def test_limit_rejects_merge_of_two_hubspot_contacts(planner, graph):
    run(planner, graph, [record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "email:a@x.com"])])
    run(planner, graph, [record("hubspot", "2", "e2", 2, ["crm:hubspot:2", "email:b@x.com"])])
    # a calendar attendee record carrying both emails would join two HubSpot contacts
    plan = run(planner, graph, [record("google_calendar", "c", "e3", 3, ["email:a@x.com", "email:b@x.com"])])
    rejected = plan.rejected_links
    assert len(rejected) == 1
    assert rejected[0].reason.startswith("limit: merge would give 2 crm:hubspot")
    assert graph.profile_of("hubspot:1") != graph.profile_of("hubspot:2")
    # the rejected identifier stays attached (unlinked) to the record that carried it
    assert graph.edges_of(["google_calendar:c"])["google_calendar:c"][rejected[0].identifier] is False


def test_per_type_limit_on_new_identifier(graph):
    settings = LinkingSettings()
    settings.identifier_rules["phone"] = IdentifierRule(max_per_profile=1, priority=70)
    planner = LinkPlanner(settings)
    plan = run(planner, graph, [record("segment", "u1", "e1", 1, ["user:segment:u1", "phone:+14155552671",
                                                                  "phone:+14155552672"])])
    phones = [e for e in plan.edges if e.identifier_type == "phone"]
    assert [e.linked for e in phones] == [True, False]
    assert "limit: profile already has 1 phone" in phones[1].reason


def test_household_device_does_not_merge_two_known_people(planner, graph):
    # anonymous activity on the family tablet, then two members log in on it
    run(planner, graph, [record("segment", "anon-1", "e1", 1, ["cookie:anon-1", "device:tablet"])])
    run(planner, graph, [record("segment", "alice", "e2", 2, ["user:segment:alice", "email:alice@x.com",
                                                              "cookie:anon-1", "device:tablet"])])
    plan = run(planner, graph, [record("segment", "bob", "e3", 3, ["user:segment:bob", "email:bob@x.com",
                                                                   "cookie:anon-1", "device:tablet"])])
    alice, bob = graph.profile_of("segment:alice"), graph.profile_of("segment:bob")
    assert alice != bob
    assert graph.profile_of("segment:anon-1") == alice  # first known person claims the anonymous record
    rejected = {e.identifier: e.reason for e in plan.rejected_links}
    assert set(rejected) == {"cookie:anon-1", "device:tablet"}
    assert all(r.startswith("shared") for r in rejected.values())


def test_shareable_identifier_links_anonymous_to_known(planner, graph):
    run(planner, graph, [record("segment", "anon-9", "e1", 1, ["cookie:anon-9", "idfa:AEBE52E7-03EE-455A-B3C4-E57283966239"])])
    plan = run(planner, graph, [record("segment", "carol", "e2", 2, ["user:segment:carol", "idfa:AEBE52E7-03EE-455A-B3C4-E57283966239"])])
    assert all(e.linked for e in plan.edges)
    assert graph.profile_of("segment:anon-9") == graph.profile_of("segment:carol")


def test_blocked_values_are_never_attached(planner, graph):
    plan = run(planner, graph, [
        record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "email:test@test.com"]),
        record("hubspot", "2", "e2", 2, ["crm:hubspot:2", "email:test@test.com", "email:noreply@shop.com"]),
    ])
    assert graph.profile_of("hubspot:1") != graph.profile_of("hubspot:2")
    assert plan.blocked["hubspot:1"] == {"email:test@test.com": "blocked value (configured placeholder)"}
    assert plan.blocked["hubspot:2"]["email:noreply@shop.com"] == "blocked value (no-reply mailbox)"
    assert all(e.identifier != "email:test@test.com" for e in plan.edges)


def test_non_linking_type_is_attached_only(graph):
    settings = LinkingSettings()
    settings.identifier_rules["phone"] = IdentifierRule(links=False)
    planner = LinkPlanner(settings)
    run(planner, graph, [record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "phone:+14155552671"])])
    plan = run(planner, graph, [record("hubspot", "2", "e2", 2, ["crm:hubspot:2", "phone:+14155552671"])])
    assert graph.profile_of("hubspot:1") != graph.profile_of("hubspot:2")
    assert plan.rejected_links[0].reason == "phone identifiers do not link (rule)"


def test_decisions_within_one_batch_see_each_other(planner, graph):
    plan = run(planner, graph, [
        record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "email:a@x.com"]),
        record("hubspot", "2", "e2", 1, ["crm:hubspot:2", "email:b@x.com"]),
        record("google_calendar", "c", "e3", 2, ["email:a@x.com", "email:b@x.com"]),
    ])
    assert len(plan.rejected_links) == 1
    assert graph.profile_of("hubspot:1") != graph.profile_of("hubspot:2")


def test_strong_identifiers_link_before_weak_ones(planner, graph):
    # record lists its device first; priority still links the email first, so the device
    # (already on another known person) is the link that is refused
    run(planner, graph, [record("segment", "dan", "e1", 1, ["user:segment:dan", "device:shared"])])
    run(planner, graph, [record("hubspot", "7", "e2", 2, ["crm:hubspot:7", "email:erin@x.com"])])
    plan = run(planner, graph, [record("segment", "erin", "e3", 3, ["device:shared", "email:erin@x.com"])])
    assert graph.profile_of("segment:erin") == graph.profile_of("hubspot:7")
    assert [e.identifier for e in plan.rejected_links] == ["device:shared"]
