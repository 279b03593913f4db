# vitalbridge — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest fuzz bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

run: $(STAMP)  ## migrate SQLite, start sandbox EHR + hub + demo tenant, serve until Ctrl-C
	$(BIN)/vitalbridge up

test: lint typecheck pytest  ## ruff, mypy, pytest (warnings are errors)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

fuzz: $(STAMP)  ## long schemathesis campaign against the live hub (VB_FUZZ_EXAMPLES per operation and mode)
	VB_FUZZ_EXAMPLES=$${VB_FUZZ_EXAMPLES:-300} $(BIN)/pytest tests/security/test_fuzz.py -q

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
