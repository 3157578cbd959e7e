"""Batch jobs over many records at once: training a model, resolving a file, backfilling.

* :func:`train` trains on the engine's accumulated records or on a file and saves a new
  model version (``idgraph train``).
* :func:`resolve_file` reads a person/contact file (CSV or Parquet) with a column mapping,
  ingests its rows through the engine (deterministic rules, graph, profile store), scores
  every blocked pair of the data set with Splink itself (DuckDB), links the pairs at or
  above the link threshold (over-merge guards apply), queues the review band, and writes
  one row per input record: record ID, profile ID, best match probability and the record
  it was found with (``idgraph resolve``). Profiles are the graph's connected components,
  so the file's clusters and the profiles lookups return are the same thing.
* :func:`match_stored` is the same Splink pass over every stored record (``idgraph
  match``): the backfill after a model is trained on accumulated records.

The real-time matcher is paused while a batch job ingests (Splink scores the whole set
afterwards, far faster than pair-by-pair); its index is rebuilt when the next batch needs it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from idgraph.core.errors import ConfigError, InvalidPayloadError
from idgraph.core.private_files import open_private
from idgraph.graph.base import MatchEdge
from idgraph.resolver.adapters.tabular import adapt_row, check_mapping
from idgraph.resolver.model import CANONICAL_ATTRIBUTES
from idgraph.resolver.probabilistic.features import (
    COLUMNS,
    different_addresses_at_one_company,
    match_row,
)
from idgraph.resolver.probabilistic.matcher import Decisions, personally_supported
from idgraph.resolver.probabilistic.model import read_model
from idgraph.resolver.probabilistic.scorer import weight_of
from idgraph.resolver.probabilistic.training import TrainingReport, splink_duckdb, train_model

log = logging.getLogger(__name__)

#: Pairs Splink scores below this probability are not kept (they cannot be a best match
#: worth reporting, and keeping them costs memory at a million records).
PREDICT_FLOOR = 0.01


# ----------------------------------------------------------------------------- files


def parse_mapping(items: Iterable[str], columns: Iterable[str]) -> dict[str, str]:
    """``canonical=column`` items -> {canonical: column}; file columns already named like a
    canonical attribute map to themselves unless mapped otherwise."""
    columns = list(columns)
    mapping: dict[str, str] = {c: c for c in columns if c in CANONICAL_ATTRIBUTES}
    for item in items:
        canonical, sep, column = item.partition("=")
        canonical, column = canonical.strip(), column.strip()
        if not sep or not canonical or not column:
            raise ConfigError(f"--map {item!r}: expected CANONICAL=COLUMN "
                              "(e.g. --map given_name=fname)")
        if column not in columns:
            raise ConfigError(f"--map {item!r}: the file has no column {column!r} "
                              f"(columns: {', '.join(columns)})")
        mapping[canonical] = column
    check_mapping(mapping)
    if not mapping:
        raise ConfigError("no column maps to a canonical attribute; use --map "
                          f"CANONICAL=COLUMN with CANONICAL one of {', '.join(CANONICAL_ATTRIBUTES)}")
    return mapping


def read_table(path: Path) -> Any:
    """A CSV (every column as text) or Parquet file as a pandas frame."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                           sep="\t" if suffix == ".tsv" else ",", skipinitialspace=True)
    raise ConfigError(f"input file {path.name!r}: unknown format {suffix!r} "
                      "(use .csv, .tsv or .parquet)")


