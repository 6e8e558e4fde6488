# The two commands: `make run` (the main job) and `make test` (set up everything, run the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# JupyterLab (requirements-notebooks.txt): `make notebooks` uses it, and the tests start it.
NOTEBOOKS_STAMP := $(VENV)/.notebooks-installed

.PHONY: system system-or-warn venv run test check lint format typecheck bench profile notebooks deploy-check clean

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
##       one pytest-xdist worker per logical core (-n auto would count physical cores: 1 on many
##       VMs), a module per worker at a time (module fixtures start their servers once), in
##       file order (`pytest -p randomly` shuffles; repeat a run with --randomly-seed=N)
test: system $(STAMP) $(NOTEBOOKS_STAMP)
	$(BIN)/pytest -n logical --dist loadfile

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

## bench: the benchmarks in bench/ (numbers go into the README)
bench: $(STAMP)
	$(BIN)/python -m bench

## profile: where a keyed search's (or store's: make profile REQUEST=store) server time goes:
##          py-spy on a real `jamey serve` under wrk (bench/profile_service.py)
REQUEST ?= search
profile: system $(STAMP)
	$(BIN)/python -m bench.profile_service $(REQUEST)

$(NOTEBOOKS_STAMP): requirements-notebooks.txt $(STAMP)
	$(BIN)/pip install --quiet -r requirements-notebooks.txt
	touch $(NOTEBOOKS_STAMP)

## notebooks: JupyterLab (pinned) on notebooks/ with the project's kernel, on 127.0.0.1 (root or not)
notebooks: $(NOTEBOOKS_STAMP)
	@VENV=$(VENV) tools/notebooks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
