# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit bench clean lab mutation

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pbs-compliance needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy pbs_compliance remediate
	$(BIN)/lint-imports

unit: $(STAMP)
	@# The plugins are loaded by tests that need them (pytester), after coverage has started.
	$(BIN)/python -m pytest tests/ -n 2 -p no:pbs_compliance -p no:pbs_compliance_remediate --cov --cov-report=term

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/pbs demo

lab: $(STAMP)
	$(BIN)/pbs lab serve --state-dir reports/lab

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Mutation score of the pure modules, each against its own tests (slow; not part of `make test`).
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,mutation]'
	$(BIN)/python tests/mutation/run.py $(MODULES)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage*
