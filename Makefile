# Every target installs what it needs: `make run` and `make test` work as the first command.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

# LocalStack (SQS + EventBridge) for test-e2e and bench; a non-default port keeps it apart from
# another instance: make localstack test-e2e localstack-stop LOCALSTACK_PORT=4599
LOCALSTACK_PORT ?= 4566
LOCALSTACK_ENDPOINT ?= http://127.0.0.1:$(LOCALSTACK_PORT)
export LOCALSTACK_PORT LOCALSTACK_ENDPOINT

.PHONY: install run test test-image test-e2e test-reliability soak lint format clean localstack localstack-stop bench docs docs-serve

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fanout needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(VENV)/.installed-bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@

install: $(STAMP)  ## venv + editable install with dev extras

run: $(STAMP)  ## the embedded local run: moto SQS + synthetic Genesys traffic, Ctrl-C for the summary
	$(PY) -m fanout run --local $(ARGS)

test: $(STAMP)  ## unit + integration tests (moto server on 127.0.0.1)
	$(PY) -m pytest -q $(ARGS)

test-image: $(STAMP)  ## what the Dockerfile does, without an engine: wheel, fresh venv, --version, rules check, a drain
	$(PY) -m pytest -q -m image tests/integration/test_image_recipe.py $(ARGS)

test-e2e: $(STAMP) localstack  ## end-to-end tests: EventBridge -> SQS -> fanout on LocalStack
	$(PY) -m pytest -q -m e2e tests/e2e $(ARGS)

localstack:  ## LocalStack on 127.0.0.1:$(LOCALSTACK_PORT): install on first use, start, wait healthy
	$(PYTHON) bench/localstack.py start

localstack-stop:  ## stop the LocalStack that `make localstack` started on that port
	$(PYTHON) bench/localstack.py stop

bench: $(VENV)/.installed-bench  ## bench suite: stub + LocalStack (make localstack first), ARGS="--events 2000"
	$(PY) -m bench --endpoint-url $(LOCALSTACK_ENDPOINT) $(ARGS)

test-reliability: $(STAMP) localstack  ## long fault, crash and SIGTERM scenarios on LocalStack
	$(PY) -m pytest -q -s -m reliability $(ARGS)

soak: $(STAMP) localstack  ## soak on LocalStack: RSS and task count over time (MINUTES=10)
	$(PY) -m bench.soak --minutes $(or $(MINUTES),10) $(ARGS)

docs: $(STAMP)  ## the docs site (mkdocs-material) into site/, --strict: a broken link or page fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)  ## serve the docs site on http://127.0.0.1:8000 with live reload
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

lint: $(STAMP)  ## ruff (incl. flake8-bandit rules) on fanout/ tests/ bench/ + mypy --strict on fanout/ + import contracts
	$(VENV)/bin/ruff check fanout tests bench docs/hooks docs/diagrams
	$(VENV)/bin/ruff format --check fanout tests bench docs/hooks docs/diagrams
	$(VENV)/bin/mypy fanout
	$(VENV)/bin/lint-imports  # layer contracts: [tool.importlinter] in pyproject.toml

format: $(STAMP)
	$(VENV)/bin/ruff check --fix fanout tests bench docs/hooks docs/diagrams
	$(VENV)/bin/ruff format fanout tests bench docs/hooks docs/diagrams

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site
