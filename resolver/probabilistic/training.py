"""Training a Fellegi-Sunter model with Splink on DuckDB, and refusing degenerate ones.

:func:`build_settings` chooses comparisons and blocking rules for person/contact data from
the matching columns that are actually filled (:mod:`idgraph.resolver.probabilistic.features`):

* names: the levels of Splink's ``NameComparison`` (exact, Jaro-Winkler 0.92 / 0.88 /
  0.70) without term-frequency adjustment;
* a swapped given and family name (forms filled in the wrong order) as its own level, so
  such a pair is not judged on two disagreeing names alone;
* birth date: ``DateOfBirthComparison`` (exact, one edit, within a month, a year, ten years);
* email: exact address only (levels on the local part were measured to double-count the
  name, which usually spells it: namesakes at two companies looked like one person);
* phone, national ID: exact or one edit (Damerau-Levenshtein);
* company: exact or Jaro-Winkler 0.9 / 0.8;
* address: street, postal code, city and state as one comparison (same street and postal
  code; similar street and postal code within an edit; same postal code; same city; same
  state), so one shared home counts once.

Training follows Splink's guidance: the prior (probability that two random records match)
from deterministic rules with an assumed recall, u by random sampling, and m by
expectation maximisation on blocks where true matches are a fair share of the pairs
(same full name; same birth date / email / phone / national ID), so every comparison is
estimated by a session that does not block on it. The prior's deterministic rules are the
identifiers (email, phone, national ID) that at least :data:`MIN_SHARED_PAIRS` pairs of
named records share, else the full name with the birth date.

A degenerate result is refused with :class:`DegenerateModelError` naming what went wrong:

* :func:`check_model`: a comparison never estimated or carrying no evidence, EM collapsed
  onto one field, an impossible prior;
* when an identifier is shared by enough pairs: those pairs must score as matches
  (:func:`_check_sure_matches`); a file without one (names and birth dates) is not
  judged on a handful of pairs that happen to share a phone;
* always: records scored against an exact copy of themselves must match
  (:func:`_check_exact_duplicates`), and the model must be sure of some pair of its
  training data (:func:`_check_sure_of_some_pair`).

An identifier column too sparse to estimate (a few rows filled) is left out with a
warning instead. Last, :func:`model_thresholds` derives the link threshold the model's
own evidence supports (its expected false-link rate, and no single agreeing field), saved
in the training report for the matcher (``matching.thresholds = "model"``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idgraph.core.errors import IdGraphError
from idgraph.core.private_files import make_private_dir
from idgraph.resolver.probabilistic.model import Comparison, read_model

log = logging.getLogger(__name__)

#: A column takes part in the model when at least this share of rows fills it.
MIN_FILL = 0.01
#: Evidence (Kullback-Leibler divergence of m from u, in bits) below which a comparison is
#: considered to separate nothing.
MIN_SEPARATION = 0.05


class DegenerateModelError(IdGraphError):
    """Training produced a model that must not be used; the message says why."""


@dataclass(slots=True)
class TrainingReport:
    """What training did, saved beside the model."""

    rows: int
    columns: list[str]
    em_blocking_rules: list[str]
    seconds: float
    separation: dict[str, float] = field(default_factory=dict)
    """comparison -> evidence it carries (KL divergence of m from u, bits)."""
    warnings: list[str] = field(default_factory=list)
    blocking_rules: list[str] = field(default_factory=list)
    """Prediction blocking rules kept."""
    blocking_pairs: dict[str, int] = field(default_factory=dict)
    """Pairs each candidate rule generates on the training data (dropped ones included)."""
    sure_match_share: float | None = None
    """Share of the named pairs sharing an identifier (email, phone, national ID; one that
    at least ``MIN_SHARED_PAIRS`` pairs share) scored >= 0.5; None when none qualifies."""
    duplicate_match_share: float | None = None
    """Share of the sampled complete records scored >= 0.5 against an exact copy."""
    thresholds: dict[str, Any] = field(default_factory=dict)
    """The model's own link threshold and its basis (:func:`model_thresholds`)."""


