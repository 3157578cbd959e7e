"""Deterministic rules, limits, blocked values and shared identifiers."""

from __future__ import annotations

import pytest
from helpers import record

from idgraph.core.links import LinkEdge
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
    graph.apply(plan.new_records, plan.edges, names=plan.names, generic=plan.generic,
                detached=plan.detached)
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
    assert {e.identifier: e.reason for e in plan.rejected_links} == {
        "cookie:anon-1": "shared cookie: both profiles already have a non-shareable identifier",
        "device:tablet": "shared device: both profiles already have a non-shareable identifier"}


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


# --------------------------------------------------------------------------------------
# generic values and name conflicts (records that name different people)


def contact(rid: str, t: float, ids: list[str], given: str, family: str, source="salesforce"):
    crm = "crm:salesforce:" if source == "salesforce" else "crm:hubspot:"
    return record(source, rid, f"ev-{rid}-{t}", t, [crm + rid, *ids], given_name=given,
                  family_name=family)


def test_switchboard_number_on_colleagues_links_nobody(planner, graph):
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer")])
    plan = run(planner, graph, [contact("003B", 2, ["phone:+4930123456"], "Tom", "Berg")])
    assert graph.profile_of("salesforce:003A") != graph.profile_of("salesforce:003B")
    assert plan.generic == {"phone:+4930123456": "generic value: carried by records of 2 "
                                                 "different people"}
    # a third record carrying only the number (no name) joins neither of them
    run(planner, graph, [record("segment", "u9", "e9", 3, ["user:segment:u9", "phone:+4930123456"])])
    assert graph.profile_of("segment:u9") not in {graph.profile_of("salesforce:003A"),
                                                  graph.profile_of("salesforce:003B")}
    assert graph.edges_of(["salesforce:003A"])["salesforce:003A"]["phone:+4930123456"] is False


def test_generic_value_splits_the_profiles_it_merged(planner, graph):
    # the number first joins Anna's contact and an app user that carries no name
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer"),
                         record("segment", "u1", "e1", 2, ["user:segment:u1", "phone:+4930123456"])])
    assert graph.profile_of("segment:u1") == graph.profile_of("salesforce:003A")
    plan = run(planner, graph, [contact("003B", 3, ["phone:+4930123456"], "Tom", "Berg")])
    assert graph.profile_of("segment:u1") != graph.profile_of("salesforce:003A")
    assert sorted(plan.demoted) == [("phone:+4930123456", "salesforce:003A"),
                                    ("phone:+4930123456", "segment:u1")]


def test_household_landline_and_mailbox_do_not_merge_the_family(planner, graph):
    run(planner, graph, [contact("003J", 1, ["phone:+442079460000", "email:thesmiths@mail.co.uk"],
                                 "John", "Smith")])
    run(planner, graph, [contact("77", 2, ["phone:+442079460000", "email:thesmiths@mail.co.uk"],
                                 "Mary", "Smith", source="hubspot")])
    assert graph.profile_of("salesforce:003J") != graph.profile_of("hubspot:77")


def test_name_variants_of_one_person_still_link(planner, graph):
    run(planner, graph, [contact("003R", 1, ["email:r.miller@acme.com"], "Robert", "Müller")])
    plan = run(planner, graph, [contact("78", 2, ["email:r.miller@acme.com"], "Bob", "Mueller",
                                        source="hubspot")])
    assert graph.profile_of("salesforce:003R") == graph.profile_of("hubspot:78")
    assert plan.generic == {} and all(e.linked for e in plan.edges)


def test_name_conflict_refuses_a_join_through_a_nameless_record(planner, graph):
    """The guard compares whole profiles: the app user has no name, but its profile is
    Anna's, so Tom's record carrying the app user's email does not join it."""
    run(planner, graph, [contact("003A", 1, ["email:anna@x.com"], "Anna", "Meyer"),
                         record("segment", "u1", "e1", 2, ["user:segment:u1", "email:anna@x.com",
                                                           "email:shared-login@x.com"])])
    plan = run(planner, graph, [contact("79", 3, ["email:shared-login@x.com"], "Tom", "Berg",
                                        source="hubspot")])
    assert graph.profile_of("hubspot:79") != graph.profile_of("salesforce:003A")
    assert [e.reason for e in plan.rejected_links] == [
        "conflict: the profiles name different people"]


