# Two commands for a newcomer: `make demo` (main job, embedded defaults) and `make test`.
# Both create the virtual environment and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo demo-kafka test bench lint proto clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/idgraph demo $(DEMO_ARGS)

# the same generated stream through Kafka: a local broker, two workers, gRPC answers
demo-kafka: $(STAMP)
	$(VENV)/bin/idgraph demo --kafka $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

lint: $(STAMP)
	$(VENV)/bin/ruff check .

proto: $(STAMP)
	$(PY) -m proto.generate

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