def write_table(frame: Any, path: Path) -> None:
    """Write ``frame`` as Parquet or CSV (by the suffix), owner-only: record IDs are
    personal data."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        with open_private(path, "wb") as fh:
            frame.to_parquet(fh, index=False)
    else:
        with open_private(path, "w", newline="", encoding="utf-8") as fh:
            frame.to_csv(fh, index=False)


def spill_dir(engine: Any) -> Path:
    """Where Splink's DuckDB spills what does not fit in memory: an owner-only directory of
    the data dir (:func:`splink_duckdb` creates it)."""
    return engine.settings.data_dir / "duckdb-spill"


@dataclass(slots=True)
class FileRecords:
    source: str
    id_column: str
    records: list = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dead_letters: list[tuple[int, str]] = field(default_factory=list)
    """(row number, reason) of rows that could not be read."""


def records_from_table(frame: Any, mapping: Mapping[str, str], id_column: str | None,
                       source: str, event_time: datetime, *, seen: set[str] | None = None,
                       first_row: int = 0, norm: Any = None) -> FileRecords:
    """Rows as records; a row that fails becomes a dead letter with its reason.

    ``seen`` (record IDs of earlier chunks) and ``first_row`` let a file be read in chunks.
    """
    from idgraph.resolver.normalize import Normalizer

    if id_column is not None and id_column not in frame.columns:
        raise ConfigError(f"--id-column {id_column!r}: the file has no such column "
                          f"(columns: {', '.join(map(str, frame.columns))})")
    norm = norm or Normalizer()
    out = FileRecords(source, id_column or "(row number)")
    cols = list(mapping.items())
    seen = set() if seen is None else seen
    ids = (frame[id_column].tolist() if id_column
           else [str(first_row + i) for i in range(len(frame))])
    series = {canonical: frame[column].tolist() for canonical, column in cols}
    for i, rid in enumerate(ids):
        rid = "" if rid is None or (isinstance(rid, float) and math.isnan(rid)) else str(rid).strip()
        if rid in seen:
            out.dead_letters.append((first_row + i + 1, f"{out.id_column}: duplicate record ID"))
            continue
        try:
            rec = adapt_row(source, rid, {c: series[c][i] for c, _ in cols}, norm, event_time)
        except InvalidPayloadError as exc:
            out.dead_letters.append((first_row + i + 1, str(exc)))
            continue
        seen.add(rid)
        out.records.append(rec)
        out.ids.append(rid)
    return out


def file_event_time(path: Path) -> datetime:
    """Event time of a file's rows: its modification time (re-reading it changes nothing)."""
    return datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)


def record_row(record: Any) -> dict | None:
    """The matching row of one adapted record."""
    return match_row(record.attributes, (i.key for i in record.identifiers))


def file_frame(path: Path, mapping_items: Iterable[str] = (), id_column: str | None = None
               ) -> Any:
    """Matching rows of a person file (for training on it without ingesting it)."""
    table = read_table(Path(path))
    mapping = parse_mapping(mapping_items, map(str, table.columns))
    parsed = records_from_table(table, mapping, id_column, "file", file_event_time(path))
    return rows_frame((r.record_key, record_row(r)) for r in parsed.records)


