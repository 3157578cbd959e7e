'''Segments: who is in an audience, in a language marketers can read.

A segment is one condition over a unified profile: its attributes, its events, its
identifiers, its consent, its region and its other segments. This package holds the
language (:mod:`.ast` the syntax tree and its JSON form, :mod:`.language` the text form),
the evaluator (:mod:`.evaluate`) and the ``in_segment`` dependency graph
(:mod:`.dependencies`). It stores nothing and imports only :mod:`idgraph.core`, the standard
library, lark (the parser) and RE2 (``matches``); the engine, the stores and the gRPC
service build on it.

Writing a segment
-----------------

Conditions combine with ``and``, ``or``, ``not`` and parentheses (``not`` binds tighter
than ``and``, which binds tighter than ``or``). Text goes in double quotes (``"DE"``, with
``\\"`` for a quote inside); numbers are bare (``100``, ``2.5``); ``#`` starts a comment.
Line breaks are free. Keywords are lower case.

Attributes (``given_name``, ``family_name``, ``birth_date``, ``city``, ``country``,
``company``, ``job_title``... as the profile shows them)::

    country = "DE"
    country != "DE"                    # has a country, and it is not DE
    country in ("DE", "AT", "CH")
    country not_in ("US", "CA")
    age >= 18
    age between 18 and 34              # both ends included
    company contains "GmbH"
    email ends_with "@example.com"
    job_title starts_with "Head of"
    postal_code matches "^10[0-9]{3}$" # a regular expression (RE2), found anywhere in the value
    phone exists
    company absent                     # no company at all
    birth_date before "2000-01-01"
    birth_date after "1990-12-31"
    last_order_date within_last 30d    # a date in the last 30 days
    renewal_date within_next 7d        # a date in the coming 7 days

Numbers compare as numbers when both sides are numbers (``"18.0" = 18``), dates as dates
when both sides are ISO dates, anything else as text, case-sensitively (``"DE"`` is not
``"de"``). A profile without the attribute matches no condition on it except ``absent``:
``country != "DE"`` does not pick profiles that have no country (write
``country != "DE" or country absent`` for that). An attribute whose name is a keyword is
written ``attribute("region")``.

Durations are a whole number of minutes (``15m``), hours (``12h``) or days (``30d``), at
most 400 days.

Events (what a person did; ``.where``, ``.source`` and ``.within`` are optional, in any
order)::

    event("purchase").where(amount > 100).source("segment").within(30d).count() >= 2
    event("purchase").within(90d).sum(amount) >= 500
    event("purchase").within(1d).max(amount) > 1000
    event("purchase").min(amount) < 5
    event("open").last(campaign) = "spring-sale"
    event("page_viewed").within(7d).distinct(url) >= 10
    event("open").within(30d)          # at least once (same as .count() >= 1)
    did_not event("login").within(14d)         # not once in the last 14 days
    event("signup") then event("purchase") within 2h
    event("cart_added") then event("checkout") then event("purchase") within 1d

``.within(30d)`` means "in the last 30 days"; a person leaves such a segment on time when
their last qualifying event gets too old, with no new data. ``.where(...)`` takes the same
conditions as attributes, on the event's properties. ``count()`` counts events; ``sum``,
``min`` and ``max`` use the property's numbers; ``last`` is the property's value on the
latest event; ``distinct`` counts different values. ``A then B within 2h``: a B at most two
hours after an A.

Identifiers, consent, region and other segments::

    has_identifier(email)
    identifier_count(device) >= 2
    has_identifier(crm)                        # any CRM ID (crm:salesforce, crm:hubspot...)
    has_identifier("crm:salesforce")           # a CRM ID from Salesforce
    identifier_from(salesforce)                # Salesforce contributed an identifier
    consent("email") = granted                 # also: denied, unknown (never asked)
    region in ("eu")
    in_segment("Churned")

``consent("email") = unknown`` is not granted: a marketing email segment says
``consent("email") = granted``. A segment may use other segments but not in a loop, and a
segment other segments use cannot be deleted.

A whole definition, "EU customers with a CRM record who opened an email in the last 30
days and are not churned"::

    region in ("eu")
    and has_identifier(crm)
    and event("open").within(30d)
    and consent("email") = granted
    and not in_segment("Churned")

Invalid text is refused with its line, column and what was expected, for example
``line 1, column 10: unexpected '='; expected one of: a number, a string in double quotes``.
'''

from idgraph.segments.ast import Node, from_json, to_json
from idgraph.segments.dependencies import (
    SegmentDependencies,
    event_types,
    fact_keys,
    reads,
    references,
)
from idgraph.segments.errors import (
    InvalidSegmentError,
    SegmentCycleError,
    SegmentError,
    SegmentInUseError,
    SegmentSyntaxError,
    UnknownSegmentError,
)
from idgraph.segments.evaluate import Event, ProfileFacts, Result, evaluate, intern_leaves
from idgraph.segments.language import parse, to_text

__all__ = [
    "Event",
    "InvalidSegmentError",
    "Node",
    "ProfileFacts",
    "Result",
    "SegmentCycleError",
    "SegmentDependencies",
    "SegmentError",
    "SegmentInUseError",
    "SegmentSyntaxError",
    "UnknownSegmentError",
    "evaluate",
    "event_types",
    "fact_keys",
    "from_json",
    "intern_leaves",
    "parse",
    "reads",
    "references",
    "to_json",
    "to_text",
]
