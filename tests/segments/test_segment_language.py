"""The text form: what parses to what, canonical printing, and syntax errors."""

from __future__ import annotations

import re

import pytest

import idgraph.segments
from idgraph.segments import SegmentSyntaxError, parse, to_text
from idgraph.segments.ast import (
    And,
    Compare,
    Consent,
    Duration,
    EventAggregate,
    EventQuery,
    EventSequence,
    InList,
    Not,
    Or,
    Presence,
    Region,
)


def test_precedence_is_not_then_and_then_or():
    node = parse('not a = 1 and b = 2 or c = 3')
    assert node == Or((And((Not(Compare("a", "=", 1)), Compare("b", "=", 2))),
                       Compare("c", "=", 3)))
    assert to_text(node) == "not a = 1 and b = 2 or c = 3"


def test_chains_are_flat_and_parentheses_that_group_are_kept():
    assert parse("a = 1 and b = 2 and c = 3") == And(
        (Compare("a", "=", 1), Compare("b", "=", 2), Compare("c", "=", 3)))
    nested = parse("(a = 1 and b = 2) and c = 3")
    assert nested == And((And((Compare("a", "=", 1), Compare("b", "=", 2))),
                          Compare("c", "=", 3)))
    assert to_text(nested) == "(a = 1 and b = 2) and c = 3"
    assert to_text(parse("((a = 1))")) == "a = 1"
    assert to_text(parse("a = 1 and (b = 2 or c = 3)")) == "a = 1 and (b = 2 or c = 3)"


def test_the_full_event_chain_in_any_order_prints_canonically():
    node = parse('event("purchase").within(30d).source("segment")\n'
                 '  .where(amount > 100).count() >= 2')
    assert node == EventAggregate(
        EventQuery("purchase", Compare("amount", ">", 100), "segment", Duration(30, "d")),
        "count", ">=", 2)
    assert to_text(node) == ('event("purchase").where(amount > 100).source("segment")'
                             '.within(30d).count() >= 2')


def test_a_bare_event_means_at_least_once():
    assert parse('event("open").within(7d)') == parse('event("open").within(7d).count() >= 1')


def test_sequences_and_values():
    assert parse('event("signup") then event("purchase") within 2h') == EventSequence(
        (EventQuery("signup"), EventQuery("purchase")), Duration(2, "h"))
    assert parse('x in ("a", 1, -2.5e3)') == InList("x", "in", ("a", 1, -2500.0))
    assert parse('region not_in ("eu", "us")') == Region("not_in", ("eu", "us"))
    assert parse('consent("email") = unknown') == Consent("email", "unknown")


def test_strings_escape_and_odd_names_are_quoted():
    node = Compare("in", "=", 'say "hi"\n\\ é')
    assert to_text(node) == 'attribute("in") = "say \\"hi\\"\\n\\\\ é"'
    assert parse(to_text(node)) == node
    assert to_text(Presence("first name", "exists")) == 'attribute("first name") exists'
    assert to_text(parse('has_identifier("crm:salesforce")')) == \
        'has_identifier("crm:salesforce")'


def test_comments_and_line_breaks_are_free():
    assert parse('# EU customers\nregion in ("eu")  # home region\n and a exists') == And(
        (Region("in", ("eu",)), Presence("a", "exists")))


@pytest.mark.parametrize(("text", "line", "column", "words"), [
    ('country = ', 1, 11, ["a number", "a string in double quotes"]),
    ('country == "DE"', 1, 10, ["a number", "a string in double quotes"]),
    ('country = "DE"\nand city = Berlin', 2, 12, ["a number"]),
    ('x between 1 5', 1, 13, ['"and"']),
    ('a = 1 b = 2', 1, 7, ['"and"', '"or"', "the end of the definition"]),
    ('event("x").count() >= ', 1, 23, ["a number"]),
    ('event("x").within(30)', 1, 19, ["a duration such as 30d, 12h or 15m"]),
    ('consent("email") = maybe', 1, 20, ['"granted"', '"denied"', '"unknown"']),
    ('(a = 1', 1, 7, ['")"']),
    ('a = "DE', 1, 5, []),
])
def test_syntax_errors_name_line_column_and_what_was_expected(text, line, column, words):
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    for word in words:
        assert word in error.expected, str(error)
    assert f"line {line}, column {column}" in str(error)


@pytest.mark.parametrize(("text", "problem", "column"), [
    ('event("x").within(401d).count() > 1', "longer than 400 days", 19),
    ('a within_last 9601h', "longer than 400 days", 15),
    ('a matches "(unclosed"', "invalid regular expression '(unclosed'", 1),
    ('a matches "' + "x" * 1001 + '"', "at most 1000", 1),
    ('a = "\\q"', "invalid string", 5),
    ('consent("email") != granted', "compared with =", 18),
    ('event("x").within(3d).within(4d)', ".within(...) twice", 22),
    ('event("x").where(in_segment("y"))', "event properties only", 1),
    ('event("x").sum(amount) > "a lot"', "must be a number", 1),
    ('birth_date before "yesterday"', "ISO date", 1),
    ('event("x").within(0d)', "whole number >= 1", 19),
    ('identifier_count(device) >= 1.5', "whole number", 1),
])
def test_values_the_language_refuses_are_located(text, problem, column):
    with pytest.raises(SegmentSyntaxError) as caught:
        parse(text)
    assert problem in caught.value.problem
    assert (caught.value.line, caught.value.column) == (1, column)


def _documented_examples() -> list[str]:
    """Every example line of the package docstring (the README's language section)."""
    doc = idgraph.segments.__doc__
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", doc)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    examples = [line.split("  #")[0].strip() for line in lines if line]
    return [e for e in examples if not e.startswith("and ")]


def test_every_documented_example_parses():
    examples = _documented_examples()
    assert len(examples) > 30
    for example in examples:
        assert parse(to_text(parse(example))) == parse(example), example
    whole = re.search(r"days and are not churned\"::\n\n((?:    .*\n)+)", idgraph.segments.__doc__)
    assert isinstance(parse(whole.group(1)), And)