def payload_rows(items: Iterable[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Matching rows of the records raw ``(source, payload)`` events describe, each from
    its accumulated attributes and identifiers (later events win), without an engine;
    records with nothing to match on are left out."""
    from idgraph.resolver.adapters import adapt
    from idgraph.resolver.normalize import Normalizer

    norm = Normalizer()
    attrs: dict[str, dict] = {}
    idents: dict[str, set] = {}
    for source, payload in items:
        for r in adapt(source, payload, norm):
            attrs.setdefault(r.record_key, {}).update(r.attributes)
            idents.setdefault(r.record_key, set()).update(i.key for i in r.identifiers)
    rows = ((k, match_row(a, idents[k])) for k, a in attrs.items())
    return [(k, row) for k, row in rows if row is not None]


# ----------------------------------------------------------------------------- frames


class MatchingRows:
    """Matching rows gathered column by column (``unique_id`` + :data:`COLUMNS`), None rows
    dropped: a row dict lives only until its values are appended, so a million rows cost
    their column lists, not a million dicts (about 0.8 GB at 1M records)."""

    def __init__(self) -> None:
        self.data: dict[str, list] = {c: [] for c in ("unique_id", *COLUMNS)}

    def extend(self, items: Iterable[tuple[str, dict | None]]) -> None:
        ids = self.data["unique_id"]
        lists = [(c, self.data[c]) for c in COLUMNS]
        for key, row in items:
            if row is None:
                continue
            ids.append(key)
            for c, values in lists:
                values.append(row[c])

    def frame(self) -> Any:
        """The rows as a pandas frame."""
        import pandas as pd

        return pd.DataFrame(self.data, columns=["unique_id", *COLUMNS])


def rows_frame(items: Iterable[tuple[str, dict | None]]) -> Any:
    """A pandas frame of matching rows (``unique_id`` + :data:`COLUMNS`), None rows dropped."""
    rows = MatchingRows()
    rows.extend(items)
    return rows.frame()


# ----------------------------------------------------------------------------- jobs


def train(engine: Any, frame: Any | None = None, trained_on: str = "stored records",
          max_pairs: float | None = None, seed: int = 42) -> tuple[str, TrainingReport]:
    """Train on ``frame`` (matching rows) or on the engine's stored records, save a new
    version and start scoring with it. Raises DegenerateModelError for a refused model."""
    if frame is None:
        frame = rows_frame(engine.matching_rows())
    cfg = engine.settings.matching
    sample = frame
    if len(frame) > cfg.train_max_records:
        sample = frame.sample(n=cfg.train_max_records, random_state=seed)
    model, report = train_model(sample, max_pairs=max_pairs or cfg.train_max_pairs, seed=seed,
                                blocking_frame=frame,
                                max_false_link_rate=cfg.max_false_link_rate,
                                spill_dir=spill_dir(engine),
                                memory_limit=cfg.duckdb_memory_limit)
    version = engine.models.save(model, report, trained_on)
    engine.load_model()
    return version, report


@dataclass(slots=True)
class MatchPassResult:
    model_version: str
    pairs_predicted: int = 0
    links: int = 0
    refused: int = 0
    reviews_queued: int = 0
    seconds_predict: float = 0.0
    best: dict[str, tuple[float, str]] = field(default_factory=dict)
    """record key -> (best match probability, the record it was scored against)."""


def splink_pass(engine: Any, frame: Any, model_version: str | None = None) -> MatchPassResult:
    """Score every blocked pair of ``frame`` with Splink, link and queue by the thresholds."""
    from splink import Linker

    version, model = engine.models.load(model_version)
    spec = read_model(model)
    cfg = engine.settings.matching
    decisions = Decisions(cfg, engine.models.report(version).get("thresholds"))
    result = MatchPassResult(version)
    if len(frame) < 2:
        return result
    started = time.perf_counter()
    linker = Linker(splink_duckdb(spill_dir(engine), cfg.duckdb_memory_limit).register(frame),
                    model,
                    log_level=logging.ERROR)
    predictions = linker.inference.predict(threshold_match_weight=weight_of(PREDICT_FLOOR))
    names = [c.name for c in spec.comparisons]
    labels = [{lvl.gamma: lvl.label for lvl in c.levels} for c in spec.comparisons]
    relation = predictions.as_duckdbpyrelation()
    # every pair only for each record's best match; the decision columns only for the pairs
    # the thresholds can act on (a million records give over a million pairs)
    scored = relation.select("unique_id_l", "unique_id_r", "match_probability").fetchall()
    cols = ["unique_id_l", "unique_id_r", "match_weight", "match_probability"]
    cols += [f"gamma_{n}" for n in names] + [f"mw_{n}" for n in names]
    table = relation.filter(f"match_probability >= {float(decisions.review_threshold)!r}").select(
        *cols).fetchall()
    predictions.drop_table_from_database_and_remove_from_cache()
    result.seconds_predict = time.perf_counter() - started
    result.pairs_predicted = len(scored)

    best = result.best
    for a, b, prob in scored:
        if a not in best or prob > best[a][0]:
            best[a] = (prob, b)
        if b not in best or prob > best[b][0]:
            best[b] = (prob, a)
    del scored

    graph = engine.graph
    profile_of = graph.profile_of
    links: list[tuple[float, str, str, tuple, float]] = []
    reviews = []
    decided = engine.reviews.decided_pairs()
    # the addresses of the records the thresholds can act on only (not a dict per record)
    acted_on = {row[0] for row in table} | {row[1] for row in table}
    address = {key: {"email_user": user, "email_domain": domain} for key, user, domain in zip(
        frame["unique_id"], frame["email_user"], frame["email_domain"], strict=True)
        if key in acted_on}
    del acted_on
    k = len(names)
    for row in table:
        a, b, weight, prob = row[0], row[1], row[2], row[3]
        if a > b:
            a, b = b, a
        if (a, b) in decided:
            continue
        pa = profile_of(a)
        if pa is not None and pa == profile_of(b):
            continue  # already one person (a deterministic link): nothing to decide
        contrib = tuple((names[i], labels[i].get(row[4 + i], ""), row[4 + k + i])
                        for i in range(k))
        if decisions.decide(prob, contrib) == "link" and not different_addresses_at_one_company(
                address[a], address[b]):
            links.append((weight, a, b, contrib, prob))
        else:  # the query kept only pairs at or above the review threshold
            reviews.append((a, b, weight, prob, version, contrib))
    del table
    links.sort(key=lambda t: (-t[0], t[1], t[2]))
    blockers = engine.planner.match_blockers(
        [(a, b) for _, a, b, _, _ in links], graph, decisions.limit_exempt,
        check_names=[not personally_supported(decisions, c) for _, _, _, c, _ in links])
    now = time.time()
    edges = [MatchEdge(record_a=a, record_b=b, linked=not why, rule=f"probabilistic:{version}",
                       reason=why, match_weight=w, probability=p, model_version=version,
                       contributions=c, source="batch", event_id=f"batch:{version}", at=now)
             for (w, a, b, c, p), why in zip(links, blockers, strict=True)]
    engine.apply_matches(edges)
    result.links = sum(1 for e in edges if e.linked)
    result.refused = len(edges) - result.links
    result.reviews_queued = engine.matching.propose_reviews(reviews)  # with their regions
    return result


def match_stored(engine: Any, model_version: str | None = None) -> MatchPassResult:
    """Backfill: one Splink pass over every stored record."""
    result = splink_pass(engine, rows_frame(engine.matching_rows()), model_version)
    engine.load_model()
    return result


@dataclass(slots=True)
class ResolveResult:
    records: int
    dead_letters: list[tuple[int, str]]
    model_version: str
    trained: TrainingReport | None
    match: MatchPassResult
    profiles: int
    output: Path
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: read, adapt, ingest, train, predict (Splink + links), write."""


def resolve_file(engine: Any, path: Path, output: Path, mapping_items: Iterable[str] = (),
                 id_column: str | None = None, source: str | None = None,
                 model_version: str | None = None, train_if_missing: bool = True
                 ) -> ResolveResult:
    """Resolve a person/contact file and backfill the graph and the profile store."""
    from idgraph.resolver.normalize import Normalizer

    started = time.perf_counter()
    phases = dict.fromkeys(("read", "adapt", "ingest", "train", "predict", "write"), 0.0)
    mark = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[phase] += now - mark
        mark = now

    path = Path(path)
    table = read_table(path)
    mapping = parse_mapping(mapping_items, map(str, table.columns))
    source = source or "file:" + "".join(c if c.isalnum() else "_" for c in path.stem.lower())
    event_time = file_event_time(path)
    fresh_store = engine.store.counts().get("records", 0) == 0
    engine.matching.suspend()  # Splink scores the whole set below
    seen: set[str] = set()
    ids: list[str] = []
    dead: list[tuple[int, str]] = []
    file_rows = MatchingRows()
    norm = Normalizer()
    chunk = max(1, engine.settings.ingest_batch_size)
    lap("read")
    for start in range(0, len(table), chunk):  # read, adapt and ingest a chunk at a time
        parsed = records_from_table(table.iloc[start:start + chunk], mapping, id_column, source,
                                    event_time, seen=seen, first_row=start, norm=norm)
        lap("adapt")
        engine.ingest(parsed.records)
        lap("ingest")
        ids.extend(parsed.ids)
        dead.extend(parsed.dead_letters)
        if fresh_store:
            file_rows.extend((r.record_key, record_row(r)) for r in parsed.records)
        del parsed
        lap("adapt")
    del table
    keys = [f"{source}:{rid}" for rid in ids]
    # with an empty store the file is all there is: its rows are the stored records' rows
    frame = file_rows.frame() if fresh_store else rows_frame(engine.matching_rows())
    del file_rows
    trained = None
    if model_version is None and engine.models.latest() is None:
        if not train_if_missing:
            raise ConfigError("no trained model: run `idgraph train` or allow training")
        _, trained = train(engine, frame, trained_on=str(path))
    lap("train")
    match = splink_pass(engine, frame, model_version)
    lap("predict")
    engine.load_model()

    import pandas as pd

    profile_of = engine.graph.profile_of
    best = match.best
    out = pd.DataFrame({
        "record_id": ids,
        "profile_id": [profile_of(k) or "" for k in keys],
        "best_match_probability": [round(best[k][0], 6) if k in best else None for k in keys],
        "best_match_record_id": [best[k][1].split(":", 2)[-1] if k in best and
                                 best[k][1].startswith(source + ":") else
                                 (best[k][1] if k in best else None) for k in keys],
    })
    write_table(out, output)
    lap("write")
    return ResolveResult(
        records=len(ids), dead_letters=dead,
        model_version=match.model_version, trained=trained, match=match,
        profiles=out["profile_id"].nunique(), output=Path(output),
        seconds=time.perf_counter() - started, phases={k: round(v, 1) for k, v in phases.items()})
