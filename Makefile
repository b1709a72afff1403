# `make run` and `make test` do all set-up on a fresh machine: virtualenv, install, run.
# `make run` is `cxloop demo`: cxloop, a Salesforce emulator and a mail catcher (docs/demo.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# `make test` runs the suite on 4 pytest-xdist workers (each takes a PostgreSQL database and a
# Redis db of its own, tests/conftest.py), handing each worker the next test when it is free,
# longest tests first. Four on two cores, because the suite waits more than it computes (process
# start-ups, browser pages, PostgreSQL commits): with one worker per core both cores stayed
# two-thirds idle. `make test PYTEST_XDIST=` runs it in one process;
# `.venv/bin/python -m pytest tests/unit/test_x.py` runs a file without xdist.
PYTEST_XDIST ?= -n 4 --dist load --maxschedchunk 1

.PHONY: install run test lint format bench docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/cxloop demo

# Compiled bytecode is kept (under .venv, not beside the sources) even where the environment
# says PYTHONDONTWRITEBYTECODE: without it every xdist worker rewrote and compiled every test
# module again (28 s of CPU a worker to collect instead of 12 s), and every process a test
# starts (cxloop serve, worker, the benches, an inner pytest) compiled cxloop again.
PYCACHE := env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache

test: install
	$(BIN)/ruff check src tests bench
	$(PYCACHE) $(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# both worlds: the emulator at ~2 ms a call, then at a real org's latency (150 ms + 5 ms a record)
bench: install
	$(BIN)/python bench/workflow_bench.py

# PostgreSQL + Redis (db 13), 2 web processes, 1/2/4 workers, a scheduler; then a SIGKILL run
.PHONY: bench-cluster
bench-cluster: install
	$(BIN)/python bench/cluster_bench.py $(BENCH_ARGS)

# a million imported responses waiting for an unreachable org, then the drain (Redis db 12)
.PHONY: bench-backlog
bench-backlog: install
	nice -n 10 $(BIN)/python bench/backlog_bench.py $(BENCH_ARGS)

# docs/piped-text.md and docs/configuration.md are generated from the code (a test compares them)
docs: install
	$(BIN)/python -m cxloop.reference_docs docs

clean:
	rm -rf $(VENV) cxloop-data .pytest_cache .ruff_cache .hypothesis
