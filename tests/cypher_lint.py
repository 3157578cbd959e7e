"""Lint Cypher with Neo4j's own parser (``tools/cypher-lint``), for tests.

The test server (ArcadeDB) accepts some syntax Neo4j 5 rejects, so tests run every
statement a backend sends through :func:`lint_cypher`. The npm dependencies are installed
(``npm ci``, from the pinned lock file) on first use; a missing ``node``/``npm`` or a failed
install raises RuntimeError, so the calling test fails rather than skips.
"""

from __future__ import annotations

import json

from node_tools import NodeTool

PACKAGE = "@neo4j-cypher/language-support"
TOOL = NodeTool("cypher-lint", [PACKAGE], "the Cypher linter")
LINT_TIMEOUT_SECONDS = 300



def lint_cypher(statements: list[str]) -> list[list[str]]:
    """Error messages of each statement, in order; an empty list: Neo4j 5 accepts it.

    Messages cover syntax errors and the errors of Neo4j's semantic analysis (undefined
    variables, removed syntax), not warnings. Parameters are taken as declared and no
    database schema is known. Raises RuntimeError when the linter cannot run.
    """
    if not all(isinstance(s, str) for s in statements):
        raise TypeError("statements must be strings")
    if not statements:
        return []
    result = TOOL.run_json("lint.mjs", statements, LINT_TIMEOUT_SECONDS)
    if not (isinstance(result, list) and len(result) == len(statements)
            and all(isinstance(m, list) and all(isinstance(x, str) for x in m)
                    for m in result)):
        raise RuntimeError(f"cypher-lint answered an unexpected shape: {json.dumps(result)[:500]}")
    return result







