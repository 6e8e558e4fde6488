# The two commands: `make run` (the main job) and `make test` (set up everything, run the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# JupyterLab (requirements-notebooks.txt): `make notebooks` uses it, and the tests start it.
NOTEBOOKS_STAMP := $(VENV)/.notebooks-installed
# MkDocs and mkdocs-material (requirements-docs.txt): `make docs`, and the suite's strict build.
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: system system-or-warn venv run test test-dates docs docs-serve screenshots check lint format typecheck bench profile notebooks deploy-check clean

## system: the Debian packages (Prometheus, Alertmanager, nginx, Chromium), installed if missing
system:
	@tools/system-packages

system-or-warn:
	@tools/system-packages --warn

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $(STAMP)

## run: the local stack on 127.0.0.1 (service, Prometheus, Alertmanager, workbench) on ./data
##      One service worker uses one core: when it is busy (process_cpu_seconds_total rising
##      near 1 s/s) on a machine with idle cores, run with JAMEY_WORKERS=2 (or the cores)
##      and JAMEY_RATE_LIMIT_STORAGE=redis://127.0.0.1:6379/0 (workers refuse memory://).
run: system-or-warn $(STAMP)
	$(BIN)/jamey stack

## test: the whole suite (real tantivy, SQLite, PostgreSQL, Redis, MQTT, Prometheus, nginx, Chromium),
##       then the date-sensitive modules again with the clock moved (test-dates)
##       on one pytest-xdist worker per logical core (-n auto would count physical cores: 1 on
##       many VMs), a module per worker at a time (module fixtures start their servers once), in
##       file order (`pytest -p randomly` shuffles; repeat a run with --randomly-seed=N); the
##       40 slowest tests are listed at the end, to see where the wall time goes
test: system $(STAMP) $(NOTEBOOKS_STAMP) $(DOCS_STAMP)
	$(BIN)/pytest -n logical --dist loadfile --durations=40
	$(MAKE) --no-print-directory test-dates

## test-dates: the modules whose outcome depends on today's date (windows around "now", ages,
##             expiry, backup ids, history days), run with this process's clock moved to noon on
##             the last day of this month a year ahead (CLOCK=ISO for another moment). Tests that
##             compare with a clock outside the process (a server's, file mtimes) are marked
##             real_clock and left out; the modules not listed keep no date of their own.
CLOCK ?= year-ahead-month-end
DATE_SENSITIVE := tests/alerting/test_alert_history.py tests/service/test_alert_webhook.py \
	tests/keys/test_hygiene.py tests/keys/test_keys.py tests/service/test_key_usage.py \
	tests/workbench/test_keys_page.py tests/workbench/test_session.py tests/workbench/test_signin.py \
	tests/vault/test_retention.py tests/vault/test_archive.py tests/memory/test_retention.py \
	tests/memory/test_prune.py tests/runbooks/test_prune.py tests/service/test_retention_routes.py \
	tests/service/test_retention_scheduler.py tests/service/test_scheduler.py tests/memory/test_analysis.py \
	tests/memory/test_dedupe.py tests/memory/test_sizes_growth.py tests/test_growth.py \
	tests/test_growth_retention.py tests/db/test_oplog.py tests/test_doctor.py tests/test_durations.py \
	tests/workbench/test_workbench_logic.py tests/workbench/test_charts.py
test-dates: $(STAMP)
	$(BIN)/pytest -n logical --dist loadfile -m "not real_clock" --clock=$(CLOCK) $(DATE_SENSITIVE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

## check: lint, types, tests: run before every commit
check: lint typecheck test

## deploy-check: systemd-analyze verify on deploy/systemd (paths filled in), nginx -t on the
## rendered site, promtool and amtool on prometheus/; also run by the test suite
## (tests/test_deploy.py). No venv stamp here, so the suite can run it without reinstalling.
deploy-check:
	$(BIN)/python -m jamey_engine.deploy check

## bench: the benchmarks in bench/ (numbers go into the README and docs/benchmarks.md);
##        BENCH="service workers wal workbench_paint" runs only those modules (the ingest table)
BENCH ?=
bench: system $(STAMP)
	$(BIN)/python -m bench $(BENCH)

## profile: where a keyed search's (or store's: make profile REQUEST=store) server time goes:
##          py-spy on a real `jamey serve` under wrk (bench/profile_service.py)
REQUEST ?= search
profile: system $(STAMP)
	$(BIN)/python -m bench.profile_service $(REQUEST)

$(NOTEBOOKS_STAMP): requirements-notebooks.txt $(STAMP)
	$(BIN)/pip install --quiet -r requirements-notebooks.txt
	touch $(NOTEBOOKS_STAMP)

$(DOCS_STAMP): requirements-docs.txt $(STAMP)
	$(BIN)/pip install --quiet -r requirements-docs.txt
	touch $(DOCS_STAMP)

## docs: regenerate the pages the code knows (settings, CLI) and build the site into site/,
##       strictly (a broken link or anchor fails); docs-serve: the same on 127.0.0.1:8000
docs: $(DOCS_STAMP)
	$(BIN)/python tools/docs_reference.py
	$(BIN)/mkdocs build --strict --quiet

docs-serve: $(DOCS_STAMP)
	$(BIN)/python tools/docs_reference.py
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

## screenshots: the workbench tour (docs/tour/*.png): a real workbench in Chromium, every page
##              signed in as an admin; fails naming a page that shows an exception, an icon
##              code as text or a raw ISO time (tools/screenshots.py)
screenshots: system $(STAMP)
	$(BIN)/python tools/screenshots.py

## notebooks: JupyterLab (pinned) on notebooks/ with the project's kernel, on 127.0.0.1 (root or not)
notebooks: $(NOTEBOOKS_STAMP)
	@VENV=$(VENV) tools/notebooks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