def test_conflict_guard_without_generic_learning(graph):
    settings = LinkingSettings()
    settings.generic.enabled = False
    planner = LinkPlanner(settings)
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer")])
    plan = run(planner, graph, [contact("003B", 2, ["phone:+4930123456"], "Tom", "Berg")])
    assert [e.reason for e in plan.rejected_links] == ["conflict: the profiles name different people"]
    assert graph.profile_of("salesforce:003A") != graph.profile_of("salesforce:003B")


def test_crm_id_joins_records_whose_names_disagree(planner, graph):
    """A converted Lead renamed before conversion still joins its Contact: the CRM ID says
    they are one record's history, whatever the names."""
    run(planner, graph, [contact("003A", 1, [], "Anna", "Meyer")])
    lead = record("salesforce", "00QL", "e2", 2, ["crm:salesforce:00QL", "crm:salesforce:003A"],
                  given_name="Katrin", family_name="Meyer")
    plan = run(planner, graph, [lead])
    assert graph.profile_of("salesforce:00QL") == graph.profile_of("salesforce:003A")
    assert all(e.linked for e in plan.edges)


def test_role_mailbox_is_generic_from_first_sight(planner, graph):
    run(planner, graph, [contact("003A", 1, ["email:kontakt@baeckerei-schulz.de"], "Anna", "Schulz")])
    plan = run(planner, graph, [record("sendgrid", "kontakt@baeckerei-schulz.de", "e2", 2,
                                       ["email:kontakt@baeckerei-schulz.de"])])
    assert graph.profile_of("sendgrid:kontakt@baeckerei-schulz.de") != graph.profile_of(
        "salesforce:003A")
    assert plan.rejected_links[0].reason == "generic value: role mailbox"
    # customer.service@ is the same role written with a dot
    assert planner._seeded("email:customer.service@acme.com") == "generic value: role mailbox"
    assert planner._seeded("email:anna.schulz@acme.com") is None


def test_generic_learning_does_not_depend_on_batch_order(planner, graph, tmp_path):
    batch = [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer"),
             record("segment", "u1", "e1", 2, ["user:segment:u1", "phone:+4930123456"]),
             contact("003B", 3, ["phone:+4930123456"], "Tom", "Berg")]
    run(planner, graph, batch)
    one_batch = {k: graph.profile_of(k) for k in ("salesforce:003A", "segment:u1", "salesforce:003B")}
    other = NetworkxGraph(tmp_path / "other.sqlite", planner.shareable_types())
    for r in batch:
        run(planner, other, [r])
    one_by_one = {k: other.profile_of(k) for k in one_batch}
    other.close()
    assert len(set(one_batch.values())) == len(set(one_by_one.values())) == 3


def test_max_people_lets_a_couple_share_an_address(graph):
    settings = LinkingSettings()
    settings.generic.max_people = 2
    settings.name_conflicts = False
    planner = LinkPlanner(settings)
    run(planner, graph, [contact("003J", 1, ["email:john.and.mary@mail.co.uk"], "John", "Smith"),
                         contact("003M", 2, ["email:john.and.mary@mail.co.uk"], "Mary", "Smith")])
    assert graph.profile_of("salesforce:003J") == graph.profile_of("salesforce:003M")
    plan = run(planner, graph, [contact("003K", 3, ["email:john.and.mary@mail.co.uk"], "Kevin", "Smith")])
    assert "different people" in plan.generic["email:john.and.mary@mail.co.uk"]
    assert graph.profile_of("salesforce:003J") != graph.profile_of("salesforce:003M")


