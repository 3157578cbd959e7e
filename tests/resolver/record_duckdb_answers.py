"""Record what the installed DuckDB answers to the parity probe set, for the test-suite.

Run once per DuckDB release the scorer supports (``python -m tests.resolver.record_duckdb_answers``
in an environment with that release); the answers go into ``fixtures/duckdb_releases.json``
beside this file, keyed by the DuckDB version, so the tests check every supported release's
behaviour whichever one is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from idgraph.resolver.probabilistic.duckdb_parity import duckdb_answers

FIXTURE = Path(__file__).parent / "fixtures" / "duckdb_releases.json"


def main() -> None:
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    recorded["releases"][duckdb.__version__] = duckdb_answers()
    recorded["releases"] = dict(sorted(recorded["releases"].items()))
    FIXTURE.write_text(json.dumps(recorded, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"recorded DuckDB {duckdb.__version__} in {FIXTURE}")


if __name__ == "__main__":
    main()
