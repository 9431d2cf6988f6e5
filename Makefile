# LimRank Studio. `make run` for a new user (SQLite + embedded broker, no servers); `make test` runs the suite.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := limrank_app.settings
# Development targets run with DEBUG=true unless told otherwise: without SECRET_KEY, DEBUG=false is refused
# (limrank_app/checks.py). Production sets DEBUG=false and SECRET_KEY in its environment and does not run make.
export DEBUG ?= true
export HF_HUB_OFFLINE ?= 1

.PHONY: run test install install-dev migrate demo web worker browsers check bench clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PY) not found); set PY=..."; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py load_demo

# The web server and one Celery worker on every queue (Procfile), supervised by honcho: Ctrl-C or SIGTERM stops both.
# exec: honcho replaces the recipe's shell, so a signal sent to make's child reaches honcho itself.
run: demo
	@echo "LimRank Studio on http://$(HOST):$(PORT)/  (worker: queues default,llm,gpu)"
	PATH="$(abspath $(BIN)):$$PATH" HOST=$(HOST) exec $(BIN)/honcho start -f Procfile -p $(PORT)

web: migrate
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: install
	$(BIN)/celery -A limrank_app worker -Q $${QUEUES:-default,llm,gpu} -c $${CONCURRENCY:-1} --loglevel=INFO

# Debian's Chromium for the browser tests (never a downloaded browser).
browsers:
	@test -x /usr/bin/chromium || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || echo "install chromium and chromium-driver with apt to run the browser tests"; }

# The whole suite. DATABASE_URL / CELERY_BROKER_URL choose PostgreSQL / Redis; default is SQLite.
test: install-dev browsers
	$(BIN)/python manage.py makemigrations --check --dry-run
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(PYTEST_ARGS)

check: install
	$(BIN)/python manage.py check

bench: install-dev
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/review_api.py
	$(BIN)/python bench/export.py

clean:
	rm -rf var/ .pytest_cache test-artifacts
