# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench clean serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

# JupyterLab on notebooks/ (loopback only; it prints its URL with a token), after loading the
# shipped sample export into data/workbench.duckdb.
run: install
	$(BIN)/workbench load data/samples/clay_leads_sample.csv --db data/workbench.duckdb --table clay_leads
	$(BIN)/jupyter lab --no-browser --ip 127.0.0.1 --ServerApp.root_dir=notebooks --allow-root

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# The receiver on http://127.0.0.1:8000 with the default config and store; set
# CLAY_SIGNING_SECRET_DEVELOPMENT (and WORKBENCH_ADMIN_TOKEN for the event-log page) first.
serve: install
	$(BIN)/workbench serve mappings/clay.json --host 127.0.0.1 --port 8000 --workers 2

bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/designer.py
	$(BIN)/python bench/sql.py
	$(BIN)/python bench/receiver.py   # needs wrk (apt-get install wrk)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