def test_model_links_between_profiles_naming_different_people_are_refused(planner, graph):
    run(planner, graph, [contact("003A", 1, [], "Anna", "Meyer"),
                         contact("003B", 2, [], "Tom", "Meyer"),
                         contact("003C", 3, [], "Anne", "Meyer")])
    pairs = [("salesforce:003A", "salesforce:003C"), ("salesforce:003A", "salesforce:003B")]
    crm = frozenset({"crm"})
    assert planner.match_blockers(pairs, graph, crm) == [
        "", "conflict: the profiles name different people"]
    # a pair a personal comparison supports (or a steward accepted) is not checked
    assert planner.match_blockers(pairs, graph, crm, check_names=[True, False]) == ["", ""]


def test_a_shared_mailbox_record_links_nothing_it_carries(planner, graph):
    """Mail to info@ carries a contact's CRM ID (SendGrid custom argument) and a colleague
    replies to it from her own address: neither joins the mailbox to a person."""
    run(planner, graph, [contact("003A", 1, ["email:anna@acme.de"], "Anna", "Meyer")])
    mail = record("sendgrid", "info@acme.de", "e2", 2,
                  ["email:info@acme.de", "crm:salesforce:003A", "message:m1@mta"])
    reply = record("mandrill", "anna@acme.de", "e3", 3, ["email:anna@acme.de", "message:m1@mta"],
                   given_name="Anna", family_name="Meyer")
    plan = run(planner, graph, [mail, reply])
    anna = graph.profile_of("salesforce:003A")
    assert graph.profile_of("mandrill:anna@acme.de") == anna
    assert graph.profile_of("sendgrid:info@acme.de") != anna
    assert {e.identifier: e.reason for e in plan.edges if e.record_key == "sendgrid:info@acme.de"} == {
        "email:info@acme.de": "generic value: role mailbox",
        "crm:salesforce:003A": "shared mailbox record (generic value: role mailbox)",
        "message:m1@mta": "shared mailbox record (generic value: role mailbox)"}


def test_household_mailbox_pattern_is_generic_from_first_sight(planner):
    for local in ("thesmiths", "familieschulz", "familia.ortega", "woodfamily", "famhaan",
                  "thecampbells2"):
        assert planner._seeded(f"email:{local}@gmail.com") == "generic value: household mailbox"
    assert planner._seeded("email:mary.smith@gmail.com") is None


def test_a_message_sent_to_several_recipients_joins_none_of_them(planner, graph):
    """One Message-ID on the events of two recipients (To: a, b) is the message's, not a
    person's: a reply to it joins the replier to neither recipient."""
    run(planner, graph, [record("sendgrid", "a@x.com", "e1", 1, ["email:a@x.com", "message:m1@mta"]),
                         record("sendgrid", "b@y.com", "e2", 1, ["email:b@y.com", "message:m1@mta"])])
    assert graph.profile_of("sendgrid:a@x.com") != graph.profile_of("sendgrid:b@y.com")
    plan = run(planner, graph, [record("mandrill", "a2@x.com", "e3", 2,
                                       ["email:a2@x.com", "message:m1@mta"])])
    assert plan.generic == {} and plan.rejected_links[0].reason.startswith("generic value")
    assert graph.profile_of("mandrill:a2@x.com") not in {graph.profile_of("sendgrid:a@x.com"),
                                                        graph.profile_of("sendgrid:b@y.com")}
    # one recipient and a reply from another address of the same person do link
    run(planner, graph, [record("sendgrid", "c@x.com", "e4", 3, ["email:c@x.com", "message:m2@mta"]),
                         record("mandrill", "c.private@gmail.com", "e5", 4,
                                ["email:c.private@gmail.com", "message:m2@mta"])])
    assert graph.profile_of("mandrill:c.private@gmail.com") == graph.profile_of("sendgrid:c@x.com")


