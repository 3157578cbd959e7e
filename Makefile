# Two commands for a newcomer: `make demo` (main job, embedded defaults) and `make test`.
# Both create the virtual environment and install the project on first use, from the lock
# file: a new machine gets exactly the versions the tests passed with.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Everything `make` installs (every extra, test and lint tools, the build backend), pinned
# with hashes. requirements/runtime.lock is the same for a production install (no dev tools).
LOCK    = requirements/dev.lock
# The locking tool, pinned; it lives in its own environment, never in $(VENV).
UV_VERSION = 0.13.9
TOOLS   = .venv-tools
UV      = $(TOOLS)/bin/uv
UV_COMPILE = $(UV) pip compile pyproject.toml requirements/build.in --universal \
	--python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock"

.PHONY: demo demo-kafka test mutation bench lint proto clean lock upgrade-lock check-upgrades

# A changed lock rebuilds the environment from scratch, so nothing unlocked stays behind.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/idgraph demo $(DEMO_ARGS)

# the same generated stream through Kafka: a local broker, two workers, gRPC answers
demo-kafka: $(STAMP)
	$(VENV)/bin/idgraph demo --kafka $(DEMO_ARGS)

# The console's browser tests (tests/console) drive Debian's Chromium: installed from the
# Debian archive on first use (tools/install_chromium.sh; root or sudo).
CHROMIUM = /usr/bin/chromium
$(CHROMIUM):
	tools/install_chromium.sh

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

# Mutation check of the modules that carry the guarantees (delivery, survivorship, the
# over-merge guards): every mutant must be killed by their tests (tools/mutation/check.py)
mutation: $(STAMP)
	$(PY) tools/mutation/check.py $(MUTATION_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# ruff, then the layers contract ([tool.importlinter]) on the installed layout: the wheel's
# tree, where every folder sits under idgraph/ as it does for users
LINT_TREE ?= $(or $(TMPDIR),/tmp)/idgraph-lint-tree
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	rm -rf $(LINT_TREE)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --target $(LINT_TREE) .
	cd $(LINT_TREE) && PYTHONPATH=$(LINT_TREE) $(CURDIR)/$(VENV)/bin/lint-imports $(CURDIR)/pyproject.toml

proto: $(STAMP)
	$(PY) -m idgraph.proto.generate

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Re-lock after editing pyproject.toml's dependencies; keeps every pin that still fits.
lock: $(UV)
	$(UV_COMPILE) --extra dev -o requirements/dev.lock
	$(UV_COMPILE) --extra neo4j --extra cassandra --extra kafka --extra console -o requirements/runtime.lock

# The one command that upgrades: the newest versions pyproject.toml's ranges allow, then the
# tests (`make test` rebuilds the environment from the new lock). Commit the locks if green.
upgrade-lock: $(UV)
	$(UV_COMPILE) --upgrade --extra dev -o requirements/dev.lock
	$(UV_COMPILE) --upgrade --extra neo4j --extra cassandra --extra kafka --extra console -o requirements/runtime.lock

# For maintainers, on a schedule: install the newest allowed versions (no lock) in a scratch
# environment and run the DuckDB-parity and backend contract tests there, so an upstream
# change is found before users find it. The project's environment and locks are untouched.
CHECK_VENV ?= $(or $(TMPDIR),/tmp)/idgraph-check-upgrades
CHECK_TESTS = tests/resolver/test_duckdb_functions.py tests/resolver/test_sql_eval.py \
	tests/resolver/test_scorer_parity.py tests/graph/test_graph_contract.py \
	tests/profile_store/test_store_contract.py
check-upgrades:
	$(PYTHON) -m venv --clear $(CHECK_VENV)
	$(CHECK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECK_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	$(CHECK_VENV)/bin/python -m pip freeze --exclude idgraph > $(CHECK_VENV)/versions.txt
	@echo "newest allowed versions (differences from $(LOCK)):"
	@grep -E '^[a-z0-9]' $(LOCK) | sed 's/ .*//' | tr 'A-Z_' 'a-z-' | sort > $(CHECK_VENV)/locked.txt
	@tr 'A-Z_' 'a-z-' < $(CHECK_VENV)/versions.txt | sort | comm -13 $(CHECK_VENV)/locked.txt - || true
	cd $(CHECK_VENV) && $(CHECK_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		--rootdir=$(CURDIR) -c $(CURDIR)/pyproject.toml $(addprefix $(CURDIR)/,$(CHECK_TESTS))

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache build *.egg-info
