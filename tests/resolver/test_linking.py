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
    assert ("crm:salesforce:003J", "sendgrid:js.home@mail.co.uk") in plan.demoted
    mailbox = graph.profile_of("sendgrid:js.home@mail.co.uk")
    assert mailbox not in {graph.profile_of("salesforce:003J"), graph.profile_of("salesforce:003M")}
    assert graph.edges_of(["sendgrid:js.home@mail.co.uk"])["sendgrid:js.home@mail.co.uk"] == {
        "email:js.home@mail.co.uk": False, "crm:salesforce:003J": False}
