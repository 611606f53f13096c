# The two set-up commands of the README:  `make run` (the main job) and `make test` (the test suite).
# Both create the virtual environment .venv on first use and install the package with the pinned constraints
# (with the test and docs extras: `make docs` builds the documentation site into site/, warnings as errors).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench docs

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,docs]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/pyro-nrg $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

lint: install
	$(BIN)/ruff check pyro_nrg tests benchmarks tutorials docs

docs: install
	$(BIN)/mkdocs build --strict -d site $(ARGS)
