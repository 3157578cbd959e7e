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
estimated by a session that does not block on it.

:func:`check_model` then refuses a degenerate result (see its docstring) with
:class:`DegenerateModelError` naming what went wrong.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from idgraph.core.errors import IdGraphError
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
    """Share of the pairs agreeing on an exact strong identifier scored >= 0.5."""


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


def train_model(frame: Any, *, link_type: str = "dedupe_only", max_pairs: float = 5e6,
                seed: int = 42, deterministic_recall: float = 0.7,
                blocking_frame: Any = None) -> tuple[dict, TrainingReport]:
    """Train on a pandas frame of matching rows (``unique_id`` + feature columns).

    For ``link_only`` the frame needs a ``source_dataset`` column. When ``frame`` is a
    sample, ``blocking_frame`` is the whole data set the model will predict on: blocking
    rules are kept or dropped by the pairs they make there (pair counts grow with the
    square of the data, so a sample understates them). Returns Splink's model
    dict (what ``save_model_to_json`` writes) and the report. Raises
    :class:`DegenerateModelError` when the data or the result cannot make a usable model.
    """
    from splink import DuckDBAPI, Linker, block_on

    started = time.perf_counter()
    if len(frame) < 20:
        raise DegenerateModelError(
            f"too few records to train on: {len(frame)} (at least 20 with names, email, "
            "phone or birth date)")
    columns = filled_columns(frame)
    rules, pair_counts = choose_blocking_rules(
        frame if blocking_frame is None else blocking_frame, columns)
    settings = build_settings(columns, link_type, rules)
    db = DuckDBAPI()
    if link_type == "link_only":
        tables = [db.register(part.drop(columns=["source_dataset"]),
                              dataset_display_name=str(name))
                  for name, part in frame.groupby("source_dataset", sort=True)]
        linker = Linker(tables, settings, log_level=logging.ERROR)
    else:
        linker = Linker(db.register(frame), settings, log_level=logging.ERROR)

    exact = [block_on(c) for c in ("email", "phone", "national_id") if c in columns]
    if not exact and {"given_name", "family_name", "birth_date"} <= columns:
        exact = [block_on("given_name", "family_name", "birth_date")]
    if not exact:
        raise DegenerateModelError(
            "cannot estimate the prior: no email, phone, national_id, or full name with "
            f"birth date to count sure matches on (filled: {sorted(columns)})")
    linker.training.estimate_probability_two_random_records_match(
        exact, recall=deterministic_recall)
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
    # a collapse is the more telling diagnosis when both apply, so it is checked first
    _check_sure_matches(linker, tables if link_type == "link_only" else db.register(frame),
                        exact, report)
    if refused is not None:
        raise refused
    report.seconds = round(time.perf_counter() - started, 2)
    return model, report


#: Share of the pairs agreeing exactly on a strong identifier (email, phone, national ID)
#: that a usable model must score as matches (probability >= 0.5).
MIN_SURE_MATCH_SHARE = 0.5


def _check_sure_matches(linker: Any, tables: Any, rules: list, report: TrainingReport) -> None:
    """Refuse a model that does not recognise the pairs the prior counted as sure matches.

    Pairs sharing an exact email, phone or national ID, both records named, are nearly all
    the same person. When EM collapses onto other fields (the "match" class it found is
    "agrees on the name", or on the household), those pairs score low: that is the symptom
    checked here.
    """
    scored = linker.inference.predict_within(
        tables, blocking_rules_to_generate_predictions=rules, warning_mode="never")
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
        strong = {"email", "phone", "national_id"}
        leaders = sorted((n for n in report.separation if n not in strong),
                         key=lambda n: -report.separation[n])[:2]
        raise DegenerateModelError(
            f"degenerate model refused: EM collapsed onto {', '.join(leaders) or 'other fields'}"
            f": only {sure / total:.0%} of the {total} pairs that share an exact "
            f"{' / '.join(n for n in report.separation if n in strong) or 'identifier'}"
            " score as matches, so the model measures agreement on those fields, not identity")


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