def _comparisons(columns: set[str]) -> list:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    out = []
    for name in ("given_name", "family_name"):
        if name in columns:
            # Splink's NameComparison levels without its term-frequency adjustment: those
            # weights depend on frequency tables of the training data that the real-time
            # scorer would also have to carry
            out.append(cl.CustomComparison(
                comparison_levels=[
                    cll.NullLevel(name),
                    cll.ExactMatchLevel(name),
                    cll.JaroWinklerLevel(name, 0.92),
                    cll.JaroWinklerLevel(name, 0.88),
                    cll.JaroWinklerLevel(name, 0.70),
                    cll.ElseLevel(),
                ],
                output_column_name=name,
                comparison_description="Name: exact, Jaro-Winkler 0.92 / 0.88 / 0.70",
            ))
    if {"given_name", "family_name"} <= columns:
        out.append(cl.CustomComparison(
            comparison_levels=[
                cll.CustomLevel('"given_name_l" IS NULL OR "given_name_r" IS NULL OR '
                                '"family_name_l" IS NULL OR "family_name_r" IS NULL',
                                "A name is NULL").configure(is_null_level=True),
                cll.CustomLevel('"given_name_l" = "family_name_r" AND '
                                '"family_name_l" = "given_name_r" AND '
                                '"given_name_l" <> "family_name_l"',
                                "Given and family names swapped"),
                cll.CustomLevel('jaro_winkler_similarity("given_name_l", "family_name_r") >= 0.8'
                                ' AND jaro_winkler_similarity("family_name_l", "given_name_r")'
                                ' >= 0.8 AND "given_name_l" <> "given_name_r"',
                                "Names swapped, with typos (Jaro-Winkler >= 0.8)"),
                cll.ElseLevel(),
            ],
            output_column_name="name_swap",
            comparison_description="Given and family names entered in each other's field",
        ))
    if "birth_date" in columns:
        out.append(cl.DateOfBirthComparison("birth_date", input_is_string=True))
    elif "birth_year" in columns:
        out.append(cl.ExactMatch("birth_year"))
    if "email" in columns:
        out.append(cl.ExactMatch("email"))
    for name in ("phone", "national_id"):
        if name in columns:
            out.append(cl.DamerauLevenshteinAtThresholds(name, [1]))
    if "company" in columns:
        out.append(cl.JaroWinklerAtThresholds("company", [0.9, 0.8]))
    address = _address_comparison(columns)
    if address is not None:
        out.append(address)
    return out