def test_namesakes_at_one_company_sharing_its_number_stay_apart(planner, graph):
    """Two John Smiths at Acme (john.smith@ and john.smith2@) share the switchboard: the
    names agree, but a company gives each person one address."""
    run(planner, graph, [contact("003A", 1, ["email:john.smith@acme.com", "phone:+4930123456"],
                                 "John", "Smith")])
    plan = run(planner, graph, [contact("003B", 2, ["email:john.smith2@acme.com",
                                                    "phone:+4930123456"], "John", "Smith")])
    assert graph.profile_of("salesforce:003A") != graph.profile_of("salesforce:003B")
    assert [e.reason for e in plan.rejected_links] == [
        "conflict: the profiles have different addresses at one company"]
    # free-mail addresses say nothing: one person has several
    run(planner, graph, [contact("003C", 3, ["email:jsmith@gmail.com", "phone:+15550100001"],
                                 "Jane", "Doe"),
                         contact("003D", 4, ["email:jane.doe@gmail.com", "phone:+15550100001"],
                                 "Jane", "Doe")])
    assert graph.profile_of("salesforce:003C") == graph.profile_of("salesforce:003D")
    # and model links get the same guard
    assert planner.match_blockers([("salesforce:003A", "salesforce:003B")], graph,
                                  frozenset({"crm"})) == [
        "conflict: the profiles have different addresses at one company"]


def test_one_record_carrying_two_company_addresses_joins_them(planner, graph):
    """A contact whose additional email is an alias at the same company: the record itself
    says both addresses are one person's."""
    run(planner, graph, [contact("003A", 1, ["email:j.doe@acme.com"], "Jane", "Doe"),
                         contact("51", 2, ["email:jane.doe@acme.com"], "Jane", "Doe", source="hubspot")])
    assert graph.profile_of("salesforce:003A") != graph.profile_of("hubspot:51")
    run(planner, graph, [contact("00QL", 3, ["email:jane.doe@acme.com", "email:j.doe@acme.com"],
                                 "Jane", "Doe")])
    assert graph.profile_of("salesforce:003A") == graph.profile_of("hubspot:51")


def test_a_mailbox_found_shared_later_is_detached_from_the_person_it_joined(planner, graph):
    """Mail to the Smiths' address carries John's CRM ID (a custom argument) and joins
    him; when Mary's contact shows the address is shared, the mailbox's record leaves John."""
    run(planner, graph, [contact("003J", 1, ["email:js.home@mail.co.uk"], "John", "Smith")])
    run(planner, graph, [record("sendgrid", "js.home@mail.co.uk", "e2", 2,
                                ["email:js.home@mail.co.uk", "crm:salesforce:003J"])])
    assert graph.profile_of("sendgrid:js.home@mail.co.uk") == graph.profile_of("salesforce:003J")
    plan = run(planner, graph, [contact("003M", 3, ["email:js.home@mail.co.uk"], "Mary",
                                        "Smith")])
    assert plan.detached == {"sendgrid:js.home@mail.co.uk": "shared mailbox record (generic "
                             "value: carried by records of 2 different people)"}
    assert sorted(plan.demoted) == [("crm:salesforce:003J", "sendgrid:js.home@mail.co.uk"),
                                    ("email:js.home@mail.co.uk", "salesforce:003J"),
                                    ("email:js.home@mail.co.uk", "sendgrid:js.home@mail.co.uk")]
    mailbox = graph.profile_of("sendgrid:js.home@mail.co.uk")
    assert mailbox not in {graph.profile_of("salesforce:003J"), graph.profile_of("salesforce:003M")}
    assert graph.edges_of(["sendgrid:js.home@mail.co.uk"])["sendgrid:js.home@mail.co.uk"] == {
        "email:js.home@mail.co.uk": False, "crm:salesforce:003J": False}


# --------------------------------------------------------------------------------------
# what a plan says: edges, names, the edges each record ends up with


