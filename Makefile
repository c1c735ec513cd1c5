# Every target installs what it needs: `make run` and `make test` work as the first command.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: install run test test-reliability soak lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fanout needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## venv + editable install with dev extras

run: $(STAMP)  ## the embedded local run: moto SQS + synthetic Genesys traffic, Ctrl-C for the summary
	$(PY) -m fanout run --local $(ARGS)

test: $(STAMP)  ## unit + integration tests (moto server on 127.0.0.1)
	$(PY) -m pytest -q $(ARGS)

test-reliability: $(STAMP)  ## long fault, crash and stop scenarios on LocalStack (127.0.0.1:4566)
	$(PY) -m pytest -q -s -m reliability $(ARGS)

soak: $(STAMP)  ## 10-minute soak on LocalStack: RSS and task count over time (MINUTES=...)
	$(PY) -m bench.soak --minutes $(or $(MINUTES),10) $(ARGS)

lint: $(STAMP)  ## ruff (incl. flake8-bandit rules) + mypy --strict on fanout/
	$(VENV)/bin/ruff check fanout tests
	$(VENV)/bin/ruff format --check fanout tests
	$(VENV)/bin/mypy fanout

format: $(STAMP)
	$(VENV)/bin/ruff check --fix fanout tests
	$(VENV)/bin/ruff format fanout tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
