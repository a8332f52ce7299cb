# One command to set up and run each thing; the virtual environment lives in .venv.
# SECRET_KEY here is for local use only; production sets its own (docs/settings.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
export SECRET_KEY ?= eam-local-only-insecure-key

.PHONY: setup test demo serve dev worker migrate clean-var

# The application's requirements (enough for demo, serve and migrate).
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -r requirements.txt
	touch $(STAMP)

# Plus the test suite's tools.
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $(DEV_STAMP)

# Everything, tests included.
setup: $(DEV_STAMP)

# Runs the whole suite on SQLite, or on PostgreSQL when DATABASE_URL points there.
test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The whole flow on the embedded SQLite database (var/eam.sqlite3): see README.
demo: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py demo

# Where `make serve` listens and how many server processes it starts (docs/operations.md, section 1).
EAM_BIND ?= 127.0.0.1:8000
EAM_WEB_CONCURRENCY ?= 2

# The site as production runs it (DEBUG off, gunicorn with uvicorn workers, static files through WhiteNoise)
# and a worker loop; Ctrl-C stops both.
serve: export DEBUG := false
serve: $(STAMP)
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py run_jobs --interval 5 & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) -m gunicorn -k uvicorn_worker.UvicornWorker --bind $(EAM_BIND) --workers $(EAM_WEB_CONCURRENCY) \
		--no-control-socket eam_site.asgi:application

# Django's development server (DEBUG on, reloads on code changes) and a worker loop; Ctrl-C stops both.
dev: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py run_jobs --interval 5 & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	trap 'exit 130' INT TERM; \
	DEBUG=true $(PY) manage.py runserver $(EAM_BIND)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

clean-var:
	rm -rf var
