"""A saved Splink model read back as plain data: prior, comparisons, levels and weights.

:func:`read_model` hands the model dict to Splink's own settings classes and reads every
level's match weight from them, so the weights used in real time are Splink's, computed
by Splink's code (m/u clamping, levels not observed in training, null levels), not a
re-implementation. Only the SQL conditions are evaluated elsewhere
(:mod:`idgraph.resolver.probabilistic.sql_eval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Level:
    """One comparison level: its SQL condition and Splink's match weight for it."""

    label: str
    sql: str
    is_null: bool
    weight: float  # log2 Bayes factor, 0 for the null level
    m: float | None
    u: float | None
    observed: bool  # m and u were both estimated from data
    gamma: int  # Splink's comparison vector value (-1 for the null level)


@dataclass(frozen=True, slots=True)
class Comparison:
    name: str  # output column name (e.g. ``given_name``)
    description: str
    levels: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    prior: float  # probability that two random records match
    prior_weight: float  # log2 of the prior odds
    comparisons: tuple[Comparison, ...]
    blocking_rules: tuple[str, ...]
    link_type: str


def read_model(model: dict) -> ModelSpec:
    """Read a Splink model dict (as ``save_model_to_json`` returns) through Splink."""
    from splink.internals.misc import prob_to_match_weight
    from splink.internals.settings_creator import SettingsCreator

    settings = SettingsCreator.from_path_or_dict(model).get_settings("duckdb")
    comparisons = []
    for comp in settings.comparisons:
        levels = []
        for lvl in comp.comparison_levels:
            if lvl.is_null_level:
                levels.append(Level(lvl.label_for_charts, lvl.sql_condition, True, 0.0, None,
                                    None, True, lvl.comparison_vector_value))
                continue
            weight = lvl._match_weight
            levels.append(Level(
                label=lvl.label_for_charts, sql=lvl.sql_condition, is_null=False,
                weight=math.nan if weight is None else weight,
                m=lvl.m_probability, u=lvl.u_probability, observed=lvl._is_trained,
                gamma=lvl.comparison_vector_value,
            ))
        comparisons.append(Comparison(comp.output_column_name, comp.comparison_description or "",
                                      tuple(levels)))
    prior = settings._probability_two_random_records_match
    rules = tuple(br.blocking_rule_sql for br in settings._blocking_rules_to_generate_predictions)
    return ModelSpec(prior=prior, prior_weight=prob_to_match_weight(prior),
                     comparisons=tuple(comparisons), blocking_rules=rules,
                     link_type=settings._link_type)
