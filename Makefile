# Two commands are all the set-up: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INVOICE ?=
TENANT ?=
SEED ?=

.PHONY: run test lint typecheck services bench bench-all replay reconcile chaos fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -U pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## run: the whole product on the embedded default (SQLite, file broker, bundled Xero sandbox and SFTP server)
run: $(STAMP)
	@$(BIN)/connector demo

## test [TEST_RUNNERS=n]: ruff, mypy (strict on connector/ and workers/), then the whole pytest suite on real services, on n parallel runners (default 3; runner i uses Redis DB CONNECTOR_TEST_REDIS_URL's number + i)
TEST_RUNNERS ?= 3
test: $(STAMP) services lint typecheck
	@$(BIN)/python -m pytest -n $(TEST_RUNNERS)

lint: $(STAMP)
	@$(BIN)/ruff check connector workers beat sandbox tests bench

typecheck: $(STAMP)
	@$(BIN)/mypy

## services: start the local Redis and PostgreSQL if they are down; install OpenSSH's sshd if missing
services:
	@bash .ci/ensure-services

## bench: the performance table (Xero calls, map cost against tenant size, map throughput beside the empty-task ceiling, first sync end to end beside the messaging floor, peak RSS per worker, idle tenants per cycle, Xero calls with documents on beside off; sizes: BENCH_BILLS, BENCH_FIRST_SYNC_BILLS, BENCH_RSS_BILLS, BENCH_TENANTS, BENCH_ATTACHMENT_BILLS, whose defaults finish in minutes; the README gives the goals' sizes), ratios against baselines of the same run; JSON under bench/results/
bench: $(STAMP) services
	@$(BIN)/python bench/report.py

## bench-all: every benchmark script, each printing its own ratios
bench-all: $(STAMP) services
	@for script in bench/*.py; do case $$script in */celery_empty.py|*/report.py) continue;; esac; $(BIN)/python $$script || exit 1; done

## replay INVOICE=<Xero InvoiceID>: re-send the stored file that carried this bill (same bytes, same name)
replay: $(STAMP)
	@test -n "$(INVOICE)" || { echo "usage: make replay INVOICE=<Xero InvoiceID>"; exit 2; }
	@$(BIN)/connector replay --invoice "$(INVOICE)"

## chaos [SEED=<n>]: the long chaos proof (10,000 bills, workers killed, Redis flushed, sshd down), then the counts
chaos: $(STAMP) services
	@CONNECTOR_CHAOS_SIZE=long $(if $(SEED),CONNECTOR_CHAOS_SEED=$(SEED),) $(BIN)/python -m pytest tests/chaos/test_chaos.py -s -q

## fuzz: hostile Xero pages (generated from Xero's OpenAPI schemas, then mutated) through the real poll and mapping, many more than the suite tries
fuzz: $(STAMP) services
	@CONNECTOR_FUZZ_EXAMPLES=$${CONNECTOR_FUZZ_EXAMPLES:-500} $(BIN)/python -m pytest tests/integration/test_hostile_data.py -k generated -s -q --timeout 1800 -p no:cacheprovider 2>&1 | grep -E "tried|passed|failed|Error"

## reconcile [TENANT=<id>]: compare what was delivered with what Xero holds now
reconcile: $(STAMP)
	@$(BIN)/connector reconcile $(if $(TENANT),--tenant "$(TENANT)",)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