def test_plan_names_its_records_and_describes_every_edge(planner, graph):
    """A switchboard number found shared: the plan names the batch's records (given and
    family name), gives each new edge its provenance, rule and reason, and shows every
    edge the batch's records will have, the demoted one unlinked."""
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer")])
    plan = run(planner, graph, [contact("003A", 2, [], "Anna", "Meyer"),
                                contact("003B", 3, ["phone:+4930123456"], "Tom", "Berg")])
    assert plan.names == {"salesforce:003A": "anna|meyer", "salesforce:003B": "tom|berg"}
    assert plan.new_records == [("salesforce:003B", 3.0)]
    assert plan.edges == [
        LinkEdge(record_key="salesforce:003B", identifier="crm:salesforce:003B",
                 identifier_type="crm:salesforce", linked=True,
                 rule="deterministic:crm:salesforce", reason="", source="salesforce",
                 event_id="ev-003B-3", at=3.0),
        LinkEdge(record_key="salesforce:003B", identifier="phone:+4930123456",
                 identifier_type="phone", linked=False, rule="rejected",
                 reason="generic value: carried by records of 2 different people",
                 source="salesforce", event_id="ev-003B-3", at=3.0)]
    assert plan.record_edges == {
        "salesforce:003A": {"crm:salesforce:003A": True, "phone:+4930123456": False},
        "salesforce:003B": {"crm:salesforce:003B": True, "phone:+4930123456": False}}
    assert plan.demoted == [("phone:+4930123456", "salesforce:003A")]


def test_identifiers_already_in_the_profile_link_without_a_reason(planner, graph):
    """A second record of Anna carries her email and her phone: the email joins the
    profiles, the phone is then already in it; every edge links, none with a reason."""
    run(planner, graph, [contact("003A", 1, ["email:anna@x.com", "phone:+4930123456"],
                                 "Anna", "Meyer")])
    plan = run(planner, graph, [contact("51", 2, ["email:anna@x.com", "phone:+4930123456"],
                                        "Anna", "Meyer", source="hubspot")])
    assert [(e.identifier, e.linked, e.rule, e.reason) for e in plan.edges] == [
        ("crm:hubspot:51", True, "deterministic:crm:hubspot", ""),
        ("email:anna@x.com", True, "deterministic:email", ""),
        ("phone:+4930123456", True, "deterministic:phone", "")]
    assert graph.profile_of("hubspot:51") == graph.profile_of("salesforce:003A")


def test_a_known_record_counts_what_its_profile_already_has(graph):
    """The limits count the identifiers the profile has in the graph: a known record's new
    event is not a new profile, and an identifier it carries again is skipped, not the
    ones after it."""
    settings = LinkingSettings()
    settings.identifier_rules["phone"] = IdentifierRule(max_per_profile=1, priority=70)
    planner = LinkPlanner(settings)
    run(planner, graph, [record("segment", "u1", "e1", 1, ["user:segment:u1", "phone:+14155552671"])])
    plan = run(planner, graph, [record("segment", "u1", "e2", 2, ["user:segment:u1",
                                                                  "phone:+14155552672"])])
    assert plan.new_records == []
    assert [(e.identifier, e.linked, e.reason) for e in plan.edges] == [
        ("phone:+14155552672", False, "limit: profile already has 1 phone identifier(s)")]


def test_each_new_identifier_counts_towards_the_limit(planner, graph):
    """A record with five phone numbers: the default limit (4) rejects the fifth."""
    phones = [f"phone:+1415555267{d}" for d in range(5)]
    plan = run(planner, graph, [record("segment", "u1", "e1", 1, ["user:segment:u1", *phones])])
    assert [e.identifier for e in plan.rejected_links] == [phones[4]]
    assert plan.rejected_links[0].reason == "limit: profile already has 4 phone identifier(s)"


def test_a_new_anonymous_record_joins_a_known_person_through_a_cookie(planner, graph):
    """Shareability: a new record with only a cookie is anonymous, so the cookie Alice's
    profile has links it to her."""
    run(planner, graph, [record("segment", "alice", "e1", 1, ["user:segment:alice", "cookie:c1"])])
    plan = run(planner, graph, [record("segment", "anon-2", "e2", 2, ["cookie:c1"])])
    assert all(e.linked for e in plan.edges)
    assert graph.profile_of("segment:anon-2") == graph.profile_of("segment:alice")


