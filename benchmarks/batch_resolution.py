"""Batch resolution of a generated person file: wall time and peak memory of `idgraph resolve`.

    .venv/bin/python -m benchmarks.batch_resolution --records 1000000
    .venv/bin/python -m benchmarks.batch_resolution --records 200000 --output batch_resolution_200k

Writes a Parquet person file drawn from the synthetic population (:mod:`idgraph.generator.people`):
people with one to five records each, the copies with the kinds of damage contact data
has (typos, swapped given and family names, missing fields, another email or phone, a
national-format phone). Then runs ``idgraph resolve`` on it as its own process on a fresh
data directory (train the model, ingest through the engine, Splink scores the blocked
pairs, the graph clusters) and reports wall time, the child's peak RSS (``getrusage``),
and accuracy against the file's ground truth. Targets on this machine: 1M records in at
most 3 minutes and 6 GB peak.
"""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import argument_parser, load_average, save


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s
    i = rng.randrange(len(s) - 1)
    kind = rng.random()
    if kind < 0.4:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]  # transposition
    if kind < 0.7:
        return s[:i] + s[i + 1:]  # deletion
    return s[:i] + rng.choice("aeiounrst") + s[i + 1:]  # substitution


def write_person_file(n_records: int, seed: int, path: Path) -> dict[str, str]:
    """Write ``n_records`` rows to ``path`` (Parquet); returns record ID -> person ID."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from idgraph.generator.people import PeopleFactory

    rng = random.Random(seed)
    factory = PeopleFactory(rng)
    factory.make_companies(max(50, n_records // 400))
    cols: dict[str, list] = {c: [] for c in (
        "record_id", "first_name", "last_name", "dob", "email", "phone", "street", "city",
        "zip", "company")}
    truth: dict[str, str] = {}
    prior: list = []
    i = 0
    while len(truth) < n_records:
        person = factory.make_person(i, prior=prior[-2000:])
        prior.append(person)
        i += 1
        copies = min(rng.choice((1, 1, 1, 2, 2, 3, 4, 5)), n_records - len(truth))
        for k in range(copies):
            given, family = person.given_name, person.family_name
            email = person.emails[0] if person.emails else None
            phone = person.phones[0].e164 if person.phones else None
            dob = person.birth_date.isoformat()
            street, city, postal = person.street, person.city, person.postal_code
            company = person.company.legal_name if person.company else None
            if k:  # a copy: damage it the way other systems do
                if rng.random() < 0.3:
                    given = _typo(rng, given)
                if rng.random() < 0.2:
                    family = _typo(rng, family)
                if rng.random() < 0.03:
                    given, family = family, given
                if rng.random() < 0.3:
                    email = person.work_email or (person.emails[-1] if person.emails else None)
                if rng.random() < 0.3:
                    phone = None
                if rng.random() < 0.4:
                    dob = None
                if rng.random() < 0.3:
                    street = _typo(rng, street)
                if rng.random() < 0.2:
                    street = postal = None
            rid = f"r{len(truth):07d}"
            truth[rid] = person.person_id
            for name, value in (("record_id", rid), ("first_name", given),
                                ("last_name", family), ("dob", dob), ("email", email),
                                ("phone", phone), ("street", street), ("city", city),
                                ("zip", postal), ("company", company)):
                cols[name].append(value)
    order = list(range(len(truth)))
    rng.shuffle(order)  # copies of one person are not adjacent in real files
    table = pa.table({c: [v[j] for j in order] for c, v in cols.items()})
    pq.write_table(table, path)
    return truth


def main(argv: list[str] | None = None) -> dict:
    parser = argument_parser("batch_resolution", __doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    import pandas as pd

    from benchmarks.febrl import cluster_metrics

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="idgraph-batch-"))
    people = work / "people.parquet"
    t = time.perf_counter()
    truth = write_person_file(args.records, args.seed, people)
    generate_s = time.perf_counter() - t
    out = work / "resolved.parquet"
    cmd = [sys.executable, "-m", "idgraph.cli", "resolve", "--input", str(people),
           "--output", str(out), "--id-column", "record_id", "--map", "given_name=first_name",
           "--map", "family_name=last_name", "--map", "birth_date=dob",
           "--map", "postal_code=zip", "--data-dir", str(work / "data")]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"idgraph resolve failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    resolved = pd.read_parquet(out)
    metrics = cluster_metrics(dict(zip(resolved.record_id, resolved.profile_id, strict=True)),
                              truth)
    result = {
        "records": args.records, "people": len(set(truth.values())),
        "generate_seconds": round(generate_s, 1),
        "resolve_wall_seconds": round(wall, 1), "resolve_peak_rss_gib": round(peak_kib / 2**20, 2),
        "resolve_output": proc.stdout.strip().splitlines()[-3:],
        "accuracy": {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()},
        "targets": {"wall_seconds": 180, "peak_rss_gib": 6},
        "load_average_1m": {"before": load_before, "after": load_average()},
    }
    print(result)
    print(f"saved {save(parser, args, argv, result)}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
