"""The evaluator: each operator's true and false cases, windows' edges, deadlines, clauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from idgraph.segments import Event, ProfileFacts, evaluate, parse

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def holds(text: str, facts: ProfileFacts, now: datetime = NOW) -> bool:
    return evaluate(parse(text), facts, now).matched


PERSON = ProfileFacts(
    attributes={"country": "DE", "age": "34", "score": "7.50", "city": "Berlin",
                "email": "jane@example.com", "birth_date": "1990-05-17", "code": "A-123",
                "last_order": (NOW - 10 * DAY).date().isoformat(),
                "renewal": (NOW + 3 * DAY).isoformat()},
    identifiers=[("email", "jane@example.com"), ("device", "d1"), ("device", "d2"),
                 ("device", "d2"), ("crm:salesforce", "003A")],
    identifier_sources={"salesforce", "segment"},
    consent={"email": True, "sms": False},
    region="eu",
    memberships=lambda name: name == "VIP",
)


@pytest.mark.parametrize(("text", "expected"), [
    ('country = "DE"', True), ('country = "de"', False), ('country != "FR"', True),
    ('country != "DE"', False),
    ("age > 30", True), ("age >= 34", True), ("age < 34", False), ("age <= 33.9", False),
    ('age = "34.0"', True),  # both numbers: compared as numbers
    ("score = 7.5", True), ('city < "Bonn"', True),  # text: code-point order
    ('birth_date < "2000-01-01"', True),  # both dates: compared as dates
    ("age between 30 and 34", True), ("age between 35 and 40", False),
    ('country in ("AT", "DE")', True), ('country in ("AT")', False),
    ('country not_in ("AT", "FR")', True), ('country not_in ("DE")', False),
    ('city contains "erl"', True), ('city contains "ERL"', False),
    ('email starts_with "jane@"', True), ('email ends_with ".org"', False),
    ('code matches "^[A-Z]-[0-9]{3}$"', True), ('code matches "^[0-9]"', False),
    ("city exists", True), ("company exists", False),
    ("company absent", True), ("city absent", False),
    ('birth_date before "2000-01-01"', True), ('birth_date after "2000-01-01"', False),
    ('city before "2000-01-01"', False),  # not a date
    ("last_order within_last 30d", True), ("last_order within_last 7d", False),
    ("renewal within_next 7d", True), ("renewal within_next 2d", False),
    ("last_order within_next 30d", False),
    ("has_identifier(email)", True), ("has_identifier(phone)", False),
    ("has_identifier(crm)", True), ('has_identifier("crm:hubspot")', False),
    ("identifier_count(device) >= 2", True), ("identifier_count(device) > 2", False),
    ("identifier_from(salesforce)", True), ("identifier_from(hubspot)", False),
    ('consent("email") = granted', True), ('consent("sms") = granted', False),
    ('consent("sms") = denied', True),
    ('consent("push") = unknown', True), ('consent("push") = granted', False),
    ('region in ("eu")', True), ('region in ("us", "apac")', False),
    ('region not_in ("us")', True),
    ('in_segment("VIP")', True), ('in_segment("Churned")', False),
    ('not in_segment("Churned") and (age < 18 or country = "DE")', True),
])
def test_operators(text, expected):
    assert holds(text, PERSON) is expected


@pytest.mark.parametrize("text", [
    'company = "ACME"', 'company != "ACME"', "company < 5", "company between 1 and 9",
    'company in ("ACME")', 'company not_in ("ACME")', 'company contains "A"',
    'company starts_with "A"', 'company matches ".*"', "company exists",
    'company before "2100-01-01"', "company within_last 400d",
])
def test_a_missing_attribute_matches_nothing_but_absent(text):
    assert not holds(text, PERSON)
    assert holds("not " + text, PERSON)  # not is the plain negation
    assert holds("company absent", PERSON)


def test_unknown_region_is_neither_in_nor_outside():
    nowhere = ProfileFacts(region="")
    assert not holds('region in ("eu")', nowhere)
    assert not holds('region not_in ("eu")', nowhere)


def at(days: float = 0.0, **kwargs) -> datetime:
    return NOW + timedelta(days=days, **kwargs)


SHOPPER = ProfileFacts(events=[
    Event("purchase", "segment", at(-1), {"amount": 120.0, "sku": "a"}),
    Event("purchase", "segment", at(-5), {"amount": 80.0, "sku": "b"}),
    Event("purchase", "shopify", at(-20), {"amount": 300.0, "sku": "a"}),
    Event("purchase", "segment", at(-40), {"amount": "15", "sku": "c"}),
    Event("login", "web", at(-20)),
    Event("signup", "web", at(-30)),
    Event("email_opened", "sendgrid", at(-2), {"campaign": "spring"}),
])


@pytest.mark.parametrize(("text", "expected"), [
    ('event("purchase").count() >= 4', True),
    ('event("purchase").within(30d).count() = 3', True),
    ('event("purchase").where(amount > 100).source("segment").within(30d).count() >= 2', False),
    ('event("purchase").where(amount > 100).within(30d).count() >= 2', True),
    ('event("purchase").source("segment").count() = 3', True),
    ('event("purchase").within(30d).sum(amount) = 500', True),
    ('event("purchase").sum(amount) = 515', True),  # "15" is a number too
    ('event("purchase").within(30d).min(amount) = 80', True),
    ('event("purchase").within(30d).max(amount) > 300', False),
    ('event("purchase").last(sku) = "a"', True),
    ('event("purchase").within(30d).distinct(sku) = 2', True),
    ('event("purchase").within(1d).min(amount) < 1000', False),  # no event in the window
    ('event("refund").sum(amount) = 0', True),
    ('event("email_opened").where(campaign = "spring")', True),
    ('did_not event("login").within(14d)', True),
    ('did_not event("login").within(30d)', False),
    ('event("signup") then event("purchase")', True),
    ('event("signup") then event("login") within 10d', True),
    ('event("signup") then event("login") within 9d', False),
    ('event("login") then event("signup")', False),
    ('event("purchase").source("segment") then event("purchase").source("segment") within 4d',
     True),
    ('event("login") then event("login")', False),  # two distinct events are needed
])
def test_events(text, expected):
    assert holds(text, SHOPPER) is expected


def test_a_window_includes_its_far_edge_exactly_until_it_leaves():
    facts = ProfileFacts(events=[Event("open", "web", at(-30))])
    result = evaluate(parse('event("open").within(30d)'), facts, NOW - timedelta(seconds=1))
    assert result.matched and result.next_change == NOW
    assert not holds('event("open").within(30d)', facts)  # 30 days old: out (now - 30d < t)
    assert holds('did_not event("open").within(30d)', facts)


def test_deadlines_of_windows():
    facts = ProfileFacts(
        attributes={"seen": at(-10).isoformat(), "renewal": at(5).isoformat()},
        events=[Event("open", "web", at(-3)), Event("open", "web", at(-1)),
                Event("open", "web", at(2))])  # a future event enters when it happens
    last = evaluate(parse("seen within_last 30d"), facts, NOW)
    assert last.matched and last.next_change == at(20)
    assert not evaluate(parse("seen within_last 30d"), facts, at(20)).matched
    soon = evaluate(parse("renewal within_next 2d"), facts, NOW)
    assert not soon.matched and soon.next_change == at(3)
    assert evaluate(parse("renewal within_next 2d"), facts, at(3)).matched
    opened = evaluate(parse('event("open").within(7d).count() >= 2'), facts, NOW)
    assert opened.matched and opened.next_change == at(2)
    assert evaluate(parse("seen exists"), facts, NOW).next_change is None
    both = evaluate(parse('seen within_last 30d and renewal within_next 2d'), facts, NOW)
    assert not both.matched and both.next_change == at(3)  # when the false part may turn
    either = evaluate(parse('seen within_last 30d or renewal within_next 30d'), facts, NOW)
    assert either.matched and either.next_change == at(20)  # when the last true part ends
    fixed = evaluate(parse('seen within_last 30d and seen absent'), facts, NOW)
    assert not fixed.matched and fixed.next_change is None  # "absent" never turns by itself


def test_clauses_name_what_held():
    result = evaluate(parse('country = "DE" and (age > 60 or consent("email") = granted) '
                            'and not in_segment("Churned")'), PERSON, NOW)
    assert result.matched
    assert result.clauses == ['country = "DE"', 'consent("email") = granted',
                              'not in_segment("Churned")']
    assert evaluate(parse('country = "FR"'), PERSON, NOW).clauses == []


def test_naive_times_are_utc():
    facts = ProfileFacts(events=[Event("open", "web", datetime(2024, 5, 31, 12, 0))])
    result = evaluate(parse('event("open").within(2d)'), facts, datetime(2024, 6, 1, 12, 0))
    assert result.matched and result.next_change == datetime(2024, 6, 2, 12, 0, tzinfo=UTC)


def test_matches_runs_in_linear_time_on_a_pattern_that_backtracks_in_python():
    import time

    # with Python's re, (a+)+$ on 30 a's and a b takes minutes; RE2 answers at once
    facts = ProfileFacts(attributes={"code": "a" * 30_000 + "b"})
    started = time.perf_counter()
    result = evaluate(parse('code matches "(a+)+$"'), facts, NOW)
    assert not result.matched
    assert time.perf_counter() - started < 0.5


def test_matches_refuses_what_re2_cannot_run_in_linear_time():
    from idgraph.segments import SegmentError

    with pytest.raises(SegmentError, match="backreferences"):
        parse(r'code matches "(a)\\1"')
    with pytest.raises(SegmentError, match="lookaround"):
        parse('code matches "(?=x)y"')


def test_interned_definitions_evaluate_a_shared_leaf_once_per_profile(monkeypatch):
    import importlib

    from idgraph.segments import intern_leaves
    from idgraph.segments.ast import Consent

    evaluate_module = importlib.import_module("idgraph.segments.evaluate")
    calls = []
    real = evaluate_module._LEAVES[Consent]
    monkeypatch.setitem(evaluate_module._LEAVES, Consent,
                        lambda n, f, now: calls.append(n) or real(n, f, now))
    trees = intern_leaves({"A": parse('consent("email") = granted and country = "DE"'),
                           "B": parse('consent("email") = granted or country = "AT"')})
    facts = ProfileFacts(attributes={"country": "AT"}, consent={"email": True})
    assert [evaluate(trees[n], facts, NOW).matched for n in "AB"] == [False, True]
    assert len(calls) == 1
    # another time is another evaluation: nothing is reused across it
    evaluate(trees["A"], facts, NOW + timedelta(days=1))
    assert len(calls) == 2


def test_reusing_facts_at_another_time_answers_for_that_time():
    facts = ProfileFacts(events=[Event("open", "sendgrid", NOW - timedelta(days=2))])
    tree = parse('event("open").within(3d)')
    assert evaluate(tree, facts, NOW).matched
    assert not evaluate(tree, facts, NOW + timedelta(days=2)).matched
    assert evaluate(parse('event("open").within(5d)'), facts, NOW + timedelta(days=2)).matched