def test_a_chain_of_links_in_one_batch_reaches_the_first_profile(planner, graph):
    """New records of one batch each sharing an address with the one before, the last
    carrying the first one's address (an existing contact's): one profile."""
    run(planner, graph, [contact("003X", 1, ["email:a@x.com"], "Anna", "Meyer")])
    plan = run(planner, graph, [
        record("segment", "r", "e2", 2, ["email:a@x.com", "email:b@x.com"]),
        record("segment", "s", "e3", 3, ["email:b@x.com", "email:c@x.com"]),
        record("segment", "t", "e4", 4, ["email:a@x.com"]),
    ])
    assert all(e.linked for e in plan.edges)
    assert len({graph.profile_of(k) for k in ("salesforce:003X", "segment:r", "segment:s",
                                              "segment:t")}) == 1


def test_names_gathered_by_a_join_in_the_batch_still_guard_the_next_join(graph):
    """Tom's record first joins a nameless app user (their login), then carries Anna's
    phone: the joined profile is Tom's, so the phone does not join Anna (the conflict guard
    on its own, without generic learning)."""
    settings = LinkingSettings()
    settings.generic.enabled = False
    planner = LinkPlanner(settings)
    run(planner, graph, [record("segment", "u1", "e1", 1, ["user:segment:u1", "email:login@x.com"]),
                         contact("003A", 2, ["phone:+4930123456"], "Anna", "Meyer")])
    plan = run(planner, graph, [contact("79", 3, ["email:login@x.com", "phone:+4930123456"],
                                        "Tom", "Berg", source="hubspot")])
    assert [(e.identifier, e.linked, e.reason) for e in plan.edges] == [
        ("crm:hubspot:79", True, ""),
        ("email:login@x.com", True, ""),
        ("phone:+4930123456", False, "conflict: the profiles name different people")]
    assert graph.profile_of("hubspot:79") == graph.profile_of("segment:u1")
    assert graph.profile_of("hubspot:79") != graph.profile_of("salesforce:003A")


def test_addresses_gathered_by_a_join_in_the_batch_still_guard_the_next_join(planner, graph):
    """John Smith (john.smith@acme.com) joins a nameless app user through its phone, then
    carries the phone of the other John Smith at Acme (john.smith2@): still two people."""
    run(planner, graph, [record("segment", "u1", "e1", 1, ["user:segment:u1", "phone:+4930111111"]),
                         contact("003B", 2, ["email:john.smith2@acme.com", "phone:+4930222222"],
                                 "John", "Smith")])
    plan = run(planner, graph, [contact("003A", 3, ["email:john.smith@acme.com",
                                                    "phone:+4930111111", "phone:+4930222222"],
                                        "John", "Smith")])
    assert [(e.identifier, e.linked, e.reason) for e in plan.rejected_links] == [
        ("phone:+4930222222", False,
         "conflict: the profiles have different addresses at one company")]
    assert graph.profile_of("salesforce:003A") == graph.profile_of("segment:u1")
    assert graph.profile_of("salesforce:003A") != graph.profile_of("salesforce:003B")


def test_addresses_at_different_companies_say_nothing(planner, graph):
    """Jane Doe changed jobs (acme.com, then globex.com) and kept her mobile: one person."""
    run(planner, graph, [contact("003A", 1, ["email:jane.doe@acme.com", "phone:+4915112345678"],
                                 "Jane", "Doe")])
    plan = run(planner, graph, [contact("51", 2, ["email:jane.doe@globex.com",
                                                  "phone:+4915112345678"], "Jane", "Doe",
                                        source="hubspot")])
    assert all(e.linked for e in plan.edges)
    assert graph.profile_of("hubspot:51") == graph.profile_of("salesforce:003A")


# --------------------------------------------------------------------------------------
# generic values: what decides, and what it demotes


