"""Accuracy of resolved profiles against ground truth, and latency percentiles.

Accuracy compares record key -> profile with record key -> person.

Pairwise metrics count pairs of records: a true pair is two records of one person, a
predicted pair two records in one profile. Cluster metrics: the share of people whose
records all sit in exactly one profile, and the share of profiles holding records of more
than one person (wrong merges).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Accuracy:
    records: int
    people: int
    profiles: int
    precision: float
    recall: float
    f1: float
    people_in_one_profile: float
    profiles_wrongly_merged: float


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def evaluate(truth: Mapping[str, str], predicted: Mapping[str, str]) -> Accuracy:
    """Compare ``predicted`` (record key -> profile ID) with ``truth`` on the records in both."""
    keys = [k for k in predicted if k in truth]
    joint = Counter((truth[k], predicted[k]) for k in keys)
    per_person = Counter(truth[k] for k in keys)
    per_profile = Counter(predicted[k] for k in keys)
    tp = sum(_pairs(n) for n in joint.values())
    pred = sum(_pairs(n) for n in per_profile.values())
    true = sum(_pairs(n) for n in per_person.values())
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    profiles_of_person: dict[str, set[str]] = defaultdict(set)
    people_of_profile: dict[str, set[str]] = defaultdict(set)
    for person, profile in joint:
        profiles_of_person[person].add(profile)
        people_of_profile[profile].add(person)
    one = sum(1 for s in profiles_of_person.values() if len(s) == 1)
    wrong = sum(1 for s in people_of_profile.values() if len(s) > 1)
    return Accuracy(
        records=len(keys), people=len(per_person), profiles=len(per_profile),
        precision=precision, recall=recall, f1=f1,
        people_in_one_profile=one / len(per_person) if per_person else 1.0,
        profiles_wrongly_merged=wrong / len(per_profile) if per_profile else 0.0,
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