def _address_comparison(columns: set[str]) -> Any:
    """Street, postal code, city and state as ONE comparison.

    As separate comparisons they count the same evidence (one home) three or four times,
    which makes two members of a household look like one person.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    parts = [c for c in ("street", "postal_code", "city", "state") if c in columns]
    if not parts:
        return None
    null = " AND ".join(f'("{c}_l" IS NULL OR "{c}_r" IS NULL)' for c in parts)
    levels = [cll.CustomLevel(null, "address is NULL").configure(is_null_level=True)]
    if "street" in columns and "postal_code" in columns:
        levels.append(cll.CustomLevel('"street_l" = "street_r" AND "postal_code_l" = '
                                      '"postal_code_r"', "Same street and postal code"))
        levels.append(cll.CustomLevel(
            'jaro_winkler_similarity("street_l", "street_r") >= 0.9 AND '
            'damerau_levenshtein("postal_code_l", "postal_code_r") <= 1',
            "Similar street, postal code within one edit"))
    if "postal_code" in columns:
        levels.append(cll.CustomLevel('"postal_code_l" = "postal_code_r"', "Same postal code"))
    if "city" in columns:
        levels.append(cll.CustomLevel('"city_l" = "city_r"', "Same city"))
    if "state" in columns:
        levels.append(cll.CustomLevel('"state_l" = "state_r"', "Same state"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels, output_column_name="address",
                               comparison_description="Address: " + ", ".join(parts))


#: Blocking rules for predictions, as column tuples; a rule is used when all its columns are.
_PREDICTION_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("email",),
    ("phone",),
    ("national_id",),
    ("email_user",),
    ("family_name", "substr(given_name,1,1)"),
    ("birth_date",),
    ("given_name", "company"),
    ("given_name", "postal_code"),
    ("family_name", "postal_code"),
    ("given_name", "city"),
    ("street", "postal_code"),
    ("postal_code", "city"),
)
#: Comparisons of a rare event (names entered in each other's field): data where the
#: event never happens gives them no evidence, which is not a degenerate model.
_RARE_EVENT_COMPARISONS = frozenset({"name_swap"})

#: EM sessions, in order of preference: each trains every comparison it does not block on.
_EM_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("given_name", "family_name"),
    ("birth_date",),
    ("national_id",),
    ("email",),
    ("phone",),
    ("postal_code",),
    ("city",),
)


def _column_of(expr: str) -> str:
    return expr.split("(", 1)[1].split(",", 1)[0] if "(" in expr else expr


#: A prediction blocking rule is kept when it generates at most this many pairs per input
#: record (plus a floor for small files): a rule on a common value (a first name and a big
#: city, a birth date in a file where everyone has one) grows with the square of the data
#: and, at a million records, was measured to exhaust memory.
PAIRS_PER_RECORD = 10
PAIRS_FLOOR = 200_000


def _usable_rules(columns: set[str]) -> list[tuple[str, ...]]:
    return [b for b in _PREDICTION_BLOCKS if all(_column_of(e) in columns for e in b)]


def blocking_pair_counts(frame: Any, rules: Iterable[tuple[str, ...]]) -> dict[tuple, int]:
    """Pairs each blocking rule generates on ``frame`` (exact: sum of n(n-1)/2 per key)."""
    import duckdb

    con = duckdb.connect()
    con.register("frame", frame)
    out = {}
    for rule in rules:
        keys = ", ".join(rule)
        not_null = " AND ".join(f"{_column_of(e)} IS NOT NULL" for e in rule)
        (pairs,) = con.execute(
            f"SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) AS n FROM frame "
            f"WHERE {not_null} GROUP BY {keys})").fetchall()[0]
        out[rule] = int(pairs)
    con.close()
    return out


def choose_blocking_rules(frame: Any, columns: set[str]) -> tuple[list[tuple[str, ...]],
                                                                   dict[str, int]]:
    """The prediction blocking rules for ``frame``: those whose columns are filled and whose
    pair count is within budget. Returns (kept rules, pairs per rule including dropped)."""
    usable = _usable_rules(columns)
    counts = blocking_pair_counts(frame, usable)
    budget = max(PAIRS_FLOOR, PAIRS_PER_RECORD * len(frame))
    kept = [b for b in usable if counts[b] <= budget]
    return kept, {" AND ".join(b): n for b, n in counts.items()}


def build_settings(columns: set[str], link_type: str = "dedupe_only",
                   rules: list[tuple[str, ...]] | None = None) -> Any:
    """Splink ``SettingsCreator`` for the filled matching ``columns`` (prediction blocking
    rules: ``rules``, default every rule whose columns are filled)."""
    from splink import SettingsCreator, block_on

    if rules is None:
        rules = _usable_rules(columns)
    blocks = [block_on(*b) for b in rules]
    if not blocks:
        raise DegenerateModelError(
            "no blocking rule can be built: the data fills none of email, phone, national_id "
            f"or name columns (filled: {sorted(columns) or 'none'})")
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="unique_id",
        comparisons=_comparisons(columns),
        blocking_rules_to_generate_predictions=blocks,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
    )


def filled_columns(frame: Any) -> set[str]:
    """Matching columns filled in at least :data:`MIN_FILL` of the rows of ``frame``."""
    from idgraph.resolver.probabilistic.features import COLUMNS

    n = max(1, len(frame))
    return {c for c in COLUMNS if c in frame.columns and frame[c].notna().sum() / n >= MIN_FILL}


def splink_duckdb(spill_dir: Path | None = None, memory_limit: str | None = None) -> Any:
    """Splink's DuckDB API on a new in-memory database. What does not fit in memory DuckDB
    writes to its temporary directory: by default ``.tmp`` in the working directory, created
    with the umask's mode; with ``spill_dir`` there instead, a directory made owner-only
    (the records and pairs spilled are personal data; DuckDB's files in it still follow
    the umask, the directory keeps others out). ``memory_limit`` (DuckDB's setting, such as
    ``"1GB"``; None: DuckDB's default, 80% of the machine's memory) is what DuckDB may hold
    before it spills."""
    from splink import DuckDBAPI

    if spill_dir is None and memory_limit is None:
        return DuckDBAPI()
    import duckdb

    config = {}
    if spill_dir is not None:
        config["temp_directory"] = str(make_private_dir(spill_dir))
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    return DuckDBAPI(duckdb.connect(config=config))


def train_model(frame: Any, *, link_type: str = "dedupe_only", max_pairs: float = 5e6,
                seed: int = 42, deterministic_recall: float = 0.7,
                blocking_frame: Any = None, max_false_link_rate: float = 0.005,
                leave_out: frozenset[str] = frozenset(),
                spill_dir: Path | None = None, memory_limit: str | None = None
                ) -> tuple[dict, TrainingReport]:
    """Train on a pandas frame of matching rows (``unique_id`` + feature columns).

    For ``link_only`` the frame needs a ``source_dataset`` column. When ``frame`` is a
    sample, ``blocking_frame`` is the whole data set the model will predict on: blocking
    rules are kept or dropped by the pairs they make there (pair counts grow with the
    square of the data, so a sample understates them). Returns Splink's model
    dict (what ``save_model_to_json`` writes) and the report, whose ``thresholds`` is
    the model's own link threshold and its basis (:func:`model_thresholds`, with
    ``max_false_link_rate``). Raises :class:`DegenerateModelError` when the data or the
    result cannot make a usable model.

    An identifier column (email, phone, national ID) that fewer than
    :data:`MIN_SHARED_PAIRS` pairs of named records share, and whose comparison EM could
    not estimate or found no evidence in (a column filled in a few rows, a household's
    landline), is left out (``leave_out``) and the model trained again without it, with a
    warning: it cannot be judged either way, and refusing the model for it would refuse a
    file of names and birth dates for a column it barely has.

    Splink's DuckDB spills into ``spill_dir`` past ``memory_limit`` (see
    :func:`splink_duckdb`).
    """
    from splink import Linker, block_on

    started = time.perf_counter()
    if len(frame) < 20:
        raise DegenerateModelError(
            f"too few records to train on: {len(frame)} (at least 20 with names, email, "
            "phone or birth date)")
    columns = filled_columns(frame) - leave_out
    rules, pair_counts = choose_blocking_rules(
        frame if blocking_frame is None else blocking_frame, columns)
    settings = build_settings(columns, link_type, rules)
    db = splink_duckdb(spill_dir, memory_limit)
    if link_type == "link_only":
        tables = [db.register(part.drop(columns=["source_dataset"]),
                              dataset_display_name=str(name))
                  for name, part in frame.groupby("source_dataset", sort=True)]
        linker = Linker(tables, settings, log_level=logging.ERROR)
    else:
        linker = Linker(db.register(frame), settings, log_level=logging.ERROR)

    shared = shared_identifier_pairs(frame, columns)
    identifiers = [c for c, n in shared.items() if n >= MIN_SHARED_PAIRS]
    prior_rules = _prior_rules(columns, identifiers, shared)
    if sum(blocking_pair_counts(frame, prior_rules).values()) == 0:
        raise DegenerateModelError(
            "cannot estimate the prior: no two records share "
            + " or ".join("the same " + ", ".join(r) for r in prior_rules)
            + f" (filled: {sorted(columns)})")
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*r) for r in prior_rules], recall=deterministic_recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)

    em_rules: list[str] = []
    compared = {c.output_column_name for c in settings.get_settings("duckdb").comparisons}
    trained: set[str] = set()
    address_parts = {"street", "postal_code", "city", "state"}

    def estimated_by(cols: tuple[str, ...]) -> set[str]:
        """Comparisons an EM session blocking on ``cols`` estimates (those not using them)."""
        return {c for c in compared
                if not ((address_parts if c == "address" else {c}) & set(cols))}

    for cols in _EM_BLOCKS:
        if not all(c in columns for c in cols):
            continue
        newly = estimated_by(cols) - trained
        if not newly:
            continue
        with _m_u_floor():
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*cols), estimate_without_term_frequencies=True)
        em_rules.append(" AND ".join(cols))
        trained |= estimated_by(cols)
        if trained >= compared:
            break
    if trained < compared:
        raise DegenerateModelError(
            "no expectation-maximisation block could estimate m for "
            f"{sorted(compared - trained)}: fill another identifying column "
            "(birth date, email, phone or national ID)")
    model = linker.misc.save_model_to_json()
    report = TrainingReport(rows=len(frame), columns=sorted(columns), em_blocking_rules=em_rules,
                            seconds=round(time.perf_counter() - started, 2),
                            blocking_pairs=pair_counts,
                            blocking_rules=[" AND ".join(r) for r in rules])
    try:
        check_model(model, report)
    except DegenerateModelError as problem:
        refused: DegenerateModelError | None = problem
    else:
        refused = None
    unusable = sorted(c for c, n in shared.items() if n < MIN_SHARED_PAIRS
                      and report.separation.get(c, 0.0) < MIN_SEPARATION)
    if unusable:
        model, again = train_model(
            frame, link_type=link_type, max_pairs=max_pairs, seed=seed,
            deterministic_recall=deterministic_recall, blocking_frame=blocking_frame,
            max_false_link_rate=max_false_link_rate, leave_out=leave_out | set(unusable),
            spill_dir=spill_dir, memory_limit=memory_limit)
        n = max(1, len(frame))
        again.warnings[:0] = [
            f"{c}: left out of the model: filled in {frame[c].notna().sum() / n:.1%} of the "
            f"rows and shared by {shared[c]} pairs of named records, too few to estimate it"
            for c in unusable]
        return model, again
    data = tables if link_type == "link_only" else db.register(frame)
    # a collapse is the more telling diagnosis when both apply, so it is checked first
    if identifiers:
        _check_sure_matches(linker, data, identifiers, shared, report)
    else:
        report.warnings.append(
            "no identifier (email, phone, national ID) shared by at least "
            f"{MIN_SHARED_PAIRS} pairs of named records "
            f"({', '.join(f'{c}: {n}' for c, n in shared.items()) or 'none filled'}): "
            "the model is checked on exact duplicates only")
    if refused is not None:
        raise refused
    _check_exact_duplicates(linker, db, frame, columns, seed, report)
    report.thresholds = model_thresholds(linker, data, model, max_false_link_rate)
    _check_sure_of_some_pair(report.thresholds)
    report.seconds = round(time.perf_counter() - started, 2)
    return model, report


#: Columns whose values identify one person: two records sharing one are nearly always
#: the same person, which makes them the prior's sure matches and the model's check.
IDENTIFIERS = ("email", "phone", "national_id")
#: An identifier counts sure matches (the prior) and checks the model only when at least
#: this many pairs of named records share a value: a handful of pairs (a column filled in
#: a few rows) says nothing about the model, and a prior counted on them is far too low.
MIN_SHARED_PAIRS = 30
#: Share of the pairs sharing an identifier that a usable model must score as matches
#: (probability >= 0.5).
MIN_SURE_MATCH_SHARE = 0.5
#: Share of the records whose exact copy a usable model must score as a match.
MIN_DUPLICATE_SHARE = 0.9
#: Records copied for the exact-duplicate check (a seeded sample).
DUPLICATE_SAMPLE = 2000
#: A column counts towards a "complete" record when at least this share of rows fill it.
COMPLETE_FILL = 0.5


def _named(columns: set[str]) -> list[str]:
    return [c for c in ("given_name", "family_name") if c in columns]


def shared_identifier_pairs(frame: Any, columns: set[str]) -> dict[str, int]:
    """identifier column -> pairs of records sharing a value of it, both records carrying
    every filled name column (the pairs :func:`_check_sure_matches` judges)."""
    import duckdb

    named = _named(columns)
    con = duckdb.connect()
    con.register("frame", frame)
    out = {}
    for column in IDENTIFIERS:
        if column not in columns:
            continue
        where = " AND ".join(f"{c} IS NOT NULL" for c in (column, *named))
        (pairs,) = con.execute(
            f"SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM (SELECT count(*) AS n FROM frame "
            f"WHERE {where} GROUP BY {column})").fetchall()[0]
        out[column] = int(pairs)
    con.close()
    return out


def _prior_rules(columns: set[str], identifiers: list[str],
                 shared: dict[str, int]) -> list[tuple[str, ...]]:
    """Deterministic rules whose pairs are the prior's sure matches: the identifiers
    enough pairs share; else the full name with the birth date; else any identifier."""
    if identifiers:
        return [(c,) for c in identifiers]
    if {"given_name", "family_name", "birth_date"} <= columns:
        return [("given_name", "family_name", "birth_date")]
    if shared:
        return [(c,) for c in shared]
    raise DegenerateModelError(
        "cannot estimate the prior: no email, phone, national_id, or full name with "
        f"birth date to count sure matches on (filled: {sorted(columns)})")


def _check_sure_matches(linker: Any, tables: Any, identifiers: list[str],
                        shared: dict[str, int], report: TrainingReport) -> None:
    """Refuse a model that does not recognise the pairs sharing an identifier.

    Pairs sharing an exact email, phone or national ID, both records named, are nearly all
    the same person. When EM collapses onto other fields (the "match" class it found is
    "agrees on the name", or on the household), those pairs score low: that is the symptom
    checked here. Only identifiers that at least :data:`MIN_SHARED_PAIRS` named pairs share
    are used (``identifiers``); a full name with a birth date is not an identifier (that
    pair is an exact duplicate in a names-and-birth-dates file, which
    :func:`_check_exact_duplicates` judges).
    """
    from splink import block_on

    scored = linker.inference.predict_within(
        tables, blocking_rules_to_generate_predictions=[block_on(c) for c in identifiers],
        warning_mode="never")
    rel = scored.as_duckdbpyrelation()
    # records with little besides the identifier (an email-only SendGrid recipient) score
    # near the prior whatever the model; judge on pairs where both sides carry names
    named = [c for c in ("given_name", "family_name") if f"{c}_l" in rel.columns]
    for c in named:
        rel = rel.filter(f'"{c}_l" IS NOT NULL AND "{c}_r" IS NOT NULL')
    total, sure = rel.aggregate(
        "count(*), count(*) FILTER (WHERE match_probability >= 0.5)").fetchall()[0]
    scored.drop_table_from_database_and_remove_from_cache()
    report.sure_match_share = round(sure / total, 4) if total else None
    if total and sure / total < MIN_SURE_MATCH_SHARE:
        leaders = sorted((n for n in report.separation if n not in IDENTIFIERS),
                         key=lambda n: -report.separation[n])[:2]
        raise DegenerateModelError(
            f"degenerate model refused: EM collapsed onto {', '.join(leaders) or 'other fields'}"
            f": only {sure / total:.0%} of the {total} pairs that share an exact "
            f"{' / '.join(identifiers)} score as matches, so the model measures agreement "
            "on those fields, not identity")


def _check_exact_duplicates(linker: Any, db: Any, frame: Any, columns: set[str], seed: int,
                            report: TrainingReport) -> None:
    """Refuse a model that does not score two identical records as a match.

    A seeded sample of the "complete" records (those filling every column that at least
    :data:`COMPLETE_FILL` of the rows fill) is scored, by Splink, against an exact copy of
    itself. Such a pair agrees on every column, whatever the data: a model that does not
    call it a match (its prior outweighs all its agreement weights, as when the prior was
    counted on far too few sure pairs) would link nothing. The check needs no identifier
    and no duplicates in the data. It does not see a collapse (a model collapsed onto
    one field still matches exact copies): :func:`check_model` and
    :func:`_check_sure_of_some_pair` do.
    """
    import pandas as pd
    from splink import block_on

    n = max(1, len(frame))
    regular = [c for c in sorted(columns) if frame[c].notna().sum() / n >= COMPLETE_FILL]
    complete = frame
    for c in regular:
        complete = complete[complete[c].notna()]
    if len(complete) == 0:
        return
    if len(complete) > DUPLICATE_SAMPLE:
        complete = complete.sample(n=DUPLICATE_SAMPLE, random_state=seed)
    complete = complete.drop(columns=[c for c in ("source_dataset",) if c in complete.columns])
    original = complete.assign(_copy_of=complete["unique_id"])
    copy = original.assign(unique_id=original["unique_id"].astype(str) + "\x00copy")
    table = db.register(pd.concat([original, copy], ignore_index=True))
    scored = linker.inference.predict_within(
        table, link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[block_on("_copy_of")], warning_mode="never")
    total, matched = scored.as_duckdbpyrelation().aggregate(
        "count(*), count(*) FILTER (WHERE match_probability >= 0.5)").fetchall()[0]
    scored.drop_table_from_database_and_remove_from_cache()
    report.duplicate_match_share = round(matched / total, 4) if total else None
    if total and matched / total < MIN_DUPLICATE_SHARE:
        raise DegenerateModelError(
            f"degenerate model refused: only {matched / total:.0%} of {total} records score "
            "as a match with an exact copy of themselves (agreeing on "
            f"{', '.join(regular) or 'every column'}): the prior outweighs all agreement, "
            "so the model would link nothing")


#: A usable model scores at least one pair of its training data at this probability or
#: above. Measured: sound models of common names and birth dates reach 0.997, models whose
#: names are noise or whose prior drowns all agreement at most 0.57.
MIN_BEST_PROBABILITY = 0.95


def _check_sure_of_some_pair(thresholds: dict[str, Any]) -> None:
    """Refuse a model sure of none of its training pairs.

    When not even the model's best pair scores :data:`MIN_BEST_PROBABILITY`, EM found no
    class of pairs it is confident are one person. Measured on names-and-birth-date files
    whose names are noise: EM then takes "same names" inside the birth-date block for the
    match class, every comparison seems to separate, exact copies still score as
    matches, and only this shows it. (Independent of ``max_false_link_rate``: a strict
    rate makes a sound model link nothing on its own, it does not make it degenerate.)
    """
    best = thresholds["best_probability"]
    if best is not None and best >= MIN_BEST_PROBABILITY:
        return
    why = ("no pair of the training data scores as a match (probability >= 0.5)"
           if best is None else f"its best pair scores {best:.4f}")
    raise DegenerateModelError(
        f"degenerate model refused: it is sure of none of its training pairs ({why}, below "
        f"{MIN_BEST_PROBABILITY}): EM found no pairs it is confident are one person")


#: Bits by which the link threshold exceeds the weight of a pair only one field agrees on
#: (strictly above it; far below the weight of any comparison level).
SINGLE_FIELD_MARGIN = 0.001


def model_thresholds(linker: Any, tables: Any, model: dict, max_false_link_rate: float
                     ) -> dict[str, Any]:
    """The link threshold the model's own evidence supports, and its basis.

    * ``false_link_rate_threshold``: the lowest match probability t such that, over the
      blocked pairs of the training data scored at or above t, the model's expected share
      of false links (the mean of 1 - p, from its own posterior) is at most
      ``max_false_link_rate``; t is never below 0.5 (more likely a non-match than a match).
      Pairs are taken best first, and each adds a share of false links no smaller than
      those before it, so the mean only grows as t falls.
    * ``single_field_weight``: the match weight of a pair on which only the model's
      strongest comparison agrees (its best level) and every other comparison is NULL: the
      prior plus that level's weight (swapped names, which come with two disagreeing
      names, never agree alone). Fellegi-Sunter probabilities are overconfident when
      the fields are not independent, so no one agreeing field (one shared phone, one
      shared email, one shared address) may link two records alone: the link threshold
      lies above this weight (by :data:`SINGLE_FIELD_MARGIN` bits).

    ``link`` (a probability; ``link_weight`` in bits, None when not even the best pair is
    within the rate, or no pair scores 0.5: nothing would link) is the larger of the two,
    and at least 0.5. ``pairs_scored`` counts the training pairs scoring at least 0.5. The
    matcher links at it when ``matching.thresholds = "model"``, never below the
    configured ``link_threshold``. Also recorded: how many training pairs score at or
    above it and the model's expected false-link rate among them.
    """
    from idgraph.resolver.probabilistic.model import read_model
    from idgraph.resolver.probabilistic.scorer import probability_of

    spec = read_model(model)
    # a rare-event comparison (names swapped) never agrees alone: its pairs disagree on
    # both name comparisons
    best = {c.name: max(lvl.weight for lvl in c.levels
                        if not lvl.is_null and math.isfinite(lvl.weight))
            for c in spec.comparisons if c.name not in _RARE_EVENT_COMPARISONS}
    strongest = max(best, key=lambda name: best[name])
    single = spec.prior_weight + best[strongest]
    scored = linker.inference.predict_within(tables, threshold_match_probability=0.5,
                                             warning_mode="never")
    rel = scored.as_duckdbpyrelation()
    ranked = rel.query("scored", """
        SELECT match_weight, match_probability,
               sum(1 - match_probability) OVER w / count(*) OVER w AS false_rate
        FROM scored
        WINDOW w AS (ORDER BY match_weight DESC
                     RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""")
    pairs, within, lowest, best_p = ranked.aggregate(
        f"count(*), count(*) FILTER (WHERE false_rate <= {float(max_false_link_rate)!r}), "
        f"min(match_weight) FILTER (WHERE false_rate <= {float(max_false_link_rate)!r}), "
        "max(match_probability)").fetchall()[0]
    if within == 0:
        rate_weight = math.inf  # not even the best pair is (or none scores 0.5): no link
    elif within == pairs:
        rate_weight = 0.0  # every pair above 0.5 is within the rate: the bound is 0.5
    else:
        rate_weight = float(lowest)
    link_weight = max(rate_weight, single + SINGLE_FIELD_MARGIN, 0.0)
    at_or_above = f"WHERE match_weight >= {link_weight!r}"
    linked, expected = (rel.aggregate(
        f"count(*) FILTER ({at_or_above}), "
        f"coalesce(sum(1 - match_probability) FILTER ({at_or_above}), 0)").fetchall()[0]
        if math.isfinite(link_weight) else (0, 0.0))
    scored.drop_table_from_database_and_remove_from_cache()
    finite = math.isfinite(link_weight)
    return {
        "link": probability_of(link_weight) if finite else 1.0,
        "link_weight": round(link_weight, 6) if finite else None,
        "max_false_link_rate": max_false_link_rate,
        "false_link_rate_threshold": (probability_of(rate_weight)
                                      if math.isfinite(rate_weight) else 1.0),
        "single_field_weight": round(single, 6),
        "strongest_comparison": strongest,
        "pairs_scored": int(pairs),
        "best_probability": float(best_p) if best_p is not None else None,
        "pairs_at_or_above_link": int(linked),
        "expected_false_link_rate": round(float(expected) / linked, 6) if linked else None,
    }


@contextmanager
def _m_u_floor() -> Iterator[None]:
    """Floor EM's m and u estimates at Splink's own clamp (1e-300) while training.

    A level that no matching pair in a block reaches (in clean data: birth dates of one
    person never differ) gets m = 0.0 from EM; Splink 5 refuses to store a value below
    1e-300 (``ValueError``, splink PR #2851) although it clamps m and u to exactly that
    value when it turns them into match weights. Storing the clamp instead gives the
    weights Splink would compute, and a model that loads.
    """
    from splink.internals import expectation_maximisation as em
    from splink.internals.comparison_level import M_U_CLAMP_MIN

    original = em.populate_m_u_from_lookup

    def floored(fixed: Any, level: Any, column: str, lookup: dict) -> None:
        record = lookup.get(column, {}).get(level.comparison_vector_value)
        if record is not None:
            for key in ("m_probability", "u_probability"):
                value = record.get(key)
                if isinstance(value, float) and value < M_U_CLAMP_MIN:
                    record[key] = M_U_CLAMP_MIN
        original(fixed, level, column, lookup)

    em.populate_m_u_from_lookup = floored
    try:
        yield
    finally:
        em.populate_m_u_from_lookup = original


def _separation(comp: Comparison) -> float:
    """Kullback-Leibler divergence of m from u over the observed non-null levels, in bits:
    how much evidence, on average, the comparison gives about a true match. A rare but
    telling level (swapped names) scores well; a field drawn independently of the person
    scores about zero."""
    total = 0.0
    for lvl in comp.levels:
        if lvl.is_null or not lvl.observed or not lvl.m:
            continue
        total += lvl.m * math.log2(lvl.m / max(lvl.u or 0.0, 1e-300))
    return max(total, 0.0)


def check_model(model: dict, report: TrainingReport | None = None) -> None:
    """Refuse a degenerate model with :class:`DegenerateModelError`.

    Refused:

    * a comparison none of whose levels had m and u estimated from the data;
    * ``m equal to u``: a comparison whose m distribution carries less than
      :data:`MIN_SEPARATION` bits of evidence against its u distribution (KL divergence).
      EM found nothing that distinguishes matches on that field, and its weights would be
      noise;
    * ``EM collapsed onto one field``: fewer than two comparisons separate m from u. The
      "match" class EM found is then just "agrees on that field" (a household sharing an
      address, a company sharing a domain), not "same person";
    * a prior outside (0, 0.5): more than half of random pairs matching means the prior
      estimation counted non-matches as matches.

    Levels never observed in training (Splink then uses m = 1e-6) do not make a model
    unusable; they are listed in ``report.warnings``.
    """
    spec = read_model(model)
    problems: list[str] = []
    warnings: list[str] = []
    separation: dict[str, float] = {}
    for comp in spec.comparisons:
        observed = [lvl for lvl in comp.levels if not lvl.is_null and lvl.observed]
        if not observed:
            problems.append(f"{comp.name}: m and u probabilities were never estimated")
            continue
        warnings.extend(f"{comp.name}: level {lvl.label!r} not observed in training"
                        for lvl in comp.levels if not lvl.is_null and not lvl.observed)
        sep = separation[comp.name] = round(_separation(comp), 4)
        if sep < MIN_SEPARATION and comp.name in _RARE_EVENT_COMPARISONS:
            warnings.append(f"{comp.name}: never seen among matches in this data")
        elif sep < MIN_SEPARATION:
            problems.append(
                f"{comp.name}: m equals u ({sep:.3f} bits of evidence < {MIN_SEPARATION}): the "
                "field does not separate matches from non-matches in this data")
    separating = [n for n, s in separation.items()
                  if s >= MIN_SEPARATION and n not in _RARE_EVENT_COMPARISONS]
    if separation and len(separating) < 2:
        only = separating[0] if separating else "none"
        problems.append(
            f"EM collapsed onto one field ({only}): no other comparison separates matches "
            "from non-matches, so the model would only measure agreement on that field")
    if not 0.0 < spec.prior < 0.5 or math.isnan(spec.prior):
        problems.append(f"prior probability of a match {spec.prior!r} is outside (0, 0.5)")
    if report is not None:
        report.separation = separation
        report.warnings = warnings
    if problems:
        raise DegenerateModelError("degenerate model refused: " + "; ".join(problems))