def test_a_listed_value_is_generic_from_first_sight(graph):
    """A company's main number listed in ``generic.values`` links nobody, even the first
    record that carries it."""
    settings = LinkingSettings()
    settings.generic.values = [" Phone:+4930999000 "]
    planner = LinkPlanner(settings)
    plan = run(planner, graph, [contact("003A", 1, ["phone:+4930999000"], "Anna", "Meyer")])
    assert plan.generic == {"phone:+4930999000": "generic value: listed as shared"}
    assert plan.rejected_links[0].reason == "generic value: listed as shared"


@pytest.mark.parametrize("local", ["info", "customer.service", "customer-service",
                                   "customer_service", "kunden-service", "front_desk"])
def test_role_mailboxes_are_generic_however_the_role_is_written(planner, graph, local):
    """Role mailboxes match the role list ignoring dots, hyphens and underscores."""
    plan = run(planner, graph, [contact("003A", 1, [f"email:{local}@hotel-adler.de"], "Anna",
                                        "Meyer")])
    assert plan.generic == {f"email:{local}@hotel-adler.de": "generic value: role mailbox"}


def test_a_value_already_generic_does_not_stop_the_others_being_judged(planner, graph):
    """The batch carries a known switchboard number first, then an address a couple
    shares: the address is found generic too."""
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer"),
                         contact("003B", 2, ["phone:+4930123456"], "Tom", "Berg")])
    plan = run(planner, graph, [contact("003C", 3, ["phone:+4930123456", "email:eva.max@kurz.de"],
                                        "Eva", "Kurz"),
                                contact("003D", 4, ["email:eva.max@kurz.de"], "Max", "Kurz")])
    assert plan.generic == {"email:eva.max@kurz.de": "generic value: carried by records of 2 "
                                                  "different people"}


def test_the_newest_name_of_a_carrier_decides_whether_a_value_is_generic(planner, graph):
    """A contact without a name shared Anna's number (one person so far); its next event
    names it Tom Berg, and a nameless app record carries the number in the same batch: the
    number is now carried by two people."""
    run(planner, graph, [contact("003A", 1, ["phone:+4930123456"], "Anna", "Meyer"),
                         record("salesforce", "003B", "e2", 2, ["crm:salesforce:003B",
                                                                "phone:+4930123456"])])
    assert graph.profile_of("salesforce:003B") == graph.profile_of("salesforce:003A")
    plan = run(planner, graph, [contact("003B", 3, [], "Tom", "Berg"),
                                record("segment", "u1", "e4", 4, ["user:segment:u1",
                                                                  "phone:+4930123456"])])
    assert plan.generic == {"phone:+4930123456": "generic value: carried by records of 2 "
                                                 "different people"}
    assert graph.profile_of("salesforce:003B") != graph.profile_of("salesforce:003A")


def test_a_mailbox_record_in_the_batch_that_finds_it_shared_links_nothing(planner, graph):
    """The Smiths' address joined John through mail carrying his CRM ID; the batch that
    shows the address is shared (Mary's contact) also has new mail to it: every edge of the
    mailbox's record, old and new, ends up unlinked."""
    run(planner, graph, [contact("003J", 1, ["email:js.home@mail.co.uk"], "John", "Smith"),
                         record("sendgrid", "js.home@mail.co.uk", "e2", 2,
                                ["email:js.home@mail.co.uk", "crm:salesforce:003J"])])
    plan = run(planner, graph, [contact("003M", 3, ["email:js.home@mail.co.uk"], "Mary", "Smith"),
                                record("sendgrid", "js.home@mail.co.uk", "e4", 4,
                                       ["email:js.home@mail.co.uk", "message:m7@mta"])])
    why = "generic value: carried by records of 2 different people"
    assert plan.detached == {"sendgrid:js.home@mail.co.uk": f"shared mailbox record ({why})"}
    assert plan.record_edges["sendgrid:js.home@mail.co.uk"] == {
        "email:js.home@mail.co.uk": False, "crm:salesforce:003J": False, "message:m7@mta": False}
    assert {e.identifier: e.reason for e in plan.edges} == {
        "crm:salesforce:003M": "", "email:js.home@mail.co.uk": why,
        "message:m7@mta": f"shared mailbox record ({why})"}
    assert graph.profile_of("sendgrid:js.home@mail.co.uk") != graph.profile_of("salesforce:003J")


# --------------------------------------------------------------------------------------
# probabilistic and reviewed links (match_blockers)


def test_match_blockers_replay_links_through_records_the_graph_does_not_have_yet(planner, graph):
    """Records new to the graph can be paired: a new record paired with Anna is Anna's when
    a later pair joins it to another new record paired with Tom."""
    run(planner, graph, [contact("003A", 1, [], "Anna", "Meyer"),
                         contact("003T", 2, [], "Tom", "Berg")])
    pairs = [("segment:n1", "salesforce:003A"), ("segment:n2", "salesforce:003T"),
             ("segment:n1", "segment:n2")]
    assert planner.match_blockers(pairs, graph) == [
        "", "", "conflict: the profiles name different people"]


def test_match_blockers_keep_refused_pairs_apart(planner, graph):
    """A refused pair is not replayed as a link: Tom, refused with Anna, is still refused
    with Anne (who agrees with Anna)."""
    run(planner, graph, [contact("003A", 1, [], "Anna", "Meyer"),
                         contact("003B", 2, [], "Tom", "Meyer"),
                         contact("003C", 3, [], "Anne", "Meyer")])
    pairs = [("salesforce:003A", "salesforce:003B"), ("salesforce:003B", "salesforce:003C")]
    assert planner.match_blockers(pairs, graph) == [
        "conflict: the profiles name different people"] * 2


def test_match_blockers_let_records_of_one_profile_pass(planner, graph):
    """Two records already in one profile: nothing to refuse (no limit is doubled)."""
    run(planner, graph, [record("hubspot", "1", "e1", 1, ["crm:hubspot:1", "email:a@x.com"]),
                         record("segment", "u", "e2", 2, ["user:segment:u", "email:a@x.com"])])
    assert planner.match_blockers([("hubspot:1", "segment:u")], graph) == [""]


def test_match_blockers_apply_limits_except_for_exempt_kinds(planner, graph):
    """Two HubSpot contacts (limit 1) the model finds to be one person: refused by the
    limit, unless CRM IDs are exempt; three Salesforce contacts (limit 2): the replayed
    first link counts, so the third is refused."""
    run(planner, graph, [record("hubspot", "1", "e1", 1, ["crm:hubspot:1"]),
                         record("hubspot", "2", "e2", 2, ["crm:hubspot:2"]),
                         record("salesforce", "003A", "e3", 3, ["crm:salesforce:003A"]),
                         record("salesforce", "003B", "e4", 4, ["crm:salesforce:003B"]),
                         record("salesforce", "003C", "e5", 5, ["crm:salesforce:003C"])])
    hubspot = [("hubspot:1", "hubspot:2")]
    assert planner.match_blockers(hubspot, graph) == [
        "limit: merge would give 2 crm:hubspot identifiers (max 1)"]
    assert planner.match_blockers(hubspot, graph, frozenset({"crm"})) == [""]
    salesforce = [("salesforce:003A", "salesforce:003B"), ("salesforce:003A", "salesforce:003C")]
    assert planner.match_blockers(salesforce, graph) == [
        "", "limit: merge would give 3 crm:salesforce identifiers (max 2)"]


def test_match_blockers_need_one_name_check_per_pair(planner, graph):
    """``check_names`` is read pair by pair: a list of another length is an error, not a
    silently unchecked pair."""
    run(planner, graph, [contact("003A", 1, [], "Anna", "Meyer"),
                         contact("003B", 2, [], "Tom", "Meyer")])
    with pytest.raises(ValueError):
        planner.match_blockers([("salesforce:003A", "salesforce:003B")], graph,
                               check_names=[True, True])
